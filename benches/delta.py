#!/usr/bin/env python3
"""TPC-H on Delta tables Vivace wrote against the same data as plain Parquet.

Two `vivace serve` deployments with their default embedded workers run side
by side: one with the TPC-H Parquet files (tpchgen-cli) registered as
`STORED AS PARQUET`, the other with Delta copies of them that Vivace wrote
(`CREATE TABLE … STORED AS DELTA … AS SELECT * FROM` each Parquet table)
registered as `STORED AS DELTA` under the same names. The 22 queries run
query by query in turn on both (benches/tpch.py's `time_interleaved`); the
answers must be equal. Writes the section "Delta Lake" of RESULTS.md.

  python3 benches/delta.py --binary target/release/vivace --data /tmp/tpch-sf1 \\
      [--generate-sf 1] --runs 3 --out benches/RESULTS.md
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import machine, replace_section, source_commit
from tpch import QUERIES, TABLES, Deployment, time_interleaved

SECTION = "# Delta Lake: TPC-H on Delta tables Vivace wrote vs the same data as Parquet"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True, help="a release build of vivace")
    ap.add_argument("--data", required=True, type=Path, help="tpchgen-cli Parquet output folder")
    ap.add_argument("--generate-sf", type=float, help="generate the data with tpchgen-cli at this scale first")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "RESULTS.md")
    args = ap.parse_args()
    if args.generate_sf:
        subprocess.run(["tpchgen-cli", "parquet", "-s", str(args.generate_sf), "--parts", "4", "-o",
                        str(args.data)], check=True)
    work = Path(tempfile.mkdtemp(prefix="vivace-delta-bench-"))
    lake = work / "lake"
    deps = {}
    try:
        deps["parquet"] = Deployment(args.binary, work / "parquet", embedded_workers=2)
        deps["parquet"].register(args.data)
        # Vivace writes the Delta copies, then the second deployment reads them.
        written = {}
        with deps["parquet"].connect() as conn, conn.cursor() as cur:
            for t in TABLES:
                start = time.perf_counter()
                cur.execute(f"CREATE TABLE {t}_delta STORED AS DELTA LOCATION '{lake / t}/' AS SELECT * FROM {t}")
                written[t] = time.perf_counter() - start
                print(f"  wrote {t} as Delta in {written[t]:.2f}s", flush=True)
        deps["delta"] = Deployment(args.binary, work / "delta", embedded_workers=2)
        with deps["delta"].connect() as conn, conn.cursor() as cur:
            for t in TABLES:
                cur.execute(f"CREATE EXTERNAL TABLE {t} STORED AS DELTA LOCATION '{lake / t}/'")
        times, answers, failures = time_interleaved(deps, QUERIES, args.runs)
    finally:
        for dep in deps.values():
            dep.stop()
    if any(failures.values()):
        sys.exit(f"queries failed: {failures}")
    wrong = [q for q, _ in QUERIES if answers["delta"][q] != answers["parquet"][q]]
    if wrong:
        sys.exit(f"Delta tables gave different answers for {wrong}")
    total = {k: sum(v.values()) for k, v in times.items()}
    files = {t: len(list((lake / t).rglob("*.parquet"))) for t in TABLES}
    lines = [
        SECTION, "",
        f"Machine: {machine()}.  ",
        f"Commit: {source_commit()}.  ",
        f"Command: `python3 benches/delta.py {' '.join(sys.argv[1:])}`  ",
        f"Data: TPC-H from `tpchgen-cli parquet --parts 4` at `{args.data.name}`; the Delta copies written "
        "by Vivace (`CREATE TABLE t_delta STORED AS DELTA … AS SELECT * FROM t`, unpartitioned, "
        f"128 MiB files: {sum(files.values())} files in all, lineitem in {files['lineitem']}; "
        f"writing all eight took {sum(written.values()):.1f} s).  ",
        f"Both deployments `vivace serve --workers 2`, side by side, taking turns query by query; each time "
        f"the median of {args.runs} runs after one warm-up; the answers were checked equal.",
        "",
        "| query | Parquet (s) | Delta (s) | Delta / Parquet |",
        "|---|---:|---:|---:|",
    ]
    for q, _ in QUERIES:
        p, d = times["parquet"][q], times["delta"][q]
        lines.append(f"| {q} | {p:.3f} | {d:.3f} | {d / p:.2f} |")
    lines.append(f"| **total** | **{total['parquet']:.2f}** | **{total['delta']:.2f}** | "
                 f"**{total['delta'] / total['parquet']:.2f}** |")
    lines += ["", f"Target ≤ 1.1× the Parquet total: **{'met' if total['delta'] <= 1.1 * total['parquet'] else 'not met'}** "
              f"({total['delta'] / total['parquet']:.2f}×).", ""]
    replace_section(args.out, SECTION, "\n".join(lines))
    print("\n".join(lines))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
