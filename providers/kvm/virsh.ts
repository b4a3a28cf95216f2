import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { CommandFailed, type RunResult } from '../../src/util/exec.js';

/**
 * One interactive `virsh -c URI` per provider: every command goes over its stdin and the
 * connection stays open, which is faster than a process per command (one SSH handshake for
 * `qemu+ssh://`) and the only way the `test:///default` driver keeps its state between commands.
 *
 * Framing: after each command, two marker lines. `'m1''m2'` is an unknown command, so virsh
 * writes `error: unknown command: 'm1m2'` on stderr; `echo 'm1''m2'` writes `m1m2` on stdout.
 * The command's output is what comes before the markers; the marker text never occurs in the
 * lines we send (they carry it split by quotes), only in virsh's answers. A command failed when
 * its stderr has an `error:` line. Commands run one at a time, in order.
 */

export interface VirshOptions {
  /** The virsh binary (tests may point at a wrapper). */
  binary?: string;
  /** Per-command limit; a command past it kills the session (the next command starts a new one). */
  timeoutMs?: number;
}

interface Pending {
  line: string;
  marker: string;
  /** The marker lines as sent: virsh echoes them on stdout before their answers. */
  markerLines: [string, string];
  resolve: (r: RunResult) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** Quotes one argument for virsh's own command-line parser (single quotes, as in sh). */
export function quoteVirshArg(arg: string): string {
  if (/[\n\r\0]/.test(arg)) throw new Error(`virsh argument with a line break: ${JSON.stringify(arg)}`);
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

export function virshLine(args: readonly string[]): string {
  return args.map(quoteVirshArg).join(' ');
}

/** What virsh's readline writes for a line it reads: the prompt, then the line echoed back. */
const PROMPT = /^virsh [#>] /;

/** The command's own output out of everything virsh wrote on stdout for one request. */
export function commandOutput(chunk: string, line: string, markerLines: readonly string[]): string {
  let text = chunk.replace(/^\n/, '');
  const strip = (l: string) => {
    const m = PROMPT.exec(text);
    if (!m) return;
    text = text.slice(m[0].length);
    if (text.startsWith(`${l}\n`)) text = text.slice(l.length + 1);
  };
  strip(line);
  for (const l of [...markerLines].reverse()) {
    const echoed = new RegExp(`virsh [#>] ${escapeRegExp(l)}\\n$`);
    const bare = /virsh [#>] $/;
    if (echoed.test(text)) text = text.replace(echoed, '');
    else text = text.replace(bare, '');
  }
  return text;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export class Virsh {
  private child: ChildProcessWithoutNullStreams | null = null;
  private stdout = '';
  private stderr = '';
  private pending: Pending | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly session = randomBytes(6).toString('hex');
  private count = 0;

  constructor(
    readonly uri: string,
    private readonly options: VirshOptions = {},
  ) {}

  /** Runs one virsh command (argv without `virsh`); rejects with CommandFailed unless allowFailure. */
  run(args: readonly string[], opts: { allowFailure?: boolean; timeoutMs?: number } = {}): Promise<RunResult> {
    const next = this.queue.then(() => this.send(args, opts));
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** Ends the session (the connection closes with it). */
  async close(): Promise<void> {
    await this.queue;
    const child = this.child;
    if (!child) return;
    this.setRef(true);
    this.child = null;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => child.kill(), 2000);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.stdin.end('quit\n');
    });
  }

  private start(): ChildProcessWithoutNullStreams {
    const binary = this.options.binary ?? 'virsh';
    // TERM=dumb: readline writes no escape sequences around the prompt.
    // (readline on a dumb terminal scrolls a line longer than its 80 columns sideways — `<` and
    // the line's tail echoed — so a long domain name or path broke the framing: a wide screen)
    const child = spawn(binary, ['-q', '-c', this.uri], { env: { ...process.env, TERM: 'dumb', COLUMNS: '100000', LC_ALL: 'C' }, stdio: 'pipe' });
    this.stdout = '';
    this.stderr = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      if (this.child !== child) return;
      this.stdout += d;
      this.check();
    });
    child.stderr.on('data', (d: string) => {
      if (this.child !== child) return;
      this.stderr += d;
      this.check();
    });
    child.stdin.on('error', () => undefined);
    const gone = (why: string) => {
      if (this.child !== child) return;
      this.child = null;
      const detail = this.stderr.trim().split('\n').slice(-3).join(' | ');
      const p = this.pending;
      if (p) {
        this.pending = null;
        clearTimeout(p.timer);
        p.reject(new Error(`virsh -c ${this.uri} ${why}${detail ? `: ${detail}` : ''}`));
      }
    };
    child.on('error', (e: NodeJS.ErrnoException) => gone(e.code === 'ENOENT' ? `cannot run: ${binary} not found (install the Debian package libvirt-clients)` : `failed: ${e.message}`));
    child.on('exit', (code, signal) => gone(`ended (${signal ?? `exit ${code}`})`));
    return child;
  }

  private send(args: readonly string[], opts: { allowFailure?: boolean; timeoutMs?: number }): Promise<RunResult> {
    const line = virshLine(args);
    if (!this.child) this.child = this.start();
    const child = this.child;
    const n = ++this.count;
    const [a, b] = [`silver-${this.session}`, `-${n}-end`];
    const marker = `${a}${b}`;
    const errLine = `'${a}''${b}'`;
    const outLine = `echo '${a}''${b}'`;
    return new Promise<RunResult>((resolve, reject) => {
      const timeoutMs = opts.timeoutMs ?? this.options.timeoutMs ?? 10 * 60_000;
      const timer = setTimeout(() => {
        this.pending = null;
        if (this.child === child) this.child = null;
        child.kill();
        reject(new Error(`virsh ${line}: no answer within ${timeoutMs / 1000}s`));
      }, timeoutMs);
      this.pending = {
        line,
        marker,
        markerLines: [errLine, outLine],
        timer,
        reject,
        resolve: (r) => {
          if (r.code !== 0 && !opts.allowFailure) reject(new CommandFailed(['virsh', '-c', this.uri, ...args], r));
          else resolve(r);
        },
      };
      this.setRef(true);
      child.stdin.write(`${line}\n${errLine}\n${outLine}\n`);
    }).finally(() => this.setRef(false));
  }

  /** Completes the pending command once both markers are in. */
  private check(): void {
    const p = this.pending;
    if (!p) return;
    // The buffers hold only what came after the previous command's markers.
    const outAt = this.stdout.indexOf(p.marker);
    const errAt = this.stderr.indexOf(p.marker);
    if (outAt < 0 || errAt < 0) return;
    const errLineEnd = this.stderr.indexOf('\n', errAt);
    if (errLineEnd < 0) return;
    this.pending = null;
    clearTimeout(p.timer);
    const outChunk = this.stdout.slice(0, outAt);
    const errChunk = this.stderr.slice(0, this.stderr.lastIndexOf('\n', errAt) + 1);
    // Drop what was consumed so long sessions do not grow without bound.
    this.stdout = this.stdout.slice(outAt + p.marker.length);
    this.stderr = this.stderr.slice(errLineEnd + 1);
    const stdout = commandOutput(outChunk, p.line, p.markerLines);
    const failed = errChunk.split('\n').some((l) => l.startsWith('error:'));
    p.resolve({ code: failed ? 1 : 0, stdout, stderr: errChunk });
  }

  /** Lets silver exit while the session is idle; holds it while a command runs. */
  private setRef(on: boolean): void {
    const child = this.child;
    if (!child) return;
    for (const s of [child, child.stdin, child.stdout, child.stderr] as unknown as { ref?: () => void; unref?: () => void }[]) {
      if (on) s.ref?.();
      else s.unref?.();
    }
  }
}
