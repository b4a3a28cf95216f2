import test from 'ava';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, Agent, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { layersRoot } from '../../src/layers.js';
import { findHaproxy } from '../helpers/haproxy.js';
import { ALLOW_ACL, haproxyCfg, MODES_MAP, PAGES_MAP, routeId } from '../../src/setup/render.js';

// The rules haproxyCfg renders and silver-balancer's mode verbs against a real HAProxy on
// loopback (no container): the configuration as rendered (paths and ports moved into a
// temporary tree), one app server (a Node HTTP server), the helper with its constants rewritten.
// HAProxy is the one in PATH, or SILVER_TEST_HAPROXY (e.g. Debian's binary taken out of the
// package with `apt-get download haproxy && dpkg -x`); without one the test is a skip.

const HAPROXY = findHaproxy();
const run = HAPROXY ? test.serial : test.serial.skip;

const dir = mkdtempSync(join(tmpdir(), 'silver-haproxy-modes-'));
const paths = { cfg: join(dir, 'haproxy.cfg'), sock: join(dir, 'admin.sock'), modes: join(dir, 'silver-modes.map'), allow: join(dir, 'silver-allow.acl'), pages: join(dir, 'silver-pages.map'), run: join(dir, 'run'), script: join(dir, 'silver-balancer') };
let app: Server;
let checkedWith: string | undefined;
let haproxy: ChildProcess | null = null;
let port = 0;

/** The rendered configuration with its paths and ports in the tree, in the foreground. */
function config(appPort: number, listen: number): string {
  const cfg = haproxyCfg(['modes.test'], [{ name: 'app1.modes.test', address: '127.0.0.1' }], [{ host: 'modes.test', path: '/', app: 'hello' }, { host: 'modes.test', path: '/wiki/', app: 'wiki' }], new Map([['hello', '/health']]));
  for (const needed of [MODES_MAP, ALLOW_ACL, PAGES_MAP, 'bind :80', '127.0.0.1:80 check', '/run/haproxy/admin.sock']) if (!cfg.includes(needed)) throw new Error(`the configuration has no ${needed}`);
  return cfg
    .replaceAll(MODES_MAP, paths.modes)
    .replaceAll(ALLOW_ACL, paths.allow)
    .replaceAll(PAGES_MAP, paths.pages)
    .replace('/run/haproxy/admin.sock', paths.sock)
    .replace('bind :80', `bind 127.0.0.1:${listen}`)
    .replaceAll('127.0.0.1:80 check', `127.0.0.1:${appPort} check`)
    .replace(/^\t(user|group) haproxy\n|^\tdaemon\n|^\tlog \/dev\/log.*\n/gm, '');
}

/** The helper, its path constants pointing into the tree. */
function helper(): void {
  let text = readFileSync(join(layersRoot(), 'balancer/bin/silver-balancer'), 'utf8');
  for (const [name, value] of [['SOCKET', paths.sock], ['CFG', paths.cfg], ['RUN_DIR', paths.run], ['MODES', paths.modes], ['ALLOW', paths.allow], ['PAGES', paths.pages]] as const) {
    const re = new RegExp(`^${name} = ".*"$`, 'm');
    if (!re.test(text)) throw new Error(`silver-balancer has no constant ${name}`);
    text = text.replace(re, `${name} = ${JSON.stringify(value)}`);
  }
  writeFileSync(paths.script, text.replace(/^OWNER = 0$/m, `OWNER = ${process.getuid!()}`), { mode: 0o755 });
}

