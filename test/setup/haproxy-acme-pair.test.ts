import test from 'ava';
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { layersRoot } from '../../src/layers.js';
import { defaultCertFolder, findHaproxy, localCerts } from '../helpers/haproxy.js';
import { ask } from '../helpers/load.js';
import { ACME_MAP, ALLOW_ACL, CERTS_DIR, DEFAULT_CERT, haproxyCfg, MODES_MAP, PAGES_MAP } from '../../src/setup/render.js';

// tls = acme on a balancer pair, on loopback with two real HAProxy processes (no container):
// balancer A on 127.0.0.2, B on 127.0.0.3, each with the configuration haproxyCfg renders for it
// (the other as its ACME peer; paths and ports moved into a temporary tree). A challenge token in
// B's map (put there through B's admin socket, as silver-acme's hook does) is answered when asked
// at A, the holder of the virtual address; a token in neither is a 404 and loops nowhere; a request
// already forwarded is never forwarded again; silver-acme's probe passes through A to B.
// HAProxy is SILVER_TEST_HAPROXY or the one in PATH; without one the test is a skip.

const HAPROXY = findHaproxy();
const run = HAPROXY ? test.serial : test.serial.skip;

const dir = mkdtempSync(join(tmpdir(), 'silver-acme-pair-'));
const HOST = 'pair.test';
interface Balancer {
  name: 'a' | 'b';
  ip: string;
  http: number;
  https: number;
  sock: string;
  map: string;
  cfg: string;
  proc: ChildProcess | null;
}
const balancers: Record<'a' | 'b', Balancer> = {
  a: { name: 'a', ip: '127.0.0.2', http: 0, https: 0, sock: join(dir, 'a.sock'), map: join(dir, 'a-acme.map'), cfg: join(dir, 'a.cfg'), proc: null },
  b: { name: 'b', ip: '127.0.0.3', http: 0, https: 0, sock: join(dir, 'b.sock'), map: join(dir, 'b-acme.map'), cfg: join(dir, 'b.cfg'), proc: null },
};
const { a: A, b: B } = balancers;
const peerOf = (x: Balancer) => (x === A ? B : A);

async function freePort(ip: string): Promise<number> {
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, ip, r));
  const port = (probe.address() as AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  return port;
}

/** The configuration haproxyCfg renders for balancer X of the pair, moved to loopback. */
function config(x: Balancer, appPort: number): string {
  const peer = peerOf(x);
  const cfg = haproxyCfg([HOST], [{ name: `app1.${HOST}`, address: '127.0.0.1' }], [{ host: HOST, path: '/', app: 'hello' }], new Map(), { hosts: [HOST], hsts: null, acmePeer: peer.ip });
  for (const needed of ['bind :80\n', 'bind :443 ssl', `server peer ${peer.ip}:80\n`, '127.0.0.1:80 check', ACME_MAP, `${CERTS_DIR}/`, DEFAULT_CERT]) if (!cfg.includes(needed)) throw new Error(`the configuration has no ${needed}`);
  for (const f of ['modes.map', 'allow.acl', 'pages.map']) writeFileSync(join(dir, `${x.name}-${f}`), '');
  writeFileSync(x.map, '');
  return localCerts(cfg, dir)
    .replaceAll(MODES_MAP, join(dir, `${x.name}-modes.map`))
    .replaceAll(ALLOW_ACL, join(dir, `${x.name}-allow.acl`))
    .replaceAll(PAGES_MAP, join(dir, `${x.name}-pages.map`))
    .replaceAll(ACME_MAP, x.map)
    .replace('/run/haproxy/admin.sock', x.sock)
    .replace('bind :80\n', `bind ${x.ip}:${x.http}\n`)
    .replace('bind :443 ssl', `bind ${x.ip}:${x.https} ssl`)
    .replace(`server peer ${peer.ip}:80\n`, `server peer ${peer.ip}:${peer.http}\n`)
    .replaceAll('127.0.0.1:80 check', `127.0.0.1:${appPort} check`)
    .replace(/^\t(user|group) haproxy\n|^\tdaemon\n/gm, '');
}
/** (run in the foreground, without syslog) */
const noLog = (cfg: string) => cfg.replace(/^\tlog \/dev\/log.*\n/m, '');

