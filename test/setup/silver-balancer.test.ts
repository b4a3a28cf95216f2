import test from 'ava';
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { layersRoot } from '../../src/layers.js';
import { haproxyCfg } from '../../src/setup/render.js';

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
    [/^OWNER = 0$/m, `OWNER = ${process.getuid!()}`],
  ];
  let text = readFileSync(join(layersRoot(), 'balancer/bin/silver-balancer'), 'utf8');
  for (const [re, value] of constants) {
    if (!re.test(text)) throw new Error(`silver-balancer has no constant ${re}`);
    text = text.replace(re, value);
  }
  // Nothing outside the tree is left for the script to touch.
  if (/"\/(etc|run)\//.test(text)) throw new Error('silver-balancer names a path that is not a constant');
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
    ['\thttp-check send meth GET uri /wiki/health ver HTTP/1.1 hdr Host foobar.com', '\thttp-check send meth GET uri /w/health ver HTTP/1.1 hdr Host www.foobar.com'],
  );
  t.is(statSync(tr.cfg).mode & 0o777, 0o644);
  const [check, reload, ...rest] = calls(tr);
  t.true(check!.startsWith(`haproxy -c -q -f ${tr.run}/`), check);
  t.is(reload, 'systemctl reload haproxy');
  t.deepEqual(rest, []);
  t.is(readFileSync(tr.checked, 'utf8'), after, 'haproxy checked the text that was installed');
  t.is(statSync(tr.run).mode & 0o777, 0o700);
  t.deepEqual(readdirSync(tr.run), [], 'the checked copy is removed');
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
  t.deepEqual(readdirSync(tr.run), []);
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
