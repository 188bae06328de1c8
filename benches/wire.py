#!/usr/bin/env python3
"""The wire protocol: pgbench against Vivace and PostgreSQL, and the server's
memory while it streams a large result (issue 20, point 3).

Writes a 10,000-row Parquet table `items` (id bigint, name text, price double)
with pyarrow, registers it in a release `vivace serve` (CREATE EXTERNAL TABLE …
STORED AS PARQUET), and loads the same rows into a throwaway PostgreSQL 15
(Debian's /usr/lib/postgresql/15/bin, run as the `postgres` OS user when we are
root) with `id` as primary key. After checking both return the right rows, it
runs pgbench with three custom scripts:

  select1  SELECT 1
  lookup   a point lookup, WHERE id = :id with a random id
  scan     1,000 rows, WHERE id BETWEEN :lo AND :lo + 999 with a random :lo

at 1, 8 and 32 clients (-j = min(clients, 2)), with the simple and the prepared
protocol (-M simple / -M prepared), Vivace and PostgreSQL taking turns run by
run (both over TCP on 127.0.0.1), and reports TPS, mean latency and the ratio
Vivace / PostgreSQL TPS for each case.

Then it streams `SELECT x, x * 2 AS y, 'row ' || x AS s FROM generate_series(1, N)`
from Vivace to `psql -At -c` (output counted, then dropped) and to a psycopg2
server-side named cursor (DECLARE/FETCH, itersize 10,000), 1M rows and then 10M,
sampling the server's VmRSS (/proc/<pid>/status) every 50 ms, and reports the
ratio peak(10M) / peak(1M) per client (target <= 1.2: the server's memory must
not grow with the result). The row counts are checked (the rows come in no
particular order: there is no ORDER BY, which would buffer them).

Unless --no-write, the report replaces the "Wire protocol" section of
RESULTS.md and a chart (matplotlib) goes to benches/wire.png. --quick is the
smoke test: 1-second runs at 1 and 8 clients, 100k vs 1M rows, nothing
written; it exits non-zero on any failure or wrong answer.

  cargo build --release --bin vivace
  pip install psycopg2-binary==2.9.10 pyarrow matplotlib==3.10.0
  python3 benches/wire.py --binary target/release/vivace [--duration 20] [--runs 1]
  python3 benches/wire.py --binary target/release/vivace --quick
"""

import argparse
import math
import os
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

from benchlib import begin_run, free_port, machine, publish, require_binary, require_postgres, source_commit, wait_port

ROOT = Path(__file__).resolve().parents[1]
PG_BIN = Path("/usr/lib/postgresql/15/bin")
SECTION = "# Wire protocol"
ITEMS = 10_000
SCRIPTS = {
    "select1": "SELECT 1;\n",
    "lookup": f"\\set id random(1, {ITEMS})\nSELECT id, name, price FROM items WHERE id = :id;\n",
    "scan": f"\\set lo random(1, {ITEMS - 999})\n"
            "SELECT id, name, price FROM items WHERE id BETWEEN :lo AND :lo + 999;\n",
}
MODES = ("simple", "prepared")
STREAM_SQL = "SELECT x, x * 2 AS y, 'row ' || x AS s FROM generate_series(1, {n}) AS t(x)"
KIB_PER_MIB = 1024


def item(i: int):
    """Row `i` of `items`, as both servers must return it."""
    return (i, f"item {i}", i * 0.25)


