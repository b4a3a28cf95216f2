import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { defaultCertFolder, findHaproxy, localCerts, selfSigned } from '../helpers/haproxy.js';
import { ask } from '../helpers/load.js';
import { ACME_MAP, ALLOW_ACL, haproxyCfg, MODES_MAP, nginxFrontConf, PAGES_MAP } from '../../src/setup/render.js';

// Attacks on the balancer tier, played against the real HAProxy (and, for the front proxy,
// Debian's nginx: SILVER_TEST_NGINX, taken out of its package as .ci/run does) on loopback, with
// apps of node's http that count what reaches them: a request that is not safe to repeat is sent
// once; the client's forwarded headers never reach an app; an ACME token the balancer does not
// have is no redirect to an app; an app's X-Accel-Redirect takes no request to another app.

const HAPROXY = findHaproxy();
const NGINX = process.env['SILVER_TEST_NGINX'] && existsSync(process.env['SILVER_TEST_NGINX']) ? process.env['SILVER_TEST_NGINX'] : null;
const run = HAPROXY ? test.serial : test.serial.skip;
const runNginx = HAPROXY && NGINX ? test.serial : test.serial.skip;
const dir = mkdtempSync(join(tmpdir(), 'silver-haproxy-attacks-'));
const procs: ChildProcess[] = [];
const servers: Server[] = [];

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  return port;
}

/** An app: requests counted by "APP METHOD url", headers echoed; /busy* answers 503; main obeys ?xaccel= with X-Accel-Redirect. */
async function app(name: string, hits: Map<string, number>): Promise<number> {
  const s = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const key = `${name} ${req.method} ${req.url}`;
      hits.set(key, (hits.get(key) ?? 0) + 1);
      if (req.url?.startsWith('/busy')) {
        res.statusCode = 503;
        res.end('busy\n');
        return;
      }
      const xa = /[?&]xaccel=([^&]*)/.exec(req.url ?? '');
      if (xa && name === 'main') res.setHeader('X-Accel-Redirect', decodeURIComponent(xa[1]!));
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ app: name, headers: req.headers }));
    });
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as AddressInfo).port;
}

/** The balancer's configuration moved onto loopback ports and into this test's folder. */
function haproxyConfig(name: string, cfg: string, http: number, https: number, serverPort: number): string {
  const f = (x: string) => join(dir, `${name}-${x}`);
  for (const x of ['modes.map', 'allow.acl', 'pages.map', 'acme.map']) writeFileSync(f(x), '');
  return localCerts(cfg, dir)
    .replaceAll(MODES_MAP, f('modes.map'))
    .replaceAll(ALLOW_ACL, f('allow.acl'))
    .replaceAll(PAGES_MAP, f('pages.map'))
    .replaceAll(ACME_MAP, f('acme.map'))
    .replace('/run/haproxy/admin.sock', f('admin.sock'))
    .replace('bind :80\n', `bind 127.0.0.1:${http}\n`)
    .replace('bind :443 ssl', `bind 127.0.0.1:${https} ssl`)
    .replaceAll('127.0.0.1:80 check', `127.0.0.1:${serverPort} check`)
    .replace(/^\t(user|group) haproxy\n|^\tdaemon\n|^\tlog \/dev\/log.*\n/gm, '');
}

async function startHaproxy(name: string, cfg: string, http: number): Promise<ChildProcess> {
  writeFileSync(join(dir, `${name}.cfg`), cfg);
  const p = spawn(HAPROXY!, ['-db', '-f', join(dir, `${name}.cfg`)], { stdio: ['ignore', 'ignore', 'pipe'] });
  procs.push(p);
  let err = '';
  p.stderr!.on('data', (d) => (err += d));
  for (let i = 0; i < 100; i++) {
    if ((await ask({ host: '127.0.0.1', port: http, path: '/.silver/balancer-health' }).catch(() => null))?.status === 200) return p;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`haproxy ${name} did not start: ${err}`);
}