function mode(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return helperRun('mode', ...args);
}
function helperRun(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('python3', [paths.script, ...args], (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

async function startHaproxy(): Promise<void> {
  haproxy = spawn(HAPROXY!, ['-db', '-f', paths.cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  haproxy.stderr!.on('data', (d) => (err += d));
  for (let i = 0; i < 100; i++) {
    if (existsSync(paths.sock) && (await get('/.silver/balancer-health').catch(() => null))?.status === 200) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`haproxy did not start: ${err}`);
}
async function stopHaproxy(): Promise<void> {
  if (!haproxy) return;
  const p = haproxy;
  haproxy = null;
  await new Promise<void>((resolve) => {
    p.on('exit', () => resolve());
    p.kill('SIGTERM');
  });
  rmSync(paths.sock, { force: true });
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}
/** A request to the balancer with the headers given (a POST with a small body). */
function send(path: string, method: string, headers: Record<string, string>, agent?: Agent): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers, timeout: 5000, ...(agent ? { agent } : {}) }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(method === 'POST' ? 'x=1' : undefined);
  });
}
const get = (path: string, method = 'GET', host = 'modes.test', agent?: Agent) => send(path, method, { Host: host }, agent);

/** `show servers state` of the app backends: the server's operational state (2: up). */
async function serverUp(): Promise<boolean> {
  const out = await new Promise<string>((resolve) => {
    execFile('python3', ['-c', `import socket;s=socket.socket(socket.AF_UNIX);s.connect(${JSON.stringify(paths.sock)});s.sendall(b"show servers state\\n");print(s.makefile().read())`], (_e, stdout) => resolve(stdout));
  });
  const rows = out.split('\n').filter((l) => / app_hello_1 /.test(l));
  return rows.length > 0 && rows.every((l) => l.split(' ')[5] === '2');
}

test.before(async () => {
  if (!HAPROXY) return;
  app = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      res.setHeader('Content-Type', 'text/plain');
      if (req.url === '/health') checkedWith = req.headers['x-silver-backend'] as string | undefined;
      // (what the app is told of a request: the balancer's route, scheme and forwarded host)
      if (req.url?.endsWith('/headers')) return void res.end(JSON.stringify({ backend: req.headers['x-silver-backend'], proto: req.headers['x-forwarded-proto'], fwdHost: req.headers['x-forwarded-host'] ?? null }));
      res.end(req.url === '/health' ? 'ok\n' : `hello from the app: ${req.method} ${req.url}${body ? ` ${body}` : ''}\n`);
    });
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
  // A free port for the balancer: one the kernel hands out, released again.
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  port = (probe.address() as AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  mkdirSync(paths.run, { recursive: true, mode: 0o700 });
  writeFileSync(paths.cfg, config((app.address() as AddressInfo).port, port));
  helper();
  // (the layer makes the files before the configuration is checked: HAProxy needs them)
  const made = await mode('restore', '--allow');
  if (made.code !== 0) throw new Error(made.stderr);
  const check = await new Promise<string>((resolve) => execFile(HAPROXY, ['-c', '-f', paths.cfg], (e, so, se) => resolve(e ? `${so}${se}` : '')));
  if (check) throw new Error(`haproxy -c: ${check}`);
  await startHaproxy();
});
test.after.always(async () => {
  await stopHaproxy();
  app?.close();
  rmSync(dir, { recursive: true, force: true });
});

