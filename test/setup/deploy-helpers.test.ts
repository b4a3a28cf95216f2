import test from 'ava';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, closeSync, copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, openSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { layersRoot } from '../../src/layers.js';
import { parseGet } from '../../src/deploy/shared-state.js';

// The root helpers silver-deploy and silver-state run by a real `sh` against a temporary tree:
// their `PREFIX=` line rewritten to point into it, and fakes first in PATH for what would act on
// the machine (systemctl, nginx, curl, id, chown, install, systemd-run, dpkg-query, apt-get, nft).
// Every fake appends its argv to calls.log; files in the tree steer them. flock, stat, tar, mv,
// ln, readlink are the real ones. Needs no root, and passes as root too.

const trees: string[] = [];
test.after.always(() => {
  for (const dir of trees) rmSync(dir, { recursive: true, force: true });
});

interface Tree {
  dir: string;
  prefix: string;
  bin: string;
  script: string;
  /** <prefix>/var/lib/silverlining/apps */
  apps: string;
  /** <prefix>/etc/silverlining/nginx */
  nginx: string;
  /** <prefix>/run/silverlining */
  run: string;
  /** <prefix>/var/lib/silverlining/state */
  state: string;
  units: string;
  /** what TMPDIR points at (stays empty) */
  tmp: string;
}

/** The helper's text with its PREFIX line pointing at `prefix`. */
function helperText(path: string, prefix: string): string {
  const text = readFileSync(join(layersRoot(), path), 'utf8');
  if ((text.match(/^PREFIX=$/gm) ?? []).length !== 1) throw new Error(`${path} has no single line PREFIX=`);
  return text.replace(/^PREFIX=$/m, `PREFIX=${prefix}`);
}

const fake = (t: Tree, name: string, body: string) =>
  writeFileSync(join(t.bin, name), `#!/bin/sh\nT='${t.dir}'\necho "${name} $*" >> "$T/calls.log"\n${body}\n`, { mode: 0o755 });

/** A temporary tree for `helper` (a path under setup-layers/) with the fakes in place. */
function tree(helper: string): Tree {
  const dir = mkdtempSync(join(tmpdir(), 'silver-helpers-'));
  trees.push(dir);
  const prefix = join(dir, 'root');
  const t: Tree = {
    dir,
    prefix,
    bin: join(dir, 'bin'),
    script: join(dir, helper.split('/').pop()!),
    apps: join(prefix, 'var/lib/silverlining/apps'),
    nginx: join(prefix, 'etc/silverlining/nginx'),
    run: join(prefix, 'run/silverlining'),
    state: join(prefix, 'var/lib/silverlining/state'),
    units: join(prefix, 'etc/systemd/system'),
    tmp: join(dir, 'tmp'),
  };
  for (const d of [t.bin, t.apps, t.nginx, join(prefix, 'run'), t.units, t.tmp]) mkdirSync(d, { recursive: true });
  writeFileSync(t.script, helperText(helper, prefix));
  // (silver-deploy's request helper where it calls it, as setup-node installs it)
  const helpers = join(prefix, 'usr/local/lib/silverlining/bin');
  mkdirSync(helpers, { recursive: true });
  copyFileSync(join(layersRoot(), 'appserver/bin/silver-http'), join(helpers, 'silver-http'));
  chmodSync(join(helpers, 'silver-http'), 0o755);
  writeFileSync(join(dir, 'users'), 'app-blog\napp-wiki\napp-news\n');
  // (the app users, as the helpers read them: the password file, uid 4242 as the id fake says)
  mkdirSync(join(prefix, 'etc'), { recursive: true });
  writeFileSync(join(prefix, 'etc/passwd'), ['root:x:0:0::/root:/bin/sh', ...['blog', 'wiki', 'news'].map((a) => `app-${a}:x:4242:4242::/nonexistent:/usr/sbin/nologin`)].join('\n') + '\n');
  // systemctl: is-active answers from active-units (start/restart add a unit, stop removes it);
  // try-reload-or-restart kills its caller once when kill-on-reload exists.
  fake(
    t,
    'systemctl',
    `for u; do :; done
case "$1" in
  is-active)
    # (any of the units active: 0, as systemctl answers)
    for x; do case "$x" in is-active | -q) ;; *) if grep -qxF "$x" "$T/active-units" 2> /dev/null; then [ "$2" = -q ] || echo active; exit 0; fi ;; esac; done
    [ "$2" = -q ] || echo inactive; exit 3 ;;
  start | restart) echo "$u" >> "$T/active-units" ;;
  stop) { grep -vxF "$u" "$T/active-units" 2> /dev/null || true; } > "$T/active-units.new"; mv "$T/active-units.new" "$T/active-units" ;;
  try-reload-or-restart) if [ -e "$T/kill-on-reload" ]; then rm -f "$T/kill-on-reload"; kill -9 "$PPID"; fi ;;
  show) if [ -e "$T/need-reload" ]; then echo yes; else echo no; fi ;;
  daemon-reload) rm -f "$T/need-reload" ;;
esac
exit 0`,
  );
  // nginx -t: exits with nginx.rc (0 when missing); kills its caller once when kill-on-test exists.
  fake(
    t,
    'nginx',
    `if [ -e "$T/kill-on-test" ]; then rm -f "$T/kill-on-test"; kill -9 "$PPID"; fi
rc=$(cat "$T/nginx.rc" 2> /dev/null || echo 0)
[ "$rc" = 0 ] || echo "nginx: [emerg] fake rejection" >&2
exit "$rc"`,
  );
  // curl -o FILE -w '%{http_code}' URL: answers the code in curl.code (200 when missing; 000:
  // refused), the body in curl.body.
  fake(
    t,
    'curl',
    `out=/dev/null w=''
while [ $# -gt 0 ]; do case "$1" in -o) out=$2; shift ;; -w) w=$2; shift ;; esac; shift; done
code=$(cat "$T/curl.code" 2> /dev/null || echo 200)
[ "$code" = 000 ] && exit 7
body() { if [ -f "$T/curl.body" ]; then cat "$T/curl.body"; fi; }
if [ "$out" = - ]; then body; elif [ "$out" != /dev/null ]; then body > "$out"; fi
case "$w" in '%{stderr}'*) printf '%s' "$code" >&2 ;; *) printf '%s' "$code" ;; esac`,
  );
  // timeout SECONDS .../silver-http PORT PATH (a request over /dev/tcp: the health check, the
  // waits): answers the code in curl.code like curl (000: refused, exit 7).
  // Logged as `http SECONDS URL`.
  writeFileSync(
    join(t.bin, 'timeout'),
    `#!/bin/sh
case "$2" in */silver-http) ;; *) exec /usr/bin/timeout "$@" ;; esac
echo "http $1 http://127.0.0.1:$3$4" >> '${t.dir}/calls.log'
code=$(cat '${t.dir}/curl.code' 2> /dev/null || echo 200)
[ "$code" = 000 ] && exit 7
echo "$code"
`,
    { mode: 0o755 },
  );
  // id -u NAME: a number for the users listed in users; everything else is the real id's.
  fake(
    t,
    'id',
    `if [ "$1" = -u ] && [ $# -eq 2 ]; then
  while IFS= read -r u; do [ "$u" != "$2" ] || { echo 4242; exit 0; }; done < "$T/users"
  echo "id: '$2': no such user" >&2; exit 1
fi
exec /usr/bin/id "$@"`,
  );
  fake(t, 'chown', 'exit 0');
  // nft -f FILE: the firewall's listeners table (never this machine's firewall); nft.rc fails it.
  fake(t, 'nft', 'exit "$(cat "$T/nft.rc" 2> /dev/null || echo 0)"');
  // install: the real one without -o/-g (the app users do not exist here).
  fake(
    t,
    'install',
    `skip=
for a; do
  shift
  if [ -n "$skip" ]; then skip=; continue; fi
  case "$a" in -o | -g) skip=1; continue ;; esac
  set -- "$@" "$a"
done
exec /usr/bin/install "$@"`,
  );
  // systemd-run: keeps the script file it is given (its last argument), which the helper removes after.
  // systemd-run: a script's file is kept in last-script; a request (`-- curl ...`) is made by the
  // curl fake, as the unit would.
  fake(t, 'systemd-run', 'case " $* " in *" -- curl "*) while [ "$1" != -- ]; do shift; done; shift; exec "$@" ;; esac\nfor a; do :; done; if [ -f "$a" ]; then cp "$a" "$T/last-script"; fi; exit 0');
  fake(t, 'dpkg-query', 'exit 1');
  // ss: what ss.out holds (nothing: no listener, no connection); not among the calls.
  writeFileSync(join(t.bin, 'ss'), `#!/bin/sh\ncat '${t.dir}/ss.out' 2> /dev/null || true\n`, { mode: 0o755 });
  // logger -t TAG -- TEXT: the node's journal, as lines in journal.log (never the machine's own)
  writeFileSync(join(t.bin, 'logger'), `#!/bin/sh\nshift 3\nprintf '%s\\n' "$*" >> '${t.dir}/journal.log'\n`, { mode: 0o755 });
  fake(t, 'apt-get', 'exit 0');
  return t;
}

interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * sh SCRIPT ARGS with the fakes first in PATH, `input` on stdin (a file: node's pipes to a child
 * are sockets, which `install /dev/stdin` cannot open; sshd hands sudo a pipe).
 */
function sh(t: Tree, args: string[], input: string | Buffer = '', env: Record<string, string> = {}): Promise<Result> {
  const file = join(t.dir, 'input');
  writeFileSync(file, input);
  const fd = openSync(file, 'r');
  return new Promise((resolve, reject) => {
    const child = spawn('sh', [t.script, ...args], {
      env: { PATH: `${t.bin}:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`, LC_ALL: 'C', HOME: t.dir, TMPDIR: t.tmp, ...env },
      stdio: [fd, 'pipe', 'pipe'],
    });
    closeSync(fd);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

const deploy = (t: Tree, ...args: string[]) => sh(t, args);

/** What the fakes were asked, one call a line (without the `id` lookups). */
function calls(t: Tree): string[] {
  const log = join(t.dir, 'calls.log');
  return existsSync(log)
    ? readFileSync(log, 'utf8')
        .split('\n')
        .filter((l) => l && !l.startsWith('id '))
    : [];
}
const clearCalls = (t: Tree) => rmSync(join(t.dir, 'calls.log'), { force: true });
const count = (t: Tree, call: string) => calls(t).filter((c) => c === call).length;

/** Every path under the tree with its content or link target (the call log left out). */
function snapshot(t: Tree): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (p === join(t.dir, 'calls.log') || p === join(t.dir, 'input') || p === join(t.dir, 'journal.log')) continue;
      const st = lstatSync(p);
      if (st.isSymbolicLink()) out.push(`${p} -> ${readlinkSync(p)}`);
      else if (st.isDirectory()) {
        out.push(`${p}/ ${(st.mode & 0o777).toString(8)}`);
        walk(p);
      } else out.push(`${p} ${(st.mode & 0o777).toString(8)} ${readFileSync(p, 'base64')}`);
    }
  };
  walk(t.dir);
  return out;
}

