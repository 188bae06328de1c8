"""pgjdbc (Metabase, DBeaver, Tableau) against Vivace and PostgreSQL 15 holding the
same rows. The driver jar comes from Debian's libpostgresql-jdbc-java."""

import json
import subprocess
from pathlib import Path

PROBE = Path(__file__).parent / "jdbc" / "JdbcProbe.java"
JAR = Path("/usr/share/java/postgresql.jar")


def run_probe(port: int):
    assert JAR.exists(), "install libpostgresql-jdbc-java (scripts/test does)"
    done = subprocess.run(["java", "-cp", str(JAR), str(PROBE), str(port)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_metadata_prepared_streaming_and_cancel_match_postgres(pair):
    vivace, pg = pair
    ours = run_probe(vivace.port)
    assert ours["tables"] == [["public", "items", "TABLE"]]
    assert [c[0] for c in ours["columns"]] == ["id", "name", "qty", "price", "created", "active"]
    assert ours["prepared"] == [[2, "pear", "2024-01-02"], [3, "plum's", "2024-02-29"]]
    assert ours["streamed"] == [20000, 200010000]
    assert ours["cancel"] == "57014"
    assert ours["after_cancel"] == 4
    assert ours["primary_keys"] == [] and ours["indexes"] == []  # external tables have none
    assert ours["type_info_has_core_types"] is True
    theirs = run_probe(pg.port)
    differing = {k for k in theirs if ours.get(k) != theirs[k]}
    assert differing == set(), (ours, theirs)
