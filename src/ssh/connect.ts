import { createHash, createPrivateKey, sign } from 'node:crypto';
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

const loginKeys = new Map<string, ssh2.ParsedKey>();

/**
 * The login key as ssh2 takes it, read once per key text. Given as text, ssh2 reads the key again
 * for every connection and signs each login from its PEM text, which OpenSSL reads anew every
 * time (about 0.4 ms of a connection's 2 ms of CPU); an ed25519 key here signs with a key object
 * made once (0.04 ms).
 */
export function loginKey(privateKey: string): ssh2.ParsedKey {
  let key = loginKeys.get(privateKey);
  if (!key) {
    const parsed = ssh2.utils.parseKey(privateKey);
    if (parsed instanceof Error) throw new Error(`the deploy key cannot be read: ${parsed.message}`);
    const base: ssh2.ParsedKey = Array.isArray(parsed) ? parsed[0]! : parsed;
    let made = base;
    if (base.type === 'ssh-ed25519' && base.isPrivateKey()) {
      const signer = createPrivateKey(base.getPrivatePEM());
      // (ssh2 answers a failed signature as a returned Error, and so does this)
      made = Object.assign(Object.create(base) as ssh2.ParsedKey, {
        sign: (data: Buffer) => {
          try {
            return sign(null, data, signer);
          } catch (e) {
            return e as Error;
          }
        },
      });
    }
    loginKeys.set(privateKey, made);
    key = made;
  }
  return key;
}

/** Opens one SSH connection with strict checking of the pinned host key. */
export function sshConnect(target: SshTarget): Promise<ssh2.Client> {
  const pinned = Buffer.from(target.hostKey.trim().split(/\s+/)[1] ?? '', 'base64');
  const agent = process.env['SSH_AUTH_SOCK'];
  return new Promise((resolve, reject) => {
    // (in here, a key that cannot be read rejects the connection instead of throwing)
    const methods: (ssh2.PublicKeyAuthMethod | ssh2.AgentAuthMethod)[] = [{ type: 'publickey', username: target.username, key: loginKey(target.privateKey) }];
    if (agent) methods.push({ type: 'agent', username: target.username, agent });
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
        // Straight to the key (ssh2 would first try "none", one more round trip per login); the
        // user's agent, when there is one, after it.
        authHandler: methods,
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
