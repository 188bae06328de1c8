#!/usr/bin/env python3
"""The PostgreSQL connector against PostgreSQL itself (issue 5, point 10).

Starts a throwaway PostgreSQL 15 (Debian's /usr/lib/postgresql/15/bin, run as the
`postgres` OS user when we are root) on a private port with pg_stat_statements,
loads a 10M-row table with generate_series, starts a release `vivace serve`,
registers the table with `STORED AS POSTGRES`, and runs each query both through
Vivace and directly on PostgreSQL (psycopg2, same role, same TCP path). For each
query it reports:

  time ratio   median Vivace time / median direct time (after one warm-up run)
  rows ratio   rows PostgreSQL sent to Vivace (the `rows` column of
               pg_stat_statements for Vivace's role, after a reset) / rows the
               client received

Targets (issue 5): rows moved <= 1.1x rows returned, time <= 1.3x direct.
Answers through Vivace are checked equal to PostgreSQL's. The report replaces the
"PostgreSQL connector" section of the output file and keeps everything else.

  cargo build --release --bin vivace
  pip install psycopg2-binary==2.9.10
  python3 benches/postgres.py --binary target/release/vivace --rows 10000000 --runs 5
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

import psycopg2

from benchlib import free_port, machine, source_commit, wait_port

ROOT = Path(__file__).resolve().parents[1]
PG_BIN = Path("/usr/lib/postgresql/15/bin")
ROLE = "bench_reader"
PASSWORD = "bench-Pa55word-not-secret"
DATABASE = "bench"
SECTION = "# PostgreSQL connector"

QUERIES = [
    ("selective, indexed key range",
     "SELECT id, customer, amount, day FROM sales WHERE id BETWEEN {mid} AND {mid} + 1000"),
    ("selective, unindexed equality",
     "SELECT id, amount, day FROM sales WHERE customer = 'c42'"),
    ("aggregate, GROUP BY 1,000 groups",
     "SELECT customer, count(*) AS n, sum(amount) AS total FROM sales GROUP BY customer"),
    ("aggregate, filtered, 12 groups",
     "SELECT CAST(date_trunc('month', day) AS DATE) AS month, count(*) AS n, sum(amount) AS total FROM sales "
     "WHERE day >= DATE '2021-01-01' AND day < DATE '2022-01-01' GROUP BY 1"),
]






class Postgres:
    """A throwaway PostgreSQL 15 cluster owned by the `postgres` OS user."""

    def __init__(self, root: Path):
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        subprocess.run(self.as_postgres + [str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                                           "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                                           "--locale=C"], check=True, stdout=subprocess.DEVNULL)
        opts = (f"-p {self.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track_utility=off "
                "-c shared_buffers=1GB")
        subprocess.run(self.as_postgres + [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l",
                                           str(root / "pg.log"), "-o", opts, "-w", "start"],
                       check=True, stdout=subprocess.DEVNULL)
        wait_port(self.port, None, "postgres")

    def superuser(self, dbname=DATABASE):
        conn = psycopg2.connect(host=str(self.root), port=self.port, user="postgres", dbname=dbname)
        conn.autocommit = True
        return conn

    def reader(self):
        """The role Vivace uses, over TCP, for the direct measurements."""
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=ROLE, password=PASSWORD,
                                dbname=DATABASE)
        conn.autocommit = True
        return conn

    def load(self, rows: int):
        with closing(self.superuser("postgres")) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'")
            cur.execute(f"CREATE DATABASE {DATABASE}")
        with closing(self.superuser()) as conn, conn.cursor() as cur:
            cur.execute("CREATE EXTENSION pg_stat_statements")
            start = time.perf_counter()
            cur.execute(f"""
                CREATE TABLE sales AS
                SELECT g::bigint AS id,
                       'c' || (g % 1000) AS customer,
                       ((g::bigint * 7919) % 100000 / 100.0)::numeric(12,2) AS amount,
                       DATE '2020-01-01' + (g % 1461)::int AS day
                FROM generate_series(1, {rows}) AS g""")
            cur.execute("ALTER TABLE sales ADD PRIMARY KEY (id)")
            cur.execute("VACUUM ANALYZE sales")
            cur.execute(f"GRANT SELECT ON sales TO {ROLE}")
            cur.execute("SELECT pg_size_pretty(pg_total_relation_size('sales'))")
            size = cur.fetchone()[0]
            print(f"loaded {rows} rows ({size}) in {time.perf_counter() - start:.0f}s", flush=True)
            return size

    def reset_statements(self):
        with closing(self.superuser()) as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_stat_statements_reset()")

    def statements(self):
        """(rows, query) of every statement Vivace's role ran since the reset."""
        with closing(self.superuser()) as conn, conn.cursor() as cur:
            cur.execute("SELECT rows, query FROM pg_stat_statements "
                        "WHERE userid = %s::regrole AND dbid = (SELECT oid FROM pg_database "
                        "WHERE datname = %s)", (ROLE, DATABASE))
            return cur.fetchall()

    def stop(self):
        subprocess.run(self.as_postgres + [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                                           "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Vivace:
    def __init__(self, binary: str, workdir: Path):
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, BENCH_PG_PASSWORD=PASSWORD)
        self.log = open(workdir / "vivace.log", "w")
        self.proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir",
                                      str(workdir / "data")], stdout=self.log, stderr=subprocess.STDOUT, env=env)
        wait_port(self.port, self.proc, "vivace")

    def connect(self):
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="vivace", dbname="vivace")
        conn.autocommit = True
        return conn

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def timed_pair(direct, through, sql, runs, min_seconds=2.0, max_runs=500):
    """(direct median s, Vivace median s, direct rows, Vivace rows).

    One warm-up run each, then runs alternate between the two connections, so
    both sample the same machine conditions (the development machines are shared
    and their speed drifts by tens of percent over minutes). At least `runs` runs
    each, and more until `min_seconds` have passed, so a millisecond query gets
    hundreds of samples, not five. Connections are autocommit and never used as
    context managers (psycopg2 2.9 would open a transaction)."""
    samples = {"direct": [], "vivace": []}
    answers = {}
    with direct.cursor() as d, through.cursor() as v:
        cursors = {"direct": d, "vivace": v}
        for name, cur in cursors.items():
            cur.execute(sql)
            answers[name] = cur.fetchall()
        started = time.perf_counter()
        while len(samples["direct"]) < max_runs and (
                len(samples["direct"]) < runs or time.perf_counter() - started < min_seconds):
            for name, cur in cursors.items():
                start = time.perf_counter()
                cur.execute(sql)
                cur.fetchall()
                samples[name].append(time.perf_counter() - start)
    return (statistics.median(samples["direct"]), statistics.median(samples["vivace"]),
            answers["direct"], answers["vivace"], len(samples["direct"]))