def run(cmd, what: str, timeout=None) -> str:
    """stdout of `cmd`; exits with its output when it fails."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        sys.exit(f"{what}: no answer after {timeout} s: {' '.join(cmd)}")
    if done.returncode != 0:
        sys.exit(f"{what} failed (exit {done.returncode}): {' '.join(cmd)}\n{done.stdout}{done.stderr}")
    return done.stdout


class Vivace:
    """A `vivace serve` process with `items` registered; stop() kills it whatever
    state it reached."""

    def __init__(self, binary: str, work: Path, workers: int):
        self.port = free_port()
        work.mkdir(parents=True)
        with open(work / "vivace.log", "w") as log:
            self.proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir",
                                          str(work / "data"), "--workers", str(workers)],
                                         stdout=log, stderr=subprocess.STDOUT)

    def start(self, items: Path):
        wait_port(self.port, self.proc, "vivace", timeout=60)
        with closing(self.connect()) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE EXTERNAL TABLE items STORED AS PARQUET LOCATION '{items}/'")

    def connect(self):
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="vivace", dbname="vivace",
                                connect_timeout=10)
        conn.autocommit = True
        return conn

    def stop(self):
        self.proc.kill()
        self.proc.wait()


class Postgres:
    """A throwaway PostgreSQL 15 cluster (as benches/postgres.py starts one), trust
    authentication, `items` loaded with a primary key."""

    def __init__(self, root: Path):
        self.root, self.data, self.port = root, root / "data", free_port()
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def start(self):
        self.root.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        run(self.as_postgres + [str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                                "-E", "UTF8", "--locale=C"], "initdb", timeout=120)
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        run(self.as_postgres + [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "pg.log"),
                                "-o", opts, "-w", "start"], "pg_ctl start", timeout=120)
        with closing(self.connect()) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, price double precision)")
            cur.execute(f"INSERT INTO items SELECT i, 'item ' || i, i * 0.25 FROM generate_series(1, {ITEMS}) i")
            cur.execute("VACUUM ANALYZE items")

    def connect(self):
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                                connect_timeout=10)
        conn.autocommit = True
        return conn

    def stop(self):
        if self.data.exists():
            subprocess.run(self.as_postgres + [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                                               "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def write_items(folder: Path):
    """`items` as one Parquet file in `folder`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    ids = range(1, ITEMS + 1)
    pq.write_table(pa.table({"id": pa.array(ids, pa.int64()), "name": [item(i)[1] for i in ids],
                             "price": [item(i)[2] for i in ids]}), folder / "items.parquet")


def check_answers(name: str, conn):
    """The three scripts' queries give the right rows through `conn`."""
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        if cur.fetchall() != [(1,)]:
            sys.exit(f"{name}: SELECT 1 gave a wrong answer")
        for i in (1, 4242, ITEMS):
            cur.execute("SELECT id, name, price FROM items WHERE id = %s", (i,))
            got = cur.fetchall()
            if got != [item(i)]:
                sys.exit(f"{name}: the lookup of id {i} gave {got}, not {[item(i)]}")
        cur.execute("SELECT id, name, price FROM items WHERE id BETWEEN %s AND %s + 999 ORDER BY id", (77, 77))
        if cur.fetchall() != [item(i) for i in range(77, 1077)]:
            sys.exit(f"{name}: the 1,000-row scan gave wrong rows")


def pgbench(work: Path, port: int, user: str, dbname: str, script: str, clients: int, mode: str, seconds: int):
    """(TPS without connection time, mean latency ms) of one pgbench run."""
    path = work / f"{script}.sql"
    path.write_text(SCRIPTS[script])
    cmd = ["pgbench", "-n", "-h", "127.0.0.1", "-p", str(port), "-U", user, "-f", str(path), "-c", str(clients),
           "-j", str(min(clients, 2)), "-T", str(seconds), "-M", mode, dbname]
    out = run(cmd, f"pgbench {script} -M {mode} -c {clients} on {dbname}", timeout=seconds + 120)
    tps = re.search(r"^tps = ([\d.]+) \(without initial connection time\)", out, re.M)
    latency = re.search(r"^latency average = ([\d.]+) ms", out, re.M)
    failed = re.search(r"^number of failed transactions: (\d+)", out, re.M)
    if not tps or not latency or (failed and failed.group(1) != "0") or float(tps.group(1)) == 0:
        sys.exit(f"pgbench {script} -M {mode} -c {clients} on {dbname}: unexpected output:\n{out}")
    return float(tps.group(1)), float(latency.group(1))


