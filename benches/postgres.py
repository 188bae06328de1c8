#!/usr/bin/env python3
"""The PostgreSQL connector against PostgreSQL itself and against Trino's
PostgreSQL connector (issue 5, point 10).

Starts a throwaway PostgreSQL 15 (Debian's /usr/lib/postgresql/15/bin, run as the
`postgres` OS user when we are root) on a private port with pg_stat_statements,
loads a 10M-row table with generate_series, starts a release `vivace serve`,
registers the table with `STORED AS POSTGRES`, starts Trino 476 on one node
(scripts/backends/start-trino.sh, --trino-heap, 2G by default) with a
`connector.name=postgresql` catalog over the same database, and runs each query
directly on PostgreSQL (psycopg2), through Vivace (psycopg2) and through Trino
(its HTTP protocol), the three taking turns run by run. Vivace and Trino log in
as roles of their own, so that PostgreSQL tells their statements apart.
For each query it reports:

  time ratios  median Vivace time / median direct time, Trino's likewise, and
               Vivace / Trino (after one warm-up run each)
  rows ratios  rows PostgreSQL sent to Vivace (the `rows` column of
               pg_stat_statements for its role over one run, after a reset),
               and to Trino (the rows its scan read: `processedRows` of its
               query statistics; see rows_moved() for why not pg_stat_statements)
               / rows the client received

Targets (issue 5): rows moved <= 1.1x rows returned, time <= 1.3x direct.
Answers through Vivace and Trino are checked equal to PostgreSQL's. Unless
--no-write, the report replaces the "PostgreSQL connector" section of the
output file and keeps everything else. --quick is the smoke test: 100k rows,
one run each, no Trino (--trino to add it), nothing written; it exits non-zero
when an answer differs, as a full run does.

  cargo build --release --bin vivace
  scripts/backends/fetch-trino.sh        # once: Trino 476 from Maven Central
  pip install psycopg2-binary==2.9.10
  python3 benches/postgres.py --binary target/release/vivace --rows 10000000 --runs 5 \\
      [--no-trino] [--trino-heap 2G]
  python3 benches/postgres.py --binary target/debug/vivace --quick
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack, closing
from pathlib import Path

import psycopg2

from benchlib import (QUIET, Trino, begin_run, free_port, in_turn, machine, publish, require_binary,
                      require_postgres, settle, source_commit, wait_port)

ROOT = Path(__file__).resolve().parents[1]
PG_BIN = Path("/usr/lib/postgresql/15/bin")
ROLE = "bench_reader"
TRINO_ROLE = "bench_trino"
PASSWORD = "bench-Pa55word-not-secret"
DATABASE = "bench"
SECTION = "# PostgreSQL connector"
QUICK_ROWS = 100_000
TITLES = {"direct": "direct", "vivace": "Vivace", "trino": "Trino"}

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
            for role in (ROLE, TRINO_ROLE):
                cur.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}'")
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
            cur.execute(f"GRANT SELECT ON sales TO {ROLE}, {TRINO_ROLE}")
            cur.execute("SELECT pg_size_pretty(pg_total_relation_size('sales'))")
            size = cur.fetchone()[0]
            print(f"loaded {rows} rows ({size}) in {time.perf_counter() - start:.0f}s", flush=True)
            return size

    def reset_statements(self):
        with closing(self.superuser()) as conn, conn.cursor() as cur:
            cur.execute("SELECT pg_stat_statements_reset()")

    def statements(self, role: str):
        """(rows, query) of every statement `role` ran since the reset."""
        with closing(self.superuser()) as conn, conn.cursor() as cur:
            cur.execute("SELECT rows, query FROM pg_stat_statements "
                        "WHERE userid = %s::regrole AND dbid = (SELECT oid FROM pg_database "
                        "WHERE datname = %s)", (role, DATABASE))
            return cur.fetchall()

    def logged(self, role: str, run):
        """`run()`'s result, and the statements sessions of `role` began while it
        ran, from the server's log (`log_statement = 'all'` for the role, which
        applies to sessions opened meanwhile)."""
        with closing(self.superuser()) as conn, conn.cursor() as cur:
            cur.execute(f"ALTER ROLE {role} SET log_statement = 'all'")
        offset = (self.root / "pg.log").stat().st_size
        try:
            result = run()
        finally:
            with closing(self.superuser()) as conn, conn.cursor() as cur:
                cur.execute(f"ALTER ROLE {role} RESET log_statement")
        with open(self.root / "pg.log", errors="replace") as log:
            log.seek(offset)
            return result, re.findall(r"LOG:  (?:execute [^:]*|statement): (.*)", log.read())

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


def trino_catalog(port: int) -> str:
    """Trino's catalog `postgresql`: the benchmark database as TRINO_ROLE."""
    return (f"connector.name=postgresql\nconnection-url=jdbc:postgresql://127.0.0.1:{port}/{DATABASE}\n"
            f"connection-user={TRINO_ROLE}\nconnection-password={PASSWORD}\n")


