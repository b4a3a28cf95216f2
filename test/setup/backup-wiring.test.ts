import test from 'ava';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { memoryHost } from '../../src/config/host.js';
import { ConfigError, formatDiagnostic } from '../../src/diagnostics.js';
import { layersRoot } from '../../src/layers.js';
import { loadNodeset } from '../../src/nodeset/resolve.js';
import { backupUnits, copyNode, type BackupWiring } from '../../src/setup/backup-wiring.js';
import { layerVars, type AddressedNode } from '../../src/setup/plan.js';

// Scheduled backups as setup-node wires them, and the receiving end of the copies.

const F = '/n/b.conf';
const text = (svc: string) => `[general]\nname = b\nbase_domain = b.test\n[appserver]\nnodes = 2\nlocations = http://b.test/ blog\n[service:postgresql]\nnode_name = db.b.test\n${svc}[balancer]\n`;
const ns = loadNodeset(F, memoryHost({ [F]: text('backup = *-*-* 03:30:00\nbackup_keep = 3\n') }));
const nodes: AddressedNode[] = [
  { name: 'app1.b.test', role: 'appserver', address: '10.4.3.2' },
  { name: 'app2.b.test', role: 'appserver', address: '10.4.3.3' },
  { name: 'db.b.test', role: 'service:postgresql', address: '10.4.3.5' },
  { name: 'balancer.b.test', role: 'balancer', address: '10.4.3.6' },
];
const wiring: BackupWiring = { key: { private: '-----BEGIN OPENSSH PRIVATE KEY-----\nSECRETKEYBODY\n-----END OPENSSH PRIVATE KEY-----\n', public: 'ssh-ed25519 AAAAPUB silver-backup-b' }, target: nodes[3]!, targetHostKey: 'ssh-ed25519 AAAAHOST', senders: [{ name: 'db.b.test', address: '10.4.3.5', keep: 3 }] };

function errors(svc: string): string[] {
  try {
    loadNodeset(F, memoryHost({ [F]: text(svc) }));
  } catch (e) {
    if (e instanceof ConfigError) return e.diagnostics.map(formatDiagnostic);
    throw e;
  }
  return [];
}

test('backup = and backup_keep are read from a [service:NAME]; bad ones are located errors', (t) => {
  t.deepEqual(ns.backupSchedules, { postgresql: { calendar: '*-*-* 03:30:00', keep: 3 } });
  t.deepEqual(loadNodeset(F, memoryHost({ [F]: text('backup = daily\n') })).backupSchedules, { postgresql: { calendar: 'daily', keep: 7 } });
  t.deepEqual(loadNodeset(F, memoryHost({ [F]: text('') })).backupSchedules, {});
  t.deepEqual(errors('backup = daily; rm -rf /\n'), ['/n/b.conf:9: backup: "daily; rm -rf /" must be daily, hourly, weekly or a systemd OnCalendar expression (e.g. *-*-* 03:30:00)']);
  t.deepEqual(errors("backup = 'x'\n"), [`/n/b.conf:9: backup: "'x'" must be daily, hourly, weekly or a systemd OnCalendar expression (e.g. *-*-* 03:30:00)`]);
  t.deepEqual(errors('backup = daily\nbackup_keep = 0\n'), ['/n/b.conf:10: backup_keep: must be a whole number from 1 to 1000, got "0"']);
  t.deepEqual(errors('backup_keep = 3\n'), ['/n/b.conf:9: backup_keep: is only meaningful with backup =']);
});

