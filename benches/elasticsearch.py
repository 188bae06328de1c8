#!/usr/bin/env python3
"""The Elasticsearch connector against the search server itself (issue 15, point 12).

Starts OpenSearch 3.8 (the embedded runner that scripts/backends/fetch-opensearch.sh
fetches; a JDK 21+) on a loopback port, bulk-loads an index of `--docs` documents
(`city`: 1,000 keyword values, `sku`: 100,000 keyword values, `price` long, `title`
text of three words out of 2,000, `ts` date), starts release `vivace serve` processes
with 1 and 2 embedded workers, registers the index with `STORED AS OPENSEARCH`, and
runs each query through Vivace and directly on the server (the same request Vivace
sends, from Python over HTTP). For each query it reports the median times, their
ratio, and the rows the server sent to Vivace (the remote scan's `output_rows` in
EXPLAIN ANALYZE) against the rows returned.

Targets (issue 15): rows moved <= 1.1x rows returned for the selective and grouped
queries; time <= 1.3x direct where the server's work dominates; a full scan on 2
workers >= 1.6x faster than on 1. Answers are checked equal to the server's. The
report replaces the "Elasticsearch connector" section of the output file.

  cargo build --release --bin vivace
  scripts/backends/fetch-opensearch.sh
  python3 benches/elasticsearch.py --binary target/release/vivace --docs 5000000
"""

import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


from benchlib import Vivace, free_port, machine, median_time, replace_section, source_commit

ROOT = Path(__file__).resolve().parents[1]
SECTION = "# Elasticsearch connector"
INDEX = "docs"


def java21():
    jvm = Path("/usr/lib/jvm")
    best = None
    for d in sorted(jvm.iterdir()) if jvm.exists() else []:
        digits = "".join(ch if ch.isdigit() else " " for ch in d.name).split()
        if digits and int(digits[0]) >= 21 and (d / "bin/java").exists():
            best = d / "bin/java"
    if best is None:
        sys.exit("no JDK 21 or later under /usr/lib/jvm")
    return str(best)


