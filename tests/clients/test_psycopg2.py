"""psycopg2 (what Redash uses) against the real server: transactions as psycopg2
opens them, client-side parameters, result type codes, SQLSTATEs. Every test runs
on the pinned psycopg2 (in this process) and on the newest (in a child Python
whose PYTHONPATH leads to VIVACE_PSYCOPG2_NEWEST): see `on_psycopg2`."""

import json
import subprocess
import sys

import psycopg2
import pytest

from driver_matrix import HERE, PSYCOPG2, PythonDriver

ROWS = [("u1", 5, "2024-01-01"), ("u2", 7, "2024-01-01"), ("u1", 11, "2024-01-02")]

# What the child Python runs: one function of this module, its value back as JSON.
CHILD = """
import json, sys
import psycopg2, test_psycopg2
value = getattr(test_psycopg2, sys.argv[1])(*json.loads(sys.argv[2]))
print(json.dumps([psycopg2.__version__.split()[0], value]))
"""


@pytest.fixture(params=PSYCOPG2)
def on_psycopg2(request):
    """`call(fn, *args)`: fn(*args), fn a function of this module, on the psycopg2
    release under test. The pinned one is this process's; any other runs in a child
    Python with its directory first on PYTHONPATH, which returns fn's value through
    JSON (tuples come back as lists, on both sides of a comparison alike)."""
    driver: PythonDriver = request.param
    if driver.directory() is None:
        assert psycopg2.__version__.split()[0] == driver.version()
        return lambda fn, *args: fn(*args)

    def call(fn, *args):
        done = subprocess.run([sys.executable, "-c", CHILD, fn.__name__, json.dumps(args)], capture_output=True,
                              text=True, env=driver.env(str(HERE)), timeout=300)
        assert done.returncode == 0, done.stderr
        version, value = json.loads(done.stdout)
        assert version == driver.version()
        return value

    return call


@pytest.fixture
def events(server, tmp_path):
    """(dsn, directory): a CSV file of ROWS in that directory, for `with_events`."""
    data = tmp_path / "csv"
    data.mkdir()
    (data / "t.csv").write_text("user_id,amount,dt\n" + "".join(f"{u},{a},{d}\n" for u, a, d in ROWS))
    return server.dsn(), str(data)


def with_events(dsn, data, check):
    """Connect, create table `events` over the CSV in `data`, then run check(conn)."""
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:  # psycopg2 sends BEGIN first: autocommit is off
            cur.execute(f"CREATE EXTERNAL TABLE events STORED AS CSV LOCATION '{data}/'")
        conn.commit()
        globals()[check](conn)
    finally:
        conn.close()


def test_parameterised_query_returns_typed_rows(events, on_psycopg2):
    on_psycopg2(with_events, *events, "parameterised_query_returns_typed_rows")


def test_quotes_in_parameters_stay_data(events, on_psycopg2):
    on_psycopg2(with_events, *events, "quotes_in_parameters_stay_data")


def test_errors_carry_sqlstate_and_the_connection_recovers(events, on_psycopg2):
    on_psycopg2(with_events, *events, "errors_carry_sqlstate_and_the_connection_recovers")


def parameterised_query_returns_typed_rows(conn):
    with conn.cursor() as cur:
        cur.execute(
            "SELECT user_id, sum(amount) AS total FROM events WHERE dt >= %s AND amount > %s "
            "GROUP BY user_id ORDER BY user_id",
            ("2024-01-01", 5),
        )
        assert cur.fetchall() == [("u1", 11), ("u2", 7)]
        # type codes are PostgreSQL OIDs: text = 25, numeric = 1700 (as in
        # PostgreSQL, a sum of bigint is numeric: it cannot overflow)
        assert [(d.name, d.type_code) for d in cur.description] == [("user_id", 25), ("total", 1700)]
    conn.commit()


