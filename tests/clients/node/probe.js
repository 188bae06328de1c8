// node-postgres (`pg`): a parameterised query and the JavaScript types of its
// rows, printed as JSON. Usage: node probe.js PORT
const { Client } = require("pg");

async function main(port) {
  const client = new Client({ host: "127.0.0.1", port, user: "vivace", database: "vivace" });
  await client.connect();
  const res = await client.query(
    "SELECT id, name, qty, price, created, active FROM items WHERE qty > $1 AND name LIKE $2 ORDER BY id",
    [1, "%p%"],
  );
  const out = {
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
