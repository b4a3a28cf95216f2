import test, { type ExecutionContext } from 'ava';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memoryHost } from '../../src/config/host.js';
import { loadNodeset } from '../../src/nodeset/resolve.js';
import { hostsLines, layersFor, layerScript, layerVars, nodeScript, nodesetConf, parseLayerOutput, type AddressedNode } from '../../src/setup/plan.js';
import { layersRoot } from '../../src/layers.js';
import { md5 } from '../../src/setup/render.js';
import { quoteArg } from '../../src/ssh/quote.js';

const nodes: AddressedNode[] = [
  { name: 'app1.foobar.com', role: 'appserver', address: '10.4.3.2' },
  { name: 'app2.foobar.com', role: 'appserver', address: '10.4.3.3' },
  { name: 'app3.foobar.com', role: 'appserver', address: '10.4.3.4' },
  { name: 'mysql.foobar.com', role: 'service:mysql', address: '10.4.3.5' },
  { name: 'balancer.foobar.com', role: 'balancer', address: '10.4.3.6' },
];

test('nodeset.conf is exactly the design notes\' format', (t) => {
  t.is(
    nodesetConf(nodes),
    [
      'appserver = app1.foobar.com 10.4.3.2',
      'appserver = app2.foobar.com 10.4.3.3',
      'appserver = app3.foobar.com 10.4.3.4',
      'service.mysql = mysql.foobar.com 10.4.3.5',
      'balancer = balancer.foobar.com 10.4.3.6',
    ].join('\n'),
  );
});

test('hosts lines give the short name only where it is unique', (t) => {
  const lines = hostsLines([...nodes, { name: 'app1.other.com', role: 'appserver', address: '10.4.3.9' }]).split('\n');
  t.is(lines[0], '10.4.3.2 app1.foobar.com');
  t.is(lines[1], '10.4.3.3 app2.foobar.com app2');
  t.is(lines.at(-1), '10.4.3.9 app1.other.com');
});

test('every node gets base, wiring, then its role layer', (t) => {
  t.deepEqual(layersFor('appserver'), ['base', 'wire', 'appserver']);
  t.deepEqual(layersFor('service:postgresql'), ['base', 'wire', 'service/postgresql']);
  t.deepEqual(layersFor('balancer'), ['base', 'wire', 'balancer']);
});

test('layer variables carry the packages, the app servers and the locations', (t) => {
  const ns = loadNodeset('/n/f.conf', memoryHost({ '/n/f.conf': '[general]\nname = f\nbase_domain = foobar.com\n[appserver]\nnodes = 3\nlocations =\n    http://foobar.com/ blog\n    http://foobar.com/wiki/ wiki\n[service:mysql]\n[balancer]\n' }));
  const v = layerVars(ns, nodes[3]!, nodes, 'service/mysql', 'ssh-ed25519 AAAA k', false);
  t.is(v['SILVER_PACKAGES'], 'mariadb-server');
  t.is(v['SILVER_APPSERVER_ADDRS'], '10.4.3.2 10.4.3.3 10.4.3.4');
  t.is(v['SILVER_LOCATIONS'], 'foobar.com / blog\nfoobar.com /wiki/ wiki');
  t.is(v['SILVER_APPS'], 'blog wiki');
  t.is(v['SILVER_CHECK'], '0');
});

test('only silver-changed / silver-would lines count as changes', (t) => {
  t.deepEqual(parseLayerOutput('noise\nsilver-changed: user silver\nsilver-would: start nginx\nsilver-changedx\n').changes, ['user silver', 'start nginx']);
});

// lib.sh runs for real, in a scratch folder: the helpers check before they change.
function runLib(body: string, check = false): { changes: string[]; stdout: string } {
  return runLibWith((s) => s, body, check);
}

