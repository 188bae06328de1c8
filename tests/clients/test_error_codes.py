"""User mistakes get PostgreSQL's SQLSTATE, never XX000 (internal error).

A corpus of bad statements is run against Vivace and PostgreSQL 15 and both
must answer with the code listed; then statements generated from two small
grammars (seeded, so failures reproduce) must never be answered with XX000 or
a lost connection."""

import random
import re

import psycopg2
import pytest

# (statement, SQLSTATE both servers give)
CORPUS = [
    ("EXECUTE nope", "26000"),
    ("DEALLOCATE nope", "26000"),
    ("SELECT sqrt(-1)", "2201F"),
    ("SELECT sqrt(-1.0::numeric)", "2201F"),
    ("SELECT power(0, -1)", "2201F"),
    ("SELECT abs(-9223372036854775808)", "22003"),
    ("SELECT abs((-2147483648)::int)", "22003"),
    ("SELECT 99999::numeric(3,1)", "22003"),
    ("SELECT factorial(-1)", "22003"),
    ("SELECT true BETWEEN 1 AND 2", "42883"),
    ("SELECT (-INTERVAL '1 month') BETWEEN TIMESTAMP '2024-01-01' AND NULL", "42883"),
    ("SELECT ARRAY[1, DATE '2024-01-01']", "42804"),
    ("SELECT md5(1)", "42883"),
    ("SELECT nosuchfn(1)", "42883"),
    ("SELECT nosuchcol", "42703"),
    ("SELECT x FROM nosuch", "42P01"),
    ("SELECT 1/0", "22012"),
    ("SELECT 1.00::numeric / 0", "22012"),
    ("SELECT 'abc'::int", "22P02"),
    ("SELECT 'a' ~ '('", "2201B"),
    ("SELECT regexp_replace('a', '(', 'b')", "2201B"),
    ("SELECT substr('abc', 1, -1)", "22011"),
    ("SELECT date_trunc('foo', now())", "22023"),
    ("SELECT extract(foo FROM now())", "22023"),
    ("SELECT json_build_object('a')", "22023"),
    ("SELECT json_build_object(NULL::text, 1)", "22023"),
    ("SELECT 'a' LIKE 'a' ESCAPE 'ab'", "22025"),
    ("SELECT i FROM (VALUES (1), (2)) t(i) GROUP BY 1 + 1", "42803"),
    ("SELEC 1", "42601"),
    ("PREPARE p AS SELECT $1::int; PREPARE p AS SELECT 1", "42P05"),
    ("PREPARE q(int) AS SELECT $1; EXECUTE q(1, 2)", "42601"),
    ("SELECT " + "ARRAY[" * 50 + "1" + "]" * 50, "54000"),
]

# Vivace's own limits, where PostgreSQL answers instead (docs/limits.md).
VIVACE_ONLY = [
    ("SELECT " + "(" * 60 + "1" + ")" * 60, "54001"),
    ("SELECT 1" + " + 1" * 1500, "54001"),
    ("SELECT row_number() OVER (ORDER BY INTERVAL '1 day')", "0A000"),
]


def code_of(dsn, sql):
    with psycopg2.connect(dsn) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            try:
                cur.execute(sql)
                cur.fetchall()
                return "ok"
            except psycopg2.Error as e:
                return e.pgcode


@pytest.mark.parametrize("sql,code", CORPUS, ids=[s[:40] for s, _ in CORPUS])
def test_corpus_codes_match_postgres(pair, sql, code):
    vivace, pg = pair
    assert code_of(pg.dsn(), sql) == code, "the corpus must hold PostgreSQL's answer"
    assert code_of(vivace.dsn(), sql) == code


@pytest.mark.parametrize("sql,code", VIVACE_ONLY, ids=[s[:40] for s, _ in VIVACE_ONLY])
def test_documented_limits(pair, sql, code):
    vivace, _ = pair
    assert code_of(vivace.dsn(), sql) == code


# --- generated statements ------------------------------------------------------

ROW_TABLE = (
    "(VALUES (1, 9223372036854775807::bigint, 1.5::double precision, 'abc', DATE '2024-01-31', "
    "12.34::numeric(10,2), true, TIMESTAMP '2024-01-01 10:00:00', INTERVAL '1 day'), "
    "(-2, -9223372036854775808::bigint, -0.0::double precision, '', DATE '1999-12-31', "
    "-0.01::numeric(10,2), false, TIMESTAMP '1970-01-01 00:00:00', INTERVAL '-3 hours'), "
    "(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)) AS t(i, b, f, s, d, n, l, ts, iv)"
)
COLUMNS = ["i", "b", "f", "s", "d", "n", "l", "ts", "iv"]
LITERALS = ["0", "1", "-1", "2147483647", "-2147483648", "9223372036854775807", "1.5", "0.0",
            "'NaN'::float8", "'Infinity'::float8", "'abc'", "''", "'2024-02-30'", "NULL", "true",
            "DATE '2024-01-01'", "TIMESTAMP '2024-01-01 00:00:00'", "INTERVAL '1 month'", "1e308",
            "12345678901234567890", "'{1,2}'", "ARRAY[1,2]", "ARRAY['a']", "' 3 '"]