/** Until the balancer's check of the app server passed (bounded: 6 s). */
async function up(http: number, host: string, path: string): Promise<void> {
  for (let i = 0; i < 60; i++) {
    if ((await ask({ host: '127.0.0.1', port: http, path, headers: { Host: host } }).catch(() => null))?.status === 200) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the app never came up behind the balancer');
}

const plain = { http: 0, hits: new Map<string, number>() };
const tls = { http: 0, https: 0 };

test.before(async () => {
  if (!HAPROXY) return;
  defaultCertFolder(dir);
  // (a host whose name sorts before any other in the certificates' folder)
  selfSigned(dir, '0-a.attack.test', join(dir, 'certs', '0-a.attack.test.pem'));
  const appPort = await app('hello', plain.hits);
  plain.http = await freePort();
  const loc = [{ host: 'attack.test', path: '/', app: 'hello' }];
  await startHaproxy('plain', haproxyConfig('plain', haproxyCfg(['attack.test'], [{ name: 'app1', address: '127.0.0.1' }], loc, new Map()), plain.http, 0, appPort), plain.http);
  await up(plain.http, 'attack.test', '/');
  tls.http = await freePort();
  tls.https = await freePort();
  const tlsCfg = haproxyCfg(['attack.test'], [{ name: 'app1', address: '127.0.0.1' }], loc, new Map(), { hosts: ['attack.test'], hsts: null, acmePeer: null });
  await startHaproxy('tls', haproxyConfig('tls', tlsCfg, tls.http, tls.https, appPort), tls.http);
});

test.after.always(async () => {
  for (const p of procs) {
    await new Promise<void>((resolve) => {
      if (p.exitCode !== null || p.signalCode !== null) return resolve();
      p.on('exit', () => resolve());
      p.kill('SIGTERM');
    });
  }
  for (const s of servers) s.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The common name of the certificate the TLS balancer shows for SNI `servername`. */
async function certFor(servername: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port: tls.https, servername, rejectUnauthorized: false }, () => {
      const cn = socket.getPeerCertificate().subject?.CN;
      socket.end();
      resolve(String(cn));
    });
    socket.on('error', reject);
  });
}

run("a careless nodeset: a host named 0-a… (first in the certificates' folder) never becomes the balancer's default certificate: other names get the self-signed one", async (t) => {
  t.is(await certFor('unknown.test'), 'silver-default');
  t.is(await certFor('attack.test'), 'silver-default', 'no certificate of its own yet: the default');
  t.is(await certFor('0-a.attack.test'), '0-a.attack.test', 'the host itself gets its own');
});

run('attack: a POST the app answered 503 reaches it once: the balancer sends no request that is not safe to repeat again (a payment twice)', async (t) => {
  const r = await ask({ host: '127.0.0.1', port: plain.http, path: '/busy-post', method: 'POST', headers: { Host: 'attack.test', 'Content-Length': '5' } }, 'pay=1');
  t.is(r.status, 503);
  t.is(plain.hits.get('hello POST /busy-post'), 1, 'the app saw the POST more than once');
  // (a GET is safe to repeat: still retried on the other attempts)
  await ask({ host: '127.0.0.1', port: plain.http, path: '/busy-get', headers: { Host: 'attack.test' } });
  t.true((plain.hits.get('hello GET /busy-get') ?? 0) > 1);
});

run("attack: the client's address an app is told is the balancer's to say: a client's X-Forwarded-For, Forwarded or X-Real-IP never reaches it", async (t) => {
  const r = await ask({ host: '127.0.0.1', port: plain.http, path: '/who', headers: { Host: 'attack.test', 'X-Forwarded-For': '6.6.6.6', Forwarded: 'for=6.6.6.6;proto=https', 'X-Real-IP': '6.6.6.6' } });
  const h = (JSON.parse(r.body) as { headers: Record<string, string | undefined> }).headers;
  t.is(h['x-forwarded-for'], '127.0.0.1');
  t.is(h['forwarded'], undefined);
  t.is(h['x-real-ip'], undefined);
});

