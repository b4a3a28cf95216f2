import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ExecResult, SshTarget } from './connect.js';

/**
 * Connections kept between commands, as OpenSSH's ControlPersist keeps them: after a command
 * that opened its own connections, a background process (the keeper, keeper-main.ts) opens one
 * per node again and serves later commands over a Unix socket in silver's state folder (mode
 * 0700, socket 0600), so a re-run pays no SSH handshakes. It exits after `SILVER_PERSIST`
 * seconds without a command (default 60; 0 turns keeping off) or on `silver disconnect`.
 * Every request names the node's address, user and pinned host key: a connection made to
 * anything else is not used (the keeper connects anew, checking the key as ever).
 */
export interface NodeExecutor {
  exec(node: string, command: string, stdin?: string | Buffer, timeoutMs?: number, onStdout?: (chunk: string) => void): Promise<ExecResult>;
  close(): Promise<void>;
}

export interface KeeperConfig {
  socket: string;
  idleSeconds: number;
  /** With a command connected but no step running (default ten times idleSeconds). */
  connectedIdleSeconds?: number;
  privateKey: string;
  targets: Omit<SshTarget, 'privateKey' | 'onFirstKey'>[];
}

/** What a request says about the connection it wants. */
export type WireTarget = Pick<SshTarget, 'name' | 'host' | 'port' | 'username' | 'hostKey' | 'timeoutMs'>;

export function persistSeconds(env: NodeJS.ProcessEnv = process.env): number {
  const v = env['SILVER_PERSIST'];
  if (v === undefined || v === '') return 60;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? Math.floor(n) : 60;
}

/** The keeper's socket for a nodeset, a login user and a key. */
export function keeperSocket(stateRoot: string, nodeset: string, username: string, privateKey: string): string {
  const id = createHash('sha256').update(`${username}\n${privateKey}`).digest('hex').slice(0, 12);
  return join(stateRoot, 'keep', `${nodeset}.${id}.sock`);
}

function wire(t: SshTarget): WireTarget {
  return { name: t.name, host: t.host, port: t.port ?? 22, username: t.username, hostKey: t.hostKey, ...(t.timeoutMs ? { timeoutMs: t.timeoutMs } : {}) };
}

/** A connection to a keeper's socket, or null when none answers. */
export function tryConnect(path: string, ms = 500): Promise<Socket | null> {
  return new Promise((resolve) => {
    const s = connect(path);
    const timer = setTimeout(() => {
      s.destroy();
      resolve(null);
    }, ms);
    s.once('connect', () => {
      clearTimeout(timer);
      resolve(s);
    });
    s.once('error', () => {
      clearTimeout(timer);
      s.destroy();
      resolve(null);
    });
  });
}

/**
 * An executor for these targets: the nodeset's keeper when one answers, else connections of
 * this command's own (and, when it closes, a keeper started for the next command).
 */
export async function openExecutor(stateRoot: string, nodeset: string, targets: SshTarget[], env: NodeJS.ProcessEnv = process.env): Promise<NodeExecutor> {
  const idle = persistSeconds(env);
  const first = targets[0];
  // (the SSH code loads only when this command makes its own connections)
  const own = async () => new (await import('./pool.js')).SshPool(targets);
  if (idle === 0 || !first) return own();
  const path = keeperSocket(stateRoot, nodeset, first.username, first.privateKey);
  // (a keep folder another user could write to — a state folder in a shared place — is not
  // trusted: a socket planted there would see every command and its input)
  if (!privateFolder(join(path, '..'))) return own();
  const sock = await tryConnect(path);
  if (sock) return new KeeperClient(sock, targets);
  const pool = await own();
  return {
    exec: (...args) => pool.exec(...args),
    async close() {
      await pool.close();
      startKeeper({ socket: path, idleSeconds: idle, privateKey: first.privateKey, targets: targets.map(wire) });
    },
  };
}

/** Whether DIR is absent (made 0700 when needed) or a real folder of this user's that no one else can enter. */
export function privateFolder(dir: string): boolean {
  const st = lstatSync(dir, { throwIfNoEntry: false });
  if (!st) return true;
  return st.isDirectory() && !st.isSymbolicLink() && st.uid === process.getuid?.() && (st.mode & 0o077) === 0;
}