const inst = (app: string, n: number) => `${app}.2024-05-0${n}_00${n}`;
const b64 = (s: string) => Buffer.from(s).toString('base64');
const upstreamOf = (t: Tree, app: string) => readFileSync(join(t.nginx, `upstream-${app}.conf`), 'utf8');
const serving = (app: string, instance: string, port: number) =>
  `# written by silver update: ${instance} is active\nupstream silver_app_${app} {\n\tserver 127.0.0.1:${port};\n\tkeepalive 8;\n}\n`;
const nowhere = (app: string) => `# no instance of ${app} is active\nupstream silver_app_${app} {\n\tserver 127.0.0.1:9 down;\n}\n`;
/** The instance APP/NAME points at, or null. */
const link = (t: Tree, app: string, name: string) => {
  const p = join(t.apps, app, name);
  return existsSync(p) || isLink(p) ? readlinkSync(p) : null;
};
const isLink = (p: string) => {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
};
const journal = (t: Tree, app: string) => join(t.apps, app, 'switching');

/** `stage` with a tarball (made by tar -czf) of `files` on stdin, then `env`. */
/** Listens on loopback on a free port of the instances' range (20001-29999: what stage takes). */
async function listenInRange(server: { listen(port: number, host: string): unknown; once(event: string, f: (...a: unknown[]) => void): unknown; removeAllListeners(event: string): unknown }): Promise<void> {
  for (let tries = 0; ; tries++) {
    const port = 20001 + Math.floor(Math.random() * 9999);
    const ok = await new Promise<boolean>((resolve) => {
      server.once('listening', () => resolve(true));
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1');
    });
    server.removeAllListeners('listening');
    server.removeAllListeners('error');
    if (ok) return;
    if (tries > 50) throw new Error('no free port in 20001-29999');
  }
}

async function stage(t: Tree, app: string, instance: string, port: number, files: Record<string, string> = { 'index.html': 'hello\n' }) {
  const src = join(t.dir, `src-${instance}`);
  mkdirSync(src, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(src, name), text);
  const tgz = execFileSync('tar', ['-czf', '-', '-C', src, '.']);
  const r = await sh(t, ['stage', app, instance, String(port), '/health', b64(`python3 -m http.server ${port}`)], tgz);
  if (r.code !== 0) throw new Error(`stage ${instance}: ${r.stderr}`);
  const e = await sh(t, ['env', app, instance], `PORT=${port}\n`);
  if (e.code !== 0) throw new Error(`env ${instance}: ${e.stderr}`);
}

async function switchTo(t: Tree, app: string, instance: string) {
  const r = await deploy(t, 'switch', app, instance);
  if (r.code !== 0) throw new Error(`switch ${instance}: ${r.stderr}`);
}

const DEPLOY = 'appserver/bin/silver-deploy';
const STATE = 'base/bin/silver-state';

test('silver-deploy: a switch flushes the instance\'s files and its unit to disk before the journal that names it (a power cut must not leave the active instance empty)', async (t) => {
  const tr = tree(DEPLOY);
  const one = inst('blog', 1);
  await stage(tr, 'blog', one, 20001);
  fake(tr, 'sync', 'exec /bin/sync "$@"');
  clearCalls(tr);
  await switchTo(tr, 'blog', one);
  const syncs = calls(tr).filter((c) => c.startsWith('sync '));
  t.is(syncs[0], `sync -f ${join(tr.apps, 'blog/instances', one)} ${tr.units}`, calls(tr).join(' | '));
  t.is(syncs[1], `sync ${join(tr.apps, 'blog/switching.new')}`);
});

test('attack: while an instance streams in (stage) or is copied (clone), its folder is the app\'s alone: no other app reads its code before the modes are set', async (t) => {
  const tr = tree(DEPLOY);
  const one = inst('blog', 1);
  // (the modes of the instance's folder as tar and cp find it: the fakes note them, then do the work)
  const note = (name: string, real: string) => fake(tr, name, `for a; do for p in "$a" "\${a%/*}"; do case "$p" in *.tmp | *.tmp/app) [ ! -e "$p" ] || stat -c '${name} %a %n' "$p" >> "$T/modes.log" ;; esac; done; done; exec ${real} "$@"`);
  note('tar', '/usr/bin/tar');
  note('cp', '/usr/bin/cp');
  await stage(tr, 'blog', one, 20001, { 'app.py': 'SECRET = 1\n' });
  const two = inst('blog', 2);
  const r = await sh(tr, ['clone', 'blog', one, two, '20002']);
  t.is(r.code, 0, r.stderr);
  const modes = readFileSync(join(tr.dir, 'modes.log'), 'utf8').trim().split('\n');
  t.true(modes.some((l) => l.startsWith('tar ')) && modes.some((l) => l.startsWith('cp ')), modes.join('\n'));
  for (const line of modes) {
    const [, mode, path] = line.split(' ');
    if (path!.endsWith('.tmp')) t.is(mode, '750', line);
  }
});

test('silver-deploy: stage unpacks the tarball and writes the unit, env installs the environment, switch moves active (then previous), writes the upstream, checks nginx before reloading it', async (t) => {
  const tr = tree(DEPLOY);
  const one = inst('blog', 1);
  const two = inst('blog', 2);
  await stage(tr, 'blog', one, 20001, { 'index.html': 'hello\n', 'app.py': 'print(1)\n' });
  const d = join(tr.apps, 'blog/instances', one);
  t.is(readFileSync(join(d, 'app/index.html'), 'utf8'), 'hello\n');
  t.is(readFileSync(join(d, 'app/app.py'), 'utf8'), 'print(1)\n');
  t.is(readFileSync(join(d, 'port'), 'utf8'), '20001\n');
  t.is(readFileSync(join(d, 'health'), 'utf8'), '/health\n');
  t.is(readFileSync(join(d, 'run.sh'), 'utf8'), 'exec python3 -m http.server 20001\n');
  t.is(lstatSync(d).mode & 0o777, 0o750);
  t.false(existsSync(`${d}.tmp`));
  t.is(readFileSync(join(d, 'env'), 'utf8'), 'PORT=20001\n');
  t.is(lstatSync(join(d, 'env')).mode & 0o777, 0o640, "root's file, readable by the app's group alone");
  const unit = readFileSync(join(tr.units, `silver-${one}.service`), 'utf8');
  t.true(unit.includes('User=app-blog\n'));
  t.true(unit.includes(`EnvironmentFile=${d}/env\n`));
  t.true(unit.includes(`ExecStart=/bin/sh ${d}/run.sh\n`));
  t.false(unit.includes('[Install]'), 'boot starts the active instance, not systemd');
  // (restarted for as long as it takes: after a power cut the database may come up minutes late)
  t.regex(unit, /\[Unit\]\n(.*\n)*StartLimitIntervalSec=0\n(.*\n)*\[Service\]/);
  t.true(unit.includes('Restart=on-failure\nRestartSec=2\n'));
  // The sandbox: no other user's processes, files of its own alone, System V IPC and /dev/shm its own.
  for (const line of ['PrivateTmp=yes', 'NoNewPrivileges=yes', 'ProtectSystem=full', 'ProtectHome=yes', 'ProtectProc=invisible', 'UMask=0077', 'PrivateIPC=yes', 'TemporaryFileSystem=/dev/shm:mode=1777']) t.true(unit.includes(`\n${line}\n`), line);
  t.true(calls(tr).includes(`chown -R root:app-blog ${d}.tmp/app`));
  t.true(calls(tr).includes(`systemctl show -p NeedDaemonReload --value silver-${one}.service`));
  t.false(calls(tr).includes('systemctl daemon-reload'), 'a unit systemd never loaded needs no daemon-reload');
  t.true(calls(tr).some((c) => c.startsWith('install -m 640 -o root -g app-blog /dev/stdin ')), 'the app cannot change the environment it starts with');
  // A unit systemd had loaded with other content: reloaded.
  writeFileSync(join(tr.dir, 'need-reload'), '');
  const nine = one.replace(/_001$/, '_009');
  await stage(tr, 'blog', nine, 20002);
  t.true(calls(tr).includes('systemctl daemon-reload'));
  rmSync(join(tr.apps, 'blog/instances', nine), { recursive: true });
  rmSync(join(tr.units, `silver-${nine}.service`));
  t.deepEqual(readdirSync(tr.tmp), [], 'nothing in TMPDIR');

  clearCalls(tr);
  await switchTo(tr, 'blog', one);
  t.is(link(tr, 'blog', 'active'), `instances/${one}`);
  t.is(link(tr, 'blog', 'previous'), null);
  t.is(upstreamOf(tr, 'blog'), serving('blog', one, 20001));
  t.deepEqual(calls(tr), ['nginx -t -q', 'systemctl try-reload-or-restart nginx'], 'nginx checked, then reloaded');
  t.false(existsSync(journal(tr, 'blog')));

  await stage(tr, 'blog', two, 20002);
  clearCalls(tr);
  await switchTo(tr, 'blog', two);
  t.is(link(tr, 'blog', 'active'), `instances/${two}`);
  t.is(link(tr, 'blog', 'previous'), `instances/${one}`);
  t.is(upstreamOf(tr, 'blog'), serving('blog', two, 20002));
  t.deepEqual(calls(tr), ['nginx -t -q', 'systemctl try-reload-or-restart nginx']);
  t.deepEqual(readdirSync(tr.nginx), ['upstream-blog.conf'], 'no temporary file left');

  // An active instance cannot be staged again.
  const again = await sh(tr, ['stage', 'blog', two, '20002', '/health', b64('x')], execFileSync('tar', ['-czf', '-', '-C', tr.tmp, '.']));
  t.is(again.code, 1);
  t.regex(again.stderr, /is active: it cannot be staged again/);

  t.is((await deploy(tr, 'start', 'blog', two)).code, 0);
  const status = await deploy(tr, 'status');
  t.is(status.code, 0, status.stderr);
  t.is(status.stdout, `app blog active ${two} previous ${one} health ok code - static - instances ${one}:20001:inactive ${two}:20002:active\n`);
  t.true(calls(tr).includes('http 3 http://127.0.0.1:20002/health'), 'the health check asked the instance on its port');
});

