#!/usr/bin/env python3
"""Resource groups: do a dashboard's small queries keep answering while heavy
scans run (issue 19, point 4)?

Two release `vivace serve --workers 0` processes run side by side over the same
TPC-H Parquet files (tpchgen-cli, registered with CREATE EXTERNAL TABLE … STORED
AS PARQUET): `plain`, started without a configuration file (every query in the
unlimited `global` group), and `grouped`, started with `--config` declaring

  [resource_groups.adhoc]      max_running = 1, max_queued = 10, applications = ["adhoc*"],
                               cpu_share = 0.5 (--adhoc-cpu-share; 0: none)
  [resource_groups.dashboard]  max_running = 8, max_queued = 100, applications = ["dashboard*"]

Three configurations are timed, taking turns run by run (the order reversed
every other run, so that none always follows another):

  no load    the dashboard stream alone, on `plain` (the floor)
  no groups  4 heavy scans, each on its own connection (application_name
             `adhoc-…`) in its own thread, started on `plain`; once the watcher
             has seen all 4 in system.queries, the dashboard stream starts
  groups     the same on `grouped`: the `adhoc` group runs 1 heavy scan at a
             time and queues the other 3, the dashboards have the rest

The dashboard stream is 4 clients (application_name `dashboard-…`, connected
beforehand) that each run 5 small queries, pausing 0.5 s between them (--pause;
the clients start staggered across one pause, so the stream samples a few
seconds of the heavy scans' lives rather than their first instant) — 20 queries
per run, cycling through three panels: a nation ⋈ region lookup, a point lookup
in `orders` and a per-nation count over `customer`. Each query's latency is the
time from execute() to the end of fetchall(); the report gives p50, p95
(nearest rank) and max over all runs, the ratios groups / no groups, and the
heavy scans' total wall time (first started to last finished: the groups
serialise them, so it may be longer). --dashboard-clients, --dashboard-queries
and --heavy-scans change the counts (`--dashboard-clients 1 --dashboard-queries
20 --pause 0` is one client's back-to-back stream). Every dashboard answer is
checked against the same query's answer on the idle `plain` server, every heavy
answer against the first one.

During every run a watcher connection (application_name `groups-bench-watcher`,
in `global`) polls `SELECT query_id, state, application_name FROM
system.queries` (live queries only) every 100 ms; the heavy scans it saw
`queued` are counted, and after each run system.queries gives each query's
state, resource_group and queued_ms (on `grouped` the dashboards must be in
`dashboard` and never queued, the heavy scans in `adhoc`; on `plain` all in
`global`; every query `finished`).

Unless --no-write, the report replaces the "Resource groups" section of
RESULTS.md and a box plot (matplotlib; skipped if it is missing) goes to
benches/groups.png. --quick is the smoke test: the server's own TPC-H demo
tables (`--demo`, SF 0.01, no data files needed), a CPU-bound generate_series
aggregate as the heavy scan, one run, nothing written, about 10 s; it exits
non-zero on a wrong answer, a failed query, a query in the wrong group or when
no heavy scan was seen queued in the groups configuration.

  cargo build --release --bin vivace
  pip install psycopg2-binary==2.9.10 [matplotlib==3.10.0]
  python3 benches/groups.py --binary target/release/vivace --data /tmp/tpch-sf1 \\
      [--generate-sf 1] [--runs 5] [--workers 0]
  python3 benches/groups.py --binary target/release/vivace --quick
"""

import argparse
import math
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path

import psycopg2

from benchlib import begin_run, free_port, machine, publish, require_binary, source_commit, wait_port

ROOT = Path(__file__).resolve().parents[1]
SECTION = "# Resource groups"
TABLES = ["region", "nation", "customer", "orders", "lineitem"]
DASHBOARD_CLIENTS = 4
DASHBOARD_QUERIES = 5  # per client, --pause seconds apart
HEAVY_SCANS = 4
ADHOC_CPU_SHARE = 0.5
POLL_S = 0.1
# Finished queries system.queries keeps: enough for one run's queries and the
# watcher's polls (10 a second), few enough that listing them stays cheap.
QUERY_HISTORY = 2000
WATCHER = "groups-bench-watcher"
# About 3 s alone on 2 cores at SF 1 (a three-way join and a COUNT DISTINCT).
HEAVY_SQL = ("SELECT c_nationkey, count(DISTINCT l_partkey), sum(l_extendedprice * (1 - l_discount)) "
             "FROM lineitem JOIN orders ON l_orderkey = o_orderkey JOIN customer ON o_custkey = c_custkey "
             "GROUP BY 1 ORDER BY 1")
