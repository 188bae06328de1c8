#!/usr/bin/env python3
"""The Cassandra connector against Cassandra itself (issue 16, point 9).

Starts Apache Cassandra 5.0 (the jars scripts/backends/fetch-cassandra.sh fetches,
on OpenJDK 17) on loopback ports, loads `bench.events` of `--rows` rows
(partition key `id`, 100 rows per partition, clustering key `seq`, `amount`
bigint, `device` text), flushes and compacts it, starts release `vivace serve`
processes with 1 and 2 embedded workers, registers the table with
`STORED AS CASSANDRA`, and runs each query through Vivace and directly with
the Python driver (the same prepared CQL Vivace sends). For each query it reports
median times, their ratio, and the rows Cassandra sent to Vivace (the remote
scan's `output_rows` in EXPLAIN ANALYZE) against the rows the partitions hold.

Targets (issue 16): partition reads move only the partitions' rows; a full scan
on 2 workers >= 1.6x faster than on 1; time <= 1.3x direct where Cassandra's
work dominates. Answers are checked equal to the driver's. The report replaces
the "Cassandra connector" section of the output file.

  cargo build --release --bin vivace
  scripts/backends/fetch-cassandra.sh
  python3 -m pip install cassandra-driver
  python3 benches/cassandra_connector.py --binary target/release/vivace --rows 10000000
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import Cluster
from cassandra.concurrent import execute_concurrent, execute_concurrent_with_args
from cassandra.query import BatchStatement, BatchType

from benchlib import Vivace, free_port, machine, median_time, replace_section, source_commit, wait_port

ROOT = Path(__file__).resolve().parents[1]
SECTION = "# Cassandra connector"
PER_PARTITION = 100
FLAGS = [
    "-Djdk.attach.allowAttachSelf=true",
    *[f"--add-exports={m}=ALL-UNNAMED" for m in (
        "java.base/jdk.internal.misc", "java.management.rmi/com.sun.jmx.remote.internal.rmi",
        "java.rmi/sun.rmi.registry", "java.rmi/sun.rmi.server", "java.sql/java.sql", "java.base/java.lang.ref",
        "jdk.unsupported/sun.misc", "jdk.compiler/com.sun.tools.javac.file", "jdk.attach/sun.tools.attach")],
    *[f"--add-opens={m}=ALL-UNNAMED" for m in (
        "java.base/java.lang.module", "java.base/jdk.internal.loader", "java.base/jdk.internal.ref",
        "java.base/jdk.internal.reflect", "java.base/jdk.internal.math", "java.base/jdk.internal.module",
        "java.base/jdk.internal.util.jar", "java.base/sun.nio.ch", "java.base/java.io",
        "java.base/java.lang.reflect", "java.base/java.lang", "java.base/java.util", "java.base/java.nio",
        "jdk.management/com.sun.management.internal", "jdk.compiler/com.sun.tools.javac")],
]


def java17():
    for d in sorted(Path("/usr/lib/jvm").iterdir()):
        if "-17-" in d.name and (d / "bin/java").exists():
            return str(d / "bin/java")
    sys.exit("no OpenJDK 17 under /usr/lib/jvm")


class Cassandra:
    def __init__(self, work: Path, heap: str):
        lib = Path(os.environ.get("VIVACE_BACKENDS", Path.home() / ".cache/vivace/backends")) / "cassandra/lib"
        if not lib.exists():
            sys.exit("run scripts/backends/fetch-cassandra.sh first")
        d = work / "cass"
        for sub in ("data", "commitlog", "saved_caches", "hints", "cdc_raw", "logs", "tmp"):
            (d / sub).mkdir(parents=True)
        self.port, storage, ssl_storage, self.jmx = free_port(), free_port(), free_port(), free_port()
        (d / "cassandra.yaml").write_text(f"""cluster_name: bench
