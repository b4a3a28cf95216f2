import { StringDecoder } from 'node:string_decoder';
import pLimit, { type LimitFunction } from 'p-limit';
import type ssh2 from 'ssh2';
import { sshConnect, type ExecResult, type SshTarget } from './connect.js';
import { quoteCommand } from './quote.js';

export interface PoolOptions {
  /** Commands at once on one connection (sshd's MaxSessions is 10 by default). */
  channelsPerNode?: number;
  /** Per-command time limit. */
  commandTimeoutMs?: number;
  /** How a connection is opened (tests). */
  connect?: (target: SshTarget) => Promise<ssh2.Client>;
}

/**
 * Handshakes under way at once, in this process (all pools: the keeper has one per node). A
 * command on every node asks for every connection at once; unbounded, a thousand handshakes would
 * share the CPU and the last ones could run out of their time limit (readyTimeout) before they
 * got their turn.
 */
export const HANDSHAKES = 128;
const handshakes = pLimit(HANDSHAKES);

export class CommandTimeout extends Error {
  constructor(node: string, ms: number) {
    super(`${node}: command timed out after ${ms / 1000}s`);
    this.name = 'CommandTimeout';
  }
}

interface Entry {
  target: SshTarget;
  client: Promise<ssh2.Client> | null;
  limit: LimitFunction;
}

/**
 * One SSH connection per node, opened on first use and reused for every command; a bound on
 * channels per connection. A connection that drops is reported on the commands that used it and
 * reopened by the next one.
 */
export class SshPool {
  private readonly entries = new Map<string, Entry>();

  constructor(targets: readonly SshTarget[], private readonly options: PoolOptions = {}) {
    for (const t of targets) this.entries.set(t.name, { target: t, client: null, limit: pLimit(options.channelsPerNode ?? 8) });
  }

  private entry(node: string): Entry {
    const e = this.entries.get(node);
    if (!e) throw new Error(`no SSH target for ${node}`);
    return e;
  }

  connection(node: string): Promise<ssh2.Client> {
    const e = this.entry(node);
    if (!e.client) {
      const connect = this.options.connect ?? sshConnect;
      const p = handshakes(() => connect(e.target));
      e.client = p;
      p.then(
        (c) => {
          const drop = () => {
            if (e.client === p) e.client = null;
          };
          c.on('close', drop);
          c.on('error', drop);
        },
        () => {
          if (e.client === p) e.client = null;
        },
      );
    }
    return e.client;
  }

  /** Runs a command (shell text, built with quoteCommand) on a node; stdin optional. */
  exec(
    node: string, command: string, stdin?: string | Buffer, timeoutMs = this.options.commandTimeoutMs ?? 15 * 60_000,
    onStdout?: (chunk: string) => void,
  ): Promise<ExecResult> {
    const e = this.entry(node);
    return e.limit(async () => {
      const client = await this.connection(node);
      return new Promise<ExecResult>((resolve, reject) => {
        let settled = false;
        const timer = setTimeout(() => {
          if (settled) return;
          settled = true;
          reject(new CommandTimeout(node, timeoutMs));
        }, timeoutMs);
        const onClose = () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          reject(new Error(`${node}: connection closed during the command`));
        };
        client.once('close', onClose);
        client.exec(command, (err, stream) => {
          if (err) {
            settled = true;
            clearTimeout(timer);
            client.removeListener('close', onClose);
            return reject(err);
          }
          const out: Buffer[] = [];
          const errOut: Buffer[] = [];
          const decoder = new StringDecoder('utf8');
          stream.on('data', (d: Buffer) => {
            out.push(d);
            if (onStdout) onStdout(decoder.write(d));
          });
          stream.stderr.on('data', (d: Buffer) => errOut.push(d));
          stream.on('close', (code: number | null, signal?: string) => {
            client.removeListener('close', onClose);
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            resolve({
              code: code ?? (signal ? 128 : 255),
              stdout: Buffer.concat(out).toString('utf8'),
              stderr: Buffer.concat(errOut).toString('utf8'),
            });
          });
          stream.end(stdin ?? '');
        });
      });
    });
  }

  /** Writes a file on the node (through `install`, so owner and mode are set in one step). */
  async upload(node: string, path: string, content: string | Buffer, mode = '0644', owner = 'root:root'): Promise<void> {
    const [user, group] = owner.split(':');
    const r = await this.exec(node, quoteCommand(['install', '-D', '-m', mode, '-o', user ?? 'root', '-g', group ?? 'root', '/dev/stdin', path]), content);
    if (r.code !== 0) throw new Error(`${node}: writing ${path} failed: ${r.stderr.trim()}`);
  }

  async close(): Promise<void> {
    await Promise.all(
      [...this.entries.values()].map(async (e) => {
        const c = await e.client?.catch(() => null);
        c?.end();
        e.client = null;
      }),
    );
  }
}