# --quick: CPU-bound, about 0.3 s alone on 2 cores, and no data files needed.
QUICK_HEAVY_SQL = "SELECT count(*), sum(x % 7) FROM generate_series(1, 30000000) AS t(x)"
PANELS = [
    "SELECT n_name, r_name FROM nation JOIN region ON n_regionkey = r_regionkey WHERE n_nationkey = {k}",
    "SELECT o_orderstatus, o_totalprice, o_orderdate FROM orders WHERE o_orderkey = {key}",
    "SELECT count(*), sum(c_acctbal) FROM customer WHERE c_nationkey = {k}",
]
GROUPS_TOML = """\
# benches/groups.py: the heavy scans' group runs one query at a time, the dashboards' {dashboard_running}.
[resource_groups.adhoc]
max_running = 1
max_queued = 10
applications = ["adhoc*"]
{adhoc_cpu_share}
[resource_groups.dashboard]
max_running = {dashboard_running}
max_queued = 100
applications = ["dashboard*"]
"""
CONFIGS = ("no load", "no groups", "groups")
LIVE = ("queued", "planning", "running")  # system.queries' states of a query not ended
SERVER_OF = {"no load": "plain", "no groups": "plain", "groups": "grouped"}


def dashboard_sql(client: int, j: int) -> str:
    """Query j of dashboard client `client`: the panels in turn, keys varying."""
    i = client * DASHBOARD_QUERIES + j
    # Order keys 32m+1 exist at every TPC-H scale factor (below 60,000 at SF 0.01).
    return PANELS[i % len(PANELS)].format(k=(7 * i + 3) % 25, key=32 * (37 * i % 1800) + 1)


def adhoc_share_line() -> str:
    """The adhoc group's `cpu_share` line (empty without one)."""
    return f"cpu_share = {ADHOC_CPU_SHARE:g}\n" if ADHOC_CPU_SHARE else ""


def dashboard_running() -> int:
    """The dashboard group's max_running: room for every dashboard client."""
    return max(8, DASHBOARD_CLIENTS)


def percentile(values, p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


class Server:
    """A `vivace serve` process, with an optional configuration file; stop()
    kills it whatever state it reached."""

    def __init__(self, binary: str, work: Path, name: str, workers: int, config: str = None, demo=False):
        self.name, self.port = name, free_port()
        work.mkdir(parents=True)
        self.log_path = work / "vivace.log"
        cmd = [binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir", str(work / "data"),
               "--workers", str(workers), "--query-history", str(QUERY_HISTORY)]
        if config is not None:
            (work / "vivace.toml").write_text(config)
            cmd += ["--config", str(work / "vivace.toml")]
        if demo:
            cmd += ["--demo"]
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)

    def start(self, data: Path = None):
        wait_port(self.port, self.proc, f"vivace ({self.name})", timeout=120)
        # The port is taken before the demo tables are ready: clients that
        # connect early wait (a debug build takes a while), so retry.
        deadline = time.time() + 180
        while True:
            try:
                self.connect(WATCHER).close()
                break
            except psycopg2.OperationalError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise
        if data is not None:
            with closing(self.connect(WATCHER)) as conn, conn.cursor() as cur:
                for t in TABLES:
                    cur.execute(f"CREATE EXTERNAL TABLE {t} STORED AS PARQUET LOCATION '{data / t}/'")

    def connect(self, application: str):
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="vivace", dbname="vivace",
                                application_name=application, connect_timeout=10)
        conn.autocommit = True
        return conn

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def rows(conn, sql):
    with conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


