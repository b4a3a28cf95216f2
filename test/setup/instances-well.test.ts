import test from 'ava';
import { execFile } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { layersRoot } from '../../src/layers.js';

// The probe's repair of the instances (lib.sh: repair_instances, instances_well) run by a real `sh`
// with lib.sh sourced, against a tree of apps in a temporary folder (APPS_ROOT, UNIT_LINKS and
// HELPER_BIN pointed into it): the real silver-http and timeout against a real server on loopback,
// and a fake silver-deploy that logs its argv. Needs no root.

const dirs: string[] = [];
test.after.always(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Tree {
  dir: string;
  apps: string;
  links: string;
  bin: string;
  /** silver-deploy's calls, one line each */
  calls: () => string[];
}

const ONE = 'blog.2026-12-01_001';
const TWO = 'blog.2026-12-02_002';

/** A tree with app blog: instances ONE (port `port`) and TWO, TWO active and running. */
function tree(port: number): Tree {
  const dir = mkdtempSync(join(tmpdir(), 'silver-well-'));
  dirs.push(dir);
  const t: Tree = {
    dir,
    apps: join(dir, 'apps'),
    links: join(dir, 'units'),
    bin: join(dir, 'bin'),
    calls: () => (existsSync(join(dir, 'calls.log')) ? readFileSync(join(dir, 'calls.log'), 'utf8').split('\n').filter(Boolean) : []),
  };
  for (const d of [t.links, t.bin]) mkdirSync(d, { recursive: true });
  for (const inst of [ONE, TWO]) {
    const i = join(t.apps, 'blog', 'instances', inst);
    mkdirSync(i, { recursive: true });
    writeFileSync(join(i, 'port'), `${port}\n`);
    writeFileSync(join(i, 'health'), '/health\n');
  }
  symlinkSync(`instances/${TWO}`, join(t.apps, 'blog', 'active'));
  symlinkSync('x', join(t.links, `invocation:silver-${TWO}.service`));
  copyFileSync(join(layersRoot(), 'appserver/bin/silver-http'), join(t.bin, 'silver-http'));
  chmodSync(join(t.bin, 'silver-http'), 0o755);
  writeFileSync(join(t.bin, 'silver-deploy'), `#!/bin/sh\necho "silver-deploy $*" >> '${dir}/calls.log'\necho "blog: restart ${TWO} (its health check answered 503)"\n`, { mode: 0o755 });
  return t;
}

/** `script` after lib.sh, in the tree: its standard output. */
async function sh(t: Tree, script: string): Promise<string> {
  const prelude = `. '${join(layersRoot(), 'lib.sh')}'\nAPPS_ROOT='${t.apps}' UNIT_LINKS='${t.links}' HELPER_BIN='${t.bin}'\n`;
  const { stdout } = await promisify(execFile)('sh', ['-c', prelude + script], { env: { PATH: '/usr/bin:/bin' }, encoding: 'utf8' });
  return stdout;
}

const well = (t: Tree) => sh(t, 'if instances_well; then echo well; else echo not; fi').then((s) => s.trim());

/** A server on loopback answering `code()` to every request, and the requests it saw. */
async function server(code: () => number): Promise<{ port: number; seen: string[]; close: () => void }> {
  const seen: string[] = [];
  const s: Server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url} ${req.headers.host}`);
    res.writeHead(code()).end();
  });
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return { port: (s.address() as AddressInfo).port, seen, close: () => s.close() };
}

test('all well: the active instance runs and answers 2xx, no other runs — one health request, and silver-deploy repair is not asked', async (t) => {
  const srv = await server(() => 204);
  t.teardown(srv.close);
  const tr = tree(srv.port);
  t.is(await well(tr), 'well');
  t.deepEqual(srv.seen, [`GET /health 127.0.0.1:${srv.port}`], "the request silver-deploy's health check makes");
  srv.seen.length = 0;
  t.is(await sh(tr, 'CHANGES=0; changed() { echo "changed: $*"; }\nrepair_instances\necho done'), 'done\n');
  t.deepEqual(tr.calls(), []);
  t.is(srv.seen.length, 1);
});

test('anything else is repair\'s to look at: an unhealthy answer, a refusal, a half-done switch, the active instance down, another instance up', async (t) => {
  let code = 503;
  const srv = await server(() => code);
  t.teardown(srv.close);
  const cases: [string, (tr: Tree) => void][] = [
    ['a 503', () => undefined],
    ['a refusal', (tr) => writeFileSync(join(tr.apps, 'blog', 'instances', TWO, 'port'), '1\n')],
    ['a switch left half done', (tr) => writeFileSync(join(tr.apps, 'blog', 'switching'), `${ONE} 1\n`)],
    ['the active instance down', (tr) => rmSync(join(tr.links, `invocation:silver-${TWO}.service`))],
    ['another instance up', (tr) => symlinkSync('x', join(tr.links, `invocation:silver-${ONE}.service`))],
    ['its health file gone', (tr) => rmSync(join(tr.apps, 'blog', 'instances', TWO, 'health'))],
  ];
  for (const [what, spoil] of cases) {
    code = what === 'a 503' ? 503 : 200;
    const tr = tree(srv.port);
    spoil(tr);
    t.is(await well(tr), 'not', what);
    // repair_instances then asks silver-deploy, and reports what it says as changes
    const out = await sh(tr, 'changed() { echo "changed: $*"; }\nrepair_instances');
    t.deepEqual(tr.calls(), ['silver-deploy repair'], what);
    t.is(out, `changed: blog: restart ${TWO} (its health check answered 503)\n`, what);
  }
});

test('a check-only run asks repair with --check; no app at all is well; a stop-after under way is repair\'s (it may be draining)', async (t) => {
  const srv = await server(() => 200);
  t.teardown(srv.close);
  const tr = tree(srv.port);
  symlinkSync('x', join(tr.links, `invocation:silver-${ONE}.service`));
  await sh(tr, 'CHECK=1\nchanged() { :; }\nrepair_instances');
  t.deepEqual(tr.calls(), ['silver-deploy repair --check']);
  rmSync(join(tr.apps, 'blog'), { recursive: true });
  t.is(await well(tr), 'well');
});