num_tokens: 16
allocate_tokens_for_local_replication_factor: 1
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
storage_port: {storage}
ssl_storage_port: {ssl_storage}
native_transport_port: {self.port}
start_native_transport: true
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters: [{{seeds: "127.0.0.1:{storage}"}}]
data_file_directories: [{d}/data]
commitlog_directory: {d}/commitlog
saved_caches_directory: {d}/saved_caches
hints_directory: {d}/hints
cdc_raw_directory: {d}/cdc_raw
commitlog_sync: periodic
commitlog_sync_period: 10000ms
authenticator: AllowAllAuthenticator
authorizer: AllowAllAuthorizer
auto_snapshot: false
read_request_timeout: 60000ms
range_request_timeout: 60000ms
concurrent_compactors: 1
""")
        (d / "logback.xml").write_text(f"""<configuration scan="false">
  <appender name="FILE" class="ch.qos.logback.core.FileAppender"><file>{d}/logs/system.log</file>
    <encoder><pattern>%-5level %date{{ISO8601}} %msg%n</pattern></encoder></appender>
  <root level="INFO"><appender-ref ref="FILE"/></root></configuration>""")
        jamm = next(p for p in lib.iterdir() if p.name.startswith("jamm-"))
        self.out = open(work / "cassandra.out", "w")
        self.proc = subprocess.Popen(
            [java17(), f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC", "-Xss256k", *FLAGS,
             "-Dio.netty.tryReflectionSetAccessible=true", f"-javaagent:{jamm}", f"-Djava.io.tmpdir={d}/tmp",
             "-Djava.net.preferIPv4Stack=true", f"-Dcassandra.config=file://{d}/cassandra.yaml",
             f"-Dcassandra.storagedir={d}", f"-Dcassandra.logdir={d}/logs",
             f"-Dlogback.configurationFile=file://{d}/logback.xml", f"-Dcassandra.jmx.local.port={self.jmx}",
             "-Dcassandra-foreground=yes", "-Dcassandra.skip_wait_for_gossip_to_settle=0",
             "-Dcassandra.ring_delay_ms=100", "-cp", f"{lib}/*", "org.apache.cassandra.service.CassandraDaemon"],
            stdout=self.out, stderr=subprocess.STDOUT)
        self.lib = lib
        wait_port(self.port, self.proc, "cassandra", timeout=300)
        time.sleep(2)
        self.cluster = Cluster(["127.0.0.1"], port=self.port, protocol_version=5,
                               auth_provider=PlainTextAuthProvider("cassandra", "cassandra"))
        self.session = self.cluster.connect()
        self.session.default_timeout = 600
        self.version = self.session.execute("SELECT release_version FROM system.local").one()[0]

    def location(self):
        return f"cassandra://127.0.0.1:{self.port}"

    def nodetool(self, *args):
        subprocess.run([java17(), *FLAGS, "-cp", f"{self.lib}/*", "org.apache.cassandra.tools.NodeTool",
                        "-h", "127.0.0.1", "-p", str(self.jmx), *args], check=True, stdout=subprocess.DEVNULL)

    def stop(self):
        self.cluster.shutdown()
        self.proc.kill()
        self.proc.wait()


def load(cass: Cassandra, rows: int):
    s = cass.session
    s.execute("CREATE KEYSPACE bench WITH replication = {'class': 'SimpleStrategy', 'replication_factor': 1}")
    s.execute("CREATE TABLE bench.events (id bigint, seq int, amount bigint, device text, PRIMARY KEY (id, seq))")
    insert = s.prepare("INSERT INTO bench.events (id, seq, amount, device) VALUES (?, ?, ?, ?)")
    started = time.time()

    def batch(p):
        b = BatchStatement(batch_type=BatchType.UNLOGGED)
        for seq in range(PER_PARTITION):
            i = p * PER_PARTITION + seq
            b.add(insert, (p, seq, (i * 7919) % 10_000, f"d{i % 13}"))
        return (b,)

    partitions = rows // PER_PARTITION
    chunk = 2_000
    for start in range(0, partitions, chunk):
        statements = [(batch(p)[0], ()) for p in range(start, min(partitions, start + chunk))]
        for ok, result in execute_concurrent(s, statements, concurrency=32):
            if not ok:
                sys.exit(f"load failed: {result}")
    cass.nodetool("flush", "bench")
    cass.nodetool("compact", "bench")
    return time.time() - started


def vivace(binary, work, workers, cass):
    return Vivace(binary, work, workers,
                  f"CREATE EXTERNAL TABLE events STORED AS CASSANDRA LOCATION '{cass.location()}' "
                  "OPTIONS ('keyspace' 'bench', 'table' 'events', 'user' 'cassandra', "
                  "'password_env' 'BENCH_CASS_PASSWORD', 'fetch_size' '5000')",
                  env={"BENCH_CASS_PASSWORD": "cassandra"})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True, help="a release build of vivace")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--heap", default="1g")
    ap.add_argument("--out", type=Path, default=ROOT / "benches" / "RESULTS.md")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vivace-cass-bench-"))
    cass = Cassandra(work, args.heap)
    servers = []
    s = cass.session
    partitions = args.rows // PER_PARTITION
    try:
        load_s = load(cass, args.rows)
        print(f"loaded {args.rows} rows in {load_s:.0f} s", flush=True)
        one_partition = s.prepare("SELECT \"seq\", \"amount\" FROM \"bench\".\"events\" WHERE \"id\" = ?")
        keys = list(dict.fromkeys((k * 997) % partitions for k in range(100)))
        scan_range = s.prepare('SELECT count(*), sum(amount) FROM "bench"."events" '
                               'WHERE token("id") > ? AND token("id") <= ?')

        def direct_one():
            return [tuple(r) for r in s.execute(one_partition, (42,))]

        def direct_in():
            rows = []
            for ok, result in execute_concurrent_with_args(s, one_partition, [(k,) for k in keys], concurrency=16):
                rows += [(r.seq, r.amount) for r in result]
            return rows

        def direct_scan():
            bounds = [(-2**63 + k * (2**64 // 8), -2**63 + (k + 1) * (2**64 // 8) if k < 7 else 2**63 - 1)
                      for k in range(8)]
            with ThreadPoolExecutor(8) as pool:
                parts = list(pool.map(lambda b: s.execute(scan_range, b).one(), bounds))
            return [(sum(p[0] for p in parts), sum(p[1] for p in parts))]

        key_list = ", ".join(str(k) for k in keys)
        queries = [
            ("single partition", "SELECT seq, amount FROM events WHERE id = 42", direct_one, PER_PARTITION),
            ("IN over 100 partitions", f"SELECT seq, amount FROM events WHERE id IN ({key_list})", direct_in,
             100 * PER_PARTITION),
        ]
        one = vivace(args.binary, work / "v1", 1, cass)
        servers.append(one)
        results = []
        for name, sql, direct, held in queries:
            want = sorted(direct())
            got = sorted(tuple(r) for r in one.rows(sql))
            if got != want:
                sys.exit(f"{name}: Vivace's answer differs from the driver's ({len(got)} vs {len(want)} rows)")
            moved = one.moved(sql)
            d = median_time(direct, args.runs)
            v = median_time(lambda: one.rows(sql), args.runs)
            results.append((name, sql, held, moved, d, v))
            print(f"{name}: direct {d:.4f}s vivace {v:.4f}s held {held} moved {moved}", flush=True)
        one.stop()
        servers.clear()
        scan_sql = "SELECT count(*), sum(amount) FROM events"
        want_scan = direct_scan()
        direct_scan_s = median_time(direct_scan, max(3, args.runs // 2))
        scan = {}
        for workers in (1, 2):
            v = vivace(args.binary, work / f"scan{workers}", workers, cass)
            servers.append(v)
            got = v.rows(scan_sql)
            if [tuple(int(x) for x in got[0])] != [tuple(int(x) for x in want_scan[0])]:
                sys.exit(f"full scan on {workers} workers: {got} != {want_scan}")
            scan[workers] = median_time(lambda: v.rows(scan_sql), max(3, args.runs // 2))
            v.stop()
            servers.clear()
            print(f"full scan on {workers} worker(s): {scan[workers]:.2f}s", flush=True)
    finally:
        for srv in servers:
            srv.stop()
        cass.stop()
    lines = [SECTION, "",
             f"Machine: {machine()}.  ",
             f"Apache Cassandra {cass.version} ({args.heap} heap, one node, flushed and compacted) on the same "
             f"machine; `bench.events` of {args.rows:,} rows ({partitions:,} partitions of {PER_PARTITION}) "
             f"loaded in {load_s:.0f} s.  ",
             f"Command: `python3 benches/cassandra_connector.py --binary {args.binary} --rows {args.rows} --runs {args.runs}` "
             f"at commit {source_commit()}.  ",
             "Times are medians after one warm-up; direct = the same prepared CQL Vivace sends, run by the Python "
             "driver (the IN query as 100 partition reads, 16 at a time, as Vivace groups them). Rows moved: the "
             "remote scan's `output_rows` in EXPLAIN ANALYZE. Answers through Vivace were checked equal to the "
             "driver's.", "",
             "| query | rows in the partitions | rows moved | moved / held | direct (s) | Vivace (s) | Vivace / direct |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, sql, held, moved, d, v in results:
        lines.append(f"| {name} | {held:,} | {moved:,} | {moved / max(held, 1):.2f} | {d:.4f} | {v:.4f} "
                     f"| {v / d:.2f} |")
    lines += ["", f"Full-scan aggregate (`{scan_sql}`, every row read through token ranges): 1 worker "
                  f"{scan[1]:.2f} s, 2 workers {scan[2]:.2f} s: **{scan[1] / scan[2]:.2f}x**. For scale, Cassandra "
                  f"computing the same aggregate itself over 8 token ranges in parallel (no rows leave it): "
                  f"{direct_scan_s:.2f} s.", "",
              "Queries:", ""]
    lines += [f"- {name}: `{sql if len(sql) < 120 else sql[:117] + '...'}`" for name, sql, *_ in results]
    report = "\n".join(lines) + "\n"
    replace_section(args.out, SECTION, report)
    shutil.rmtree(work, ignore_errors=True)
    print(report)


if __name__ == "__main__":
    main()