/** A plain-HTTP request to balancer X (Host: the pair's name). */
const get = (x: Balancer, path: string, headers: Record<string, string> = {}) => ask({ host: x.ip, port: x.http, path, headers: { Host: HOST, ...headers } });
/** The same over TLS (the self-signed default certificate). */
const getTls = (x: Balancer, path: string) => ask({ tls: true, host: x.ip, port: x.https, path, servername: HOST, headers: { Host: HOST }, rejectUnauthorized: false });

/** One admin-socket command to balancer X (what silver-acme's hook sends). */
function admin(x: Balancer, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('python3', ['-c', `import socket,sys;s=socket.socket(socket.AF_UNIX);s.connect(${JSON.stringify(x.sock)});s.sendall(sys.argv[1].encode()+b"\\n");print(s.makefile().read())`, command], (e, stdout, stderr) => (e ? reject(new Error(stderr)) : resolve(stdout.trim())));
  });
}
const addToken = async (x: Balancer, token: string, value: string) => {
  const out = await admin(x, `add map ${x.map} ${token} ${value}`);
  if (out) throw new Error(`add map: ${out}`);
};
const challenge = (token: string) => `/.well-known/acme-challenge/${token}`;

/** silver-acme with its paths in the tree, for balancer X; `via` the address the ACME server asks at. */
function silverAcme(x: Balancer, via: Balancer, probeSeconds: number): string {
  const conf = join(dir, `${x.name}-acme.conf`);
  writeFileSync(conf, `directory https://acme.test/dir\nemail -\nca -\nvia ${via.ip}\nhost ${HOST}\n`);
  let text = readFileSync(join(layersRoot(), 'balancer/bin/silver-acme'), 'utf8');
  for (const [name, value] of [['CONF', conf], ['MAP', x.map], ['SOCKET', x.sock], ['CERTS', join(dir, 'certs')], ['BASE', join(dir, `${x.name}-acme`)]] as const) {
    const re = new RegExp(`^${name} = ".*"$`, 'm');
    if (!re.test(text)) throw new Error(`silver-acme has no constant ${name}`);
    text = text.replace(re, `${name} = ${JSON.stringify(value)}`);
  }
  for (const [name, value] of [['VIA_PORT', via.http], ['PROBE_SECONDS', probeSeconds]] as const) {
    const re = new RegExp(`^${name} = \\d+$`, 'm');
    if (!re.test(text)) throw new Error(`silver-acme has no constant ${name}`);
    text = text.replace(re, `${name} = ${value}`);
  }
  const script = join(dir, `${x.name}-silver-acme`);
  writeFileSync(script, text, { mode: 0o755 });
  return script;
}
const acme = (script: string, verb: string) =>
  new Promise<{ code: number; stderr: string }>((resolve) => execFile('python3', [script, verb], (e, _so, stderr) => resolve({ code: e ? Number((e as { code?: number }).code ?? 1) : 0, stderr })));