test('silver-deploy: the requests over bash\'s /dev/tcp, for real against a server on loopback: the status code, a refusal, no answer in time', async (t) => {
  const tr = tree(DEPLOY);
  rmSync(join(tr.bin, 'timeout'));
  const seen: string[] = [];
  let code = 204;
  let hang = false;
  const server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url} ${req.headers.host} ${req.httpVersion}`);
    if (hang) return;
    res.writeHead(code).end();
  });
  await listenInRange(server);
  t.teardown(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const one = 'blog.2024-05-01_001';
  await stage(tr, 'blog', one, port);
  let r = await deploy(tr, 'wait', 'blog', one, '-', '5', '2xx');
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, '204\n');
  t.deepEqual(seen, [`GET /health 127.0.0.1:${port} 1.1`], "curl's request: HTTP/1.1, the Host curl would send");
  code = 503;
  r = await deploy(tr, 'wait', 'blog', one, '-', '1', '2xx');
  t.not(r.code, 0);
  t.regex(r.stderr, /\/health answered 503 \(wanted 2xx\) within 1s/);
  // No answer within the request's time: the wait goes on until its own end, then says nothing came.
  hang = true;
  r = await deploy(tr, 'wait', 'blog', one, '-', '1', '2xx');
  t.not(r.code, 0);
  t.regex(r.stderr, /answered nothing \(wanted 2xx\) within 1s/);
  // An app's own answers, hostile or broken, by a raw server: what it writes is `answer`, and it
  // never closes the connection.
  let answer = '';
  const raw = createNetServer((socket) => {
    socket.on('error', () => undefined);
    socket.write(answer);
  });
  await listenInRange(raw);
  t.teardown(() => raw.close());
  const two = 'blog.2024-05-02_002';
  await stage(tr, 'blog', two, (raw.address() as AddressInfo).port);
  // The header block whole, then a body that never ends: an answer (as an HTTP client's request
  // returns with the headers), the status line read to 64 characters only.
  answer = `HTTP/1.1 200 ${'x'.repeat(100)}\r\nContent-Length: 100\r\n\r\npartial`;
  r = await deploy(tr, 'wait', 'blog', two, '-', '5', '2xx');
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, '200\n');
  // An interim answer (103 Early Hints) is passed over for the one after it, as curl does; an
  // HTTP/1.0 answer is one.
  answer = 'HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n';
  r = await deploy(tr, 'wait', 'blog', two, '-', '5', '2xx');
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, '204\n');
  answer = 'HTTP/1.0 200 OK\n\n';
  t.is((await deploy(tr, 'wait', 'blog', two, '-', '5', '2xx')).stdout, '200\n');
  // A status line, then a stall: no answer (the wait ends with nothing, where the old request took
  // the status line for an answer) — with a status line and a header line whose lengths end a
  // read of the old bounds (64, 1,024) just before their line breaks, too.
  answer = `HTTP/1.1 200 ${'x'.repeat(50)}\r\nX-Long: ${'y'.repeat(1015)}\r\n`;
  r = await deploy(tr, 'wait', 'blog', two, '-', '1', '2xx');
  t.not(r.code, 0);
  t.regex(r.stderr, /answered nothing \(wanted 2xx\) within 1s/);
  // Not an HTTP status line: no answer.
  for (const bad of ['200\r\n\r\n', 'HTTP/1.1 2000\r\n\r\n', 'FOO 204 x\r\n\r\n', 'HTTP/1.1 101 Switching Protocols\r\n\r\n']) {
    answer = bad;
    r = await deploy(tr, 'wait', 'blog', two, '-', '1', '2xx');
    t.not(r.code, 0, bad);
    t.regex(r.stderr, /answered nothing \(wanted 2xx\) within 1s/, bad);
  }
  // A status line without end, a header line over 8,191 characters, headers without end: out of
  // bounds, no answer.
  for (const endless of [`HTTP/1.1 200 ${'x'.repeat(1 << 20)}`, `HTTP/1.1 200 OK\r\nX-Long: ${'y'.repeat(8190)}\r\n\r\n`, `HTTP/1.1 200 OK\r\n${'X-Pad: y\r\n'.repeat(5000)}`]) {
    answer = endless;
    r = await deploy(tr, 'wait', 'blog', two, '-', '1', '2xx');
    t.not(r.code, 0);
    t.regex(r.stderr, /answered nothing \(wanted 2xx\) within 1s/);
    // ('any' takes it as listening: something answers on the port)
    r = await deploy(tr, 'wait', 'blog', two, '-', '5', 'any');
    t.is(r.code, 0, r.stderr);
    t.is(r.stdout, 'listening\n');
  }
  // Refused (nobody listens): 'any' goes on waiting — not listening yet.
  await new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  r = await deploy(tr, 'wait', 'blog', one, '-', '1', 'any');
  t.not(r.code, 0);
  t.regex(r.stderr, /answered nothing \(wanted any\) within 1s/);
});

/** A tree where blog's instance one (port 20001) is active and two (20002) staged. */
async function oneActiveTwoStaged() {
  const tr = tree(DEPLOY);
  const [one, two] = [inst('blog', 1), inst('blog', 2)];
  await stage(tr, 'blog', one, 20001);
  await switchTo(tr, 'blog', one);
  await stage(tr, 'blog', two, 20002);
  return { tr, one, two };
}

test('silver-deploy: a switch killed after the links moved (before nginx reloaded) is completed by the next status', async (t) => {
  const { tr, one, two } = await oneActiveTwoStaged();
  writeFileSync(join(tr.dir, 'kill-on-reload'), '');
  const killed = await deploy(tr, 'switch', 'blog', two);
  t.is(killed.signal, 'SIGKILL');
  t.is(readFileSync(journal(tr, 'blog'), 'utf8'), `${two} ${one}\n`, 'the intent is left behind');
  t.is(count(tr, 'systemctl try-reload-or-restart nginx'), 2);

  const status = await deploy(tr, 'status');
  t.is(status.code, 0, status.stderr);
  t.regex(status.stderr, new RegExp(`completing an interrupted switch of blog to ${two}`));
  t.false(existsSync(journal(tr, 'blog')));
  t.is(count(tr, 'systemctl try-reload-or-restart nginx'), 3, 'nginx reloaded by the completion');
  t.is(link(tr, 'blog', 'active'), `instances/${two}`);
  t.is(link(tr, 'blog', 'previous'), `instances/${one}`);
  t.is(upstreamOf(tr, 'blog'), serving('blog', two, 20002), 'the upstream names the active instance');
  t.true(status.stdout.startsWith(`app blog active ${two} previous ${one} `), status.stdout);
});

test('silver-deploy: an intent a crash left empty (or naming no staged instance) does not block the app: the upstream follows the active link, the verbs go on', async (t) => {
  const { tr, one, two } = await oneActiveTwoStaged();
  for (const intent of ['', `${two}`, 'blog.2099-01-01_001 -', '../../etc x\n']) {
    // (a crash after the upstream was rewritten for the new instance, the intent lost)
    writeFileSync(join(tr.nginx, 'upstream-blog.conf'), serving('blog', two, 20002));
    writeFileSync(journal(tr, 'blog'), intent);
    const status = await deploy(tr, 'status');
    t.is(status.code, 0, status.stderr);
    t.regex(status.stderr, /the intent of blog's interrupted switch cannot be read: its upstream follows the active link/);
    t.false(existsSync(journal(tr, 'blog')), JSON.stringify(intent));
    t.is(upstreamOf(tr, 'blog'), serving('blog', one, 20001), 'the upstream names the active instance again');
    t.is(link(tr, 'blog', 'active'), `instances/${one}`);
  }
  // And the next switch goes through.
  writeFileSync(journal(tr, 'blog'), '');
  t.is((await deploy(tr, 'switch', 'blog', two)).code, 0);
  t.is(link(tr, 'blog', 'active'), `instances/${two}`);
});

test('silver-deploy: a switch killed during nginx -t (upstream replaced, links not moved) converges on the next status', async (t) => {
  const { tr, one, two } = await oneActiveTwoStaged();
  writeFileSync(join(tr.dir, 'kill-on-test'), '');
  t.is((await deploy(tr, 'switch', 'blog', two)).signal, 'SIGKILL');
  t.is(link(tr, 'blog', 'active'), `instances/${one}`);
  t.is(upstreamOf(tr, 'blog'), serving('blog', two, 20002), 'killed between the upstream and the links');

  const status = await deploy(tr, 'status');
  t.is(status.code, 0, status.stderr);
  t.false(existsSync(journal(tr, 'blog')));
  t.is(link(tr, 'blog', 'active'), `instances/${two}`);
  t.is(upstreamOf(tr, 'blog'), serving('blog', two, 20002));
  t.true(status.stdout.startsWith(`app blog active ${two} previous ${one} `), status.stdout);
});

test('silver-deploy: when nginx rejects the upstream while an interrupted switch is completed, the upstream goes back to the active instance', async (t) => {
  const { tr, one, two } = await oneActiveTwoStaged();
  writeFileSync(join(tr.dir, 'kill-on-test'), '');
  t.is((await deploy(tr, 'switch', 'blog', two)).signal, 'SIGKILL');
  writeFileSync(join(tr.dir, 'nginx.rc'), '1');
  const status = await deploy(tr, 'status');
  t.is(status.code, 0, status.stderr);
  t.regex(status.stderr, /nginx rejected the new upstream/);
  t.false(existsSync(journal(tr, 'blog')));
  t.is(link(tr, 'blog', 'active'), `instances/${one}`);
  t.is(upstreamOf(tr, 'blog'), serving('blog', one, 20001), 'the upstream and the active link agree');
  t.true(status.stdout.startsWith(`app blog active ${one} `), status.stdout);
});

test('silver-deploy: a switch nginx rejects restores the old upstream file, leaves the links and no journal, fails', async (t) => {
  const tr = tree(DEPLOY);
  const [one, two] = [inst('blog', 1), inst('blog', 2)];
  // First deploy: the upstream setup-node wrote is restored byte for byte.
  const initial = '# written by silver update on activation; no instance of blog is active yet\nupstream silver_app_blog {\n\tserver 127.0.0.1:9 down;\n}\n';
  writeFileSync(join(tr.nginx, 'upstream-blog.conf'), initial);
  await stage(tr, 'blog', one, 20001);
  writeFileSync(join(tr.dir, 'nginx.rc'), '1');
  const first = await deploy(tr, 'switch', 'blog', one);
  t.is(first.code, 1);
  t.regex(first.stderr, /nginx rejected the new upstream: nginx: \[emerg\] fake rejection/);
  t.is(upstreamOf(tr, 'blog'), initial);
  t.is(link(tr, 'blog', 'active'), null);

  writeFileSync(join(tr.dir, 'nginx.rc'), '0');
  await switchTo(tr, 'blog', one);
  await stage(tr, 'blog', two, 20002);
  writeFileSync(join(tr.dir, 'nginx.rc'), '1');
  clearCalls(tr);
  const r = await deploy(tr, 'switch', 'blog', two);
  t.is(r.code, 1);
  t.is(upstreamOf(tr, 'blog'), serving('blog', one, 20001));
  t.is(link(tr, 'blog', 'active'), `instances/${one}`);
  t.is(link(tr, 'blog', 'previous'), null);
  t.false(existsSync(journal(tr, 'blog')));
  t.deepEqual(calls(tr), ['nginx -t -q'], 'nginx is not reloaded');
  t.deepEqual(readdirSync(tr.nginx), ['upstream-blog.conf']);
});

test('silver-deploy: the listener on an instance\'s port must be the app\'s own user before a wait passes or a switch moves traffic to it', async (t) => {
  const tr = tree(DEPLOY);
  const one = inst('blog', 1);
  await stage(tr, 'blog', one, 20001);
  // (as ss -Hltne answers: a line a listening socket, its owner's uid among its words)
  const own = 'LISTEN 0      5      127.0.0.1:20001 0.0.0.0:* uid:4242 ino:4552191 sk:132 cgroup:/silver.slice <->';
  writeFileSync(join(tr.dir, 'ss.out'), `${own}\n`);
  t.is((await deploy(tr, 'wait', 'blog', one, '-', '5', '2xx')).code, 0);
  t.is((await deploy(tr, 'switch', 'blog', one)).code, 0);
  for (const other of ['LISTEN 0      5      [::1]:20001 [::]:* uid:1000 ino:4552192 sk:133 v6only:1 <->', 'LISTEN 0      5      0.0.0.0:20001 0.0.0.0:* uid:42420 ino:1 sk:1 <->']) {
    writeFileSync(join(tr.dir, 'ss.out'), `${own}\n${other}\n`);
    const w = await deploy(tr, 'wait', 'blog', one, '-', '5', '2xx');
    t.is(w.code, 1, other);
    t.regex(w.stderr, /port 20001 is held by another user than app-blog/);
    const sw = await deploy(tr, 'switch', 'blog', one);
    t.is(sw.code, 1, other);
    t.regex(sw.stderr, /port 20001 is held by another user than app-blog/);
  }
  rmSync(join(tr.dir, 'ss.out'));
});

test('silver-deploy: stop refuses the active instance; unswitch points the upstream nowhere and removes active', async (t) => {
  const tr = tree(DEPLOY);
  const [one, two] = [inst('blog', 1), inst('blog', 2)];
  await stage(tr, 'blog', one, 20001);
  await stage(tr, 'blog', two, 20002);
  await switchTo(tr, 'blog', one);
  clearCalls(tr);
  const refused = await deploy(tr, 'stop', 'blog', one);
  t.is(refused.code, 1);
  t.regex(refused.stderr, /is active: switch away from it first/);
  t.deepEqual(calls(tr), []);
  // A connection to the instance (the front proxy's old worker finishing a request): the stop
  // waits until it is gone.
  writeFileSync(join(tr.dir, 'ss.out'), 'ESTAB 0 0 127.0.0.1:20002 127.0.0.1:51234\n');
  const stopping = deploy(tr, 'stop', 'blog', two);
  await new Promise((r) => setTimeout(r, 700));
  t.deepEqual(calls(tr), [], 'not stopped while a request is in flight');
  rmSync(join(tr.dir, 'ss.out'));
  t.is((await stopping).code, 0);
  t.deepEqual(calls(tr), [`systemctl stop silver-${two}.service`]);

  // stop-after: the same stop, by a transient timer of the node's systemd (silver need not be
  // there); a start of the instance calls it off.
  clearCalls(tr);
  const later = await deploy(tr, 'stop-after', 'blog', two, '500');
  t.is(later.code, 0, later.stderr);
  t.deepEqual(calls(tr), [
    `systemctl stop silver-stop.${two}.timer`,
    `systemd-run --quiet --collect --unit silver-stop.${two} --on-active=500ms --timer-property=AccuracySec=10ms ${tr.prefix}/usr/local/lib/silverlining/bin/silver-deploy stop blog ${two}`,
  ]);
  clearCalls(tr);
  t.is((await deploy(tr, 'start', 'blog', two)).code, 0);
  t.deepEqual(calls(tr), [`systemctl stop silver-stop.${two}.timer silver-stop.${two}.service`, `systemctl start silver-${two}.service`]);
  // status: a running instance that is not active is a leftover — unless its stop-after is
  // pending, when it drains as meant ("stopping").
  t.regex((await deploy(tr, 'status')).stdout, new RegExp(`instances ${one}:20001:inactive ${two}:20002:active\n$`));
  writeFileSync(join(tr.dir, 'active-units'), `${readFileSync(join(tr.dir, 'active-units'), 'utf8')}silver-stop.${two}.timer\n`);
  t.regex((await deploy(tr, 'status')).stdout, new RegExp(`instances ${one}:20001:inactive ${two}:20002:stopping\n$`));
  writeFileSync(join(tr.dir, 'active-units'), readFileSync(join(tr.dir, 'active-units'), 'utf8').replace(`silver-stop.${two}.timer\n`, ''));
  // (a delay past ten minutes is refused: a deployer's instance would run on, "stopping", for years
  // after their key is gone; switch-stop's the same)
  for (const bad of [['stop-after', 'blog', two, '5s'], ['stop-after', 'blog', 'wiki.2024-05-01_001', '5'], ['stop-after', 'blog', inst('blog', 7), '5'],
    ['stop-after', 'blog', two, '600001'], ['stop-after', 'blog', two, '999999999999999'], ['stop-after', 'blog', two, '0600000'], ['switch-stop', 'blog', two, '86400000']]) {
    clearCalls(tr);
    const r = await deploy(tr, ...(bad as [string, ...string[]]));
    t.is(r.code, 1, bad.join(' '));
    t.false(calls(tr).some((c) => c.startsWith('systemd-run')), bad.join(' '));
  }
  t.is((await deploy(tr, 'stop', 'blog', two)).code, 0);

  // up: the start and the wait until it listens, in one call; switch-stop: the switch, then the
  // replaced instance's stop-after.
  clearCalls(tr);
  const up = await deploy(tr, 'up', 'blog', two, '5');
  t.is(up.code, 0, up.stderr);
  t.deepEqual(calls(tr).slice(0, 3), [`systemctl stop silver-stop.${two}.timer silver-stop.${two}.service`, `systemctl start silver-${two}.service`, 'http 5 http://127.0.0.1:20002/']);
  clearCalls(tr);
  const sw = await deploy(tr, 'switch-stop', 'blog', two, '500');
  t.is(sw.code, 0, sw.stderr);
  t.is(link(tr, 'blog', 'active'), `instances/${two}`);
  t.is(link(tr, 'blog', 'previous'), `instances/${one}`);
  t.is(calls(tr).at(-1), `systemd-run --quiet --collect --unit silver-stop.${one} --on-active=500ms --timer-property=AccuracySec=10ms ${tr.prefix}/usr/local/lib/silverlining/bin/silver-deploy stop blog ${one}`);
  t.is((await deploy(tr, 'switch-stop', 'blog', two, 'soon')).code, 1, 'a bad delay is refused');
  t.is((await deploy(tr, 'switch', 'blog', one)).code, 0);
  t.is((await deploy(tr, 'stop', 'blog', two)).code, 0);

  clearCalls(tr);
  const r = await deploy(tr, 'unswitch', 'blog');
  t.is(r.code, 0, r.stderr);
  t.is(upstreamOf(tr, 'blog'), nowhere('blog'));
  t.is(link(tr, 'blog', 'active'), null);
  t.false(existsSync(journal(tr, 'blog')));
  t.deepEqual(calls(tr), ['nginx -t -q', 'systemctl try-reload-or-restart nginx']);
  t.is((await deploy(tr, 'status')).stdout, `app blog active - previous - health - code - static - instances ${one}:20001:inactive ${two}:20002:inactive\n`);
});

test('silver-deploy: root\'s scratch directory must not be a symbolic link (switch, stage, fetch refuse, writing nothing through it); no /tmp in the helpers', async (t) => {
  const tr = tree(DEPLOY);
  const one = inst('blog', 1);
  await stage(tr, 'blog', one, 20001);
  await switchTo(tr, 'blog', one);
  writeFileSync(join(tr.dir, 'curl.body'), 'the data\n');
  const ok = await deploy(tr, 'fetch', 'blog', one, '/export', 'primary');
  t.is(ok.code, 0, ok.stderr);
  t.is(ok.stdout, '200\n');
  t.true(calls(tr).includes('curl -s -o - -m 300 -w %{stderr}%{http_code} -H X-Silverlining-Update: primary http://127.0.0.1:20001/export'), calls(tr).join('\n'));
  writeFileSync(join(tr.dir, 'curl.code'), '500');
  writeFileSync(join(tr.dir, 'curl.body'), 'boom\x1b[0m\n');
  const failed = await deploy(tr, 'fetch', 'blog', one, '/export', 'secondary');
  t.is(failed.code, 1);
  t.regex(failed.stderr, /update_fetch \/export answered 500: boom\[0m/);
  // Attack: an answer without end (here 4 MiB) streams through: nothing of it stays in root's /run.
  for (const [code, role] of [['200', 'primary'], ['500', 'secondary'], ['200', 'migrate']] as const) {
    writeFileSync(join(tr.dir, 'curl.code'), code);
    writeFileSync(join(tr.dir, 'curl.body'), 'x'.repeat(4 << 20));
    writeFileSync(join(tr.dir, 'active-units'), '');
    const r = await deploy(tr, 'fetch', 'blog', one, '/export', role);
    t.is(r.code, code === '200' ? 0 : 1, r.stderr);
    if (code !== '200') t.regex(r.stderr, new RegExp(`update_fetch /export answered 500: x{300}\n?$`));
    t.deepEqual(readdirSync(tr.run).filter((f) => f.startsWith('fetch-')), [], role);
  }
  rmSync(join(tr.dir, 'curl.code'));

  rmSync(tr.run, { recursive: true });
  const elsewhere = join(tr.dir, 'elsewhere');
  mkdirSync(elsewhere);
  symlinkSync(elsewhere, tr.run);
  const before = upstreamOf(tr, 'blog');
  clearCalls(tr);
  for (const args of [
    ['switch', 'blog', one],
    ['unswitch', 'blog'],
    ['fetch', 'blog', one, '/export', 'primary'],
    ['stage', 'blog', inst('blog', 2), '20002', '/health', b64('x')],
  ]) {
    const r = await deploy(tr, ...args);
    t.is(r.code, 1, args.join(' '));
    t.regex(r.stderr, /run\/silverlining is a symbolic link/);
  }
  t.deepEqual(readdirSync(elsewhere), [], 'nothing written through the link');
  t.deepEqual(calls(tr), [], 'neither curl, nginx nor systemctl ran');
  t.is(upstreamOf(tr, 'blog'), before);
  t.deepEqual(readdirSync(tr.tmp), [], 'nothing in TMPDIR');

  // Nothing names the shared /tmp (comments aside).
  for (const helper of [DEPLOY, STATE]) {
    const code = readFileSync(join(layersRoot(), helper), 'utf8')
      .split('\n')
      .map((l) => l.replace(/(^|\s)#.*$/, ''));
    t.deepEqual(
      code.filter((l) => l.includes('/tmp')),
      [],
      helper,
    );
  }
});

test('silver-deploy: fetch-script runs the decoded command as the app\'s user, in the instance, with a /tmp of its own', async (t) => {
  const tr = tree(DEPLOY);
  const one = inst('blog', 1);
  await stage(tr, 'blog', one, 20001);
  clearCalls(tr);
  const r = await deploy(tr, 'fetch-script', 'blog', one, 'secondary', b64('./manage.py export > "$OUT"'));
  t.is(r.code, 0, r.stderr);
  const d = join(tr.apps, 'blog/instances', one);
  const [chown, call] = calls(tr);
  const script = /-- \/bin\/sh (\S+)$/.exec(call!)?.[1];
  t.is(chown, `chown root:app-blog ${script}`, "the app's user may read it, no other");
  // (in the one-off commands' slice: a deployer's key taken away stops it)
  t.is(call, `systemd-run --quiet --wait --pipe --collect --service-type=exec --slice=silver-oneoff -p User=app-blog -p Group=app-blog -p PrivateTmp=yes -p NoNewPrivileges=yes -p ProtectSystem=full -p ProtectHome=yes -p ProtectProc=invisible -p UMask=0077 -p PrivateIPC=yes -p TemporaryFileSystem=/dev/shm:mode=1777 -p WorkingDirectory=${d}/app -p EnvironmentFile=${d}/env -E SILVER_UPDATE=secondary -- /bin/sh ${script}`);
  // The script is a file, never an argument systemd would expand \${VAR} in (a password on a command line).
  t.regex(script!, new RegExp(`^${tr.run}-scripts/s\\.[A-Za-z0-9]{10}$`));
  t.is(readFileSync(join(tr.dir, 'last-script'), 'utf8'), './manage.py export > "$OUT"\n');
  t.false(existsSync(script!), 'removed after the run');
  t.is((statSync(`${tr.run}-scripts`).mode & 0o777).toString(8), '711');
  t.is((await deploy(tr, 'fetch-script', 'blog', one, 'tertiary', b64('x'))).code, 1);
});

test('silver-deploy: migrate runs under a unit of its own name; while one runs (an earlier update\'s, silver gone) another refuses to start, and migrating says so', async (t) => {
  const tr = tree(DEPLOY);
  const one = inst('blog', 1);
  await stage(tr, 'blog', one, 20001);
  clearCalls(tr);
  t.is((await deploy(tr, 'migrating', 'blog')).code, 1, 'none runs');
  const r = await deploy(tr, 'migrate', 'blog', one, b64('./manage.py migrate'));
  t.is(r.code, 0, r.stderr);
  const call = calls(tr).find((c) => c.startsWith('systemd-run'))!;
  t.regex(call, / --slice=silver-oneoff --unit=silver-migrate-blog\.service -p User=app-blog /);
  // One still running: no second, and migrating names it.
  writeFileSync(join(tr.dir, 'active-units'), 'silver-migrate-blog.service\n');
  clearCalls(tr);
  const again = await deploy(tr, 'migrate', 'blog', one, b64('./manage.py migrate'));
  t.is(again.code, 1);
  t.regex(again.stdout + again.stderr, /a migration of blog started earlier still runs \(silver-migrate-blog\.service\)/);
  t.false(calls(tr).some((c) => c.startsWith('systemd-run')));
  const m = await deploy(tr, 'migrating', 'blog');
  t.is(m.code, 0);
  t.is(m.stdout, 'silver-migrate-blog.service\n');
  // A migration by path (migrate = /PATH): the request under the same unit — refused while one
  // runs, made in it otherwise.
  const byPath = await deploy(tr, 'fetch', 'blog', one, '/migrate', 'migrate');
  t.is(byPath.code, 1);
  t.regex(byPath.stderr, /a migration of blog started earlier still runs \(silver-migrate-blog\.service\)/);
  t.false(calls(tr).some((c) => c.startsWith('curl')));
  writeFileSync(join(tr.dir, 'active-units'), '');
  clearCalls(tr);
  const made = await deploy(tr, 'fetch', 'blog', one, '/migrate', 'migrate');
  t.is(made.code, 0, made.stderr);
  t.is(made.stdout, '200\n');
  t.deepEqual(calls(tr).filter((c) => /^(systemd-run|curl) /.test(c)), [
    'systemd-run --quiet --wait --pipe --collect --service-type=exec --unit=silver-migrate-blog.service -- curl -s -o - -m 300 -w %{stderr}%{http_code} -H X-Silverlining-Update: migrate http://127.0.0.1:20001/migrate',
    'curl -s -o - -m 300 -w %{stderr}%{http_code} -H X-Silverlining-Update: migrate http://127.0.0.1:20001/migrate',
  ]);
});

test('silver-deploy: staging keeps the firewall\'s table of who may answer on each instance\'s port (port . uid), applied in one transaction; listeners says when it changed', async (t) => {
  const tr = tree(DEPLOY);
  const file = join(tr.prefix, 'etc/silverlining/nft.d/listeners.nft');
  await stage(tr, 'blog', inst('blog', 1), 20001);
  clearCalls(tr);
  await stage(tr, 'wiki', inst('wiki', 1), 20002);
  t.true(calls(tr).includes(`nft -f ${file}`), calls(tr).join(' | '));
  const text = readFileSync(file, 'utf8');
  // (the table made anew as a whole: one transaction, whatever was there)
  t.true(text.startsWith('# written by silver-deploy: who may answer on an instance port (port . uid)\ntable inet silver_listeners\ndelete table inet silver_listeners\ntable inet silver_listeners {\n'), text);
  t.regex(text, /\t\ttcp sport 20000-29999 tcp sport \. meta skuid != @listeners drop\n/);
  t.true(text.endsWith('add element inet silver_listeners listeners { 20001 . 4242, 20002 . 4242 }\n'), text);
  t.is((statSync(join(tr.prefix, 'etc/silverlining/nft.d')).mode & 0o777).toString(8), '700');
  // Nothing new: the file, and its folder, stay as they are (setup-node's fingerprint watches /etc,
  // folders' change times included: a file made and removed beside it would make every probe
  // miss); an instance gone: changed.
  const folder = join(tr.prefix, 'etc/silverlining/nft.d');
  const before = [statSync(folder).ctimeMs, statSync(file).ctimeMs];
  await new Promise((r) => setTimeout(r, 20));
  t.is((await deploy(tr, 'listeners')).stdout, '');
  t.deepEqual([statSync(folder).ctimeMs, statSync(file).ctimeMs], before);
  rmSync(join(tr.apps, 'wiki/instances', inst('wiki', 1)), { recursive: true });
  t.is((await deploy(tr, 'listeners')).stdout, 'changed\n');
  t.true(readFileSync(file, 'utf8').endsWith('listeners { 20001 . 4242 }\n'));
  // nftables refusing it fails the verb — and the file nftables.conf includes at boot is not
  // replaced by one it refuses (the whole firewall would not load): checked (nft -c) first.
  writeFileSync(join(tr.dir, 'nft.rc'), '1');
  await stage(tr, 'wiki', inst('wiki', 2), 20003).catch(() => undefined);
  t.not((await deploy(tr, 'listeners')).code, 0);
  t.true(readFileSync(file, 'utf8').endsWith('listeners { 20001 . 4242 }\n'), 'the loaded table stays');
  t.true(calls(tr).some((c) => c.startsWith('nft -c -f ')), calls(tr).join(' | '));
  t.deepEqual(readdirSync(folder), ['listeners.nft']);
});

test('silver-deploy: an instance\'s port is 20001-29999 (the listeners\' range): stage and clone refuse any other, before anything is written', async (t) => {
  const tr = tree(DEPLOY);
  const one = inst('blog', 1);
  await stage(tr, 'blog', one, 20001);
  const file = join(tr.prefix, 'etc/silverlining/nft.d/listeners.nft');
  const before = readFileSync(file, 'utf8');
  const tgz = execFileSync('tar', ['-czf', '-', '-C', tr.tmp, '.']);
  for (const port of ['70000', '8001', '20000', '30000', '19999', '020001', '99999', '123456']) {
    const r = await sh(tr, ['stage', 'blog', inst('blog', 2), port, '/health', b64('x')], tgz);
    t.is(r.code, 1, port);
    t.regex(r.stderr, /bad port/, port);
    const c = await deploy(tr, 'clone', 'blog', one, inst('blog', 3), port);
    t.is(c.code, 1, port);
    t.regex(c.stderr, /bad port/, port);
  }
  t.false(existsSync(join(tr.apps, 'blog/instances', inst('blog', 2))));
  t.false(existsSync(join(tr.apps, 'blog/instances', inst('blog', 3))));
  t.is(readFileSync(file, 'utf8'), before);
  // A port file out of the range (an earlier release's) is left out of the table nft loads.
  writeFileSync(join(tr.apps, 'blog/instances', one, 'port'), '70000\n');
  await deploy(tr, 'listeners');
  t.false(readFileSync(file, 'utf8').includes('70000'));
});

test('silver-deploy: boot completes a leftover journal first, then starts the active instance of every app', async (t) => {
  const tr = tree(DEPLOY);
  const b1 = inst('blog', 1);
  const [w1, w2] = [inst('wiki', 1), inst('wiki', 2)];
  await stage(tr, 'blog', b1, 20001);
  await switchTo(tr, 'blog', b1);
  await stage(tr, 'wiki', w1, 20101);
  await stage(tr, 'wiki', w2, 20102);
  await switchTo(tr, 'wiki', w1);
  await stage(tr, 'news', inst('news', 1), 20201); // (never switched: nothing to start)
  writeFileSync(journal(tr, 'wiki'), `${w2} ${w1}\n`);
  clearCalls(tr);
  const r = await deploy(tr, 'boot');
  t.is(r.code, 0, r.stderr);
  t.regex(r.stderr, new RegExp(`completing an interrupted switch of wiki to ${w2}`));
  t.deepEqual(calls(tr), [
    `systemctl start --no-block silver-${b1}.service`,
    'nginx -t -q',
    'systemctl try-reload-or-restart nginx',
    `systemctl start --no-block silver-${w2}.service`,
  ]);
  t.false(existsSync(journal(tr, 'wiki')));
  t.is(link(tr, 'wiki', 'active'), `instances/${w2}`);
  t.is(link(tr, 'wiki', 'previous'), `instances/${w1}`);
  t.is(upstreamOf(tr, 'wiki'), serving('wiki', w2, 20102));
});

test('silver-deploy: repair skips while the deploy lock is fresh; else restarts a stopped active instance, stops running non-active ones; --check only says so', async (t) => {
  const tr = tree(DEPLOY);
  const [zero, one] = [inst('blog', 1), inst('blog', 2)];
  await stage(tr, 'blog', zero, 20010);
  await stage(tr, 'blog', one, 20001);
  await switchTo(tr, 'blog', zero);
  await switchTo(tr, 'blog', one);
  writeFileSync(join(tr.dir, 'active-units'), `silver-${zero}.service\n`); // (the active one is down)
  mkdirSync(tr.state, { recursive: true, mode: 0o700 });
  const now = Math.floor(Date.now() / 1000);
  const lock = join(tr.state, 'lock');
  writeFileSync(lock, `tok-12345678 ${now - 20} ${now} 30 ${b64('someone')}\n`);
  const tree0 = snapshot(tr);
  clearCalls(tr);
  const skipped = await deploy(tr, 'repair');
  t.is(skipped.code, 0, skipped.stderr);
  t.is(skipped.stderr, "skip: a deploy holds the nodeset's lock\n");
  t.is(skipped.stdout, '');
  t.deepEqual(calls(tr), []);
  t.deepEqual(snapshot(tr), tree0);
  // Another run's token (setup-node names its own in SILVER_LOCK_TOKEN): skipped all the same;
  // the run's own lock: repair goes on (setup-node holds the lock while it runs).
  t.is((await sh(tr, ['repair', '--check'], '', { SILVER_LOCK_TOKEN: 'tok-87654321' })).stderr, "skip: a deploy holds the nodeset's lock\n");
  t.is((await sh(tr, ['repair', '--check'], '', { SILVER_LOCK_TOKEN: '' })).stderr, "skip: a deploy holds the nodeset's lock\n");
  const own = await sh(tr, ['repair', '--check'], '', { SILVER_LOCK_TOKEN: 'tok-12345678' });
  t.is(own.code, 0, own.stderr);
  t.regex(own.stdout, /blog: start .* \(its active instance was not running\)/);
  t.deepEqual(snapshot(tr), tree0);

  // A heartbeat an hour in the future (the clock came up behind it after a reboot): no deploy
  // holds it any more than an old one — repair goes on.
  writeFileSync(lock, `tok-12345678 ${now + 3600} ${now + 3600} 30 ${b64('someone')}\n`);
  t.notRegex((await deploy(tr, 'repair', '--check')).stderr, /skip: a deploy holds/);
  // A heartbeat older than the lock's TTL: the deploy is gone.
  writeFileSync(lock, `tok-12345678 ${now - 200} ${now - 100} 30 ${b64('someone')}\n`);
  const lines = [`blog: start ${one} (its active instance was not running)`, `blog: stop ${zero} (running, not active)`, ''].join('\n');
  const check = await deploy(tr, 'repair', '--check');
  t.is(check.code, 0, check.stderr);
  t.is(check.stdout, lines);
  t.deepEqual(
    calls(tr).filter((c) => !c.startsWith('systemctl is-active')),
    [],
    '--check changes nothing',
  );

  // An instance whose stop-after is pending (an update just replaced it) is left to its timer: it drains first.
  writeFileSync(join(tr.dir, 'active-units'), `silver-${zero}.service\nsilver-stop.${zero}.timer\n`);
  t.is((await deploy(tr, 'repair', '--check')).stdout, `blog: start ${one} (its active instance was not running)\n`);
  writeFileSync(join(tr.dir, 'active-units'), `silver-${zero}.service\n`);

  // (a fresh lock, the setup-node's own that runs the repair: it acts, as without a lock)
  writeFileSync(lock, `tok-12345678 ${now - 20} ${now} 30 ${b64('setup-node')}\n`);
  clearCalls(tr);
  const fixed = await sh(tr, ['repair'], '', { SILVER_LOCK_TOKEN: 'tok-12345678' });
  t.is(fixed.code, 0, fixed.stderr);
  t.is(fixed.stdout, lines);
  t.is(fixed.stderr, '');
  rmSync(lock);
  const acted = calls(tr).filter((c) => !c.startsWith('systemctl is-active'));
  t.deepEqual(acted, [
    `systemctl restart silver-${one}.service`,
    'http 5 http://127.0.0.1:20001/health',
    `systemctl stop silver-${zero}.service`,
  ]);
  clearCalls(tr);
  const again = await deploy(tr, 'repair');
  t.is(again.stdout, '', 'nothing left to repair');
  t.deepEqual(
    calls(tr).filter((c) => c.startsWith('systemctl') && !c.startsWith('systemctl is-active')),
    [],
  );

  writeFileSync(join(tr.dir, 'curl.code'), '503');
  t.is((await deploy(tr, 'repair', '--check')).stdout, `blog: restart ${one} (its health check answered 503)\n`);
  rmSync(join(tr.dir, 'curl.code'));

  // A deploy that takes the nodeset's lock while repair looks (here: during the health check, as
  // an update starting the instance it will switch to): repair stops nothing it found running.
  writeFileSync(join(tr.dir, 'active-units'), `silver-${one}.service\nsilver-${zero}.service\n`);
  writeFileSync(
    join(tr.bin, 'timeout'),
    `#!/bin/sh\ncase "$2" in */silver-http) ;; *) exec /usr/bin/timeout "$@" ;; esac\necho "http $1 http://127.0.0.1:$3$4" >> '${tr.dir}/calls.log'\nn=$(date +%s); printf 'tok-12345678 %s %s 30 %s\\n' "$n" "$n" ${b64('update')} > '${lock}'\necho 200\n`,
    { mode: 0o755 },
  );
  clearCalls(tr);
  const raced = await deploy(tr, 'repair');
  t.is(raced.code, 0, raced.stderr);
  t.regex(raced.stderr, /skip: a deploy took the nodeset's lock meanwhile/);
  t.false(calls(tr).some((c) => c.startsWith('systemctl stop')), calls(tr).join(' | '));
});