/** runLib with lib.sh edited first (to point a fixed path at a scratch file). */
function runLibWith(edit: (lib: string) => string, body: string, check = false): { changes: string[]; stdout: string } {
  const script = edit(layerScript('wire', { SILVER_CHECK: check ? '1' : '0' }, layersRoot()).replace(/# wire — [\s\S]*$/, '')) + body;
  const stdout = execFileSync('sh', ['-s'], { input: script }).toString();
  return { changes: parseLayerOutput(stdout).changes, stdout };
}

test('ensure_block replaces its own block, keeps other lines, and is a no-op the second time', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'silver-lib-'));
  const hosts = join(dir, 'hosts');
  writeFileSync(hosts, '127.0.0.1 localhost\n# BEGIN silverlining nodeset x (managed by silver, do not edit)\n10.0.0.1 old\n# END silverlining nodeset x\n192.168.1.1 mine\n');
  const body = `printf '10.0.0.2 app1\\n10.0.0.3 app2\\n' | ensure_block ${hosts} "nodeset x"\n`;
  t.deepEqual(runLib(body, true).changes, [`${hosts}: block nodeset x`]);
  t.regex(readFileSync(hosts, 'utf8'), /10\.0\.0\.1 old/, 'a check-only run changes nothing');
  t.deepEqual(runLib(body).changes, [`${hosts}: block nodeset x`]);
  t.is(
    readFileSync(hosts, 'utf8'),
    '127.0.0.1 localhost\n# BEGIN silverlining nodeset x (managed by silver, do not edit)\n10.0.0.2 app1\n10.0.0.3 app2\n# END silverlining nodeset x\n192.168.1.1 mine\n',
  );
  t.deepEqual(runLib(body).changes, []);
});

test('ensure_file writes once, then only fixes what differs', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'silver-lib-'));
  const f = join(dir, 'sub/conf');
  const owner = execFileSync('id', ['-un']).toString().trim() + ':' + execFileSync('id', ['-gn']).toString().trim();
  const body = `ensure_file ${f} 640 ${owner} <<'EOT'\na=1\nEOT\necho "changed=$CHANGED"\n`;
  const first = runLib(body);
  t.deepEqual(first.changes, [f]);
  t.regex(first.stdout, /changed=1/);
  t.is(readFileSync(f, 'utf8'), 'a=1\n');
  const second = runLib(body);
  t.deepEqual(second.changes, []);
  t.regex(second.stdout, /changed=0/);
  execFileSync('chmod', ['600', f]);
  t.deepEqual(runLib(body).changes, [`${f}: mode 640, owner ${owner}`]);
});

const asRoot = process.getuid?.() === 0 ? test : test.skip;

asRoot('attack: ensure_file_as writes as the folder\'s owner — a link that user planted turns no root write against another file (needs root)', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'silver-lib-'));
  chmodSync(dir, 0o755);
  const theirs = join(dir, 'pg');
  mkdirSync(theirs);
  execFileSync('chown', ['nobody', theirs]);
  const precious = join(dir, 'precious');
  writeFileSync(precious, 'root only\n', { mode: 0o600 });
  const f = join(theirs, 'silver.conf');
  symlinkSync(precious, f);
  symlinkSync(precious, `${f}.silver-new`);
  const body = `prestat ${f}\nensure_file_as nobody ${f} 644 <<'EOT'\nx=1\nEOT\n`;
  t.deepEqual(runLib(body).changes, [f]);
  t.is(readFileSync(precious, 'utf8'), 'root only\n', 'the file the links pointed at is untouched');
  t.is(statSync(precious).uid, 0);
  const st = lstatSync(f);
  t.true(st.isFile());
  t.is(st.mode & 0o777, 0o644);
  t.is(st.uid, Number(execFileSync('id', ['-u', 'nobody']).toString().trim()));
  t.is(readFileSync(f, 'utf8'), 'x=1\n');
  t.deepEqual(runLib(body).changes, [], 'then nothing to do');
  chmodSync(f, 0o600);
  t.deepEqual(runLib(body).changes, [f], 'a mode that differs is written again');
  t.is(lstatSync(f).mode & 0o777, 0o644);
});

