import test from 'ava';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { layersRoot } from '../../src/layers.js';
import { haproxyCfg, routeId } from '../../src/setup/render.js';

// bin/silver-balancer run by python3 against a temporary tree: its path constants rewritten,
// fake `haproxy` and `systemctl` first in PATH (they record their arguments), a fake runtime
// API socket. Needs no root.

const loc = (host: string, path: string, app: string) => ({ host, path, app });
const hostnames = ['foobar.com', 'www.foobar.com'];
const servers = [
  { name: 'app1.foobar.com', address: '10.4.3.2' },
  { name: 'app2.foobar.com', address: '10.4.3.3' },
];
const locations = [loc('foobar.com', '/', 'blog'), loc('foobar.com', '/wiki/', 'wiki'), loc('www.foobar.com', '/w/', 'wiki'), loc('www.foobar.com', '/', 'blog')];
const render = (health: [string, string][]) => haproxyCfg(hostnames, servers, locations, new Map(health));

const trees: string[] = [];
test.after.always(() => {
  for (const dir of trees) rmSync(dir, { recursive: true, force: true });
});

interface Tree {
  dir: string;
  script: string;
  cfg: string;
  run: string;
  log: string;
  checked: string;
  rc: string;
  sock: string;
  bin: string;
  modes: string;
  allow: string;
  pages: string;
  stateApps: string;
}

