import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultCertFolder, localCerts } from '../helpers/haproxy.js';
import { ACME_MAP, ALLOW_ACL, haproxyCfg, MODES_MAP, PAGES_MAP } from '../../src/setup/render.js';

// A reload of the balancer (setup-node after a node came or went, set-health) under keep-alive
// load fails no request: the rendered configuration run by a real HAProxy in master-worker mode
// on loopback, reloaded 12 times (SIGUSR2, what systemctl reload does) while 8 keep-alive clients
// send requests. HAProxy from SILVER_TEST_HAPROXY or /usr/sbin; without one the test is a skip.

const HAPROXY = process.env['SILVER_TEST_HAPROXY'] ?? '/usr/sbin/haproxy';
const run = existsSync(HAPROXY) ? test : test.skip;

run('reloads under keep-alive load fail no request (idle connections are not closed under a client)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'silver-haproxy-reload-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  for (const f of ['modes.map', 'allow.acl', 'pages.map']) writeFileSync(join(dir, f), '');
  const cfg = haproxyCfg(['reload.test'], [{ name: 'app1.reload.test', address: '127.0.0.1' }], [{ host: 'reload.test', path: '/', app: 'hello' }], new Map())
    .replaceAll(MODES_MAP, join(dir, 'modes.map'))
    .replaceAll(ALLOW_ACL, join(dir, 'allow.acl'))
    .replaceAll(PAGES_MAP, join(dir, 'pages.map'))
    .replace(/^\tstats socket .*\n/m, '')
    .replace('bind :80', `bind 127.0.0.1:${port}`)
    .replace(/^\t(user|group) haproxy\n|^\tdaemon\n|^\tlog \/dev\/log.*\n/gm, '');
  t.regex(cfg, /^\toption idle-close-on-response$/m);
  writeFileSync(join(dir, 'haproxy.cfg'), cfg);
  const hp = spawn(HAPROXY, ['-W', '-db', '-f', join(dir, 'haproxy.cfg')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  hp.stderr!.on('data', (d) => (err += d));
  t.teardown(() => void hp.kill('SIGTERM'));
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  const once = () =>
    new Promise<number>((resolve) => {
      const q = request({ host: '127.0.0.1', port, path: '/.silver/balancer-health', agent, timeout: 5000 }, (r) => {
        r.resume();
        r.on('end', () => resolve(r.statusCode ?? 0));
      });
      q.on('error', () => resolve(-1));
      q.end();
    });
  for (let i = 0; i < 50 && (await once()) !== 200; i++) await new Promise((r) => setTimeout(r, 100));
  let total = 0;
  let failed = 0;
  let stop = false;
  const workers = Array.from({ length: 8 }, async () => {
    while (!stop && total < 400_000) {
      const s = await once();
      total++;
      if (s !== 200) failed++;
    }
  });
  for (let i = 0; i < 12; i++) {
    await new Promise((r) => setTimeout(r, 250));
    hp.kill('SIGUSR2');
  }
  await new Promise((r) => setTimeout(r, 500));
  stop = true;
  await Promise.all(workers);
  agent.destroy();
  t.true(total > 1000, `only ${total} requests (${err.slice(-300)})`);
  t.is(failed, 0, `${failed} of ${total} requests failed across 12 reloads`);
});

run('the HTTPS configuration (certificate folder, ACME answers, redirect) is one HAProxy accepts', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'silver-haproxy-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  defaultCertFolder(dir);
  for (const f of ['modes.map', 'allow.acl', 'pages.map', 'acme.map']) writeFileSync(join(dir, f), '');
  const cfg = localCerts(haproxyCfg(['shop.test'], [{ name: 'app1.shop.test', address: '127.0.0.1' }], [{ host: 'shop.test', path: '/', app: 'hello' }], new Map(), { hosts: ['shop.test'], hsts: 600 }), dir)
    .replaceAll(MODES_MAP, join(dir, 'modes.map'))
    .replaceAll(ALLOW_ACL, join(dir, 'allow.acl'))
    .replaceAll(PAGES_MAP, join(dir, 'pages.map'))
    .replaceAll(ACME_MAP, join(dir, 'acme.map'))
    .replace(/^\tstats socket .*\n/m, '')
    .replace(/^\t(user|group) haproxy\n|^\tdaemon\n|^\tlog \/dev\/log.*\n/gm, '');
  writeFileSync(join(dir, 'haproxy.cfg'), cfg);
  const r = spawnSync(HAPROXY, ['-c', '-f', join(dir, 'haproxy.cfg')]);
  t.is(r.status, 0, `${r.stdout}${r.stderr}`);
});
