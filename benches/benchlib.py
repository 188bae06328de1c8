"""Helpers the benchmark scripts share: free ports, waiting for a server to
listen, a one-line description of the machine for RESULTS.md, median timings,
a `vivace serve` process with one registered table and the rows its remote
scans moved (EXPLAIN ANALYZE), a single-node Trino queried over HTTP, and
replacing one section of RESULTS.md."""

import json
import os
import signal
import statistics
import subprocess
import tempfile
import platform
import socket
import sys
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

START_TRINO = Path(__file__).resolve().parents[1] / "scripts" / "backends" / "start-trino.sh"


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
        # The benchmarks' own outputs (a chart drawn before the report) are not changes.
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":!benches/RESULTS.md", ":!benches/*.png"],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown commit"
    return commit + ("+changes" if dirty else "")


def _cpu_times() -> tuple:
    """(busy, total) jiffies of all cores since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


# settle(): quiet is under QUIET_BUSY of the cores busy over QUIET_WINDOW
# seconds, waited for up to QUIET_LIMIT seconds; QUIET says so in a report.
QUIET_BUSY, QUIET_WINDOW, QUIET_LIMIT = 0.15, 0.1, 2.0
QUIET = (f"under {QUIET_BUSY:.0%} of its CPU busy over {QUIET_WINDOW:g} s, "
         f"waited for up to {QUIET_LIMIT:g} s")


def settle() -> bool:
    """Wait until the machine is quiet (QUIET). Engines side by side keep
    working after a query ends (a JVM collects its garbage, a server frees its
    buffers); on 2 cores that work slowed whichever engine ran next by up to
    40% (TPC-H SF 1, the engine timed right after Trino). False when the machine
    was still busy at the limit."""
    deadline = time.monotonic() + QUIET_LIMIT
    while True:
        busy0, total0 = _cpu_times()
        time.sleep(QUIET_WINDOW)
        busy1, total1 = _cpu_times()
        if total1 > total0 and (busy1 - busy0) / (total1 - total0) < QUIET_BUSY:
            return True
        if time.monotonic() >= deadline:
            return False


def in_turn(names: list, round_: int) -> list:
    """`names` in the order of round `round_` of a benchmark's turns: each
    round starts with the next one, so none always follows the same other."""
    start = round_ % len(names) if names else 0
    return names[start:] + names[:start]


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


def require_binary(binary):
    """Exit with a hint unless a Vivace binary is at `binary`."""
    if not Path(binary).exists():
        sys.exit(f"no Vivace binary at {binary} (cargo build --release --bin vivace)")


def require_postgres(pg_bin: Path):
    """Exit with a hint unless PostgreSQL's server binaries are in `pg_bin`."""
    if not (pg_bin / "initdb").exists():
        sys.exit(f"no PostgreSQL server binaries in {pg_bin} (Debian: apt-get install postgresql-15)")


