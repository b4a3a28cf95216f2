import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { KeyPair } from './provider.js';
import { ed25519Pair } from './ssh/keygen.js';

/**
 * Local state under `~/.silverlining/` (or `$SILVER_HOME`): only keys, pinned host keys and
 * caches. Which nodes exist is always asked of the provider.
 */
export class StateDir {
  constructor(readonly root: string) {}

  static fromEnv(env: NodeJS.ProcessEnv = process.env): StateDir {
    return new StateDir(env['SILVER_HOME'] ?? join(env['HOME'] ?? '/root', '.silverlining'));
  }

  private ensure(dir: string): string {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return dir;
  }

  /** Whether the deploy key exists yet (without making it). */
  hasDeployKey(): boolean {
    return existsSync(join(this.root, 'id_ed25519'));
  }

  /** The deploy key pair, generated (ed25519) on first use. */
  deployKey(): KeyPair {
    return this.keyPair(join(this.ensure(this.root), 'id_ed25519'), 'silver-deploy');
  }

  /**
   * The nodeset's backup-copy key pair (ed25519, generated on first use): its service nodes hold
   * the private half and push each scheduled dump with it to the node that keeps the copies,
   * where the public half may only run the receiving helper.
   */
  backupKey(nodeset: string): KeyPair {
    return this.keyPair(join(this.ensure(join(this.root, 'backup-keys')), `${nodeset}_ed25519`), `silver-backup-${nodeset}`);
  }

  /**
   * A balancer pair's key (tls = acme; ed25519, generated on first use): both balancers hold it;
   * with it the one that renewed hands the certificate to the other, where it may run
   * `silver-acme receive` and nothing else.
   */
  acmePeerKey(nodeset: string): KeyPair {
    return this.keyPair(join(this.ensure(join(this.root, 'nodesets', nodeset)), 'acme-peer_ed25519'), `silver-acme-${nodeset}`);
  }

  /** The key pair in PRIV and PRIV.pub (private half 0600), generated on first use. */
  private keyPair(priv: string, comment: string): KeyPair {
    const pub = `${priv}.pub`;
    if (!existsSync(priv) || !existsSync(pub)) {
      const pair = ed25519Pair(comment);
      writeFileSync(priv, pair.private, { mode: 0o600 });
      writeFileSync(pub, `${pair.public}\n`, { mode: 0o644 });
    }
    chmodSync(priv, 0o600);
    return { private: readFileSync(priv, 'utf8'), public: readFileSync(pub, 'utf8').trim() };
  }

  /**
   * The balancers' ACME account and certificate (the `export` bundle of silver-acme: base64), kept
   * so that a rebuilt balancer gets them back; root's secrets, so 0600. One for the nodeset: a
   * pair shares one certificate. Files of earlier releases are read when there is none:
   * `tls-state.NODE` (a pair's balancers had one each: the first found) and `tls-state`.
   * null: none kept yet.
   */
  tlsState(nodeset: string): string | null {
    const dir = join(this.root, 'nodesets', nodeset);
    const older = existsSync(dir) ? readdirSync(dir).filter((f) => f.startsWith('tls-state.') && !f.endsWith('.new')).sort() : [];
    for (const file of ['tls-state', ...older]) {
      const value = existsSync(join(dir, file)) ? readFileSync(join(dir, file), 'utf8').trim() : '';
      if (value) return value;
    }
    return null;
  }

  keepTlsState(nodeset: string, value: string): void {
    const dir = this.ensure(join(this.root, 'nodesets', nodeset));
    const file = join(dir, 'tls-state');
    const current = existsSync(file) ? readFileSync(file, 'utf8').trim() : '';
    if (current !== value.trim()) {
      writeFileSync(`${file}.new`, `${value.trim()}\n`, { mode: 0o600 });
      renameSync(`${file}.new`, file);
    }
    // (each balancer's own of an earlier release: the pair shares this one now)
    for (const f of readdirSync(dir)) if (f.startsWith('tls-state.')) rmSync(join(dir, f), { force: true });
  }

  /** A place for a provider's own files (images, bridge state), created on demand. */
  cacheDir(...parts: string[]): string {
    return this.ensure(join(this.root, 'cache', ...parts));
  }

  knownHostsFile(nodeset: string): string {
    return join(this.ensure(join(this.root, 'nodesets', nodeset)), 'known_hosts');
  }

  /** Pinned host keys of a nodeset: node name → OpenSSH public key (`type base64`). */
  pinnedKeys(nodeset: string): Map<string, string> {
    const file = this.knownHostsFile(nodeset);
    const keys = new Map<string, string>();
    if (!existsSync(file)) return keys;
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const [names, type, data] = line.trim().split(/\s+/);
      if (!names || !type || !data) continue;
      keys.set(names.split(',')[0]!, `${type} ${data}`);
    }
    return keys;
  }

  /** Pins (or re-pins, for a node created anew) the host key of a node; written atomically. */
  pin(nodeset: string, name: string, address: string | null, key: string): void {
    this.pinAll(nodeset, [{ name, address, key }]);
  }

  /** Pins several host keys with one read and one write of the file (many nodes at once). */
  pinAll(nodeset: string, pins: readonly { name: string; address: string | null; key: string }[]): void {
    const keys = this.pinnedKeys(nodeset);
    for (const p of pins) {
      const [type, data] = p.key.trim().split(/\s+/);
      keys.set(p.name, `${type} ${data}`);
    }
    this.writePins(nodeset, keys, new Map(pins.map((p) => [p.name, p.address])));
  }

  unpin(nodeset: string, names: readonly string[]): void {
    const keys = this.pinnedKeys(nodeset);
    for (const n of names) keys.delete(n);
    this.writePins(nodeset, keys, new Map());
  }

  private writePins(nodeset: string, keys: Map<string, string>, addresses: Map<string, string | null>): void {
    const file = this.knownHostsFile(nodeset);
    const old = new Map<string, string>();
    if (existsSync(file)) {
      for (const line of readFileSync(file, 'utf8').split('\n')) {
        const names = line.trim().split(/\s+/)[0];
        if (names) old.set(names.split(',')[0]!, names);
      }
    }
    const lines = [...keys].map(([name, key]) => {
      const address = addresses.get(name);
      const names = address ? `${name},${address}` : (old.get(name) ?? name);
      return `${names} ${key}`;
    });
    const tmp = `${file}.tmp`;
    writeFileSync(tmp, lines.length ? `${lines.join('\n')}\n` : '', { mode: 0o600 });
    renameSync(tmp, file);
  }
}
