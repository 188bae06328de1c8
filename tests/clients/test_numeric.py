"""Numeric results as PostgreSQL gives them: avg, sum, division and round over
numeric(15,2) and integer columns, read through psycopg2 from Vivace (a CSV
external table) and from PostgreSQL 15 (the same rows). Values must be equal
exactly, and Vivace's scale at least PostgreSQL's: Vivace writes PostgreSQL's
rounded value at the fixed scale of its result type (20 decimals here), where
PostgreSQL picks a scale per value, so the text may carry more trailing zeros.
"""

import os
import tempfile
from decimal import Decimal
from pathlib import Path

import psycopg2
import pytest

COLUMNS = "id BIGINT, grp INTEGER, x NUMERIC(15,2), y NUMERIC(15,2), n INTEGER, big BIGINT"
ROWS = [
    (1, 1, "0.05", "3.00", 3, 9223372036854775807),
    (2, 1, "0.05", "7.25", 1, 1),
    (3, 1, "0.04", "0.07", 2, 5),
    (4, 2, "10.00", "3.00", 7, -3),
    (5, 2, "123456.78", "2.00", 11, 1000000),
    (6, 2, "0.01", "12.50", 0, 2),
    (7, 3, "-1999.99", "0.30", 5, 7),
    (8, 3, "2.50", "-1.20", 9, None),
    (9, 3, None, "4.00", None, 11),
]

QUERIES = [
    "SELECT avg(x), sum(x), avg(n), sum(n), count(x) FROM amounts",
    "SELECT grp, avg(x), sum(x), avg(n), sum(n), avg(y) FROM amounts GROUP BY grp ORDER BY grp",
    "SELECT id, x / y, x / n, n / y, round(x / 3, 4), round(x, 1), round(y / 7, 10) "
    "FROM amounts WHERE n <> 0 ORDER BY id",
    "SELECT grp, avg(x) FILTER (WHERE n > 2), avg(DISTINCT x) FROM amounts GROUP BY grp ORDER BY grp",
    "SELECT id, avg(x) OVER (PARTITION BY grp ORDER BY id) FROM amounts ORDER BY id",
    # A bigint sum is numeric and does not overflow.
    "SELECT sum(big), avg(big) FROM amounts WHERE id IN (1, 2)",
    "SELECT sum(big) FROM amounts",
]


@pytest.fixture(scope="module")
def amounts(pair):
    vivace, pg = pair
    with tempfile.TemporaryDirectory(prefix="vivace-amounts-") as tmp:
        root = Path(tmp) / "amounts"
        root.mkdir()
        os.chmod(tmp, 0o755)
        os.chmod(root, 0o755)
        csv = root / "amounts.csv"
        csv.write_text(
            "id,grp,x,y,n,big\n"
            + "".join(",".join("" if v is None else str(v) for v in row) + "\n" for row in ROWS)
        )
        os.chmod(csv, 0o644)
        with psycopg2.connect(vivace.dsn()) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE EXTERNAL TABLE amounts ({COLUMNS}) STORED AS CSV LOCATION '{root}/'")
        pg.psql(f"CREATE TABLE amounts ({COLUMNS})", db="vivace", user="vivace")
        pg.psql(f"COPY amounts FROM '{csv}' WITH (FORMAT csv, HEADER true)", db="vivace")
        try:
            yield vivace, pg
        finally:
            # The pair is shared: other modules expect only its `items` table.
            with psycopg2.connect(vivace.dsn()) as conn, conn.cursor() as cur:
                cur.execute("DROP EXTERNAL TABLE amounts")
            pg.psql("DROP TABLE amounts", db="vivace", user="vivace")


def rows(dsn, sql):
    with psycopg2.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def scale(value: Decimal) -> int:
    return max(0, -value.as_tuple().exponent)


@pytest.mark.parametrize("sql", QUERIES)
def test_numeric_results_equal_postgres(amounts, sql):
    vivace, pg = amounts
    ours, theirs = rows(vivace.dsn(), sql), rows(pg.dsn(), sql)
    assert len(ours) == len(theirs) and ours, (ours, theirs)
    for our_row, their_row in zip(ours, theirs):
        assert our_row == their_row, (sql, our_row, their_row)
        for our, their in zip(our_row, their_row):
            if isinstance(their, Decimal):
                assert isinstance(our, Decimal), (sql, our, their)
                assert scale(our) >= scale(their), (sql, our, their)


def test_avg_rounds_where_it_used_to_truncate(amounts):
    vivace, _ = amounts
    (avg,), = rows(vivace.dsn(), "SELECT avg(x) FROM amounts WHERE id IN (1, 2, 3)")
    # PostgreSQL: 0.04666666666666666667 (DataFusion alone gave 0.046666).
    assert avg == Decimal("0.04666666666666666667")
