"""What Superset does through SQLAlchemy on connect and schema sync, printed as
JSON so the same run against Vivace and PostgreSQL can be compared.
Usage: python sqlalchemy_probe.py URL"""

import json
import sys

import sqlalchemy as sa

engine = sa.create_engine(sys.argv[1])
out = {"sqlalchemy": sa.__version__}
inspector = sa.inspect(engine)
out["schemas_include_public"] = "public" in inspector.get_schema_names()
out["tables"] = inspector.get_table_names(schema="public")
out["views"] = inspector.get_view_names(schema="public")
# Each server prints a view's query its own way: what it reads is compared.
definition = inspector.get_view_definition("big_items", schema="public").lower()
out["view_definition_reads"] = ["items" in definition, "qty > 5" in definition]
out["view_columns"] = [c["name"] for c in inspector.get_columns("big_items", schema="public")]
out["columns"] = [
    {"name": c["name"], "type": str(c["type"]), "nullable": c["nullable"]}
    for c in inspector.get_columns("items", schema="public")
]
out["pk"] = inspector.get_pk_constraint("items", schema="public")["constrained_columns"]
out["fks"] = inspector.get_foreign_keys("items", schema="public")
out["indexes"] = inspector.get_indexes("items", schema="public")
items = sa.Table("items", sa.MetaData(), autoload_with=engine, schema="public")
with engine.connect() as conn:
    query = (
        sa.select(items.c.name, items.c.qty, items.c.created)
        .where(items.c.qty >= sa.bindparam("least"))
        .where(items.c.name != sa.bindparam("skip"))
        .order_by(items.c.id)
    )
    rows = conn.execute(query, {"least": 1, "skip": "kiwi"}).all()
    out["select"] = [[r[0], r[1], r[2].isoformat()] for r in rows]
    out["count"] = conn.execute(sa.select(sa.func.count()).select_from(items)).scalar()
    big = sa.Table("big_items", sa.MetaData(), autoload_with=engine, schema="public")
    out["view_rows"] = [list(r) for r in conn.execute(sa.select(big).order_by(big.c.id)).all()]
print(json.dumps(out, sort_keys=True))
