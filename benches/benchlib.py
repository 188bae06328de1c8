"""Helpers the benchmark scripts share: free ports, waiting for a server to
listen, a one-line description of the machine for RESULTS.md, median timings,
a `vivace serve` process with one registered table and the rows its remote
scans moved (EXPLAIN ANALYZE), and replacing one section of RESULTS.md."""

import os
import statistics
import subprocess
import platform
import socket
import sys
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc, what: str, timeout: float = 300):
    """Return once something listens on `port`; exit if `proc` (when given) dies
    first or nothing listens within `timeout` seconds."""
    deadline = time.time() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            sys.exit(f"{what} exited early")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.time() > deadline:
                sys.exit(f"{what} did not start")
            time.sleep(0.2)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {platform.system()} {platform.release()}"


def source_commit() -> str:
    """The commit of this checkout (with `+changes` when the tree is dirty), for
    the record of which code a benchmark measured."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        commit = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown commit"
    return commit + ("+changes" if dirty else "")


def median_time(fn, runs):
    """Median wall time of `runs` calls of `fn`, after one warm-up call."""
    fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def humanized(text: str) -> int:
    """A count as EXPLAIN ANALYZE prints it (`529`, `7.62 K`, `5.00 M`): exact
    below 1,000, else to three significant digits."""
    text = text.strip()
    for suffix, scale in ((" K", 1e3), (" M", 1e6), (" B", 1e9)):
        if text.endswith(suffix):
            return round(float(text[: -len(suffix)]) * scale)
    return int(text)


def rows_moved(plan: str) -> int:
    """Rows the remote scans of an EXPLAIN ANALYZE plan produced, summed."""
    total = 0
    for line in plan.splitlines():
        if "RemoteScanExec" in line and "output_rows=" in line:
            total += humanized(line.split("output_rows=")[1].split(",")[0].split("]")[0])
    return total


def replace_section(out, section: str, report: str):
    """Write `report` into the file `out` in place of the section headed
    `section` (up to the next `# ` heading), or append it."""
    text = out.read_text() if out.exists() else ""
    if section in text:
        start = text.index(section)
        end = text.find("\n# ", start + len(section))
        text = text[:start] + report + (text[end + 1:] if end != -1 else "")
    else:
        text = text.rstrip() + "\n\n" + report
    out.write_text(text)


def publish(text: str, out, section: str, chart_path, chart: bool, no_write: bool, started: float):
    """Print a script's report and, unless `no_write`, put it in place of its
    section of `out` (the chart, when drawn, is already at `chart_path`)."""
    print(text)
    if chart and no_write:
        print("chart drawn, not kept (--no-write and --quick write nothing)", flush=True)
    if not no_write:
        replace_section(out, section, text)
        print(f"wrote the section {section!r} of {out}" + (f" and {chart_path}" if chart else ""))
    print(f"done in {time.perf_counter() - started:.0f} s", flush=True)


class Vivace:
    """A release `vivace serve` with `workers` embedded workers, `create`
    (a CREATE EXTERNAL TABLE) run on it, and a psycopg2 connection."""

    def __init__(self, binary: str, work, workers: int, create: str, env=None):
        import psycopg2

        self.port = free_port()
        work.mkdir(parents=True, exist_ok=True)
        self.log = open(work / "vivace.log", "w")
        self.proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--data-dir",
                                      str(work / "data"), "--workers", str(workers)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=dict(os.environ, **(env or {})))
        wait_port(self.port, self.proc, "vivace")
        self.conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="vivace", dbname="vivace")
        self.conn.autocommit = True
        with self.conn.cursor() as cur:
            cur.execute(create)

    def rows(self, sql):
        with self.conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()

    def moved(self, sql):
        """Rows the remote scans produced (EXPLAIN ANALYZE), summed."""
        return rows_moved("\n".join(r[-1] for r in self.rows("EXPLAIN ANALYZE " + sql)))

    def stop(self):
        self.conn.close()
        self.proc.kill()
        self.proc.wait()
