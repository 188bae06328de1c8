#!/usr/bin/env python3
"""TPC-H through Vivace four ways side by side, against DuckDB and Trino, plus
worker scaling.

Runs the 22 TPC-H queries (tests/tpch/) against:
  single    `vivace serve --workers 0`: DataFusion 55.2 in one process, no
            distributed planning (the baseline)
  single-bc the same, with the join broadcast thresholds distributed sessions
            use (32 MiB / 1M rows instead of 1 MiB / 128K rows), to separate the
            cost of distribution from that planning choice
  embedded  `vivace serve` with its default embedded workers
  cluster   a coordinator (--workers 0) and 2 `vivace worker` processes
  single-pf only when --configs names it: single with Parquet filters evaluated
            while decoding (pushdown_filters, reorder_filters, page index)
  duckdb    DuckDB (PyPI `duckdb`) in this process, views over read_parquet(),
            `SET threads` to the machine's cores: the reference answers
  trino     Trino 476 on one node (scripts/backends/start-trino.sh, --trino-heap,
            6G by default), external tables of its Hive connector (file
            metastore) over the same files, queried through its HTTP protocol
and a scan-heavy query on a cluster of 1 and of 2 workers, each worker pinned to
its own core with taskset (the coordinator on the same cores). Every engine reads
the same Parquet files (tpchgen-cli) with the machine's cores (none is pinned
but in the scaling part); Vivace is queried over the PostgreSQL protocol with
psycopg2. The engines run side by side and take turns query by query. Every
engine's answer is checked against DuckDB's before its time counts (same rows in
the same order; numbers within 1e-6 relative or 0.01 absolute, since Trino's avg
of a decimal is a rounded decimal; dates and strings as text): a wrong answer or
an error is reported in place of the time, and the totals count only the
queries every engine answered correctly. The queries run unchanged on all three.

Unless --no-write, the report replaces the "TPC-H: Vivace, DuckDB and Trino"
section of RESULTS.md and a chart (matplotlib; skipped if it is missing) goes
to benches/tpch.png. --quick is the smoke test (it runs on a debug build too):
SF 0.01 generated into a temporary folder unless --data is given, one timed run,
no Trino and no worker scaling, nothing written; it exits non-zero on any wrong
answer or error. Any failure also makes a full run exit non-zero, after its
report.

  scripts/backends/fetch-trino.sh        # once: Trino 476 from Maven Central
  pip install tpchgen-cli==4.0.0 psycopg2-binary==2.9.10 duckdb==2.0.1 matplotlib==3.10.0
  python3 benches/tpch.py --binary target/release/vivace --data /tmp/tpch-sf1 \\
      --generate-sf 1 --runs 3 [--no-trino] [--trino-heap 6G]
  python3 benches/tpch.py --binary target/release/vivace --data /tmp/tpch-sf1 \\
      --runs 9 --scaling-only      # the worker-scaling part alone, printed
  python3 benches/tpch.py --binary target/debug/vivace --quick

tpchgen-cli comes from PyPI (`pip install tpchgen-cli`) or crates.io.
"""

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import psycopg2

from benchlib import (QUIET, QUIET_LIMIT, Trino, TrinoError, begin_run, free_port, in_turn, machine, publish,
                      require_binary, settle, source_commit, wait_port)

ROOT = Path(__file__).resolve().parents[1]
QUERIES = [(f"q{n}", (ROOT / "tests" / "tpch" / f"q{n}.sql").read_text()) for n in range(1, 23)]
TABLES = ["region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem"]
SCAN_QUERY = ("SELECT l_returnflag, l_linestatus, sum(l_extendedprice * (1 - l_discount)), "
              "avg(l_quantity), count(*) FROM lineitem WHERE l_shipdate <= date '1998-09-01' "
              "AND l_comment NOT LIKE '%special%' GROUP BY 1, 2 ORDER BY 1, 2")
SECRET = "benchmark-cluster-secret-0123456789"
BYTES_PER_PARTITION = None  # set from --bytes-per-partition
# What distributed sessions use (coordinator/src/engine.rs, BROADCAST_JOIN_MAX_*).
BROADCAST_SETTINGS = [("datafusion.optimizer.hash_join_single_partition_threshold", 32 * 1024 * 1024),
                      ("datafusion.optimizer.hash_join_single_partition_threshold_rows", 1024 * 1024)]
