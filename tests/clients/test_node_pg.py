"""node-postgres (`pg`) against Vivace and PostgreSQL 15 holding the same rows,
on the pinned release (node/) and the newest (node-newest/): one npm project
each, with its own package-lock.json, which scripts/test installs by `npm ci`."""

import json
import subprocess
from pathlib import Path

import pytest

from driver_matrix import NODE_PROJECTS

NODE_DIR = Path(__file__).parent / "node"


def run_probe(port: int, project: Path):
    done = subprocess.run(["node", "probe.js", str(port), str(project)], cwd=NODE_DIR, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("project", NODE_PROJECTS)
def test_parameterised_query_types_match_postgres(pair, project):
    vivace, pg = pair
    ours = run_probe(vivace.port, project)
    # The release the project's package.json pins, loaded from its node_modules.
    assert ours["pg"] == json.loads((project / "package.json").read_text())["dependencies"]["pg"]
    # bigint comes back as a string (pg's default), int and float as numbers, date as Date.
    assert ours["rows"] == [["1", "apple", 3, 0.5, True, True], ["3", "plum's", 12, 2, True, True]]
    assert ours["fields"] == [["id", 20], ["name", 25], ["qty", 23], ["price", 701], ["created", 1082], ["active", 16]]
    assert ours == run_probe(pg.port, project)
