"""psql against Vivace and a real PostgreSQL 15 holding the same rows: `\\copy`
to stdout in text and CSV, expanded output (`\\x`), `\\df`, `\\d TABLE` and
`pg_size_pretty` print the same; `\\dt+` runs."""

import subprocess


def psql(port: int, *commands: str) -> str:
    args = ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(port), "-U", "vivace", "vivace"]
    for c in commands:
        args += ["-c", c]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


CASES = {
    "copy_text": [r"\copy (SELECT id, name, qty, price, created, active FROM items ORDER BY id) TO STDOUT"],
    "copy_csv_header": [r"\copy (SELECT name, price FROM items WHERE qty > 0 ORDER BY id) TO STDOUT WITH CSV HEADER"],
    "copy_table": [r"\copy items TO STDOUT WITH (FORMAT csv, DELIMITER '|')"],
    "expanded": [r"\x", "SELECT id, name, created FROM items WHERE active ORDER BY id"],
    "functions": [r"\df"],
    "describe_table": [r"\d items"],
    "size_pretty": ["SELECT pg_size_pretty(8192::bigint), pg_size_pretty(1000000::bigint), "
                    "pg_size_pretty(123456789::bigint), pg_size_pretty(-20000::bigint)"],
}


def test_copy_expanded_output_and_functions_match_postgres(pair):
    vivace, pg = pair
    for name, commands in CASES.items():
        ours = psql(vivace.port, *commands)
        theirs = psql(pg.port, *commands)
        assert ours == theirs, f"{name}:\n--- vivace\n{ours}\n--- postgres\n{theirs}"
    assert "plum's,2" in psql(vivace.port, *CASES["copy_csv_header"])
    assert "-[ RECORD 1 ]" in psql(vivace.port, *CASES["expanded"])
    assert " qty     | integer " in psql(vivace.port, *CASES["describe_table"])


def test_dt_plus_lists_tables_without_sizes(pair):
    """`\\dt+` plans (pg_size_pretty, pg_table_size); external tables show no size.
    Owner and access method differ from PostgreSQL's by design (docs/clients.md)."""
    vivace, _ = pair
    lines = psql(vivace.port, r"\dt+").splitlines()
    header = [c.strip() for c in lines[1].split("|")]
    assert header == ["Schema", "Name", "Type", "Owner", "Persistence", "Access method", "Size", "Description"]
    row = [c.strip() for c in lines[3].split("|")]
    assert row[:3] == ["public", "items", "table"] and row[4] == "permanent" and row[6] == "", row


def test_database_list_states_encoding_and_locale_like_postgres(pair):
    """`\\l`: PostgreSQL's encoding name and the C locale Vivace compares by, as the
    differential cluster (initdb --locale=C) shows them; owners differ by design."""
    vivace, pg = pair
    columns = lambda out, name: [
        [c.strip() for c in line.split("|")][2:7] for line in out.splitlines() if line.split("|")[0].strip() == name
    ]
    ours, theirs = columns(psql(vivace.port, r"\l"), "vivace"), columns(psql(pg.port, r"\l"), "vivace")
    assert ours == theirs == [["UTF8", "C", "C", "", "libc"]]


def test_progress_notices_reach_psql_while_a_query_runs(server):
    """`SET vivace.progress_notices = on`: psql prints a NOTICE with the query's
    progress every few seconds while it has no row yet; the scanned figure grows
    from one to the next. psql is then interrupted (Ctrl-C), which cancels."""
    import re
    import signal

    args = ["psql", "-X", "-h", "127.0.0.1", "-p", str(server.port), "-U", "vivace", "vivace",
            "-c", "SET vivace.progress_notices = on",
            "-c", "SELECT max(v) FROM generate_series(1, 100000000000) AS t(v)"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    notices = []
    try:
        for line in proc.stderr:
            if line.startswith("NOTICE:"):
                notices.append(line.strip())
            if len(notices) == 3:
                break
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert len(notices) == 3, notices
    scanned = []
    for notice in notices:
        m = re.fullmatch(r"NOTICE:  query \d{8}_\d{6}_\d{5} running for [0-9.]+ s: (\d+) rows scanned, 0 rows sent",
                         notice)
        assert m, notice
        scanned.append(int(m.group(1)))
    assert scanned[0] < scanned[1] < scanned[2], notices
    assert "canceling statement due to user request" in rest, rest
