"""pgjdbc (Metabase, DBeaver, Tableau) against Vivace and PostgreSQL 15 holding the
same rows, on Debian's libpostgresql-jdbc-java and on the newest pgjdbc
(driver_matrix.PGJDBC)."""

import json
import subprocess
from pathlib import Path

import pytest

from driver_matrix import PGJDBC, jar_version, pgjdbc_jar

PROBE = Path(__file__).parent / "jdbc" / "JdbcProbe.java"


def run_probe(port: int, jar: Path):
    done = subprocess.run(["java", "-cp", str(jar), str(PROBE), str(port)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("pgjdbc", PGJDBC)
def test_metadata_prepared_streaming_and_cancel_match_postgres(pair, pgjdbc):
    vivace, pg = pair
    jar = pgjdbc_jar(pgjdbc)
    ours = run_probe(vivace.port, jar)
    assert ours["driver_version"] == jar_version(jar)
    assert ours["tables"] == [["public", "items", "TABLE"]]
    assert ours["views"] == [["public", "big_items", "VIEW"]]
    assert [c[0] for c in ours["columns"]] == ["id", "name", "qty", "price", "created", "active"]
    assert ours["prepared"] == [[2, "pear", "2024-01-02"], [3, "plum's", "2024-02-29"]]
    assert ours["streamed"] == [20000, 200010000]
    assert ours["cancel"] == "57014"
    assert ours["after_cancel"] == 4
    assert ours["primary_keys"] == [] and ours["indexes"] == []  # external tables have none
    assert ours["type_info_has_core_types"] is True
    theirs = run_probe(pg.port, jar)
    differing = {k for k in theirs if ours.get(k) != theirs[k]}
    assert differing == set(), (ours, theirs)