def normalise(rows):
    return sorted(tuple(str(v) for v in row) for row in rows)




def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True, help="a release build of vivace")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "benches" / "RESULTS.md")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="vivace-pg-bench-"))
    os.chmod(work, 0o755)
    pg = Postgres(work / "pg")
    vivace = None
    results = []
    try:
        size = pg.load(args.rows)
        vivace = Vivace(args.binary, work / "vivace")
        with closing(vivace.connect()) as v, v.cursor() as cur:
            cur.execute(f"CREATE EXTERNAL TABLE sales STORED AS POSTGRES "
                        f"LOCATION 'postgres://{ROLE}@127.0.0.1:{pg.port}/{DATABASE}' "
                        "OPTIONS ('table' 'public.sales', 'password_env' 'BENCH_PG_PASSWORD', "
                        "'sslmode' 'disable')")
        direct, through = pg.reader(), vivace.connect()
        for label, sql in QUERIES:
            sql = sql.format(mid=args.rows // 2)
            # One run alone between a reset and a read of pg_stat_statements: the
            # rows PostgreSQL produced for Vivace's statements (after a warm-up
            # run, so the pool's first-connection check is not counted).
            with through.cursor() as cur:
                cur.execute(sql)
                cur.fetchall()
            pg.reset_statements()
            with through.cursor() as cur:
                cur.execute(sql)
                returned = len(cur.fetchall())
            stmts = pg.statements()
            moved = sum(r for r, _ in stmts)
            remote_sql = " ; ".join(q for _, q in stmts)
            t_direct, t_vivace, expected, answer, runs = timed_pair(direct, through, sql, args.runs)
            if normalise(answer) != normalise(expected):
                sys.exit(f"{label}: Vivace's answer differs from PostgreSQL's")
            results.append(dict(label=label, sql=sql, direct=t_direct, vivace=t_vivace, returned=returned,
                                moved=moved, remote=remote_sql, statements=len(stmts), runs=runs))
            for rows, query in stmts:
                print(f"  remote ({rows} rows): {query}", flush=True)
            print(f"{label}: direct {t_direct:.4f}s, vivace {t_vivace:.4f}s ({runs} runs each), rows "
                  f"returned {returned}, moved {moved} in {len(stmts)} statement(s)", flush=True)
        # The floor every query pays: the wire protocol, parsing and planning,
        # with no source involved.
        floor_direct, floor_vivace, *_ = timed_pair(direct, through, "SELECT 1", args.runs)
        direct.close()
        through.close()
    finally:
        if vivace:
            vivace.stop()
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)

    def ratio(a, b):
        return a / b if b else float("inf") if a else 1.0

    lines = [
        SECTION, "",
        f"Machine: {machine()}.  ",
        f"PostgreSQL 15 (Debian packages, `shared_buffers=1GB`, table cached), one table `sales` of "
        f"{args.rows:,} rows ({size}; `id bigint` primary key, `customer text` with 1,000 values, "
        "`amount numeric(12,2)`, `day date`), registered with `STORED AS POSTGRES` in "
        + ("an unoptimised **debug** build of " if "/debug/" in args.binary else "a release ")
        + "`vivace serve`.  ",
        f"Command: `python3 benches/postgres.py {' '.join(sys.argv[1:])}` at commit {source_commit()} "
        "(binary: `cargo build --release --locked --bin vivace` of that commit).  ",
        f"Times are medians after one warm-up run, direct and Vivace runs alternating (at least "
        f"{args.runs} each, more until 2 s have passed: the runs column), both measured from a psycopg2 "
        "client on the same machine (direct: the same role over TCP). Rows moved: the `rows` column of "
        "pg_stat_statements for Vivace's role over one run. Answers through Vivace were checked equal "
        "to PostgreSQL's.", "",
        "| query | rows returned | rows moved PG→Vivace | moved / returned | runs | direct (s) "
        "| Vivace (s) | Vivace − direct (ms) | Vivace / direct |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(f"| {r['label']} | {r['returned']:,} | {r['moved']:,} | "
                     f"{ratio(r['moved'], r['returned']):.2f} | {r['runs']} | {r['direct']:.4f} | "
                     f"{r['vivace']:.4f} | {1000 * (r['vivace'] - r['direct']):.2f} | "
                     f"{ratio(r['vivace'], r['direct']):.2f} |")
    rows_ok = all(ratio(r["moved"], r["returned"]) <= 1.1 for r in results)
    time_ok = [r["label"] for r in results if ratio(r["vivace"], r["direct"]) > 1.3]
    lines += ["", f"Floor: `SELECT 1` takes {1000 * floor_direct:.2f} ms direct and "
              f"{1000 * floor_vivace:.2f} ms through Vivace (wire protocol, parsing, planning).", ""]
    lines += [f"Target rows moved ≤ 1.1× rows returned: **{'met' if rows_ok else 'not met'}**.  ",
              "Target time ≤ 1.3× direct: **" + ("met" if not time_ok else
                                                 "not met for " + ", ".join(time_ok)) + "**.", "",
              "Queries, and the SQL PostgreSQL received from Vivace:", ""]
    for r in results:
        lines += [f"- {r['label']}: `{r['sql']}`  ", f"  remote: `{r['remote']}`"]
    section = "\n".join(lines) + "\n"

    text = args.out.read_text() if args.out.exists() else ""
    at = text.find("\n" + SECTION + "\n")
    if text.startswith(SECTION + "\n"):
        at = 0
    if at >= 0:
        end = text.find("\n# ", at + 1)
        text = text[:at] + ("\n" if at else "") + (text[end + 1:] if end >= 0 else "")
    text = text.rstrip("\n")
    args.out.write_text((text + "\n\n" if text else "") + section)
    print(section)


if __name__ == "__main__":
    main()