class Watcher(threading.Thread):
    """Polls system.queries every POLL_S seconds; remembers, per application
    prefix, the query ids seen in each state."""

    def __init__(self, server: Server):
        super().__init__(daemon=True)
        self.conn = server.connect(WATCHER)
        self.stopping = threading.Event()
        self.seen = {}  # (application, state) -> set of query ids
        self.polls = 0
        self.error = None
        self.lock = threading.Lock()

    def run(self):
        try:
            while not self.stopping.is_set():
                for query_id, state, app in rows(self.conn, "SELECT query_id, state, application_name "
                                                            "FROM system.queries WHERE state IN "
                                                            f"{LIVE}"):
                    if app and app != WATCHER:
                        with self.lock:
                            self.seen.setdefault((app, state), set()).add(query_id)
                self.polls += 1
                self.stopping.wait(POLL_S)
        except Exception as e:  # reported by the caller
            self.error = e

    def ids(self, prefix: str, states) -> set:
        with self.lock:
            return set().union(*(ids for (app, state), ids in self.seen.items()
                                 if app.startswith(prefix) and state in states))

    def finish(self):
        self.stopping.set()
        self.join()
        self.conn.close()
        if self.error:
            raise RuntimeError(f"the watcher's poll of system.queries failed: {self.error}")


def scenario(server: Server, config: str, run: int, heavy_sql: str, pause: float):
    """One run of `config` on `server`: the heavy scans (unless no load), then
    the dashboard stream; the samples, answers and what the watcher saw."""
    tag = f"r{run}-{config.replace(' ', '')}"
    dash_conns = [server.connect(f"dashboard-{tag}-c{c}") for c in range(DASHBOARD_CLIENTS)]
    heavy_conns = [] if config == "no load" else [server.connect(f"adhoc-{tag}-h{h}") for h in range(HEAVY_SCANS)]
    watcher = Watcher(server)
    watcher.start()
    heavy = [dict() for _ in heavy_conns]
    dash = [[None] * DASHBOARD_QUERIES for _ in dash_conns]

    def heavy_scan(h):
        try:
            heavy[h]["answer"] = rows(heavy_conns[h], heavy_sql)
        except Exception as e:
            heavy[h]["error"] = f"{type(e).__name__}: {e}".strip()
        heavy[h]["end"] = time.perf_counter()

    def dashboard(c):
        # The clients start staggered across one pause, then pause between queries.
        time.sleep(pause * c / len(dash_conns))
        for j in range(DASHBOARD_QUERIES):
            if j:
                time.sleep(pause)
            start = time.perf_counter()
            try:
                answer = rows(dash_conns[c], dashboard_sql(c, j))
            except Exception as e:
                answer = f"error: {type(e).__name__}: {e}".strip()
            dash[c][j] = (time.perf_counter() - start, answer)

    try:
        heavy_start = time.perf_counter()
        heavy_threads = [threading.Thread(target=heavy_scan, args=(h,), daemon=True)
                         for h in range(len(heavy_conns))]
        for t in heavy_threads:
            t.start()
        # The dashboards start once every heavy scan has reached the server
        # (seen queued, planning or running), or ended already.
        deadline = time.time() + 60
        while heavy_threads and len(watcher.ids(f"adhoc-{tag}", LIVE)) < len(heavy):
            if all(not t.is_alive() for t in heavy_threads) or watcher.error:
                break
            if time.time() > deadline:
                raise RuntimeError(f"{config}: the heavy scans did not show up in system.queries within 60 s")
            time.sleep(0.01)
        dash_threads = [threading.Thread(target=dashboard, args=(c,), daemon=True)
                        for c in range(len(dash_conns))]
        for t in dash_threads:
            t.start()
        for t in dash_threads:
            t.join()
        running_after_dashboards = sum(t.is_alive() for t in heavy_threads)
        for t in heavy_threads:
            t.join()
        watcher.finish()
        # Each query's record, once all of them have ended (a query's record may
        # lag a moment behind the last row its client received).
        expected = len(dash_conns) * DASHBOARD_QUERIES + len(heavy_conns)
        with closing(server.connect(WATCHER)) as conn:
            for _ in range(50):
                history = rows(conn, "SELECT application_name, state, resource_group, queued_ms "
                                     f"FROM system.queries WHERE application_name LIKE '%-{tag}-%'")
                if len(history) >= expected and not any(h[1] in LIVE for h in history):
                    break
                time.sleep(0.1)
    finally:
        for conn in dash_conns + heavy_conns:
            conn.close()
    return dict(
        config=config,
        samples=[s for client in dash for s, _ in client],
        answers={(c, j): dash[c][j][1] for c in range(len(dash)) for j in range(DASHBOARD_QUERIES)},
        heavy=heavy,
        heavy_wall=max(h["end"] for h in heavy) - heavy_start if heavy else None,
        heavy_seen_queued=len(watcher.ids(f"adhoc-{tag}", ("queued",))),
        dash_seen_queued=len(watcher.ids(f"dashboard-{tag}", ("queued",))),
        running_after_dashboards=running_after_dashboards,
        polls=watcher.polls,
        history=history,
    )