async function start(x: Balancer): Promise<void> {
  const p = spawn(HAPROXY!, ['-db', '-f', x.cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  p.stderr!.on('data', (d) => (err += d));
  x.proc = p;
  for (let i = 0; i < 100; i++) {
    if (existsSync(x.sock) && (await get(x, '/.silver/balancer-health').catch(() => null))?.status === 200) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`haproxy ${x.name} did not start: ${err}`);
}

test.before(async () => {
  if (!HAPROXY) return;
  defaultCertFolder(dir);
  // (no app server: its port is closed, the app backend is down; challenges never reach it)
  const appPort = await freePort('127.0.0.1');
  for (const x of [A, B]) {
    x.http = await freePort(x.ip);
    x.https = await freePort(x.ip);
  }
  for (const x of [A, B]) {
    const cfg = config(x, appPort);
    writeFileSync(`${x.cfg}.check`, cfg);
    writeFileSync(x.cfg, noLog(cfg));
  }
  for (const x of [A, B]) await start(x);
});
test.after.always(async () => {
  for (const x of [A, B]) {
    const p = x.proc;
    if (!p) continue;
    await new Promise<void>((resolve) => {
      p.on('exit', () => resolve());
      p.kill('SIGTERM');
    });
  }
  rmSync(dir, { recursive: true, force: true });
});

run('each balancer\'s rendered configuration is one HAProxy accepts, without a warning', (t) => {
  for (const x of [A, B]) {
    const r = spawnSync(HAPROXY!, ['-c', '-f', `${x.cfg}.check`], { encoding: 'utf8' });
    t.is(r.status, 0, `${r.stdout}${r.stderr}`);
    t.notRegex(`${r.stdout}${r.stderr}`, /WARNING|ALERT/, x.name);
  }
});

run('a token in B\'s map is answered when the ACME server asks at A (the holder); a token in A\'s at A itself', async (t) => {
  await addToken(B, 'tokB-1', 'tokB-1.keyauthB');
  const atA = await get(A, challenge('tokB-1'));
  t.is(atA.status, 200);
  t.is(atA.body, 'tokB-1.keyauthB');
  t.is((await get(B, challenge('tokB-1'))).body, 'tokB-1.keyauthB', 'and at B itself');
  await addToken(A, 'tokA-1', 'tokA-1.keyauthA');
  t.is((await get(A, challenge('tokA-1'))).body, 'tokA-1.keyauthA');
  t.is((await get(B, challenge('tokA-1'))).body, 'tokA-1.keyauthA', 'either way round');
});

run('a token in neither map: 404 after one hop, no loop; a request already forwarded is never forwarded again', async (t) => {
  for (const x of [A, B]) {
    const r = await get(x, challenge('nowhere-1'));
    t.is(r.status, 404, x.name);
    t.is(r.body, 'no such challenge');
  }
  // A token only A has, asked at B with the mark of a forwarded request: B answers 404 itself.
  await addToken(A, 'onlyA-1', 'onlyA-1.keyauth');
  const marked = await get(B, challenge('onlyA-1'), { 'X-Silver-Acme-Peer': '1' });
  t.is(marked.status, 404);
  t.is(marked.body, 'no such challenge');
  t.is((await get(B, challenge('onlyA-1'))).body, 'onlyA-1.keyauth', 'unmarked, it goes to A');
  // Each balancer forwarded exactly the requests above (A: nowhere-1; B: nowhere-1 and onlyA-1).
  const forwarded = async (x: Balancer) => {
    const csv = await admin(x, 'show stat');
    const row = csv.split('\n').find((l) => l.startsWith('acme_peer,BACKEND,'));
    return Number(row?.split(',')[7]);
  };
  t.is(await forwarded(A), 2, 'A: tokB-1 and nowhere-1');
  t.is(await forwarded(B), 3, 'B: tokA-1, nowhere-1 and onlyA-1');
});

run('only plain-HTTP challenge paths are forwarded: over HTTPS they are the site\'s; other plain requests redirect', async (t) => {
  await addToken(B, 'tokB-2', 'tokB-2.keyauthB');
  const tls = await getTls(A, challenge('tokB-2'));
  t.not(tls.body, 'tokB-2.keyauthB');
  t.not(tls.status, 200);
  const plain = await get(A, '/some/page');
  t.is(plain.status, 301);
});

run('silver-acme probe: B\'s own token comes back through A (the holder); with A not passing it on, it fails after PROBE_SECONDS and names the address', async (t) => {
  const script = silverAcme(B, A, 2);
  const ok = await acme(script, 'probe');
  t.is(ok.code, 0, ok.stderr);
  t.notRegex(await admin(B, `show map ${B.map}`), /silver-probe-/, 'the probe token is gone');
  t.is(await admin(A, 'set server acme_peer/peer state maint'), '');
  try {
    const bad = await acme(script, 'probe');
    t.is(bad.code, 1);
    t.regex(bad.stderr, /silver-acme: a validation request to the virtual address 127\.0\.0\.2 does not reach this balancer \(HTTP 503\): is the other balancer set up\?/);
    t.notRegex(await admin(B, `show map ${B.map}`), /silver-probe-/, 'the probe token is gone after a failure too');
  } finally {
    await admin(A, 'set server acme_peer/peer state ready');
  }
});
