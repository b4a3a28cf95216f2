import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memoryHost } from '../../src/config/host.js';
import { loadNodeset } from '../../src/nodeset/resolve.js';
import { hostsLines, layersFor, layerScript, layerVars, nodesetConf, parseLayerOutput, type AddressedNode } from '../../src/setup/plan.js';
import { layersRoot } from '../../src/layers.js';

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
  const script = layerScript('base', { SILVER_CHECK: check ? '1' : '0' }, layersRoot()).replace(/# base — [\s\S]*$/, '') + body;
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
