"""psycopg2 (what Redash uses) against the real server: transactions as psycopg2
opens them, client-side parameters, result type codes, SQLSTATEs."""

import psycopg2
import pytest

ROWS = [("u1", 5, "2024-01-01"), ("u2", 7, "2024-01-01"), ("u1", 11, "2024-01-02")]


@pytest.fixture
def conn(server, tmp_path):
    data = tmp_path / "csv"
    data.mkdir()
    (data / "t.csv").write_text("user_id,amount,dt\n" + "".join(f"{u},{a},{d}\n" for u, a, d in ROWS))
    conn = psycopg2.connect(server.dsn())
    with conn.cursor() as cur:  # psycopg2 sends BEGIN first: autocommit is off
        cur.execute(f"CREATE EXTERNAL TABLE events STORED AS CSV LOCATION '{data}/'")
    conn.commit()
    yield conn
    conn.close()


def test_parameterised_query_returns_typed_rows(conn):
    with conn.cursor() as cur:
        cur.execute(
            "SELECT user_id, sum(amount) AS total FROM events WHERE dt >= %s AND amount > %s "
            "GROUP BY user_id ORDER BY user_id",
            ("2024-01-01", 5),
        )
        assert cur.fetchall() == [("u1", 11), ("u2", 7)]
        # type codes are PostgreSQL OIDs: text = 25, int8 = 20
        assert [(d.name, d.type_code) for d in cur.description] == [("user_id", 25), ("total", 20)]
    conn.commit()


def test_quotes_in_parameters_stay_data(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM events WHERE user_id = %s", ("x' OR '1'='1",))
        assert cur.fetchone() == (0,)
    conn.rollback()


def test_errors_carry_sqlstate_and_the_connection_recovers(conn):
    with conn.cursor() as cur:
        with pytest.raises(psycopg2.Error) as err:
            cur.execute("SELECT * FROM missing_table")
        assert err.value.pgcode == "42P01"
    conn.rollback()
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM events")
        assert cur.fetchone() == (len(ROWS),)
