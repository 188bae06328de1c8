"""node-postgres (`pg`) against Vivace and PostgreSQL 15 holding the same rows."""

import json
import subprocess
from pathlib import Path

NODE_DIR = Path(__file__).parent / "node"


def run_probe(port: int):
    done = subprocess.run(["node", "probe.js", str(port)], cwd=NODE_DIR, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_parameterised_query_types_match_postgres(pair):
    vivace, pg = pair
    ours = run_probe(vivace.port)
    # bigint comes back as a string (pg's default), int and float as numbers, date as Date.
    assert ours["rows"] == [["1", "apple", 3, 0.5, True, True], ["3", "plum's", 12, 2, True, True]]
    assert ours["fields"] == [["id", 20], ["name", 25], ["qty", 23], ["price", 701], ["created", 1082], ["active", 16]]
    assert ours == run_probe(pg.port)
