import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../src/cli.js';
import { renderStatus, status } from '../../src/commands/status.js';
import { setupNodes } from '../../src/commands/setup-node.js';
import { applyMode, clearMode, DEFAULT_MESSAGE, ModeError, readModes } from '../../src/deploy/modes.js';
import { Session } from '../../src/deploy/session.js';
import { layersRoot } from '../../src/layers.js';
import type { ExecResult } from '../../src/ssh/connect.js';
import type { NodeExecutor } from '../../src/ssh/keeper.js';
import { fakeDeploy, shellWords, type FakeNodes } from '../helpers/fake-nodes.js';

// `silver maintenance` and the modes API on simulated nodes (test/helpers/fake-nodes.ts), the
// balancer's helper the real one: each `silver-balancer` call runs bin/silver-balancer in
// python3 against a temporary tree of that balancer (no HAProxy running: the files change).

const BALANCER = 'balancer.shop.test';
const HELPER = '/usr/local/lib/silverlining/bin/silver-balancer';
const trees: string[] = [];
test.after.always(() => {
  for (const d of trees) rmSync(d, { recursive: true, force: true });
});

/** A balancer tree: the helper with its constants pointing into it. */
function balancerTree(): { dir: string; script: string; modes: string; allow: string; pages: string } {
  const dir = mkdtempSync(join(tmpdir(), 'silver-maint-'));
  trees.push(dir);
  mkdirSync(join(dir, 'etc'));
  const t = { dir, script: join(dir, 'silver-balancer'), modes: join(dir, 'etc/silver-modes.map'), allow: join(dir, 'etc/silver-allow.acl'), pages: join(dir, 'etc/silver-pages.map') };
  let text = readFileSync(join(layersRoot(), 'balancer/bin/silver-balancer'), 'utf8');
  for (const [name, value] of [['SOCKET', join(dir, 'admin.sock')], ['CFG', join(dir, 'etc/haproxy.cfg')], ['RUN_DIR', join(dir, 'run')], ['MODES', t.modes], ['ALLOW', t.allow], ['PAGES', t.pages]] as const) {
    text = text.replace(new RegExp(`^${name} = ".*"$`, 'm'), `${name} = ${JSON.stringify(value)}`);
  }
  writeFileSync(t.script, text.replace(/^OWNER = 0$/m, `OWNER = ${process.getuid!()}`), { mode: 0o755 });
  return t;
}

/** The fake nodes, but `silver-balancer` runs for real; `stale`: the balancer has another helper. */
class RealBalancer implements NodeExecutor {
  stale = false;
  readonly scripts = new Map<string, string>();
  constructor(
    readonly nodes: FakeNodes,
    readonly tree = balancerTree(),
  ) {}

