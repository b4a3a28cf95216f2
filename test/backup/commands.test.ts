import test from 'ava';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseManifest } from '../../src/backup/manifest.js';
import { listBackups, pruneBackups } from '../../src/backup/store.js';
import { ageText, backupAges, backupsLine } from '../../src/backup/record.js';
import { fetchStaged } from '../../src/backup/transfer.js';
import { main } from '../../src/cli.js';
import { backup, restore, verifyBackups } from '../../src/commands/backup.js';
import { renderStatus, status } from '../../src/commands/status.js';
import { Remote } from '../../src/remote/executor.js';
import { memoryIo } from '../../src/output/io.js';
import { postgresql } from '../../src/services/postgresql.js';
import type { ExecResult } from '../../src/ssh/connect.js';
import { fakeDeploy, FakeNodes, type Call } from '../helpers/fake-nodes.js';

// silver backup, backups, restore and backup --verify on simulated nodes
// (test/helpers/fake-nodes.ts answers the silver-db-* verbs as the helpers do): the exact verbs
// each node gets, what is kept on this machine, the nodes' record, and every failure path.

const NODESET = `[general]
name = shop
base_domain = shop.test
[appserver]
nodes = 2
locations =
    http://shop.test/ hello
    http://blog.shop.test/ my-blog
    http://static.shop.test/ plain
[service:postgresql]
node_name = db.shop.test
[service:mysql]
node_name = mysql.shop.test
[balancer]
`;
const DB = 'db.shop.test';
const MY = 'mysql.shop.test';
const LB = 'balancer.shop.test';
const ID = /^[a-z0-9]{12}$/;

async function setup(text = NODESET) {
  const d = await fakeDeploy(text);
  d.nodes.database(DB, 'hello', { 'public.visits': 3, 'public.fetches': 2 });
  if (text.includes('service:mysql')) d.nodes.database(MY, 'my_blog', { posts: 4, tags: 0 });
  const base = join(d.rt.state.root, 'backups', 'shop');
  return { ...d, base };
}

/** silver ARGS through the CLI: exit code and output. */
async function cli(d: Awaited<ReturnType<typeof setup>>, args: string[]) {
  const io = memoryIo();
  const code = await main(args, { io, host: d.rt.host, runtime: { ...d.rt, io } });
  return { code, out: io.stdout.join('\n'), err: io.stderr.join('\n') };
}

/** The silver-db verbs a node got, without sudo and the helper path, ids and suffixes as X. */
const dbVerbsOf = (nodes: FakeNodes, node: string, helper = 'silver-db-postgresql') =>
  nodes.verbs(node, helper).map((v) => v.replace(/\b[a-f0-9]{12}\b/g, 'ID').replace(/_[a-f0-9]{8}\b/g, '_X').replace(/\b[a-f0-9]{64}\b/g, 'SHA'));

const stateOn = (nodes: FakeNodes, node: string, key: string) => JSON.parse(nodes.state.get(node)!.get(key)!) as Record<string, unknown>;

test('backup: each app with a database, dumped on its node, read off in pieces, kept with its manifest; the nodes record it', async (t) => {
  const d = await setup();
  const r = await backup(d.ns, d.rt);
  t.true(r.ok, JSON.stringify(r));
  t.deepEqual(r.backups.map((b) => [b.app, b.service, b.database, b.ok, b.stamp]), [
    ['hello', 'postgresql', 'hello', true, '20261202T100000Z'],
    ['my-blog', 'mysql', 'my_blog', true, '20261202T100000Z'],
  ]);
  // Exactly these verbs, in this order, on each service node: the staged file is always forgotten.
  const size = FakeNodes.fakeDump('silver-db-postgresql', { 'public.visits': 3, 'public.fetches': 2 }).length;
  t.deepEqual(dbVerbsOf(d.nodes, DB), ['list', 'dump hello ID', `get ID 0 ${size}`, 'forget ID']);
  t.deepEqual(dbVerbsOf(d.nodes, MY, 'silver-db-mysql').map((v) => v.replace(/ \d+$/, ' N')), ['list', 'dump my_blog ID', 'get ID 0 N', 'forget ID']);
  const ids = d.nodes.verbs(DB, 'silver-db-postgresql').filter((v) => v.startsWith('dump')).map((v) => v.split(' ')[2]!);
  t.regex(ids[0]!, ID);
  t.deepEqual([...(d.nodes.staged.get(DB)?.keys() ?? [])], [], 'nothing stays staged');

  const dir = join(d.base, 'hello', '20261202T100000Z');
  t.deepEqual(readdirSync(dir).sort(), ['hello.pgdump', 'manifest.json']);
  const m = parseManifest(readFileSync(join(dir, 'manifest.json'), 'utf8'));
  t.like(m, { nodeset: 'shop', app: 'hello', service: 'postgresql', database: 'hello', node: DB, file: 'hello.pgdump', size, rowCountsFrom: 'snapshot', silverVersion: '0.1.0', serverVersion: '15.0 (fake)', tool: 'fake dump 1.0', time: '2026-12-02T10:00:00.000Z' });
  t.deepEqual(m.rowCounts, { 'public.visits': 3, 'public.fetches': 2 });
  t.deepEqual(readFileSync(join(dir, 'hello.pgdump')), FakeNodes.fakeDump('silver-db-postgresql', { 'public.visits': 3, 'public.fetches': 2 }));
  // MariaDB: the rows counted in the dump as it arrived.
  const my = parseManifest(readFileSync(join(d.base, 'my-blog', '20261202T100000Z', 'manifest.json'), 'utf8'));
  t.like(my, { app: 'my-blog', service: 'mysql', database: 'my_blog', file: 'my-blog.sql', rowCountsFrom: 'dump' });
  t.deepEqual(my.rowCounts, { posts: 4, tags: 0 });
  // The nodes' record, on every node.
  for (const n of d.ns.nodes) {
    const rec = stateOn(d.nodes, n.name, 'backups') as { apps: Record<string, { lastBackup: string; lastBackupStamp: string; lastVerified: string | null }> };
    t.deepEqual(rec.apps['hello'], { lastBackup: '2026-12-02T10:00:00.000Z', lastBackupStamp: '20261202T100000Z', lastVerified: null, verifiedStamp: null, verifyOk: false, verifySeconds: null });
    t.truthy(rec.apps['my-blog']);
    t.is(rec.apps['plain'], undefined, 'an app without a database has no backup');
  }
});