test('the service layer gets the timer, the conf and the key; the copy node gets only the public half, restricted to the receiver; no other node gets either', (t) => {
  const svc = layerVars(ns, nodes[2]!, nodes, 'service/postgresql', 'deploy', false, new Map(), null, wiring);
  t.is(svc['SILVER_BACKUP'], '1');
  t.is(svc['SILVER_BACKUP_CONF'], 'service postgresql\next pgdump\nkeep 3\nnode db.b.test\ntarget 10.4.3.6\n');
  t.is(svc['SILVER_BACKUP_KNOWN'], '10.4.3.6 ssh-ed25519 AAAAHOST\n');
  t.is(svc['SILVER_BACKUP_KEY'], wiring.key.private);
  t.is(svc['SILVER_BACKUP_KEY_MD5'], createHash('md5').update(wiring.key.private).digest('hex'));
  t.regex(svc['SILVER_BACKUP_TIMER']!, /^OnCalendar=\*-\*-\* 03:30:00$/m);
  t.regex(svc['SILVER_BACKUP_TIMER']!, /^Persistent=true$/m);
  t.is(svc['SILVER_BACKUP_SERVICE_UNIT'], backupUnits('x').service);
  const receiver = layerVars(ns, nodes[3]!, nodes, 'base', 'deploy', false, new Map(), null, wiring);
  // (one line per service node: only from its address, the node and its keep in the forced command)
  t.is(receiver['SILVER_BACKUP_RECEIVE_KEYS'], 'restrict,from="10.4.3.5",command="/usr/local/lib/silverlining/bin/silver-backup-receive db.b.test 3" ssh-ed25519 AAAAPUB silver-backup-b\n');
  for (const n of nodes) {
    for (const layer of ['base', 'wire', n.role.startsWith('service:') ? 'service/postgresql' : n.role]) {
      const v = layerVars(ns, n, nodes, layer, 'deploy', false, new Map(), null, wiring);
      const hasKey = Object.values(v).some((x) => x.includes('SECRETKEYBODY'));
      t.is(hasKey, n.name === 'db.b.test' && layer === 'service/postgresql', `${n.name} ${layer}`);
      if (!(n.name === 'balancer.b.test' && layer === 'base')) t.false(Object.values(v).some((x) => x.includes('silver-backup-receive')), `${n.name} ${layer}`);
    }
  }
  t.is(layerVars(loadNodeset(F, memoryHost({ [F]: text('') })), nodes[2]!, nodes, 'service/postgresql', 'deploy', false, new Map(), null, null)['SILVER_BACKUP'], '0');
});

test('the copy node is the balancer, else the first app server', (t) => {
  t.is(copyNode(nodes)?.name, 'balancer.b.test');
  t.is(copyNode(nodes.slice(0, 3))?.name, 'app1.b.test');
  t.is(copyNode([nodes[2]!]), null);
});

// silver-backup-receive with its ROOT moved into a temporary tree, as the forced command runs it.
const dir = mkdtempSync(join(tmpdir(), 'silver-receive-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));
const script = join(dir, 'silver-backup-receive');
writeFileSync(script, readFileSync(join(layersRoot(), 'base/bin/silver-backup-receive'), 'utf8').replace(/^ROOT=.*$/m, `ROOT=${dir}/copies`));
function receive(command: string, input: Buffer | string, forced = ['db.b.test', '2']): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = execFile('sh', [script, ...forced], { env: { PATH: process.env['PATH']!, SSH_ORIGINAL_COMMAND: command } }, (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
    // (a refused command exits before it reads its input: the write may meet a closed pipe)
    p.stdin!.on('error', () => undefined);
    p.stdin!.end(input);
  });
}
const sha = (b: string) => createHash('sha256').update(b).digest('hex');

test.serial('silver-backup-receive keeps a whole file, refuses a damaged one or a hostile name, and keeps the newest KEEP', async (t) => {
  const body = 'PGDMP dump bytes';
  const ok = await receive(`put db.b.test blog 20261202T030000Z.pgdump ${body.length} ${sha(body)} 2`, body);
  t.is(ok.code, 0, ok.stderr);
  t.is(readFileSync(join(dir, 'copies/db.b.test/blog/20261202T030000Z.pgdump'), 'utf8'), body);
  const bad = await receive(`put db.b.test blog 20261202T040000Z.pgdump ${body.length} ${sha('other')} 2`, body);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /arrived damaged/);
  t.deepEqual(readdirSync(join(dir, 'copies/db.b.test/blog')), ['20261202T030000Z.pgdump'], 'nothing of the damaged one is left');
  for (const cmd of [
    'id',
    `put ../../etc blog 20261202T030000Z.pgdump 1 ${sha('x')} 2`,
    `put db.b.test ../x 20261202T030000Z.pgdump 1 ${sha('x')} 2`,
    `put db.b.test blog ../../x.pgdump 1 ${sha('x')} 2`,
    `put db.b.test blog 20261202T030000Z.pgdump 1 ${sha('x')} 2; id`,
    `put db.b.test blog $(id).pgdump 1 ${sha('x')} 2`,
  ]) {
    const r = await receive(cmd, 'x');
    t.is(r.code, 1, cmd);
    t.notRegex(r.stdout + r.stderr, /uid=/, cmd);
  }
  for (const st of ['20261202T050000Z', '20261202T060000Z', '20261202T070000Z']) {
    for (const ext of ['pgdump', 'meta']) t.is((await receive(`put db.b.test blog ${st}.${ext} 1 ${sha('x')} 2`, 'x')).code, 0);
  }
  t.deepEqual(readdirSync(join(dir, 'copies/db.b.test/blog')).sort(), ['20261202T060000Z.meta', '20261202T060000Z.pgdump', '20261202T070000Z.meta', '20261202T070000Z.pgdump']);
  // Attack: a service node's root, with the shared key, files a copy as another node, or asks to
  // keep 1 (pruning what is there): the forced command's node and keep decide.
  const other = await receive(`put mysql.b.test blog 20261202T080000Z.pgdump 1 ${sha('x')} 2`, 'x');
  t.is(other.code, 1);
  t.regex(other.stderr, /this key takes copies of db\.b\.test only/);
  t.false(readdirSync(join(dir, 'copies')).includes('mysql.b.test'));
  for (const ext of ['pgdump', 'meta']) t.is((await receive(`put db.b.test blog 20261202T080000Z.${ext} 1 ${sha('x')} 1`, 'x')).code, 0);
  t.is(readdirSync(join(dir, 'copies/db.b.test/blog')).filter((f) => f.endsWith('.meta')).length, 2, 'keep 1 asked, the forced command\'s 2 kept');
  t.regex((await receive(`put db.b.test blog 20261202T090000Z.meta 1 ${sha('x')} 2`, 'x', [])).stderr, /names no node/);
});

