"""Files Vivace writes are standard Parquet: pyarrow and DuckDB read back the
rows `CREATE TABLE … AS` and `INSERT` wrote (Hive partition folders included),
and with `SORTED BY` every file is sorted."""

import psycopg2
import duckdb
import pyarrow.dataset as ds
import pyarrow.parquet as pq

EVENTS = ("SELECT (value * 7919) % 10007 AS user_id, value AS amount, "
          "'2024-03-0' || CAST(1 + value % 4 AS VARCHAR) AS dt FROM generate_series(1, {n})")


def rows(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def test_pyarrow_and_duckdb_read_what_vivace_wrote(server, tmp_path):
    out = tmp_path / "events_pq"
    conn = psycopg2.connect(server.dsn())
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE events_pq STORED AS PARQUET PARTITIONED BY (dt) SORTED BY (user_id) "
                    f"LOCATION '{out}/' AS {EVENTS.format(n=50000)}")
        assert cur.rowcount == 50000
        cur.execute(f"INSERT INTO events_pq {EVENTS.format(n=1000)}")
        assert cur.rowcount == 1000
    ours = sorted(rows(conn, "SELECT user_id, amount, dt FROM events_pq"))
    assert len(ours) == 51000

    table = ds.dataset(str(out), format="parquet", partitioning="hive").to_table()
    theirs = sorted(zip(*(table.column(c).to_pylist() for c in ("user_id", "amount", "dt"))))
    assert theirs == ours

    duck = duckdb.connect()
    assert sorted(duck.execute(
        f"SELECT user_id, amount, CAST(dt AS VARCHAR) FROM read_parquet('{out}/**/*.parquet', hive_partitioning = true)"
    ).fetchall()) == ours

    files = sorted(out.rglob("*.parquet"))
    # Four partitions, written twice: two files each, each sorted by user_id.
    assert len(files) == 8, files
    assert not list(out.glob("_vivace_staging*"))
    for f in files:
        user_ids = pq.read_table(f).column("user_id").to_pylist()
        assert user_ids == sorted(user_ids), f
    conn.close()


def test_parameterised_inserts_type_their_parameters_as_the_columns(server, tmp_path):
    """asyncpg sends `$n` as the types the server describes: VALUES parameters
    take their column's type, as PostgreSQL infers them."""
    import asyncio
    import datetime

    import asyncpg

    async def run():
        conn = await asyncpg.connect(host="127.0.0.1", port=server.port, user="vivace", database="vivace")
        try:
            await conn.execute(f"CREATE TABLE t STORED AS PARQUET PARTITIONED BY (b) LOCATION '{tmp_path}/t/' "
                               "AS SELECT 1::bigint AS a, DATE '2024-01-01' AS d, 'x' AS b")
            assert await conn.execute("INSERT INTO t VALUES ($1, $2, $3)",
                                      2, datetime.date(2024, 1, 2), "y") == "INSERT 0 1"
            await conn.executemany("INSERT INTO t (a, d, b) VALUES ($1, $2, $3)",
                                   [(10, datetime.date(2024, 2, 1), "m"), (11, datetime.date(2024, 2, 2), "m")])
            assert await conn.execute("INSERT OVERWRITE t PARTITION (b = 'y') VALUES ($1, $2)",
                                      5, datetime.date(2024, 1, 5)) == "INSERT 0 1"
            return [tuple(r) for r in await conn.fetch("SELECT a, d, b FROM t ORDER BY a")]
        finally:
            await conn.close()

    assert asyncio.run(run()) == [
        (1, datetime.date(2024, 1, 1), "x"),
        (5, datetime.date(2024, 1, 5), "y"),
        (10, datetime.date(2024, 2, 1), "m"),
        (11, datetime.date(2024, 2, 2), "m"),
    ]