run('the rendered configuration validates with HAProxy and serves the app while no mode is set', async (t) => {
  const r = await get('/');
  t.is(r.status, 200);
  t.regex(r.body, /^hello from the app: GET \//);
  t.is((await get('/', 'POST')).status, 200);
  t.is((await get('/', 'GET', 'other.test')).status, 404);
});

run('maintenance: 503 with Retry-After and the escaped page for every request; allowed addresses pass; health checks and the balancer\'s own health keep answering', async (t) => {
  const message = 'Back at 5 <b>"soon"</b> 100% & é; \\';
  const on = await mode('set', '*', 'maintenance', '45', b64(message));
  t.is(on.code, 0, on.stderr);
  t.is((JSON.parse(on.stdout) as { live: boolean }).live, true);
  for (const method of ['GET', 'POST', 'HEAD']) {
    const r = await get('/wiki/page', method);
    t.is(r.status, 503, method);
    t.is(r.headers['retry-after'], '45', method);
    t.is(r.headers['cache-control'], 'no-store');
    t.regex(String(r.headers['content-type']), /^text\/html/);
    if (method !== 'HEAD') t.is(r.body, '<!DOCTYPE html><html><head><meta charset=utf-8><title>Service unavailable</title></head><body><p>Back at 5 &#60;b&#62;&#34;soon&#34;&#60;/b&#62; 100&#37; &#38; &#233;&#59; &#92;</p></body></html>');
  }
  t.is((await get('/.silver/balancer-health')).status, 200, "the balancer's own health answers");
  t.is((await get('/', 'GET', 'other.test')).status, 404, 'unknown hosts are as before');
  // Checks go on (fall 2 at 1s): the server stays up all along.
  await new Promise((r) => setTimeout(r, 3500));
  t.true(await serverUp(), 'the app server is still up: health checks are not held back');
  // The client here is 127.0.0.1.
  t.is((await mode('allow', '10.0.0.0/8')).code, 0);
  t.is((await get('/')).status, 503, 'another network allowed: still held back');
  t.is((await mode('allow', '10.0.0.0/8', '127.0.0.1')).code, 0);
  const allowed = await get('/', 'POST');
  t.is(allowed.status, 200);
  t.regex(allowed.body, /hello from the app: POST/);
  await mode('allow');
  t.is((await get('/')).status, 503);
});

run('read-only: GET, HEAD and OPTIONS pass, other methods get 503 with Retry-After; an app\'s own entry wins over *; clear goes back', async (t) => {
  t.is((await mode('set', '*', 'read-only', '20', b64('Reading only'))).code, 0);
  for (const method of ['GET', 'HEAD', 'OPTIONS']) t.is((await get('/', method)).status, 200, method);
  // (a GET asking for an upgrade — a WebSocket, whose tunnel carries writes — is no read)
  const ws = await send('/', 'GET', { Host: 'modes.test', Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Key': 'dGhlIHNhbXBsZSBub25jZQ==' });
  t.is(ws.status, 503, 'a WebSocket in read-only');
  for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
    const r = await get('/', method);
    t.is(r.status, 503, method);
    t.is(r.headers['retry-after'], '20');
    t.regex(r.body, /<p>Reading only<\/p>/);
  }
  // wiki online on its own, hello in maintenance on its own: * no longer decides for them.
  t.is((await mode('set', 'wiki', 'online', '30', b64('x'))).code, 0);
  t.is((await get('/wiki/x', 'POST')).status, 200);
  t.is((await mode('set', 'hello', 'maintenance', '7', b64('hello only'))).code, 0);
  const held = await get('/', 'GET');
  t.is(held.status, 503);
  t.is(held.headers['retry-after'], '7');
  t.is((await get('/wiki/x', 'GET')).status, 200);
  t.is((await mode('clear', '--all')).code, 0);
  t.is((await get('/', 'POST')).status, 200);
  t.is((await get('/wiki/x', 'POST')).status, 200);
});

run('switching modes on and off under load drops no request: each answer is the app or a 503 with Retry-After for what the mode holds back', async (t) => {
  const agent = new Agent({ keepAlive: true, maxSockets: 8 });
  // (a phase begins once the helper returned, the switch made, and ends when the next switch
  // starts: a request that began and ended in one phase must get exactly what that mode gives;
  // one that spans a switch may get either)
  const phase = { name: 'online', n: 0 };
  const bad: string[] = [];
  const counts = new Map<string, number>();
  let stop = false;
  const expected = (name: string, method: string) => (name === 'online' || (name === 'read-only' && method === 'GET') ? 200 : 503);
  const worker = async (method: string) => {
    while (!stop) {
      const at = { ...phase };
      try {
        const r = await get('/', method, 'modes.test', agent);
        const ok = r.status === 200 ? /^hello from the app/.test(r.body) : r.status === 503 && r.headers['retry-after'] === '30' && /<p>[mr]<\/p>/.test(r.body);
        const within = phase.n === at.n && at.name !== 'switching';
        const key = `${within ? at.name : 'switching'} ${method} ${r.status}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
        if ((!ok || (within && r.status !== expected(at.name, method))) && bad.length < 5) bad.push(`${key}: ${r.body.slice(0, 80)}`);
      } catch (e) {
        if (bad.length < 5) bad.push(`${at.name} ${method}: ${(e as Error).message}`);
      }
    }
  };
  const workers = [...Array.from({ length: 4 }, () => worker('GET')), ...Array.from({ length: 4 }, () => worker('POST'))];
  const steps: [string, string[]][] = [
    ['maintenance', ['set', '*', 'maintenance', '30', b64('m')]],
    ['online', ['clear', '--all']],
    ['read-only', ['set', '*', 'read-only', '30', b64('r')]],
    ['maintenance', ['set', '*', 'maintenance', '30', b64('m')]],
    ['online', ['clear', '--all']],
  ];
  for (let round = 0; round < 4; round++) {
    for (const [name, args] of steps) {
      phase.name = 'switching';
      phase.n++;
      const r = await mode(...args);
      t.is(r.code, 0, r.stderr);
      phase.name = name;
      phase.n++;
      await new Promise((r) => setTimeout(r, 150));
    }
  }
  stop = true;
  await Promise.all(workers);
  agent.destroy();
  t.deepEqual(bad, [], [...counts].join(' '));
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  t.true(total > 200, `only ${total} requests`);
  t.true((counts.get('maintenance POST 503') ?? 0) > 0 && (counts.get('read-only GET 200') ?? 0) > 0 && (counts.get('read-only POST 503') ?? 0) > 0, [...counts].join(' '));
});

run("an app's own page (its maintenance.html) is what its held-back requests get, in both modes; other apps keep the message page; it survives a restart; clear goes back", async (t) => {
  // A page near the size limit, with markup, non-ASCII and characters a log-format would take.
  const html = `<!DOCTYPE html>\r\n<html><body>\n\t<h1>Wartung — bientôt</h1><p>100% "done" %[src] \\ ;</p>${'<!-- filler -->'.repeat(500)}</body></html>\n`;
  // (as served: each line break a space)
  const served = html.replace(/\r\n|\n/g, ' ');
  t.true(Buffer.byteLength(html) > 7000 && Buffer.byteLength(html) <= 8192);
  const set = await helperRun('page', 'set', 'hello', b64(html));
  t.is(set.code, 0, set.stderr);
  t.is(set.stdout.trim(), 'changed');
  t.is((await helperRun('page', 'set', 'hello', b64(html))).stdout.trim(), 'unchanged');
  const st = JSON.parse((await mode('status')).stdout) as { pages: Record<string, string>; live: boolean };
  t.deepEqual(Object.keys(st.pages), ['hello']);
  t.is(st.pages['hello'], createHash('sha256').update(served).digest('hex'), 'the sum of what is served');
  t.true(st.live);
  t.is((await get('/')).status, 200, 'no mode: the page is not served');
  t.is((await mode('set', '*', 'maintenance', '12', b64('message page'))).code, 0);
  const own = await get('/');
  t.is(own.status, 503);
  t.is(own.headers['retry-after'], '12');
  t.regex(String(own.headers['content-type']), /^text\/html/);
  t.is(own.body, served, 'the page as the app shipped it, byte for byte but its line breaks');
  t.regex((await get('/wiki/x')).body, /<p>message page<\/p>/, 'wiki has no page of its own');
  t.is((await mode('set', '*', 'read-only', '12', b64('message page'))).code, 0);
  t.is((await get('/')).status, 200);
  t.is((await get('/', 'POST')).body, served);
  await stopHaproxy();
  await startHaproxy();
  t.is((await get('/', 'POST')).body, served, 'loaded from the file after a restart');
  t.is((await helperRun('page', 'clear', 'hello')).stdout.trim(), 'changed');
  t.regex((await get('/', 'POST')).body, /<p>message page<\/p>/);
  await mode('clear', '--all');
  t.is((await get('/', 'POST')).status, 200);
});

run('a page that is too big, not UTF-8 or not base64, or a bad app name, is refused with exit 2 and nothing changes', async (t) => {
  const before = readFileSync(paths.pages, 'utf8');
  for (const args of [
    ['set', 'hello', b64('x'.repeat(8193))],
    ['set', 'hello', Buffer.from([0xff, 0xfe, 0x41]).toString('base64')],
    ['set', 'hello', 'not base64!'],
    ['set', 'hello', b64('a\0b')],
    ['set', 'hello', b64('a\x1bb')],
    ['set', 'Hello', b64('x')],
    ['set', '../x', b64('x')],
    ['clear'],
  ]) {
    const r = await helperRun('page', ...args);
    t.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
  }
  t.is(readFileSync(paths.pages, 'utf8'), before);
});

/** A GET with headers of the client's choosing. */
const ask = (path: string, headers: Record<string, string>) => send(path, 'GET', headers);

run('attack: the route header names the backend the balancer chose, whatever the client sent; the health check carries it; a Host with a comma is refused; the scheme and forwarded host are the balancer\'s', async (t) => {
  const forged = { 'X-Silver-Backend': 'app_wiki_1', 'X-Forwarded-Proto': 'https', 'X-Forwarded-Host': 'evil.test' };
  const root = await ask('/headers', { Host: 'modes.test', ...forged });
  t.is(root.status, 200);
  t.deepEqual(JSON.parse(root.body), { backend: routeId({ host: 'modes.test', path: '/' }), proto: 'http', fwdHost: null });
  t.is(JSON.parse((await ask('/wiki/headers', { Host: 'modes.test', ...forged })).body).backend, routeId({ host: 'modes.test', path: '/wiki/' }));
  t.is(checkedWith, routeId({ host: 'modes.test', path: '/' }), 'the health check names its location too');
  // `Host: other:1,modes.test` would match modes.test's rules by its second value: refused.
  for (const host of ['other.test:1,modes.test', 'modes.test,modes.test']) t.is((await ask('/', { Host: host })).status, 400, host);
});

run('a mode survives a restart of HAProxy: it loads the files', async (t) => {
  t.is((await mode('set', 'hello', 'maintenance', '99', b64('still here'))).code, 0);
  await stopHaproxy();
  const offline = JSON.parse((await mode('status')).stdout) as { haproxy: string };
  t.is(offline.haproxy, 'not running');
  await startHaproxy();
  const r = await get('/');
  t.is(r.status, 503);
  t.is(r.headers['retry-after'], '99');
  t.regex(r.body, /still here/);
  t.true((JSON.parse((await mode('status')).stdout) as { live: boolean }).live);
  await mode('clear', '--all');
  t.is((await get('/')).status, 200);
});