test('silver-deploy: bad app names, instance names, ports, paths and packages are refused before anything is written', async (t) => {
  const tr = tree(DEPLOY);
  const one = inst('blog', 1);
  await stage(tr, 'blog', one, 20001);
  await switchTo(tr, 'blog', one);
  const before = snapshot(tr);
  clearCalls(tr);
  const good = inst('blog', 2);
  const stageArgs = (app: string, instance: string, port = '20002', health = '/health') => ['stage', app, instance, port, health, b64('x')];
  const cases: string[][] = [
    stageArgs('a;b', 'a;b.2024-05-02_002'),
    stageArgs('..', '...2024-05-02_002'),
    stageArgs('Blog', 'Blog.2024-05-02_002'),
    stageArgs('blog\nx', good),
    stageArgs('nouser', 'nouser.2024-05-02_002'),
    stageArgs('blog', 'blog.2024-5-02_002'),
    stageArgs('blog', 'wiki.2024-05-02_002'),
    stageArgs('blog', `${good}/../../x`),
    // (one line of it matching is not enough; nor is a line that echo would make)
    stageArgs('blog', `${good}\n../../../../../../elsewhere`),
    stageArgs('blog', `${good}\\n../../../../../../elsewhere`),
    stageArgs('blog', good, '80a'),
    stageArgs('blog', good, '20002\n1'),
    stageArgs('blog', good, '20002', '/a b'),
    stageArgs('blog', good, '20002', '/$(id)'),
    stageArgs('blog', good, '20002', 'health'),
    stageArgs('blog', good, '20002', '/health\n$(reboot)'),
    ['env', 'blog', `${one}\n${good}`],
    ['switch', 'blog', good.replace('_', '-')],
    ['switch', 'blog', one, 'wiki.2024-05-02_002'],
    ['stop', 'blog;x', one],
    ['wait', 'blog', one, '/a b', '5', 'any'],
    ['wait', 'blog', one, '/', '5\n6', 'any'],
    ['fetch', 'blog', one, '/x$(id)', 'primary'],
    ['fetch', 'blog', one, '/x\n/y', 'primary'],
    ['fetch', 'blog', one, '/x', 'tertiary'],
    ['prune', 'blog', 'all'],
    ['unswitch', '../blog'],
  ];
  for (const args of cases) {
    const r = await deploy(tr, ...args);
    t.is(r.code, 1, JSON.stringify(args));
    t.regex(r.stderr, /^silver-deploy: (bad|no user|not a number)/, JSON.stringify(args));
  }
  t.deepEqual(snapshot(tr), before, 'nothing written');
  t.deepEqual(calls(tr), [], 'nothing called');
  t.false(existsSync(join(tr.dir, 'elsewhere')));

  // A package apt does not know is never taken as a pattern (`lib.+` would install hundreds).
  {
    const tgzP = execFileSync('tar', ['-czf', '-', '-C', tr.tmp, '.']);
    clearCalls(tr);
    await sh(tr, ['stage', 'blog', good, '20002', '/health', b64('x'), 'lib.+'], tgzP);
    const apt = calls(tr).filter((c) => c.startsWith('apt-get install'));
    t.true(apt.length > 0 && apt.every((c) => c.includes(' -o APT::Cmd::Pattern-Only=true ')), apt.join(' | '));
    rmSync(join(tr.apps, 'blog/instances', good), { recursive: true, force: true });
    clearCalls(tr);
  }
  // What dpkg says is installed is not asked for again: one dpkg-query for all, apt-get for the rest.
  {
    writeFileSync(join(tr.bin, 'dpkg-query'), `#!/bin/sh\necho "dpkg-query $*" >> '${tr.dir}/calls.log'\nprintf 'libfoo1 installed\\nlibbar2 not-installed\\n'\n`, { mode: 0o755 });
    clearCalls(tr);
    const r = await sh(tr, ['stage', 'blog', good, '20002', '/health', b64('x'), 'libfoo1', 'libbar2', 'libbaz3'], execFileSync('tar', ['-czf', '-', '-C', tr.tmp, '.']));
    t.is(r.code, 0, r.stderr);
    t.is(calls(tr).filter((c) => c.startsWith('dpkg-query')).length, 1);
    const apt = calls(tr).filter((c) => c.startsWith('apt-get install'));
    t.true(apt.length > 0 && apt.every((c) => c.endsWith(' libbar2 libbaz3')), apt.join(' | '));
    t.regex(r.stdout, /^installed libbar2 libbaz3$/m);
    rmSync(join(tr.apps, 'blog/instances', good), { recursive: true, force: true });
    clearCalls(tr);
  }
  // A package name is checked whole before apt-get sees it (a second line could be an option).
  const tgz = execFileSync('tar', ['-czf', '-', '-C', tr.tmp, '.']);
  const r = await sh(tr, ['stage', 'blog', good, '20002', '/health', b64('x'), 'libfoo1', 'vim\n-oDpkg::Pre-Invoke::=/home/silver/x'], tgz);
  t.is(r.code, 1);
  t.regex(r.stderr, /bad package name/);
  t.deepEqual(
    calls(tr).filter((c) => c.startsWith('apt-get')),
    [],
  );
});

