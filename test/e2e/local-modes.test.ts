import test from 'ava';
import { readFileSync, rmSync, writeFileSync, mkdtempSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onNode, silver } from '../helpers/cli.js';
import { startLoad, type LoadResult } from '../helpers/load.js';
import { bringUp, eventually } from '../helpers/nodeset.js';
import { canRunLxc, cleanLeftovers, testProviderConfig } from '../helpers/lxc.js';
import { helloNodeset, helloVersion } from '../helpers/hello.js';

// `silver maintenance` on real containers: the balancer holds back what a mode says (503 with
// Retry-After and the page) and lets the rest through, switching under load drops no request,
// the mode survives an HAProxy restart, setup-node and a rebuilt balancer, `--app` scopes it,
// and an app server cannot be reached past the balancer.

const NODESET = 'silvertest-modes';
const config = testProviderConfig('silvert6', 248);
const HOST_ADDRESS = '10.213.248.1';
const run = canRunLxc ? test.serial : test.serial.skip;
const dir = mkdtempSync(join(tmpdir(), 'silver-modes-'));
const env = { SILVER_HOME: join(dir, 'home') };
const file = join(dir, 'modes.conf');
// Two apps: hello on modes.test, "second" (the same code under another name) on other.modes.test
// and under modes.test/two/ (a path of hello's host: the path-confusion attack below).
writeFileSync(file, helloNodeset(NODESET, 'modes.test', config).replace('locations = http://modes.test/ hello', 'locations =\n    http://modes.test/ hello\n    http://other.modes.test/ second\n    http://modes.test/two/ second'));
const BALANCER = 'balancer.modes.test';
const A1 = 'app1.modes.test';
let addr: Record<string, string> = {};

/** The example app, answering POST too (it reads the body, then counts a visit as GET does). */
function appDir(name: string): string {
  const d = helloVersion(dir, `1-${name}`);
  const py = join(d, 'app.py');
  const text = readFileSync(py, 'utf8');
  const at = text.indexOf('ThreadingHTTPServer((');
  const post = `def _post(self):\n    n = int(self.headers.get("Content-Length") or 0)\n    if n:\n        self.rfile.read(n)\n    return self.do_GET()\n\n\nHandler.do_POST = _post\n\n`;
  writeFileSync(py, text.slice(0, at) + post + text.slice(at));
  writeFileSync(join(d, 'app.ini'), readFileSync(join(d, 'app.ini'), 'utf8').replace('app_name = hello', `app_name = ${name}`));
  return d;
}

interface Answer {
  status: number;
  retryAfter: string | undefined;
  contentType: string | undefined;
  body: string;
}
/** One request to the balancer (Host header set; node's fetch() cannot). */
function ask(host: string, method = 'GET', path = '/'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const body = method === 'POST' ? 'a note' : '';
    const req = request({ host: addr[BALANCER], port: 80, path, method, headers: { Host: host, ...(body ? { 'Content-Length': String(body.length) } : {}) }, timeout: 10_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] as string | undefined, contentType: res.headers['content-type'], body: text }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}
const isApp = (a: Answer) => a.status === 200 && /^hello from app\d\.modes\.test: version /.test(a.body);
/** A 503 a mode gave: Retry-After, the page (HEAD: no body). */
const held = (a: Answer, retry: string, method = 'GET') => a.status === 503 && a.retryAfter === retry && /^text\/html/.test(a.contentType ?? '') && (method === 'HEAD' || a.body.includes('<title>Service unavailable</title>'));
const show = (a: Answer) => `${a.status} Retry-After ${a.retryAfter ?? '-'}: ${a.body.slice(0, 100)}`;
type T = { true: (v: boolean, m?: string) => void };
const app = async (t: T, host: string, method = 'GET', what = '') => {
  const a = await ask(host, method);
  t.true(isApp(a), `${what} ${host} ${method}: wanted the app, got ${show(a)}`);
};
const heldBack = async (t: T, host: string, method: string, retry: string, what = '') => {
  const a = await ask(host, method);
  t.true(held(a, retry, method), `${what} ${host} ${method}: wanted a 503 with Retry-After ${retry}, got ${show(a)}`);
};

