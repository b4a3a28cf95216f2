"""notes — silver's example of a schema change. GET / lists the notes, POST / adds one (the
request body). Which columns it uses follows the schema the migrations built: once
002_author.sql has run (expand), notes carry an author; a later version may drop what no
instance reads any more (contract).

Environment (set by silver): PORT, SILVER_INSTANCE_NAME, CONFIG_PG_* (the service node).
"""
import os
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
VERSION = open(os.path.join(HERE, "VERSION")).read().strip()
NODE = socket.gethostname()


def db():
    return psycopg2.connect(
        dbname=os.environ["CONFIG_PG_DBNAME"], user=os.environ["CONFIG_PG_USER"],
        password=os.environ["CONFIG_PG_PASSWORD"], host=os.environ["CONFIG_PG_HOST"],
        port=os.environ["CONFIG_PG_PORT"], connect_timeout=3)


def has_author(cur):
    cur.execute("SELECT 1 FROM information_schema.columns WHERE table_name = 'notes' AND column_name = 'author'")
    return cur.fetchone() is not None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def reply(self, code, text):
        body = (text + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        try:
            with db() as c, c.cursor() as cur:
                if self.path == "/health":
                    cur.execute("SELECT count(*) FROM notes")
                    return self.reply(200, "ok")
                cur.execute("SELECT count(*) FROM notes")
                n = cur.fetchone()[0]
            self.reply(200, "notes from %s: version %s, %d notes" % (NODE, VERSION, n))
        except Exception as e:
            self.reply(500, "error: %s" % e)

    def do_POST(self):
        try:
            text = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0)).decode() or "note"
            with db() as c, c.cursor() as cur:
                if has_author(cur):
                    cur.execute("INSERT INTO notes (body, author) VALUES (%s, %s)", (text, NODE))
                else:
                    cur.execute("INSERT INTO notes (body) VALUES (%s)", (text,))
            self.reply(200, "noted by %s: version %s" % (NODE, VERSION))
        except Exception as e:
            self.reply(500, "error: %s" % e)

    def log_message(self, fmt, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