// silver-state

const state = (t: Tree, args: string[], input = '') => sh(t, args, input);
const H1 = b64('alice@laptop 4242');
const H2 = b64('bob@desk 77');
const TOK1 = 'token-aaaa-1111';
const TOK2 = 'token-bbbb-2222';
const lockLine = (t: Tree) => readFileSync(join(t.state, 'lock'), 'utf8');
const nowSec = () => Math.floor(Date.now() / 1000);

test('silver-state: put KEY SEQ writes only over an older value (another command\'s newer change is never written over)', async (t) => {
  const tr = tree(STATE);
  t.is((await state(tr, ['put', 'maintenance', '1'], '{"seq":1,"modes":{}}\n')).code, 0, 'none yet');
  t.is((await state(tr, ['put', 'maintenance', '2'], '{"seq":2,"modes":{"a":1}}\n')).code, 0);
  const same = await state(tr, ['put', 'maintenance', '2'], '{"seq":2,"modes":{"b":1}}\n');
  t.is(same.code, 75);
  t.is(same.stdout, 'newer 2\n');
  t.is((await state(tr, ['put', 'maintenance', '1'], '{"seq":1}\n')).stdout, 'newer 2\n');
  t.is(readFileSync(join(tr.state, 'maintenance'), 'utf8'), '{"seq":2,"modes":{"a":1}}\n');
  t.is((await state(tr, ['put', 'maintenance', '3'], '{"seq":3}\n')).code, 0);
  // (a value that does not begin with its seq counts as the oldest; a bad SEQ is refused)
  writeFileSync(join(tr.state, 'other'), 'not json\n');
  t.is((await state(tr, ['put', 'other', '1'], '{"seq":1}\n')).code, 0);
  for (const bad of ['x', '-1', '1 2', '']) t.is((await state(tr, ['put', 'other', bad], '{}\n')).code, 1, bad);
});