def check(result, reference, heavy_reference, problems):
    """Append to `problems` what is wrong with one scenario's result."""
    config = result["config"]
    for key, answer in result["answers"].items():
        if answer != reference[key]:
            problems.append(f"{config}: dashboard query {dashboard_sql(*key)!r} answered {answer!r}, "
                            f"not {reference[key]!r} as on the idle server")
    for h in result["heavy"]:
        if "error" in h:
            problems.append(f"{config}: a heavy scan failed: {h['error']}")
        elif h["answer"] != heavy_reference:
            problems.append(f"{config}: a heavy scan gave a different answer from the first one")
    groups = {}
    for app, state, group, queued_ms in result["history"]:
        kind = app.split("-")[0]
        groups.setdefault(kind, set()).add(group)
        if kind == "dashboard" and queued_ms:
            problems.append(f"{config}: a query of {app} waited {queued_ms} ms in resource group {group}")
        if kind == "adhoc" and queued_ms:
            result["heavy_queued_history"] = result.get("heavy_queued_history", 0) + 1
        if state != "finished":
            problems.append(f"{config}: system.queries says a query of {app} ended {state}")
    want = {"dashboard": {"dashboard"}, "adhoc": {"adhoc"}} if config == "groups" else \
        {"dashboard": {"global"}, "adhoc": {"global"}}
    for kind, n in (("dashboard", DASHBOARD_CLIENTS * DASHBOARD_QUERIES),
                    ("adhoc", 0 if config == "no load" else HEAVY_SCANS)):
        found = sum(1 for app, *_ in result["history"] if app.startswith(kind + "-"))
        if found != n:
            problems.append(f"{config}: system.queries lists {found} {kind} queries, not {n}")
        elif n and groups.get(kind) != want[kind]:
            problems.append(f"{config}: the {kind} queries ran in resource group(s) {groups.get(kind)}, "
                            f"not {want[kind]}")
    if config == "groups" and result["heavy_seen_queued"] == 0:
        problems.append("groups: the watcher never saw a heavy scan `queued` in system.queries")
    if result["dash_seen_queued"]:
        problems.append(f"{config}: the watcher saw {result['dash_seen_queued']} dashboard queries queued")