const maint = async (...args: string[]) => {
  const r = await silver(['maintenance', ...args.slice(0, 1), file, ...args.slice(1)], env);
  if (r.code !== 0) throw new Error(`silver maintenance ${args.join(' ')}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
};
const on = async (node: string, command: string) => onNode(file, env, node, command);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const balancerServers = async () => (await on(BALANCER, '/usr/local/lib/silverlining/bin/silver-balancer status')).out;

test.before(async () => {
  if (!canRunLxc) return;
  await cleanLeftovers(config, [NODESET]);
  addr = await bringUp(file, env);
  for (const name of ['hello', 'second']) {
    const u = await silver(['update', appDir(name), file], env);
    if (u.code !== 0) throw new Error(u.stderr);
  }
  await eventually('both apps answer through the balancer', async () => isApp(await ask('modes.test')) && isApp(await ask('other.modes.test')));
});
test.after.always(async () => {
  if (canRunLxc) await cleanLeftovers(config, [NODESET]);
});

run('maintenance: the host (not allowed) gets 503 with Retry-After and the page for every app; once allowed it gets the apps; checks and the balancer\'s own health go on; status shows it', async (t) => {
  const on1 = await maint('on', '--retry-after', '40', '--message', 'Back <soon> & "quickly", 100%');
  t.regex(on1.stdout, /every app: maintenance on\n {2}every app: maintenance \(every request gets 503, Retry-After 40s, allowed: none\): "Back <soon> & \\"quickly\\", 100%"\napplied on balancer\.modes\.test \(no restart\)/);
  for (const [host, method] of [['modes.test', 'GET'], ['modes.test', 'POST'], ['other.modes.test', 'GET'], ['other.modes.test', 'HEAD']] as const) await heldBack(t, host, method, '40');
  t.is((await ask('modes.test')).body, '<!DOCTYPE html><html><head><meta charset=utf-8><title>Service unavailable</title></head><body><p>Back &#60;soon&#62; &#38; &#34;quickly&#34;, 100&#37;</p></body></html>');
  t.is((await ask('modes.test', 'GET', '/.silver/balancer-health')).status, 200, "the balancer's own health answers");
  t.is((await ask('unknown.test')).status, 404, 'other hosts as before');
  // The health checks go on (fall 2 at 1s): every server stays up.
  await sleep(4000);
  const servers = await balancerServers();
  t.regex(servers, /app_hello_1 app1\.modes\.test \S+ up ready/);
  t.regex(servers, /app_second_1 app2\.modes\.test \S+ up ready/);
  t.notRegex(servers, / stopped /, servers);

  const st = await silver(['status', file], env);
  t.regex(st.stdout, /^mode: every app: maintenance \(every request gets 503, Retry-After 40s, allowed: none\)/m);
  const js = JSON.parse((await maint('status', '--json')).stdout) as { modes: { record: { modes: Record<string, { mode: string; retryAfter: number }> }; balancers: { node: string; same: boolean; haproxy: string; live: boolean }[] } };
  t.deepEqual(js.modes.record.modes['*'], { mode: 'maintenance', retryAfter: 40, message: 'Back <soon> & "quickly", 100%' });
  t.deepEqual(js.modes.balancers.map((b) => [b.node, b.same, b.haproxy, b.live]), [[BALANCER, true, 'running', true]]);

  // The host's bridge address allowed: it gets both apps, any method.
  await maint('on', '--retry-after', '40', '--allow', `${HOST_ADDRESS}/32`);
  await app(t, 'modes.test', 'GET');
  await app(t, 'modes.test', 'POST');
  await app(t, 'other.modes.test', 'GET');
  // `on` again without --allow replaces the settings: nobody is let through.
  await maint('on');
  await heldBack(t, 'modes.test', 'GET', '30');
  await maint('off');
  await app(t, 'modes.test', 'POST');
  t.regex((await silver(['status', file], env)).stdout, /^modes: online/m);
});

run('read-only: GET, HEAD and OPTIONS reach the app, POST gets 503 with Retry-After; --app scopes to one app', async (t) => {
  const r = await maint('on', '--read-only', '--app', 'hello', '--retry-after', '15');
  t.regex(r.stdout, /hello: read-only on/);
  await app(t, 'modes.test', 'GET', 'GET passes');
  for (const method of ['HEAD', 'OPTIONS']) {
    const a = await ask('modes.test', method);
    t.not(a.status, 503, `${method} reaches the app (which answers ${a.status})`);
  }
  await heldBack(t, 'modes.test', 'POST', '15', 'POST is held back');
  await app(t, 'other.modes.test', 'POST', 'the other app is not in the mode');
  // The other app in maintenance on its own, hello still read-only.
  await maint('on', '--app', 'second');
  await heldBack(t, 'other.modes.test', 'GET', '30');
  await app(t, 'modes.test', 'GET');
  await heldBack(t, 'modes.test', 'POST', '15');
  const st = (await silver(['status', file], env)).stdout;
  t.regex(st, /^mode: hello: read-only/m);
  t.regex(st, /^mode: second: maintenance/m);
  // An app's own entry wins over every app's; off --app removes only that app's.
  await maint('on', '--read-only');
  await heldBack(t, 'other.modes.test', 'GET', '30', 'second keeps its own maintenance');
  const offSecond = await maint('off', '--app', 'second');
  t.regex(offSecond.stdout, /second still follows the mode of every app \(\*: read-only\)/);
  await app(t, 'other.modes.test', 'GET');
  await heldBack(t, 'other.modes.test', 'POST', '30');
  await maint('off');
  await app(t, 'modes.test', 'POST');
  await app(t, 'other.modes.test', 'POST');
});

run("an app's own maintenance.html: an update takes it to the balancer, held-back requests get it; the other app keeps the message page; an update without it brings the message back", async (t) => {
  const d = appDir('second');
  const page = '<!DOCTYPE html><html><body><h1>second — en maintenance</h1><p>100% "soon"</p></body></html>\n';
  writeFileSync(join(d, 'maintenance.html'), page);
  // (whatever fails, the next tests start with every app online)
  t.teardown(() => maint('off').then(() => undefined));
  const u = await silver(['update', d, file], env);
  t.is(u.code, 0, u.stderr.slice(-2000));
  await maint('on', '--retry-after', '25');
  const own = await ask('other.modes.test');
  t.is(own.status, 503);
  t.is(own.retryAfter, '25');
  const served = page.replace(/\n/g, ' ');
  t.is(own.body, served, 'the page as the app shipped it (line breaks as spaces)');
  t.regex((await ask('modes.test')).body, /<p>We are updating\. Please try again in a moment\.<\/p>/, 'hello has no page of its own');
  t.regex((await maint('status')).stdout, /their own maintenance\.html instead of the message: second/);
  await maint('on', '--read-only');
  t.is((await ask('other.modes.test', 'POST')).body, served, 'read-only holds back with the same page');
  await maint('off');
  rmSync(join(d, 'maintenance.html'));
  const again = await silver(['update', d, file], env);
  t.is(again.code, 0, again.stderr.slice(-2000));
  await maint('on', '--app', 'second');
  t.regex((await ask('other.modes.test')).body, /<p>We are updating/);
  await maint('off');
  await app(t, 'other.modes.test', 'GET');
});

interface Phase {
  phase: string;
  get: LoadResult;
  post: LoadResult;
}

run('switching modes on and off under load drops no request: each answer is the app or a 503 with Retry-After for what the mode holds back, phase by phase', async (t) => {
  const retry = (status: number, h: Record<string, string | string[] | undefined>) => status === 503 && h['retry-after'] === '30';
  // Through all the switches: nothing but the app's answers and 503s with Retry-After.
  const any = (status: number, h: Record<string, string | string[] | undefined>) => status === 200 || retry(status, h);
  const all = [startLoad(addr[BALANCER]!, 'modes.test', { concurrency: 3, maxSeconds: 150, accept: any }), startLoad(addr[BALANCER]!, 'modes.test', { method: 'POST', concurrency: 3, maxSeconds: 150, accept: any })];
  const phases: Phase[] = [];
  // Each phase on its own load, started once the switch returned and stopped before the next
  // begins: every answer must be exactly what the mode gives.
  const steps: [string, string[], { get: 'app' | 'held'; post: 'app' | 'held' }][] = [
    ['online', [], { get: 'app', post: 'app' }],
    ['maintenance', ['on'], { get: 'held', post: 'held' }],
    ['off', ['off'], { get: 'app', post: 'app' }],
    ['read-only', ['on', '--read-only'], { get: 'app', post: 'held' }],
    ['maintenance (from read-only)', ['on'], { get: 'held', post: 'held' }],
    // (hello's own entry wins over every app's)
    ['hello read-only, * maintenance', ['on', '--read-only', '--app', 'hello'], { get: 'app', post: 'held' }],
    ['off --app hello: * maintenance', ['off', '--app', 'hello'], { get: 'held', post: 'held' }],
    ['off', ['off'], { get: 'app', post: 'app' }],
  ];
  for (const [phase, args, want] of steps) {
    if (args.length > 0) await maint(...args);
    const accept = (w: 'app' | 'held') => (status: number, h: Record<string, string | string[] | undefined>) => (w === 'app' ? status === 200 : retry(status, h));
    const g = startLoad(addr[BALANCER]!, 'modes.test', { concurrency: 2, maxSeconds: 30, accept: accept(want.get) });
    const p = startLoad(addr[BALANCER]!, 'modes.test', { method: 'POST', concurrency: 2, maxSeconds: 30, accept: accept(want.post) });
    await sleep(2500);
    phases.push({ phase, get: await g.stop(), post: await p.stop() });
  }
  await maint('off');
  await sleep(1000);
  const [get, post] = await Promise.all(all.map((l) => l.stop()));
  const summary = phases.map((p) => `${p.phase}: GET ${p.get.total - p.get.failed}/${p.get.total} POST ${p.post.total - p.post.failed}/${p.post.total}`).join('; ');
  t.log(summary);
  for (const p of phases) {
    t.is(p.get.failed, 0, `${p.phase}: GET: ${p.get.failures.join(' | ')}`);
    t.is(p.post.failed, 0, `${p.phase}: POST: ${p.post.failures.join(' | ')}`);
    t.true(p.get.total > 5 && p.post.total > 5, `${p.phase}: too few requests (${summary})`);
  }
  t.is(get!.failed, 0, `GET across the switches: ${get!.failures.join(' | ')}`);
  t.is(post!.failed, 0, `POST across the switches: ${post!.failures.join(' | ')}`);
  t.true(get!.total > 100 && post!.total > 100, `${get!.total} GET, ${post!.total} POST`);
  t.true((get!.bodies.get('503') ?? 0) > 0 && (post!.bodies.get('503') ?? 0) > 0, 'the modes held requests back meanwhile');
});

run('the mode survives systemctl restart haproxy, silver setup-node, and a rebuilt balancer (from the nodeset\'s record)', async (t) => {
  await maint('on', '--read-only', '--app', 'hello', '--retry-after', '77', '--allow', '192.0.2.0/24');
  await heldBack(t, 'modes.test', 'POST', '77');
  t.is((await on(BALANCER, 'systemctl restart haproxy')).code, 0);
  await eventually('the balancer answers again', async () => (await ask('modes.test', 'GET', '/.silver/balancer-health')).status === 200, 30);
  await eventually('the app servers are up again', async () => isApp(await ask('modes.test')), 30);
  await heldBack(t, 'modes.test', 'POST', '77', 'after a restart');

  const s = await silver(['setup-node', file], env);
  t.is(s.code, 0, s.stderr);
  t.regex(s.stdout, /0 changed, 4 unchanged, 0 failed/, 'setup-node changes nothing on a balancer in a mode');
  await heldBack(t, 'modes.test', 'POST', '77', 'after setup-node');

  // The balancer replaced: a new container, set up from the record on the other nodes.
  const del = await silver(['delete-node', file, '--node', BALANCER, '-y'], env);
  t.is(del.code, 0, del.stderr);
  t.is((await silver(['create-node', file], env)).code, 0);
  const rebuilt = await silver(['setup-node', file], env);
  t.is(rebuilt.code, 0, rebuilt.stderr + rebuilt.stdout);
  t.regex(rebuilt.stderr, /balancer\.modes\.test: balancer: changed: \/etc\/haproxy\/silver-modes\.map \(from the nodeset's record: hello: read-only\)/);
  const nodes = JSON.parse((await silver(['list-nodes', file, '--json'], env)).stdout) as { name: string; address: string }[];
  addr = Object.fromEntries(nodes.map((n) => [n.name, n.address]));
  await eventually('the rebuilt balancer serves the apps', async () => isApp(await ask('modes.test')), 60);
  await heldBack(t, 'modes.test', 'POST', '77', 'the rebuilt balancer is in the mode');
  await app(t, 'other.modes.test', 'POST');
  const st = JSON.parse((await maint('status', '--json')).stdout) as { modes: { balancers: { same: boolean; state: { allow: string[] } }[] } };
  t.true(st.modes.balancers[0]!.same);
  t.deepEqual(st.modes.balancers[0]!.state.allow, ['192.0.2.0/24']);
  await maint('off');
  await app(t, 'modes.test', 'POST');
});

run("an app server's port 80 is closed to the host and open from the balancer: no mode can be walked around", async (t) => {
  const reach = (address: string) =>
    new Promise<string>((resolve) => {
      const sock = connect({ host: address, port: 80, timeout: 3000 });
      sock.on('connect', () => {
        sock.destroy();
        resolve('open');
      });
      sock.on('timeout', () => {
        sock.destroy();
        resolve('closed');
      });
      sock.on('error', () => resolve('closed'));
    });
  for (const n of [A1, 'app2.modes.test']) {
    t.is(await reach(addr[n]!), 'closed', `${n} from the host`);
    const code = (await on(BALANCER, `curl -s -o /dev/null -m 5 -w '%{http_code}' -H 'Host: modes.test' http://${addr[n]}/`)).out;
    t.is(code, '200', `${n} from the balancer`);
  }
  t.is(await reach(addr[BALANCER]!), 'open', 'the balancer is open to the host');
  const rules = (await on(A1, 'nft list chain inet silver input')).out;
  t.regex(rules, new RegExp(`ip saddr \\{ [^}]*${addr[BALANCER]!.replaceAll('.', '\\.')}[^}]* \\} tcp dport 80 accept`));
  t.notRegex(rules, /^\s*tcp dport 80 accept/m);
});

