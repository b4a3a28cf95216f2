import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { layersRoot } from '../../src/layers.js';

// silver-backup run (the service node's timer) against a temporary tree: its paths moved into
// it, the service's helper a fake that "dumps" a few bytes. Needs no root.

function tree() {
  const dir = mkdtempSync(join(tmpdir(), 'silver-backup-run-'));
  const bin = join(dir, 'bin');
  const staged = join(dir, 'staged');
  mkdirSync(bin);
  mkdirSync(staged);
  writeFileSync(join(dir, 'backup.conf'), 'service postgresql\next pgdump\nkeep 2\nnode db.b.test\ntarget -\n');
  writeFileSync(
    join(bin, 'silver-db-postgresql'),
    `#!/bin/sh\ncase "$1" in\n  list) echo "db blog" ;;\n  dump) printf 'PGDMP %s' "$3" > '${staged}'/"$3"; echo "file 9 0000"; echo "rows {}" ;;\nesac\n`,
    { mode: 0o755 },
  );
  const text = readFileSync(join(layersRoot(), 'base/bin/silver-backup'), 'utf8')
    .replace(/^CONF=.*$/m, `CONF=${dir}/backup.conf`)
    .replace(/^ROOT=.*$/m, `ROOT=${dir}/backups`)
    .replace(/^BIN=.*$/m, `BIN=${bin}`)
    .replace(/^ {2}STAGED=.*$/m, `  STAGED=${staged}`);
  writeFileSync(join(dir, 'silver-backup'), text);
  return { dir, root: join(dir, 'backups') };
}

const run = (dir: string) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile('sh', [join(dir, 'silver-backup'), 'run'], (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr })),
  );

test('silver-backup run: a dump a killed run left without its .meta (listed nowhere, never pruned) is removed by the next run; the newest KEEP kept', async (t) => {
  const { dir, root } = tree();
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const first = await run(dir);
  t.is(first.code, 0, first.stderr);
  const [stamp] = readdirSync(join(root, 'blog')).filter((f) => f.endsWith('.meta')).map((f) => f.slice(0, -5));
  t.true(existsSync(join(root, 'blog', `${stamp}.pgdump`)));
  // A run killed between moving its dump in and writing the .meta.
  writeFileSync(join(root, 'blog', '20200101T000000Z.pgdump'), 'orphan');
  const second = await run(dir);
  t.is(second.code, 0, second.stderr);
  const files = readdirSync(join(root, 'blog')).sort();
  t.false(files.includes('20200101T000000Z.pgdump'), files.join(' '));
  t.is(files.filter((f) => f.endsWith('.pgdump')).length, files.filter((f) => f.endsWith('.meta')).length, 'each dump with its .meta');
  t.true(files.every((f) => !f.endsWith('.new')));
});
