import { createHash } from 'node:crypto';
import ssh2 from 'ssh2';

export interface SshTarget {
  /** Node name, for messages. */
  name: string;
  host: string;
  port?: number;
  username: string;
  privateKey: string;
  /**
   * The pinned host public key (`type base64 [comment]`); the connection is refused if it differs.
   * Empty: trust on first use; the key seen is handed to `onFirstKey` to be pinned.
   */
  hostKey: string;
  onFirstKey?: (key: string) => void;
  timeoutMs?: number;
}

export class HostKeyMismatch extends Error {
  constructor(
    readonly node: string,
    readonly expected: string,
    readonly got: string,
  ) {
    super(`${node}: host key changed (pinned ${fingerprint(expected)}, offered ${fingerprint(got)}): refusing to connect`);
    this.name = 'HostKeyMismatch';
  }
}

/** SHA256 fingerprint of a key as OpenSSH prints it. */
export function fingerprint(key: string | Buffer): string {
  const blob = typeof key === 'string' ? Buffer.from(key.trim().split(/\s+/)[1] ?? '', 'base64') : key;
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The algorithm name at the start of an SSH public key blob (`ssh-ed25519`, ...). */
export function keyType(blob: Buffer): string {
  const len = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + len).toString('ascii');
}

/** Opens one SSH connection with strict checking of the pinned host key. */
export function sshConnect(target: SshTarget): Promise<ssh2.Client> {
  const pinned = Buffer.from(target.hostKey.trim().split(/\s+/)[1] ?? '', 'base64');
  return new Promise((resolve, reject) => {
    const client = new ssh2.Client();
    let mismatch: HostKeyMismatch | null = null;
    client
      // No Nagle: SSH is a request/response exchange of small packets; with Nagle on, each
      // round trip can wait for the peer's delayed ACK (about 40 ms on Linux).
      .on('connect', () => client.setNoDelay(true))
      .on('ready', () => resolve(client))
      .on('error', (err) => reject(mismatch ?? err))
      .connect({
        host: target.host,
        port: target.port ?? 22,
        username: target.username,
        privateKey: target.privateKey,
        // The user's agent, when there is one, is tried after the deploy key.
        ...(process.env['SSH_AUTH_SOCK'] ? { agent: process.env['SSH_AUTH_SOCK'] } : {}),
        // Straight to the key (ssh2 would first try "none", one more round trip per login).
        authHandler: process.env['SSH_AUTH_SOCK'] ? ['publickey', 'agent'] : ['publickey'],
        readyTimeout: target.timeoutMs ?? 20_000,
        keepaliveInterval: 10_000,
        keepaliveCountMax: 3,
        hostVerifier: (key: Buffer) => {
          if (target.hostKey === '' && target.onFirstKey) {
            target.onFirstKey(`${keyType(key)} ${key.toString('base64')}`);
            return true;
          }
          if (key.equals(pinned)) return true;
          mismatch = new HostKeyMismatch(target.name, target.hostKey, `x ${key.toString('base64')}`);
          return false;
        },
      });
  });
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs one command (already quoted for the remote shell) on an open connection. */
export function sshExec(client: ssh2.Client, command: string, stdin?: string | Buffer): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    client.exec(command, (err, stream) => {
      if (err) return reject(err);
      const out: Buffer[] = [];
      const errOut: Buffer[] = [];
      stream.on('data', (d: Buffer) => out.push(d));
      stream.stderr.on('data', (d: Buffer) => errOut.push(d));
      stream.on('close', (code: number | null) =>
        resolve({ code: code ?? 255, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(errOut).toString('utf8') }),
      );
      if (stdin !== undefined) stream.end(stdin);
      else stream.end();
    });
  });
}

/** Connects, runs `true`, disconnects: proves the node answers SSH with its pinned key. */
export async function sshProbe(target: SshTarget): Promise<void> {
  const client = await sshConnect(target);
  try {
    const r = await sshExec(client, 'true');
    if (r.code !== 0) throw new Error(`${target.name}: "true" exited ${r.code}`);
  } finally {
    client.end();
  }
}