TYPES = ["int", "bigint", "smallint", "text", "date", "timestamp", "timestamptz", "numeric",
         "numeric(5,2)", "double precision", "real", "boolean", "interval", "bytea", "int[]",
         "text[]", "time", "char(2)", "regclass"]
FUNCTIONS = [("abs", 1), ("sqrt", 1), ("ln", 1), ("log", 2), ("exp", 1), ("power", 2), ("round", 2),
             ("trunc", 1), ("ceil", 1), ("mod", 2), ("length", 1), ("substr", 3), ("upper", 1),
             ("concat", 2), ("repeat", 2), ("lpad", 3), ("left", 2), ("replace", 3), ("strpos", 2),
             ("split_part", 3), ("btrim", 1), ("md5", 1), ("chr", 1), ("ascii", 1), ("coalesce", 2),
             ("nullif", 2), ("greatest", 2), ("least", 3), ("date_trunc", 2), ("date_part", 2),
             ("to_char", 2), ("to_timestamp", 1), ("make_date", 3), ("array_length", 2),
             ("cardinality", 1), ("array_to_string", 2), ("gcd", 2), ("factorial", 1),
             ("json_build_object", 2), ("regexp_replace", 3), ("starts_with", 2), ("to_hex", 1)]
AGGREGATES = ["count", "sum", "avg", "min", "max", "stddev", "bool_and", "string_agg", "array_agg"]
OPERATORS = ["+", "-", "*", "/", "%", "||", "=", "<>", "<", ">=", "AND", "OR", "LIKE", "ILIKE",
             "~", "IS DISTINCT FROM", "&", "|"]


def expression(rng, depth):
    if depth <= 0 or rng.random() < 0.25:
        return rng.choice(LITERALS) if rng.random() < 0.5 else rng.choice(COLUMNS)
    kind = rng.randrange(11)
    sub = lambda: expression(rng, depth - 1)  # noqa: E731
    if kind == 0:
        return f"({sub()} {rng.choice(OPERATORS)} {sub()})"
    if kind == 1:
        return f"CAST({sub()} AS {rng.choice(TYPES)})"
    if kind == 2:
        name, arity = rng.choice(FUNCTIONS)
        return f"{name}({', '.join(sub() for _ in range(arity))})"
    if kind == 3:
        return f"CASE WHEN {sub()} THEN {sub()} ELSE {sub()} END"
    if kind == 4:
        return f"{sub()} BETWEEN {sub()} AND {sub()}"
    if kind == 5:
        return f"{sub()} IN ({sub()}, {sub()})"
    if kind == 6:
        return f"{sub()} IS {rng.choice(['NULL', 'NOT NULL', 'TRUE'])}"
    if kind == 7:
        return f"(-{sub()})"
    if kind == 8:
        return f"ARRAY[{sub()}, {sub()}]"
    if kind == 9:
        return f"EXTRACT({rng.choice(['year', 'epoch', 'dow', 'foo'])} FROM {sub()})"
    return f"(SELECT {sub()})"


def statement(rng):
    e = expression(rng, rng.randrange(1, 4))
    kind = rng.randrange(7)
    if kind == 0:
        return f"SELECT {e}"
    if kind == 1:
        return f"SELECT {e} FROM {ROW_TABLE}"
    if kind == 2:
        return f"SELECT {rng.choice(AGGREGATES)}({e}) FROM {ROW_TABLE}"
    if kind == 3:
        return f"SELECT i, {rng.choice(AGGREGATES)}({e}) FROM {ROW_TABLE} GROUP BY i ORDER BY 1"
    if kind == 4:
        return (f"SELECT * FROM {ROW_TABLE} WHERE {e} ORDER BY {rng.choice(COLUMNS)} "
                f"LIMIT {rng.choice(['1', '0', '-1', 'NULL'])}")
    if kind == 5:
        return f"SELECT {e}, row_number() OVER (PARTITION BY {rng.choice(COLUMNS)} ORDER BY i) FROM {ROW_TABLE}"
    return f"WITH w AS (SELECT {e} AS x FROM {ROW_TABLE}) SELECT x, count(*) FROM w GROUP BY x"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_generated_statements_never_get_internal_errors(pair, seed):
    vivace, _ = pair
    rng = random.Random(seed)
    conn = psycopg2.connect(vivace.dsn())
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SET statement_timeout = '10s'")
    internal = {}
    for _ in range(700):
        sql = statement(rng)
        try:
            cur.execute(sql)
            cur.fetchall()
        except psycopg2.Error as e:
            assert not conn.closed, f"the connection was lost on: {sql}"
            if e.pgcode in (None, "XX000"):
                message = str(e).split("\n")[0]
                internal.setdefault(re.sub(r"\d+", "N", message)[:80], (message, sql))
    conn.close()
    assert not internal, "\n".join(f"{m}\n    {s}" for m, s in internal.values())
