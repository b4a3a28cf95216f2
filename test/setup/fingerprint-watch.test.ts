import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { layersRoot } from '../../src/layers.js';

// The fingerprint's watcher (lib.sh: _watch_begin, fingerprint_end, fast_probe) run by a real `sh`
// with lib.sh sourced: FP_DIR, the watcher's invocation link and its binary pointed into a
// temporary folder, and fakes first in PATH for systemd-run, systemctl and find (which logs its
// argv and runs the real one). Needs no root; touches nothing outside the folder.

const dirs: string[] = [];
test.after.always(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Box {
  dir: string;
  fp: string;
  link: string;
  calls: () => string[];
}

function box(): Box {
  const dir = mkdtempSync(join(tmpdir(), 'silver-watch-'));
  dirs.push(dir);
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  mkdirSync(join(dir, 'fp'), { mode: 0o700 });
  const fake = (name: string, body: string) => writeFileSync(join(bin, name), `#!/bin/sh\necho "${name} $*" >> '${dir}/calls.log'\n${body}\n`, { mode: 0o755 });
  // systemd-run: the unit started (its invocation link made, its output files opened), and its
  // watches in place unless the test says otherwise (file "silent")
  fake(
    'systemd-run',
    `for a in "$@"; do case "$a" in StandardOutput=truncate:*) : > "\${a#*truncate:}" ;; StandardError=truncate:*) err=\${a#*truncate:} ;; esac; done
ln -sf 0123abcd '${dir}/link'
printf 'Setting up watches.\\n' > "$err"
[ -e '${dir}/silent' ] || printf 'Watches established.\\n' >> "$err"`,
  );
  fake('systemctl', '');
  fake('find', 'exec /usr/bin/find "$@"');
  // (a sleep that ends the watcher, when asked to: one that never gets its watches in place)
  fake('sleep', `[ ! -e '${dir}/dies' ] || rm -f '${dir}/link'`);
  writeFileSync(join(dir, 'inotifywait'), '', { mode: 0o755 });
  return {
    dir,
    fp: join(dir, 'fp'),
    link: join(dir, 'link'),
    calls: () => (existsSync(join(dir, 'calls.log')) ? readFileSync(join(dir, 'calls.log'), 'utf8').split('\n').filter(Boolean) : []),
  };
}

/** `script` after lib.sh, in the box: its standard output. */
function sh(b: Box, script: string): string {
  const prelude = `. '${join(layersRoot(), 'lib.sh')}'\nFP_DIR='${b.fp}'\nWATCH_LINK='${b.link}'\nWATCH_BIN='${b.dir}/inotifywait'\n`;
  return execFileSync('sh', ['-c', prelude + script], { env: { PATH: `${join(b.dir, 'bin')}:/usr/bin:/bin` }, encoding: 'utf8' });
}

const ROOTS = ' /etc /usr/local/lib/silverlining';
const begin = (b: Box, roots = ROOTS) => sh(b, `_roots='${roots}'\n_watch_begin\necho "roots=[$WATCH_ROOTS]"`).trim();

test('a full run with no watcher starts one on its roots, as a transient unit whose output is root\'s file, and waits for its watches', (t) => {
  const b = box();
  t.is(begin(b), `roots=[${ROOTS}]`);
  const run = b.calls().filter((c) => c.startsWith('systemd-run'));
  t.deepEqual(run, [
    `systemd-run --quiet --collect --unit=silver-setup-watch.service -p StandardOutput=truncate:${b.fp}/watch.out -p StandardError=truncate:${b.fp}/watch.err -p MemoryMax=64M -p Nice=10 ${b.dir}/inotifywait -r -e modify,attrib,move,create,delete,delete_self,move_self,unmount -- /etc /usr/local/lib/silverlining`,
  ]);
  t.deepEqual(b.calls().slice(0, 2), ['systemctl stop silver-setup-watch.service', 'systemctl reset-failed silver-setup-watch.service']);
  t.is(readFileSync(join(b.fp, 'watch.roots'), 'utf8'), '/etc /usr/local/lib/silverlining\n');
});

test('a watcher that runs, watches the same roots and has seen nothing is kept: its watches predate this run', (t) => {
  const b = box();
  begin(b);
  writeFileSync(join(b.dir, 'calls.log'), '');
  t.is(begin(b), `roots=[${ROOTS}]`);
  t.deepEqual(b.calls(), [], 'nothing stopped, nothing started');
});

test('a watcher that saw a change, ended, or watches other roots is started anew', (t) => {
  for (const [what, spoil] of [
    ['saw a change', (b: Box) => writeFileSync(join(b.fp, 'watch.out'), '/etc/ MODIFY passwd\n')],
    ['ended', (b: Box) => unlinkSync(b.link)],
    ['other roots', (b: Box) => writeFileSync(join(b.fp, 'watch.roots'), '/etc\n')],
    ['no watches yet', (b: Box) => writeFileSync(join(b.fp, 'watch.err'), 'Setting up watches.\n')],
  ] as const) {
    const b = box();
    begin(b);
    spoil(b);
    writeFileSync(join(b.dir, 'calls.log'), '');
    t.is(begin(b), `roots=[${ROOTS}]`, what);
    t.is(b.calls().filter((c) => c.startsWith('systemd-run')).length, 1, what);
    t.is(readFileSync(join(b.fp, 'watch.out'), 'utf8'), '', `${what}: its output begins empty`);
  }
});

test('no watcher: without inotifywait nothing is started; one whose watches never come, or that ends first, leaves the walk', (t) => {
  const none = box();
  rmSync(join(none.dir, 'inotifywait'));
  t.is(begin(none), 'roots=[]');
  t.deepEqual(none.calls(), []);

  const dies = box();
  writeFileSync(join(dies.dir, 'silent'), '');
  writeFileSync(join(dies.dir, 'dies'), '');
  t.is(begin(dies), 'roots=[]');
  t.is(dies.calls().filter((c) => c.startsWith('sleep')).length, 1, 'it stopped waiting once the watcher ended');
});

/** The box's root (a folder with a file in a subfolder) and point (a file), made now. */
function paths(b: Box): { root: string; point: string } {
  const root = join(b.dir, 'root');
  const point = join(b.dir, 'point');
  mkdirSync(join(root, 'sub'), { recursive: true });
  writeFileSync(join(root, 'sub', 'file'), '');
  writeFileSync(point, '');
  return { root, point };
}

/** A fingerprint in the box on its root and point (made here when not yet), begun at `since` (seconds). */
function fingerprint(b: Box, watch: 0 | 1, since: number): { root: string; point: string } {
  const p = existsSync(join(b.dir, 'root')) ? { root: join(b.dir, 'root'), point: join(b.dir, 'point') } : paths(b);
  const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  const btime = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))![1];
  writeFileSync(
    join(b.fp, 'fingerprint'),
    `FP_DIGEST=${'a'.repeat(64)}\nFP_SINCE=${since}\nFP_ROOTS=" ${p.root}"\nFP_POINTS="${p.point}"\nFP_DIRS=""\nFP_ABSENT=""\nFP_LIVE=""\nFP_DEAD=""\nFP_ASK_ON=""\nFP_ASK_OFF=""\nFP_BOOT=${boot}\nFP_BTIME=${btime}\nFP_WATCH=${watch}\nFP_END=1\n`,
  );
  return p;
}

