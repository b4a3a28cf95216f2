import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { layersRoot } from '../../src/layers.js';

// The fingerprint's watcher (lib.sh: _watch_begin, fingerprint_end, fast_probe) run by a real `sh`
// with lib.sh sourced: FP_DIR, the watcher's invocation link, its binary and the roots pointed into
// a temporary folder, and fakes first in PATH for systemd-run (which starts a stand-in process
// named inotifywait, asleep, as the watcher), systemctl and find (which logs its argv and runs the
// real one). Needs no root; touches nothing outside the folder; ends the processes it started.

const dirs: string[] = [];
test.after.always(() => {
  for (const d of dirs) {
    for (const f of ['pid.1', 'pid.2', 'pid.3']) {
      const p = join(d, f);
      if (existsSync(p)) {
        try {
          process.kill(Number(readFileSync(p, 'utf8').trim()));
        } catch {
          /* ended */
        }
      }
    }
    rmSync(d, { recursive: true, force: true });
  }
});

interface Box {
  dir: string;
  fp: string;
  link: string;
  /** The roots: two folders of the box, one with a subfolder. */
  roots: string;
  calls: () => string[];
}

/** A pause longer than the file system's clock step. */
const pause = () => execFileSync('/bin/sleep', ['0.06']);
const now = () => (Date.now() / 1000).toFixed(3);

function box(): Box {
  const dir = mkdtempSync(join(tmpdir(), 'silver-watch-'));
  dirs.push(dir);
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  mkdirSync(join(dir, 'fp'), { mode: 0o700 });
  for (const r of ['r1/sub', 'r2']) mkdirSync(join(dir, r), { recursive: true });
  writeFileSync(join(dir, 'r1', 'sub', 'file'), '');
  writeFileSync(join(dir, 'point'), '');
  const fake = (name: string, body: string) => writeFileSync(join(bin, name), `#!/bin/sh\necho "${name} $*" >> '${dir}/calls.log'\n${body}\n`, { mode: 0o755 });
  // systemd-run: the unit started — its invocation link made, its output files opened, its process
  // (a stand-in named inotifywait, asleep) running — and its watches in place unless the test says
  // otherwise (file "silent"); "meddle": a file under a root changes while they are set up.
  fake(
    'systemd-run',
    `for a in "$@"; do case "$a" in StandardOutput=truncate:*) : > "\${a#*truncate:}" ;; StandardError=truncate:*) err=\${a#*truncate:} ;; esac; done
n=1; while [ -e '${dir}/pid.'$n ]; do n=$((n + 1)); done
'${dir}/inotifywait' > /dev/null 2>&1 &
echo $! > '${dir}/pid.'$n
echo $! > '${dir}/mainpid'
ln -sfn "invocation-$n" '${dir}/link'
echo "$err" > '${dir}/errfile'
[ ! -e '${dir}/late' ] || exit 0
printf 'Setting up watches.\\n' > "$err"
[ ! -e '${dir}/meddle' ] || echo changed > '${dir}/r1/sub/file'
[ -e '${dir}/silent' ] || printf 'Watches established.\\n' >> "$err"`,
  );
  fake('systemctl', `[ "$1" != show ] || cat '${dir}/mainpid'`);
  fake('find', 'exec /usr/bin/find "$@"');
  // (a sleep that ends the watcher, when asked to: one that never gets its watches in place; or,
  // for a unit that opens its output late, one after which it has)
  fake('sleep', `[ ! -e '${dir}/dies' ] || rm -f '${dir}/link'
if [ -e '${dir}/late' ]; then rm -f '${dir}/late'; printf 'Setting up watches.\\nWatches established.\\n' > "$(cat '${dir}/errfile')"; fi`);
  writeFileSync(join(dir, 'inotifywait'), '#!/bin/sh\n/bin/sleep 120\n', { mode: 0o755 });
  // (the roots made before the watcher's start, as on a node: what changes after it, it must see)
  pause();
  return {
    dir,
    fp: join(dir, 'fp'),
    link: join(dir, 'link'),
    roots: ` ${join(dir, 'r1')} ${join(dir, 'r2')}`,
    calls: () => (existsSync(join(dir, 'calls.log')) ? readFileSync(join(dir, 'calls.log'), 'utf8').split('\n').filter(Boolean) : []),
  };
}