SECTION = "# TPC-H: Vivace, DuckDB and Trino"
QUICK_SF = 0.01
VIVACE = ("single", "single-bc", "embedded", "cluster")
# Run only when named in --configs: scan settings under test.
OPTIONAL = ("single-pf",)
# What `single-pf` sets: Parquet filters evaluated while decoding (late
# materialisation), reordered by cost, with the page index.
PUSHDOWN_SETTINGS = [("datafusion.execution.parquet.pushdown_filters", "true"),
                     ("datafusion.execution.parquet.reorder_filters", "true"),
                     ("datafusion.execution.parquet.enable_page_index", "true")]
REFERENCE = "duckdb"
TITLES = {"duckdb": "DuckDB", "trino": "Trino"}
# Numbers are equal when within either tolerance (math.isclose).
REL_TOL, ABS_TOL = 1e-6, 1e-2
# cluster / single, cluster / DuckDB, cluster / Trino (those that ran).
RATIOS = (("cluster", "single"), ("cluster", "duckdb"), ("cluster", "trino"))


class Deployment:
    """A coordinator and optional worker processes, each optionally pinned to cores."""

    def __init__(self, binary, workdir, embedded_workers, remote_workers=0, pin=None, settings=()):
        self.procs = []
        self.settings = list(settings)
        self.port = free_port()
        self.distributed = embedded_workers > 0 or remote_workers > 0
        workdir.mkdir(parents=True, exist_ok=True)
        secret = workdir / "secret"
        secret.write_text(SECRET)
        cluster_port = free_port()
        cmd = [binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(workdir / "data"),
               "--workers", str(embedded_workers)]
        if remote_workers:
            cmd += ["--cluster-listen", f"127.0.0.1:{cluster_port}", "--cluster-secret-file", str(secret)]
        self.start(cmd, pin[0] if pin else None, self.port, "coordinator", workdir)
        for i in range(remote_workers):
            wport = free_port()
            self.start([binary, "worker", "--listen", f"127.0.0.1:{wport}", "--coordinator",
                        f"127.0.0.1:{cluster_port}", "--cluster-secret-file", str(secret)],
                       pin[i + 1] if pin else None, wport, f"worker{i}", workdir)
        if remote_workers:
            self.wait_workers(remote_workers)

    def start(self, cmd, cpus, port, name, workdir):
        if cpus is not None:
            cmd = ["taskset", "-c", cpus] + cmd
        log = open(workdir / f"{name}.log", "w")
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        wait_port(port, proc, name)

    def connect(self):
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="vivace", dbname="vivace")
        conn.autocommit = True
        settings = list(self.settings)
        if BYTES_PER_PARTITION and self.distributed:
            settings.append(("distributed.file_scan_config_bytes_per_partition", BYTES_PER_PARTITION))
        with conn.cursor() as cur:
            for name, value in settings:
                cur.execute(f"SET {name} = {value}")
        return conn

    def stages(self, sql):
        """The `Stage N ── tasks=..` lines of the plan (empty when not distributed)."""
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute("EXPLAIN " + sql)
            plan = "\n".join(row[1] for row in cur.fetchall())
        return [line.strip(" │┌─") for line in plan.splitlines() if "Stage" in line and "tasks=" in line]

    def wait_workers(self, n):
        with self.connect() as conn, conn.cursor() as cur:
            for _ in range(200):
                cur.execute("SELECT count(*) FROM system.nodes WHERE role = 'worker'")
                if cur.fetchone()[0] == n:
                    return
                time.sleep(0.1)
        sys.exit(f"{n} workers did not register")

    def register(self, data: Path):
        with self.connect() as conn, conn.cursor() as cur:
            for t in TABLES:
                cur.execute(f"CREATE EXTERNAL TABLE {t} STORED AS PARQUET LOCATION '{data / t}/'")

    def version(self) -> str:
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute("SELECT version()")
            return cur.fetchone()[0]

    def stop(self):
        for p in self.procs:
            p.kill()
            p.wait()


