"""SQLAlchemy 2.x with psycopg2, as Superset drives it: inspection and a Core
query with bound parameters, run against Vivace and a real PostgreSQL 15 holding
the same rows; the outcomes must be equal. (SQLAlchemy 1.4 is not covered yet:
its get_pk_constraint query does not plan on Vivace; see docs/clients.md.)"""

import json
import subprocess
import sys
from pathlib import Path

PROBE = Path(__file__).parent / "probes" / "sqlalchemy_probe.py"


def run_probe(port: int):
    url = f"postgresql+psycopg2://vivace@127.0.0.1:{port}/vivace"
    done = subprocess.run([sys.executable, str(PROBE), url], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_inspection_and_core_select_match_postgres(pair):
    vivace, pg = pair
    ours = run_probe(vivace.port)
    assert ours["sqlalchemy"].startswith("2.")
    assert ours["tables"] == ["items"]
    assert [c["name"] for c in ours["columns"]] == ["id", "name", "qty", "price", "created", "active"]
    assert ours["select"] == [["apple", 3, "2024-01-01"], ["plum's", 12, "2024-02-29"]]
    assert ours == run_probe(pg.port)
