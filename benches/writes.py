#!/usr/bin/env python3
"""Writes: `CREATE TABLE … AS` of TPC-H `lineitem` partitioned by ship month
into Parquet, through Vivace with 1 and 2 embedded workers, against DuckDB's
`COPY … TO … (FORMAT parquet, PARTITION_BY …)` and DataFusion 55's own sink
(`COPY … TO … PARTITIONED BY`, datafusion-python 55) on the same machine and
the same input files. The three take turns run by run; each run writes into an
empty folder. Reports the median time, the ratio to DuckDB, the number of
files and their sizes, checks every output holds all the rows, and replaces
the "Writes" section of RESULTS.md.

    cargo build --release --bin vivace
    pip install tpchgen-cli==4.0.0 psycopg2-binary==2.9.10 duckdb==2.0.1 datafusion==55.0.0
    python3 benches/writes.py --binary target/release/vivace --data /tmp/tpch-sf1 [--generate-sf 1] --runs 3
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MONTH = "substr(CAST(l_shipdate AS VARCHAR), 1, 7)"
SMALL = 8 * 1024 * 1024


def file_sizes(folder: Path):
    """Sizes of the data files below `folder`, by partition folder."""
    parts = {}
    for f in folder.rglob("*.parquet"):
        parts.setdefault(f.parent.name, []).append(f.stat().st_size)
    return parts


def describe(parts) -> dict:
    sizes = sorted(s for p in parts.values() for s in p)
    # Files under 8 MiB that are not the smallest (last) file of their partition.
    small = sum(sum(1 for s in sorted(p)[1:] if s < SMALL) for p in parts.values())
    return {
        "partitions": len(parts),
        "files": len(sizes),
        "min": sizes[0] if sizes else 0,
        "median": int(statistics.median(sizes)) if sizes else 0,
        "max": sizes[-1] if sizes else 0,
        "small": small,
    }


class DuckDB:
    name = "DuckDB COPY"

    def __init__(self, data: Path):
        import duckdb
        self.duckdb = duckdb
        self.source = f"read_parquet('{data / 'lineitem'}/*.parquet')"

    def write(self, out: Path):
        con = self.duckdb.connect()
        con.execute(f"COPY (SELECT *, {MONTH} AS ship_month FROM {self.source}) TO '{out}' "
                    "(FORMAT parquet, PARTITION_BY (ship_month))")
        con.close()

    def count(self, out: Path) -> int:
        con = self.duckdb.connect()
        n = con.execute(f"SELECT count(*) FROM read_parquet('{out}/**/*.parquet')").fetchone()[0]
        con.close()
        return n

    def stop(self):
        pass


class DataFusion:
    name = "DataFusion 55 COPY"

    def __init__(self, data: Path):
        import datafusion
        self.datafusion = datafusion
        self.data = data

    def write(self, out: Path):
        ctx = self.datafusion.SessionContext()
        ctx.register_parquet("lineitem", str(self.data / "lineitem") + "/")
        ctx.sql(f"COPY (SELECT *, {MONTH} AS ship_month FROM lineitem) TO '{out}/' "
                "STORED AS PARQUET PARTITIONED BY (ship_month)").collect()

    def count(self, out: Path) -> int:
        ctx = self.datafusion.SessionContext()
        ctx.register_parquet("written", str(out) + "/")
        return ctx.sql("SELECT count(*) FROM written").to_pylist()[0]["count(*)"]

    def stop(self):
        pass


class VivaceWriter:
    def __init__(self, binary: str, work: Path, workers: int, data: Path):
        self.name = f"Vivace, {workers} worker{'s' if workers > 1 else ''}"
        self.vivace = benchlib.Vivace(
            binary, work, workers,
            f"CREATE EXTERNAL TABLE lineitem STORED AS PARQUET LOCATION '{data / 'lineitem'}/'")
        self.runs = 0

    def write(self, out: Path):
        self.runs += 1
        self.table = f"li_{self.runs}"
        self.execute(f"CREATE TABLE {self.table} STORED AS PARQUET PARTITIONED BY (ship_month) "
                     f"LOCATION '{out}/' AS SELECT *, {MONTH} AS ship_month FROM lineitem")

    def execute(self, sql):
        with self.vivace.conn.cursor() as cur:
            cur.execute(sql)

    def count(self, out: Path) -> int:
        n = self.vivace.rows(f"SELECT count(*) FROM {self.table}")[0][0]
        self.execute(f"DROP TABLE {self.table}")
        return n

    def stop(self):
        self.vivace.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True, help="a release build of vivace")
    ap.add_argument("--data", required=True, type=Path, help="tpchgen-cli Parquet output folder")
    ap.add_argument("--generate-sf", type=float, help="generate the data with tpchgen-cli at this scale first")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=ROOT / "benches" / "RESULTS.md")
    args = ap.parse_args()
    if args.generate_sf:
        subprocess.run(["tpchgen-cli", "parquet", "-s", str(args.generate_sf), "--parts", "4",
                        "-o", str(args.data)], check=True)
    scratch = Path(tempfile.mkdtemp(prefix="vivace-writes-"))
    writers = [DuckDB(args.data),
               DataFusion(args.data),
               VivaceWriter(args.binary, scratch / "w1", 1, args.data),
               VivaceWriter(args.binary, scratch / "w2", 2, args.data)]
    times = {w.name: [] for w in writers}
    shapes = {}
    expected = None
    try:
        for run in range(args.runs):
            for w in writers:
                out = scratch / "out"
                shutil.rmtree(out, ignore_errors=True)
                start = time.perf_counter()
                w.write(out)
                times[w.name].append(time.perf_counter() - start)
                shapes[w.name] = describe(file_sizes(out))
                n = w.count(out)
                expected = expected if expected is not None else n
                if n != expected:
                    sys.exit(f"{w.name} wrote {n} rows, DuckDB {expected}")
                print(f"run {run + 1}: {w.name}: {times[w.name][-1]:.2f}s {shapes[w.name]}", flush=True)
                shutil.rmtree(out, ignore_errors=True)
    finally:
        for w in writers:
            w.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    base = statistics.median(times[writers[0].name])
    mib = lambda b: f"{b / 2**20:.1f}"  # noqa: E731
    lines = [
        "# Writes: CTAS of lineitem partitioned by ship month",
        "",
        f"Machine: {benchlib.machine()}. Commit {benchlib.source_commit()}. Command: "
        f"`python3 benches/writes.py --binary target/release/vivace --data {args.data} --runs {args.runs}` "
        f"({expected:,} rows, {shapes[writers[0].name]['partitions']} ship months; median of {args.runs} runs, "
        "taking turns run by run). Small files: files under 8 MiB that are not the last of their partition. "
        "DataFusion's own sink writes through one task (its `DataSinkExec` takes one input partition) and "
        "opens one file per partition value with no size roll-over; Vivace hash-partitions the rows so "
        "each worker task writes its own partitions, rolling files at `target_file_size`.",
        "",
        "| writer | median s | × DuckDB | files | min MiB | median MiB | max MiB | small files |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for w in writers:
        t = statistics.median(times[w.name])
        s = shapes[w.name]
        lines.append(f"| {w.name} | {t:.2f} | {t / base:.2f} | {s['files']} | {mib(s['min'])} | "
                     f"{mib(s['median'])} | {mib(s['max'])} | {s['small']} |")
    report = "\n".join(lines) + "\n"
    print(report)
    benchlib.replace_section(args.out, "# Writes: CTAS of lineitem", report)


if __name__ == "__main__":
    main()