/** `script` after lib.sh, in the box (its roots the box's): its standard output. */
function sh(b: Box, script: string): string {
  const prelude = `. '${join(layersRoot(), 'lib.sh')}'\nFP_DIR='${b.fp}'\nWATCH_OUT='${b.fp}/watch.out' WATCH_ERR='${b.fp}/watch.err'\nWATCH_LINK='${b.link}'\nWATCH_BIN='${b.dir}/inotifywait'\n_fp_roots() { _roots='${b.roots}' _rpoints=''; }\n`;
  return execFileSync('sh', ['-c', prelude + script], { env: { PATH: `${join(b.dir, 'bin')}:/usr/bin:/bin` }, encoding: 'utf8' });
}

const begin = (b: Box, extra = '') => sh(b, `_fp_roots\n${extra}\n_watch_begin\necho "roots=[$WATCH_ROOTS]"`).trim();
const started = (b: Box) => b.calls().filter((c) => c.startsWith('systemd-run')).length;
const clear = (b: Box) => writeFileSync(join(b.dir, 'calls.log'), '');

test('a full run with no watcher starts one on its roots, as a transient unit whose output is root\'s file, waits for its watches and finds them whole', (t) => {
  const b = box();
  t.is(begin(b), `roots=[${b.roots}]`);
  const run = b.calls().filter((c) => c.startsWith('systemd-run'));
  t.deepEqual(run, [
    `systemd-run --quiet --collect --unit=silver-setup-watch.service -p StandardOutput=truncate:${b.fp}/watch.out -p StandardError=truncate:${b.fp}/watch.err -p MemoryMax=64M ${b.dir}/inotifywait -r -e modify,attrib,move,create,delete,delete_self,move_self,unmount --${b.roots}`,
  ]);
  t.deepEqual(b.calls().slice(0, 2), ['systemctl stop silver-setup-watch.service', 'systemctl reset-failed silver-setup-watch.service']);
  t.is(readFileSync(join(b.fp, 'watch.roots'), 'utf8'), `${b.roots.trim()}\n`);
  t.is(readFileSync(join(b.fp, 'watch.id'), 'utf8'), 'invocation-1\n', 'the invocation it started');
  t.is(readFileSync(join(b.fp, 'watch.pid'), 'utf8').trim(), readFileSync(join(b.dir, 'pid.1'), 'utf8').trim(), 'its process');
  t.true(existsSync(join(b.fp, 'watch.ok')));
});

test('a watcher that runs — the invocation started, on the same roots, idle — and has seen nothing is kept: its watches predate this run', (t) => {
  const b = box();
  begin(b);
  clear(b);
  t.is(begin(b), `roots=[${b.roots}]`);
  t.deepEqual(b.calls(), [], 'nothing stopped, nothing started');
});

test('a watcher that saw a change, ended, watches other roots, is another invocation, another process or was never found whole is started anew', (t) => {
  for (const [what, spoil] of [
    ['saw a change', (b: Box) => writeFileSync(join(b.fp, 'watch.out'), '/etc/ MODIFY passwd\n')],
    ['ended', (b: Box) => unlinkSync(b.link)],
    ['other roots', (b: Box) => writeFileSync(join(b.fp, 'watch.roots'), '/etc\n')],
    ['another invocation under its name', (b: Box) => execFileSync('ln', ['-sfn', 'invocation-9', b.link])],
    ['another process', (b: Box) => writeFileSync(join(b.fp, 'watch.pid'), `${process.pid}\n`)],
    ['not found whole', (b: Box) => unlinkSync(join(b.fp, 'watch.ok'))],
  ] as const) {
    const b = box();
    begin(b);
    spoil(b);
    clear(b);
    t.is(begin(b), `roots=[${b.roots}]`, what);
    t.is(started(b), 1, what);
    t.is(readFileSync(join(b.fp, 'watch.out'), 'utf8'), '', `${what}: its output begins empty`);
  }
});

