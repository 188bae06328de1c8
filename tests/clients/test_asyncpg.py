"""asyncpg against Vivace and PostgreSQL 15 holding the same rows: the outcomes
of the same prepared statements (scalars and arrays, binary format; bigint, int,
smallint, text, double, real, bool, date, timestamp, timestamptz, numeric, bytea,
interval, time)
must be equal. Run on the pinned asyncpg and the newest (driver_matrix.ASYNCPG)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from driver_matrix import ASYNCPG, PythonDriver

PROBE = Path(__file__).parent / "probes" / "asyncpg_probe.py"


def run_probe(port: int, driver: PythonDriver):
    done = subprocess.run([sys.executable, str(PROBE), str(port)], capture_output=True, text=True,
                          env=driver.env())
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("driver", ASYNCPG)
def test_binary_prepared_statements_match_postgres(pair, driver):
    vivace, pg = pair
    ours = run_probe(vivace.port, driver)
    assert ours["asyncpg"] == driver.version()
    assert ours["rows"] == [[2, "pear", 0, 1.25, "2024-01-02", False], [3, "plum's", 12, 2.0, "2024-02-29", True]]
    assert ours["scalars"] == [42, "hi!", True, 2.5]
    assert ours["arrays"][0] == [1, 3, 4]
    assert ours["array_params"] == [[5, 6, 7], ["a", "b'c"]]
    for key in ["more_types", "more_arrays", "more_params", "intervals_and_times", "interval_arrays"]:
        assert "error" not in ours[key], ours[key]
    assert [t for _, t in ours["more_types"]["types"]] == ["timestamp", "timestamptz", "numeric", "bytea", "int2", "float4"]
    assert ours == run_probe(pg.port, driver)