test('backup: the database of an app taken out of the file (an orphan) is backed up too, said so, and --app names it; a name neither there nor on a node is a bad input', async (t) => {
  const d = await setup();
  d.nodes.database(DB, 'old_shop', { 'public.orders': 7 });
  d.nodes.database(MY, 'old_wiki', { pages: 2 });
  const r = await cli(d, ['backup', '/n/shop.conf', '--json']);
  t.is(r.code, 0, r.err);
  const report = JSON.parse(r.out) as { backups: { app: string; database: string; ok: boolean; orphan?: boolean }[]; notes: string[] };
  t.deepEqual(report.backups.map((b) => [b.app, b.database, b.ok, b.orphan ?? false]), [
    ['hello', 'hello', true, false],
    ['old_shop', 'old_shop', true, true],
    ['my-blog', 'my_blog', true, false],
    ['old_wiki', 'old_wiki', true, true],
  ]);
  t.regex(r.err, /^db\.shop\.test: old_shop: old_shop backed up \(an app no longer in the locations: its database is still there\)/m);
  t.true(report.notes.some((n) => /^old_shop: not in the locations of \/n\/shop\.conf; its postgresql database on db\.shop\.test is backed up/.test(n)), report.notes.join('\n'));
  t.deepEqual(parseManifest(readFileSync(join(d.base, 'old_shop', '20261202T100000Z', 'manifest.json'), 'utf8')).rowCounts, { 'public.orders': 7 });
  // (the app of a location matches its database by the service's name for it: my-blog is my_blog, no orphan)
  t.false(report.backups.some((b) => b.app === 'my_blog'));

  const one = await backup(d.ns, d.rt, { app: 'old_shop' });
  t.deepEqual(one.backups.map((b) => [b.app, b.orphan]), [['old_shop', true]]);
  // Its backups are listed and verified by its name too; a verification is said, not recorded.
  const listed = await cli(d, ['backups', '/n/shop.conf', '--app', 'old_shop', '--json']);
  t.is(listed.code, 0, listed.err);
  t.deepEqual((JSON.parse(listed.out) as { app: string }[]).map((b) => b.app), ['old_shop', 'old_shop']);
  const verified = await cli(d, ['backup', '--verify', '/n/shop.conf', '--app', 'old_shop', '--json']);
  t.is(verified.code, 0, verified.err);
  const vr = JSON.parse(verified.out) as { results: { app: string; ok: boolean }[]; notes: string[] };
  t.deepEqual(vr.results.map((r) => [r.app, r.ok]), [['old_shop', true]]);
  t.true(vr.notes.some((n) => n.startsWith('old_shop: not in the locations of /n/shop.conf (an orphan\'s backup): verified, not recorded')), vr.notes.join(' | '));
  t.is((stateOn(d.nodes, DB, 'backups') as { apps: Record<string, { lastVerified: string | null }> }).apps['old_shop']?.lastVerified ?? null, null, 'not recorded as verified');
  const none = await cli(d, ['backup', '/n/shop.conf', '--app', 'nosuch']);
  t.is(none.code, 2);
  t.regex(none.err, /app "nosuch" is not in the locations of \/n\/shop\.conf \(it serves: /);
  const bad = await cli(d, ['backup', '/n/shop.conf', '--app', 'Bad;name']);
  t.is(bad.code, 2);
});

test('attack: a node that names databases no app could have (a path, nothing, another service\'s name clash) gets none of them backed up: named, exit 1, nothing written outside the backups, no other backup pruned', async (t) => {
  const d = await setup();
  await backup(d.ns, d.rt, { app: 'hello' });
  for (const bad of ['../../escape', '', 'Bad', 'my-blog']) d.nodes.database(DB, bad, { 'public.x': 1 });
  d.nodes.database(DB, 'old_x', { 'public.x': 1 });
  d.nodes.database(MY, 'old_x', { x: 1 });
  const r = await cli(d, ['backup', '/n/shop.conf', '--keep', '1', '--json']);
  t.is(r.code, 1, r.err);
  const report = JSON.parse(r.out) as { backups: { app: string; service: string; ok: boolean }[]; notes: string[]; pruned: string[] };
  // (a PostgreSQL database named for an app of the file is that app's, as ever: my-blog has two services now)
  t.deepEqual(report.backups.map((b) => `${b.service} ${b.app} ${b.ok}`), ['postgresql hello true', 'postgresql my-blog true', 'postgresql old_x true', 'mysql my-blog true']);
  for (const bad of ['"../../escape"', '""', '"Bad"']) t.true(report.notes.some((n) => n.includes(`a postgresql database named ${bad} is no app's: not backed up`)), `${bad}: ${report.notes.join(' | ')}`);
  t.true(report.notes.some((n) => n.includes('the mysql database old_x has the name of another app\'s backups')));
  t.false(existsSync(join(d.rt.state.root, 'escape.pgdump')) || existsSync(join(d.rt.state.root, 'escape')), 'nothing outside the backups folder');
  t.deepEqual(readdirSync(d.base).sort(), ['hello', 'my-blog', 'old_x']);
  t.is(listBackups(join(d.rt.state.root, 'backups'), 'shop', 'hello').length, 1, 'hello keeps its newest: no name prunes another app\'s');
  // (my-blog keeps one backup of each of its services)
  t.deepEqual(listBackups(join(d.rt.state.root, 'backups'), 'shop', 'my-blog').map((b) => b.manifest!.service).sort(), ['mysql', 'postgresql']);
  t.throws(() => listBackups(join(d.rt.state.root, 'backups'), 'shop', ''), { message: /not an app's name for a backup folder: ""/ });
});

test('backup --pull: the scheduled dumps of an orphan\'s database are pulled under its name, said so; a name no app could have is named, not pulled, exit 1', async (t) => {
  const d = await setup();
  const STAMP = '20261202T090000Z';
  const dumps = new Map([['hello', FakeNodes.fakeDump('silver-db-postgresql', { 'public.visits': 3 })], ['old_shop', FakeNodes.fakeDump('silver-db-postgresql', { 'public.orders': 7 })], ['../x', FakeNodes.fakeDump('silver-db-postgresql', { 'public.x': 1 })]]);
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  let n = 0;
  d.nodes.answerOther = (c) => {
    if (c.node !== DB || !c.argv[2]?.endsWith('/silver-backup')) return c.argv[2]?.endsWith('/silver-backup') ? { code: 0, stdout: '', stderr: '' } : null;
    if (c.argv[3] === 'list') return { code: 0, stdout: [...dumps].map(([db, b]) => `backup ${db} ${STAMP} ${b.length} ${sha(b)}\n`).join(''), stderr: '' };
    if (c.argv[3] === 'stage') {
      const b = dumps.get(c.argv[4]!)!;
      const id = `${String(n++).padStart(12, 'a')}`;
      if (!d.nodes.staged.has(DB)) d.nodes.staged.set(DB, new Map());
      d.nodes.staged.get(DB)!.set(id, b);
      return { code: 0, stdout: `id ${id}\ntime 2026-12-02T09:00:00Z\nfile ${b.length} ${sha(b)}\nserver 15.0 (fake)\ntool fake dump 1.0\ncounts ${b.toString('latin1').split('\n')[1]}\n`, stderr: '' };
    }
    return null;
  };
  const r = await cli(d, ['backup', '--pull', '/n/shop.conf', '--json']);
  t.is(r.code, 1, r.err);
  const report = JSON.parse(r.out) as { backups: { app: string; ok: boolean; orphan?: boolean; stamp: string }[]; notes: string[] };
  t.deepEqual(report.backups.map((b) => [b.app, b.ok, b.orphan ?? false, b.stamp]), [['hello', true, false, STAMP], ['old_shop', true, true, STAMP]]);
  t.true(report.notes.some((x) => x.startsWith('old_shop: not in the locations of /n/shop.conf; the scheduled backups of its postgresql database are pulled all the same')), report.notes.join(' | '));
  t.true(report.notes.some((x) => x.includes('a postgresql database named "../x" is no app\'s: its scheduled backups not pulled')), report.notes.join(' | '));
  t.deepEqual(readdirSync(d.base).sort(), ['hello', 'old_shop']);
  t.deepEqual(parseManifest(readFileSync(join(d.base, 'old_shop', STAMP, 'manifest.json'), 'utf8')).rowCounts, { 'public.orders': 7 });
  t.false(existsSync(join(d.rt.state.root, 'backups', 'x')), 'nothing written for the name that is a path');
});

test('--keep N keeps N backups of each service of an app (one with a PostgreSQL and a MariaDB database loses neither)', (t) => {
  const base = mkdtempSync(join(tmpdir(), 'silver-keep-'));
  const write = (stamp: string, svc: string) => {
    const dir = join(base, 'shop', 'both', stamp);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ format: 1, nodeset: 'shop', app: 'both', service: svc, database: 'both', node: 'n', stamp, file: 'f', size: 0, sha256: 'a'.repeat(64), rowCounts: {}, rowCountsFrom: 'dump', silverVersion: '0', serverVersion: '0', tool: '0', time: '2026-12-02T10:00:00.000Z', seconds: 0 }));
    writeFileSync(join(dir, 'f'), '');
  };
  write('20261201T100000Z', 'postgresql');
  write('20261202T100000Z', 'postgresql');
  write('20261202T100002Z', 'mysql');
  t.deepEqual(pruneBackups(base, 'shop', 'both', 1, undefined, 'postgresql').map((p) => p.split('/').pop()), ['20261201T100000Z']);
  t.deepEqual(pruneBackups(base, 'shop', 'both', 1, undefined, 'mysql'), []);
  t.deepEqual(readdirSync(join(base, 'shop', 'both')).sort(), ['20261202T100000Z', '20261202T100002Z']);
  rmSync(base, { recursive: true, force: true });
});

