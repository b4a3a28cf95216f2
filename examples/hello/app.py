"""hello — silver's example app: counts visits in PostgreSQL. Small enough to read in a minute.

Environment (set by silver): PORT, SILVER_INSTANCE_NAME, CONFIG_PG_* (the service node).
Settings (silver env set hello FILE KEY=VALUE): HELLO_GREETING (the page's first word, default
"hello"), HELLO_DB_TIMEOUT (seconds, a whole number: anything else stops the app at start-up),
HELLO_FETCH_SECONDS (how long /setup-stuff takes besides its work, default 0: a real app's
warm-up on activation, for bench:batches; a number, else the app stops at start-up).
"""
import os
import socket
import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
VERSION = open(os.path.join(HERE, "VERSION")).read().strip()
INSTANCE = os.environ.get("SILVER_INSTANCE_NAME", "dev")
NODE = socket.gethostname()
GREETING = os.environ.get("HELLO_GREETING", "hello")
DB_TIMEOUT = int(os.environ.get("HELLO_DB_TIMEOUT", "3"))
FETCH_SECONDS = float(os.environ.get("HELLO_FETCH_SECONDS", "0"))
# /health reaches the database at most every HEALTH_DB_SECONDS: its first answer (the one silver
# waits for when it activates an instance) always does, so a wrong password or host fails the
# update; later checks reuse a recent success, so that the balancer's checks of every app server
# (one a second each) do not become a database connection each.
HEALTH_DB_SECONDS = 5
last_db_ok = 0.0


def connect():
    return psycopg2.connect(
        dbname=os.environ["CONFIG_PG_DBNAME"], user=os.environ["CONFIG_PG_USER"],
        password=os.environ["CONFIG_PG_PASSWORD"], host=os.environ["CONFIG_PG_HOST"],
        port=os.environ["CONFIG_PG_PORT"], connect_timeout=DB_TIMEOUT,
        # (a kept connection to a database node that went away fails within the same time)
        tcp_user_timeout=DB_TIMEOUT * 1000, keepalives=1, keepalives_idle=30)


# One connection kept open and reused: a new one costs the database a process and a password
# exchange, which under load on many app servers is what it spends its time on. Requests take
# turns on it (PostgreSQL takes 100 connections: two instances of each of 38 app servers during
# an update hold 76); one that failed is closed, and the next request opens another.
idle = []
turns = threading.Lock()


def with_db(work):
    """work(cursor) in a transaction (committed, or rolled back on an error); what it returns."""
    with turns:
        for attempt in (1, 2):
            c = idle.pop() if idle else None
            kept = c is not None
            c = c or connect()
            before_commit = False
            try:
                with c:
                    with c.cursor() as cur:
                        before_commit = True
                        result = work(cur)
                        before_commit = False
            except (psycopg2.OperationalError, psycopg2.InterfaceError):
                c.close()
                # (a kept connection the database closed meanwhile: once more, on a new one —
                # only when it failed before the commit, so that nothing of the work was kept)
                if kept and attempt == 1 and before_commit:
                    continue
                raise
            except Exception:
                idle.append(c)
                raise
            idle.append(c)
            return result


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
            if self.path == "/health":
                # A file "unhealthy-on-NODE" in the app makes that node fail: for rollback tests.
                if os.path.exists(os.path.join(HERE, "unhealthy-on-" + NODE)):
                    return self.reply(503, "unhealthy on purpose")
                global last_db_ok
                if time.monotonic() - last_db_ok > HEALTH_DB_SECONDS:
                    with_db(lambda cur: cur.execute("SELECT 1"))
                    last_db_ok = time.monotonic()
                return self.reply(200, "ok")
            if self.path == "/setup-stuff":
                role = self.headers.get("X-Silverlining-Update", "none")

                def set_up(cur):
                    if role == "primary":
                        cur.execute("CREATE TABLE IF NOT EXISTS visits (n serial PRIMARY KEY, at timestamptz DEFAULT now())")
                        cur.execute("CREATE TABLE IF NOT EXISTS fetches (instance text, node text, role text)")
                    cur.execute("INSERT INTO fetches VALUES (%s, %s, %s)", (INSTANCE, NODE, role))
                with_db(set_up)
                time.sleep(max(0.0, FETCH_SECONDS))
                return self.reply(200, "set up (%s)" % role)
            if self.path == "/fetches":
                def fetches(cur):
                    cur.execute("SELECT instance, node, role FROM fetches ORDER BY 1, 2")
                    return cur.fetchall()
                return self.reply(200, "\n".join(" ".join(r) for r in with_db(fetches)))

            def visit(cur):
                cur.execute("INSERT INTO visits DEFAULT VALUES RETURNING n")
                return cur.fetchone()[0]
            n = with_db(visit)
            self.reply(200, "%s from %s: version %s, %s, visit %d" % (GREETING, NODE, VERSION, INSTANCE, n))
        except Exception as e:  # a failed request says why
            self.reply(500, "error: %s" % e)

    def log_message(self, fmt, *args):
        # One line a request on stderr (the journal: silver logs hello FILE); health checks left out.
        if not self.path.startswith("/health"):
            sys.stderr.write("%s %s\n" % (self.command, self.path))
            sys.stderr.flush()


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