run('attack: a path the balancer routes to one app and nginx (decoding, resolving) to another gets 421, never the other app past its mode; a Host header with two values gets 400', async (t) => {
  const whose = (a: Answer) => (a.status === 200 ? (/version 1-(\w+)/.exec(a.body)?.[1] ?? '?') : String(a.status));
  t.is(whose(await ask('modes.test', 'GET', '/two/x')), 'second');
  t.is(whose(await ask('modes.test', 'GET', '/x')), 'hello');
  // hello in maintenance: paths the balancer gives second's location, nginx hello's.
  await maint('on', '--app', 'hello');
  try {
    await heldBack(t, 'modes.test', 'POST', '30');
    for (const path of ['/two/../x', '/two/%2e%2e/x', '/two/..%2fx', '/two/%2e/../x']) t.is(whose(await ask('modes.test', 'POST', path)), '421', path);
  } finally {
    await maint('off', '--app', 'hello');
  }
  // second in maintenance: paths the balancer gives hello's location, nginx second's.
  await maint('on', '--app', 'second');
  try {
    t.is((await ask('modes.test', 'POST', '/two/x')).status, 503);
    for (const path of ['/x/../two/x', '/%74wo/x', '//two/x', '/%2e/two/x']) t.is(whose(await ask('modes.test', 'POST', path)), '421', path);
    // (the balancer's routing by the whole Host header: a second value never picks the rules)
    const comma = await new Promise<number>((resolve, reject) => {
      const req = request({ host: addr[BALANCER], port: 80, path: '/', headers: { Host: 'other.modes.test:1,modes.test' }, timeout: 10_000 }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    t.is(comma, 400);
  } finally {
    await maint('off', '--app', 'second');
  }
  t.is(whose(await ask('modes.test', 'POST', '/two/x')), 'second');
});

run("attack: an app that binds another app's port while that instance is down gets none of its requests (the firewall drops its handshake); the instance comes back and serves", async (t) => {
  const port = (await on(A1, 'cat /var/lib/silverlining/apps/hello/instances/"$(basename "$(readlink /var/lib/silverlining/apps/hello/active)")"/port')).out.trim();
  const inst = (await on(A1, 'basename "$(readlink /var/lib/silverlining/apps/hello/active)"')).out.trim();
  t.regex(port, /^2\d{4}$/);
  t.regex((await on(A1, 'nft list set inet silver_listeners listeners')).out, new RegExp(`${port} \\. \\d+`), "the instance's port is in the table with its app's uid");
  // hello's instance down on app1; app "second" binds its port and records what reaches it.
  t.is((await on(A1, `systemctl stop silver-${inst}.service && rm -f /run/hijacked && setsid runuser -u app-second -- python3 -c "import socket;s=socket.socket();s.setsockopt(1,2,1);s.bind(('127.0.0.1',${port}));s.listen(5);s.settimeout(20);c,_=s.accept();c.settimeout(5);open('/dev/shm/hijacked','wb').write(c.recv(1000))" > /dev/null 2>&1 < /dev/null & sleep 1; ss -Hltn "sport = :${port}" | wc -l`)).out.trim(), '1', 'the other app listens on the port');
  try {
    // The front proxy's request for hello on app1 (as the balancer sends it): no answer from the
    // other app, and nothing reaches it.
    const code = (await on(BALANCER, `curl -s -o /dev/null -m 15 -w '%{http_code}' -H 'Host: modes.test' -H 'Cookie: session=hello-secret' http://${addr[A1]}/`)).out;
    t.regex(code, /^50[24]$/, `nginx gets no answer: ${code}`);
    t.is((await on(A1, 'cat /dev/shm/hijacked 2> /dev/null || echo nothing')).out.trim(), 'nothing', 'no request reached the other app');
  } finally {
    await on(A1, `pkill -u app-second -f "s.bind" || true; sleep 0.5; rm -f /dev/shm/hijacked; systemctl start silver-${inst}.service`);
  }
  await eventually('hello serves again on app1', async () => (await on(BALANCER, `curl -s -o /dev/null -m 5 -w '%{http_code}' -H 'Host: modes.test' http://${addr[A1]}/`)).out === '200');
});
