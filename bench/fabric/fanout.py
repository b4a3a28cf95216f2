"""Fabric's side of bench/fabric.ts: `true` on every host with a ThreadingGroup (Fabric 2, Debian's
package), host keys checked against the known_hosts file silver pinned (RejectPolicy: an unknown
key fails). Prints one line per timed run: "new SECONDS" (a new group: new connections), then
"kept SECONDS" for further runs on the same group (its connections kept open).
Usage: /usr/bin/python3 fanout.py KEY KNOWN_HOSTS KEPT_RUNS HOST..."""
import sys
import time

import paramiko
from fabric import ThreadingGroup

key, known, kept_runs, hosts = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
t0 = time.perf_counter()
group = ThreadingGroup(*hosts, user="root", connect_kwargs={"key_filename": key, "look_for_keys": False, "allow_agent": False})
for c in group:
    c.client.load_host_keys(known)
    c.client.set_missing_host_key_policy(paramiko.RejectPolicy())
group.run("true", hide=True)
print("new %.4f" % (time.perf_counter() - t0), flush=True)
for _ in range(kept_runs):
    t = time.perf_counter()
    group.run("true", hide=True)
    print("kept %.4f" % (time.perf_counter() - t), flush=True)
group.close()
