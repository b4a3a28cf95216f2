import { existsSync } from 'node:fs';
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