class OpenSearch:
    def __init__(self, work: Path, heap: str):
        lib = Path(os.environ.get("VIVACE_BACKENDS", Path.home() / ".cache/vivace/backends")) / "opensearch/lib"
        if not lib.exists():
            sys.exit("run scripts/backends/fetch-opensearch.sh first")
        self.port = next(p for p in range(9201, 9299) if self._free(p))
        base = work / "os"
        (base / "node_1/config").mkdir(parents=True)
        (base / "node_1/config/opensearch.yml").write_text(
            f"network.host: 127.0.0.1\ntransport.port: {free_port()}\n"
            "cluster.routing.allocation.disk.threshold_enabled: false\n")
        (work / "os-tmp").mkdir()
        self.log = open(work / "opensearch.log", "w")
        self.proc = subprocess.Popen(
            [java21(), f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
             f"-Djava.io.tmpdir={work / 'os-tmp'}", "--enable-native-access=ALL-UNNAMED", "-cp", f"{lib}/*",
             "org.codelibs.opensearch.runner.OpenSearchRunner", "-basePath", str(base), "-numOfNode", "1",
             "-baseHttpPort", str(self.port - 1), "-clusterName", "bench", "-printOnFailure"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 300
        while True:
            try:
                if self.call("GET", "/_cluster/health?wait_for_status=green&timeout=1s")["status"] == "green":
                    break
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                sys.exit("OpenSearch did not start; see opensearch.log")
            time.sleep(0.5)
        self.version = self.call("GET", "/")["version"]["number"]

    @staticmethod
    def _free(port):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return True
            except OSError:
                return False

    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def call(self, method, path, body=None, ndjson=False):
        data = None
        headers = {}
        if body is not None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            headers["content-type"] = "application/x-ndjson" if ndjson else "application/json"
        req = urllib.request.Request(self.url() + path, data=data, method=method, headers=headers)
        with urllib.request.urlopen(req, timeout=600) as resp:
            return json.loads(resp.read())

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def load(es: OpenSearch, docs: int):
    es.call("PUT", f"/{INDEX}", {
        "settings": {"number_of_shards": 2, "number_of_replicas": 0, "refresh_interval": "-1"},
        "mappings": {"properties": {
            "city": {"type": "keyword"}, "sku": {"type": "keyword"}, "price": {"type": "long"},
            "title": {"type": "text"}, "ts": {"type": "date"}}}})
    rng = random.Random(42)
    words = [f"w{i}" for i in range(2000)]
    chunk = 20_000
    started = time.time()
    for start in range(0, docs, chunk):
        lines = []
        for i in range(start, min(docs, start + chunk)):
            lines.append('{"index":{"_id":"d%d"}}' % i)
            lines.append(json.dumps({
                "city": f"c{i % 1000}", "sku": f"s{rng.randrange(100_000)}", "price": rng.randrange(10_000),
                "title": " ".join(rng.choice(words) for _ in range(3)),
                "ts": 1_700_000_000_000 + i * 1000}))
        answer = es.call("POST", f"/{INDEX}/_bulk", "\n".join(lines) + "\n", ndjson=True)
        if answer.get("errors"):
            sys.exit("bulk load failed")
    es.call("PUT", f"/{INDEX}/_settings", {"index": {"refresh_interval": "1s"}})
    es.call("POST", f"/{INDEX}/_refresh")
    es.call("POST", f"/{INDEX}/_forcemerge?max_num_segments=1")
    return time.time() - started


def vivace(binary, work, workers, es):
    return Vivace(binary, work, workers,
                  f"CREATE EXTERNAL TABLE docs STORED AS OPENSEARCH LOCATION '{es.url()}' "
                  f"OPTIONS ('index' '{INDEX}', 'page_size' '10000')")


def direct_hits(es, query, source):
    """Every hit of `query` read as Vivace reads them (point in time, search_after)."""
    pit = es.call("POST", f"/{INDEX}/_search/point_in_time?keep_alive=2m")["pit_id"]
    rows, after = [], None
    while True:
        body = {"query": query, "_source": source, "size": 10000, "pit": {"id": pit, "keep_alive": "2m"},
                "sort": ["_shard_doc"], "track_total_hits": False}
        if after:
            body["search_after"] = after
        hits = es.call("POST", "/_search", body)["hits"]["hits"]
        rows += [(h["_id"],) + tuple(h["_source"].get(f) for f in source) for h in hits]
        if len(hits) < 10000:
            break
        after = hits[-1]["sort"]
    es.call("DELETE", "/_search/point_in_time", {"pit_id": [pit]})
    return rows


def direct_groups(es, field, query=None):
    body = {"size": 0, "query": query or {"match_all": {}}, "track_total_hits": False, "aggs": {"g": {
        "composite": {"size": 1000, "sources": [{"k": {"terms": {"field": field, "missing_bucket": True}}}]},
        "aggs": {"s": {"sum": {"field": "price"}}}}}}
    rows = []
    while True:
        g = es.call("POST", f"/{INDEX}/_search", body)["aggregations"]["g"]
        rows += [(b["key"]["k"], b["doc_count"], int(b["s"]["value"])) for b in g["buckets"]]
        if not g["buckets"] or "after_key" not in g:
            return rows
        body["aggs"]["g"]["composite"]["after"] = g["after_key"]


QUERIES = [
    ("selective filter", "SELECT _id, city, price FROM docs WHERE city = 'c42' AND price < 1000",
     lambda es: direct_hits(es, {"bool": {"filter": [{"term": {"city": "c42"}},
                                                     {"range": {"price": {"lt": 1000}}}]}}, ["city", "price"]),
     True),
    ("full-text match", "SELECT _id, city, price FROM docs WHERE match(title, 'w17')",
     lambda es: direct_hits(es, {"match": {"title": {"query": "w17"}}}, ["city", "price"]), True),
    ("GROUP BY keyword, 1,000 groups", "SELECT city, count(*), sum(price) FROM docs GROUP BY city",
     lambda es: direct_groups(es, "city"), True),
    ("GROUP BY keyword, 100,000 groups", "SELECT sku, count(*), sum(price) FROM docs GROUP BY sku",
     lambda es: direct_groups(es, "sku"), True),
]

SCAN = "SELECT count(*), sum(length(title)) FROM docs WHERE length(title) > 0"


def norm(rows):
    return sorted(tuple(str(v) for v in r) for r in rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True, help="a release build of vivace")
    ap.add_argument("--docs", type=int, default=5_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--heap", default="1g")
    ap.add_argument("--out", type=Path, default=ROOT / "benches" / "RESULTS.md")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vivace-es-bench-"))
    es = OpenSearch(work, args.heap)
    servers = []
    try:
        load_s = load(es, args.docs)
        print(f"loaded {args.docs} documents in {load_s:.0f} s", flush=True)
        one = vivace(args.binary, work / "v1", 1, es)
        servers.append(one)
        results = []
        for name, sql, direct, _ in QUERIES:
            want = norm(direct(es))
            got = norm(one.rows(sql))
            if got != want:
                sys.exit(f"{name}: Vivace's answer differs from the server's ({len(got)} vs {len(want)} rows)")
            moved = one.moved(sql)
            d = median_time(lambda: direct(es), args.runs)
            v = median_time(lambda: one.rows(sql), args.runs)
            results.append((name, sql, len(want), moved, d, v))
            print(f"{name}: direct {d:.3f}s vivace {v:.3f}s rows {len(want)} moved {moved}", flush=True)
        one.stop()
        servers.clear()
        scan = {}
        for workers in (1, 2):
            v = vivace(args.binary, work / f"scan{workers}", workers, es)
            servers.append(v)
            scan[workers] = (median_time(lambda: v.rows(SCAN), max(3, args.runs // 2)), v.rows(SCAN))
            v.stop()
            servers.clear()
            print(f"full scan on {workers} worker(s): {scan[workers][0]:.2f}s", flush=True)
        if norm(scan[1][1]) != norm(scan[2][1]):
            sys.exit("full scan answers differ between 1 and 2 workers")
    finally:
        for s in servers:
            s.stop()
        es.stop()
    lines = [SECTION, "",
             f"Machine: {machine()}.  ",
             f"OpenSearch {es.version} (embedded runner, {args.heap} heap, 2 shards, force-merged) on the same "
             f"machine; index `{INDEX}` of {args.docs:,} documents loaded in {load_s:.0f} s.  ",
             f"Command: `python3 benches/elasticsearch.py --binary {args.binary} --docs {args.docs} --runs {args.runs}` "
             f"at commit {source_commit()}.  ",
             "Times are medians after one warm-up; direct = the same request Vivace sends (point in time and "
             "`search_after` for hits, a paged composite aggregation for groups), issued and parsed by Python over "
             "HTTP. Rows moved: the remote scan's `output_rows` in EXPLAIN ANALYZE (three significant digits above "
             "1,000). Answers through Vivace were "
             "checked equal to the server's.", "",
             "| query | rows returned | rows moved | moved / returned | direct (s) | Vivace (s) | Vivace / direct |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, sql, returned, moved, d, v in results:
        lines.append(f"| {name} | {returned:,} | {moved:,} | {moved / max(returned, 1):.2f} | {d:.3f} | {v:.3f} "
                     f"| {v / d:.2f} |")
    lines += ["", f"Full scan (`{SCAN}`, every hit read, `slices` auto): 1 worker {scan[1][0]:.2f} s, "
                  f"2 workers {scan[2][0]:.2f} s: **{scan[1][0] / scan[2][0]:.2f}x**.", "",
              "Queries:", ""]
    lines += [f"- {name}: `{sql}`" for name, sql, *_ in results]
    report = "\n".join(lines) + "\n"
    replace_section(args.out, SECTION, report)
    shutil.rmtree(work, ignore_errors=True)
    print(report)


if __name__ == "__main__":
    main()