test.serial('attack: a service node (its root taken) cannot make the copy node prune or replace real copies, nor fill its disk: no stamp from the future, no copy replaced, at most SIZE bytes read, no copy past the free space', async (t) => {
  const base = join(dir, 'copies/db.b.test/shop');
  const body = 'PGDMP real';
  for (const ext of ['pgdump', 'meta']) t.is((await receive(`put db.b.test shop 20261202T030000Z.${ext} ${body.length} ${sha(body)} 2`, body)).code, 0);
  // Stamped past every real copy: refused (two of them would have had every real copy pruned).
  const future = await receive(`put db.b.test shop 99991231T235959Z.meta 1 ${sha('x')} 2`, 'x');
  t.is(future.code, 1);
  t.regex(future.stderr, /stamped in the future: refused/);
  // A copy already here: other bytes refused, the same bytes taken as sent.
  const replace = await receive(`put db.b.test shop 20261202T030000Z.pgdump 1 ${sha('x')} 2`, 'x');
  t.is(replace.code, 1);
  t.regex(replace.stderr, /is here already, with other bytes: a copy is never replaced/);
  t.is(readFileSync(join(base, '20261202T030000Z.pgdump'), 'utf8'), body);
  t.is((await receive(`put db.b.test shop 20261202T030000Z.pgdump ${body.length} ${sha(body)} 2`, body)).code, 0);
  // More bytes than it says: refused, nothing kept.
  const more = await receive(`put db.b.test shop 20261202T040000Z.pgdump 2 ${sha('xy')} 2`, 'xy and a great deal more');
  t.is(more.code, 1);
  t.regex(more.stderr, /arrived damaged/);
  t.false(readdirSync(base).some((f) => f.startsWith('20261202T04') || f.includes('.part')));
  // Larger than the disk holds: refused before a byte is read.
  const huge = await receive(`put db.b.test shop 20261202T050000Z.pgdump 9999999999999 ${sha('x')} 2`, 'x');
  t.is(huge.code, 1);
  t.regex(huge.stderr, /would leave less than 1 GiB free here: refused/);
});

test.serial('the copies kept are the last KEEP to arrive, whatever their stamps: copies stamped ahead (a sender\'s clock, or its root taken) are pushed out by the next real ones, never kept for ever at their expense', async (t) => {
  const stamp = (ms: number) => new Date(ms).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  const now = Date.now();
  const base = join(dir, 'copies/db.b.test/ahead');
  const send = async (st: string, body: string) => {
    for (const ext of ['pgdump', 'meta']) t.is((await receive(`put db.b.test ahead ${st}.${ext} ${body.length} ${sha(body)} 2`, body)).code, 0, `${st}.${ext}`);
    await new Promise((r) => setTimeout(r, 20));
  };
  const ahead = [stamp(now + 3_600_000), stamp(now + 7_200_000)];
  for (const st of ahead) await send(st, 'fake');
  const real = [stamp(now - 60_000), stamp(now)];
  for (const st of real) await send(st, 'real');
  t.deepEqual(readdirSync(base).sort(), real.flatMap((st) => [`${st}.meta`, `${st}.pgdump`]).sort(), 'the real copies stay, the ones stamped ahead went');
});