class RssSampler:
    """The highest VmRSS of `pid` (KiB), read every 50 ms in a thread, and the
    kernel's own peak (VmHWM, reset through clear_refs at the start; None where
    that is not allowed)."""

    def __init__(self, pid: int):
        self.pid, self.peak, self.stop_event = pid, 0, threading.Event()
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
            self.hwm_reset = True
        except OSError:
            self.hwm_reset = False
        self.before = self.read("VmRSS")
        self.thread = threading.Thread(target=self.sample, daemon=True)

    def read(self, field: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise RuntimeError(f"no {field} in /proc/{self.pid}/status")

    def sample(self):
        while not self.stop_event.is_set():
            self.peak = max(self.peak, self.read("VmRSS"))
            self.stop_event.wait(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_event.set()
        self.thread.join()
        self.peak = max(self.peak, self.read("VmRSS"))
        self.hwm = self.read("VmHWM") if self.hwm_reset else None


def stream_psql(port: int, n: int) -> int:
    """Rows streamed through `psql -At -c` (its output lines, counted)."""
    proc = subprocess.Popen(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(port),
                             "-U", "vivace", "-d", "vivace", "-c", STREAM_SQL.format(n=n)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    rows = 0
    while chunk := proc.stdout.read(1 << 20):
        rows += chunk.count(b"\n")
    err = proc.stderr.read().decode()
    if proc.wait() != 0:
        sys.exit(f"psql stream of {n:,} rows failed (exit {proc.returncode}): {err}")
    return rows


def stream_psycopg2(port: int, n: int) -> int:
    """Rows streamed through a psycopg2 server-side cursor."""
    with closing(psycopg2.connect(host="127.0.0.1", port=port, user="vivace", dbname="vivace",
                                  connect_timeout=10)) as conn:
        with conn.cursor(name="stream") as cur:
            cur.itersize = 10_000
            cur.execute(STREAM_SQL.format(n=n))
            rows = sum(1 for _ in cur)
        conn.rollback()
    return rows


STREAMERS = {"psql": stream_psql, "psycopg2": stream_psycopg2}


def measure_stream(vivace: Vivace, client: str, n: int) -> dict:
    """Stream `n` rows from `vivace` to `client`, sampling the server's RSS."""
    with RssSampler(vivace.proc.pid) as rss:
        start = time.perf_counter()
        rows = STREAMERS[client](vivace.port, n)
        seconds = time.perf_counter() - start
    if rows != n:
        sys.exit(f"{client} stream of {n:,} rows: got {rows:,} rows")
    result = dict(client=client, rows=n, seconds=seconds, before=rss.before, peak=rss.peak, hwm=rss.hwm)
    print(f"  stream {client} {n:,} rows: {seconds:.2f} s, RSS before {rss.before / KIB_PER_MIB:.0f} MiB, "
          f"peak {rss.peak / KIB_PER_MIB:.0f} MiB", flush=True)
    return result


def peak(streams, client: str, n: int) -> int:
    return next(s["peak"] for s in streams if s["client"] == client and s["rows"] == n)


def draw_chart(cases, streams, path: Path) -> bool:
    """TPS per case on both servers, and the streams' peak RSS, as a PNG;
    False when matplotlib is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for ax, script in zip(axes.flat, SCRIPTS):
        mine = [c for c in cases if c["script"] == script]
        xs = range(len(mine))
        ax.bar([x - 0.2 for x in xs], [c["vivace"][0] for c in mine], 0.4, label="Vivace")
        ax.bar([x + 0.2 for x in xs], [c["postgres"][0] for c in mine], 0.4, label="PostgreSQL 15")
        ax.set_xticks(list(xs), [f"{c['clients']} {c['mode']}" for c in mine], rotation=30, fontsize=8)
        ax.set_yscale("log")
        ax.set_xlabel("clients, protocol")
        ax.set_ylabel("transactions/s")
        ax.set_title(f"pgbench {script}")
        ax.legend(fontsize=8)
    ax = axes.flat[3]
    sizes = sorted({s["rows"] for s in streams})
    for k, client in enumerate(STREAMERS):
        peaks = [peak(streams, client, n) / KIB_PER_MIB for n in sizes]
        ax.bar([x + 0.4 * k - 0.2 for x in range(len(sizes))], peaks, 0.4, label=client)
    ax.set_xticks(range(len(sizes)), [f"{n:,} rows" for n in sizes])
    ax.set_ylabel("Vivace peak RSS (MiB)")
    ax.set_title("streaming a result: server peak RSS")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def geomean(values):
    return math.exp(statistics.fmean(math.log(v) for v in values))


def report(args, cases, streams, versions, chart) -> str:
    sizes = sorted({s["rows"] for s in streams})
    lines = [
        SECTION, "",
        f"Machine: {machine()}.  ",
        f"Versions: Vivace at commit {source_commit()} (`{versions['vivace']}`), PostgreSQL "
        f"{versions['postgres']}, {versions['pgbench']}.  ",
        f"Command: `python3 benches/wire.py {' '.join(sys.argv[1:])}`  ",
        f"pgbench `-n -T {args.duration} -c C -j min(C, 2) -M simple|prepared` over TCP on 127.0.0.1; Vivace "
        f"(`vivace serve --workers {args.workers}`) reads `items`, {ITEMS:,} rows in one Parquet file (id bigint, "
        "name text, price double); PostgreSQL 15 (Debian packages, defaults but `fsync=off`) holds the same "
        "rows with `id` as primary key, so its lookup is an index scan. Vivace and PostgreSQL take turns run by "
        f"run; {args.runs} run(s) each, medians. Answers of both were checked before timing.", "",
        "Scripts: " + "; ".join(f"{s}: `{' '.join(text.split())}`" for s, text in SCRIPTS.items()) + ".", "",
        "| script | protocol | clients | Vivace TPS | Vivace latency (ms) | PostgreSQL TPS "
        "| PostgreSQL latency (ms) | Vivace / PostgreSQL TPS |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cases:
        (vt, vl), (pt, pl) = c["vivace"], c["postgres"]
        lines.append(f"| {c['script']} | {c['mode']} | {c['clients']} | {vt:,.0f} | {vl:.3f} | {pt:,.0f} | "
                     f"{pl:.3f} | {vt / pt:.3f} |")
    lines += ["", "Geometric mean of Vivace / PostgreSQL TPS: " + ", ".join(
        f"{s} {geomean([c['vivace'][0] / c['postgres'][0] for c in cases if c['script'] == s]):.3f}"
        for s in SCRIPTS) + ".", "",
        f"Streaming `{STREAM_SQL.format(n='N')}` from Vivace: `psql -At -c` (rows counted, then dropped; "
        "psql gathers the whole result in the client before printing it) and psycopg2 with a server-side "
        "named cursor (DECLARE/FETCH, `itersize` 10,000); the server's VmRSS "
        "sampled every 50 ms (VmHWM: the kernel's peak, reset through `clear_refs` before each stream). "
        "Sizes run smallest first on the same server, so memory kept from an earlier stream can only raise a "
        "later peak. The row counts were checked.", "",
        "| client | rows | seconds | rows/s | RSS before (MiB) | peak RSS (MiB) | VmHWM (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|"]
    for s in streams:
        hwm = f"{s['hwm'] / KIB_PER_MIB:.0f}" if s["hwm"] is not None else "n/a"
        lines.append(f"| {s['client']} | {s['rows']:,} | {s['seconds']:.2f} | {s['rows'] / s['seconds']:,.0f} | "
                     f"{s['before'] / KIB_PER_MIB:.0f} | {s['peak'] / KIB_PER_MIB:.0f} | {hwm} |")
    lines.append("")
    for client in STREAMERS:
        ratio = peak(streams, client, sizes[1]) / peak(streams, client, sizes[0])
        lines.append(f"Peak RSS {sizes[1]:,} / {sizes[0]:,} rows, {client}: **{ratio:.2f}** (target ≤ 1.2: "
                     f"**{'met' if ratio <= 1.2 else 'not met'}**).  ")
    lines += ["", "![pgbench TPS and streaming peak RSS, Vivace and PostgreSQL](wire.png)" if chart else
              "(Chart skipped: matplotlib is not installed.)", ""]
    return "\n".join(lines)


def measure(args, work: Path, clients, sizes):
    """Start both servers, check their answers, run every pgbench case on both in
    turn and the streams on Vivace; (cases, streams, versions). Both servers are
    stopped whatever happens."""
    vivace = pg = None
    try:
        write_items(work / "items")
        vivace = Vivace(args.binary, work / "vivace", args.workers)
        pg = Postgres(work / "pg")
        pg.start()
        vivace.start(work / "items")
        versions = {"pgbench": run(["pgbench", "--version"], "pgbench --version").strip()}
        with closing(vivace.connect()) as v, closing(pg.connect()) as p:
            check_answers("Vivace", v)
            check_answers("PostgreSQL", p)
            for name, conn, sql in (("vivace", v, "SELECT version()"), ("postgres", p, "SHOW server_version")):
                with conn.cursor() as cur:
                    cur.execute(sql)
                    versions[name] = cur.fetchone()[0]
        servers = {"vivace": (vivace.port, "vivace", "vivace"), "postgres": (pg.port, "postgres", "postgres")}
        cases = [dict(script=s, mode=m, clients=c, vivace=[], postgres=[])
                 for s in SCRIPTS for m in MODES for c in clients]
        for r in range(args.runs):
            for i, c in enumerate(cases):
                # Alternate which server goes first, so neither always follows the other.
                for name in list(servers)[::1 if (i + r) % 2 == 0 else -1]:
                    port, user, db = servers[name]
                    c[name].append(pgbench(work, port, user, db, c["script"], c["clients"], c["mode"],
                                           args.duration))
                print(f"  {c['script']} -M {c['mode']} -c {c['clients']}: Vivace {c['vivace'][-1][0]:,.0f} TPS, "
                      f"PostgreSQL {c['postgres'][-1][0]:,.0f} TPS", flush=True)
        for c in cases:
            for name in servers:
                c[name] = (statistics.median(t for t, _ in c[name]), statistics.median(ms for _, ms in c[name]))
        streams = [measure_stream(vivace, client, n) for n in sizes for client in STREAMERS]
        return cases, streams, versions
    finally:
        if vivace:
            vivace.stop()
        if pg:
            pg.stop()


def show_logs(work: Path):
    """The last lines of the servers' logs, after a failure."""
    for log in (work / "vivace" / "vivace.log", work / "pg" / "pg.log"):
        if log.exists():
            tail = log.read_text(errors="replace").splitlines()[-15:]
            print(f"--- last lines of {log.name}:\n" + "\n".join(tail), file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", default=str(ROOT / "target" / "release" / "vivace"),
                    help="a release build of vivace")
    ap.add_argument("--duration", type=int, default=20, help="seconds per pgbench run")
    ap.add_argument("--runs", type=int, default=1, help="pgbench runs per case and server")
    ap.add_argument("--workers", type=int, default=0, help="`vivace serve --workers`")
    ap.add_argument("--out", type=Path, default=ROOT / "benches" / "RESULTS.md")
    ap.add_argument("--no-write", action="store_true", help="print the report, write nothing")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 1 s runs, 1 and 8 clients, 100k vs 1M rows; never writes")
    args = ap.parse_args()
    clients, sizes = (1, 8, 32), (1_000_000, 10_000_000)
    if args.quick:
        args.duration, args.runs, args.no_write = 1, 1, True
        clients, sizes = (1, 8), (100_000, 1_000_000)
    for tool in ("pgbench", "psql"):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found (Debian: apt-get install postgresql-client-15)")
    require_postgres(PG_BIN)
    require_binary(args.binary)

    work, started = begin_run("vivace-wire-bench-", shared=True)
    try:
        try:
            cases, streams, versions = measure(args, work, clients, sizes)
        except BaseException:
            show_logs(work)
            raise
        chart_path = work / "wire.png" if args.no_write else args.out.parent / "wire.png"
        chart = draw_chart(cases, streams, chart_path)
        text = report(args, cases, streams, versions, chart)
        publish(text, args.out, SECTION, chart_path, chart, args.no_write, started)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
