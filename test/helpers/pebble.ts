import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Whether Debian's pebble and pebble-challtestsrv are installed (the ACME e2e tests need them). */
export const hasPebble = spawnSync('sh', ['-c', 'command -v pebble && command -v pebble-challtestsrv']).status === 0;

export interface Pebble {
  /** The root pebble signs certificates under (asked of its management port). */
  root(): string;
  stop(): void;
}

/**
 * pebble's own TLS certificate (self-signed, for the bridge's host address `host`), as
 * `dir/pebble.crt` (the nodeset's acme_ca_bundle: it must be there before the nodeset is read)
 * and `dir/pebble.key`.
 */
export function pebbleCert(dir: string, host: string): void {
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=pebble', '-addext', `subjectAltName=IP:${host}`, '-keyout', join(dir, 'pebble.key'), '-out', join(dir, 'pebble.crt')]);
  if (r.status !== 0) throw new Error(r.stderr.toString());
}

/**
 * A real ACME server for an e2e test (pebbleCert made first): pebble on the bridge's host address `host` (port 14000,
 * its own self-signed TLS certificate), pebble-challtestsrv as its DNS server on `host`:8053
 * answering every name with `answer` (the balancer, or a pair's virtual address), HTTP-01
 * validated on port 80 there. Management ports on 127.0.0.1 of the test's own (tests may run at
 * the same time). Files in `dir`.
 */
export async function startPebble(dir: string, host: string, answer: string, ports: { management: number; challManagement: number }): Promise<Pebble> {
  const procs: ChildProcess[] = [];
  const start = (cmd: string, args: string[], env: Record<string, string> = {}) => {
    const p = spawn(cmd, args, { cwd: dir, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    p.stderr!.on('data', () => undefined);
    procs.push(p);
  };
  start('pebble-challtestsrv', ['-dns01', `${host}:8053`, '-http01', '', '-https01', '', '-tlsalpn01', '', '-management', `127.0.0.1:${ports.challManagement}`, '-defaultIPv4', answer, '-defaultIPv6', '']);
  writeFileSync(join(dir, 'pebble.json'), JSON.stringify({ pebble: { listenAddress: `${host}:14000`, managementListenAddress: `127.0.0.1:${ports.management}`, certificate: join(dir, 'pebble.crt'), privateKey: join(dir, 'pebble.key'), httpPort: 80, tlsPort: 443, ocspResponderURL: '', externalAccountBindingRequired: false } }));
  start('pebble', ['-config', join(dir, 'pebble.json'), '-dnsserver', `${host}:8053`], { PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0' });
  await waitPort(host, 14000);
  return {
    root: () => spawnSync('curl', ['-sk', `https://127.0.0.1:${ports.management}/roots/0`]).stdout.toString(),
    stop: () => procs.forEach((p) => p.kill('SIGTERM')),
  };
}

async function waitPort(host: string, port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (spawnSync('bash', ['-c', `exec 3<>/dev/tcp/${host}/${port}`]).status === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listens on ${host}:${port}`);
}