def timed_turns(conns, sql, runs, min_seconds, max_runs=500):
    """Per connection: median seconds and the answer (rows); and the runs each made.

    One warm-up run each, then the runs go round the connections in turn (each
    round starting with the next one, the run after Trino's on a quiet machine:
    benchlib.settle), so all sample the same machine conditions (the development
    machines are shared and their speed drifts by tens of percent over minutes). At least `runs` runs
    each, and more until `min_seconds` have passed, so a millisecond query gets
    hundreds of samples, not five. psycopg2 connections are autocommit and never
    used as context managers (psycopg2 2.9 would open a transaction)."""
    samples = {name: [] for name in conns}
    answers = {}
    with ExitStack() as stack:
        cursors = {name: stack.enter_context(conn.cursor()) for name, conn in conns.items()}
        for name, cur in cursors.items():
            cur.execute(sql)
            answers[name] = cur.fetchall()
        started = time.perf_counter()
        done = 0
        while done < max_runs and (done < runs or time.perf_counter() - started < min_seconds):
            # The run after Trino's waits for a quiet machine: its JVM works on
            # after a query ends, and on 2 cores that slowed the next connection.
            turn = in_turn(list(cursors), done)
            for i, name in enumerate(turn):
                cur = cursors[name]
                if i and turn[i - 1] == "trino":
                    settle()
                start = time.perf_counter()
                cur.execute(sql)
                cur.fetchall()
                samples[name].append(time.perf_counter() - start)
            done += 1
    return {name: statistics.median(s) for name, s in samples.items()}, answers, done


def normalise(rows):
    return sorted(tuple(str(v) for v in row) for row in rows)


