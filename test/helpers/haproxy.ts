import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { CERTS_DIR, DEFAULT_CERT } from '../../src/setup/render.js';

/**
 * The HAProxy binary the loopback tests run: SILVER_TEST_HAPROXY (e.g. Debian's, taken out of the
 * package with `apt-get download haproxy && dpkg -x`), else the one in PATH or /usr/sbin; null
 * without one (the tests are skipped).
 */
export function findHaproxy(): string | null {
  const env = process.env['SILVER_TEST_HAPROXY'];
  if (env) return existsSync(env) ? env : null;
  for (const dir of [...(process.env['PATH'] ?? '').split(delimiter), '/usr/sbin']) {
    if (dir && existsSync(join(dir, 'haproxy'))) return join(dir, 'haproxy');
  }
  return null;
}

/**
 * DIR/certs, the balancer's certificates' folder (empty), and DIR/silver-default.pem, its
 * self-signed default certificate (key and certificate in one file, as setup-node makes it), for
 * a loopback HAProxy with `tls` (see `localCerts`).
 */
export function defaultCertFolder(dir: string): void {
  mkdirSync(join(dir, 'certs'));
  selfSigned(dir, 'silver-default', join(dir, 'silver-default.pem'));
}

/** A self-signed certificate for CN (key and certificate in one file) at PATH. */
export function selfSigned(dir: string, cn: string, path: string): void {
  const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=${cn}`, '-keyout', join(dir, 'k'), '-out', join(dir, 'c')]);
  if (made.status !== 0) throw new Error(made.stderr.toString());
  writeFileSync(path, Buffer.concat([readFileSync(join(dir, 'c')), readFileSync(join(dir, 'k'))]));
}

/** A balancer's configuration with its certificates' paths in DIR (see defaultCertFolder). */
export function localCerts(cfg: string, dir: string): string {
  return cfg.replaceAll(DEFAULT_CERT, join(dir, 'silver-default.pem')).replaceAll(`${CERTS_DIR}/`, `${join(dir, 'certs')}/`);
}
