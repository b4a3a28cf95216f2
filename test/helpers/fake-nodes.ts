import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryProvider } from '../../providers/memory/index.js';
import { memoryHost } from '../../src/config/host.js';
import { layersRoot } from '../../src/layers.js';
import { loadNodeset } from '../../src/nodeset/resolve.js';
import { memoryIo } from '../../src/output/io.js';
import type { Runtime } from '../../src/runtime.js';
import type { AttachOptions } from '../../src/ssh/attach.js';
import type { ExecResult } from '../../src/ssh/connect.js';
import type { NodeExecutor } from '../../src/ssh/keeper.js';
import { StateDir } from '../../src/state.js';

/** Splits shell text made by quoteCommand back into argv (single quotes and plain words). */
export function shellWords(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === "'") {
      const end = text.indexOf("'", i + 1);
      cur += text.slice(i + 1, end);
      i = end;
      inWord = true;
    } else if (c === '\\') {
      cur += text[++i];
      inWord = true;
    } else if (c === ' ') {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (inWord) out.push(cur);
  return out;
}

interface FakeApp {
  active: string | null;
  previous: string | null;
  instances: Map<string, { port: number; running: boolean; healthy: boolean; code?: string; static?: string; env?: string }>;
  /** Settings staged with --no-restart. */
  pending?: string;
  /** Static versions staged on the node. */
  statics?: Set<string>;
}

export interface Call {
  node: string;
  argv: string[];
}

const ok = (stdout = ''): ExecResult => ({ code: 0, stdout, stderr: '' });
const fail = (stderr: string, code = 1): ExecResult => ({ code, stdout: '', stderr });
const BIN = '/usr/local/lib/silverlining/bin/';
/** The silver-db-* verbs answered as the helpers do (any other verb answers as ensure). */
const DB_BACKUP_VERBS = ['list', 'dump', 'get', 'put', 'load', 'restore', 'drop', 'forget'];

/**
 * App servers, service nodes and balancers simulated in memory, answering the node helpers'
 * verbs as the real ones do (silver-deploy, silver-state, silver-db-*, silver-balancer). Every
 * call is recorded as argv; `failWhen` makes chosen calls fail, `onCall` can act in between
 * (an interrupt, a lost node).
 */
export class FakeNodes implements NodeExecutor {
  readonly calls: Call[] = [];
  readonly apps = new Map<string, Map<string, FakeApp>>();
  readonly state = new Map<string, Map<string, string>>();
  failWhen: (call: Call) => string | null = () => null;
  /** Calls that take effect and then report a failure (a lost connection after the work). */
  failAfter: (call: Call) => string | null = () => null;
  onCall: (call: Call) => void = () => undefined;
  /** The answer to a command that is not a node helper's (null: the default, a failure). */
  answerOther: (call: Call, stdin?: string | Buffer) => ExecResult | null = () => null;
  down = new Set<string>();
  /** What a restore says of the database-level settings its dump kept ("restored", "refused"; none: no line). */
  restoreSettings: 'restored' | 'refused' | 'refused 1 of 3' | null = null;
  /** Nodes where a stop timer cannot be set (switch-stop switches, and the replaced instance runs on). */
  noStopTimer = new Set<string>();
  /** "NODE APP": a migration of APP runs on NODE (silver-deploy migrating answers 0). */
  migrating = new Set<string>();
  private readonly sums = new Map<string, string>();
  /** The nodes' stop-after timers ("NODE INSTANCE"). */
  private readonly timers = new Map<string, { timer: NodeJS.Timeout; done: Promise<void>; fire: () => void }>();

  /** A pending stop-after of the instance on the node called off (as a start of it does). */
  private callOff(node: string, instance: string): void {
    const t = this.timers.get(`${node} ${instance}`);
    if (!t) return;
    clearTimeout(t.timer);
    this.timers.delete(`${node} ${instance}`);
    t.fire();
  }

  /** The node's timer: the instance stops after `ms`, unless it is active by then (the stop verb refuses). */
  private stopAfter(node: string, a: FakeApp, instance: string, ms: number): void {
    this.callOff(node, instance);
    const key = `${node} ${instance}`;
    let fire = () => undefined as void;
    const done = new Promise<void>((r) => (fire = r));
    const timer = setTimeout(() => {
      this.timers.delete(key);
      if (a.active !== instance && a.instances.get(instance)) a.instances.get(instance)!.running = false;
      fire();
    }, ms);
    this.timers.set(key, { timer, done, fire });
  }

