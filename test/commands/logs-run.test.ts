import test from 'ava';
import { formatLogLine, logs, parseJournalLine, parseSince, type LogLine } from '../../src/commands/logs.js';
import { runInApp } from '../../src/commands/run.js';
import { ExitError } from '../../src/diagnostics.js';
import { quoteCommand } from '../../src/ssh/quote.js';
import { fakeDeploy } from '../helpers/fake-nodes.js';

const A1 = 'app1.shop.test';
const A2 = 'app2.shop.test';
const line = (t: number, msg: string, inst = 'hello.2026-12-02_001', cursor = `s=ab;i=${t.toString(16)}`) =>
  JSON.stringify({ __REALTIME_TIMESTAMP: String(t), __CURSOR: cursor, MESSAGE: msg, PRIORITY: '6', SILVER_INSTANCE: inst, _SYSTEMD_UNIT: `silver-${inst}.service` });
const stopsReady = (nodes: { calls: { argv: string[] }[] }) => nodes.calls.filter((c) => c.argv.includes('follow')).length >= 2;
const after = (argv: string[]) => argv.slice(argv.findIndex((a) => a.startsWith('/usr/local/lib/silverlining/bin/')) + 1);

test('logs: the lines of every app server merged in time order, each with its node and instance; -n counts over all', async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  nodes.journal.set(A1, [line(1_000, 'one'), line(3_000, 'three')]);
  nodes.journal.set(A2, [line(2_000, 'two', 'hello.2026-12-02_002'), line(4_000, 'four')]);
  const got: LogLine[] = [];
  await logs(ns, 'hello', rt, { since: null, lines: 3, follow: false, write: (l) => got.push(l) });
  t.deepEqual(got.map((l) => [l.node, l.source, l.message]), [[A2, 'hello.2026-12-02_002', 'two'], [A1, 'hello.2026-12-02_001', 'three'], [A2, 'hello.2026-12-02_001', 'four']]);
  t.deepEqual(nodes.verbs(A1, 'silver-logs'), ['3 - once'].map((v) => `hello ${v}`));
  t.deepEqual(nodes.verbs('db.shop.test', 'silver-logs'), [], 'only app servers hold app logs');
  t.is(formatLogLine(got[0]!), `1970-01-01 00:00:00.002 ${A2} hello.2026-12-02_002: two`);
});

test("logs silver: silver's own steps from every node; --node and --since narrow it", async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  await logs(ns, 'silver', rt, { since: 1764669600, lines: 10, follow: false, write: () => undefined });
  t.deepEqual(nodes.verbs(undefined, 'silver-logs').sort(), ['app1.shop.test', 'app2.shop.test', 'balancer.shop.test', 'db.shop.test'].map((n) => `${n} silver 10 1764669600 once`));
  await t.throwsAsync(logs(ns, 'hello', rt, { node: 'db.shop.test', since: null, lines: 1, follow: false, write: () => undefined }), { message: /not an app server/ });
  await t.throwsAsync(logs(ns, 'nope', rt, { since: null, lines: 1, follow: false, write: () => undefined }), { message: /not in the locations/ });
  const now = Date.parse('2026-12-02T10:00:00Z');
  t.is(parseSince('10m', now), now / 1000 - 600);
  t.is(parseSince('2026-12-02T09:00:00Z', now), now / 1000 - 3600);
  const e = t.throws(() => parseSince('yesterday', now));
  t.true(e instanceof ExitError && e.exitCode === 2);
  t.is(parseJournalLine(A1, 'not json'), null);
  t.is(parseJournalLine(A1, JSON.stringify({ __REALTIME_TIMESTAMP: '5', __CURSOR: 'c', MESSAGE: [104, 105] }))!.line.message, 'hi', 'binary messages are decoded');
});