class DuckDB:
    """DuckDB in this process, the eight tables as views over the Parquet files,
    `threads` threads. connect() gives a cursor of its own (closing it leaves the
    database open)."""

    def __init__(self, data: Path, threads: int):
        import duckdb

        self.version = duckdb.__version__
        self.db = duckdb.connect()
        self.db.execute(f"SET threads = {threads}")
        for t in TABLES:
            self.db.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{data / t}/*.parquet')")

    def connect(self):
        return self.db.cursor()

    def columns(self, table: str):
        """(name, DuckDB type) of each column of `table`."""
        return [(name, kind) for name, kind, *_ in self.db.execute(f"DESCRIBE {table}").fetchall()]

    def count(self, table: str) -> int:
        return self.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

    def stop(self):
        self.db.close()


def trino_type(duckdb_type: str) -> str:
    """The Trino type a Hive table declares for a column DuckDB reads as
    `duckdb_type` (tpchgen-cli writes int64, int32, decimal(15,2), date32 and
    strings): the Hive connector needs the Parquet types declared exactly."""
    kind = duckdb_type.lower()
    if kind in ("bigint", "integer", "date", "varchar") or kind.startswith("decimal("):
        return kind
    sys.exit(f"no Trino type for the Parquet column type {duckdb_type}")


def register_trino(trino: Trino, data: Path, duck: DuckDB, analyze: bool):
    """External tables `hive.tpch.<table>` over the Parquet files, their columns
    declared as DuckDB reads them; checks Trino counts the rows DuckDB counts. The
    Hive connector's locations are local:///<path> relative to its local.location,
    the warehouse folder, so the data folder is linked into it. With `analyze`,
    `ANALYZE` gives each table the statistics Trino's cost-based join ordering
    needs (the Hive connector does not read them from Parquet footers; without
    them Trino may build its hash tables on the larger side)."""
    (trino.work / "warehouse" / "tpch").symlink_to(data)
    trino.query("CREATE SCHEMA hive.tpch")
    for t in TABLES:
        columns = ", ".join(f"{name} {trino_type(kind)}" for name, kind in duck.columns(t))
        trino.query(f"CREATE TABLE hive.tpch.{t} ({columns}) "
                    f"WITH (external_location = 'local:///tpch/{t}', format = 'PARQUET')")
        rows, expected = trino.query(f"SELECT count(*) FROM {t}")[0][0], duck.count(t)
        if rows != expected or not rows:
            sys.exit(f"Trino reads {rows} rows in {t}, DuckDB {expected}")
    if analyze:
        start = time.perf_counter()
        for t in TABLES:
            trino.query(f"ANALYZE hive.tpch.{t}")
        print(f"  trino: ANALYZE of the {len(TABLES)} tables in {time.perf_counter() - start:.1f}s", flush=True)


def warm_up(trino: Trino):
    """The 22 queries once on Trino before the timed part: its JVM compiles code
    for each query and needs more warming than the one run the others get (a
    query that fails here fails again in the timed part, and is reported there)."""
    start = time.perf_counter()
    for _, sql in QUERIES:
        try:
            trino.query(sql)
        except TrinoError:
            pass
    print(f"  trino: warm-up pass over the 22 queries in {time.perf_counter() - start:.1f}s", flush=True)


def as_number(value):
    """`value` as a float when it is a number or a string holding one, else None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def as_text(value) -> str:
    return value.isoformat() if isinstance(value, date) else str(value).rstrip()


def same_value(expected, got) -> bool:
    a, b = as_number(expected), as_number(got)
    if a is not None and b is not None:
        return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)
    return (expected is None) == (got is None) and as_text(expected) == as_text(got)


def mismatch(expected, got):
    """Why `got` is not the answer `expected` (rows in order), or None."""
    if len(got) != len(expected):
        return f"{len(got)} rows, expected {len(expected)}"
    for i, (want, row) in enumerate(zip(expected, got)):
        if len(row) != len(want):
            return f"row {i + 1} has {len(row)} columns, expected {len(want)}"
        for j, (a, b) in enumerate(zip(want, row)):
            if not same_value(a, b):
                return f"row {i + 1}, column {j + 1}: {b!r}, expected {a!r}"
    return None


def fetch(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def first_line(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:200]


def time_interleaved(engines, queries, runs, reference=None, wait_quiet=True):
    """Per engine: median seconds per query, the rows for checking, and why a
    query has no time (an error, or an answer that differs from the `reference`
    engine's).

    For each query every engine runs once to warm up (that answer is kept and
    checked), then the timed runs go round the engines in turn, so all of them
    sample the same machine conditions: the development machines are shared, and
    their speed drifts by tens of percent over the minutes one configuration's
    22 queries take. An engine that fails a query is left out of its timed runs.
    `engines` are Deployments, DuckDB or Trino: anything whose connect() gives a
    DB-API-like connection. With `wait_quiet`, each timed run waits for the
    machine to be quiet first (benchlib.settle)."""
    conns = {label: engine.connect() for label, engine in engines.items()}
    times, answers, failures = ({label: {} for label in engines} for _ in range(3))
    busy = 0  # timed runs that started on a machine still busy after settle()
    try:
        for name, sql in queries:
            for label, conn in conns.items():
                try:
                    answers[label][name] = fetch(conn, sql)
                except Exception as e:  # any engine's error fails that query for that engine alone
                    failures[label][name] = f"error: {first_line(e)}"
            if reference:
                for label in engines:
                    if label == reference or name in failures[label]:
                        continue
                    if name not in answers[reference]:
                        failures[label][name] = f"not checked: {reference} failed"
                    elif problem := mismatch(answers[reference][name], answers[label][name]):
                        failures[label][name] = f"wrong answer: {problem}"
            samples = {label: [] for label in engines if name not in failures[label]}
            for turn in range(runs):
                # Each round starts with another engine, and each query waits
                # for the machine to be quiet: no engine is timed while the one
                # before it still works in the background.
                for label in in_turn(list(samples), turn):
                    if label not in samples:  # failed earlier in this round
                        continue
                    if wait_quiet and not settle():
                        busy += 1
                    start = time.perf_counter()
                    try:
                        fetch(conns[label], sql)
                    except Exception as e:
                        failures[label][name] = f"error: {first_line(e)}"
                        del samples[label]
                        continue
                    samples[label].append(time.perf_counter() - start)
            for label, s in samples.items():
                times[label][name] = statistics.median(s)
            print(f"  {name}: " + ", ".join(f"{label} {times[label][name]:.3f}s" if name in times[label] else
                                            f"{label} FAILED ({failures[label][name]})" for label in engines),
                  flush=True)
        if busy:
            print(f"  {busy} timed run(s) started on a machine still busy after {QUIET_LIMIT:g} s", flush=True)
    finally:
        for conn in conns.values():
            conn.close()
    return times, answers, failures


def generate(sf: float, folder: Path):
    """TPC-H at scale `sf` as Parquet in `folder` (tpchgen-cli from PATH or from
    beside this Python, e.g. a virtual environment's bin)."""
    tool = shutil.which("tpchgen-cli") or str(Path(sys.executable).parent / "tpchgen-cli")
    shutil.rmtree(folder, ignore_errors=True)
    subprocess.run([tool, "parquet", "-s", str(sf), "--parts", "4", "-o", str(folder)], check=True)


def scaling_run(binary, work: Path, data: Path, runs: int):
    """Seconds of SCAN_QUERY on a cluster of 1 and of 2 pinned workers, and the
    plans' stages; empty when the machine has fewer than 2 cores or no taskset."""
    cores = os.cpu_count() or 2
    if cores < 2 or not shutil.which("taskset"):
        return {}, {}
    # Each worker on a core of its own (the last n cores), and the coordinator
    # on the same n cores, so that n cores do all the work either way: with
    # one worker datafusion-distributed elides one-task stages and the
    # coordinator runs the plan itself. Sessions plan 2 partitions per task
    # (target_partitions = 2; with 1 there is no repartition to cut stages
    # at), so the scan is cut into one task per worker whatever the
    # coordinator's own core count. Both clusters run side by side and take
    # turns, as above.
    deps, scan_stages = {}, {}
    try:
        for n in (1, 2):
            cpus = [str(cores - n + i) for i in range(n)]
            deps[n] = Deployment(binary, work / f"scale{n}", 0, remote_workers=n, pin=[",".join(cpus)] + cpus,
                                 settings=[("datafusion.execution.target_partitions", 2)])
            deps[n].register(data)
            scan_stages[n] = deps[n].stages(SCAN_QUERY)
            print(f"scan, {n} worker(s): {scan_stages[n]}", flush=True)
        times, _, failures = time_interleaved(deps, [("scan", SCAN_QUERY)], runs)
    finally:
        for dep in deps.values():
            dep.stop()
    if any(failures.values()):
        sys.exit(f"the scaling query failed: {failures}")
    return {n: times[n]["scan"] for n in deps}, scan_stages


def scaling_report(scaling, scan_stages, runs):
    if not scaling:
        return []
    lines = ["", "Worker scaling, scan-heavy query (each worker pinned to its own core, the "
             "coordinator pinned to the workers' cores, `SET datafusion.execution.target_partitions = 2` "
             "so that tasks follow workers, not the coordinator's cores; with one worker the "
             "coordinator runs the one-task plan itself, on that worker's core; both clusters side "
             f"by side, median of {runs} turns each):", "",
             "| workers | time (s) | stages |", "|---:|---:|---|"]
    lines += [f"| {n} | {t:.3f} | {'; '.join(scan_stages[n]) or 'not distributed'} |" for n, t in scaling.items()]
    lines += ["", f"Speed-up from 1 to 2 workers: **{scaling[1] / scaling[2]:.2f}x**.", "",
              f"Query: `{SCAN_QUERY}`"]
    return lines


def common_queries(times):
    """The queries every engine answered correctly (and so has a time for)."""
    return [q for q, _ in QUERIES if all(q in t for t in times.values())]


def draw_chart(times, path: Path) -> bool:
    """Seconds per query and engine, and the ratios of RATIOS, as a PNG (log
    scales; failed queries left out); False when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    names = [q for q, _ in QUERIES]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(14, 9))
    width = 0.8 / len(times)
    for k, (label, t) in enumerate(times.items()):
        xs = [i for i, q in enumerate(names) if q in t]
        top.bar([x - 0.4 + width * (k + 0.5) for x in xs], [t[names[x]] for x in xs], width,
                label=TITLES.get(label, label))
    top.set_yscale("log")
    top.set_ylabel("seconds (median)")
    top.set_title("TPC-H per query")
    top.legend(fontsize=8, ncol=len(times))
    ratios = [(a, b) for a, b in RATIOS if b in times]
    width = 0.8 / len(ratios)
    for k, (a, b) in enumerate(ratios):
        xs = [i for i, q in enumerate(names) if q in times[a] and q in times[b]]
        bottom.bar([x - 0.4 + width * (k + 0.5) for x in xs], [times[a][names[x]] / times[b][names[x]] for x in xs],
                   width, label=f"{a} / {TITLES.get(b, b)}")
    bottom.axhline(1, color="black", linewidth=0.8)
    bottom.set_yscale("log")
    bottom.set_ylabel("time ratio")
    bottom.set_title("Vivace cluster against DataFusion in one process, DuckDB and Trino (below 1: cluster faster)")
    bottom.legend(fontsize=8, ncol=len(ratios))
    for ax in (top, bottom):
        ax.set_xticks(range(len(names)), names)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def report(args, run, chart) -> str:
    times, failures = run["times"], run["failures"]
    labels = list(times)
    common = common_queries(times)
    total = {label: sum(times[label][q] for q in common) for label in labels}
    ratios = [(a, b) for a, b in RATIOS if b in times]
    cores = run["cores"]
    versions = run["versions"]
    trino = ""
    if "trino" in times:
        trino = (f", Trino {versions['trino']} (one node, coordinator and worker in one JVM, `-Xmx{args.trino_heap}`, "
                 "`query.max-memory-per-node` a quarter of the heap: scripts/backends/start-trino.sh; "
                 + ("tables given statistics by `ANALYZE` first)" if args.trino_analyze else
                    "no `ANALYZE`, so its tables had no statistics)"))
    data = f"SF {run['sf']:g} " if run["sf"] else ""
    build = ", a debug build" if "/debug/" in args.binary else ""
    lines = [
        section_of(run["sf"]), "",
        f"Machine: {machine()}.  ",
        f"Versions: Vivace at commit {source_commit()} (`{versions['vivace']}`{build}; DataFusion 55.2), "
        f"DuckDB {versions['duckdb']} (PyPI, in the benchmark's process){trino}.  ",
        f"Data: TPC-H {data}from `tpchgen-cli parquet --parts 4` at `{args.data.name}` "
        f"(lineitem {run['lineitem']:,} rows), the same files for every engine: Vivace through `CREATE EXTERNAL "
        "TABLE … STORED AS PARQUET`, DuckDB through views over `read_parquet()`"
        + (", Trino through external tables of its Hive connector (file metastore)" if "trino" in times else "")
        + ".  ",
        f"Command: `python3 benches/tpch.py {' '.join(sys.argv[1:])}`  ",
        f"Each time is the median of {args.runs} run(s) after one warm-up, the engines running side by side and "
        f"taking turns query by query (each round starting with the next engine; each timed run starting once "
        f"the machine is quiet, {QUIET}), each with the machine's {cores} cores (DuckDB `SET threads = {cores}`"
        + (", Trino's defaults; Trino also ran the 22 queries once before the timed part, to warm its JVM"
           if "trino" in times else "") + ").  ",
        "Answers: the warm-up answer of every engine was checked against DuckDB's (same rows in the same order; "
        f"numbers equal within {REL_TOL:g} relative or {ABS_TOL:g} absolute, since Trino's avg of a decimal is a "
        "rounded decimal; dates and strings as text); a wrong answer or an error is shown in place of the time. "
        f"**Totals count only the {len(common)} of {len(QUERIES)} queries every engine answered correctly.** "
        "The queries ran unchanged on every engine.  ",
        "Scan splitting: " + (f"`SET distributed.file_scan_config_bytes_per_partition = {BYTES_PER_PARTITION}` "
                              "in every session." if BYTES_PER_PARTITION else "the 16 MiB default."),
        "",
        f"In `cluster`, {run['multi']} of {len(QUERIES)} queries had a stage split over more than one task. "
        + (f"The answers of the Vivace configurations ({', '.join(args.configs)}) were identical."
           if not run["differ"] else
           f"The Vivace configurations' answers were not all identical to `single`'s for {', '.join(run['differ'])}."),
        "",
        "Configurations: `single` = `vivace serve --workers 0` (DataFusion 55.2 in one process, no "
        "distributed planning); `single-bc` = the same with the join broadcast thresholds of distributed "
        "sessions (`hash_join_single_partition_threshold` 32 MiB, `_rows` 1M); "
        f"`embedded` = `vivace serve --workers {cores}`; `cluster` = coordinator "
        "`--workers 0` + 2 `vivace worker` processes on the same machine"
        + ("; `single-pf` = `single` with " + ", ".join(f"`{k.split('.')[-1]} = {v}`" for k, v in PUSHDOWN_SETTINGS)
           if "single-pf" in args.configs else "") + ".", "",
        "| query | " + " | ".join(f"{TITLES.get(label, label)} (s)" for label in labels) + " | "
        + " | ".join(f"{a} / {TITLES.get(b, b)}" for a, b in ratios) + " |",
        "|---|" + "---:|" * (len(labels) + len(ratios)),
    ]

    def cell(label, q):
        if q in times[label]:
            return f"{times[label][q]:.3f}"
        why = failures[label][q]
        return ("**wrong**" if why.startswith("wrong") else
                "**unchecked**" if why.startswith("not checked") else "**error**")

    def ratio(a, b, q):
        return f"{times[a][q] / times[b][q]:.2f}" if q in times[a] and q in times[b] else "–"

    for q, _ in QUERIES:
        lines.append(f"| {q} | " + " | ".join([cell(label, q) for label in labels]
                                              + [ratio(a, b, q) for a, b in ratios]) + " |")
    if common:
        cells = [f"{total[label]:.2f}" for label in labels] + [f"{total[a] / total[b]:.2f}" for a, b in ratios]
        lines.append(f"| **total ({len(common)} queries)** | " + " | ".join(f"**{c}**" for c in cells) + " |")
    failed = [(q, label, failures[label][q]) for q, _ in QUERIES for label in labels if q in failures[label]]
    if failed:
        lines += ["", "Failures:", ""] + [f"- {q}, {TITLES.get(label, label)}: {why}" for q, label, why in failed]
    lines += ["", f"![TPC-H seconds per query and engine, and Vivace cluster's ratios]({chart_name(run['sf'])})"
              if chart else
              "(Chart skipped: matplotlib is not installed.)"]
    lines += scaling_report(run["scaling"], run["scan_stages"], max(args.runs, 9))
    return "\n".join(lines) + "\n"


def measure(args, work: Path):
    """Start every engine, run the 22 queries on all of them in turn and then the
    worker scaling; what report() needs. Every engine is stopped whatever happens."""
    cores = os.cpu_count() or 2
    configs = [("single", dict(embedded_workers=0)),
               ("single-bc", dict(embedded_workers=0, settings=BROADCAST_SETTINGS)),
               ("embedded", dict(embedded_workers=cores)),
               ("cluster", dict(embedded_workers=0, remote_workers=2)),
               ("single-pf", dict(embedded_workers=0, settings=PUSHDOWN_SETTINGS))]
    configs = [(label, kw) for label, kw in configs if label in args.configs]
    # All of them run side by side, idle but for the query being timed.
    engines, trino = {}, None
    try:
        if args.trino:
            trino = Trino(work / "trino", args.trino_heap, ["hive"], "hive", "tpch")
            trino.start()
        for label, kw in configs:
            engines[label] = Deployment(args.binary, work / label, **kw)
            engines[label].register(args.data)
        engines["duckdb"] = DuckDB(args.data, cores)
        versions = {"vivace": engines["single"].version(), "duckdb": engines["duckdb"].version}
        if trino:
            register_trino(trino, args.data, engines["duckdb"], args.trino_analyze)
            engines["trino"] = trino
            warm_up(trino)
            versions["trino"] = trino.version()
        stages = {q: engines["cluster"].stages(sql) for q, sql in QUERIES}
        multi = [q for q, st in stages.items() if st and any("tasks=1," not in line for line in st)]
        print(f"queries with a stage on more than one task in cluster: {len(multi)}", flush=True)
        lineitem = engines["duckdb"].count("lineitem")
        times, answers, failures = time_interleaved(engines, QUERIES, args.runs, reference=REFERENCE,
                                                    wait_quiet=not args.quick)
    finally:
        for engine in engines.values():
            engine.stop()
        if trino and "trino" not in engines:
            trino.stop()
    differ = [q for q, _ in QUERIES
              if any(answers[label].get(q) != answers["single"].get(q) for label in args.configs)]
    scaling, scan_stages = {}, {}
    if not args.quick:
        scaling, scan_stages = scaling_run(args.binary, work, args.data, max(args.runs, 9))
    return dict(times=times, failures=failures, cores=cores, versions=versions, multi=len(multi), differ=differ,
                lineitem=lineitem, sf=args.generate_sf or scale_of(lineitem), scaling=scaling, scan_stages=scan_stages)


def scale_of(lineitem: int) -> float:
    """The TPC-H scale factor of data whose lineitem has this many rows
    (6,001,215 at SF 1, 59,986,052 at SF 10)."""
    return round(lineitem / 6_000_000, 2)


def section_of(sf: float) -> str:
    """The RESULTS.md section of a run at scale `sf`: SF 1 keeps the plain
    heading, other scales get their own section beside it."""
    return SECTION if sf == 1 else f"{SECTION} at SF {sf:g}"


def chart_name(sf: float) -> str:
    """The chart's file name for a run at scale `sf` (tpch.png at SF 1)."""
    return "tpch.png" if sf == 1 else f"tpch-sf{sf:g}.png"


def show_logs(work: Path):
    """The last lines of the servers' logs, after a failure."""
    for log in sorted(work.glob("*/*.log")) + sorted(work.glob("trino/data/var/log/server.log")):
        tail = log.read_text(errors="replace").splitlines()[-15:]
        print(f"--- last lines of {log.relative_to(work)}:\n" + "\n".join(tail), file=sys.stderr)