test('ensure_known compares by the sum prehash read, writes only what differs, and fixes modes', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'silver-lib-'));
  const f = join(dir, 'helper');
  const owner = execFileSync('id', ['-un']).toString().trim() + ':' + execFileSync('id', ['-gn']).toString().trim();
  const content = "#!/bin/sh\necho 'it''s here'\n";
  const body = (c: string) => `prestat ${f}\nprehash ${f}\nensure_known ${f} 755 ${owner} ${md5(c)} ${quoteArg(c)}\necho "changed=$CHANGED"\n`;
  t.deepEqual(runLib(body(content)).changes, [f]);
  t.is(readFileSync(f, 'utf8'), content);
  const again = runLib(body(content));
  t.deepEqual(again.changes, []);
  t.regex(again.stdout, /changed=0/);
  // Without prehash the file is read and compared: still no change.
  t.deepEqual(runLib(`ensure_known ${f} 755 ${owner} ${md5(content)} ${quoteArg(content)}\n`).changes, []);
  t.deepEqual(runLib(body('#!/bin/sh\necho v2\n')).changes, [f]);
  t.is(readFileSync(f, 'utf8'), '#!/bin/sh\necho v2\n');
  execFileSync('chmod', ['700', f]);
  t.deepEqual(runLib(body('#!/bin/sh\necho v2\n')).changes, [`${f}: mode 755, owner ${owner}`]);
});

test('prestat asks stat once for many paths and again only for paths it has not seen', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'silver-lib-'));
  const bin = join(dir, 'bin');
  execFileSync('mkdir', ['-p', bin]);
  const log = join(dir, 'stat.log');
  // A stat that logs each call, in front of the real one.
  writeFileSync(join(bin, 'stat'), `#!/bin/sh\necho call >> ${log}\nexec /usr/bin/stat "$@"\n`, { mode: 0o755 });
  const out = runLib(`PATH=${bin}:$PATH\nprestat ${dir} ${dir}/missing\nprestat ${dir}\nstat_of ${dir}\necho "st=$_ST"\nstat_of ${dir}/missing\necho "missing=[$_ST]"\n`).stdout;
  t.regex(out, /st=7\d\d \S+:\S+/);
  t.regex(out, /missing=\[\]/);
  // one prestat call for both paths; the missing one is asked again when asked for
  t.is(readFileSync(log, 'utf8'), 'call\ncall\n');
});

test('pkg_cache answers from its stamp while dpkg has installed nothing since', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'silver-lib-'));
  const bin = join(dir, 'bin');
  execFileSync('mkdir', ['-p', bin]);
  const log = join(dir, 'dpkg.log');
  writeFileSync(join(bin, 'dpkg-query'), `#!/bin/sh\necho call >> ${log}\necho "pkg-a installed"\necho "pkg-b not-installed"\n`, { mode: 0o755 });
  const status = join(dir, 'status');
  writeFileSync(status, '');
  execFileSync('touch', ['-d', '2 minutes ago', status]);
  const body = (stampDir: string) =>
    `PATH=${bin}:$PATH\nPKG_STAMP=${stampDir}/packages.installed\npkg_cache pkg-a\nensure_pkgs pkg-a\necho "changed=$CHANGED"\n`;
  const script = (s: string) => s.replace(/\/var\/lib\/dpkg\/status/g, status);
  const r1 = runLibWith(script, body(dir));
  t.regex(r1.stdout, /changed=0/);
  t.is(readFileSync(join(dir, 'packages.installed'), 'utf8').trim(), 'pkg-a');
  const r2 = runLibWith(script, body(dir));
  t.regex(r2.stdout, /changed=0/);
  t.is(readFileSync(log, 'utf8'), 'call\n', 'the second run read the stamp, not dpkg');
  // dpkg changed something since: asked again
  execFileSync('touch', [status]);
  execFileSync('touch', ['-d', '1 minute ago', join(dir, 'packages.installed')]);
  runLibWith(script, body(dir));
  t.is(readFileSync(log, 'utf8'), 'call\ncall\n');
});