test('a unit that opens its output only after systemd-run returns: waited for (no redirection ends the shell), then the watcher is in place', (t) => {
  const b = box();
  writeFileSync(join(b.dir, 'late'), '');
  t.is(begin(b), `roots=[${b.roots}]`);
  t.is(b.calls().filter((c) => c.startsWith('sleep')).length, 1);
  t.true(existsSync(join(b.fp, 'watch.ok')));
});

test('no watcher: without inotifywait; over more folders than it should watch; one whose watches never come or that ends first; a file changed while its watches were set up (a folder made then may have none)', (t) => {
  const none = box();
  rmSync(join(none.dir, 'inotifywait'));
  t.is(begin(none), 'roots=[]');
  t.deepEqual(none.calls(), []);

  const many = box();
  t.is(begin(many, 'WATCH_MAX_DIRS=2'), 'roots=[]', 'three folders under the roots');
  t.is(started(many), 0);

  const dies = box();
  writeFileSync(join(dies.dir, 'silent'), '');
  writeFileSync(join(dies.dir, 'dies'), '');
  t.is(begin(dies), 'roots=[]');
  t.is(dies.calls().filter((c) => c.startsWith('sleep')).length, 1, 'it stopped waiting once the watcher ended');

  const meddled = box();
  writeFileSync(join(meddled.dir, 'meddle'), '');
  t.is(begin(meddled), 'roots=[]');
  t.is(started(meddled), 1);
  t.true(meddled.calls().at(-2)!.startsWith('systemctl stop'), 'the watcher stopped again');
  t.false(existsSync(join(meddled.fp, 'watch.ok')));
});

/** A fingerprint in the box on its roots, a point, and its checked paths under the roots, begun at `since` (seconds). */
function fingerprint(b: Box, watch: 0 | 1, since: number | string): void {
  const point = join(b.dir, 'point');
  const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  const btime = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'))![1];
  writeFileSync(
    join(b.fp, 'fingerprint'),
    `FP_DIGEST=${'a'.repeat(64)}\nFP_SINCE=${since}\nFP_ROOTS="${b.roots}"\nFP_POINTS="${point}"\nFP_DIRS=""\nFP_ABSENT=""\nFP_LIVE=""\nFP_DEAD=""\nFP_ASK_ON=""\nFP_ASK_OFF=""\nFP_BOOT=${boot}\nFP_BTIME=${btime}\nFP_WATCH=${watch}\nFP_WPOINTS=" ${join(b.dir, 'r1', 'sub', 'file')}"\nFP_END=1\n`,
  );
}

const probe = (b: Box) => sh(b, `if fast_probe ${'a'.repeat(64)}; then echo hit; else echo "miss: $_MISS"; fi`).trim();
const finds = (b: Box) => b.calls().filter((c) => c.startsWith('find ')).map((c) => c.split(' '));
const r1 = (b: Box) => join(b.dir, 'r1');

test('the probe: while the recorded watcher runs, has seen nothing and is idle, the roots are not walked: its invocation link and the paths checked under them are looked at instead', (t) => {
  const b = box();
  begin(b);
  fingerprint(b, 1, Math.floor(Date.now() / 1000) + 100);
  clear(b);
  t.is(probe(b), 'hit');
  const find = finds(b);
  t.is(find.length, 1);
  t.false(find[0]!.includes(r1(b)), 'the root is not walked');
  t.true(find[0]!.includes(b.link), 'the invocation link is a point');
  t.true(find[0]!.includes(join(r1(b), 'sub', 'file')), 'so is the checked path under the root');
});

