import test from 'ava';
import { compareCounts, countsLine, parseDumpHeader, parseManifest, stampFor, totalRows, type Manifest } from '../../src/backup/manifest.js';
import { mysql } from '../../src/services/mysql.js';
import { postgresql } from '../../src/services/postgresql.js';

const SHA = 'a'.repeat(64);
const good: Manifest = {
  format: 1,
  nodeset: 'shop',
  app: 'my-blog',
  service: 'mysql',
  database: 'my_blog',
  node: 'mysql.shop.test',
  stamp: '20261202T100000Z',
  file: 'my-blog.sql',
  size: 120,
  sha256: SHA,
  rowCounts: { posts: 4, tags: 0 },
  rowCountsFrom: 'dump',
  silverVersion: '0.1.0',
  serverVersion: '10.11.6-MariaDB',
  tool: 'mariadb-dump',
  time: '2026-12-02T10:00:00.000Z',
  seconds: 1.5,
};
const text = (m: object) => JSON.stringify(m);

test('stamps: UTC, sortable, -N while one is taken', (t) => {
  const ms = Date.parse('2026-12-02T10:04:05.678Z');
  t.is(stampFor(ms), '20261202T100405Z');
  const taken = new Set(['20261202T100405Z', '20261202T100405Z-2']);
  t.is(stampFor(ms, (s) => taken.has(s)), '20261202T100405Z-3');
});

test('a manifest reads back field for field', (t) => {
  t.deepEqual(parseManifest(text(good)), good);
});

test('a manifest that names another file, database, service or format is refused', (t) => {
  const bad: [Partial<Manifest> | Record<string, unknown>, RegExp][] = [
    [{ file: '../../etc/passwd' }, /not a plain file name/],
    [{ file: '.hidden' }, /not a plain file name/],
    [{ database: 'mysql' }, /database "mysql" is not my-blog's on mysql/],
    [{ service: 'redis' }, /service "redis" is not one silver knows/],
    [{ app: 'Bad App' }, /not an app name/],
    [{ sha256: 'abc' }, /sha256 is not 64 hex digits/],
    [{ stamp: '../x' }, /not a backup stamp/],
    [{ size: -1 }, /size is not a whole number/],
    [{ rowCounts: { posts: 1.5 } }, /row count of posts is not a whole number/],
    [{ rowCounts: [1] }, /row counts are not an object/],
    [{ format: 2 }, /format 2/],
    [{ time: 'yesterday' }, /time is not a time/],
  ];
  for (const [change, why] of bad) t.throws(() => parseManifest(text({ ...good, ...change })), { message: why }, JSON.stringify(change));
  t.throws(() => parseManifest('{'), { message: /not JSON/ });
  t.throws(() => parseManifest(text({ ...good, node: undefined })), { message: /node is missing/ });
});

test("the helper's dump header: size, sha256, versions, the snapshot's counts", (t) => {
  const h = parseDumpHeader(`file 3106 ${SHA}\nserver 15.6 (Debian 15.6-0+deb12u1)\ntool pg_dump (PostgreSQL) 15.6\ncounts { "public.visits" : 5, "public.we|ird\\nname" : 1 }\n`);
  t.deepEqual(h, { size: 3106, sha256: SHA, server: '15.6 (Debian 15.6-0+deb12u1)', tool: 'pg_dump (PostgreSQL) 15.6', counts: { 'public.visits': 5, 'public.we|ird\nname': 1 } });
  t.is(parseDumpHeader(`file 10 ${SHA}\nserver x\ntool y\n`).counts, null);
  t.throws(() => parseDumpHeader('server x\n'), { message: /size and sha256 are missing/ });
  t.deepEqual(countsLine('noise\ncounts {}\n'), {});
  t.throws(() => countsLine('nothing'), { message: /no row counts/ });
});

test('row counts compared: a table missing, one with other rows, one the backup did not have', (t) => {
  t.deepEqual(compareCounts({ a: 1, b: 2 }, { b: 2, a: 1 }), []);
  t.deepEqual(compareCounts({ a: 1, b: 2, c: 0 }, { a: 1, b: 3, d: 4 }), ['b: 3 rows, expected 2', 'c: missing after the restore (expected 0 rows)', 'd: not in the backup (4 rows after the restore)']);
  t.is(totalRows({ a: 1, b: 2 }), 3);
});

test('whole dumps: a pg_dump archive starts with PGDMP; a MariaDB dump ends with its completed line; empty is never whole', (t) => {
  const pg = postgresql.backup;
  t.is(pg.problem(Buffer.from('PGDMP\x01\x0e'), Buffer.alloc(0), 7), null);
  t.regex(pg.problem(Buffer.from('<html>'), Buffer.alloc(0), 6)!, /not a pg_dump archive/);
  t.regex(pg.problem(Buffer.alloc(0), Buffer.alloc(0), 0)!, /empty/);
  const my = mysql.backup;
  t.is(my.problem(Buffer.from('--'), Buffer.from('UNLOCK TABLES;\n-- Dump completed on 2026-12-02 10:00:00\n'), 60), null);
  t.regex(my.problem(Buffer.from('--'), Buffer.from("INSERT INTO `t` VALUES\n(1,'a"), 40)!, /truncated/);
  t.regex(my.problem(Buffer.alloc(0), Buffer.alloc(0), 0)!, /empty/);
  t.is(pg.counts, 'snapshot');
  t.is(my.counts, 'dump');
  t.is(`x.${pg.ext}`, 'x.pgdump');
  t.is(`x.${my.ext}`, 'x.sql');
});

test('attack: table names an app chose reach the verify and restore reports printable', (t) => {
  const evil = 'x\u001b]0;owned\u0007\u001b[2J';
  const problems = compareCounts({ [evil]: 1 }, { [`${evil}2`]: 3 });
  t.true(problems.length === 2);
  for (const p of problems) t.false(/[\u0000-\u0008\u000a-\u001f\u007f-\u009f]/.test(p), p);
  t.throws(() => countsLine(`counts {"${evil.replace(/\u001b/g, '\\u001b').replace(/\u0007/g, '\\u0007')}": -1}`), { message: /^row count of x\\x1b\]0;owned\\x07\\x1b\[2J is not a whole number$/ });
});