/** Starts a keeper in the background (its own session, no output); the command does not wait. */
export function startKeeper(config: KeeperConfig): void {
  mkdirSync(join(config.socket, '..'), { recursive: true, mode: 0o700 });
  const main = fileURLToPath(new URL('./keeper-main.js', import.meta.url));
  const child = spawn(process.execPath, [main], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
  child.on('error', () => undefined);
  child.stdin.on('error', () => undefined);
  // The key goes through the pipe, never the command line.
  child.stdin.end(JSON.stringify(config));
  child.unref();
}

/** Asks the keeper of this socket to end (closing its connections); false when none ran. */
export async function stopKeeper(path: string): Promise<boolean> {
  const sock = await tryConnect(path);
  if (!sock) return false;
  await new Promise<void>((resolve) => {
    sock.once('close', () => resolve());
    sock.end(`${JSON.stringify({ id: 0, quit: true })}\n`);
  });
  return true;
}

/**
 * Calls `onMessage` with each JSON line arriving on the socket (the keeper's wire format). A
 * line can be a node script of hundreds of KB, arriving in many chunks: only each new chunk is
 * searched for the line's end, and the pieces are joined once.
 */
export function onJsonLines<T>(sock: Pick<Socket, 'setEncoding' | 'on'>, onMessage: (msg: T) => void): void {
  let pieces: string[] = [];
  sock.setEncoding('utf8');
  sock.on('data', (d: string) => {
    let start = 0;
    let nl: number;
    while ((nl = d.indexOf('\n', start)) >= 0) {
      pieces.push(d.slice(start, nl));
      const line = pieces.join('');
      pieces = [];
      start = nl + 1;
      let msg: T;
      try {
        msg = JSON.parse(line) as T;
      } catch {
        continue;
      }
      onMessage(msg);
    }
    if (start < d.length) pieces.push(d.slice(start));
  });
}

/** What the keeper sends back: output chunks, then the result or an error, by request id. */
type Reply = { id: number; out?: string; result?: ExecResult; error?: string };

interface Pending {
  resolve: (r: ExecResult) => void;
  reject: (e: Error) => void;
  onStdout?: ((chunk: string) => void) | undefined;
}

const KEEPER_GONE = 'the connection keeper went away during the command';

/** Talks to a keeper: one JSON line per request; output chunks and the result come back by id. */
class KeeperClient implements NodeExecutor {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly targets: Map<string, SshTarget>;

  constructor(private readonly sock: Socket, targets: SshTarget[]) {
    this.targets = new Map(targets.map((t) => [t.name, t]));
    onJsonLines<Reply>(sock, (msg) => this.reply(msg));
    sock.on('error', () => undefined);
    sock.on('close', () => this.failAll(new Error(KEEPER_GONE)));
  }

  exec(node: string, command: string, stdin?: string | Buffer, timeoutMs?: number, onStdout?: (chunk: string) => void): Promise<ExecResult> {
    const t = this.targets.get(node);
    if (!t) return Promise.reject(new Error(`no SSH target for ${node}`));
    // (a request written to a socket already closed would never be answered: the command would
    // wait for ever, its cleanup never run)
    if (this.sock.destroyed) return Promise.reject(new Error(KEEPER_GONE));
    const id = this.nextId++;
    return new Promise<ExecResult>((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onStdout });
      const req = {
        id,
        target: wire(t),
        command,
        stdin: stdin === undefined ? null : Buffer.from(stdin).toString('base64'),
        ...(timeoutMs ? { timeoutMs } : {}),
      };
      this.sock.write(`${JSON.stringify(req)}\n`);
    });
  }

  private reply(msg: Reply): void {
    const p = this.pending.get(msg.id);
    if (!p) return;
    if (msg.out !== undefined) p.onStdout?.(msg.out);
    else if (msg.result) {
      this.pending.delete(msg.id);
      p.resolve(msg.result);
    } else if (msg.error !== undefined) {
      this.pending.delete(msg.id);
      p.reject(new Error(msg.error));
    }
  }

  private failAll(e: Error): void {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      if (this.sock.destroyed) return resolve();
      this.sock.once('close', () => resolve());
      this.sock.end();
    });
  }
}
