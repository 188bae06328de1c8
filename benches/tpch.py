#!/usr/bin/env python3
"""TPC-H through Vivace, three ways side by side, plus worker scaling.

Runs the 22 TPC-H queries (tests/tpch/) against:
  single    `vivace serve --workers 0`: DataFusion 55.2 in one process, no
            distributed planning (the baseline)
  single-bc the same, with the join broadcast thresholds distributed sessions
            use (32 MiB / 1M rows instead of 1 MiB / 128K rows), to separate the
            cost of distribution from that planning choice
  embedded  `vivace serve` with its default embedded workers
  cluster   a coordinator (--workers 0) and 2 `vivace worker` processes
and a scan-heavy query on a cluster of 1 and of 2 workers, each worker pinned to
its own core with taskset (the coordinator on the same cores). Every configuration reads the
same Parquet files (tpchgen-cli) through CREATE EXTERNAL TABLE and is queried
over the PostgreSQL protocol with psycopg2. Writes a Markdown report.

  python3 benches/tpch.py --binary target/release/vivace --data /tmp/tpch-sf1 \\
      --generate-sf 1 --runs 3 --out benches/RESULTS.md
  python3 benches/tpch.py --binary target/release/vivace --data /tmp/tpch-sf1 \\
      --runs 9 --scaling-only      # the worker-scaling part alone, printed

tpchgen-cli comes from PyPI (`pip install tpchgen-cli`) or crates.io.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg2

from benchlib import free_port, machine, wait_port

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

    def stop(self):
        for p in self.procs:
            p.kill()
            p.wait()


def time_queries(dep, queries, runs):
    """Median seconds per query (after one warm-up run), and the rows for checking."""
    times, answers = time_interleaved({"only": dep}, queries, runs)
    return times["only"], answers["only"]


def time_interleaved(deployments, queries, runs):
    """Per deployment: median seconds per query, and the rows for checking.

    For each query every deployment runs once to warm up, then the timed runs go
    round the deployments in turn, so all of them sample the same machine
    conditions: the development machines are shared, and their speed drifts by
    tens of percent over the minutes one configuration's 22 queries take."""
    conns = {label: dep.connect() for label, dep in deployments.items()}
    times = {label: {} for label in deployments}
    answers = {label: {} for label in deployments}
    try:
        for name, sql in queries:
            samples = {label: [] for label in deployments}
            for label, conn in conns.items():
                with conn.cursor() as cur:
                    cur.execute(sql)
                    answers[label][name] = cur.fetchall()
            for _ in range(runs):
                for label, conn in conns.items():
                    with conn.cursor() as cur:
                        start = time.perf_counter()
                        cur.execute(sql)
                        cur.fetchall()
                        samples[label].append(time.perf_counter() - start)
            for label in deployments:
                times[label][name] = statistics.median(samples[label])
            print(f"  {name}: " + ", ".join(f"{label} {times[label][name]:.3f}s" for label in deployments),
                  flush=True)
    finally:
        for conn in conns.values():
            conn.close()
    return times, answers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True, help="a release build of vivace")
    ap.add_argument("--data", required=True, type=Path, help="tpchgen-cli Parquet output folder")
    ap.add_argument("--generate-sf", type=float, help="generate the data with tpchgen-cli at this scale first")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "benches" / "RESULTS.md")
    ap.add_argument("--bytes-per-partition", type=int,
                    help="SET distributed.file_scan_config_bytes_per_partition in every session")
    ap.add_argument("--scaling-only", action="store_true",
                    help="run only the worker-scaling part and print it (the output file is left alone)")
    args = ap.parse_args()
    global BYTES_PER_PARTITION
    BYTES_PER_PARTITION = args.bytes_per_partition

    if args.generate_sf:
        shutil.rmtree(args.data, ignore_errors=True)
        subprocess.run(["tpchgen-cli", "parquet", "-s", str(args.generate_sf), "--parts", "4", "-o", str(args.data)],
                       check=True)
    work = Path(tempfile.mkdtemp(prefix="vivace-bench-"))
    cores = os.cpu_count() or 2
    results, answers, multi = {}, {}, []
    configs = [("single", dict(embedded_workers=0)),
               ("single-bc", dict(embedded_workers=0, settings=BROADCAST_SETTINGS)),
               ("embedded", dict(embedded_workers=cores)),
               ("cluster", dict(embedded_workers=0, remote_workers=2))]
    # All of them run side by side, idle but for the query being timed.
    deps = {}
    if args.scaling_only:
        configs = []
    try:
        for label, kw in configs:
            deps[label] = Deployment(args.binary, work / label, **kw)
            deps[label].register(args.data)
        if deps:
            multi = [q for q, sql in QUERIES
                     if any("tasks=1," not in st for st in deps["cluster"].stages(sql))
                     and deps["cluster"].stages(sql)]
            print(f"queries with a stage on more than one task in cluster: {len(multi)}", flush=True)
            results, answers = time_interleaved(deps, QUERIES, args.runs)
    finally:
        for dep in deps.values():
            dep.stop()
    for label in () if args.scaling_only else ("single-bc", "embedded", "cluster"):
        wrong = [q for q, _ in QUERIES if answers[label][q] != answers["single"][q]]
        if wrong:
            sys.exit(f"{label} gave different answers for {wrong}")

    scaling, scan_stages = {}, {}
    if cores >= 2 and shutil.which("taskset"):
        # Each worker on a core of its own (the last n cores), and the coordinator
        # on the same n cores, so that n cores do all the work either way: with
        # one worker datafusion-distributed elides one-task stages and the
        # coordinator runs the plan itself. Sessions plan 2 partitions per task
        # (target_partitions = 2; with 1 there is no repartition to cut stages
        # at), so the scan is cut into one task per worker whatever the
        # coordinator's own core count. Both clusters run side by side and take
        # turns, as above.
        deps = {}
        try:
            for n in (1, 2):
                cpus = [str(cores - n + i) for i in range(n)]
                deps[n] = Deployment(args.binary, work / f"scale{n}", 0, remote_workers=n,
                                     pin=[",".join(cpus)] + cpus,
                                     settings=[("datafusion.execution.target_partitions", 2)])
                deps[n].register(args.data)
                scan_stages[n] = deps[n].stages(SCAN_QUERY)
                print(f"scan, {n} worker(s): {scan_stages[n]}", flush=True)
            times, _ = time_interleaved(deps, [("scan", SCAN_QUERY)], max(args.runs, 9))
            scaling = {n: times[n]["scan"] for n in deps}
        finally:
            for dep in deps.values():
                dep.stop()

    scaling_lines = []
    if scaling:
        scaling_lines += ["", "Worker scaling, scan-heavy query (each worker pinned to its own core, the "
                          "coordinator pinned to the workers' cores, `SET datafusion.execution.target_partitions = 2` "
                          "so that tasks follow workers, not the coordinator's cores; with one worker the "
                          "coordinator runs the one-task plan itself, on that worker's core; both clusters side "
                          f"by side, median of {max(args.runs, 9)} turns each):", "",
                          "| workers | time (s) | stages |", "|---:|---:|---|"]
        scaling_lines += [f"| {n} | {t:.3f} | {'; '.join(scan_stages[n]) or 'not distributed'} |"
                          for n, t in scaling.items()]
        scaling_lines += ["", f"Speed-up from 1 to 2 workers: **{scaling[1] / scaling[2]:.2f}x**.", "",
                          f"Query: `{SCAN_QUERY}`"]
    if args.scaling_only:
        print("\n".join([f"Machine: {machine()}.  ",
                         f"Command: `python3 benches/tpch.py {' '.join(sys.argv[1:])}`"] + scaling_lines))
        return
    total = {k: sum(v.values()) for k, v in results.items()}
    lines = [
        "# Benchmark results", "",
        f"Machine: {machine()}.  ",
        f"Data: TPC-H from `tpchgen-cli parquet --parts 4` at `{args.data.name}`.  ",
        f"Command: `python3 benches/tpch.py {' '.join(sys.argv[1:])}`  ",
        f"Each time is the median of {args.runs} runs after one warm-up, the configurations running "
        "side by side and taking turns query by query; answers of every configuration were checked equal "
        "to `single`.  ",
        "Scan splitting: " + (f"`SET distributed.file_scan_config_bytes_per_partition = {BYTES_PER_PARTITION}` "
                              "in every session." if BYTES_PER_PARTITION else "the 16 MiB default."),
        "",
        f"In `cluster`, {len(multi)} of 22 queries had a stage split over more than one task.",
        "",
        "Configurations: `single` = `vivace serve --workers 0` (DataFusion 55.2 in one process, no "
        "distributed planning); `single-bc` = the same with the join broadcast thresholds of distributed "
        "sessions (`hash_join_single_partition_threshold` 32 MiB, `_rows` 1M); "
        f"`embedded` = `vivace serve --workers {cores}`; `cluster` = coordinator "
        "`--workers 0` + 2 `vivace worker` processes on the same machine.", "",
        "| query | single (s) | single-bc (s) | embedded (s) | cluster (s) | embedded / single "
        "| cluster / single | embedded / single-bc | cluster / single-bc |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    keys = ("single", "single-bc", "embedded", "cluster")
    ratios = (("embedded", "single"), ("cluster", "single"), ("embedded", "single-bc"), ("cluster", "single-bc"))
    for q, _ in QUERIES:
        cells = [f"{results[k][q]:.3f}" for k in keys] + [f"{results[a][q] / results[b][q]:.2f}" for a, b in ratios]
        lines.append(f"| {q} | " + " | ".join(cells) + " |")
    cells = [f"{total[k]:.2f}" for k in keys] + [f"{total[a] / total[b]:.2f}" for a, b in ratios]
    lines.append("| **total** | " + " | ".join(f"**{c}**" for c in cells) + " |")
    lines += scaling_lines
    # Keep the sections other benchmarks write (benches/postgres.py).
    kept = ""
    if args.out.exists():
        previous = args.out.read_text()
        at = previous.find("\n# PostgreSQL connector\n")
        if at >= 0:
            kept = "\n" + previous[at:].lstrip("\n")
    args.out.write_text("\n".join(lines) + "\n" + kept)
    print(args.out.read_text())


if __name__ == "__main__":
    main()
