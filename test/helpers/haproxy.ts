import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';

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
 * DIR/certs with the balancer's self-signed default certificate (`0-default.pem`, key and
 * certificate in one file, as setup-node makes it), for a loopback HAProxy with `tls`.
 */
export function defaultCertFolder(dir: string): void {
  mkdirSync(join(dir, 'certs'));
  const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=silver-default', '-keyout', join(dir, 'k'), '-out', join(dir, 'c')]);
  if (made.status !== 0) throw new Error(made.stderr.toString());
  writeFileSync(join(dir, 'certs/0-default.pem'), Buffer.concat([readFileSync(join(dir, 'c')), readFileSync(join(dir, 'k'))]));
}