def quotes_in_parameters_stay_data(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM events WHERE user_id = %s", ("x' OR '1'='1",))
        assert cur.fetchone() == (0,)
    conn.rollback()


def errors_carry_sqlstate_and_the_connection_recovers(conn):
    with conn.cursor() as cur:
        with pytest.raises(psycopg2.Error) as err:
            cur.execute("SELECT * FROM missing_table")
        assert err.value.pgcode == "42P01"
    conn.rollback()
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM events")
        assert cur.fetchone() == (len(ROWS),)


# --- Differential: the same psycopg2 calls against Vivace and PostgreSQL 15 ------

# Redash's PostgreSQL schema browser query (redash/query_runner/pg.py).
REDASH_SCHEMA_QUERY = """
SELECT s.nspname as table_schema,
       c.relname as table_name,
       a.attname as column_name,
       null as data_type
FROM pg_class c
JOIN pg_namespace s
ON c.relnamespace = s.oid
AND s.nspname NOT IN ('pg_catalog', 'information_schema')
JOIN pg_attribute a
ON a.attrelid = c.oid
AND a.attnum > 0
AND NOT a.attisdropped
WHERE c.relkind IN ('m', 'f', 'p')
AND has_table_privilege(s.nspname || '.' || c.relname, 'select')
AND has_schema_privilege(s.nspname, 'usage')

UNION

SELECT table_schema,
       table_name,
       column_name,
       data_type
FROM information_schema.columns
WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
"""


def psycopg2_outcome(dsn):
    """What Redash-style psycopg2 use sees: server-side cursors, type codes,
    the schema browser, COPY TO STDOUT in each format."""
    import io

    out = {}
    conn = psycopg2.connect(dsn)
    try:
        # A named cursor is server-side: DECLARE ... CURSOR WITHOUT HOLD, then
        # FETCH FORWARD itersize per round trip, CLOSE at the end.
        with conn.cursor(name="paged") as cur:
            cur.itersize = 3
            cur.execute("SELECT id, name, qty, price, created, active FROM items ORDER BY id")
            out["named_rows"] = [[str(v) for v in row] for row in cur]
            out["named_description"] = [(d.name, d.type_code) for d in cur.description]
        conn.commit()
        with conn.cursor(name="many") as cur:
            cur.execute("SELECT id FROM items WHERE qty > %s ORDER BY id", (0,))
            out["fetchmany"] = [cur.fetchmany(2), cur.fetchmany(2), cur.fetchone()]
        conn.rollback()
        with conn.cursor() as cur:
            cur.execute("DECLARE held CURSOR WITH HOLD FOR SELECT name FROM items ORDER BY id")
            conn.commit()  # WITH HOLD survives the commit
            cur.execute("FETCH 2 FROM held")
            out["held"] = [cur.statusmessage, cur.fetchall()]
            cur.execute("FETCH ALL FROM held")
            out["held_rest"] = [cur.statusmessage, cur.fetchall()]
            cur.execute("CLOSE held")
            out["close"] = cur.statusmessage
            try:
                cur.execute("FETCH 1 FROM held")
                out["closed_fetch"] = "no error"
            except psycopg2.Error as e:
                out["closed_fetch"] = e.pgcode
            conn.rollback()
            cur.execute(
                "SELECT id, name, qty, price, created, active, qty * price AS total, "
                "count(*) OVER () AS n FROM items WHERE id > %s ORDER BY id",
                (1,),
            )
            out["description"] = [(d.name, d.type_code) for d in cur.description]
            out["rows"] = [[str(v) for v in row] for row in cur.fetchall()]
            cur.execute(REDASH_SCHEMA_QUERY)
            out["redash_schema"] = sorted(tuple(r) for r in cur.fetchall() if r[1] == "items")
            for name, sql in [
                ("copy_text", "COPY (SELECT id, name, price, created, active FROM items ORDER BY id) TO STDOUT"),
                ("copy_csv", "COPY (SELECT id, name, created FROM items ORDER BY id) TO STDOUT "
                             "WITH (FORMAT csv, HEADER true)"),
                ("copy_binary", "COPY (SELECT id, name, qty, created FROM items ORDER BY id) TO STDOUT "
                                "WITH (FORMAT binary)"),
                ("copy_table", "COPY items (id, name) TO STDOUT WITH CSV"),
                ("copy_empty", "COPY (SELECT id FROM items WHERE id < 0) TO STDOUT"),
            ]:
                buf = io.BytesIO()
                cur.copy_expert(sql, buf)
                out[name] = [buf.getvalue().hex() if name == "copy_binary" else buf.getvalue().decode(),
                             cur.rowcount]
            try:
                cur.copy_expert("COPY items FROM STDIN", io.BytesIO(b""))
                out["copy_from"] = "no error"
            except psycopg2.Error as e:
                out["copy_from"] = "refused"
        conn.rollback()
    finally:
        conn.close()
    return out


def test_cursors_type_codes_redash_schema_and_copy_match_postgres(pair, on_psycopg2):
    vivace, pg = pair
    ours = on_psycopg2(psycopg2_outcome, vivace.dsn())
    theirs = on_psycopg2(psycopg2_outcome, pg.dsn())
    assert len(ours["named_rows"]) == 4
    assert ours["held"][0] == "FETCH 2"
    assert ours["closed_fetch"] == "34000"
    # Vivace is read-only and refuses COPY FROM; PostgreSQL loads the empty input.
    assert ours.pop("copy_from") == "refused"
    assert theirs.pop("copy_from") == "no error"
    assert ours == theirs


def temp_table_outcome(dsn):
    """Tableau's connect check (a temp table created and dropped in a transaction),
    then a temp table used and looked for from another session."""
    out = {}
    conn = psycopg2.connect(dsn)
    other = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute('CREATE LOCAL TEMPORARY TABLE "#Tableau_37_2_Connect_Check" ("COL" INTEGER) '
                        "ON COMMIT PRESERVE ROWS")
            out["create"] = cur.statusmessage
            cur.execute('DROP TABLE "#Tableau_37_2_Connect_Check"')
            out["drop"] = cur.statusmessage
            conn.commit()
            cur.execute("CREATE TEMP TABLE scratch (id BIGINT, label TEXT)")
            cur.execute("INSERT INTO scratch VALUES (1, 'one'), (%s, %s)", (2, "it's"))
            out["insert"] = [cur.statusmessage, cur.rowcount]
            cur.execute("INSERT INTO scratch SELECT id, name FROM items WHERE id > 2")
            out["insert_select"] = cur.statusmessage
            conn.commit()
            cur.execute("SELECT s.id, s.label, i.name FROM scratch s LEFT JOIN items i USING (id) ORDER BY 1")
            out["scratch"] = cur.fetchall()
            try:
                cur.execute("INSERT INTO items (id) VALUES (99)")
                out["insert_external"] = "accepted"
            except psycopg2.Error as e:
                out["insert_external"] = e.pgcode
            conn.rollback()
        with other.cursor() as cur:
            try:
                cur.execute("SELECT count(*) FROM scratch")
                out["other_session"] = "visible"
            except psycopg2.Error as e:
                out["other_session"] = e.pgcode
    finally:
        conn.close()
        other.close()
    return out


def test_tableau_connect_check_and_session_temp_tables_match_postgres(pair, on_psycopg2):
    vivace, pg = pair
    ours = on_psycopg2(temp_table_outcome, vivace.dsn())
    assert ours["other_session"] == "42P01"
    assert ours["insert"] == ["INSERT 0 2", 2]
    # The pair's Vivace is read-only (42501); PostgreSQL's table takes the row.
    assert ours.pop("insert_external") == "42501"
    theirs = on_psycopg2(temp_table_outcome, pg.dsn())
    assert theirs.pop("insert_external") == "accepted"
    assert ours == theirs