test('the dump is read in pieces of the asked size, each piece at its offset, the bytes as staged', async (t) => {
  const nodes = new FakeNodes();
  const data = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 7) % 256));
  nodes.staged.set(DB, new Map([['0123456789ab', data]]));
  const got: Buffer[] = [];
  const r = await fetchStaged(new Remote(nodes), DB, postgresql, '0123456789ab', data.length, (c) => got.push(c), 300);
  t.deepEqual(Buffer.concat(got), data);
  t.is(r.size, 1000);
  t.deepEqual(nodes.verbs(DB, 'silver-db-postgresql'), ['get 0123456789ab 0 300', 'get 0123456789ab 300 300', 'get 0123456789ab 600 300', 'get 0123456789ab 900 100']);
});

test('a dump that fails on its node (a stopped database): exit 1, named, nothing kept, the other app backed up, only it recorded', async (t) => {
  const d = await setup();
  d.nodes.failWhen = (c) => (c.node === DB && c.argv[3] === 'dump' ? 'psql: error: connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" failed: No such file or directory\nsilver-db-postgresql: the dump of hello failed' : null);
  const r = await cli(d, ['backup', '/n/shop.conf']);
  t.is(r.code, 1);
  t.regex(r.out, /^hello: backup of postgresql database hello FAILED: db\.shop\.test: the dump of hello: .*connection to server .* failed/m);
  t.regex(r.out, /^my-blog: mysql database my_blog -> .*my-blog\/20261202T100000Z/m);
  t.regex(r.out, /1 of 2 backups FAILED/);
  t.false(existsSync(join(d.base, 'hello')) && readdirSync(join(d.base, 'hello')).length > 0, 'no folder, no .partial');
  t.regex((await cli(d, ['backups', '/n/shop.conf'])).out, /^my-blog\s+20261202T100000Z\s+mysql/m);
  t.notRegex((await cli(d, ['backups', '/n/shop.conf'])).out, /^hello/m);
  t.deepEqual(dbVerbsOf(d.nodes, DB), ['list', 'dump hello ID', 'forget ID']);
  const rec = stateOn(d.nodes, LB, 'backups') as { apps: Record<string, unknown> };
  t.deepEqual(Object.keys(rec.apps), ['my-blog']);
});