test('silver-state: put then get, each present key framed by "== KEY", as silver parses it', async (t) => {
  const tr = tree(STATE);
  t.is((await state(tr, ['put', 'rollout-blog'], '{"seq":1,"app":"blog"}\n')).code, 0);
  t.is((await state(tr, ['put', 'rollout-wiki'], '{"seq":2}\n')).code, 0);
  t.is((await state(tr, ['put', 'rollout-wiki'], '{"seq":3}\n')).code, 0, 'a put replaces');
  t.is(readFileSync(join(tr.state, 'rollout-blog'), 'utf8'), '{"seq":1,"app":"blog"}\n');
  t.is(lstatSync(tr.state).mode & 0o777, 0o700);
  t.is(lstatSync(join(tr.state, 'rollout-blog')).mode & 0o777, 0o600);
  const r = await state(tr, ['get', 'rollout-blog', 'absent', 'rollout-wiki']);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, '== rollout-blog\n{"seq":1,"app":"blog"}\n\n== rollout-wiki\n{"seq":3}\n\n');
  t.deepEqual([...parseGet<{ seq: number }>(r.stdout)].map(([k, v]) => [k, v.seq]), [
    ['rollout-blog', 1],
    ['rollout-wiki', 3],
  ]);
  t.deepEqual(readdirSync(tr.state).sort(), ['.flock', 'rollout-blog', 'rollout-wiki'], 'no temporary file left');
});