def begin_run(prefix: str, shared: bool = False):
    """Start a benchmark run: SIGTERM ends it through its cleanup (`finally`
    blocks), and it gets a scratch folder (readable by other users, such as
    the `postgres` user, when `shared`); (folder, start time)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("terminated"))
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix=prefix))
    if shared:
        os.chmod(work, 0o755)
    return work, started


def replace_section(out, section: str, report: str):
    """Write `report` into the file `out` in place of the section headed
    `section` (up to the next `# ` heading), or append it."""
    text = out.read_text() if out.exists() else ""
    # The heading as a whole line: "# PostgreSQL connector" must not match
    # "# PostgreSQL connector: where the time goes".
    start = ("\n" + text).find("\n" + section + "\n")
    if start >= 0:
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


class TrinoError(Exception):
    """A query Trino answered with an error."""


class Trino:
    """Trino 476 on one node (scripts/backends/start-trino.sh; fetch it once with
    scripts/backends/fetch-trino.sh), its configuration and data in `work`,
    loading only `plugins`; `catalogs` ({name: properties text}) are written
    before it starts. Queries go through its HTTP protocol (POST /v1/statement,
    then follow nextUri) in `catalog`.`schema`. connect() gives an object with
    cursor() / execute() / fetchall() like the Python database drivers, so the
    scripts time it as they time the others. stop() kills it whatever state it
    reached, start() included."""

    def __init__(self, work: Path, heap: str, plugins, catalog: str, schema: str, catalogs=None):
        self.work, self.heap, self.plugins, self.catalogs = work, heap, plugins, catalogs or {}
        self.headers = {"X-Trino-User": "bench", "X-Trino-Catalog": catalog, "X-Trino-Schema": schema}
        self.port = free_port()
        self.last_stats = {}

    def start(self):
        (self.work / "etc" / "catalog").mkdir(parents=True)
        for name, properties in self.catalogs.items():
            (self.work / "etc" / "catalog" / f"{name}.properties").write_text(properties)
        env = dict(os.environ, TRINO_DIR=str(self.work), TRINO_PORT=str(self.port), TRINO_HEAP=self.heap,
                   TRINO_PLUGINS=" ".join(self.plugins))
        try:
            done = subprocess.run([str(START_TRINO)], env=env, capture_output=True, text=True, timeout=420)
        except subprocess.TimeoutExpired:
            sys.exit("Trino did not start in 420 s")
        if done.returncode != 0:
            sys.exit(f"Trino did not start:\n{done.stdout}{done.stderr}")
        # /v1/info stops saying "starting" before the node has announced itself
        # to the coordinator (NO_NODES_AVAILABLE until then); query() waits.
        self.query("SELECT 1")
        print(f"  trino: {done.stdout.strip()}", flush=True)

    def version(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/v1/info", timeout=10) as response:
            return json.load(response)["nodeVersion"]["version"]

    def query(self, sql: str):
        """The rows of `sql` as tuples; decimals as Decimal and doubles as float
        (the protocol sends decimals as strings). The query's statistics (the
        `stats` of its last response: processedRows, the rows its scans read, …)
        are left in `last_stats`. A query refused with NO_NODES_AVAILABLE is sent
        again for up to 120 s: after start-up the node announces itself, and then
        each catalog, a little later (SELECT 1 ran, a count of a Hive table did not)."""
        deadline = time.time() + 120
        while True:
            try:
                return self._query(sql)
            except TrinoError as e:
                if "NO_NODES_AVAILABLE" not in str(e) or time.time() > deadline:
                    raise
                time.sleep(0.5)

    def _query(self, sql: str):
        """One attempt of query()."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/v1/statement", data=sql.encode(),
                                         headers=self.headers)
        rows, columns = [], []
        while request:
            with urllib.request.urlopen(request, timeout=3600) as response:
                page = json.load(response)
            if "error" in page:
                error = page["error"]
                raise TrinoError(f"{error.get('errorName')}: {error.get('message')}")
            columns = page.get("columns", columns)
            rows += page.get("data", [])
            self.last_stats = page.get("stats", {})
            request = urllib.request.Request(page["nextUri"], headers=self.headers) if "nextUri" in page else None
        convert = [Decimal if c["type"].startswith("decimal") else float if c["type"] in ("double", "real")
                   else None for c in columns]
        return [tuple(v if f is None or v is None else f(v) for f, v in zip(convert, row)) for row in rows]

    def connect(self):
        return self

    def cursor(self):
        return _TrinoCursor(self)

    def close(self):
        pass

    def stop(self):
        """SIGTERM to the server (its pid from the launcher's pid file), SIGKILL
        after 30 s."""
        pid_file = self.work / "data" / "var" / "run" / "launcher.pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text())
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.time() + wait
            while time.time() < deadline:
                if not running(pid):
                    return
                time.sleep(0.2)


class _TrinoCursor:
    """cursor() of Trino: execute() runs the query, fetchall() gives its rows."""

    def __init__(self, trino: Trino):
        self.trino, self.rows = trino, []

    def execute(self, sql: str):
        self.rows = self.trino.query(sql)

    def fetchall(self):
        return self.rows

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def running(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