test('a dump damaged on the way (its sha256 differs from the node\'s) or empty is a failure, nothing kept', async (t) => {
  const d = await setup(NODESET.replace(/\[service:mysql\][^[]*/, ''));
  d.nodes.onCall = (c: Call) => {
    if (c.argv[3] === 'get') {
      const f = d.nodes.staged.get(DB)!.get(c.argv[4]!)!;
      f[2] = f[2]! ^ 0xff;
    }
  };
  const r = await backup(d.ns, d.rt, { app: 'hello' });
  t.false(r.ok);
  t.regex(r.backups[0]!.error!, /the dump arrived damaged \(\d+ bytes, sha256 [0-9a-f]{64}; the node's: \d+ bytes, [0-9a-f]{64}\)/);
  t.deepEqual(readdirSync(join(d.base, 'hello')), []);

  // An empty dump, as a helper that lost its data would answer.
  const e = await setup(NODESET.replace(/\[service:mysql\][^[]*/, ''));
  const empty = 'file 0 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\nserver 15\ntool pg_dump\ncounts {}\n';
  const rt = { ...e.rt, executor: async () => ({ exec: (node: string, cmd: string, stdin?: string | Buffer): Promise<ExecResult> => (/ dump hello /.test(cmd) ? Promise.resolve({ code: 0, stdout: empty, stderr: '' }) : e.nodes.exec(node, cmd, stdin)), close: async () => undefined }) };
  const r2 = await backup(e.ns, rt, { app: 'hello' });
  t.false(r2.ok);
  t.is(r2.backups[0]!.error, 'the dump is empty');
  t.deepEqual(readdirSync(join(e.base, 'hello')), []);
});

test('--app backs up one app; an app outside the locations is exit 2; an app without a database exit 1', async (t) => {
  const d = await setup();
  const r = await backup(d.ns, d.rt, { app: 'my-blog' });
  t.deepEqual(r.backups.map((b) => b.app), ['my-blog']);
  t.deepEqual(dbVerbsOf(d.nodes, DB), ['list']);
  const bad = await cli(d, ['backup', '/n/shop.conf', '--app', 'nope']);
  t.is(bad.code, 2);
  t.regex(bad.err, /app "nope" is not in the locations of \/n\/shop\.conf/);
  const none = await cli(d, ['backup', '/n/shop.conf', '--app', 'plain']);
  t.is(none.code, 1);
  t.regex(none.err, /plain has no database on postgresql, mysql/);
  t.is((await cli(d, ['backup', '/n/shop.conf', '--keep', '0'])).code, 2);
  const stray = await cli(d, ['backup', '/n/shop.conf', '20261202T100000Z']);
  t.is(stray.code, 2);
  t.regex(stray.err, /a backup is named only with --verify/);
});

test('--keep N keeps the newest N of each app backed up; --to DIR puts them in DIR/NODESET/APP/STAMP', async (t) => {
  const d = await setup();
  let now = Date.parse('2026-12-02T10:00:00Z');
  const rt = { ...d.rt, now: () => now };
  for (let i = 0; i < 3; i++) {
    await backup(d.ns, rt);
    now += 3600_000;
  }
  const r = await backup(d.ns, rt, { keep: 2, app: 'hello' });
  t.is(r.pruned.length, 2);
  t.deepEqual(readdirSync(join(d.base, 'hello')).sort(), ['20261202T120000Z', '20261202T130000Z']);
  t.is(readdirSync(join(d.base, 'my-blog')).length, 3, 'only the apps backed up are pruned');
  const to = join(d.rt.state.root, 'elsewhere');
  const out = await cli(d, ['backup', '/n/shop.conf', '--to', to, '--app', 'hello', '--json']);
  t.is(out.code, 0, out.err);
  const rep = JSON.parse(out.out) as { backups: { path: string }[] };
  t.is(rep.backups[0]!.path, join(to, 'shop', 'hello', '20261202T100000Z'));
  t.regex((await cli(d, ['backups', '/n/shop.conf', '--from', to])).out, /^hello\s+20261202T100000Z\s+postgresql/m);
});

test('backups lists app, stamp, service, size, rows and whether a restore verified it', async (t) => {
  const d = await setup();
  t.is((await cli(d, ['backups', '/n/shop.conf'])).out, 'no backups');
  await backup(d.ns, d.rt);
  await verifyBackups(d.ns, d.rt, { app: 'hello' });
  const r = await cli(d, ['backups', '/n/shop.conf']);
  t.is(r.code, 0);
  const lines = r.out.split('\n');
  t.regex(lines[0]!, /^APP\s+STAMP\s+SERVICE\s+SIZE\s+ROWS\s+VERIFIED$/);
  t.regex(lines[1]!, /^hello\s+20261202T100000Z\s+postgresql\s+\d+\s+5\s+yes \(0s ago\)$/);
  t.regex(lines[2]!, /^my-blog\s+20261202T100000Z\s+mysql\s+\d+\s+4\s+no$/);
  const json = JSON.parse((await cli(d, ['backups', '/n/shop.conf', '--json'])).out) as { app: string; verified: { ok: boolean } | null; sha256: string }[];
  t.deepEqual(json.map((b) => [b.app, b.verified?.ok ?? null]), [['hello', true], ['my-blog', null]]);
  t.regex(json[0]!.sha256, /^[0-9a-f]{64}$/);
});

test('verify: the latest backup of each app restored into a throw-away database, rows compared, the database dropped; recorded', async (t) => {
  const d = await setup();
  await backup(d.ns, d.rt);
  const before = d.nodes.calls.length;
  const r = await cli(d, ['backup', '--verify', '/n/shop.conf', '--json']);
  t.is(r.code, 0, r.err);
  const rep = JSON.parse(r.out) as { ok: boolean; results: { app: string; ok: boolean; checksum: boolean; scratch: string; dropped: boolean; rowCounts: object }[] };
  t.true(rep.ok);
  t.deepEqual(rep.results.map((x) => [x.app, x.ok, x.checksum, x.dropped]), [['hello', true, true, true], ['my-blog', true, true, true]]);
  t.regex(rep.results[0]!.scratch, /^silver_verify_hello_[a-f0-9]{8}$/);
  t.regex(rep.results[1]!.scratch, /^silver_verify_my_blog_[a-f0-9]{8}$/);
  const after = d.nodes.calls.slice(before);
  const verbs = (node: string) => after.filter((c) => c.node === node && c.argv[2]?.includes('silver-db-')).map((c) => c.argv.slice(3).join(' ').replace(/\b[a-f0-9]{12}\b/g, 'ID').replace(/_[a-f0-9]{8}\b/g, '_X').replace(/\b[a-f0-9]{64}\b/g, 'SHA'));
  t.deepEqual(verbs(DB), ['put ID 0', 'load hello ID silver_verify_hello_X SHA', 'drop hello silver_verify_hello_X', 'forget ID']);
  t.deepEqual(verbs(MY), ['put ID 0', 'load my_blog ID silver_verify_my_blog_X SHA', 'drop my_blog silver_verify_my_blog_X', 'forget ID']);
  t.deepEqual([...d.nodes.dbs.get(DB)!.keys()], ['hello'], 'no throw-away database is left');
  const note = JSON.parse(readFileSync(join(d.base, 'hello', '20261202T100000Z', 'verify.json'), 'utf8')) as { ok: boolean; problems: string[] };
  t.true(note.ok);
  const rec = stateOn(d.nodes, DB, 'backups') as { apps: Record<string, { verifyOk: boolean; verifiedStamp: string; lastVerified: string; verifySeconds: number }> };
  t.like(rec.apps['hello'], { verifyOk: true, verifiedStamp: '20261202T100000Z', lastVerified: '2026-12-02T10:00:00.000Z', verifySeconds: 0 });
});

test('verify: a dump whose bytes changed fails on its sha256 and is never sent', async (t) => {
  const d = await setup();
  await backup(d.ns, d.rt, { app: 'hello' });
  const file = join(d.base, 'hello', '20261202T100000Z', 'hello.pgdump');
  const data = readFileSync(file);
  data[6] = data[6]! ^ 0x55;
  writeFileSync(file, data);
  const before = d.nodes.calls.length;
  const r = await cli(d, ['backup', '--verify', '/n/shop.conf', '--app', 'hello']);
  t.is(r.code, 1);
  t.regex(r.out, /^hello: backup 20261202T100000Z verification FAILED: sha256 mismatch: hello\.pgdump has [0-9a-f]{64}, the manifest says [0-9a-f]{64}$/m);
  t.deepEqual(d.nodes.calls.slice(before).filter((c) => c.argv[2]?.includes('silver-db-')), [], 'nothing sent, nothing restored');
  const rec = stateOn(d.nodes, DB, 'backups') as { apps: Record<string, { verifyOk: boolean; verifySeconds: number | null }> };
  t.like(rec.apps['hello'], { verifyOk: false, verifySeconds: null });
  t.regex((await cli(d, ['backups', '/n/shop.conf'])).out, /^hello .* FAILED \(0s ago\)$/m);
});

test('verify: a manifest whose row counts were edited fails after the real restore, which is dropped', async (t) => {
  const d = await setup();
  await backup(d.ns, d.rt, { app: 'hello' });
  const mf = join(d.base, 'hello', '20261202T100000Z', 'manifest.json');
  writeFileSync(mf, readFileSync(mf, 'utf8').replace('"public.visits": 3', '"public.visits": 30'));
  const r = await cli(d, ['backup', '--verify', '/n/shop.conf', '20261202T100000Z', '--app', 'hello']);
  t.is(r.code, 1);
  t.regex(r.out, /verification FAILED: public\.visits: 3 rows, expected 30$/m);
  t.true(dbVerbsOf(d.nodes, DB).some((v) => v.startsWith('load hello')));
  t.true(dbVerbsOf(d.nodes, DB).includes('drop hello silver_verify_hello_X'));
  t.deepEqual([...d.nodes.dbs.get(DB)!.keys()], ['hello']);
});

test('verify: a restore that fails on the node is a failure, and the throw-away database is dropped all the same', async (t) => {
  const d = await setup();
  await backup(d.ns, d.rt, { app: 'hello' });
  d.nodes.failWhen = (c) => (c.argv[3] === 'load' ? 'silver-db-postgresql: pg_restore into silver_verify_hello_x failed' : null);
  const r = await verifyBackups(d.ns, d.rt, { app: 'hello' });
  t.false(r.ok);
  t.regex(r.results[0]!.problems[0]!, /pg_restore into .* failed/);
  t.deepEqual(dbVerbsOf(d.nodes, DB).slice(-3), ['load hello ID silver_verify_hello_X SHA', 'drop hello silver_verify_hello_X', 'forget ID']);
  t.is((await cli(d, ['backup', '--verify', '/n/shop.conf', '--app', 'plain'])).code, 1, 'no backups of plain');
});

test('restore without a terminal and without -y refuses and changes nothing (no node is even asked)', async (t) => {
  const d = await setup();
  await backup(d.ns, d.rt, { app: 'hello' });
  const before = d.nodes.calls.length;
  const r = await cli(d, ['restore', 'hello', '/n/shop.conf', 'latest']);
  t.is(r.code, 1);
  t.regex(r.err, /nothing restored \(answer y, or pass -y\)/);
  t.is(d.nodes.calls.length, before);
});

test('restore -y: under the deploy lock, the app in maintenance, loaded and checked, then made the app\'s database, put back after', async (t) => {
  const d = await setup();
  await backup(d.ns, d.rt, { app: 'hello' });
  d.nodes.database(DB, 'hello', { 'public.fetches': 2 });
  const before = d.nodes.calls.length;
  const r = await cli(d, ['restore', 'hello', '/n/shop.conf', 'latest', '-y']);
  t.is(r.code, 0, r.err);
  t.regex(r.out, /^hello: postgresql database hello restored from 20261202T100000Z; 2 tables, 5 rows, as in the manifest/m);
  t.regex(r.out, /^balancers: maintenance while restoring, then serving normally again$/m);
  t.deepEqual(d.nodes.dbs.get(DB)!.get('hello'), { 'public.visits': 3, 'public.fetches': 2 }, 'the rows are back');
  t.deepEqual([...d.nodes.dbs.get(DB)!.keys()], ['hello']);
  // The order of what changed, across nodes.
  const steps = d.nodes.calls.slice(before).flatMap((c) => {
    const v = c.argv.slice(3);
    if (c.argv[2]?.endsWith('silver-state') && (v[0] === 'lock' || v[0] === 'unlock') && c.node === DB) return [`${v[0]}`];
    if (c.argv[2]?.endsWith('silver-balancer') && v[0] === 'mode' && v[1] !== 'status') return [`balancer mode ${v[1]} ${v[2]}${v[3] ? ` ${v[3]}` : ''}`];
    if (c.argv[2]?.endsWith('silver-db-postgresql')) return [v.join(' ').replace(/\b[a-f0-9]{12}\b/g, 'ID').replace(/_[a-f0-9]{8}\b/g, '_X').replace(/\b[a-f0-9]{64}\b/g, 'SHA')];
    return [];
  });
  t.deepEqual(steps, [
    'lock',
    'balancer mode set hello maintenance',
    'put ID 0',
    'load hello ID silver_restore_hello_X SHA',
    'restore hello ID silver_restore_hello_X',
    'drop hello silver_restore_hello_X',
    'forget ID',
    'balancer mode clear hello',
    'unlock',
  ]);
  t.deepEqual(d.nodes.modes.get(LB)!.modes, {});
  t.is(d.nodes.state.get(DB)!.get('lock'), undefined, 'the lock is released');
});

test('restore: what the node says of the database-level settings the dump kept is said, a refusal as a warning (never a value); the rows stay restored', async (t) => {
  for (const [said, line] of [
    ['restored', /^db\.shop\.test: hello: its database-level settings \(ALTER DATABASE\/ROLE \.\.\. SET, its comment\) made again as the dump kept them$/m],
    ['refused', /^db\.shop\.test: hello: WARNING: PostgreSQL refused the database-level settings the dump kept .*: the rows are restored, the settings are not; set them again by hand$/m],
    ['refused 1 of 3', /^db\.shop\.test: hello: WARNING: PostgreSQL refused 1 of the 3 database-level settings the dump kept .*: the rows are restored, the others made again; set those by hand$/m],
  ] as const) {
    const d = await setup();
    await backup(d.ns, d.rt, { app: 'hello' });
    d.nodes.restoreSettings = said;
    const r = await cli(d, ['restore', 'hello', '/n/shop.conf', 'latest', '-y']);
    t.is(r.code, 0, r.err);
    t.regex(r.out + r.err, line);
    t.regex(r.out, /^hello: postgresql database hello restored from /m);
  }
  const none = await setup();
  await backup(none.ns, none.rt, { app: 'hello' });
  const r = await cli(none, ['restore', 'hello', '/n/shop.conf', 'latest', '-y']);
  t.notRegex(r.out + r.err, /database-level settings/);
});

test('restore: rows that differ from the manifest stop it before the app\'s database changes; a previous mode is put back', async (t) => {
  const d = await setup();
  await backup(d.ns, d.rt, { app: 'hello' });
  const mf = join(d.base, 'hello', '20261202T100000Z', 'manifest.json');
  writeFileSync(mf, readFileSync(mf, 'utf8').replace('"public.visits": 3', '"public.visits": 4'));
  d.nodes.database(DB, 'hello', { 'public.fetches': 9 });
  d.nodes.modes.set(LB, { modes: { hello: { mode: 'read-only', retryAfter: 30, message: 'x' } }, allow: [] });
  d.nodes.state.get(LB)!.set('maintenance', JSON.stringify({ seq: 1, modes: { hello: { mode: 'read-only', retryAfter: 30, message: 'x' } }, allow: [] }));
  const r = await restore(d.ns, d.rt, 'hello', 'latest', { yes: true });
  t.false(r.ok);
  t.false(r.replaced);
  t.regex(r.problems[0]!, /the backup does not restore to its manifest's rows \(public\.visits: 3 rows, expected 4\); hello was not changed/);
  t.false(dbVerbsOf(d.nodes, DB).some((v) => v.startsWith('restore')));
  t.deepEqual(d.nodes.dbs.get(DB)!.get('hello'), { 'public.fetches': 9 });
  t.deepEqual([...d.nodes.dbs.get(DB)!.keys()], ['hello'], 'the throw-away database is dropped');
  t.is(r.maintenance, 'maintenance while restoring, then back to read-only');
  t.is(d.nodes.modes.get(LB)!.modes['hello']!.mode, 'read-only');
});

test('restore: a failure while the app\'s database is replaced keeps the app in maintenance (its database may be incomplete) and says to run it again', async (t) => {
  const d = await setup();
  await backup(d.ns, d.rt, { app: 'hello' });
  d.nodes.failWhen = (c) => (c.argv[3] === 'restore' ? 'silver-db-postgresql: loading the dump into hello failed: hello is incomplete' : null);
  const r = await cli(d, ['restore', 'hello', '/n/shop.conf', 'latest', '-y']);
  t.is(r.code, 1);
  t.regex(r.out, /^hello: restore from 20261202T100000Z FAILED while it replaced hello: .*hello may be incomplete; run it again \(the app stays in maintenance until it is whole\)$/m);
  t.regex(r.out, /^balancers: still in maintenance: hello may be incomplete; run silver restore hello \/n\/shop\.conf 20261202T100000Z again$/m);
  t.is(d.nodes.modes.get(LB)!.modes['hello']!.mode, 'maintenance', 'no half-restored database serves');
  t.is(d.nodes.state.get(DB)!.get('lock'), undefined, 'the lock is released');
});

test('restore: a run killed while it held the app, then a whole one: the entry from before the first is put back, never the first run\'s maintenance', async (t) => {
  const d = await setup();
  await backup(d.ns, d.rt, { app: 'hello' });
  const readOnly = { mode: 'read-only', retryAfter: 30, message: 'x' };
  const setRecord = (rec: Record<string, unknown>) => {
    for (const n of d.nodes.state.keys()) d.nodes.state.get(n)!.set('maintenance', JSON.stringify(rec));
    d.nodes.modes.set(LB, { modes: rec['modes'] as Record<string, never>, allow: [] });
  };
  setRecord({ seq: 1, modes: { hello: readOnly }, allow: [] });
  // While a run holds the app (when the dump goes up), its hold is on the nodes, with the entry
  // from before it.
  let during: string | undefined;
  d.nodes.failWhen = (c) => {
    if (c.argv[2]?.endsWith('silver-db-postgresql') && c.argv[3] === 'put' && during === undefined) during = d.nodes.state.get(LB)!.get('maintenance');
    return null;
  };
  t.true((await restore(d.ns, d.rt, 'hello', 'latest', { yes: true })).ok);
  t.deepEqual((JSON.parse(during!) as { holds: unknown }).holds, { hello: { by: 'restore', previous: readOnly } });
  t.deepEqual(d.nodes.modes.get(LB)!.modes['hello'], readOnly);
  // What a run killed there leaves: the app in maintenance, the hold on the nodes. The next run
  // puts back read-only, not that maintenance.
  setRecord({ seq: 5, modes: { hello: { mode: 'maintenance', retryAfter: 30, message: 'held' } }, allow: [], holds: { hello: { by: 'restore', previous: readOnly } } });
  d.nodes.failWhen = () => null;
  const r = await restore(d.ns, d.rt, 'hello', 'latest', { yes: true });
  t.true(r.ok, r.problems.join('; '));
  t.is(r.maintenance, 'maintenance while restoring, then back to read-only');
  t.deepEqual(d.nodes.modes.get(LB)!.modes['hello'], readOnly);
  t.is((stateOn(d.nodes, LB, 'maintenance') as { holds?: unknown }).holds, undefined, 'the hold is over');
  // A person's change of the app's entry ends a hold: the next restore takes the entry as it is.
  setRecord({ seq: 9, modes: { hello: { mode: 'maintenance', retryAfter: 30, message: 'held' } }, allow: [], holds: { hello: { by: 'restore', previous: readOnly } } });
  await cli(d, ['maintenance', 'off', '/n/shop.conf', '--app', 'hello']);
  t.is((stateOn(d.nodes, LB, 'maintenance') as { holds?: unknown }).holds, undefined);
  t.true((await restore(d.ns, d.rt, 'hello', 'latest', { yes: true })).ok);
  t.is(d.nodes.modes.get(LB)!.modes['hello'], undefined, 'serving normally, as the person left it');
});

test('restore refuses before anything is sent: a changed dump, an app outside the locations, a backup of another app', async (t) => {
  const d = await setup();
  await backup(d.ns, d.rt);
  const file = join(d.base, 'hello', '20261202T100000Z', 'hello.pgdump');
  writeFileSync(file, Buffer.concat([readFileSync(file), Buffer.from('x')]));
  const before = d.nodes.calls.length;
  const bad = await cli(d, ['restore', 'hello', '/n/shop.conf', '20261202T100000Z', '-y']);
  t.is(bad.code, 1);
  t.regex(bad.err, /sha256 mismatch: hello\.pgdump has .*; size mismatch: .*: nothing was sent, nothing restored/);
  t.is((await cli(d, ['restore', 'nope', '/n/shop.conf', 'latest', '-y'])).code, 2);
  const other = await cli(d, ['restore', 'hello', '/n/shop.conf', join(d.base, 'my-blog', '20261202T100000Z'), '-y']);
  t.is(other.code, 2);
  t.regex(other.err, /is a backup of my-blog, not of hello/);
  t.is(d.nodes.calls.length, before);
});

test('restore: SIGINT while the dump is sent stops before the app\'s database changes, puts the balancers back, releases the lock: exit 130', async (t) => {
  const d = await setup();
  await backup(d.ns, d.rt, { app: 'hello' });
  d.nodes.onCall = (c) => {
    if (c.argv[2]?.endsWith('silver-db-postgresql') && c.argv[3] === 'put') d.signal('SIGINT');
  };
  const r = await cli(d, ['restore', 'hello', '/n/shop.conf', 'latest', '-y']);
  t.is(r.code, 130);
  t.regex(r.out, /restore interrupted \(SIGINT\); hello was not changed/);
  t.false(dbVerbsOf(d.nodes, DB).some((v) => v.startsWith('restore')));
  t.deepEqual(d.nodes.modes.get(LB)!.modes, {});
  t.is(d.nodes.state.get(DB)!.get('lock'), undefined);
});

test('status shows per app the age of the last backup and of the last verified restore', async (t) => {
  const d = await setup();
  await backup(d.ns, d.rt);
  await verifyBackups(d.ns, d.rt, { app: 'hello' });
  const later = { ...d.rt, now: () => Date.parse('2026-12-02T12:30:00Z') };
  const s = await status(d.ns, later);
  t.like(s.backups![0], { app: 'hello', lastBackupStamp: '20261202T100000Z', backupAgeSeconds: 9000, verifyOk: true, verifyAgeSeconds: 9000 });
  t.regex(renderStatus(s), /^backups: hello last 2h ago, restore verified 2h ago; my-blog last 2h ago, never verified; plain no backup, never verified$/m);
  t.deepEqual(backupsLine(backupAges({ a: { lastBackup: '2026-12-01T00:00:00Z', lastBackupStamp: 's', lastVerified: '2026-12-02T09:59:00Z', verifiedStamp: 's', verifyOk: false, verifySeconds: 1 } }, ['a'], Date.parse('2026-12-02T10:00:00Z'))), ['backups: a last 1d ago, verification FAILED 1m ago']);
  t.deepEqual([ageText(5), ageText(61), ageText(7200), ageText(172800)], ['5s', '1m', '2h', '2d']);
});

test('verify: SIGINT during a restore lets it end, drops its database, starts no other: exit 130', async (t) => {
  const d = await setup();
  await backup(d.ns, d.rt);
  d.nodes.onCall = (c) => {
    if (c.argv[2]?.endsWith('silver-db-postgresql') && c.argv[3] === 'load') d.signal('SIGINT');
  };
  const r = await cli(d, ['backup', '--verify', '/n/shop.conf']);
  t.is(r.code, 130);
  t.regex(r.err, /interrupted \(SIGINT\): 1 of 2 verified/);
  t.deepEqual(dbVerbsOf(d.nodes, DB).slice(-2), ['drop hello silver_verify_hello_X', 'forget ID']);
  t.false(dbVerbsOf(d.nodes, MY, 'silver-db-mysql').some((v) => v.startsWith('load')), 'the next one never starts');
  t.deepEqual([...d.nodes.dbs.get(DB)!.keys()], ['hello']);
});

test('restore on a nodeset without a balancer says the app kept serving; no balancer is asked', async (t) => {
  const d = await setup(NODESET.replace('[balancer]\n', '').replace('nodes = 2', 'nodes = 1\nload_balancer = false'));
  await backup(d.ns, d.rt, { app: 'hello' });
  const r = await restore(d.ns, d.rt, 'hello', 'latest', { yes: true });
  t.true(r.ok, r.problems.join('; '));
  t.is(r.maintenance, 'none: the nodeset has no balancer, so the app kept serving while it was restored');
  t.false(d.nodes.calls.some((c) => c.argv[2]?.endsWith('silver-balancer')));
});

test('verify: a backup of another nodeset (its folder given whole) is verified but not recorded as this nodeset\'s: replace-node\'s gate asks for this one\'s own', async (t) => {
  const d = await setup();
  await backup(d.ns, d.rt, { app: 'hello' });
  const manifestPath = join(d.base, 'hello', '20261202T100000Z', 'manifest.json');
  const m = JSON.parse(readFileSync(manifestPath, 'utf8')) as Record<string, unknown>;
  writeFileSync(manifestPath, JSON.stringify({ ...m, nodeset: 'staging' }));
  const r = await cli(d, ['backup', '--verify', '/n/shop.conf', '--app', 'hello', '--json']);
  t.is(r.code, 0, r.err);
  const rep = JSON.parse(r.out) as { ok: boolean; notes: string[] };
  t.true(rep.ok);
  t.true(rep.notes.includes('hello: 20261202T100000Z is a backup of nodeset staging: verified, not recorded as shop\'s'));
  const rec = stateOn(d.nodes, DB, 'backups') as { apps: Record<string, { verifyOk?: boolean }> } | null;
  t.falsy(rec?.apps['hello']?.verifyOk);
});

test('restore of an orphan (an app taken out of the file), by its database\'s name: under the lock, into its database as it stands, no balancer asked; MariaDB\'s underscore name is said for the dashed one', async (t) => {
  const d = await setup();
  d.nodes.database(DB, 'old_shop', { 'public.orders': 7 });
  d.nodes.database(MY, 'old_wiki', { pages: 2 });
  await backup(d.ns, d.rt);
  d.nodes.database(DB, 'old_shop', { 'public.orders': 1 });
  const before = d.nodes.calls.length;
  const r = await cli(d, ['restore', 'old_shop', '/n/shop.conf', 'latest', '-y', '--json']);
  t.is(r.code, 0, r.err);
  const rep = JSON.parse(r.out) as { ok: boolean; database: string; maintenance: string };
  t.true(rep.ok);
  t.is(rep.maintenance, 'none: no location serves it (an app no longer in the locations)');
  t.deepEqual(d.nodes.dbs.get(DB)!.get('old_shop'), { 'public.orders': 7 }, 'the rows are back');
  const calls = d.nodes.calls.slice(before);
  t.false(calls.some((c) => c.argv[2]?.endsWith('silver-balancer')), 'no balancer is asked');
  t.deepEqual(
    calls.filter((c) => c.node === DB && c.argv[2]?.endsWith('silver-db-postgresql')).map((c) => c.argv.slice(3).join(' ').replace(/\b[a-f0-9]{12}\b/g, 'ID').replace(/_[a-f0-9]{8}\b/g, '_X').replace(/\b[a-f0-9]{64}\b/g, 'SHA')),
    ['list', 'put ID 0', 'load old_shop ID silver_restore_old_shop_X SHA', 'restore old_shop ID silver_restore_old_shop_X', 'drop old_shop silver_restore_old_shop_X', 'forget ID'],
  );
  t.is(d.nodes.state.get(DB)!.get('lock'), undefined, 'the lock is released');
  // MariaDB keeps old-wiki's database as old_wiki: that name restores it; the dashed one says so.
  const dashed = await cli(d, ['restore', 'old-wiki', '/n/shop.conf', 'latest', '-y']);
  t.is(dashed.code, 2);
  t.regex(dashed.err, /app "old-wiki" is not in the locations of \/n\/shop\.conf; the backups of its database are kept under its database's name: old_wiki/);
  t.is((await cli(d, ['backups', '/n/shop.conf', '--app', 'old-wiki'])).code, 2);
  d.nodes.database(MY, 'old_wiki', { pages: 0 });
  const my = await cli(d, ['restore', 'old_wiki', '/n/shop.conf', 'latest', '-y']);
  t.is(my.code, 0, my.err);
  t.deepEqual(d.nodes.dbs.get(MY)!.get('old_wiki'), { pages: 2 });
});

test('restore of an orphan whose database is no longer on the node, or whose name is now an app\'s database, refuses before anything is sent: exit 1', async (t) => {
  const d = await setup();
  d.nodes.database(DB, 'old_shop', { 'public.orders': 7 });
  await backup(d.ns, d.rt, { app: 'old_shop' });
  d.nodes.dbs.get(DB)!.delete('old_shop');
  const before = d.nodes.calls.length;
  const gone = await cli(d, ['restore', 'old_shop', '/n/shop.conf', 'latest', '-y']);
  t.is(gone.code, 1);
  t.regex(gone.err, /db\.shop\.test has no postgresql database old_shop: an orphan's backup restores only into its database as it stands there; to restore it elsewhere, put its app back in the locations, run silver update, then silver restore: nothing restored/);
  const sent = d.nodes.calls.slice(before).filter((c) => c.argv[2]?.endsWith('silver-db-postgresql')).map((c) => c.argv[3]);
  t.deepEqual(sent, ['list'], 'only asked: nothing sent, nothing restored');
  t.is(d.nodes.state.get(DB)!.get('lock'), undefined, 'no lock taken');
  // A folder of backups named for what is now an app's database (MariaDB's my_blog is my-blog's).
  await backup(d.ns, d.rt, { app: 'my-blog' });
  const from = join(d.base, 'my-blog', '20261202T100000Z');
  const to = join(d.base, 'my_blog', '20261202T100000Z');
  mkdirSync(to, { recursive: true });
  writeFileSync(join(to, 'my_blog.sql'), readFileSync(join(from, 'my-blog.sql')));
  const m = JSON.parse(readFileSync(join(from, 'manifest.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(to, 'manifest.json'), JSON.stringify({ ...m, app: 'my_blog', file: 'my_blog.sql' }));
  const mine = await cli(d, ['restore', 'my_blog', '/n/shop.conf', 'latest', '-y']);
  t.is(mine.code, 1, mine.err);
  t.regex(mine.err, /mysql\.shop\.test: the mysql database my_blog is app my-blog's now: restore my-blog's own backups \(silver restore my-blog\); nothing restored/);
  t.false(d.nodes.verbs(MY, 'silver-db-mysql').some((v) => /^(put|load|restore) /.test(v)), 'nothing sent');
});