  /** Until every stop-after timer set so far has run or was called off. */
  async stopsDone(): Promise<void> {
    await Promise.all([...this.timers.values()].map((t) => t.done));
  }

  app(node: string, app: string): FakeApp {
    const apps = this.apps.get(node) ?? new Map<string, FakeApp>();
    this.apps.set(node, apps);
    let a = apps.get(app);
    if (!a) apps.set(app, (a = { active: null, previous: null, instances: new Map() }));
    return a;
  }

  /** The deploy verbs a node got, as "verb arg..." without sudo and the helper path. */
  verbs(node?: string, helper = 'silver-deploy'): string[] {
    return this.calls.filter((c) => (!node || c.node === node) && c.argv[0] === 'sudo' && c.argv[2] === BIN + helper).map((c) => `${node ? '' : `${c.node} `}${c.argv.slice(3).join(' ')}`);
  }

  /**
   * What a setup-node probe that dumps the node's state replica (fast-path.ts) writes to standard
   * error: the frame around the state helper's answer, as the node's shell would ('' for a script
   * without the dump).
   */
  async stateFrame(node: string, script: string): Promise<string> {
    const m = /^\{ printf '== silver-state %s\\n' ([0-9a-f]+); (.*) < \/dev\/null 2> \/dev\/null; printf/m.exec(script);
    if (!m) return '';
    const r = await this.answer(node, m[2]!).catch(() => ({ code: 255, stdout: '', stderr: '' }));
    return `== silver-state ${m[1]}\n${r.stdout}== silver-state-end ${m[1]} ${r.code}\n`;
  }

  async exec(node: string, command: string, stdin?: string | Buffer, _timeoutMs?: number, onStdout?: (chunk: string) => void): Promise<ExecResult> {
    const r = await this.answer(node, command, stdin);
    if (onStdout && r.stdout) onStdout(r.stdout);
    return r;
  }

  private async answer(node: string, command: string, stdin?: string | Buffer): Promise<ExecResult> {
    // (a helper run in a root session, without sudo: recorded as through sudo, like the others)
    const words = shellWords(command);
    const call = { node, argv: words[0]?.startsWith(BIN) ? ['sudo', '-n', ...words] : words };
    this.calls.push(call);
    this.onCall(call);
    if (this.down.has(node)) throw new Error(`${node}: connection refused`);
    const injected = this.failWhen(call);
    if (injected !== null) return fail(injected);
    const [sudo, , helper, verb, ...args] = call.argv;
    if (call.argv[0] === 'sha256sum') return ok(call.argv.slice(1).map((p) => `${this.sum(p)}  ${p}`).join('\n'));
    const other = this.answerOther(call, stdin);
    if (other) return other;
    if (sudo !== 'sudo') return fail(`unexpected command ${command}`);
    const name = helper!.slice(BIN.length);
    if (name === 'silver-deploy') {
      const r = this.deploy(node, verb!, args, stdin);
      const after = this.failAfter(call);
      return after !== null && r.code === 0 ? fail(after) : r;
    }
    if (name === 'silver-state') return this.stateVerb(node, verb!, args, stdin);
    if (name.startsWith('silver-db-')) return DB_BACKUP_VERBS.includes(verb!) ? this.dbVerb(node, name, verb!, args, stdin) : ok('s3cretpassword\n');
    if (name === 'silver-balancer') return this.balancer(node, verb!, args);
    if (name === 'silver-logs') return ok((this.journal.get(node) ?? []).map((l) => `${l}\n`).join(''));
    return fail(`unknown helper ${name}`);
  }

  private sum(path: string): string {
    const helper = path.split('/').pop()!;
    const layer = { 'silver-deploy': 'appserver', 'silver-state': 'base', 'silver-balancer': 'balancer' }[helper] ?? `service/${helper.replace('silver-db-', '')}`;
    if (!this.sums.has(helper)) this.sums.set(helper, createHash('sha256').update(readFileSync(join(layersRoot(), layer, 'bin', helper))).digest('hex'));
    return this.sums.get(helper)!;
  }

  /** The commands `silver-deploy run-stage` kept, by id. */
  readonly runStaged = new Map<string, string>();
  /** Instances whose environment makes them fail their health check (the app rejects it). */
  unhealthyWhenEnv: (env: string) => boolean = () => false;
  /** The journal lines (JSON) `silver-logs` answers with, by node. */
  readonly journal = new Map<string, string[]>();

  private deploy(node: string, verb: string, args: string[], stdin?: string | Buffer): ExecResult {
    const [appName, inst] = args;
    if (verb === 'status') {
      const lines = [...(this.apps.get(node) ?? new Map<string, FakeApp>())].map(([name, a]) => {
        const act = a.active ? a.instances.get(a.active) : undefined;
        const health = !a.active ? '-' : !act?.running ? 'stopped' : act.healthy ? 'ok' : 'unhealthy:500';
        const list = [...a.instances].sort(([x], [y]) => (x < y ? -1 : 1)).map(([i, s]) => ` ${i}:${s.port}:${s.running ? 'active' : 'inactive'}`).join('');
        return `app ${name} active ${a.active ?? '-'} previous ${a.previous ?? '-'} health ${health} code ${act?.code ?? '-'} static ${act?.static ?? '-'} instances${list}`;
      });
      return ok(lines.join('\n') + '\n');
    }
    const a = this.app(node, appName!);
    switch (verb) {
      case 'stage':
        a.instances.set(inst!, { port: Number(args[2]), running: false, healthy: true });
        return ok();
      case 'env': {
        const i = a.instances.get(inst!);
        if (!i) return fail(`silver-deploy: instance ${inst} is not staged`);
        i.env = String(stdin ?? '');
        if (this.unhealthyWhenEnv(i.env)) i.healthy = false;
        return ok();
      }
      case 'clone': {
        const from = a.instances.get(inst!);
        if (!from) return fail(`silver-deploy: instance ${inst} is not staged`);
        if (a.active === args[2]) return fail(`silver-deploy: ${args[2]} is active: it cannot be staged again`);
        a.instances.set(args[2]!, { port: Number(args[3]), running: false, healthy: true, ...(from.code ? { code: from.code } : {}), ...(from.static ? { static: from.static } : {}) });
        return ok();
      }
      case 'env-get':
        return ok(a.active ? (a.instances.get(a.active)?.env ?? '') : '');
      case 'run-stage': {
        const id = `r.${String(this.runStaged.size).padStart(10, '0')}`;
        this.runStaged.set(id, String(stdin ?? ''));
        return ok(`${id}\n`);
      }
      case 'pending': {
        const b = this.app(node, inst!);
        if (appName === 'get') return ok(b.pending ?? '');
        if (appName === 'set') b.pending = String(stdin ?? '');
        else delete b.pending;
        return ok();
      }

      case 'start':
        if (!a.instances.get(inst!)) return fail(`silver-deploy: instance ${inst} is not staged`);
        this.callOff(node, inst!);
        a.instances.get(inst!)!.running = true;
        return ok();
      case 'stop':
        if (a.active === inst) return fail(`silver-deploy: ${inst} is active: switch away from it first`);
        if (a.instances.get(inst!)) a.instances.get(inst!)!.running = false;
        return ok();
      case 'stop-after':
        if (!a.instances.get(inst!)) return fail(`silver-deploy: instance ${inst} is not staged`);
        this.stopAfter(node, a, inst!, Number(args[3]));
        return ok();
      case 'up': {
        // (start, then wait until it listens)
        const i = a.instances.get(inst!);
        if (!i) return fail(`silver-deploy: instance ${inst} is not staged`);
        this.callOff(node, inst!);
        i.running = true;
        return ok();
      }
      case 'wait':
      case 'fetch':
      case 'fetch-script': {
        const i = a.instances.get(inst!);
        if (!i?.running) return fail('wait failed: instance is inactive');
        return i.healthy || (verb === 'wait' && args[4] === 'any') ? ok('200\n') : fail('wait failed: answered 500');
      }
      case 'switch':
      case 'switch-stop': {
        if (!a.instances.get(inst!)) return fail(`silver-deploy: instance ${inst} is not staged`);
        const prev = verb === 'switch' ? args[2] : undefined;
        const cur = a.active;
        a.previous = prev === '-' ? null : prev ? prev : cur && cur !== inst ? cur : a.previous;
        a.active = inst!;
        // (a node whose timer cannot be set says so and switches all the same)
        if (verb === 'switch-stop' && cur && cur !== inst && !this.noStopTimer.has(node)) this.stopAfter(node, a, cur, Number(args[2]));
        return ok();
      }
      case 'unswitch':
        a.active = null;
        a.previous = null;
        return ok();
      case 'prune':
        return ok();
      case 'mark': {
        const i = a.instances.get(inst!);
        if (!i) return fail(`silver-deploy: instance ${inst} is not staged`);
        i.code = args[2];
        if (args[3] !== '-') {
          i.static = args[3];
          (a.statics ??= new Set()).add(args[3]!);
        }
        return ok();
      }
      case 'static-put':
        (a.statics ??= new Set()).add(args[1]!);
        return ok();
      case 'static-switch': {
        if (!a.active) return fail('silver-deploy: no active instance');
        if (!a.statics?.has(args[1]!)) return fail(`silver-deploy: static version ${args[1]} is not staged`);
        a.instances.get(a.active)!.static = args[1];
        return ok();
      }
      case 'migrate':
        if (this.migrating.has(`${node} ${appName}`)) return fail(`silver-deploy: a migration of ${appName} started earlier still runs (silver-migrate-${appName}.service): wait for it to end`);
        return a.instances.has(inst!) ? ok('migrated 1 table\n') : fail(`silver-deploy: instance ${inst} is not staged`);
      case 'migrating':
        return this.migrating.has(`${node} ${appName}`) ? ok(`silver-migrate-${appName}.service\n`) : { code: 1, stdout: '', stderr: '' };
      case 'export': {
        if (!a.active) return fail(`silver-deploy: ${appName} has no active instance`);
        const i = a.instances.get(a.active)!;
        const b = (s: string) => Buffer.from(s).toString('base64');
        return ok(
          [`instance ${a.active}`, `port ${i.port}`, 'health /health', `runner ${b('python3 app.py')}`, 'packages', `code ${i.code ?? '-'}`, 'static -', `env ${b("CONFIG_PG_PASSWORD='s3cretpassword'\n")}`, `app ${b('tarball')}`, ''].join('\n'),
        );
      }
      default:
        return fail(`unknown verb ${verb}`);
    }
  }

  /** The balancers' modes, by node: what `silver-balancer mode` keeps. */
  readonly modes = new Map<string, { modes: Record<string, { mode: string; retryAfter: number; message: string }>; allow: string[] }>();

  private balancer(node: string, verb: string, args: string[]): ExecResult {
    if (verb !== 'mode') return ok('unchanged\n');
    const m = this.modes.get(node) ?? { modes: {}, allow: [] };
    this.modes.set(node, m);
    const [sub, ...rest] = args;
    if (sub === 'set') m.modes[rest[0]!] = { mode: rest[1]!, retryAfter: Number(rest[2]), message: Buffer.from(rest[3]!, 'base64').toString('utf8') };
    else if (sub === 'clear') for (const k of rest[0] === '--all' ? Object.keys(m.modes) : rest) delete m.modes[k];
    else if (sub === 'allow') m.allow = rest;
    return ok(`${JSON.stringify({ ...m, haproxy: 'running', live: true })}\n`);
  }

  private stateVerb(node: string, verb: string, args: string[], stdin?: string | Buffer): ExecResult {
    const st = this.state.get(node) ?? new Map<string, string>();
    this.state.set(node, st);
    switch (verb) {
      case 'get':
        return ok(args.filter((k) => st.has(k)).map((k) => `== ${k}\n${st.get(k)}`).join('\n') + '\n');
      case 'put': {
        // (with SEQ: only over an older value, as silver-state does)
        if (args[1] !== undefined) {
          const have = Number(/^\{"seq":(\d+)/.exec(st.get(args[0]!) ?? '')?.[1] ?? 0);
          if (have >= Number(args[1])) return { code: 75, stdout: `newer ${have}\n`, stderr: '' };
        }
        st.set(args[0]!, String(stdin ?? '').trim());
        return ok();
      }
      case 'lock': {
        const [token, , holder, steal] = args;
        const cur = st.get('lock')?.split(' ');
        if (cur && cur[0] !== token && cur[0] !== steal) return { code: 75, stdout: `held ${cur[0]} 1 ${cur[1]}\n`, stderr: '' };
        st.set('lock', `${token} ${holder}`);
        return ok(cur && cur[0] !== token ? `took-over ${cur[1]}\n` : cur ? 'renewed\n' : 'taken\n');
      }
      case 'unlock': {
        const cur = st.get('lock')?.split(' ');
        if (!cur) return ok('free\n');
        if (args[0] === '--force' || args[0] === cur[0]) {
          st.delete('lock');
          return ok(args[0] === '--force' ? `removed ${cur[1]}\n` : 'released\n');
        }
        return { code: 75, stdout: `held ${cur[0]} 1 ${cur[1]}\n`, stderr: '' };
      }
      case 'lockinfo': {
        const cur = st.get('lock')?.split(' ');
        return ok(cur ? `held ${cur[0]} 1 30 ${cur[1]}\n` : 'free\n');
      }
      case 'append':
        st.set(`${args[0]}.log`, `${st.get(`${args[0]}.log`) ?? ''}${String(stdin ?? '')}`);
        return ok();
      case 'log':
        return ok((st.get(`${args[0]}.log`) ?? '').split('\n').filter(Boolean).slice(-Number(args[1])).map((l) => `${l}\n`).join(''));
      default:
        return fail(`unknown verb ${verb}`);
    }
  }

  /** What silver-db-* keep on a service node: databases (rows per table) and staged files. */
  readonly dbs = new Map<string, Map<string, Record<string, number>>>();
  readonly staged = new Map<string, Map<string, Buffer>>();

  /** The rows of a database on a node (made when missing). */
  database(node: string, db: string, rows?: Record<string, number>): Record<string, number> {
    const m = this.dbs.get(node) ?? new Map<string, Record<string, number>>();
    this.dbs.set(node, m);
    if (rows) m.set(db, rows);
    if (!m.has(db)) m.set(db, {});
    return m.get(db)!;
  }

  /** A dump as the service's tool writes it, holding the rows (PostgreSQL: PGDMP; MySQL: SQL text). */
  static fakeDump(helper: string, rows: Record<string, number>): Buffer {
    if (helper === 'silver-db-postgresql') return Buffer.concat([Buffer.from('PGDMP'), Buffer.from([1, 14, 0, 255]), Buffer.from(`\n${JSON.stringify(rows)}\n`)]);
    const tables = Object.entries(rows).map(([t, n]) => {
      const values = Array.from({ length: n }, (_, i) => `(${i + 1},'it''s (${i}); \\'')`).join(',\n');
      return `CREATE TABLE \`${t}\` (\n  \`n\` int\n);\nLOCK TABLES \`${t}\` WRITE;\n${n > 0 ? `INSERT INTO \`${t}\` VALUES\n${values};\n` : ''}UNLOCK TABLES;\n`;
    });
    return Buffer.from(`-- MariaDB dump (fake)\n-- fake-rows ${JSON.stringify(rows)}\n${tables.join('')}-- Dump completed on 2026-12-02 10:00:00\n`);
  }

  private static rowsOf(dump: Buffer): Record<string, number> {
    const text = dump.toString('latin1');
    const m = /^(?:-- fake-rows )?(\{.*\})$/m.exec(text);
    return m ? (JSON.parse(m[1]!) as Record<string, number>) : {};
  }

  private dbVerb(node: string, helper: string, verb: string, args: string[], stdin?: string | Buffer): ExecResult {
    const dbs = this.dbs.get(node) ?? new Map<string, Record<string, number>>();
    this.dbs.set(node, dbs);
    const staged = this.staged.get(node) ?? new Map<string, Buffer>();
    this.staged.set(node, staged);
    const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    const counts = (rows: Record<string, number>) => ok(`counts ${JSON.stringify(rows)}\n`);
    const [a, b, c, d] = args;
    switch (verb) {
      case 'list':
        return ok([...dbs.keys()].filter((k) => !k.startsWith('silver_')).map((k) => `db ${k}\n`).join(''));
      case 'dump': {
        if (!dbs.has(a!)) return fail(`${helper}: no database ${a} here`);
        const dump = FakeNodes.fakeDump(helper, dbs.get(a!)!);
        staged.set(b!, dump);
        const header = `file ${dump.length} ${sha(dump)}\nserver 15.0 (fake)\ntool fake dump 1.0\n`;
        return ok(helper === 'silver-db-postgresql' ? `${header}counts ${JSON.stringify(dbs.get(a!))}\n` : header);
      }
      case 'get': {
        const f = staged.get(a!);
        if (!f) return fail(`${helper}: no staged file ${a}`);
        const text = f.subarray(Number(b), Number(b) + Number(c)).toString('base64');
        return ok(`${text.replace(/(.{76})/g, '$1\n')}\n`);
      }
      case 'put': {
        const have = staged.get(a!) ?? Buffer.alloc(0);
        if (b === '0' && staged.has(a!)) return fail(`${helper}: staged file ${a} exists`);
        if (have.length !== Number(b)) return fail(`${helper}: staged file ${a} holds ${have.length} bytes, not ${b}`);
        staged.set(a!, Buffer.concat([have, Buffer.from(stdin ?? '')]));
        return ok();
      }
      case 'load': {
        const f = staged.get(b!);
        if (!f) return fail(`${helper}: no staged file ${b}`);
        if (sha(f) !== d) return fail(`${helper}: the dump's sha256 is ${sha(f)}, not ${d}: nothing restored`);
        if (dbs.has(c!)) return fail(`${helper}: database ${c} exists`);
        dbs.set(c!, FakeNodes.rowsOf(f));
        return counts(dbs.get(c!)!);
      }
      case 'restore': {
        const rows = dbs.get(c!);
        if (!rows) return fail(`${helper}: no database ${c}: load it first`);
        dbs.set(a!, rows);
        dbs.delete(c!);
        const said = counts(rows);
        return this.restoreSettings ? { ...said, stdout: `settings ${this.restoreSettings}\n${said.stdout}` } : said;
      }
      case 'drop':
        dbs.delete(b!);
        return ok();
      case 'forget':
        staged.delete(a!);
        return ok();
      default:
        return fail(`unknown verb ${verb}`);
    }
  }

  /**
   * A command on a channel of its own (silver run, logs -f): by default it writes `ran` and exits
   * 0; a test sets its own. `stop` ends it with 130.
   */
  attachAnswer: (call: Call, opts: AttachOptions) => { done: Promise<number>; stop: () => void } = (_call, opts) => {
    opts.onStdout(Buffer.from('ran\n'));
    return { done: Promise.resolve(0), stop: () => undefined };
  };

  async close(): Promise<void> {}
}

export const NODESET = `[general]
name = shop
base_domain = shop.test
[appserver]
nodes = 2
locations = http://shop.test/ hello
[service:postgresql]
node_name = db.shop.test
[balancer]
`;

/**
 * setup-node's scripts answered as nodes that run them: every probe a miss, every layer of a full
 * script passing; `seen` gets each full script as it comes.
 */
export function answerSetupScripts(nodes: FakeNodes, seen: (node: string, text: string) => void = () => undefined): void {
  nodes.answerOther = (c, stdin) => {
    if (c.argv.at(-2) !== 'sh' || c.argv.at(-1) !== '-s') return null;
    const text = String(stdin);
    if (/^fast_probe /m.test(text)) return { code: 0, stdout: 'silver-fast: miss (no fingerprint)\n', stderr: '' };
    seen(c.node, text);
    const layers = [...text.matchAll(/^layer_begin (\S+)/gm)].map((m) => m[1]);
    return { code: 0, stdout: layers.map((l) => `silver-layer-begin: ${l}\nsilver-layer-end: ${l} 0\n`).join(''), stderr: '' };
  };
}

/** A nodeset on the memory provider, its nodes faked, and a runtime that uses them. */
export async function fakeDeploy(nodesetText = NODESET) {
  const host = memoryHost({ '/n/shop.conf': nodesetText });
  const ns = loadNodeset('/n/shop.conf', host);
  const provider = new MemoryProvider();
  const state = new StateDir(mkdtempSync(join(tmpdir(), 'silver-state-')));
  for (const spec of ns.nodes) {
    const { node } = await provider.create({ labels: { nodeset: ns.name, name: spec.name, role: spec.role, index: spec.index }, flavor: { id: 'small', ramMb: 256 }, image: 'debian-12', hostKey: { public: `ssh-ed25519 KEY${spec.name}`, private: '' }, publicKey: '' } as never);
    state.pin(ns.name, spec.name, node.privateAddress!, `ssh-ed25519 KEY${spec.name}`);
  }
  const nodes = new FakeNodes();
  const io = memoryIo();
  let interrupt: ((sig: string) => void) | null = null;
  const rt: Runtime = {
    io,
    host,
    state,
    providerFor: async () => provider,
    sshProbe: async () => undefined,
    executor: async () => nodes,
    onInterrupt: (h) => {
      interrupt = h;
      return () => (interrupt = null);
    },
    now: () => Date.parse('2026-12-02T10:00:00Z'),
    confirm: async () => false,
    attach: (target, command, opts) => {
      const call = { node: target.name, argv: shellWords(command) };
      nodes.calls.push(call);
      const answer = nodes.attachAnswer(call, opts);
      return { done: answer.done, stop: answer.stop, resize: () => undefined };
    },
  };
  return { ns, rt, nodes, io, provider, signal: (sig = 'SIGINT') => interrupt?.(sig) };
}