def fetch(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def rows_moved(pg: Postgres, conns, sql):
    """Per engine (Vivace, Trino): (rows PostgreSQL sent it, the SQL it ran on
    PostgreSQL, rows the client received) over one run of `sql`, after a warm-up
    run of its own (so that a pool's first-connection check is not counted).

    Vivace's are pg_stat_statements' for its role. Trino's data query never
    reaches pg_stat_statements, which counts a statement when it ends: Trino runs
    it as a cursor in a `BEGIN READ ONLY` transaction and ends that by closing
    the connection (only its catalog lookups are counted). So Trino's rows are
    the rows its scan read (`processedRows`), and its SQL comes from PostgreSQL's
    log (the statements naming the table; the catalog lookups pass it as a
    parameter)."""
    moved = {}
    for name, conn in conns.items():
        if name == "direct":
            continue
        fetch(conn, sql)
        if name == "vivace":
            pg.reset_statements()
            returned = len(fetch(conn, sql))
            stmts = pg.statements(ROLE)
            moved[name] = (sum(r for r, _ in stmts), [q for _, q in stmts], returned)
        else:
            rows, logged = pg.logged(TRINO_ROLE, lambda: fetch(conn, sql))
            # PostgreSQL logs a cursor's statement again at every fetch.
            remote = list(dict.fromkeys(q for q in logged if '"sales"' in q))
            moved[name] = (conn.last_stats["processedRows"], remote, len(rows))
    return moved


def measure(args, work: Path):
    """Start PostgreSQL, Vivace and (unless --no-trino) Trino, and run every query
    on all of them in turn; (results, floor, size, trino version). Every server
    is stopped whatever happens."""
    pg = Postgres(work / "pg")
    vivace = trino = None
    results = []
    try:
        size = pg.load(args.rows)
        vivace = Vivace(args.binary, work / "vivace")
        with closing(vivace.connect()) as v, v.cursor() as cur:
            cur.execute(f"CREATE EXTERNAL TABLE sales STORED AS POSTGRES "
                        f"LOCATION 'postgres://{ROLE}@127.0.0.1:{pg.port}/{DATABASE}' "
                        "OPTIONS ('table' 'public.sales', 'password_env' 'BENCH_PG_PASSWORD', "
                        "'sslmode' 'disable')")
        conns = {"direct": pg.reader(), "vivace": vivace.connect()}
        if args.trino:
            # The PostgreSQL connector needs the Geometry type of the geospatial plugin.
            trino = Trino(work / "trino", args.trino_heap, ["postgresql", "geospatial"], "postgresql", "public",
                          catalogs={"postgresql": trino_catalog(pg.port)})
            trino.start()
            conns["trino"] = trino.connect()
        for label, sql in QUERIES:
            sql = sql.format(mid=args.rows // 2)
            moved = rows_moved(pg, conns, sql)
            medians, answers, runs = timed_turns(conns, sql, args.runs, args.min_seconds)
            for name, answer in answers.items():
                if normalise(answer) != normalise(answers["direct"]):
                    sys.exit(f"{label}: {TITLES[name]}'s answer differs from PostgreSQL's")
            results.append(dict(label=label, sql=sql, times=medians, runs=runs, returned=len(answers["direct"]),
                                moved=moved))
            for name, (_, remote, _) in moved.items():
                for query in remote:
                    print(f"  remote for {name}: {query}", flush=True)
            print(f"{label}: " + ", ".join(f"{name} {t:.4f}s" for name, t in medians.items())
                  + f" ({runs} runs each), rows returned {len(answers['direct'])}, moved "
                  + ", ".join(f"{rows} to {name}" for name, (rows, _, _) in moved.items()), flush=True)
        # The floor every query pays: the wire protocol, parsing and planning,
        # with no source involved.
        floor, _, _ = timed_turns(conns, "SELECT 1", args.runs, args.min_seconds)
        version = trino.version() if trino else None
        for conn in conns.values():
            conn.close()
        return results, floor, size, version
    finally:
        if trino:
            trino.stop()
        if vivace:
            vivace.stop()
        pg.stop()


def ratio(a, b):
    return a / b if b else float("inf") if a else 1.0


def report(args, results, floor, size, trino_version) -> str:
    engines = [name for name in ("vivace", "trino") if name in floor]
    trino = (f" Trino {trino_version} (one node, `-Xmx{args.trino_heap}`, scripts/backends/start-trino.sh) reads "
             f"it through a `connector.name=postgresql` catalog as the role `{TRINO_ROLE}`, over its HTTP "
             "protocol from Python (urllib)." if trino_version else "")
    lines = [
        SECTION, "",
        f"Machine: {machine()}.  ",
        f"PostgreSQL 15 (Debian packages, `shared_buffers=1GB`, table cached), one table `sales` of "
        f"{args.rows:,} rows ({size}; `id bigint` primary key, `customer text` with 1,000 values, "
        "`amount numeric(12,2)`, `day date`), registered with `STORED AS POSTGRES` in "
        + ("an unoptimised **debug** build of " if "/debug/" in args.binary else "a release ")
        + f"`vivace serve` (role `{ROLE}`).{trino}  ",
        f"Command: `python3 benches/postgres.py {' '.join(sys.argv[1:])}` at commit {source_commit()} "
        "(binary: `cargo build --release --locked --bin vivace` of that commit).  ",
        "Times are medians after one warm-up run, " + ", ".join(TITLES[n] for n in ["direct"] + engines)
        + f" runs taking turns (at least {args.runs} each, more until {args.min_seconds:g} s have passed: the "
        "runs column; each round starting with the next engine"
        + (f", the run after Trino's once the machine is quiet: {QUIET}" if "trino" in engines else "")
        + "), all measured from a client on the same machine (direct: psycopg2 as Vivace's role over TCP). "
        "Rows moved PG→Vivace: the `rows` column of pg_stat_statements for Vivace's role over one run"
        + ("; PG→Trino: the rows Trino's scan read (`processedRows` of its query statistics), since Trino's data "
           "query never reaches pg_stat_statements (it runs as a cursor in a `BEGIN READ ONLY` transaction that "
           "Trino ends by closing the connection; pg_stat_statements counts a statement when it ends), and its SQL "
           "below is taken from PostgreSQL's log" if "trino" in engines else "")
        + ". Answers were checked equal to PostgreSQL's.", "",
    ]
    header = ["query", "rows returned"]
    for name in engines:
        header += [f"rows moved PG→{TITLES[name]}", "moved / returned"]
    header += ["runs", "direct (s)"] + [f"{TITLES[n]} (s)" for n in engines]
    header += [f"{TITLES[n]} − direct (ms)" for n in engines] + [f"{TITLES[n]} / direct" for n in engines]
    if "trino" in engines:
        header.append("Vivace / Trino")
    lines += ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for r in results:
        t = r["times"]
        cells = [r["label"], f"{r['returned']:,}"]
        for name in engines:
            moved = r["moved"][name][0]
            cells += [f"{moved:,}", f"{ratio(moved, r['returned']):.2f}"]
        cells += [str(r["runs"]), f"{t['direct']:.4f}"] + [f"{t[n]:.4f}" for n in engines]
        cells += [f"{1000 * (t[n] - t['direct']):.2f}" for n in engines]
        cells += [f"{ratio(t[n], t['direct']):.2f}" for n in engines]
        if "trino" in engines:
            cells.append(f"{ratio(t['vivace'], t['trino']):.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    rows_ok = all(ratio(r["moved"]["vivace"][0], r["returned"]) <= 1.1 for r in results)
    time_ok = [r["label"] for r in results if ratio(r["times"]["vivace"], r["times"]["direct"]) > 1.3]
    lines += ["", "Floor: `SELECT 1` takes " + ", ".join(f"{1000 * floor[n]:.2f} ms {label}" for n, label in
                                                        [("direct", "direct")] + [(n, f"through {TITLES[n]}")
                                                                                  for n in engines])
              + " (wire protocol, parsing, planning).", ""]
    lines += [f"Target rows moved ≤ 1.1× rows returned (Vivace): **{'met' if rows_ok else 'not met'}**.  ",
              "Target time ≤ 1.3× direct (Vivace): **" + ("met" if not time_ok else
                                                          "not met for " + ", ".join(time_ok)) + "**.", "",
              "Queries, and the SQL PostgreSQL received from " + " and from ".join(TITLES[n] for n in engines)
              + ":", ""]
    for r in results:
        lines.append(f"- {r['label']}: `{r['sql']}`  ")
        lines += [f"  {TITLES[n]}: `{' ; '.join(r['moved'][n][1])}`  " for n in engines]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", required=True, help="a build of vivace (release for numbers)")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=5, help="timed runs per query and engine, at least")
    ap.add_argument("--min-seconds", type=float, default=2.0,
                    help="keep taking turns until this many seconds have passed per query")
    ap.add_argument("--out", type=Path, default=ROOT / "benches" / "RESULTS.md")
    ap.add_argument("--no-write", action="store_true", help="print the report, write nothing")
    ap.add_argument("--trino", action=argparse.BooleanOptionalAction, default=None,
                    help="run Trino's PostgreSQL connector beside the others (default: yes, but not with --quick)")
    ap.add_argument("--trino-heap", default="2G", help="Trino's -Xmx (e.g. 2G, 4G, 1536M)")
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke test: {QUICK_ROWS:,} rows, 1 run, no Trino unless --trino; never writes")
    args = ap.parse_args()
    if args.quick:
        args.rows, args.runs, args.min_seconds, args.no_write = QUICK_ROWS, 1, 0, True
    if args.trino is None:
        args.trino = not args.quick
    require_postgres(PG_BIN)
    require_binary(args.binary)

    work, started = begin_run("vivace-pg-bench-", shared=True)
    try:
        results, floor, size, trino_version = measure(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    publish(report(args, results, floor, size, trino_version), args.out, SECTION, None, False, args.no_write,
            started)


if __name__ == "__main__":
    main()
