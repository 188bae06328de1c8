// node-postgres (`pg`): a parameterised query and the JavaScript types of its
// rows, printed as JSON. Usage: node probe.js PORT [PROJECT_DIR]
// PROJECT_DIR is the npm project whose `pg` to load (default: this one, the
// pinned release; ../node-newest holds the newest).
const path = require("path");
const project = path.resolve(process.argv[3] || __dirname);
const { Client } = require(require.resolve("pg", { paths: [project] }));
const pgVersion = require(require.resolve("pg/package.json", { paths: [project] })).version;

async function main(port) {
  const client = new Client({ host: "127.0.0.1", port, user: "vivace", database: "vivace" });
  await client.connect();
  const res = await client.query(
    "SELECT id, name, qty, price, created, active FROM items WHERE qty > $1 AND name LIKE $2 ORDER BY id",
    [1, "%p%"],
  );
  const out = {
    pg: pgVersion,
    fields: res.fields.map((f) => [f.name, f.dataTypeID]),
    rows: res.rows.map((r) => [r.id, r.name, r.qty, r.price, r.created instanceof Date, r.active]),
    types: res.rows.length ? Object.values(res.rows[0]).map((v) => typeof v) : [],
    count: (await client.query("SELECT count(*) AS n FROM items")).rows[0].n,
  };
  await client.end();
  console.log(JSON.stringify(out));
}

main(Number(process.argv[2])).catch((e) => {
  console.error(e);
  process.exit(1);
});
