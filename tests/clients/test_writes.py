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