/** A temporary tree: the script with its constants pointing into it, the fakes, a live config. */
function tree(cfgText: string): Tree {
  const dir = mkdtempSync(join(tmpdir(), 'silver-balancer-'));
  trees.push(dir);
  const t: Tree = {
    dir,
    script: join(dir, 'silver-balancer'),
    cfg: join(dir, 'etc/haproxy/haproxy.cfg'),
    run: join(dir, 'run/silverlining'),
    log: join(dir, 'calls.log'),
    checked: join(dir, 'checked.cfg'),
    rc: join(dir, 'haproxy.rc'),
    sock: join(dir, 'admin.sock'),
    bin: join(dir, 'bin'),
    modes: join(dir, 'etc/haproxy/silver-modes.map'),
    allow: join(dir, 'etc/haproxy/silver-allow.acl'),
    pages: join(dir, 'etc/haproxy/silver-pages.map'),
    stateApps: join(dir, 'state/apps'),
  };
  mkdirSync(join(dir, 'etc/haproxy'), { recursive: true });
  mkdirSync(join(dir, 'run'));
  mkdirSync(t.bin);
  writeFileSync(t.cfg, cfgText, { mode: 0o644 });
  writeFileSync(t.rc, '0');
  // haproxy -c -q -f FILE: records its arguments, keeps a copy of FILE, exits with haproxy.rc.
  writeFileSync(join(t.bin, 'haproxy'), `#!/bin/sh\necho "haproxy $*" >> '${t.log}'\ncp "$4" '${t.checked}'\nexit "$(cat '${t.rc}')"\n`, { mode: 0o755 });
  writeFileSync(join(t.bin, 'systemctl'), `#!/bin/sh\necho "systemctl $*" >> '${t.log}'\n`, { mode: 0o755 });
  const constants: [RegExp, string][] = [
    [/^SOCKET = ".*"$/m, `SOCKET = ${JSON.stringify(t.sock)}`],
    [/^CFG = ".*"$/m, `CFG = ${JSON.stringify(t.cfg)}`],
    [/^RUN_DIR = ".*"$/m, `RUN_DIR = ${JSON.stringify(t.run)}`],
    [/^MODES = ".*"$/m, `MODES = ${JSON.stringify(t.modes)}`],
    [/^ALLOW = ".*"$/m, `ALLOW = ${JSON.stringify(t.allow)}`],
    [/^PAGES = ".*"$/m, `PAGES = ${JSON.stringify(t.pages)}`],
    [/^OWNER = 0$/m, `OWNER = ${process.getuid!()}`],
    [/^STATE_APPS = ".*"$/m, `STATE_APPS = ${JSON.stringify(t.stateApps)}`],
  ];
  let text = readFileSync(join(layersRoot(), 'balancer/bin/silver-balancer'), 'utf8');
  for (const [re, value] of constants) {
    if (!re.test(text)) throw new Error(`silver-balancer has no constant ${re}`);
    text = text.replace(re, value);
  }
  // Nothing outside the tree is left for the script to touch.
  if (/"\/(etc|run|var)\//.test(text)) throw new Error('silver-balancer names a path that is not a constant');
  writeFileSync(t.script, text, { mode: 0o755 });
  return t;
}

/** python3 silver-balancer ARGS with the fakes first in PATH. */
function balancer(t: Tree, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('python3', [t.script, ...args], { env: { ...process.env, PATH: `${t.bin}:${process.env['PATH']}` } }, (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const calls = (t: Tree) => (existsSync(t.log) ? readFileSync(t.log, 'utf8').trim().split('\n') : []);

test('set-health rewrites the check of each of the app\'s backends as haproxyCfg renders it, validates in the run directory, reloads; a second call changes nothing', async (t) => {
  const before = render([['blog', '/status']]);
  const tr = tree(before);
  const r = await balancer(tr, 'set-health', 'wiki', '/health');
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'changed\n');
  const after = readFileSync(tr.cfg, 'utf8');
  t.is(after, render([['blog', '/status'], ['wiki', '/health']]));
  // Exactly the check lines of wiki's two locations changed.
  const was = before.split('\n');
  t.deepEqual(
    after.split('\n').filter((line, i) => line !== was[i]),
    [
      `\thttp-check send meth GET uri /wiki/health ver HTTP/1.1 hdr Host foobar.com hdr X-Silver-Backend ${routeId({ host: 'foobar.com', path: '/wiki/' })}`,
      `\thttp-check send meth GET uri /w/health ver HTTP/1.1 hdr Host www.foobar.com hdr X-Silver-Backend ${routeId({ host: 'www.foobar.com', path: '/w/' })}`,
    ],
  );
  t.is(statSync(tr.cfg).mode & 0o777, 0o644);
  const [check, reload, ...rest] = calls(tr);
  t.true(check!.startsWith(`haproxy -c -q -f ${tr.run}/`), check);
  t.is(reload, 'systemctl reload haproxy');
  t.deepEqual(rest, []);
  t.is(readFileSync(tr.checked, 'utf8'), after, 'haproxy checked the text that was installed');
  t.is(statSync(tr.run).mode & 0o777, 0o700);
  t.deepEqual(readdirSync(tr.run).filter((f) => f !== 'haproxy-cfg.lock'), [], 'the checked copy is removed');
  t.deepEqual(readdirSync(join(tr.dir, 'etc/haproxy')), ['haproxy.cfg']);

  const again = await balancer(tr, 'set-health', 'wiki', '/health');
  t.is(again.code, 0, again.stderr);
  t.is(again.stdout, 'unchanged\n');
  t.is(calls(tr).length, 2, 'neither haproxy nor systemctl was called again');
  t.is(readFileSync(tr.cfg, 'utf8'), after);

  // Back to the location's root: what haproxyCfg renders for an app without a health path.
  t.is((await balancer(tr, 'set-health', 'blog', '/')).stdout, 'changed\n');
  t.is(readFileSync(tr.cfg, 'utf8'), render([['wiki', '/health']]));
});

test('resync-health puts the health paths of this node\'s apps record back into a configuration written from an older one (setup-node beside an update)', async (t) => {
  const tr = tree(render([['blog', '/status'], ['wiki', '/health']]));
  // (setup-node's write, rendered from the record it read at its start: wiki's old path)
  mkdirSync(join(tr.dir, 'state'));
  const before = readFileSync(tr.cfg, 'utf8');
  t.is((await balancer(tr, 'resync-health', '3')).stdout, 'unchanged\n', 'no record: nothing to do');
  // (a replica no newer than what the configuration was rendered from — this node missed a write —
  // or a damaged one, which the deploy user could write: nothing changes, nothing fails)
  for (const text of [JSON.stringify({ seq: 3, health: { wiki: '/old' } }), JSON.stringify({ seq: 2, health: { wiki: '/older' } }), '[]', 'null', '{"seq":9,"health":[]}', '{"seq":"9","health":{}}', '{"seq":9,"health":{"wiki":', '']) {
    writeFileSync(tr.stateApps, text);
    const r = await balancer(tr, 'resync-health', '3');
    t.is(r.code, 0, `${text}: ${r.stderr}`);
    t.is(r.stdout, 'unchanged\n', text);
    t.is(readFileSync(tr.cfg, 'utf8'), before, text);
  }
  writeFileSync(tr.stateApps, JSON.stringify({ seq: 4, health: { blog: '/status', wiki: '/healthz', 'bad name': '/x', gone: '/y' } }));
  const r = await balancer(tr, 'resync-health', '3');
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, 'changed\n');
  t.is(readFileSync(tr.cfg, 'utf8'), render([['blog', '/status'], ['wiki', '/healthz']]));
  t.true(calls(tr).includes('systemctl reload haproxy'));
  t.is((await balancer(tr, 'resync-health', '3')).stdout, 'unchanged\n');
  for (const bad of ['x', '-1', '']) t.is((await balancer(tr, 'resync-health', bad)).code, 2, bad);
});

test('set-health waits while the configuration\'s lock is held (setup-node\'s balancer layer writing haproxy.cfg): neither change is lost', async (t) => {
  const { spawn } = await import('node:child_process');
  const tr = tree(render([['blog', '/status']]));
  mkdirSync(tr.run, { mode: 0o700 });
  // (the layer: under the lock, it writes a configuration with one more app server)
  const layerCfg = render([['blog', '/status']]).replace(/server app2\.foobar\.com/g, 'server app9.foobar.com');
  const staged = join(tr.dir, 'layer.cfg');
  writeFileSync(staged, layerCfg);
  const holder = spawn('flock', ['-x', join(tr.run, 'haproxy-cfg.lock'), '-c', `sleep 1; cp '${staged}' '${tr.cfg}'`], { stdio: 'ignore' });
  const done = new Promise((r) => holder.on('exit', r));
  for (let i = 0; i < 100 && !existsSync(join(tr.run, 'haproxy-cfg.lock')); i++) await new Promise((r) => setTimeout(r, 10));
  const r = await balancer(tr, 'set-health', 'wiki', '/healthz');
  await done;
  t.is(r.code, 0, r.stderr);
  const now = readFileSync(tr.cfg, 'utf8');
  t.true(now.includes('server app9.foobar.com'), "the layer's write is kept");
  t.true(now.includes('/wiki/healthz'), "and the update's path is in it");
});

test('set-health leaves the live configuration untouched when haproxy rejects the new one', async (t) => {
  const before = render([]);
  const tr = tree(before);
  writeFileSync(tr.rc, '1');
  const r = await balancer(tr, 'set-health', 'wiki', '/health');
  t.is(r.code, 1);
  t.regex(r.stderr, /haproxy rejects the new configuration/);
  t.is(readFileSync(tr.cfg, 'utf8'), before);
  t.is(calls(tr).length, 1);
  t.regex(calls(tr)[0]!, /^haproxy -c -q -f /);
  t.deepEqual(readdirSync(tr.run).filter((f) => f !== 'haproxy-cfg.lock'), []);
  t.deepEqual(readdirSync(join(tr.dir, 'etc/haproxy')), ['haproxy.cfg']);
});

test('set-health refuses bad app names and paths with exit 2, touching nothing', async (t) => {
  const before = render([]);
  const tr = tree(before);
  for (const [app, path] of [
    ['x;y', '/health'],
    ['wiki', '/a b'],
    ['wiki', '/$(id)'],
    ['wiki', 'health'],
    ['Wiki', '/health'],
    ['wiki', '/health\n'],
    ['wiki', '/health\n\tserver x 1.2.3.4:80'],
  ]) {
    const r = await balancer(tr, 'set-health', app!, path!);
    t.is(r.code, 2, `${app} ${path}`);
    t.regex(r.stderr, /APP is \[a-z\]/);
  }
  t.is((await balancer(tr, 'set-health', 'wiki')).code, 2, 'a missing PATH');
  t.is(readFileSync(tr.cfg, 'utf8'), before);
  t.deepEqual(calls(tr), []);
  t.false(existsSync(tr.run));
});

test('set-health refuses a run directory that is a symbolic link', async (t) => {
  const before = render([]);
  const tr = tree(before);
  mkdirSync(join(tr.dir, 'elsewhere'));
  symlinkSync(join(tr.dir, 'elsewhere'), tr.run);
  const r = await balancer(tr, 'set-health', 'wiki', '/health');
  t.is(r.code, 1);
  t.regex(r.stderr, /is not a directory owned by root/);
  t.is(readFileSync(tr.cfg, 'utf8'), before);
  t.deepEqual(calls(tr), []);
  t.deepEqual(readdirSync(join(tr.dir, 'elsewhere')), []);
});

// `show servers state` as HAProxy 2.6 answers it: a version line, a header, a server a line.
const STATE = [
  '1',
  '# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port',
  '3 app_blog_1 1 app1.foobar.com 10.4.3.2 2 0 1 1 20 6 3 4 6 0 0 0 - 80 - 0 0 - - 0',
  '3 app_blog_1 2 app2.foobar.com 10.4.3.3 2 0 1 1 20 6 3 4 6 0 0 0 - 80 - 0 0 - - 0',
  '4 app_wiki_1 1 app1.foobar.com 10.4.3.2 0 1 1 1 20 6 3 0 6 0 0 0 - 80 - 0 0 - - 0',
  '4 app_wiki_1 2 app2.foobar.com 10.4.3.3 2 8 1 1 20 6 3 4 6 0 0 0 - 80 - 0 0 - - 0',
  '5 other 1 app1.foobar.com 10.4.3.2 2 0 1 1 20 6 3 4 6 0 0 0 - 80 - 0 0 - - 0',
  '',
  '',
].join('\n');

/** A fake runtime API on the tree's socket: records each command, answers `show servers state`. */
async function fakeApi(tr: Tree): Promise<{ commands: string[]; server: Server }> {
  const commands: string[] = [];
  const server = createServer((c) => {
    let buf = '';
    c.on('data', (d) => {
      buf += d.toString();
      if (!buf.includes('\n')) return;
      const cmd = buf.trim();
      commands.push(cmd);
      c.end(cmd === 'show servers state' ? STATE : '\n');
    });
  });
  await new Promise<void>((resolve) => server.listen(tr.sock, resolve));
  return { commands, server };
}

test('status lists the servers of every app backend, backend first; disable, enable and drain act in every backend that has the node', async (t) => {
  const tr = tree(render([]));
  const api = await fakeApi(tr);
  try {
    const status = await balancer(tr, 'status');
    t.is(status.code, 0, status.stderr);
    t.is(
      status.stdout,
      [
        'app_blog_1 app1.foobar.com 10.4.3.2 up ready',
        'app_blog_1 app2.foobar.com 10.4.3.3 up ready',
        'app_wiki_1 app1.foobar.com 10.4.3.2 stopped maint',
        'app_wiki_1 app2.foobar.com 10.4.3.3 up drain',
        '',
      ].join('\n'),
    );
    api.commands.length = 0;
    t.is((await balancer(tr, 'disable', 'app1.foobar.com')).code, 0);
    t.deepEqual(api.commands, ['show servers state', 'set server app_blog_1/app1.foobar.com state maint', 'set server app_wiki_1/app1.foobar.com state maint']);
    api.commands.length = 0;
    t.is((await balancer(tr, 'enable', 'app2.foobar.com')).code, 0);
    t.is((await balancer(tr, 'drain', 'app2.foobar.com')).code, 0);
    t.deepEqual(api.commands.filter((c) => c.startsWith('set ')), [
      'set server app_blog_1/app2.foobar.com state ready',
      'set server app_wiki_1/app2.foobar.com state ready',
      'set server app_blog_1/app2.foobar.com state drain',
      'set server app_wiki_1/app2.foobar.com state drain',
    ]);
    api.commands.length = 0;
    const none = await balancer(tr, 'disable', 'app9.foobar.com');
    t.is(none.code, 1);
    t.regex(none.stderr, /app9\.foobar\.com is in no app backend/);
    t.deepEqual(api.commands, ['show servers state']);
    t.is((await balancer(tr, 'disable')).code, 2, 'a missing NODE');
  } finally {
    api.server.close();
  }
});

test('set-health installs the configuration with mode 644, whatever the old file\'s mode', async (t) => {
  const tr = tree(render([]));
  chmodSync(tr.cfg, 0o600);
  const r = await balancer(tr, 'set-health', 'wiki', '/ok');
  t.is(r.code, 0, r.stderr);
  t.is(statSync(tr.cfg).mode & 0o777, 0o644);
});

// ---- mode: the maintenance and read-only modes -------------------------------------------------

/**
 * A fake of HAProxy's runtime API for maps and ACLs, as 2.6 answers it: `prepare` makes a new
 * version, `add @V` fills it, `commit @V` makes it the one applied; `show map|acl` lists the
 * applied entries. Files it was not started with are unknown (a configuration without modes).
 */
async function fakeRuntime(tr: Tree, known = [tr.modes, tr.allow, tr.pages]) {
  const commands: string[] = [];
  const applied = new Map<string, string[]>(known.map((k) => [k, []]));
  const pending = new Map<string, string[]>();
  let version = 0;
  const answer = (cmd: string): string => {
    const f = cmd.split(' ');
    const unknown = 'Unknown map identifier. Please use #<id> or <file>.\n';
    if (f[0] === 'prepare') {
      if (!applied.has(f[2]!)) return unknown;
      version++;
      pending.set(`${f[2]}@${version}`, []);
      return `New version created: ${version}\n\n`;
    }
    if (f[0] === 'add') {
      const entry = pending.get(`${f[3]}${f[2]}`);
      if (!entry) return 'Unknown version.\n';
      entry.push(f.slice(4).join(' '));
      return '\n';
    }
    if (f[0] === 'commit') {
      const entry = pending.get(`${f[3]}${f[2]}`);
      if (!entry) return 'Unknown version.\n';
      applied.set(f[3]!, entry);
      return '\n';
    }
    if (f[0] === 'show' && (f[1] === 'map' || f[1] === 'acl')) {
      if (!applied.has(f[2]!)) return unknown;
      return applied.get(f[2]!)!.map((e, i) => `0x${(i + 1).toString(16)} ${e}\n`).join('') + '\n';
    }
    return 'Unknown command.\n';
  };
  const server = createServer((c) => {
    let buf = '';
    c.on('data', (d) => {
      buf += d.toString();
      if (!buf.includes('\n')) return;
      const cmd = buf.trim();
      commands.push(cmd);
      c.end(answer(cmd));
    });
  });
  await new Promise<void>((resolve) => server.listen(tr.sock, resolve));
  return { commands, applied, server, close: () => new Promise<void>((r) => server.close(() => r())) };
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const mapLines = (tr: Tree) => readFileSync(tr.modes, 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
const fileLines = (path: string) => readFileSync(path, 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
interface ModeJson {
  modes: Record<string, { mode: string; retryAfter: number; message: string }>;
  allow: string[];
  haproxy: string;
  live: boolean | null;
}

test('mode set: the entry written atomically (mode 644, nothing left beside it) and switched in the running haproxy as one version; the page text HTML-escaped, round-tripping in status', async (t) => {
  const tr = tree(render([]));
  const api = await fakeRuntime(tr);
  try {
    const hostile = 'Back soon <script>alert("x")</script> 100% \\ ; & é\nline two';
    const r = await balancer(tr, 'mode', 'set', '*', 'maintenance', '45', b64(hostile));
    t.is(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as ModeJson;
    t.deepEqual(out, { modes: { '*': { mode: 'maintenance', retryAfter: 45, message: hostile } }, allow: [], pages: {}, haproxy: 'running', live: true });
    const [line] = mapLines(tr);
    const m = /^\* maintenance:45:([A-Za-z0-9+/]+=*)$/.exec(line!);
    t.truthy(m, line);
    const page = Buffer.from(m![1]!, 'base64').toString('ascii');
    t.is(page, 'Back soon &#60;script&#62;alert(&#34;x&#34;)&#60;/script&#62; 100&#37; &#92; &#59; &#38; &#233;&#10;line two');
    t.notRegex(page, /[<>"'%\\\n]/, 'no markup in the page: every character but letters, digits and a few marks is an entity');
    t.regex(m![1]!, /^[A-Za-z0-9+/=]+$/, 'and the map holds it as base64: no space, %, ", backslash, ; or newline');
    t.is(statSync(tr.modes).mode & 0o777, 0o644);
    t.deepEqual(readdirSync(join(tr.dir, 'etc/haproxy')).sort(), ['haproxy.cfg', 'silver-modes.map'], 'no temporary file left');
    // One version prepared, filled, committed; then read back for the status.
    t.deepEqual(api.commands.slice(0, 3), [`prepare map ${tr.modes}`, `add map @1 ${tr.modes} * ${line!.slice(2)}`, `commit map @1 ${tr.modes}`]);
    t.deepEqual(api.applied.get(tr.modes), [line!]);
    const st = await balancer(tr, 'mode', 'status');
    t.deepEqual(JSON.parse(st.stdout), out);
    t.is(calls(tr).length, 0, 'neither haproxy -c nor a reload');
  } finally {
    await api.close();
  }
});

test('mode set replaces an entry, keys are independent; clear removes keys or --all; allow replaces the list, normalised and deduplicated; the running haproxy always holds what the files hold', async (t) => {
  const tr = tree(render([]));
  const api = await fakeRuntime(tr);
  try {
    await balancer(tr, 'mode', 'set', '*', 'maintenance', '30', b64('a'));
    await balancer(tr, 'mode', 'set', 'blog', 'read-only', '10', b64('b'));
    const r = await balancer(tr, 'mode', 'set', 'blog', 'online', '5', b64('c'));
    t.deepEqual((JSON.parse(r.stdout) as ModeJson).modes, { '*': { mode: 'maintenance', retryAfter: 30, message: 'a' }, blog: { mode: 'online', retryAfter: 5, message: 'c' } });
    t.deepEqual(mapLines(tr).map((l) => l.split(' ')[0]), ['*', 'blog']);
    t.deepEqual(api.applied.get(tr.modes), mapLines(tr));

    const allow = await balancer(tr, 'mode', 'allow', '10.213.248.1', '10.0.0.0/8', '10.213.248.1/32', '2001:DB8:0:0::/64');
    t.is(allow.code, 0, allow.stderr);
    t.deepEqual((JSON.parse(allow.stdout) as ModeJson).allow, ['10.213.248.1/32', '10.0.0.0/8', '2001:db8::/64']);
    t.deepEqual(fileLines(tr.allow), ['10.213.248.1/32', '10.0.0.0/8', '2001:db8::/64']);
    t.deepEqual(api.applied.get(tr.allow), fileLines(tr.allow));
    t.true(api.commands.includes(`add acl @4 ${tr.allow} 10.0.0.0/8`), api.commands.join('\n'));

    const cleared = JSON.parse((await balancer(tr, 'mode', 'clear', 'blog')).stdout) as ModeJson;
    t.deepEqual(Object.keys(cleared.modes), ['*']);
    t.deepEqual(api.applied.get(tr.modes), mapLines(tr));
    const all = JSON.parse((await balancer(tr, 'mode', 'clear', '--all')).stdout) as ModeJson;
    t.deepEqual(all.modes, {});
    t.deepEqual(mapLines(tr), []);
    t.deepEqual(api.applied.get(tr.modes), []);
    t.deepEqual(all.allow, ['10.213.248.1/32', '10.0.0.0/8', '2001:db8::/64'], 'clear leaves the allow list');
    const none = JSON.parse((await balancer(tr, 'mode', 'allow')).stdout) as ModeJson;
    t.deepEqual(none.allow, []);
    t.deepEqual(api.applied.get(tr.allow), []);
    t.true(none.live);
  } finally {
    await api.close();
  }
});

test('mode without a running haproxy changes only the files (it loads them when it starts); status says so', async (t) => {
  const tr = tree(render([]));
  const r = await balancer(tr, 'mode', 'set', 'wiki', 'read-only', '60', b64('Reading only'));
  t.is(r.code, 0, r.stderr);
  t.deepEqual(JSON.parse(r.stdout), { modes: { wiki: { mode: 'read-only', retryAfter: 60, message: 'Reading only' } }, allow: [], pages: {}, haproxy: 'not running', live: null });
  t.is(mapLines(tr).length, 1);
  t.is((await balancer(tr, 'mode', 'allow', '192.168.0.0/16')).code, 0);
  t.deepEqual(fileLines(tr.allow), ['192.168.0.0/16']);
  // A stale socket file (haproxy gone) is the same.
  writeFileSync(tr.sock, '');
  t.is((await balancer(tr, 'mode', 'clear', 'wiki')).code, 0);
  t.deepEqual(mapLines(tr), []);
});

test('mode against a running haproxy whose configuration has no mode rules: the files are written, the change fails, naming setup-node', async (t) => {
  const tr = tree(render([]));
  const api = await fakeRuntime(tr, []);
  try {
    const r = await balancer(tr, 'mode', 'set', '*', 'maintenance', '30', b64('x'));
    t.is(r.code, 1);
    t.regex(r.stderr, /running haproxy has no mode rules .*run silver setup-node/);
    t.is(mapLines(tr).length, 1);
    const st = JSON.parse((await balancer(tr, 'mode', 'status')).stdout) as ModeJson;
    t.is(st.haproxy, 'no mode rules');
  } finally {
    await api.close();
  }
});

test('mode status compares the running haproxy with the files: an entry changed behind its back is not live', async (t) => {
  const tr = tree(render([]));
  const api = await fakeRuntime(tr);
  try {
    await balancer(tr, 'mode', 'set', '*', 'maintenance', '30', b64('x'));
    api.applied.set(tr.modes, []);
    t.false((JSON.parse((await balancer(tr, 'mode', 'status')).stdout) as ModeJson).live);
    // The next change puts the whole map back.
    await balancer(tr, 'mode', 'set', 'blog', 'read-only', '30', b64('y'));
    t.deepEqual(api.applied.get(tr.modes), mapLines(tr));
    t.is(api.applied.get(tr.modes)!.length, 2);
  } finally {
    await api.close();
  }
});

test('mode refuses hostile or malformed input with exit 2, touching nothing (no file, no socket command, no run directory)', async (t) => {
  const tr = tree(render([]));
  const api = await fakeRuntime(tr);
  const ok = b64('fine');
  try {
    const cases: [string[], RegExp][] = [
      [['set', 'Blog', 'maintenance', '30', ok], /KEY is \* or an app name/],
      [['set', 'a b', 'maintenance', '30', ok], /KEY/],
      [['set', 'x;y', 'maintenance', '30', ok], /KEY/],
      [['set', '*x', 'maintenance', '30', ok], /KEY/],
      [['set', '../etc', 'maintenance', '30', ok], /KEY/],
      [['set', 'blog\n', 'maintenance', '30', ok], /KEY/],
      [['set', 'blog\nadd map x', 'maintenance', '30', ok], /KEY/],
      [['set', 'a'.repeat(65), 'maintenance', '30', ok], /KEY/],
      [['set', 'blog', 'off', '30', ok], /MODE is one of maintenance, read-only, online/],
      [['set', 'blog', 'MAINTENANCE', '30', ok], /MODE/],
      [['set', 'blog', 'maintenance:1:x', '30', ok], /MODE/],
      [['set', 'blog', 'maintenance', '0', ok], /RETRY is a whole number of seconds from 1 to 86400/],
      [['set', 'blog', 'maintenance', '86401', ok], /RETRY/],
      [['set', 'blog', 'maintenance', '-1', ok], /RETRY/],
      [['set', 'blog', 'maintenance', '30s', ok], /RETRY/],
      [['set', 'blog', 'maintenance', '030', ok], /RETRY/],
      [['set', 'blog', 'maintenance', '1e3', ok], /RETRY/],
      [['set', 'blog', 'maintenance', '30\n', ok], /RETRY/],
      [['set', 'blog', 'maintenance', '30', 'not base64!'], /MESSAGE_B64 is not base64/],
      [['set', 'blog', 'maintenance', '30', 'Zm9v\nYmFy'], /MESSAGE_B64 is not base64/],
      [['set', 'blog', 'maintenance', '30', ''], /the message has 0 characters/],
      [['set', 'blog', 'maintenance', '30', Buffer.from([0xff, 0xfe, 0x41]).toString('base64')], /not base64 of UTF-8/],
      [['set', 'blog', 'maintenance', '30', b64('x'.repeat(1001))], /1001 characters; it must have 1 to 1000/],
      [['set', 'blog', 'maintenance', '30', b64('nul \u0000 here')], /control or unassigned character \(U\+0000\)/],
      [['set', 'blog', 'maintenance', '30', b64('esc \u001b[31m')], /U\+001B/],
      [['set', 'blog', 'maintenance', '30', b64('cr \r')], /U\+000D/],
      [['set', 'blog', 'maintenance', '30'], /usage/],
      [['set', 'blog', 'maintenance', '30', ok, 'extra'], /usage/],
      [['clear'], /usage/],
      [['clear', '--all', 'blog'], /usage/],
      [['clear', 'Blog'], /KEY/],
      [['allow', '10.0.0.1/24'], /has host bits set/],
      [['allow', '10.0.0.0/33'], /not an address or CIDR network/],
      [['allow', '300.1.1.1'], /not an address or CIDR network/],
      [['allow', '010.0.0.1'], /not an address or CIDR network/],
      [['allow', '10.0.0.0/8;clear'], /not an address or CIDR network/],
      [['allow', '10.0.0.0/8 10.1.0.0/16'], /not an address or CIDR network/],
      [['allow', 'fe80::1%eth0'], /not an address or CIDR network/],
      [['allow', '10.0.0.0/8\nadd acl x'], /not an address or CIDR network/],
      [['allow', ''], /not an address or CIDR network/],
      [['allow', 'localhost'], /not an address or CIDR network/],
      [['allow', ...Array.from({ length: 257 }, (_, i) => `10.0.${i >> 8}.${i & 255}`)], /at most 256/],
      [['status', 'x'], /usage/],
      [['nosuch'], /usage/],
      [[], /usage/],
      [['restore', '*:maintenance:30'], /restore takes KEY:MODE:RETRY:MESSAGE_B64/],
      [['restore', 'Blog:maintenance:30:' + ok], /KEY/],
      [['restore', '*:maintenance:0:' + ok], /RETRY/],
      [['restore', '*:maintenance:30:' + ok, '--allow', '10.0.0.1/8'], /host bits/],
    ];
    for (const [args, re] of cases) {
      const r = await balancer(tr, 'mode', ...args);
      t.is(r.code, 2, `${JSON.stringify(args).slice(0, 120)}: ${r.stderr}`);
      t.regex(r.stderr, re, JSON.stringify(args).slice(0, 120));
    }
    t.false(existsSync(tr.modes));
    t.false(existsSync(tr.allow));
    t.false(existsSync(tr.run), 'no run directory (the lock) was made');
    t.deepEqual(api.commands, []);
  } finally {
    await api.close();
  }
});

test('mode ignores (and names) lines of the map file silver would not write, never passing them to haproxy', async (t) => {
  const tr = tree(render([]));
  const api = await fakeRuntime(tr);
  try {
    writeFileSync(tr.modes, `# a comment\nblog maintenance:30:${b64('ok')}\nwiki maintenance:30:%[src]\nBad read-only:1:eA==\nx maintenance:99999:eA==\n`);
    const r = await balancer(tr, 'mode', 'set', '*', 'read-only', '30', b64('y'));
    t.is(r.code, 0, r.stderr);
    t.regex(r.stderr, /ignoring 'wiki maintenance:30:%\[src\]'/);
    t.deepEqual(mapLines(tr).map((l) => l.split(' ')[0]), ['*', 'blog']);
    t.deepEqual(api.applied.get(tr.modes), mapLines(tr));
  } finally {
    await api.close();
  }
});

test('mode restore (setup-node) writes each file only when it is missing: existing ones are the balancer\'s truth', async (t) => {
  const tr = tree(render([]));
  const entries = [`*:maintenance:30:${b64('from the record')}`, `blog:read-only:5:${b64('ro')}`];
  const first = await balancer(tr, 'mode', 'restore', ...entries, '--allow', '10.213.248.1');
  t.is(first.code, 0, first.stderr);
  t.is(first.stdout, `created ${tr.modes}\ncreated ${tr.allow}\ncreated ${tr.pages}\n`);
  const st = JSON.parse((await balancer(tr, 'mode', 'status')).stdout) as ModeJson;
  t.deepEqual(st.modes, { '*': { mode: 'maintenance', retryAfter: 30, message: 'from the record' }, blog: { mode: 'read-only', retryAfter: 5, message: 'ro' } });
  t.deepEqual(st.allow, ['10.213.248.1/32']);
  // The balancer's own change since (off), then setup-node again with the old record: kept.
  await balancer(tr, 'mode', 'clear', '--all');
  const before = readFileSync(tr.modes, 'utf8');
  const again = await balancer(tr, 'mode', 'restore', ...entries, '--allow');
  t.is(again.code, 0, again.stderr);
  t.is(again.stdout, '');
  t.is(readFileSync(tr.modes, 'utf8'), before);
  t.deepEqual(fileLines(tr.allow), ['10.213.248.1/32']);
  // Only the missing one is written; an empty record makes empty files.
  rmSync(tr.allow);
  t.is((await balancer(tr, 'mode', 'restore', '--allow')).stdout, `created ${tr.allow}\n`);
  t.deepEqual(fileLines(tr.allow), []);
  t.is(readFileSync(tr.modes, 'utf8'), before);
});

test('mode refuses a run directory (its lock) that is a symbolic link, changing nothing', async (t) => {
  const tr = tree(render([]));
  mkdirSync(join(tr.dir, 'elsewhere'));
  symlinkSync(join(tr.dir, 'elsewhere'), tr.run);
  const r = await balancer(tr, 'mode', 'set', '*', 'maintenance', '30', b64('x'));
  t.is(r.code, 1);
  t.regex(r.stderr, /is not a directory owned by root/);
  t.false(existsSync(tr.modes));
  t.deepEqual(readdirSync(join(tr.dir, 'elsewhere')), []);
});
