/**
 * The connection keeper (see keeper.ts): started by silver with its configuration on stdin;
 * keeps one SSH connection per node and runs the commands later silver commands send over its
 * Unix socket. Exits after `idleSeconds` with no command running and no silver command
 * connected (ten times as long with one connected between its steps: a command suspended or
 * hung keeps it no longer), when its socket cannot be had (another keeper holds it), or on a
 * `quit` request: then its socket goes at once (the next command makes its own connections), and
 * it ends once the commands connected to it are done, as long as they go on working (a `silver
 * disconnect` never cuts another command's step short).
 */
import { existsSync, unlinkSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import type { SshTarget } from './connect.js';
import { onJsonLines, tryConnect, type KeeperConfig, type WireTarget } from './keeper.js';
import { SshPool } from './pool.js';

function readStdin(): Promise<string> {
  return new Promise((resolve, reject) => {
    let s = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (d: string) => (s += d));
    process.stdin.on('end', () => resolve(s));
    process.stdin.on('error', reject);
  });
}

const config = JSON.parse(await readStdin()) as KeeperConfig;
const entries = new Map<string, { target: SshTarget; pool: SshPool }>();

const same = (a: WireTarget, b: WireTarget) => a.host === b.host && (a.port ?? 22) === (b.port ?? 22) && a.username === b.username && a.hostKey === b.hostKey;

/** The pool for this node, made anew when the request names another address, user or key. */
function poolFor(w: WireTarget): SshPool {
  const e = entries.get(w.name);
  if (e && same(e.target, w)) return e.pool;
  if (e) void e.pool.close();
  const target: SshTarget = { ...w, privateKey: config.privateKey };
  const pool = new SshPool([target]);
  entries.set(w.name, { target, pool });
  return pool;
}

let active = 0;
let clients = 0;
let quitting = false;
let idleTimer: NodeJS.Timeout | null = null;
const server = createServer();

/** No new command finds this keeper any more (its socket's name may be another keeper's next). */
function withdraw(): void {
  if (quitting) return;
  quitting = true;
  server.close();
  try {
    unlinkSync(config.socket);
  } catch {
    /* gone already */
  }
}

async function shutdown(): Promise<void> {
  if (idleTimer) clearTimeout(idleTimer);
  withdraw();
  await Promise.all([...entries.values()].map((e) => e.pool.close().catch(() => undefined)));
  process.exit(0);
}

function touch(): void {
  if (idleTimer) clearTimeout(idleTimer);
  idleTimer = null;
  if (active > 0) return;
  if (clients === 0 && quitting) {
    void shutdown();
    return;
  }
  const seconds = clients > 0 ? (config.connectedIdleSeconds ?? config.idleSeconds * 10) : config.idleSeconds;
  idleTimer = setTimeout(() => void shutdown(), seconds * 1000);
}

type Request = { id: number; quit?: boolean; target?: WireTarget; command?: string; stdin?: string | null; timeoutMs?: number };

function serve(sock: Socket): void {
  const send = (msg: object) => {
    if (!sock.destroyed) sock.write(`${JSON.stringify(msg)}\n`);
  };
  sock.on('error', () => undefined);
  clients++;
  touch();
  sock.on('close', () => {
    clients--;
    touch();
  });
  onJsonLines<Request>(sock, (req) => {
    if (req.quit) {
      withdraw();
      sock.end();
      return;
    }
    if (!req.target || typeof req.command !== 'string') {
      send({ id: req.id, error: 'bad request' });
      return;
    }
    const target = req.target;
    active++;
    touch();
    poolFor(target)
      .exec(target.name, req.command, req.stdin == null ? undefined : Buffer.from(req.stdin, 'base64'), req.timeoutMs, (out) => send({ id: req.id, out }))
      .then(
        (result) => send({ id: req.id, result }),
        (e: Error) => send({ id: req.id, error: e.message }),
      )
      .finally(() => {
        active--;
        touch();
      });
  });
}

server.on('connection', serve);
server.on('error', () => process.exit(0));
if (existsSync(config.socket)) {
  const other = await tryConnect(config.socket);
  if (other) {
    other.destroy();
    process.exit(0); // another keeper serves this nodeset
  }
  unlinkSync(config.socket); // left by a keeper that did not end cleanly
}
process.umask(0o077);
server.listen(config.socket, () => {
  touch();
  // The connections are made now, so the next command finds them ready.
  for (const t of config.targets) void poolFor(t).connection(t.name).catch(() => undefined);
});
process.on('SIGTERM', () => void shutdown());
