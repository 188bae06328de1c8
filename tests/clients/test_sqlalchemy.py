"""SQLAlchemy with psycopg2, as Superset drives it: inspection and a Core query
with bound parameters, run against Vivace and a real PostgreSQL 15 holding the
same rows; the outcomes must be equal. Both SQLAlchemy 2.x (installed from
tests/requirements.txt) and 1.4 (what Superset pins; scripts/test installs it
into its own directory, named by VIVACE_SQLALCHEMY14) are run."""

import json
import os
import subprocess
import sys
from pathlib import Path

PROBE = Path(__file__).parent / "probes" / "sqlalchemy_probe.py"


def run_probe(port: int, sqlalchemy_path: str | None = None):
    url = f"postgresql+psycopg2://vivace@127.0.0.1:{port}/vivace"
    env = dict(os.environ)
    if sqlalchemy_path:
        env["PYTHONPATH"] = sqlalchemy_path
    done = subprocess.run([sys.executable, str(PROBE), url], capture_output=True, text=True, env=env)
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


def test_sqlalchemy_14_matches_postgres(pair):
    vivace, pg = pair
    path = os.environ.get("VIVACE_SQLALCHEMY14")
    assert path, "set VIVACE_SQLALCHEMY14 to a directory holding SQLAlchemy 1.4 (scripts/test does)"
    ours = run_probe(vivace.port, path)
    assert ours["sqlalchemy"].startswith("1.4.")
    assert ours["tables"] == ["items"]
    assert ours["select"] == [["apple", 3, "2024-01-01"], ["plum's", 12, "2024-02-29"]]
    assert ours == run_probe(pg.port, path)