def measure(args, work: Path, heavy_sql: str):
    """Start both servers, take the reference answers, run the scenarios;
    (results by configuration, problems). Both servers are stopped whatever
    happens."""
    servers = {}
    try:
        demo = args.quick
        servers["plain"] = Server(args.binary, work / "plain", "plain", args.workers, demo=demo)
        servers["grouped"] = Server(args.binary, work / "grouped", "grouped", args.workers,
                                    GROUPS_TOML.format(dashboard_running=dashboard_running(),
                                                       adhoc_cpu_share=adhoc_share_line()), demo=demo)
        for s in servers.values():
            s.start(None if demo else args.data)
        # Reference answers on the idle servers (warming both up, too).
        answers, heavy_answers = {}, {}
        for name, s in servers.items():
            with closing(s.connect(WATCHER)) as conn:
                answers[name] = {(c, j): rows(conn, dashboard_sql(c, j))
                                 for c in range(DASHBOARD_CLIENTS) for j in range(DASHBOARD_QUERIES)}
                start = time.perf_counter()
                heavy_answers[name] = rows(conn, heavy_sql)
                print(f"  {name}: one heavy scan alone took {time.perf_counter() - start:.2f} s", flush=True)
        problems = []
        if answers["grouped"] != answers["plain"] or heavy_answers["grouped"] != heavy_answers["plain"]:
            problems.append("the two idle servers gave different answers")
        if not any(answers["plain"].values()):
            problems.append("every dashboard query returned no rows: the tables are empty or missing")
        results = {c: [] for c in CONFIGS}
        for r in range(args.runs):
            for config in CONFIGS[::1 if r % 2 == 0 else -1]:
                res = scenario(servers[SERVER_OF[config]], config, r, heavy_sql, args.pause)
                check(res, answers["plain"], heavy_answers["plain"], problems)
                results[config].append(res)
                wall = f", heavy scans {res['heavy_wall']:.2f} s" if res["heavy_wall"] else ""
                print(f"  run {r + 1} {config}: dashboards p50 {statistics.median(res['samples']) * 1e3:.1f} ms, "
                      f"max {max(res['samples']) * 1e3:.1f} ms{wall}, heavy scans seen queued "
                      f"{res['heavy_seen_queued']}, still running after the dashboards "
                      f"{res['running_after_dashboards']}", flush=True)
        return results, problems
    finally:
        for s in servers.values():
            s.stop()


def summarise(results):
    summary = {}
    for config, runs in results.items():
        samples = [s * 1e3 for r in runs for s in r["samples"]]
        walls = [r["heavy_wall"] for r in runs if r["heavy_wall"] is not None]
        summary[config] = dict(
            n=len(samples), samples=samples, p50=statistics.median(samples), p95=percentile(samples, 95),
            max=max(samples), wall=statistics.median(walls) if walls else None,
            queued=[f"{r['heavy_seen_queued']} / {r.get('heavy_queued_history', 0)}" for r in runs],
            overlap=[r["running_after_dashboards"] for r in runs])
    return summary


