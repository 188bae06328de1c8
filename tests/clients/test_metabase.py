"""Metabase's PostgreSQL sync (table privileges, table list, enums, fields with
their primary-key join and col_description, foreign keys, indexes), replayed
through pgjdbc (Debian's and the newest: driver_matrix.PGJDBC) against Vivace
and PostgreSQL 15 holding the same rows."""

import json
import subprocess
from pathlib import Path

import pytest

from driver_matrix import PGJDBC, jar_version, pgjdbc_jar

PROBE = Path(__file__).parent / "jdbc" / "MetabaseProbe.java"


def run_probe(port: int, jar: Path):
    done = subprocess.run(["java", "-cp", str(jar), str(PROBE), str(port), "public", "items"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("pgjdbc", PGJDBC)
def test_metabase_sync_matches_postgres(pair, pgjdbc):
    vivace, pg = pair
    jar = pgjdbc_jar(pgjdbc)
    ours, theirs = run_probe(vivace.port, jar), run_probe(pg.port, jar)
    assert ours["driver_version"] == jar_version(jar)
    errors = {k: v for k, v in ours.items() if isinstance(v, dict)}
    assert errors == {}, errors

    # Every column of `items`, typed, positioned from 0, no PK, no comment.
    assert [row[:3] for row in ours["fields"]] == [
        ["id", "int8", 0], ["name", "text", 1], ["qty", "int4", 2],
        ["price", "float8", 3], ["created", "date", 4], ["active", "bool", 5],
    ]
    for key in ["can_connect", "timezone", "enums", "fields", "fks", "indexes"]:
        assert ours[key] == theirs[key], key

    # The table list, less PostgreSQL's live-tuple estimate (Vivace keeps none).
    assert [row[:4] for row in ours["tables"]] == [row[:4] for row in theirs["tables"]] \
        == [["public", "items", "TABLE", None], ["public", "big_items", "VIEW", None]]
    assert [row[4] for row in ours["tables"]] == [None, None]

    # Privileges: external tables are read-only, so only SELECT is granted
    # (PostgreSQL's superuser holds every privilege on its own table).
    public = lambda rows: [row for row in rows if row[1] == "public" and row[2] == "items"]
    assert public(ours["table_privileges"]) == [[None, "public", "items", False, True, False, False]]
    assert public(theirs["table_privileges"]) == [[None, "public", "items", True, True, True, True]]