test('the probe walks the roots when the watcher saw a change, ended, lost its output, is not idle or was not recorded', (t) => {
  for (const [what, spoil] of [
    ['saw a change', (b: Box) => writeFileSync(join(b.fp, 'watch.out'), '/etc/ MODIFY passwd\n')],
    ['ended', (b: Box) => unlinkSync(b.link)],
    ['its output gone', (b: Box) => rmSync(join(b.fp, 'watch.out'))],
    ['another process (an event may wait to be read)', (b: Box) => writeFileSync(join(b.fp, 'watch.pid'), `${process.pid}\n`)],
    ['not recorded', (b: Box) => fingerprint(b, 0, Math.floor(Date.now() / 1000) + 100)],
  ] as const) {
    const b = box();
    begin(b);
    fingerprint(b, 1, Math.floor(Date.now() / 1000) + 100);
    spoil(b);
    clear(b);
    t.is(probe(b), 'hit', `${what}: nothing changed since`);
    t.deepEqual(finds(b).map((f) => f.includes(r1(b))), [true], `${what}: the root is walked`);
  }
});

test('the probe misses: a change the watcher saw (the walk finds it), a checked path under the roots changed unseen by it (a memory map, a hard link, a bind mount), the watcher started anew since the run began', (t) => {
  // (every path made, then the run's beginning, then what follows)
  const scene = () => {
    const b = box();
    begin(b);
    pause();
    const since = now();
    pause();
    return { b, since };
  };
  const seen = scene();
  writeFileSync(join(r1(seen.b), 'sub', 'file'), 'new');
  writeFileSync(join(seen.b.fp, 'watch.out'), `${r1(seen.b)}/sub/ MODIFY file\n`);
  fingerprint(seen.b, 1, seen.since);
  t.is(probe(seen.b), 'miss: a file changed');

  // The watcher runs and said nothing, but the checked file's change time is newer.
  const unseen = scene();
  writeFileSync(join(r1(unseen.b), 'sub', 'file'), 'written where inotify does not look');
  fingerprint(unseen.b, 1, unseen.since);
  clear(unseen.b);
  t.is(probe(unseen.b), 'miss: a file changed');
  t.false(finds(unseen.b)[0]!.includes(r1(unseen.b)), 'without a walk');

  // Its link newer than FP_SINCE: started anew after the run began — what changed before its
  // watches were in place it cannot tell.
  const restarted = scene();
  unlinkSync(join(restarted.b.fp, 'watch.ok'));
  begin(restarted.b);
  fingerprint(restarted.b, 1, restarted.since);
  t.is(probe(restarted.b), 'miss: a file changed');

  // (the same, all older than the run's beginning: a hit)
  const kept = scene();
  fingerprint(kept.b, 1, kept.since);
  t.is(probe(kept.b), 'hit');
});

test('fingerprint_end records the watcher only when the one this run began with still runs, on the same roots, having seen nothing; and the paths checked under the roots', (t) => {
  const end = (b: Box, setup: string, track = '') => {
    writeFileSync(join(b.fp, 'track'), track);
    writeFileSync(join(b.fp, 'track.ok'), '');
    sh(b, `_fp_roots\n${setup}\nSILVER_TRACK='${b.fp}/track' FP_BTIME=1 FP_SINCE=1\nfingerprint_end ${'b'.repeat(64)}`);
    const text = readFileSync(join(b.fp, 'fingerprint'), 'utf8');
    return [/^FP_WATCH=(.*)$/m.exec(text)?.[1], /^FP_WPOINTS="(.*)"$/m.exec(text)?.[1]];
  };
  const ready = box();
  t.deepEqual(end(ready, '_watch_begin', `path ${join(r1(ready), 'sub', 'file')}\npath ${join(ready.dir, 'point')}\n`), ['1', ` ${join(r1(ready), 'sub', 'file')}`]);
  const changedMeanwhile = box();
  t.is(end(changedMeanwhile, `_watch_begin\necho '/etc/ CREATE x' > '${changedMeanwhile.fp}/watch.out'`)[0], '0', 'it saw this run\'s own change');
  const none = box();
  t.is(end(none, "_watch_begin\nWATCH_ROOTS=''")[0], '0');
  const gone = box();
  t.is(end(gone, `_watch_begin\nrm -f '${gone.link}'`)[0], '0');
});