/** lib.sh in a scratch layers tree, its node-side folder (FP_DIR) inside that tree, not this machine's. */
function scratchLib(root: string): string {
  const fp = join(root, 'fp');
  writeFileSync(join(root, 'lib.sh'), readFileSync(join(layersRoot(), 'lib.sh'), 'utf8').replace(/^FP_DIR=.*$/m, `FP_DIR=${fp}`));
  return fp;
}

test('a layer that changes a path makes the later layers of the node script read it afresh', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'silver-layers-'));
  const f = join(root, 'conf');
  writeFileSync(f, 'x\n', { mode: 0o644 });
  const owner = execFileSync('id', ['-un']).toString().trim() + ':' + execFileSync('id', ['-gn']).toString().trim();
  scratchLib(root);
  for (const layer of ['one', 'two']) {
    execFileSync('mkdir', ['-p', join(root, layer)]);
    // the path is named literally, so the node script stats it once before the layers run
    writeFileSync(join(root, layer, 'setup.sh'), `prestat ${f}\nensure_file ${f} 600 ${owner} <<'EOT'\nx\nEOT\n`);
  }
  const script = nodeScript(['one', 'two'].map((layer) => ({ layer, vars: { SILVER_CHECK: '0' } })), root);
  t.true(script.includes(`prestat ${f}`));
  const out = execFileSync('sh', ['-s'], { input: script }).toString();
  const changes = out.split('\n').filter((l) => l.startsWith('silver-changed: '));
  t.deepEqual(changes, [`silver-changed: ${f}: mode 600, owner ${owner}`], 'layer two saw the mode layer one set');
  t.regex(out, /silver-layer-end: two 0/);
});

test('the node script assigns the variables all layers share once, and each layer still sees them', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'silver-layers-'));
  scratchLib(root);
  for (const layer of ['one', 'two']) {
    execFileSync('mkdir', ['-p', join(root, layer)]);
    writeFileSync(join(root, layer, 'setup.sh'), 'echo "seen: $SILVER_LAYER $SILVER_HOSTS_LINES ${SILVER_ONLY:-}"\n');
  }
  const vars = (layer: string) => ({ SILVER_CHECK: '0', SILVER_LAYER: layer, SILVER_HOSTS_LINES: "10.0.0.1 a'b", ...(layer === 'two' ? { SILVER_ONLY: 'x' } : {}) });
  const script = nodeScript(['one', 'two'].map((layer) => ({ layer, vars: vars(layer) })), root).toString();
  t.is(script.split('\n').filter((l) => l.startsWith('SILVER_HOSTS_LINES=')).length, 1);
  t.is(script.split('\n').filter((l) => l.startsWith('SILVER_LAYER=')).length, 2);
  const out = execFileSync('sh', ['-s'], { input: script }).toString();
  t.deepEqual(out.split('\n').filter((l) => l.startsWith('seen: ')), ["seen: one 10.0.0.1 a'b ", "seen: two 10.0.0.1 a'b x"]);
});

