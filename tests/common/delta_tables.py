"""Delta tables written by the Python `deltalake` package (delta-rs), for
tests/delta.rs: several versions of a partitioned table (appends, a delete, a
schema change), and what that package reads back at each version.

    python3 delta_tables.py write URI [STORAGE_OPTIONS_JSON]
    python3 delta_tables.py read URI [STORAGE_OPTIONS_JSON]
    python3 delta_tables.py files URI

`files` prints, for each file of the latest version, the statistics its `add`
action holds as delta-rs parses them (rows, and per column min, max and null
count) beside the same figures computed from the file's rows.

`write` writes the table, then both print one JSON object: per version, the
row count, sum(amount), rows per `dt`, the columns and the commit time (UTC);
and the history's operations, newest first.
"""

import json
import os
import sys
import time
from datetime import datetime, timezone

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake


def events(first, last, days):
    ids = list(range(first, last + 1))
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "amount": pa.array([i * 3 for i in ids], pa.int64()),
            "dt": pa.array([days[i % len(days)] for i in ids], pa.string()),
        }
    )


def write(uri, options):
    # v0: three days; v1: two more days, appended; v2: a delete; v3: a new column.
    write_deltalake(
        uri,
        events(1, 3000, ["2024-03-01", "2024-03-02", "2024-03-03"]),
        partition_by=["dt"],
        storage_options=options,
    )
    time.sleep(1.1)
    write_deltalake(
        uri,
        events(3001, 5000, ["2024-03-04", "2024-03-05"]),
        mode="append",
        storage_options=options,
    )
    time.sleep(1.1)
    DeltaTable(uri, storage_options=options).delete("id % 10 = 0")
    time.sleep(1.1)
    with_note = events(5001, 5500, ["2024-03-05"]).append_column(
        "note", pa.array([f"n{i}" for i in range(500)], pa.string())
    )
    write_deltalake(
        uri, with_note, mode="append", schema_mode="merge", storage_options=options
    )



def describe(uri, options):
    latest = DeltaTable(uri, storage_options=options)
    history = latest.history()
    stamps = {h["version"]: h["timestamp"] for h in history}
    versions = []
    for v in range(latest.version() + 1):
        t = DeltaTable(uri, version=v, storage_options=options).to_pyarrow_table()
        per_day = {}
        for dt in t.column("dt").to_pylist():
            per_day[dt] = per_day.get(dt, 0) + 1
        versions.append(
            {
                "version": v,
                "rows": t.num_rows,
                "amount": sum(t.column("amount").to_pylist()),
                "per_day": sorted(per_day.items()),
                "columns": t.column_names,
                "timestamp": datetime.fromtimestamp(stamps[v] / 1000, timezone.utc).strftime(
                    "%Y-%m-%d %H:%M:%S.%f"
                ),
            }
        )
    return {
        "versions": versions,
        "operations": [h["operation"] for h in history],
    }


def files(uri):
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = DeltaTable(uri)
    adds = pa.table(table.get_add_actions(flatten=True))
    out = []
    for add in adds.to_pylist():
        rows = pq.read_table(os.path.join(uri, add["path"]))
        logged, actual = {"rows": add["num_records"]}, {"rows": rows.num_rows}
        for column in rows.column_names:
            values = rows.column(column)
            bounds = pc.min_max(values)
            for stat, value in (
                ("min", bounds["min"].as_py()),
                ("max", bounds["max"].as_py()),
                ("null_count", values.null_count),
            ):
                logged[f"{stat}.{column}"] = add.get(f"{stat}.{column}")
                actual[f"{stat}.{column}"] = value
        out.append({"path": add["path"], "log": logged, "file": actual})
    return out


def main():
    mode, uri = sys.argv[1], sys.argv[2]
    options = json.loads(sys.argv[3]) if len(sys.argv) > 3 else None
    if mode == "files":
        print(json.dumps(files(uri), default=str))
        return
    if mode == "write":
        write(uri, options)
    print(json.dumps(describe(uri, options)))


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    # delta-rs's runtime threads abort the interpreter's normal shutdown
    # ("terminate called without an active exception"): leave at once.
    os._exit(0)