def draw_chart(summary, args, path: Path) -> bool:
    """A box plot of the dashboards' latencies per configuration; False when
    matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.boxplot([summary[c]["samples"] for c in CONFIGS], whis=(5, 95))
    ax.set_xticks(range(1, len(CONFIGS) + 1),
                  [f"{c}\np50 {summary[c]['p50']:.0f} ms, p95 {summary[c]['p95']:.0f} ms" for c in CONFIGS])
    ax.set_ylim(bottom=0)
    ax.set_ylabel("dashboard query latency (ms)")
    ax.set_title(f"{DASHBOARD_CLIENTS} dashboard clients × {DASHBOARD_QUERIES} queries, {args.runs} run(s); "
                 f"{HEAVY_SCANS} heavy scans beside them (none in no load)\n(box: quartiles, whiskers: p5–p95, circles: beyond)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def report(args, summary, heavy_sql, chart) -> str:
    data = "the server's TPC-H demo tables (`--demo`, SF 0.01)" if args.quick else \
        f"TPC-H Parquet files (tpchgen-cli) in `{args.data}`"
    pause = f"waiting {args.pause:g} s between its queries (the clients start staggered across one pause)" \
        if args.pause else "back to back"
    lines = [
        SECTION, "",
        f"Machine: {machine()}.  ",
        f"Vivace at commit {source_commit()}.  ",
        f"Command: `python3 benches/groups.py {' '.join(sys.argv[1:])}`  ",
        f"Two `vivace serve --workers {args.workers}` side by side over {data}: `plain` without a "
        "configuration file (every query in the unlimited `global` group) and `grouped` with "
        "`[resource_groups.adhoc] max_running = 1, max_queued = 10, applications = [\"adhoc*\"]"
        + (f", cpu_share = {ADHOC_CPU_SHARE:g}" if ADHOC_CPU_SHARE else "") + "` and "
        f"`[resource_groups.dashboard] max_running = {dashboard_running()}, max_queued = 100, "
        "applications = [\"dashboard*\"]`. "
        f"The dashboard stream: {DASHBOARD_CLIENTS} clients (`application_name` `dashboard-…`, connected "
        f"beforehand), each running {DASHBOARD_QUERIES} small queries, {pause}: "
        f"{DASHBOARD_CLIENTS * DASHBOARD_QUERIES} per run, latency from execute to the last row, cycling "
        "through " + "; ".join(f"`{p.format(k='K', key='KEY')}`" for p in PANELS) + ". "
        f"Heavy scan: `{heavy_sql}`, {HEAVY_SCANS} at once, each on its own connection (`adhoc-…`); the "
        "dashboards start once a watcher polling `system.queries` has seen all of them. *no load*: the "
        "dashboards alone on `plain`; *no groups*: beside the heavy scans on `plain`; *groups*: beside them "
        f"on `grouped`, where `adhoc` runs one at a time and queues the rest. {args.runs} run(s), the "
        "configurations taking turns (order reversed every other run); percentiles over all runs' queries "
        "(nearest rank). Every dashboard answer matched the idle server's, every heavy answer the first one, "
        "every query finished, and `system.queries` put each in the group expected (`dashboard` / `adhoc` "
        "on `grouped`, `global` on `plain`) with no dashboard query ever queued.",
        "",
        "| configuration | dashboard queries | p50 (ms) | p95 (ms) | max (ms) | heavy scans' wall time "
        "(s, median) | heavy scans seen `queued` / with `queued_ms` > 0, per run | heavy scans still running "
        "when the dashboards ended, per run |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for c in CONFIGS:
        s = summary[c]
        wall = f"{s['wall']:.2f}" if s["wall"] is not None else "–"
        queued = ", ".join(s["queued"]) if c != "no load" else "–"
        overlap = ", ".join(str(o) for o in s["overlap"]) if c != "no load" else "–"
        lines.append(f"| {c} | {s['n']} | {s['p50']:.1f} | {s['p95']:.1f} | {s['max']:.1f} | {wall} | "
                     f"{queued} | {overlap} |")
    g, n, f = summary["groups"], summary["no groups"], summary["no load"]
    if g["p95"] < n["p95"]:
        verdict = f"the `adhoc` group cut the dashboards' p95 by {100 * (1 - g['p95'] / n['p95']):.0f}%"
    else:
        verdict = "the `adhoc` group did not lower the dashboards' p95 here"
    wall_change = g["wall"] / n["wall"] - 1
    lines += [
        "",
        f"Groups / no groups: p50 **{g['p50'] / n['p50']:.2f}**, p95 **{g['p95'] / n['p95']:.2f}**, "
        f"max {g['max'] / n['max']:.2f}; heavy scans' wall time {g['wall'] / n['wall']:.2f}.  ",
        f"Against the no-load floor: no groups p50 {n['p50'] / f['p50']:.1f}x, p95 {n['p95'] / f['p95']:.1f}x; "
        f"groups p50 {g['p50'] / f['p50']:.1f}x, p95 {g['p95'] / f['p95']:.1f}x.",
        "",
        f"Reading: beside the {HEAVY_SCANS} heavy scans the dashboards' p50 went from {f['p50']:.0f} ms idle to "
        f"{n['p50']:.0f} ms without groups and {g['p50']:.0f} ms with them, their p95 from {f['p95']:.0f} ms to "
        f"{n['p95']:.0f} and {g['p95']:.0f} ms: {verdict}. The heavy scans, one at a time instead of "
        f"{HEAVY_SCANS} at once, took {g['wall']:.1f} s in all instead of {n['wall']:.1f} s "
        f"({round(100 * wall_change):+d}%). " + (
            f"With `cpu_share = {ADHOC_CPU_SHARE:g}` the heavy scan running is planned on that fraction of the "
            "partitions, leaving the other cores to the dashboards." if ADHOC_CPU_SHARE else
            "Without a `cpu_share`, a group limits how many of its queries run at once, not how many cores "
            "each of them uses: the one heavy scan running may still take them all."),
        "",
        "![dashboard latency per configuration](groups.png)" if chart else
        "(Chart skipped: matplotlib is not installed.)", "",
    ]
    return "\n".join(lines)


def show_logs(work: Path):
    for log in sorted(work.glob("*/vivace.log")):
        tail = re.sub(r"\x1b\[[0-9;]*m", "", log.read_text(errors="replace")).splitlines()[-15:]
        print(f"--- last lines of {log.parent.name}/vivace.log:\n" + "\n".join(tail), file=sys.stderr)


def main():
    global DASHBOARD_CLIENTS, DASHBOARD_QUERIES, HEAVY_SCANS, ADHOC_CPU_SHARE
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", default=str(ROOT / "target" / "release" / "vivace"),
                    help="a release build of vivace")
    ap.add_argument("--data", type=Path, default=Path("/tmp/tpch-sf1"), help="tpchgen-cli Parquet output folder")
    ap.add_argument("--generate-sf", type=float, help="generate the data with tpchgen-cli at this scale first")
    ap.add_argument("--runs", type=int, default=5, help="runs of each configuration")
    ap.add_argument("--workers", type=int, default=0, help="`vivace serve --workers`")
    ap.add_argument("--dashboard-clients", type=int, default=DASHBOARD_CLIENTS,
                    help="dashboard clients running at once")
    ap.add_argument("--dashboard-queries", type=int, default=DASHBOARD_QUERIES,
                    help="queries each dashboard client runs back to back")
    ap.add_argument("--pause", type=float, default=0.5,
                    help="seconds a dashboard client waits between its queries (0: back to back)")
    ap.add_argument("--heavy-scans", type=int, default=HEAVY_SCANS, help="heavy scans started at once")
    ap.add_argument("--adhoc-cpu-share", type=float, default=0.5,
                    help="the adhoc group's cpu_share (the fraction of partitions its queries run on; 0: none)")
    ap.add_argument("--out", type=Path, default=ROOT / "benches" / "RESULTS.md")
    ap.add_argument("--no-write", action="store_true", help="print the report, write nothing")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: demo tables, a generate_series heavy scan, 1 run; never writes")
    args = ap.parse_args()
    DASHBOARD_CLIENTS, DASHBOARD_QUERIES, HEAVY_SCANS = args.dashboard_clients, args.dashboard_queries, args.heavy_scans
    ADHOC_CPU_SHARE = args.adhoc_cpu_share
    if not 0 <= ADHOC_CPU_SHARE <= 1:
        sys.exit("--adhoc-cpu-share must be between 0 and 1")
    if min(DASHBOARD_CLIENTS, DASHBOARD_QUERIES, HEAVY_SCANS) < 1 or HEAVY_SCANS > 11:
        sys.exit("--dashboard-clients, --dashboard-queries and --heavy-scans must be at least 1, "
                 "--heavy-scans at most 11 (the adhoc group queues 10)")
    heavy_sql = HEAVY_SQL
    if args.quick:
        args.runs, args.no_write, args.pause, heavy_sql = 1, True, min(args.pause, 0.05), QUICK_HEAVY_SQL
    require_binary(args.binary)
    if not args.quick:
        if args.generate_sf:
            shutil.rmtree(args.data, ignore_errors=True)
            subprocess.run(["tpchgen-cli", "parquet", "-s", str(args.generate_sf), "--parts", "4",
                            "-o", str(args.data)], check=True)
        missing = [t for t in TABLES if not (args.data / t).is_dir()]
        if missing:
            sys.exit(f"no {', '.join(missing)} in {args.data} (--generate-sf 1 makes them with tpchgen-cli)")
        args.data = args.data.resolve()

    work, started = begin_run("vivace-groups-bench-")
    try:
        try:
            results, problems = measure(args, work, heavy_sql)
        except BaseException:
            show_logs(work)
            raise
        if problems:
            show_logs(work)
            sys.exit("FAILED:\n  " + "\n  ".join(problems))
        summary = summarise(results)
        chart_path = work / "groups.png" if args.no_write else args.out.parent / "groups.png"
        chart = draw_chart(summary, args, chart_path)
        text = report(args, summary, heavy_sql, chart)
        publish(text, args.out, SECTION, chart_path, chart, args.no_write, started)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