test('silver-state: bad keys and values over 256 KiB are refused, leaving the old value', async (t) => {
  const tr = tree(STATE);
  await state(tr, ['put', 'big'], 'old\n');
  for (const key of ['Big', '1x', '../x', 'a/b', 'a b', '', `a${'b'.repeat(41)}`, 'big\n../../x', 'big\\n../x']) {
    const put = await state(tr, ['put', key], 'x\n');
    t.is(put.code, 1, JSON.stringify(key));
    t.regex(put.stderr, /bad key/);
    t.is((await state(tr, ['get', 'big', key])).code, 1, JSON.stringify(key));
  }
  t.is((await state(tr, ['put', `a${'b'.repeat(40)}`], 'x\n')).code, 0, '41 characters are fine');
  t.is((await state(tr, ['put', 'big', 'extra'], 'x\n')).code, 1);
  t.is((await state(tr, ['put', 'big'], 'x'.repeat(262144))).code, 0, 'exactly 256 KiB');
  t.is(readFileSync(join(tr.state, 'big'), 'utf8').length, 262144);
  await state(tr, ['put', 'big'], 'old\n');
  const over = await state(tr, ['put', 'big'], 'x'.repeat(262145));
  t.is(over.code, 1);
  t.regex(over.stderr, /value of big is too large/);
  t.is(readFileSync(join(tr.state, 'big'), 'utf8'), 'old\n');
  t.deepEqual(readdirSync(tr.state).filter((n) => n.endsWith('.new')), []);
});

test('silver-state: lock is taken, renewed by its token, held against another (exit 75), taken over when stale or stolen', async (t) => {
  const tr = tree(STATE);
  t.is((await state(tr, ['lockinfo'])).stdout, 'free\n');
  const taken = await state(tr, ['lock', TOK1, '30', H1]);
  t.is(taken.code, 0, taken.stderr);
  t.is(taken.stdout, 'taken\n');
  const [tok, start, beat, ttl, holder, ...rest] = lockLine(tr).trim().split(' ');
  t.deepEqual([tok, ttl, holder, rest], [TOK1, '30', H1, []]);
  t.true(Math.abs(Number(start) - nowSec()) <= 10 && start === beat);
  // (the age in seconds since the heartbeat: small, whatever the load on the machine)
  t.regex((await state(tr, ['lockinfo'])).stdout, new RegExp(`^held ${TOK1} ([0-9]|1[0-9]) 30 ${H1}\n$`));

  // Renewed: the start and the holder kept, the heartbeat and the TTL new.
  const t0 = nowSec() - 50;
  writeFileSync(join(tr.state, 'lock'), `${TOK1} ${t0} ${t0 + 10} 30 ${H1}\n`);
  const renewed = await state(tr, ['lock', TOK1, '40', H2]);
  t.is(renewed.stdout, 'renewed\n');
  const after = lockLine(tr).trim().split(' ');
  t.deepEqual([after[0], after[1], after[3], after[4]], [TOK1, String(t0), '40', H1]);
  t.true(Math.abs(Number(after[2]) - nowSec()) <= 2);

  const held = await state(tr, ['lock', TOK2, '30', H2]);
  t.is(held.code, 75);
  t.regex(held.stdout, new RegExp(`^held ${TOK1} ([0-9]|1[0-9]) ${H1}\n$`));
  t.is(lockLine(tr).split(' ')[0], TOK1, 'still the first holder\'s');
  t.is((await state(tr, ['lock', TOK2, '30', H2, 'token-cccc-3333'])).code, 75, 'a STEAL of someone else');

  const stolen = await state(tr, ['lock', TOK2, '30', H2, TOK1]);
  t.is(stolen.code, 0, stolen.stderr);
  t.is(stolen.stdout, `took-over ${H1}\n`);
  t.deepEqual(lockLine(tr).trim().split(' ').filter((_, i) => i === 0 || i === 4), [TOK2, H2]);

  // Stale: no heartbeat for longer than its TTL.
  const old = nowSec() - 100;
  writeFileSync(join(tr.state, 'lock'), `${TOK2} ${old - 100} ${old} 30 ${H2}\n`);
  const over = await state(tr, ['lock', TOK1, '30', H1]);
  t.is(over.code, 0, over.stderr);
  t.is(over.stdout, `took-over ${H2}\n`);
  const mine = lockLine(tr).trim().split(' ');
  t.is(mine[0], TOK1);
  t.true(Math.abs(Number(mine[1]) - nowSec()) <= 2, 'a new start');

  // A heartbeat from the future (this node's clock came up behind it after a reboot): fresh within
  // the TTL, stale past it (a dead holder's lock would keep everyone away until the clock caught up).
  const ahead = nowSec() + 10;
  writeFileSync(join(tr.state, 'lock'), `${TOK2} ${ahead} ${ahead} 30 ${H2}\n`);
  t.is((await state(tr, ['lock', TOK1, '30', H1])).code, 75, '10 s ahead: still held');
  const far = nowSec() + 3600;
  writeFileSync(join(tr.state, 'lock'), `${TOK2} ${far} ${far} 30 ${H2}\n`);
  t.is((await state(tr, ['lock', TOK1, '30', H1])).stdout, `took-over ${H2}\n`, 'an hour ahead: stale');
});

test('silver-state: unlock by the wrong token is refused (exit 75), by the right one releases; --force says whom it removed', async (t) => {
  const tr = tree(STATE);
  t.is((await state(tr, ['unlock', TOK1])).stdout, 'free\n');
  await state(tr, ['lock', TOK1, '30', H1]);
  const wrong = await state(tr, ['unlock', TOK2]);
  t.is(wrong.code, 75);
  t.regex(wrong.stdout, new RegExp(`^held ${TOK1} ([0-9]|1[0-9]) ${H1}\n$`));
  t.true(existsSync(join(tr.state, 'lock')));
  const right = await state(tr, ['unlock', TOK1]);
  t.is(right.stdout, 'released\n');
  t.false(existsSync(join(tr.state, 'lock')));
  await state(tr, ['lock', TOK2, '30', H2]);
  const forced = await state(tr, ['unlock', '--force']);
  t.is(forced.code, 0);
  t.is(forced.stdout, `removed ${H2}\n`);
  t.is((await state(tr, ['lockinfo'])).stdout, 'free\n');
});

