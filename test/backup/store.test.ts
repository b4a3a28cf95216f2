import test from 'ava';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stampFor, type Manifest } from '../../src/backup/manifest.js';
import { byStamp, fileSum, filePieces, listBackups, PartialBackup, pruneBackups, resolveBackup } from '../../src/backup/store.js';
import { ExitError } from '../../src/diagnostics.js';

const dirs: string[] = [];
test.after.always(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const base = () => {
  const d = mkdtempSync(join(tmpdir(), 'silver-store-'));
  dirs.push(d);
  return d;
};

const T0 = Date.parse('2026-12-02T10:00:00Z');
function manifestFor(app: string, stamp: string, data: Buffer): Manifest {
  const sha256 = createHash('sha256').update(data).digest('hex');
  return { format: 1, nodeset: 'shop', app, service: 'postgresql', database: app, node: 'db.shop.test', stamp, file: `${app}.pgdump`, size: data.length, sha256, rowCounts: { 'public.t': 1 }, rowCountsFrom: 'snapshot', silverVersion: '0.1.0', serverVersion: '15', tool: 'pg_dump', time: new Date(T0).toISOString(), seconds: 0 };
}

/** A whole backup of `app` written as silver writes one. */
function write(b: string, app: string, ms = T0): string {
  const p = new PartialBackup(b, 'shop', app, (taken) => stampFor(ms, taken), `${app}.pgdump`);
  const data = Buffer.from('PGDMP and more');
  p.append(data);
  return p.commit(manifestFor(app, p.stamp, data));
}

test('a backup is written into STAMP.partial/ and renamed when whole; folders 0700, files 0600', (t) => {
  const b = base();
  const p = new PartialBackup(b, 'shop', 'hello', (taken) => stampFor(T0, taken), 'hello.pgdump');
  t.is(p.dir, join(b, 'shop/hello/20261202T100000Z.partial'));
  p.append(Buffer.from('PGDMP'));
  p.append(Buffer.from(' rest'));
  t.deepEqual(p.ends(3), { head: Buffer.from('PGD'), tail: Buffer.from('est') });
  t.deepEqual(listBackups(b, 'shop'), [], 'a partial backup is not listed');
  const final = p.commit(manifestFor('hello', p.stamp, Buffer.from('PGDMP rest')));
  t.is(final, join(b, 'shop/hello/20261202T100000Z'));
  t.false(existsSync(p.dir));
  t.deepEqual(readdirSync(final).sort(), ['hello.pgdump', 'manifest.json']);
  t.is(statSync(final).mode & 0o777, 0o700);
  t.is(statSync(join(final, 'hello.pgdump')).mode & 0o777, 0o600);
  t.is(statSync(join(final, 'manifest.json')).mode & 0o777, 0o600);
  t.is(statSync(join(b, 'shop/hello')).mode & 0o777, 0o700);
  const [one] = listBackups(b, 'shop');
  t.is(one!.stamp, '20261202T100000Z');
  t.is(one!.manifest!.app, 'hello');
  t.is(one!.verified, null);
});

test('an aborted backup leaves nothing; a second one in the same second gets -2', (t) => {
  const b = base();
  const p = new PartialBackup(b, 'shop', 'hello', (taken) => stampFor(T0, taken), 'hello.pgdump');
  p.append(Buffer.from('half'));
  p.abort();
  t.deepEqual(readdirSync(join(b, 'shop/hello')), []);
  write(b, 'hello');
  t.regex(write(b, 'hello'), /20261202T100000Z-2$/);
});

test('a pull interrupted under a node\'s stamp leaves a .partial that the next pull of that stamp starts again', (t) => {
  const b = base();
  const stale = new PartialBackup(b, 'shop', 'hello', () => '20261202T100000Z', 'hello.pgdump');
  stale.append(Buffer.from('half'));
  // (the process ends here: no commit, no abort)
  const again = new PartialBackup(b, 'shop', 'hello', () => '20261202T100000Z', 'hello.pgdump');
  t.is(again.dir, stale.dir);
  t.deepEqual(readdirSync(again.dir), [], 'the half-written file is gone');
  again.append(Buffer.from('PGDMP whole'));
  t.is(again.commit(manifestFor('hello', again.stamp, Buffer.from('PGDMP whole'))), join(b, 'shop/hello/20261202T100000Z'));
});

test('stamps sort by time, then by their -N (as numbers)', (t) => {
  t.deepEqual(['20261202T100000Z-10', '20261202T100000Z-2', '20261203T000000Z', '20261202T100000Z'].sort(byStamp), ['20261202T100000Z', '20261202T100000Z-2', '20261202T100000Z-10', '20261203T000000Z']);
});

test('BACKUP is latest, a stamp, or a folder; a folder of another app or an unknown stamp is refused', (t) => {
  const b = base();
  const first = write(b, 'hello', T0);
  const second = write(b, 'hello', T0 + 3600_000);
  const wiki = write(b, 'wiki', T0);
  t.is(resolveBackup(b, 'shop', 'hello', 'latest').dir, second);
  t.is(resolveBackup(b, 'shop', 'hello', '20261202T100000Z').dir, first);
  t.is(resolveBackup(b, 'shop', 'hello', first).dir, first);
  t.is(resolveBackup(b, 'shop', null, wiki).manifest!.app, 'wiki');
  const e1 = t.throws(() => resolveBackup(b, 'shop', 'hello', wiki), { instanceOf: ExitError });
  t.regex(e1!.message, /is a backup of wiki, not of hello/);
  t.is((e1 as ExitError).exitCode, 2);
  t.throws(() => resolveBackup(b, 'shop', 'hello', '20201202T100000Z'), { message: /no backup 20201202T100000Z of hello .*silver backups lists them/ });
  t.throws(() => resolveBackup(b, 'shop', null, '20261202T100000Z'), { message: /is there for hello, wiki: name one with --app/ });
  t.throws(() => resolveBackup(b, 'shop', 'other', 'latest'), { message: /no backup of other in/ });
  t.throws(() => resolveBackup(b, 'shop', 'hello', '/etc'), { message: /\/etc: not a backup \(no manifest.json in it\)/ });
  // A folder copied under another app's name (or stamp): by latest or stamp its manifest must
  // name that app and stamp, or nothing is restored.
  cpSync(wiki, join(b, 'shop/hello/20261203T000000Z'), { recursive: true });
  t.throws(() => resolveBackup(b, 'shop', 'hello', 'latest'), { message: /its manifest is of wiki's backup 20261202T100000Z, not of the folder it is in \(hello 20261203T000000Z\): nothing restored/ });
  t.throws(() => resolveBackup(b, 'shop', 'hello', '20261203T000000Z'), { instanceOf: ExitError });
  cpSync(first, join(b, 'shop/hello/20261204T000000Z'), { recursive: true });
  t.throws(() => resolveBackup(b, 'shop', 'hello', 'latest'), { message: /its manifest is of hello's backup 20261202T100000Z, not of the folder/ });
});

test('a damaged manifest is listed as damaged and never picked', (t) => {
  const b = base();
  const good = write(b, 'hello', T0);
  const bad = join(b, 'shop/hello/20261203T000000Z');
  mkdirSync(bad);
  writeFileSync(join(bad, 'manifest.json'), '{"format": 1, "app": "hello"');
  const list = listBackups(b, 'shop', 'hello');
  t.is(list.length, 2);
  t.regex(list[1]!.error!, /not JSON/);
  t.is(resolveBackup(b, 'shop', 'hello', 'latest').dir, good);
});

test('--keep N keeps the newest N whole backups of the app', (t) => {
  const b = base();
  const made = [0, 1, 2, 3].map((h) => write(b, 'hello', T0 + h * 3600_000));
  const other = write(b, 'wiki', T0);
  t.deepEqual(pruneBackups(b, 'shop', 'hello', 2), made.slice(0, 2));
  t.deepEqual(listBackups(b, 'shop', 'hello').map((x) => x.dir), made.slice(2));
  t.true(existsSync(other));
  t.deepEqual(pruneBackups(b, 'shop', 'hello', 5), []);
});

test('files are summed and cut in pieces without reading them whole', (t) => {
  const b = base();
  const f = join(b, 'f');
  writeFileSync(f, Buffer.from('0123456789abcdefghij'));
  t.deepEqual(fileSum(f), { sha256: createHash('sha256').update('0123456789abcdefghij').digest('hex'), size: 20 });
  t.deepEqual([...filePieces(f, 7)].map((p) => [p.offset, p.data.toString()]), [[0, '0123456'], [7, '789abcd'], [14, 'efghij']]);
  t.deepEqual([...filePieces(f, 10)].map((p) => [p.offset, p.data.toString()]), [[0, '0123456789'], [10, 'abcdefghij']]);
  writeFileSync(f, '');
  t.deepEqual([...filePieces(f, 7)], []);
});
