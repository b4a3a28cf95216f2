"""Applies the migrations in migrations/ that the database has not seen, in order, each in its
own transaction, and records them in schema_migrations (with the node that ran them)."""
import os
import socket
import sys

import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
conn = psycopg2.connect(
    dbname=os.environ["CONFIG_PG_DBNAME"], user=os.environ["CONFIG_PG_USER"],
    password=os.environ["CONFIG_PG_PASSWORD"], host=os.environ["CONFIG_PG_HOST"],
    port=os.environ["CONFIG_PG_PORT"], connect_timeout=5)
with conn, conn.cursor() as cur:
    cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations"
                " (name text PRIMARY KEY, node text, instance text, at timestamptz DEFAULT now())")
    cur.execute("SELECT name FROM schema_migrations")
    done = {r[0] for r in cur.fetchall()}
for name in sorted(os.listdir(os.path.join(HERE, "migrations"))):
    if not name.endswith(".sql") or name in done:
        continue
    with open(os.path.join(HERE, "migrations", name)) as f:
        sql = f.read()
    with conn, conn.cursor() as cur:
        cur.execute(sql)
        cur.execute("INSERT INTO schema_migrations (name, node, instance) VALUES (%s, %s, %s)",
                    (name, socket.gethostname(), os.environ.get("SILVER_INSTANCE_NAME", "")))
    print("applied", name, flush=True)
print("schema up to date", flush=True)
sys.exit(0)
