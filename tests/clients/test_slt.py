"""SQL logic tests for the PostgreSQL-compatibility layer (coordinator/src/pgcompat):
each `.slt` file in tests/slt holds statements, what PostgreSQL 15 answers and,
where Vivace knowingly answers otherwise, what Vivace answers. Every record runs
against both servers of the `pair` fixture (table `items` loaded in each) over
psycopg2, with every value read as the server's text.

Format (after sqllogictest):

    # comment
    statement ok                     -- runs on both; must succeed
    SET datestyle = 'ISO, MDY'

    statement error 22023            -- must fail with this SQLSTATE on both
    SELECT has_table_privilege('items', 'sellect')

    query [rowsort]                  -- result: a header line `name:type` per
    SELECT 1 AS a, 'x'::text AS b    -- column (tab-separated), then one line
    ----                             -- per row, values tab-separated, NULL as
    a:int4	b:text                    -- NULL; `rowsort` compares rows sorted
    1	x
    ---- vivace                      -- optional: Vivace's answer where it
    ...                              -- differs, with the reason in a comment

A record header may end in `@vivace` or `@postgres` to run on one server only
(set-up that only one of them needs, such as CREATE EXTERNAL TABLE).

`VIVACE_SLT_REWRITE=1` rewrites the files with the answers the servers give
(PostgreSQL's first, then Vivace's where it differs), for review before commit.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import psycopg2.extensions
import pytest

SLT_DIR = Path(__file__).resolve().parents[1] / "slt"
FILES = sorted(SLT_DIR.glob("*.slt"))
REWRITE = os.environ.get("VIVACE_SLT_REWRITE") == "1"


@dataclass
class Record:
    line: int
    kind: str  # "statement" or "query"
    args: list
    only: str | None
    sql: str
    comments: list = field(default_factory=list)
    postgres: list | None = None
    vivace: list | None = None


def parse(path: Path) -> tuple[list, list]:
    """The file's records (comment blocks of their own as lists of lines), and
    the comment lines that end it."""
    lines = path.read_text().split("\n")
    records, comments, i = [], [], 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            if comments:
                records.append(comments)
                comments = []
            i += 1
            continue
        if line.startswith("#"):
            comments.append(line)
            i += 1
            continue
        words = line.split()
        only = None
        if words[-1].startswith("@"):
            only = words.pop()[1:]
            assert only in ("vivace", "postgres"), f"{path}:{i + 1}: unknown target {only}"
        assert words[0] in ("statement", "query"), f"{path}:{i + 1}: unknown record {line!r}"
        start = i + 1
        i += 1
        sql = []
        while i < len(lines) and lines[i].strip() and lines[i] != "----":
            sql.append(lines[i])
            i += 1
        record = Record(start, words[0], words[1:], only, "\n".join(sql), comments)
        comments = []
        if record.kind == "query" and i < len(lines) and lines[i] == "----":
            # A query without an answer yet is one to fill in with VIVACE_SLT_REWRITE.
            record.postgres, i = read_block(lines, i + 1)
            if i < len(lines) and lines[i] == "---- vivace":
                record.vivace, i = read_block(lines, i + 1)
        records.append(record)
    return records, comments


def read_block(lines, i):
    block = []
    while i < len(lines) and lines[i].strip() and not lines[i].startswith("----"):
        block.append(lines[i])
        i += 1
    return block, i


def text_connection(dsn: str):
    """A connection that reads every value as the server's text."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    raw = psycopg2.extensions.new_type(
        tuple(psycopg2.extensions.string_types.keys()), "RAW", lambda value, cur: value
    )
    psycopg2.extensions.register_type(raw, conn)
    return conn


class Side:
    """One server's connection, and its type names by OID."""

    def __init__(self, name: str, dsn: str, type_names: dict):
        self.name = name
        self.conn = text_connection(dsn)
        self.type_names = type_names

    def run(self, record: Record) -> list:
        """The answer as the file writes it: `ok`, `error SQLSTATE`, or result lines."""
        with self.conn.cursor() as cur:
            try:
                cur.execute(record.sql)
            except psycopg2.Error as e:
                message = (e.pgerror or str(e)).strip().split("\n")[0]
                return [f"error {e.pgcode}", f"  ({message.removeprefix('ERROR:').strip()})"]
            if record.kind == "statement":
                return ["ok"]
            header = "\t".join(
                f"{col.name}:{self.type_names.get(col.type_code, col.type_code)}"
                for col in cur.description
            )
            rows = ["\t".join("NULL" if v is None else str(v) for v in row) for row in cur.fetchall()]
            if "rowsort" in record.args:
                rows.sort()
            return [header] + rows


def expected(record: Record, side: str) -> list:
    if record.kind == "statement":
        return ["ok"] if record.args == ["ok"] else [f"error {record.args[1]}"]
    if side == "vivace" and record.vivace is not None:
        return record.vivace
    return record.postgres or ["(no answer recorded)"]


def matches(record: Record, want: list, got: list) -> bool:
    if record.kind == "statement" or (got and got[0].startswith("error ")):
        return got[:1] == want[:1]
    if "rowsort" in record.args:
        return want[:1] == got[:1] and sorted(want[1:]) == sorted(got[1:])
    return want == got


def render(records: list, trailing: list, answers: dict) -> str:
    out = []
    for record in records:
        if isinstance(record, list):
            out += record + [""]
            continue
        out += record.comments
        header = " ".join([record.kind] + record.args + ([f"@{record.only}"] if record.only else []))
        out.append(header)
        out.append(record.sql)
        if record.kind == "query":
            pg, viv = answers[record.line]
            first = pg if pg is not None else viv
            out.append("----")
            out += first
            if pg is not None and viv is not None and viv != pg:
                out.append("---- vivace")
                out += viv
        out.append("")
    out += trailing
    return "\n".join(out).rstrip("\n") + "\n"


@pytest.fixture(scope="module")
def sides(pair):
    vivace, pg = pair
    with psycopg2.connect(pg.dsn()) as conn, conn.cursor() as cur:
        cur.execute("SELECT oid, typname FROM pg_type")
        names = dict(cur.fetchall())
    result = {"postgres": Side("postgres", pg.dsn(), names), "vivace": Side("vivace", vivace.dsn(), names)}
    yield result
    for side in result.values():
        side.conn.close()


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_slt(sides, path):
    records, trailing = parse(path)
    failures, answers = [], {}
    for record in records:
        if isinstance(record, list):
            continue
        got = {}
        for name, side in sides.items():
            if record.only in (None, name):
                got[name] = side.run(record)
        answers[record.line] = (got.get("postgres"), got.get("vivace"))
        for name, answer in got.items():
            want = expected(record, name)
            if REWRITE and record.kind == "query":
                continue
            if not matches(record, want, answer):
                failures.append(
                    f"{path.name}:{record.line} on {name}:\n{record.sql}\n"
                    f"-- expected:\n" + "\n".join(want) + "\n-- got:\n" + "\n".join(answer)
                )
    if REWRITE:
        path.write_text(render(records, trailing, answers))
    assert not failures, "\n\n".join(failures)


def test_files_exist():
    """The directory holds the shims' cases (an empty glob would pass silently)."""
    assert len(FILES) >= 5, FILES
    for path in FILES:
        records, _ = parse(path)
        assert any(isinstance(r, Record) and r.kind == "query" for r in records), path
