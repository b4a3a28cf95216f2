/**
 * Benchmark: the balancer tier (issue 14). A nodeset of 2 app servers, PostgreSQL and a balancer
 * pair with `tls = FILE` (a certificate the benchmark makes): TLS handshakes per second and the
 * latency HTTPS adds at the balancer versus HTTP on the same run (the balancer's own health answer,
 * each request a new connection,
 * so that every HTTPS one is a full handshake; 8 clients), and the failover time when the active
 * balancer is killed (lxc-stop -k) under load: the failed requests and the time from the kill to
 * the last failure. Needs root (LXC).
 * Run: sudo npm run bench:https   (writes its figures into bench/RESULTS.md)
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startProbe } from '../test/helpers/load.js';
import { benchNodeset } from './local-nodeset.js';
import { writeSection } from './results.js';

const VIP = '10.213.238.5';
const { dir, file, silver, cleanup } = benchNodeset({ name: 'silverbench-t', domain: 'tls.test', bridge: 'silverb6', third: 238, appservers: 2, env: { SILVER_PERSIST: '0' } });
const sh = (cmd: string) => {
  const r = spawnSync('sh', ['-c', cmd], { cwd: dir });
  if (r.status !== 0) throw new Error(r.stderr.toString());
};
sh('openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=tls.test -addext subjectAltName=DNS:tls.test -keyout k.pem -out c.pem 2>/dev/null && cat c.pem k.pem > site.pem');
writeFileSync(file, readFileSync(file, 'utf8').replace('[balancer]\n', `[balancer]\nnodes = 2\nvirtual_address = ${VIP}\ntls = site.pem\n`));
const ca = readFileSync(join(dir, 'c.pem'), 'utf8');

/** N requests by 8 clients, each on a new connection; requests per second and the median latency. */
async function measure(tls: boolean, n: number): Promise<{ perSecond: number; medianMs: number; failed: number }> {
  const agent = tls ? new HttpsAgent({ keepAlive: false, maxSockets: 8, ca }) : new Agent({ keepAlive: false, maxSockets: 8 });
  const times: number[] = [];
  let failed = 0;
  let left = n;
  const once = () =>
    new Promise<void>((resolve) => {
      const t0 = performance.now();
      const opts = { host: VIP, port: tls ? 443 : 80, path: '/.silver/balancer-health', headers: { Host: 'tls.test' }, agent, servername: 'tls.test', timeout: 5000 };
      const req = (tls ? httpsRequest : httpRequest)(opts, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode === 200) times.push(performance.now() - t0);
          else failed++;
          resolve();
        });
      });
      req.on('error', () => {
        failed++;
        resolve();
      });
      req.end();
    });
  const t0 = performance.now();
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (left-- > 0) await once();
  }));
  const seconds = (performance.now() - t0) / 1000;
  agent.destroy();
  times.sort((a, b) => a - b);
  return { perSecond: times.length / seconds, medianMs: times[Math.floor(times.length / 2)] ?? NaN, failed };
}

try {
  silver('delete-node', '-y', file);
  silver('create-node', file);
  silver('setup-node', file);
  silver('update', 'examples/hello', file);
  await new Promise((r) => setTimeout(r, 3000));
  await measure(false, 200);
  const http = await measure(false, 3000);
  const https = await measure(true, 3000);
  // Failover: the holder killed while 6 clients keep asking (plain HTTP, new connections).
  const holder = ['balancer1.tls.test', 'balancer2.tls.test'].find((b) => silver('exec', file, '--node', b, '--', 'ip', '-4', '-o', 'addr', 'show', 'dev', 'eth0').stdout.includes(` ${VIP}/`))!;
  const probe = startProbe(VIP, 'tls.test', { path: '/.silver/balancer-health' });
  await new Promise((r) => setTimeout(r, 2000));
  const killedAt = probe.now();
  spawnSync('lxc-stop', ['-k', '-n', `s-silverbench-t-${holder.replaceAll('.', '-')}`, '-P', '/var/lib/silverlining/lxc']);
  await new Promise((r) => setTimeout(r, 8000));
  const { ok, failures } = await probe.stop();
  const lines = [
    `HTTP  (new connection per request, 8 clients): ${http.perSecond.toFixed(0)} requests/s, median ${http.medianMs.toFixed(1)} ms, ${http.failed} failed`,
    `HTTPS (a full TLS handshake per request, 8 clients): ${https.perSecond.toFixed(0)} handshakes/s, median ${https.medianMs.toFixed(1)} ms, ${https.failed} failed`,
    `added by TLS at the balancer: ${(https.medianMs - http.medianMs).toFixed(1)} ms median per new connection`,
    `failover (active balancer lxc-stop -k, 6 clients): ${failures.length} of ${failures.length + ok} requests failed; the last ${failures.length ? ((Math.max(...failures) - killedAt) / 1000).toFixed(2) : '0'} s after the kill (target: under 3 s)`,
  ];
  console.log(lines.join('\n'));
  writeSection('https-pair', 'the balancer tier: HTTPS and the pair', 'sudo npm run bench:https', lines);
} finally {
  cleanup();
}
