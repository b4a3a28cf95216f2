import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';

/**
 * A benchmark's own nodeset of the example app on the local provider (its app servers,
 * PostgreSQL, a balancer, on a bridge of its own) in a temporary folder, and silver run against
 * it: `silver` blocks, `silverAsync` lets the load loop of the benchmark's process go on.
 */
export function benchNodeset(opts: { name: string; domain: string; bridge: string; third: number; appservers: number; env?: Record<string, string> }) {
  const dir = mkdtempSync(join(tmpdir(), `${opts.name}-`));
  const env = { ...process.env, SILVER_HOME: join(dir, 'home'), ...opts.env };
  const file = join(dir, `${opts.name}.conf`);
  writeFileSync(
    file,
    [
      '[general]', `name = ${opts.name}`, `base_domain = ${opts.domain}`,
      '[provider]', 'provider = local', `bridge = ${opts.bridge}`, `subnet = 10.213.${opts.third}.0/24`, `proxy_port = ${8800 + opts.third - 200}`,
      '[appserver]', `nodes = ${opts.appservers}`, 'size = ram 256MB', `locations = http://${opts.domain}/ hello`,
      '[service:postgresql]', `node_name = db.${opts.domain}`,
      '[balancer]', '',
    ].join('\n'),
  );
  const silverWith = (extra: Record<string, string>, ...args: string[]): { seconds: number; stdout: string } => {
    const t0 = performance.now();
    const stdout = execFileSync(process.execPath, ['bin/silver.js', ...args], { env: { ...env, ...extra }, stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 }).toString();
    return { seconds: (performance.now() - t0) / 1000, stdout };
  };
  const silver = (...args: string[]) => silverWith({}, ...args);
  const silverAsync = async (...args: string[]): Promise<{ seconds: number; stdout: string }> => {
    const t0 = performance.now();
    const { stdout } = await promisify(execFile)(process.execPath, ['bin/silver.js', ...args], { env, maxBuffer: 64 << 20 });
    return { seconds: (performance.now() - t0) / 1000, stdout };
  };
  /** Its nodes deleted and its folder removed, whatever state a run left them in. */
  const cleanup = (): void => {
    try {
      silver('delete-node', '-y', file);
    } catch {
      /* gone */
    }
    rmSync(dir, { recursive: true, force: true });
  };
  return { dir, file, env, silver, silverWith, silverAsync, cleanup };
}