test('silver-state: bad tokens, TTLs and holders are refused, writing no lock', async (t) => {
  const tr = tree(STATE);
  for (const args of [
    ['lock', 'short', '30', H1],
    ['lock', 'token with spaces', '30', H1],
    ['lock', `${TOK1}\n${TOK2}`, '30', H1],
    ['lock', `${TOK1}\\n`, '30', H1],
    ['lock', TOK1, 'x', H1],
    ['lock', TOK1, '123456', H1],
    ['lock', TOK1, '30\n1', H1],
    ['lock', TOK1, '30', 'not base64!'],
    ['lock', TOK1, '30', `${H1}\n${TOK2} 1 1 1 x`],
    ['lock', TOK1, '30', H1, 'bad steal'],
    ['lock', TOK1, '30'],
  ]) {
    const r = await state(tr, args);
    t.is(r.code, 1, JSON.stringify(args));
    t.false(existsSync(join(tr.state, 'lock')), JSON.stringify(args));
  }
});

test('silver-state: the state folder is refused when it is a symbolic link or not mode 700', async (t) => {
  const tr = tree(STATE);
  const elsewhere = join(tr.dir, 'elsewhere');
  mkdirSync(elsewhere);
  mkdirSync(join(tr.state, '..'), { recursive: true });
  symlinkSync(elsewhere, tr.state);
  for (const args of [['get', 'x'], ['put', 'x'], ['lock', TOK1, '30', H1], ['lockinfo']]) {
    const r = await state(tr, args, 'v\n');
    t.is(r.code, 1);
    t.regex(r.stderr, /state is a symbolic link/);
  }
  t.deepEqual(readdirSync(elsewhere), [], 'nothing written through the link');

  rmSync(tr.state);
  mkdirSync(tr.state, { mode: 0o755 });
  chmodSync(tr.state, 0o755);
  const r = await state(tr, ['put', 'x'], 'v\n');
  t.is(r.code, 1);
  t.regex(r.stderr, /state must be owned by \S+ with mode 700/);
  t.deepEqual(readdirSync(tr.state), []);
});

test('silver-deploy: attack — a static folder reached through a link (static = r/etc/ with r -> /) is refused; stored static versions hold only files and folders', async (t) => {
  const tr = tree(DEPLOY);
  const one = inst('blog', 1);
  const src = join(tr.dir, 'src-attack');
  mkdirSync(join(src, 'pub'), { recursive: true });
  writeFileSync(join(src, 'pub/a.css'), 'a\n');
  symlinkSync('/', join(src, 'r'));
  symlinkSync('/etc/passwd', join(src, 'pub/passwd'));
  const tgz = execFileSync('tar', ['-czf', '-', '-C', src, '.']);
  t.is((await sh(tr, ['stage', 'blog', one, '20001', '/health', b64('x')], tgz)).code, 0);
  const sum = 'a'.repeat(64);
  const evil = await deploy(tr, 'mark', 'blog', one, 'b'.repeat(64), sum, 'r/etc/');
  t.is(evil.code, 1);
  t.regex(evil.stderr, /a part of its path is a link/);
  t.false(existsSync(join(tr.apps, 'blog/static', sum)), 'nothing copied from /etc');
  // The app's own folder is no static folder (its code and app.ini would be served).
  for (const own of ['./', 'pub/./', '../']) {
    const r = await deploy(tr, 'mark', 'blog', one, 'b'.repeat(64), sum, own);
    t.is(r.code, 1, own);
    t.regex(r.stderr, /bad static folder/, own);
  }
  const ok = await deploy(tr, 'mark', 'blog', one, 'b'.repeat(64), sum, 'pub/');
  t.is(ok.code, 0, ok.stderr);
  t.deepEqual(readdirSync(join(tr.apps, 'blog/static', sum)), ['a.css'], 'the link inside the folder is dropped');
});

test('silver-deploy: where systemd keeps invocation links, status asks systemctl only about units that are up, and repair reads the active instance without it', async (t) => {
  const tr = tree(DEPLOY);
  const [one, two] = ['blog.2024-05-01_001', 'blog.2024-05-02_002'];
  await stage(tr, 'blog', one, 20001);
  await stage(tr, 'blog', two, 20002);
  await switchTo(tr, 'blog', two);
  // systemd's links: the active instance's alone (the other is stopped); systemctl agrees.
  const links = join(tr.prefix, 'run/systemd/units');
  mkdirSync(links, { recursive: true });
  symlinkSync('0123456789abcdef', join(links, `invocation:silver-${two}.service`));
  writeFileSync(join(tr.dir, 'active-units'), `silver-${two}.service\n`);
  clearCalls(tr);
  const status = await deploy(tr, 'status');
  t.is(status.code, 0, status.stderr);
  t.is(status.stdout, `app blog active ${two} previous - health ok code - static - instances ${one}:20001:inactive ${two}:20002:active\n`);
  t.deepEqual(calls(tr).filter((c) => c.startsWith('systemctl')), [`systemctl is-active silver-${two}.service`], 'the stopped instance: no systemctl');
  clearCalls(tr);
  const repair = await deploy(tr, 'repair');
  t.is(repair.code, 0, repair.stderr);
  t.is(repair.stdout, '');
  t.deepEqual(calls(tr), ['http 3 http://127.0.0.1:20002/health'], 'all well: the health check alone');
  // The link gone (the unit stopped behind systemd's back): repair starts it again.
  rmSync(join(links, `invocation:silver-${two}.service`));
  t.is((await deploy(tr, 'repair', '--check')).stdout, `blog: start ${two} (its active instance was not running)\n`);
});

test('silver-deploy: the app users from the password file — an exact name, a last line without a line break; a line without a number is no user', async (t) => {
  const tr = tree(DEPLOY);
  writeFileSync(join(tr.prefix, 'etc/passwd'), ['root:x:0:0::/root:/bin/sh', 'app-blo:x:4240:4240::/x:/bin/false', 'app-blogx:x:4241:4241::/x:/bin/false', 'app-wiki', 'app-blog:x:4242:4242::/x:/bin/false', 'app-news:x:4243:4243::/x:/usr/sbin/nologin'].join('\n'));
  for (const app of ['blog', 'news']) t.deepEqual(await deploy(tr, 'pending', 'get', app), { code: 0, signal: null, stdout: '', stderr: '' }, app);
  for (const app of ['wiki', 'other']) t.regex((await deploy(tr, 'pending', 'get', app)).stderr, new RegExp(`no user app-${app}: run silver setup-node`), app);
});

test('silver-deploy: pending set before the app\'s first deploy (its folder not made yet) stages the settings, root-only; get reads them back, clear removes them', async (t) => {
  const tr = tree(DEPLOY);
  t.false(existsSync(join(tr.apps, 'blog')));
  const staged = 'staged 1\nset GREETING aGk=\n';
  const set = await sh(tr, ['pending', 'set', 'blog'], staged);
  t.is(set.code, 0, set.stderr);
  t.is(statSync(join(tr.apps, 'blog', 'settings.pending')).mode & 0o777, 0o600);
  t.is((await deploy(tr, 'pending', 'get', 'blog')).stdout, staged);
  t.is((await deploy(tr, 'pending', 'clear', 'blog')).code, 0);
  t.false(existsSync(join(tr.apps, 'blog', 'settings.pending')));
});

test('attack: a command run-stage kept for one app is run for that app alone, once; an update\'s own script or another app\'s command is no run of it', async (t) => {
  const tr = tree(DEPLOY);
  const one = inst('blog', 1);
  await stage(tr, 'blog', one, 20001);
  await switchTo(tr, 'blog', one);
  // (the owner a file was given, as stat would show it: the fakes' chown changes nothing here)
  fake(tr, 'stat', `if [ "$1" = -c ] && [ "$2" = '%U:%G %a' ]; then o=$(grep " $3\\$" "$T/calls.log" | grep '^chown ' | tail -n 1 | cut -d' ' -f2); echo "\${o:-root:root} $(/usr/bin/stat -c %a "$3")"; else exec /usr/bin/stat "$@"; fi`);
  const staged = await sh(tr, ['run-stage', 'blog'], "echo 'DB_PASSWORD=s3cret' | psql\n");
  t.is(staged.code, 0, staged.stderr);
  const id = staged.stdout.trim();
  t.regex(id, /^r\.[A-Za-z0-9]{10}$/);
  const file = join(tr.prefix, 'run/silverlining-scripts', id);
  t.is(readFileSync(file, 'utf8'), "echo 'DB_PASSWORD=s3cret' | psql\n");
  t.false(calls(tr).some((c) => c.includes('s3cret')), 'the command is on no command line');
  const other = await sh(tr, ['run', 'wiki', 'pipe', id]);
  t.is(other.code, 1);
  t.regex(other.stderr, new RegExp(`no command ${id.replace('.', '\\.')} staged for wiki`));
  t.true(existsSync(file), "another app's run leaves it");
  const mine = await sh(tr, ['run', 'blog', 'pipe', id]);
  t.is(mine.code, 0, mine.stderr);
  t.is(readFileSync(join(tr.dir, 'last-script'), 'utf8'), "echo 'DB_PASSWORD=s3cret' | psql\n");
  t.false(existsSync(file), 'run once, then gone');
  t.regex((await sh(tr, ['run', 'blog', 'pipe', id])).stderr, /no command .* staged for blog/);
  // An update script's file (s.*) is not a staged command.
  t.regex((await sh(tr, ['run', 'blog', 'pipe', 's.AAAAAAAAAA'])).stderr, /bad command id/);
});

const journalLog = (t: Tree) => (existsSync(join(t.dir, 'journal.log')) ? readFileSync(join(t.dir, 'journal.log'), 'utf8') : '');

test('attack: the journal lines a verb writes before it checks its arguments hold silver\'s characters only: a line break or a control character in an argument is not written (it would be a line of its own in the stream silver logs silver trusts)', async (t) => {
  const tr = tree(DEPLOY);
  const one = inst('blog', 1);
  await stage(tr, 'blog', one, 20001);
  t.true(journalLog(tr).includes(`stage blog ${one}\n`), journalLog(tr));
  writeFileSync(join(tr.dir, 'journal.log'), '');
  const r = await deploy(tr, 'stop', 'blog', `${one}\nswitch blog hello.2026-01-01_001`);
  t.is(r.code, 1);
  t.is(journalLog(tr), 'stop (arguments with other characters, not logged)\n');
  writeFileSync(join(tr.dir, 'journal.log'), '');
  await deploy(tr, 'stop', 'blog', 'x\u001b[2Jy');
  t.is(journalLog(tr), 'stop (arguments with other characters, not logged)\n');
});