run('attack: one balancer with tls: a challenge token it does not have is a 404 on port 80, never redirected to the app (an ACME account of the app\'s own, the CA\'s limits used up)', async (t) => {
  const r = await ask({ host: '127.0.0.1', port: tls.http, path: '/.well-known/acme-challenge/someone-elses-token', headers: { Host: 'attack.test' } });
  t.is(r.status, 404, `got ${r.status}: the ACME server follows a redirect to the app's HTTPS`);
  t.is((await ask({ host: '127.0.0.1', port: tls.http, path: '/page', headers: { Host: 'attack.test' } })).status, 301);
});

runNginx("attack: with blog in maintenance, main's answer X-Accel-Redirect: @silver_2 does not bring a client's POST to blog's app through the front proxy", async (t) => {
  const hits = new Map<string, number>();
  const [mainPort, blogPort, balancer, front] = [await app('main', hits), await app('blog', hits), await freePort(), await freePort()];
  const locations = [
    { url: 'http://shop.test/', scheme: 'http' as const, host: 'shop.test', port: null, path: '/', app: 'main' },
    { url: 'http://shop.test/blog/', scheme: 'http' as const, host: 'shop.test', port: null, path: '/blog/', app: 'blog' },
  ];
  const nd = join(dir, 'nginx');
  mkdirSync(join(nd, 'logs'), { recursive: true });
  const upstreams = `upstream silver_app_main { server 127.0.0.1:${mainPort}; }\nupstream silver_app_blog { server 127.0.0.1:${blogPort}; }`;
  writeFileSync(
    join(nd, 'front.conf'),
    nginxFrontConf({ locations }).replace('include /etc/silverlining/nginx/upstream-*.conf;', upstreams).replaceAll('listen 80', `listen 127.0.0.1:${front}`).replaceAll('/var/lib/silverlining/apps/', `${nd}/apps/`),
  );
  const temps = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((x) => `${x}_temp_path ${nd}/${x};`).join(' ');
  writeFileSync(join(nd, 'nginx.conf'), `daemon off; master_process off; error_log ${nd}/logs/error.log; pid ${nd}/nginx.pid; events {} http { access_log off; ${temps} include ${nd}/front.conf; }`);
  procs.push(spawn(NGINX!, ['-p', nd, '-c', join(nd, 'nginx.conf')], { stdio: 'ignore' }));
  const cfg = haproxyConfig('front', haproxyCfg(['shop.test'], [{ name: 'app1', address: '127.0.0.1' }], locations, new Map()), balancer, 0, front);
  const first = await startHaproxy('front', cfg, balancer);
  await up(balancer, 'shop.test', '/blog/');
  // blog in maintenance (its map entry, read at start)
  writeFileSync(join(dir, 'front-modes.map'), `blog maintenance:30:${Buffer.from('m').toString('base64')}\n`);
  await new Promise<void>((resolve) => {
    first.on('exit', () => resolve());
    first.kill('SIGTERM');
  });
  writeFileSync(join(dir, 'front.cfg'), cfg);
  const again = spawn(HAPROXY!, ['-db', '-f', join(dir, 'front.cfg')], { stdio: 'ignore' });
  procs.push(again);
  await up(balancer, 'shop.test', '/');
  t.is((await ask({ host: '127.0.0.1', port: balancer, path: '/blog/x', method: 'POST', headers: { Host: 'shop.test', 'Content-Length': '7' } }, 'write=1')).status, 503, 'blog is in maintenance');
  const via = await ask({ host: '127.0.0.1', port: balancer, path: '/anything?xaccel=%40silver_2', method: 'POST', headers: { Host: 'shop.test', 'Content-Length': '7' } }, 'write=1');
  t.is(hits.get('main POST /anything?xaccel=%40silver_2'), 1);
  t.is(hits.get('blog POST /anything?xaccel=%40silver_2'), undefined, `blog's app got the POST (${via.status}: ${via.body.slice(0, 100)})`);
});