test('crash safety of follow-ups: a layer killed between a change and its reload leaves its mark; the next run reloads though the file matches, then clears the mark', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'silver-layers-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const fp = scratchLib(root);
  const f = join(root, 'conf');
  const owner = execFileSync('id', ['-un']).toString().trim() + ':' + execFileSync('id', ['-gn']).toString().trim();
  mkdirSync(join(root, 'one'));
  mkdirSync(join(root, 'two'));
  // (the follow-up: what reload_unit would do; SILVER_DIE: the run dies after the write, before it
  // — the node script and the layer's subshell, killed as a dropped session or a reboot would;
  // the node script first: killed second, it could see its subshell die and exit 137 itself)
  writeFileSync(join(root, 'one', 'setup.sh'), `ensure_file ${f} 644 ${owner} <<EOT\n$SILVER_WANT\nEOT\nif [ "$CHANGED" = 1 ]; then\n  [ -z "\${SILVER_DIE:-}" ] || sh -c 'kill -9 "$1" "$PPID"' sh $$\n  changed "reload the service"\nfi\n`);
  writeFileSync(join(root, 'two', 'setup.sh'), 'true\n');
  const run = (vars: Record<string, string>, check = false) => {
    const script = nodeScript(['one', 'two'].map((layer) => ({ layer, vars: { SILVER_CHECK: check ? '1' : '0', ...vars } })), root);
    const r = spawnSync('sh', ['-s'], { input: script, encoding: 'utf8' });
    return { code: r.status, signal: r.signal, changes: parseLayerOutput(r.stdout).changes };
  };
  t.deepEqual(run({ SILVER_WANT: 'v1' }).changes, [f, 'reload the service']);
  t.false(existsSync(join(fp, 'dirty.one')), 'a layer that ended whole leaves no mark');
  // Killed between the write and its reload.
  const killed = run({ SILVER_WANT: 'v2', SILVER_DIE: '1' });
  t.is(killed.signal, 'SIGKILL');
  t.deepEqual(killed.changes, [f]);
  t.is(readFileSync(f, 'utf8'), 'v2\n');
  t.true(existsSync(join(fp, 'dirty.one')), 'the mark was made before the change');
  t.false(existsSync(join(fp, 'dirty.two')));
  // A check-only run says the reload is due, and keeps the mark.
  t.deepEqual(run({ SILVER_WANT: 'v2' }, true).changes, ['reload the service']);
  t.true(existsSync(join(fp, 'dirty.one')));
  // The next run: the file matches, the reload happens all the same; then the mark is gone.
  t.deepEqual(run({ SILVER_WANT: 'v2' }).changes, ['reload the service']);
  t.false(existsSync(join(fp, 'dirty.one')));
  t.deepEqual(run({ SILVER_WANT: 'v2' }).changes, [], 'and the run after is a no-op');
});

test('the node script: the fingerprint is removed before anything else runs; each layer begins with layer_begin LAYER and ends with layer_end', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'silver-layers-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  scratchLib(root);
  for (const layer of ['one', 'two']) {
    mkdirSync(join(root, layer));
    writeFileSync(join(root, layer, 'setup.sh'), `echo "${layer} ran"\n`);
  }
  const lines = nodeScript(['one', 'two'].map((layer) => ({ layer, vars: { SILVER_CHECK: '0' } })), root, 'a'.repeat(64)).toString().split('\n');
  const text = lines.join('\n');
  const lib = readFileSync(join(root, 'lib.sh'), 'utf8');
  const afterLib = text.slice(text.indexOf(lib) + lib.length).split('\n').filter((l) => l.trim() !== '');
  t.is(afterLib[0], 'fingerprint_begin', 'the first command after lib.sh');
  for (const layer of ['one', 'two']) {
    const begin = lines.indexOf(`echo "silver-layer-begin: ${layer}"`);
    t.deepEqual(lines.slice(begin + 1, begin + 3), ['(', `layer_begin ${layer}`]);
    const close = lines.indexOf(')', begin);
    t.is(lines[close - 1], 'layer_end');
  }
  t.is(lines.filter((l) => l.trim() !== '').at(-1), `fingerprint_end ${'a'.repeat(64)}`);
});

/**
 * One layer `one` in a scratch tree, its setup.sh the lines `body` gives for the paths a and b, and
 * `run`: the node script of it, with these variables (the signal only when one ended it).
 */
