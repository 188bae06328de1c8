"""asyncpg: prepared statements in the binary format, arrays included (which
asyncpg describes with its type-introspection query first). Prints JSON; usage:
asyncpg_probe.py PORT."""

import asyncio
import datetime
import json
import sys

import asyncpg


async def main(port: int):
    conn = await asyncpg.connect(host="127.0.0.1", port=port, user="vivace", database="vivace")
    out = {}
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
    await conn.close()
    print(json.dumps(out, sort_keys=True, default=repr))


asyncio.run(main(int(sys.argv[1])))
