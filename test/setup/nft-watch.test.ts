import test from 'ava';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { layersRoot } from '../../src/layers.js';

// The firewall's watcher (lib.sh: nft_watch_arm, nft_watch_holds, firewall_loaded) with the real
// nft: each test runs one `sh` with lib.sh sourced in a network namespace of its own (unshare -n),
// which holds silver's tables; FP_DIR in a temporary folder; fakes for systemd-run (which starts
// the watcher's command in the background, in that namespace) and systemctl (its MainPID; stop
// ends it), and an nft that logs its argv and runs the real one. Needs root (a namespace, nft).

const NFT = '/usr/sbin/nft';
const can = process.getuid?.() === 0 && existsSync(NFT) && existsSync('/usr/bin/unshare');
const rootTest = can ? test : test.skip;
const why = can ? '' : ' (skipped: needs root, nft and unshare)';

const dirs: string[] = [];
test.after.always(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Box {
  dir: string;
  fp: string;
  /** nft's calls through PATH, one line each (the watcher's own is started by its full path) */
  nftCalls: () => string[];
  runs: () => number;
}

function box(): Box {
  const dir = mkdtempSync(join(tmpdir(), 'silver-nftw-'));
  dirs.push(dir);
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  mkdirSync(join(dir, 'fp'), { mode: 0o700 });
  const fake = (name: string, body: string) => writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  fake(
    'systemd-run',
    `echo run >> '${dir}/runs.log'
for a in "$@"; do case "$a" in StandardOutput=truncate:*) out=\${a#*truncate:} ;; esac; done
while [ $# -gt 0 ] && [ "$1" != '${NFT}' ]; do shift; done
: > "$out"
setsid "$@" > "$out" 2>&1 < /dev/null &
echo $! > '${dir}/mainpid'`,
  );
  fake('systemctl', `case "$1" in show) cat '${dir}/mainpid' ;; stop) [ ! -f '${dir}/mainpid' ] || kill "$(cat '${dir}/mainpid')" 2> /dev/null || true ;; esac`);
  fake('nft', `echo "nft $*" >> '${dir}/nft.log'\nexec ${NFT} "$@"`);
  return {
    dir,
    fp: join(dir, 'fp'),
    nftCalls: () => (existsSync(join(dir, 'nft.log')) ? readFileSync(join(dir, 'nft.log'), 'utf8').split('\n').filter(Boolean) : []),
    runs: () => (existsSync(join(dir, 'runs.log')) ? readFileSync(join(dir, 'runs.log'), 'utf8').split('\n').filter(Boolean).length : 0),
  };
}

/** silver's tables, as nftables.conf and the listeners' file load them. */
const TABLES = 'add table inet silver\nadd chain inet silver input { type filter hook input priority 0; policy accept; }\nadd table inet silver_listeners\n';

/**
 * `script` after lib.sh, in a namespace of its own that holds silver's tables, the box's FP_DIR and
 * fakes; the watcher it started is ended at the end. Its standard output.
 */
function run(b: Box, script: string, listeners = true): string {
  writeFileSync(join(b.dir, 'tables.nft'), TABLES);
  const prelude = [
    `. '${join(layersRoot(), 'lib.sh')}'`,
    `FP_DIR='${b.fp}'`,
    `NFTW_OUT='${b.dir}/run/nftwatch.out'`,
    `nft -f '${b.dir}/tables.nft' > /dev/null`,
    // (_fw_want, as on an app server with instances or without)
    `_fw_want() { _want=${listeners ? "'silver silver_listeners'" : 'silver'}; }`,
    // (what firewall_loaded would do, said: the namespace keeps what the test made)
    `act() { echo "act $*"; }`,
    `changed() { echo "changed: $*"; }`,
    'trap \'[ ! -f "' + b.dir + '/mainpid" ] || kill "$(cat "' + b.dir + '/mainpid")" 2> /dev/null || true\' EXIT',
  ].join('\n');
  return execFileSync('unshare', ['-n', 'sh', '-c', `${prelude}\n${script}`], { env: { PATH: `${join(b.dir, 'bin')}:/usr/sbin:/usr/bin:/sbin:/bin` }, encoding: 'utf8' });
}

const holds = "if nft_watch_holds $_want; then echo holds; else echo 'does not hold'; fi";

rootTest(`a full run starts the watcher, waits for its subscription and records the tables it saw; then the probe's check lists nothing${why}`, (t) => {
  const b = box();
  const out = run(b, `_fw_want\nnft_watch_arm\ncat '${b.fp}/nftwatch.rec'\n: > '${b.dir}/nft.log'\n${holds}\nfirewall_loaded\necho loaded`);
  const [rec, verdict, loaded] = out.trim().split('\n');
  const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  t.regex(rec!, new RegExp(`^${boot} \\d+ \\d+ silver silver_listeners$`), 'the boot, the watcher\'s process and start time, the tables');
  t.is(verdict, 'holds');
  t.is(loaded, 'loaded');
  t.deepEqual(b.nftCalls(), [], 'no nft process for the check');
  t.is(b.runs(), 1);
});

rootTest(`a table removed, the ruleset flushed, or the listeners' table written anew (removed, then added in one go): the watcher says so, and the check lists the tables (and loads them when gone)${why}`, (t) => {
  for (const [what, act, reload] of [
    ['silver removed', 'nft delete table inet silver', true],
    ['ruleset flushed', 'nft flush ruleset', true],
    ["listeners' table written anew", 'printf "table inet silver_listeners\\ndelete table inet silver_listeners\\ntable inet silver_listeners {\\n}\\n" | nft -f -', false],
  ] as const) {
    const b = box();
    const out = run(b, `_fw_want\nnft_watch_arm\n${act}\nsleep 0.1\n${holds}\nfirewall_loaded`);
    const lines = out.trim().split('\n');
    t.is(lines[0], 'does not hold', what);
    t.true(b.nftCalls().includes('nft list tables'), `${what}: listed`);
    t.is(lines.includes('changed: load firewall rules') && lines.includes('act nft -f /etc/nftables.conf'), reload, `${what}: loaded again only when a table is gone`);
    t.regex(readFileSync(join(b.dir, 'run', 'nftwatch.out'), 'utf8'), /^delete table inet silver/m, what);
  }
});

rootTest(`the check does not hold: the watcher ended or not asleep, another boot, no record, a table wanted that it did not see; a full run then starts it anew${why}`, (t) => {
  const spoils: [string, string, boolean?][] = [
    ['the watcher ended', `kill "$(cat '@DIR@/mainpid')"; sleep 0.1`],
    ['another boot', `sed -i 's/^[^ ]*/00000000-0000-0000-0000-000000000000/' '@FP@/nftwatch.rec'`],
    ['no record', `rm -f '@FP@/nftwatch.rec'`],
    ['a process of another name under its id', `sed -i "s/^\\([^ ]*\\) [0-9]*/\\1 $$/" '@FP@/nftwatch.rec'`],
    ['output it wrote', `echo '# ERROR: We lost some netlink events!' >> '@DIR@/run/nftwatch.out'`],
  ];
  for (const [what, spoil] of spoils) {
    const b = box();
    const s = spoil.replaceAll('@DIR@', b.dir).replaceAll('@FP@', b.fp);
    const out = run(b, `_fw_want\nnft_watch_arm\n${s}\n${holds}\nnft_watch_arm\n${holds}`);
    t.deepEqual(out.trim().split('\n'), ['does not hold', 'holds'], what);
    t.is(b.runs(), 2, `${what}: started anew`);
  }
  // Armed on a node without instances (no listeners' table wanted then): once an update adds it, the
  // record does not name it, and the check lists the tables.
  const b = box();
  const out = run(b, `_fw_want\nnft_watch_arm\n_want='silver silver_listeners'\n${holds}\n_want=silver\n${holds}`, false);
  t.deepEqual(out.trim().split('\n'), ['does not hold', 'holds']);
});

rootTest(`a watcher that holds is kept: a second full run starts nothing${why}`, (t) => {
  const b = box();
  const out = run(b, `_fw_want\nnft_watch_arm\nnft_watch_arm\nnft_watch_arm\n${holds}`);
  t.is(out.trim(), 'holds');
  t.is(b.runs(), 1);
});

rootTest(`a check-only run arms nothing${why}`, (t) => {
  const b = box();
  const out = run(b, `CHECK=1\n_fw_want\nnft_watch_arm\n${holds}`);
  t.is(out.trim(), 'does not hold');
  t.is(b.runs(), 0);
  t.false(existsSync(join(b.fp, 'nftwatch.rec')));
});

test('_proc_start reads the state and start time after the name\'s last ") ": a process named "nft) S 9 9" passes for no nft, and its own fields are read', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'silver-procname-'));
  dirs.push(dir);
  const forged = join(dir, 'nft) S 9 9');
  symlinkSync('/bin/sleep', forged);
  const p = spawn(forged, ['30'], { stdio: 'ignore' });
  t.teardown(() => p.kill());
  // (asleep first: the state read here and by the shell the same)
  const fieldsOf = () => {
    const stat = readFileSync(`/proc/${p.pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(') ') + 2).trim().split(' ');
  };
  for (let i = 0; i < 200 && fieldsOf()[0] !== 'S'; i++) execFileSync('/bin/sleep', ['0.01']);
  const fields = fieldsOf();
  t.is(fields[0], 'S');
  const out = execFileSync('sh', ['-c', `. '${join(layersRoot(), 'lib.sh')}'\n_proc_start ${p.pid} && printf '%s|%s|%s' "$_PN" "$_PT" "$_PS"`], { encoding: 'utf8' });
  t.is(out, `nft) S 9 9|${fields[0]}|${fields[19]}`);
  t.not(out.split('|')[0], 'nft');
});