function followUpLayer(t: ExecutionContext, body: (a: string, b: string, owner: string) => string[]) {
  const root = mkdtempSync(join(tmpdir(), 'silver-layers-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const fp = scratchLib(root);
  const [a, b] = [join(root, 'a.conf'), join(root, 'b.conf')];
  const owner = execFileSync('id', ['-un']).toString().trim() + ':' + execFileSync('id', ['-gn']).toString().trim();
  mkdirSync(join(root, 'one'));
  writeFileSync(join(root, 'one', 'setup.sh'), body(a, b, owner).join('\n'));
  const run = (vars: Record<string, string>) => {
    const r = spawnSync('sh', ['-s'], { input: nodeScript([{ layer: 'one', vars: { SILVER_CHECK: '0', ...vars } }], root), encoding: 'utf8' });
    return { code: r.status, changes: parseLayerOutput(r.stdout).changes, ...(r.signal ? { signal: r.signal } : {}) };
  };
  return { fp, a, b, run };
}

test('crash safety of follow-ups: only the follow-ups of the changes an earlier run listed, however often the layer fails after them', (t) => {
  // (b's follow-up is the expensive one — a database restart — and b never changes after the first run)
  const { fp, a, b, run } = followUpLayer(t, (a, b, owner) => [
    `ensure_file ${a} 644 ${owner} <<EOT`, '$SILVER_A', 'EOT', '_ra=$CHANGED',
    `ensure_file ${b} 644 ${owner} <<EOT`, 'fixed', 'EOT', '_rb=$CHANGED',
    '[ -z "${SILVER_FAIL:-}" ] || exit 3',
    '[ "$_rb" = 0 ] || changed "restart the database"', '[ "$_ra" = 0 ] || changed "reload for a"', '',
  ]);
  t.deepEqual(run({ SILVER_A: 'v1' }).changes, [a, b, 'restart the database', 'reload for a']);
  t.deepEqual(run({ SILVER_A: 'v2', SILVER_FAIL: '1' }), { code: 3, changes: [a] });
  t.deepEqual(run({ SILVER_A: 'v2', SILVER_FAIL: '1' }), { code: 3, changes: [] }, 'failing again: a is still pending, b never was');
  t.is(readFileSync(join(fp, 'dirty.one'), 'utf8'), `${a}\n`);
  t.deepEqual(run({ SILVER_A: 'v2' }), { code: 0, changes: ['reload for a'] }, 'no database restart');
  t.deepEqual(run({ SILVER_A: 'v2' }), { code: 0, changes: [] });
});

test('crash safety of follow-ups: a follow-up that passed (followed) is not repeated while a later step of the layer keeps failing; one killed before it is', (t) => {
  // b's follow-up (a database restart) passes, then a later step fails (an invalid backup
  // calendar); a's change has no follow-up yet when it fails.
  const { fp, a, b, run } = followUpLayer(t, (a, b, owner) => [
    `ensure_file ${b} 644 ${owner} <<EOT`, '$SILVER_B', 'EOT',
    'if [ "$CHANGED" = 1 ]; then',
    '  [ -z "${SILVER_DIE:-}" ] || sh -c \'kill -9 "$1" "$PPID"\' sh $$',
    '  changed "restart the-database"',
    'fi',
    `followed ${b} 'restart the-database'`,
    `ensure_file ${a} 644 ${owner} <<EOT`, '$SILVER_A', 'EOT', '_ra=$CHANGED',
    '[ -z "${SILVER_FAIL:-}" ] || exit 3',
    '[ "$_ra" = 0 ] || changed "reload for a"', '',
  ]);
  t.deepEqual(run({ SILVER_A: 'v1', SILVER_B: 'v1' }).changes, [b, 'restart the-database', a, 'reload for a']);
  t.deepEqual(run({ SILVER_A: 'v2', SILVER_B: 'v2', SILVER_FAIL: '1' }), { code: 3, changes: [b, 'restart the-database', a] });
  t.is(readFileSync(join(fp, 'dirty.one'), 'utf8'), `${a}\n`, 'the restart that passed took its lines off the list');
  t.deepEqual(run({ SILVER_A: 'v2', SILVER_B: 'v2', SILVER_FAIL: '1' }), { code: 3, changes: [] }, 'failing again: no restart');
  t.deepEqual(run({ SILVER_A: 'v2', SILVER_B: 'v2' }), { code: 0, changes: ['reload for a'] });
  t.false(existsSync(join(fp, 'dirty.one')));
  // Killed between b's write and its restart: the next run restarts (then the list is clear).
  const killed = run({ SILVER_A: 'v2', SILVER_B: 'v3', SILVER_DIE: '1' });
  t.is(killed.signal, 'SIGKILL');
  t.deepEqual(killed.changes, [b]);
  t.deepEqual(run({ SILVER_A: 'v2', SILVER_B: 'v3', SILVER_FAIL: '1' }), { code: 3, changes: ['restart the-database'] });
  t.false(existsSync(join(fp, 'dirty.one')), 'nothing left to follow up: the list is gone');
  t.deepEqual(run({ SILVER_A: 'v2', SILVER_B: 'v3', SILVER_FAIL: '1' }), { code: 3, changes: [] });
});

test('followed takes off the list the lines that name its keys — a path, a follow-up\'s whole line — and no other (pattern characters literal, an empty key nothing)', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'silver-lib-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const list = join(dir, 'dirty.one');
  const lines = ['/etc/a*.conf', '/etc/a.conf.d', 'mode 644 /etc/b.conf', '/etc/c.conf: mode 600', 'install nginx certbot', 'reload nginx', ' spaced  line ', 'systemctl daemon-reload'];
  writeFileSync(list, lines.join('\n') + '\n');
  const body = (keys: string) => `_DIRTY=${list}\n_slurp < ${list}\n_DIRTY_LIST="$NL$_S"\nfollowed ${keys}\nprintf 'left:%s' "$_DIRTY_LIST"\n`;
  const r = runLib(body(`'/etc/a*.conf' /etc/b.conf /etc/c.conf 'reload nginx' ''`));
  const kept = ['/etc/a.conf.d', 'install nginx certbot', ' spaced  line ', 'systemctl daemon-reload'];
  t.is(readFileSync(list, 'utf8'), kept.join('\n') + '\n');
  t.is(r.stdout.slice(r.stdout.indexOf('left:') + 5), `\n${kept.join('\n')}\n`, 'and off the list this run reads');
  runLib(body(`/etc/a.conf.d 'install nginx certbot' ' spaced  line ' 'systemctl daemon-reload'`));
  t.false(existsSync(list), 'an empty list is removed');
});

asRoot('end_user ends every process of a user, one that keeps forking anew too, and the root helpers sudo started for it (needs root: the processes run as a uid of their own)', async (t) => {
  const uid = '64123';
  // (a uid no process on this machine has: the test ends only what it started)
  t.is(spawnSync('pgrep', ['-u', uid]).status, 1, `some process already runs as uid ${uid}`);
  const dir = mkdtempSync(join(tmpdir(), 'silver-respawn-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  chmodSync(dir, 0o755);
  // Each process starts the next, then ends: killing the ones seen at one moment misses the next.
  const respawn = join(dir, 'respawn.sh');
  writeFileSync(respawn, 'sleep 0.005\nsh "$0" &\nexit 0\n', { mode: 0o755 });
  spawnSync('setpriv', ['--reuid', uid, '--regid', uid, '--clear-groups', 'sh', '-c', `sh ${respawn} & sh ${respawn} & sleep 600 &`], { stdio: 'ignore' });
  // A root helper sudo started for the user (SUDO_UID in its environment), and a root process of
  // nobody's: the one ends with the user, the other stays.
  const helper = spawn('sleep', ['601'], { env: { ...process.env, SUDO_UID: uid }, stdio: 'ignore' });
  const other = spawn('sleep', ['602'], { stdio: 'ignore' });
  t.teardown(() => other.kill('SIGKILL'));
  const gone = (child: ReturnType<typeof spawn>) => new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
  const helperGone = gone(helper);
  await new Promise((r) => setTimeout(r, 300));
  t.is(spawnSync('pgrep', ['-u', uid]).status, 0, 'running');
  // (pkill -KILL, even several in a row, can leave some: each misses the ones born meanwhile)
  const script = `${readFileSync(join(layersRoot(), 'lib.sh'), 'utf8')}\nend_user ${uid} && echo ended\n`;
  const end = () => spawnSync('sh', ['-s'], { input: script, encoding: 'utf8', timeout: 30_000 });
  const r = end();
  try {
    t.is(r.stdout, 'ended\n', r.stderr);
    t.is(spawnSync('pgrep', ['-u', uid]).status, 1, 'none left');
    t.is(await helperGone, 'SIGKILL', 'the helper sudo started for the user');
    t.is(other.exitCode, null, "another root process runs on");
    t.is(other.signalCode, null);
  } finally {
    end();
  }
});

test('one full run at a time on a node: a second node script waits for the first to end before any layer runs', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'silver-layers-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  scratchLib(root);
  const log = join(root, 'order.log');
  mkdirSync(join(root, 'one'));
  writeFileSync(join(root, 'one', 'setup.sh'), `echo "begin $SILVER_RUN" >> ${log}\nsleep 0.5\necho "end $SILVER_RUN" >> ${log}\n`);
  const start = (run: string) =>
    new Promise<number | null>((resolve) => {
      const child = spawn('sh', ['-s'], { stdio: ['pipe', 'ignore', 'ignore'] });
      child.on('exit', (code) => resolve(code));
      child.stdin.end(nodeScript([{ layer: 'one', vars: { SILVER_CHECK: '0', SILVER_RUN: run } }], root));
    });
  const first = start('a');
  await new Promise((r) => setTimeout(r, 150));
  const codes = await Promise.all([first, start('b')]);
  t.deepEqual(codes, [0, 0]);
  t.deepEqual(readFileSync(log, 'utf8').trim().split('\n'), ['begin a', 'end a', 'begin b', 'end b']);
});

test('_pending finds a key on the list of changes as each helper names it (a path, its mode, its removal, packages, a user, a block), and nothing that only begins alike', (t) => {
  const list = ['/etc/a.conf', '/etc/b.conf: mode 644, owner root:root', 'remove /etc/c.conf', 'directory /var/log/silverlining/app', 'install nginx haproxy', 'user app-blog', '/etc/hosts: block nodeset x', 'reload nginx'].join('\n');
  const keys = ['/etc/a.conf', '/etc/b.conf', '/etc/c.conf', '/var/log/silverlining/app', 'nginx', 'haproxy', 'app-blog', '/etc/hosts', '/etc/a.con', '/etc/a.conf.d', '/var/log/silverlining', 'app-blo', 'postgresql'];
  const body = `_DIRTY_LIST="$NL"'${list}'"$NL"\nfor k in ${keys.join(' ')}; do _pending "$k"; echo "$k $CHANGED"; done\n_pending postgresql nginx; echo "any $CHANGED"\n`;
  const seen = Object.fromEntries(runLib(body).stdout.trim().split('\n').map((l) => l.split(' ')));
  t.deepEqual(seen, {
    '/etc/a.conf': '1', '/etc/b.conf': '1', '/etc/c.conf': '1', '/var/log/silverlining/app': '1', nginx: '1', haproxy: '1', 'app-blog': '1', '/etc/hosts': '1',
    '/etc/a.con': '0', '/etc/a.conf.d': '0', '/var/log/silverlining': '0', 'app-blo': '0', postgresql: '0', any: '1',
  });
});