def main():
    global BYTES_PER_PARTITION
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", required=True, help="a build of vivace (release for numbers)")
    ap.add_argument("--data", type=Path,
                    help="tpchgen-cli Parquet output folder (--quick: SF 0.01 in a temporary folder when absent)")
    ap.add_argument("--generate-sf", type=float, help="generate the data with tpchgen-cli at this scale first")
    ap.add_argument("--runs", type=int, default=3, help="timed runs per query and engine, after one warm-up")
    ap.add_argument("--out", type=Path, default=ROOT / "benches" / "RESULTS.md")
    ap.add_argument("--no-write", action="store_true", help="print the report, write nothing")
    ap.add_argument("--trino", action=argparse.BooleanOptionalAction, default=None,
                    help="run Trino beside the others (default: yes, but not with --quick)")
    # At SF 1, q21's hash build needs more than the 512 MB per node a 2G heap
    # allows (EXCEEDED_LOCAL_MEMORY_LIMIT); 6G gives Trino 1.5 GB per node.
    ap.add_argument("--configs", type=lambda s: s.split(","), default=list(VIVACE),
                    help=f"the Vivace configurations to run, comma-separated (default: {','.join(VIVACE)}; "
                    "also single-pf, single with Parquet filter pushdown); single and cluster are always run, "
                    "the ratios need them")
    ap.add_argument("--trino-analyze", action=argparse.BooleanOptionalAction, default=True,
                    help="ANALYZE Trino's tables before timing (its cost-based optimizer needs the statistics)")
    ap.add_argument("--trino-heap", default="6G", help="Trino's -Xmx (e.g. 6G, 8G, 4096M)")
    ap.add_argument("--bytes-per-partition", type=int,
                    help="SET distributed.file_scan_config_bytes_per_partition in every session")
    ap.add_argument("--scaling-only", action="store_true",
                    help="run only the worker-scaling part and print it (the output file is left alone)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: SF 0.01 unless --data, 1 run, no Trino, no scaling part; never writes")
    args = ap.parse_args()
    BYTES_PER_PARTITION = args.bytes_per_partition
    unknown = set(args.configs) - set(VIVACE) - set(OPTIONAL)
    if unknown:
        sys.exit(f"--configs: unknown configuration(s) {', '.join(sorted(unknown))}; "
                 f"known: {', '.join(VIVACE + OPTIONAL)}")
    args.configs = [c for c in VIVACE + OPTIONAL if c in set(args.configs) | {"single", "cluster"}]
    if args.quick:
        args.runs, args.no_write = 1, True
    if args.trino is None:
        args.trino = not args.quick
    if args.runs < 1:
        sys.exit("--runs must be at least 1")
    if args.data is None and not args.quick:
        sys.exit("--data is required (but with --quick)")
    require_binary(args.binary)

    work, started = begin_run("vivace-bench-")
    try:
        if args.data is None:
            args.data, args.generate_sf = work / f"tpch-sf{QUICK_SF:g}", QUICK_SF
        if args.generate_sf:
            generate(args.generate_sf, args.data)
        args.data = args.data.resolve()
        if args.scaling_only:
            scaling, scan_stages = scaling_run(args.binary, work, args.data, max(args.runs, 9))
            print("\n".join([f"Machine: {machine()}.  ",
                             f"Command: `python3 benches/tpch.py {' '.join(sys.argv[1:])}`"]
                            + scaling_report(scaling, scan_stages, max(args.runs, 9))))
            return
        try:
            run = measure(args, work)
        except BaseException:
            show_logs(work)
            raise
        name = chart_name(run["sf"])
        chart_path = work / name if args.no_write else args.out.parent / name
        chart = draw_chart(run["times"], chart_path)
        publish(report(args, run, chart), args.out, section_of(run["sf"]), chart_path, chart, args.no_write,
                started)
        failed = [f"{q}, {label}: {why}" for label, f in run["failures"].items() for q, why in f.items()]
        if failed:
            sys.exit("FAILED:\n  " + "\n  ".join(failed))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