  async exec(node: string, command: string, stdin?: string | Buffer): Promise<ExecResult> {
    const argv = shellWords(command);
    if (argv.at(-2) === 'sh' && argv.at(-1) === '-s') {
      // setup-node's node script: kept, not run
      this.scripts.set(node, String(stdin));
      return { code: 1, stdout: '', stderr: `${await this.nodes.stateFrame(node, String(stdin))}not run in this test` };
    }
    if (this.stale && argv[0] === 'sha256sum' && node === BALANCER) return { code: 0, stdout: `${'0'.repeat(64)}  ${HELPER}\n`, stderr: '' };
    if (argv[0] !== 'sudo' || argv[2] !== HELPER) return this.nodes.exec(node, command, stdin);
    const call = { node, argv };
    this.nodes.calls.push(call);
    if (this.nodes.down.has(node)) throw new Error(`${node}: connection refused`);
    const injected = this.nodes.failWhen(call);
    if (injected !== null) return { code: 1, stdout: '', stderr: injected };
    return new Promise((resolve) => {
      execFile('python3', [this.tree.script, ...argv.slice(3)], (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
    });
  }

  async close(): Promise<void> {}
}

async function setup(nodesetText?: string) {
  const d = await fakeDeploy(nodesetText);
  const real = new RealBalancer(d.nodes);
  d.rt.executor = async () => real;
  const cli = async (...args: string[]) => {
    d.io.stdout.length = 0;
    d.io.stderr.length = 0;
    const code = await main(args, { io: d.io, host: d.rt.host, runtime: d.rt });
    return { code, out: d.io.stdout.join('\n'), err: d.io.stderr.join('\n') };
  };
  const record = (node = 'app1.shop.test') => JSON.parse(d.nodes.state.get(node)?.get('maintenance') ?? 'null') as { seq: number; modes: Record<string, { mode: string; retryAfter: number; message: string }>; allow: string[] } | null;
  const files = () => ({
    modes: readFileSync(real.tree.modes, 'utf8').split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(' ')[0]),
    allow: readFileSync(real.tree.allow, 'utf8').split('\n').filter((l) => l && !l.startsWith('#')),
  });
  const balancerCalls = () => d.nodes.verbs(BALANCER, 'silver-balancer');
  return { ...d, real, cli, record, files, balancerCalls };
}
const FILE = '/n/shop.conf';
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

test('maintenance on: the record on every node, then the allow list and the mode on the balancer; the report names both', async (t) => {
  const { cli, record, files, balancerCalls, nodes } = await setup();
  const r = await cli('maintenance', 'on', FILE, '--allow', '10.213.248.1', '--allow', '10.0.0.0/8', '--retry-after', '45', '--message', 'Back <soon>');
  t.is(r.code, 0, r.err);
  t.is(r.out, [
    'nodeset shop: every app: maintenance on',
    '  every app: maintenance (every request gets 503, Retry-After 45s, allowed: 10.213.248.1/32 10.0.0.0/8): "Back <soon>"',
    `applied on ${BALANCER} (no restart)`,
  ].join('\n'));
  for (const node of ['app1.shop.test', 'app2.shop.test', 'db.shop.test', BALANCER]) {
    t.deepEqual(record(node), { seq: 1, modes: { '*': { mode: 'maintenance', retryAfter: 45, message: 'Back <soon>' } }, allow: ['10.213.248.1/32', '10.0.0.0/8'] }, node);
  }
  t.deepEqual(balancerCalls(), ['mode allow 10.213.248.1/32 10.0.0.0/8', `mode set * maintenance 45 ${b64('Back <soon>')}`]);
  t.deepEqual(files(), { modes: ['*'], allow: ['10.213.248.1/32', '10.0.0.0/8'] });
  // No deploy lock was taken.
  t.false(nodes.calls.some((c) => c.argv.includes('lock')));
});

test('on again replaces the settings (the allow list too); --read-only; --app scopes to one app; off --app removes that entry only and says * still holds; off clears all', async (t) => {
  const { cli, record, files, balancerCalls, nodes } = await setup();
  t.is((await cli('maintenance', 'on', FILE, '--allow', '10.213.248.1')).code, 0);
  const again = await cli('maintenance', 'on', FILE, '--read-only', '--json');
  t.is(again.code, 0, again.err);
  const report = JSON.parse(again.out) as { ok: boolean; action: string; app: string | null; modes: { record: unknown; seq: number; balancers: { node: string; same: boolean; haproxy: string }[] } };
  t.true(report.ok);
  t.deepEqual(report.modes.record, { modes: { '*': { mode: 'read-only', retryAfter: 30, message: DEFAULT_MESSAGE } }, allow: [] });
  t.is(report.modes.seq, 2);
  t.deepEqual(report.modes.balancers.map((b) => [b.node, b.same, b.haproxy]), [[BALANCER, true, 'not running']]);
  t.deepEqual(files(), { modes: ['*'], allow: [] });

  t.is((await cli('maintenance', 'on', FILE, '--app', 'hello', '--retry-after', '5')).code, 0);
  t.deepEqual(Object.keys(record()!.modes).sort(), ['*', 'hello']);
  t.deepEqual(files().modes, ['*', 'hello']);
  const st = await cli('maintenance', 'status', FILE);
  t.is(st.code, 0, st.err);
  t.regex(st.out, /every app: read-only \(every request but GET, HEAD and OPTIONS gets 503, Retry-After 30s\)/);
  t.regex(st.out, /hello: maintenance \(every request gets 503, Retry-After 5s, allowed: none\)/);

  const offApp = await cli('maintenance', 'off', FILE, '--app', 'hello');
  t.is(offApp.code, 0, offApp.err);
  t.regex(offApp.out, /hello still follows the mode of every app \(\*: read-only\)/);
  t.deepEqual(Object.keys(record()!.modes), ['*']);
  t.deepEqual(files().modes, ['*']);

  nodes.calls.length = 0;
  const off = await cli('maintenance', 'off', FILE);
  t.is(off.code, 0, off.err);
  t.regex(off.out, /every app: back to normal\nno maintenance or read-only mode: every app online/);
  t.deepEqual(record(), { seq: 5, modes: {}, allow: [] });
  t.deepEqual(files(), { modes: [], allow: [] });
  t.deepEqual(balancerCalls().filter((v) => v.startsWith('mode ')), ['mode clear --all', 'mode allow']);
});

test('silver status shows the modes, one line per key; its JSON carries them', async (t) => {
  const { cli, ns, rt } = await setup();
  t.is((await cli('maintenance', 'on', FILE, '--message', 'Moving house')).code, 0);
  t.is((await cli('maintenance', 'on', FILE, '--app', 'hello', '--read-only')).code, 0);
  const r = await status(ns, rt);
  t.deepEqual(Object.keys(r.modes!.record.modes), ['*', 'hello']);
  t.true(r.modes!.balancers[0]!.same);
  const text = renderStatus(r);
  t.regex(text, /^mode: every app: maintenance \(every request gets 503, Retry-After 30s, allowed: none\): "Moving house"$/m);
  t.regex(text, /^mode: hello: read-only \(every request but GET, HEAD and OPTIONS gets 503, Retry-After 30s\): /m);
  t.is((await cli('maintenance', 'off', FILE)).code, 0);
  t.regex(renderStatus(await status(ns, rt)), /^modes: online \(no maintenance or read-only mode\)$/m);
});

test('bad input exits 2 before anything changes: no record, no balancer call', async (t) => {
  const { cli, nodes, balancerCalls } = await setup();
  const cases: [string[], RegExp][] = [
    [['maintenance', 'up', FILE], /maintenance takes on, off or status, not "up"/],
    [['maintenance', 'on', FILE, '--app', 'nosuch'], /app "nosuch" is not in the locations of \/n\/shop\.conf \(it serves: hello\)/],
    [['maintenance', 'off', FILE, '--app', 'nosuch'], /app "nosuch" is not in the locations/],
    [['maintenance', 'on', FILE, '--allow', '10.0.0.1/24'], /--allow "10\.0\.0\.1\/24" has host bits set/],
    [['maintenance', 'on', FILE, '--allow', 'example.com'], /--allow "example\.com" is not an address or CIDR network/],
    [['maintenance', 'on', FILE, '--retry-after', '0'], /--retry-after must be a whole number from 1 to 86400, got "0"/],
    [['maintenance', 'on', FILE, '--retry-after', '86401'], /--retry-after must be/],
    [['maintenance', 'on', FILE, '--retry-after', '3s'], /--retry-after must be/],
    [['maintenance', 'on', FILE, '--message', ''], /--message: the message has 0 characters/],
    [['maintenance', 'on', FILE, '--message', 'x'.repeat(1001)], /--message: the message has 1001 characters; it must have 1 to 1000/],
    [['maintenance', 'on', FILE, '--message', 'bell \u0007'], /--message: the message holds a control character \(U\+0007\)/],
    [['maintenance', 'off', FILE, '--read-only'], /--read-only: only with maintenance on/],
    [['maintenance', 'off', FILE, '--allow', '10.0.0.0/8'], /--allow: only with maintenance on/],
    [['maintenance', 'status', FILE, '--app', 'hello'], /--app: only with maintenance on or off/],
    [['maintenance', 'on', 'shop'], /is not a nodeset file/],
  ];
  for (const [args, re] of cases) {
    const r = await cli(...args);
    t.is(r.code, 2, `${args.join(' ')}: ${r.err}`);
    t.regex(r.err, re, args.join(' '));
  }
  t.deepEqual(balancerCalls(), []);
  t.false(nodes.calls.some((c) => c.argv.includes('put')), 'no record written');
});

test('a nodeset without a balancer: exit 2, nothing changed', async (t) => {
  const { cli, nodes } = await setup('[general]\nname = shop\nbase_domain = shop.test\n[appserver]\nlocations = http://shop.test/ hello\n');
  const r = await cli('maintenance', 'on', FILE);
  t.is(r.code, 2);
  t.regex(r.err, /nodeset shop has no balancer: maintenance and read-only modes live on the balancer/);
  t.false(nodes.calls.some((c) => c.argv.includes('put')));
  t.is((await cli('maintenance', 'status', FILE)).code, 2);
});

test('a balancer that fails or cannot be reached: exit 1, the report names it; the record holds the change, so the same command settles it', async (t) => {
  const { cli, nodes, record, files } = await setup();
  nodes.failWhen = (c) => (c.node === BALANCER && c.argv[3] === 'mode' && c.argv[4] === 'set' ? 'silver-balancer: haproxy refused add map: out of memory' : null);
  const r = await cli('maintenance', 'on', FILE, '--json');
  t.is(r.code, 1);
  const report = JSON.parse(r.out) as { ok: boolean; error: string; modes: { balancers: { node: string; error?: string }[] } };
  t.false(report.ok);
  t.regex(report.error, /balancer\.shop\.test does not \(silver-balancer mode set: silver-balancer: haproxy refused add map: out of memory\); run the same command again once it answers/);
  t.regex(report.modes.balancers[0]!.error!, /haproxy refused add map/);
  t.is(record()!.modes['*']!.mode, 'maintenance');
  const text = await cli('maintenance', 'on', FILE);
  t.regex(text.out, /^FAILED: the nodeset's record has the change, but balancer\.shop\.test does not/m);

  nodes.failWhen = () => null;
  nodes.down.add(BALANCER);
  const down = await cli('maintenance', 'on', FILE);
  t.is(down.code, 1);
  t.regex(down.out, /balancer\.shop\.test does not \(.*connection refused\)/);
  const st = await cli('maintenance', 'status', FILE);
  t.regex(st.out, /balancer\.shop\.test: .*connection refused/);

  nodes.down.delete(BALANCER);
  const settled = await cli('maintenance', 'on', FILE);
  t.is(settled.code, 0, settled.out + settled.err);
  t.deepEqual(files().modes, ['*']);
});

test('balancers with another version of the helper are refused before anything changes, naming setup-node', async (t) => {
  const { cli, real, nodes } = await setup();
  real.stale = true;
  const r = await cli('maintenance', 'on', FILE);
  t.is(r.code, 1);
  t.regex(r.err, /the balancers are not set up for this version of silver: balancer\.shop\.test; run silver setup-node \/n\/shop\.conf first/);
  t.false(nodes.calls.some((c) => c.argv.includes('put')));
});

test('maintenance works while another run holds the deploy lock (an update calls it itself)', async (t) => {
  const { cli, nodes, files } = await setup();
  for (const n of ['app1.shop.test', 'app2.shop.test', 'db.shop.test', BALANCER]) {
    const st = nodes.state.get(n) ?? new Map<string, string>();
    nodes.state.set(n, st);
    st.set('lock', `feedfacefeedfacefeedfacefeedface ${b64('someone@else pid 1: update hello')}`);
  }
  t.is((await cli('maintenance', 'on', FILE, '--app', 'hello')).code, 0);
  t.deepEqual(files().modes, ['hello']);
  t.true([...nodes.state.values()].every((s) => s.get('lock')!.startsWith('feedface')), 'the lock is untouched');
});

test('the API: applyMode keeps the allow list unless given, clearMode(app) and clearMode(null); readModes sees a balancer that differs from the record', async (t) => {
  const { ns, rt, real } = await setup();
  const s = await Session.open(ns, rt);
  try {
    let v = await applyMode(s, { app: null, mode: 'maintenance', allow: ['10.1.0.0/16'] });
    t.deepEqual(v.record.allow, ['10.1.0.0/16']);
    v = await applyMode(s, { app: 'hello', mode: 'read-only', retryAfter: 12, message: 'hello migrates' });
    t.deepEqual(v.record, { modes: { '*': { mode: 'maintenance', retryAfter: 30, message: DEFAULT_MESSAGE }, hello: { mode: 'read-only', retryAfter: 12, message: 'hello migrates' } }, allow: ['10.1.0.0/16'] });
    t.true(v.balancers.every((b) => b.same && b.error === undefined));
    // Put back what was there (an update's migrate_mode): the entry, or none.
    const before = (await readModes(s)).record.modes['hello'];
    v = await applyMode(s, { app: 'hello', mode: 'maintenance' });
    v = before ? await applyMode(s, { app: 'hello', ...before }) : await clearMode(s, 'hello');
    t.deepEqual(v.record.modes['hello'], before);
    v = await clearMode(s, 'hello');
    t.deepEqual(Object.keys(v.record.modes), ['*']);
    // The balancer's files changed behind silver's back: readModes says it differs.
    writeFileSync(real.tree.modes, '');
    const seen = await readModes(s);
    t.false(seen.balancers[0]!.same);
    t.deepEqual(seen.balancers[0]!.state!.modes, {});
    await t.throwsAsync(applyMode(s, { app: 'nosuch', mode: 'maintenance' }), { message: /app "nosuch" is not in the locations/ });
    v = await clearMode(s, null);
    t.deepEqual(v.record, { modes: {}, allow: [] });
    t.true(v.balancers[0]!.same);
  } finally {
    await s.close();
  }
  t.true(new ModeError('x', { record: { modes: {}, allow: [] }, seq: 0, balancers: [] }) instanceof Error);
});

test('setup-node hands the balancer layer the nodeset\'s record, checked: only the nodeset\'s apps or *, only addresses that parse', async (t) => {
  const { ns, rt, nodes, real } = await setup();
  const hostile = JSON.stringify({
    seq: 3,
    modes: { '*': { mode: 'maintenance', retryAfter: 30, message: 'Back soon' }, hello: { mode: 'read-only', retryAfter: 5, message: 'ro' }, evil: { mode: 'maintenance', retryAfter: 30, message: 'x' }, 'x y': { mode: 'maintenance', retryAfter: 1, message: 'x' } },
    allow: ['10.213.248.1/32', "'; reboot; '"],
  });
  for (const n of ['app1.shop.test', 'app2.shop.test', 'db.shop.test', BALANCER]) {
    const st = nodes.state.get(n) ?? new Map<string, string>();
    nodes.state.set(n, st);
    st.set('maintenance', hostile);
  }
  await setupNodes(ns, rt, { dryRun: false, concurrency: 4 });
  const script = real.scripts.get(BALANCER)!;
  t.truthy(script);
  t.true(script.includes(`SILVER_MODES='*:maintenance:30:${b64('Back soon')} hello:read-only:5:${b64('ro')}'`), script.match(/SILVER_MODES=.*/)?.[0]);
  t.regex(script, /^SILVER_ALLOW=10\.213\.248\.1\/32$/m);
  t.true(script.includes("SILVER_MODES_SUMMARY='*: maintenance, hello: read-only'"));
  t.false(script.split('\n').some((l) => /^SILVER_/.test(l) && /reboot|evil/.test(l)), 'the hostile entries reach no variable');
  // The app servers' firewall: port 80 from the nodeset's nodes.
  t.regex(real.scripts.get('app1.shop.test')!, /SILVER_BALANCED='?1'?\n/);
});
