"""psql against Vivace and a real PostgreSQL 15 holding the same rows: `\\copy`
to stdout in text and CSV, expanded output (`\\x`), and `\\df` print the same."""

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
}


def test_copy_expanded_output_and_functions_match_postgres(pair):
    vivace, pg = pair
    for name, commands in CASES.items():
        ours = psql(vivace.port, *commands)
        theirs = psql(pg.port, *commands)
        assert ours == theirs, f"{name}:\n--- vivace\n{ours}\n--- postgres\n{theirs}"
    assert "plum's,2" in psql(vivace.port, *CASES["copy_csv_header"])
    assert "-[ RECORD 1 ]" in psql(vivace.port, *CASES["expanded"])
