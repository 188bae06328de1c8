"""asyncpg: prepared statements in the binary format, arrays included (which
asyncpg describes with its type-introspection query first). Prints JSON; usage:
asyncpg_probe.py PORT."""

import asyncio
import datetime
import decimal
import json
import sys

import asyncpg


async def step(work):
    """The step's value, or the error it raised (so one failure shows beside the rest)."""
    try:
        return await work
    except Exception as e:  # the comparison reports it
        return {"error": type(e).__name__, "message": str(e)}


async def typed_rows(conn, sql, *args):
    stmt = await conn.prepare(sql)
    return {"types": [(a.name, a.type.name) for a in stmt.get_attributes()],
            "rows": [list(r) for r in await stmt.fetch(*args)]}


async def main(port: int):
    conn = await asyncpg.connect(host="127.0.0.1", port=port, user="vivace", database="vivace")
    out = {"asyncpg": asyncpg.__version__}
    stmt = await conn.prepare(
        "SELECT id, name, qty, price, created, active FROM items "
        "WHERE id >= $1 AND name <> $2 AND created < $3 ORDER BY id"
    )
    out["param_types"] = [t.name for t in stmt.get_parameters()]
    out["column_types"] = [(a.name, a.type.name) for a in stmt.get_attributes()]
    rows = await stmt.fetch(2, "kiwi", datetime.date(2024, 12, 31))
    out["rows"] = [[r["id"], r["name"], r["qty"], r["price"], r["created"].isoformat(), r["active"]] for r in rows]
    out["scalars"] = list(await conn.fetchrow(
        "SELECT $1::bigint + 1 AS n, $2::text || '!' AS s, $3::boolean AS b, $4::double precision * 2 AS f",
        41, "hi", True, 1.25))
    out["count"] = await conn.fetchval("SELECT count(*) FROM items WHERE active = $1", True)
    arrays = await conn.prepare(
        "SELECT array_agg(id ORDER BY id) AS ids, array_agg(qty ORDER BY id) AS qtys, "
        "array_agg(name ORDER BY id) AS names, array_agg(price ORDER BY id) AS prices, "
        "array_agg(active ORDER BY id) AS flags, array_agg(created ORDER BY id) AS days "
        "FROM items WHERE id = ANY($1::bigint[])"
    )
    out["array_types"] = [(a.name, a.type.name) for a in arrays.get_attributes()]
    row = await arrays.fetchrow([1, 3, 4])
    out["arrays"] = [row["ids"], row["qtys"], row["names"], row["prices"], row["flags"],
                     [d.isoformat() for d in row["days"]]]
    out["array_params"] = list(await conn.fetchrow(
        "SELECT $1::int[] AS i, $2::text[] AS t", [5, 6, 7], ["a", "b'c"]))
    out["more_types"] = await step(typed_rows(
        conn,
        "SELECT CAST(created AS timestamp) AS ts, CAST(created AS timestamptz) AS tstz, "
        "CAST(price AS numeric(10,2)) AS num, CAST(name AS bytea) AS raw, "
        "CAST(qty AS smallint) AS small, CAST(price AS real) AS r4 FROM items ORDER BY id"))
    out["more_arrays"] = await step(typed_rows(
        conn,
        "SELECT array_agg(CAST(created AS timestamp) ORDER BY id) AS ts, "
        "array_agg(CAST(price AS numeric(10,2)) ORDER BY id) AS num, "
        "array_agg(CAST(qty AS smallint) ORDER BY id) AS small FROM items"))
    out["more_params"] = await step(typed_rows(
        conn,
        "SELECT $1::timestamp AS ts, $2::numeric(10,2) AS num, $3::bytea AS raw, $4::smallint AS small",
        datetime.datetime(2024, 1, 2, 3, 4, 5), decimal.Decimal("12.50"), b"\x00ab", 7))
    out["intervals_and_times"] = await step(typed_rows(
        conn,
        "SELECT interval '1 day 2 hours' AS iv, CAST('12:34:56' AS time) AS t, $1::interval AS p",
        datetime.timedelta(days=1, seconds=30)))
    out["interval_arrays"] = await step(typed_rows(
        conn, "SELECT array_agg(CASE WHEN active THEN interval '1 hour' ELSE interval '2 days' END "
              "ORDER BY id) AS ivs FROM items"))
    await conn.close()
    print(json.dumps(out, sort_keys=True, default=repr))


asyncio.run(main(int(sys.argv[1])))