/** A pause longer than the file system's clock step. */
const pause = () => execFileSync('/bin/sleep', ['0.05']);
const now = () => (Date.now() / 1000).toFixed(3);

const probe = (b: Box) => sh(b, `if fast_probe ${'a'.repeat(64)}; then echo hit; else echo "miss: $_MISS"; fi`).trim();
const walked = (b: Box, root: string) => b.calls().filter((c) => c.startsWith('find ')).map((c) => c.split(' ').includes(root));

test('the probe: while the recorded watcher runs and has seen nothing, the roots are not walked, its invocation link is looked at instead', (t) => {
  const b = box();
  begin(b);
  // (the link and the files older than the run's beginning, as a full run leaves them)
  const { root } = fingerprint(b, 1, Math.floor(Date.now() / 1000) + 100);
  writeFileSync(join(b.dir, 'calls.log'), '');
  t.is(probe(b), 'hit');
  const find = b.calls().filter((c) => c.startsWith('find '));
  t.is(find.length, 1);
  t.false(find[0]!.split(' ').includes(root), 'the root is not walked');
  t.true(find[0]!.split(' ').includes(b.link), 'the invocation link is a point');
});

test('the probe walks the roots when the watcher saw a change, ended, or was not recorded; a watcher started anew since the run began is a miss', (t) => {
  for (const [what, spoil] of [
    ['saw a change', (b: Box) => writeFileSync(join(b.fp, 'watch.out'), '/etc/ MODIFY passwd\n')],
    ['ended', (b: Box) => unlinkSync(b.link)],
    ['its output gone', (b: Box) => rmSync(join(b.fp, 'watch.out'))],
  ] as const) {
    const b = box();
    begin(b);
    const { root } = fingerprint(b, 1, Math.floor(Date.now() / 1000) + 100);
    spoil(b);
    writeFileSync(join(b.dir, 'calls.log'), '');
    t.is(probe(b), 'hit', `${what}: nothing changed since`);
    t.deepEqual(walked(b, root), [true], `${what}: the root is walked`);
  }
  const unrecorded = box();
  begin(unrecorded);
  const { root } = fingerprint(unrecorded, 0, Math.floor(Date.now() / 1000) + 100);
  writeFileSync(join(unrecorded.dir, 'calls.log'), '');
  t.is(probe(unrecorded), 'hit');
  t.deepEqual(walked(unrecorded, root), [true], 'FP_WATCH=0: the root is walked');

  // A change under the root that the watcher saw: the walk finds it.
  const changed = box();
  const f = paths(changed);
  pause();
  const since = now();
  pause();
  begin(changed);
  writeFileSync(join(f.root, 'sub', 'file'), 'new');
  writeFileSync(join(changed.fp, 'watch.out'), `${f.root}/sub/ MODIFY file\n`);
  fingerprint(changed, 1, Number(since));
  t.is(probe(changed), 'miss: a file changed');

  // The watcher started anew after the run began (its link newer than FP_SINCE, every other path
  // older): a miss, though it has seen nothing yet — what changed before its watches were in
  // place it cannot tell.
  const restarted = box();
  paths(restarted);
  pause();
  const began = now();
  pause();
  begin(restarted);
  fingerprint(restarted, 1, Number(began));
  t.is(probe(restarted), 'miss: a file changed');
  // (the same, its link older than the run's beginning: a hit)
  const kept = box();
  paths(kept);
  begin(kept);
  pause();
  fingerprint(kept, 1, Number(now()));
  t.is(probe(kept), 'hit');
});

test('fingerprint_end records the watcher only when the one this run began with still runs, on the same roots, having seen nothing', (t) => {
  const end = (b: Box, setup: string) => {
    writeFileSync(join(b.fp, 'track'), '');
    writeFileSync(join(b.fp, 'track.ok'), '');
    sh(b, `_fp_roots\n${setup}\nSILVER_TRACK='${b.fp}/track' FP_BTIME=1 FP_SINCE=1\nfingerprint_end ${'b'.repeat(64)}`);
    return /^FP_WATCH=(.*)$/m.exec(readFileSync(join(b.fp, 'fingerprint'), 'utf8'))?.[1];
  };
  const ready = box();
  t.is(end(ready, '_watch_begin'), '1');
  const changedMeanwhile = box();
  t.is(end(changedMeanwhile, `_watch_begin\necho '/etc/ CREATE x' > '${changedMeanwhile.fp}/watch.out'`), '0', 'it saw this run\'s own change');
  const none = box();
  t.is(end(none, "_watch_begin\nWATCH_ROOTS=''"), '0');
  const gone = box();
  t.is(end(gone, `_watch_begin\nrm -f '${gone.link}'`), '0');
});
