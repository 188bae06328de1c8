"""SQLAlchemy with psycopg2, as Superset drives it: inspection and a Core query
with bound parameters, run against Vivace and a real PostgreSQL 15 holding the
same rows; the outcomes must be equal. Run on SQLAlchemy 1.4 (what Superset
pins), 2.0 (tests/requirements.txt) and 2.1, the newest (driver_matrix.SQLALCHEMY;
scripts/test installs 1.4 and 2.1 each into a directory of its own, named by
VIVACE_SQLALCHEMY14 and VIVACE_SQLALCHEMY21)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from driver_matrix import SQLALCHEMY, PythonDriver

PROBE = Path(__file__).parent / "probes" / "sqlalchemy_probe.py"


def run_probe(port: int, driver: PythonDriver):
    url = f"postgresql+psycopg2://vivace@127.0.0.1:{port}/vivace"
    done = subprocess.run([sys.executable, str(PROBE), url], capture_output=True, text=True, env=driver.env())
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("driver", SQLALCHEMY)
def test_inspection_and_core_select_match_postgres(pair, driver):
    vivace, pg = pair
    ours = run_probe(vivace.port, driver)
    assert ours["sqlalchemy"].startswith(driver.label + ".")
    assert ours["sqlalchemy"] == driver.version()
    assert ours["tables"] == ["items"]
    assert [c["name"] for c in ours["columns"]] == ["id", "name", "qty", "price", "created", "active"]
    assert ours["select"] == [["apple", 3, "2024-01-01"], ["plum's", 12, "2024-02-29"]]
    assert ours["views"] == ["big_items"]
    assert ours["view_definition_reads"] == [True, True]
    assert ours["view_columns"] == ["id", "name"]
    assert [r[1] for r in ours["view_rows"]] == ["plum's", "kiwi"]
    assert ours == run_probe(pg.port, driver)