test('logs -f: every node followed from the cursor of its last line shown, all ended by one Ctrl-C', async (t) => {
  const { ns, rt, nodes, signal } = await fakeDeploy();
  nodes.journal.set(A1, [line(1_000, 'old', undefined, 's=ab;i=1')]);
  const stops: string[] = [];
  nodes.attachAnswer = (call, opts) => {
    let end: (code: number) => void = () => undefined;
    const done = new Promise<number>((r) => (end = r));
    setTimeout(() => opts.onStdout(Buffer.from(`${line(9_000, `new on ${call.node}`, 'hello.2026-12-02_003')}\n`)), 5);
    return { done, stop: () => (stops.push(call.node), end(130)) };
  };
  const got: string[] = [];
  const following = logs(ns, 'hello', rt, { since: null, lines: 5, follow: true, write: (l) => got.push(`${l.node} ${l.source} ${l.message}`) });
  // (Ctrl-C once both nodes are followed and have sent their line: a loaded machine may take a while)
  for (let i = 0; i < 500 && !(stopsReady(nodes) && got.length >= 3); i++) await new Promise((r) => setTimeout(r, 10));
  signal('SIGINT');
  await following;
  t.deepEqual(stops.sort(), [A1, A2]);
  t.deepEqual(got.slice(0, 1), [`${A1} hello.2026-12-02_001 old`]);
  t.true(got.includes(`${A2} hello.2026-12-02_003 new on ${A2}`), 'a new instance is followed too');
  const follows = nodes.calls.filter((c) => c.argv.includes('follow')).map((c) => `${c.node} ${after(c.argv).join(' ')}`).sort();
  t.deepEqual(follows, [`${A1} hello 0 cursor:s=ab;i=1 follow`, `${A2} hello 0 ${Date.parse('2026-12-02T10:00:00Z') / 1000} follow`]);
});

test("run: the command as argv on the primary in the app's instance — staged on standard input, on no command line — its output streamed and its exit code passed through", async (t) => {
  const { ns, rt, nodes } = await fakeDeploy();
  nodes.attachAnswer = (_call, opts) => {
    opts.onStdout(Buffer.from('migrated\n'));
    opts.onStderr(Buffer.from('warning\n'));
    return { done: Promise.resolve(3), stop: () => undefined };
  };
  const out: string[] = [];
  const err: string[] = [];
  const argv = ['python3', 'manage.py', 'migrate', "--name=it's; rm -rf /"];
  const code = await runInApp(ns, 'hello', argv, rt, { tty: false, stdin: null, stdout: (b) => out.push(b.toString()), stderr: (b) => err.push(b.toString()) });
  t.is(code, 3);
  t.deepEqual([out.join(''), err.join('')], ['migrated\n', 'warning\n']);
  const call = nodes.calls.find((c) => c.argv.includes('run'))!;
  t.is(call.node, A1);
  // (the command on standard input first, kept on the node: on no command line, in no journal)
  const stage = nodes.calls.find((c) => c.argv.includes('run-stage'))!;
  t.deepEqual([stage.node, after(stage.argv)], [A1, ['run-stage', 'hello']]);
  t.is(nodes.runStaged.get('r.0000000000'), `${quoteCommand(argv)}\n`);
  t.deepEqual(after(call.argv), ['run', 'hello', 'pipe', 'r.0000000000']);
  t.false(nodes.calls.some((c) => c.argv.join(' ').includes('manage.py') || c.argv.join(' ').includes(Buffer.from(quoteCommand(argv)).toString('base64'))), 'the command is on no command line');
  await runInApp(ns, 'hello', ['sh'], rt, { node: A2, tty: true, stdin: null, stdout: () => undefined, stderr: () => undefined });
  const tty = nodes.calls.filter((c) => c.argv.includes('run')).at(-1)!;
  t.deepEqual([tty.node, after(tty.argv)[2]], [A2, 'tty']);
  for (const bad of [() => runInApp(ns, 'nope', ['x'], rt, { tty: false, stdin: null, stdout: () => undefined, stderr: () => undefined }), () => runInApp(ns, 'hello', [], rt, { tty: false, stdin: null, stdout: () => undefined, stderr: () => undefined }), () => runInApp(ns, 'hello', ['x'], rt, { node: 'db.shop.test', tty: false, stdin: null, stdout: () => undefined, stderr: () => undefined })]) {
    const e = await t.throwsAsync(bad());
    t.true(e instanceof ExitError && e.exitCode === 2);
  }
});

test("logs: a line's source is the unit journald recorded, never a field the app set; escape sequences reach no terminal", (t) => {
  const forged = JSON.stringify({ __REALTIME_TIMESTAMP: '7', __CURSOR: 'c', MESSAGE: 'x\u001b]0;owned\u0007\u001b[2Jy\ttab', SILVER_INSTANCE: 'other.2026-12-02_001', _SYSTEMD_UNIT: 'silver-hello.2026-12-02_003.service' });
  const p = parseJournalLine(A1, forged)!;
  t.is(p.line.source, 'hello.2026-12-02_003');
  t.is(formatLogLine(p.line), `1970-01-01 00:00:00.000 ${A1} hello.2026-12-02_003: x\\x1b]0;owned\\x07\\x1b[2Jy\ttab`);
});
