import type { Readable } from 'node:stream';
import type ssh2 from 'ssh2';
import { sshConnect, type SshTarget } from './connect.js';

export interface AttachOptions {
  /** A terminal on the node (a console): its size and type. */
  pty?: { rows: number; cols: number; term: string } | null;
  /** What the command reads: a stream forwarded as it comes, a buffer, or nothing (end of input at once). */
  stdin?: Readable | Buffer | null;
  onStdout(chunk: Buffer): void;
  onStderr(chunk: Buffer): void;
}

export interface AttachHandle {
  /** The command's exit code (128 + n for a signal; 255 when the connection failed). */
  done: Promise<number>;
  /** Ends it: an interrupt to the remote command, then the channel closes. */
  stop(): void;
  resize(rows: number, cols: number): void;
}

/** The default attach: its own connection, one channel (a login, a command, the end). */
export function sshAttach(target: SshTarget, command: string, opts: AttachOptions): AttachHandle {
  let channel: ssh2.ClientChannel | null = null;
  let client: ssh2.Client | null = null;
  let stopped = false;
  const done = (async () => {
    client = await sshConnect(target);
    try {
      return await new Promise<number>((resolve, reject) => {
        client!.exec(command, opts.pty ? { pty: { rows: opts.pty.rows, cols: opts.pty.cols, term: opts.pty.term } } : {}, (err, ch) => {
          if (err) return reject(err);
          channel = ch;
          ch.on('data', (d: Buffer) => opts.onStdout(d));
          ch.stderr.on('data', (d: Buffer) => opts.onStderr(d));
          ch.on('close', (code: number | null, signal?: string) => resolve(code ?? (signal ? 130 : 255)));
          if (stopped) ch.close();
          else if (opts.stdin && 'pipe' in opts.stdin) opts.stdin.pipe(ch);
          else ch.end(opts.stdin ?? undefined);
        });
      });
    } finally {
      if (opts.stdin && 'unpipe' in opts.stdin) opts.stdin.unpipe();
      client.end();
    }
  })();
  return {
    done,
    stop() {
      stopped = true;
      const ch = channel as ssh2.ClientChannel | null;
      if (!ch) return;
      ch.signal('INT');
      // (the helper ends its command on the signal; the channel goes whatever happens)
      setTimeout(() => ch.close(), 1000).unref();
    },
    resize(rows, cols) {
      (channel as ssh2.ClientChannel | null)?.setWindow(rows, cols, 0, 0);
    },
  };
}
