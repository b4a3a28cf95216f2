import { deployVerbs } from '../remote/commands/deploy.js';
import type { Remote } from '../remote/executor.js';
import { tail } from '../util/exec.js';

/**
 * An app's active instance copied from one app server to a new one (replace-node): what
 * `silver-deploy export APP` prints on the source, staged on the target with the verbs an update
 * uses (stage, env, mark, static-put), then started, checked and switched to there. The copy is
 * the instance every other app server serves — its code, its environment (the app's secrets:
 * they travel as an update sends them, on standard input, never in output or an error), its
 * static version.
 */
export interface ExportedInstance {
  app: string;
  instance: string;
  port: number;
  health: string;
  runner: string;
  packages: string[];
  code: string | null;
  static: string | null;
  env: Buffer;
  tarball: Buffer;
  staticTarball: Buffer | null;
}

const SUM = /^[0-9a-f]{64}$/;

/** The lines of `silver-deploy export` as an instance; throws (naming the key, never a value) on anything else. */
export function parseExport(app: string, text: string): ExportedInstance {
  const kv = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (!line) continue;
    const sp = line.indexOf(' ');
    kv.set(sp < 0 ? line : line.slice(0, sp), sp < 0 ? '' : line.slice(sp + 1));
  }
  const need = (k: string) => {
    const v = kv.get(k);
    if (v === undefined) throw new Error(`the export of ${app} has no ${k}`);
    return v;
  };
  const instance = need('instance');
  if (!new RegExp(`^${app}\\.\\d{4}-\\d{2}-\\d{2}_\\d{3}$`).test(instance)) throw new Error(`the export of ${app} names a bad instance`);
  const port = Number(need('port'));
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`the export of ${app} has a bad port`);
  const code = need('code');
  const stat = need('static');
  if (code !== '-' && !SUM.test(code)) throw new Error(`the export of ${app} has a bad code sum`);
  if (stat !== '-' && !SUM.test(stat)) throw new Error(`the export of ${app} has a bad static sum`);
  const files = kv.get('files');
  if (stat !== '-' && files === undefined) throw new Error(`the export of ${app} has no files for its static version`);
  return {
    app,
    instance,
    port,
    health: need('health'),
    runner: Buffer.from(need('runner'), 'base64').toString('utf8'),
    packages: need('packages').split(/\s+/).filter(Boolean),
    code: code === '-' ? null : code,
    static: stat === '-' ? null : stat,
    env: Buffer.from(need('env'), 'base64'),
    tarball: Buffer.from(need('app'), 'base64'),
    staticTarball: files === undefined ? null : Buffer.from(files, 'base64'),
  };
}

/** The app's active instance on `node`, exported. The error says only what stderr said. */
export async function exportInstance(remote: Remote, node: string, app: string): Promise<ExportedInstance> {
  const r = await remote.exec(node, deployVerbs.export(app), undefined, 10 * 60_000);
  // (stdout holds the app's environment: never part of an error)
  if (r.code !== 0) throw new Error(`${node}: exporting ${app}: ${tail(r.stderr, 3) || `exit ${r.code}`}`);
  return parseExport(app, r.stdout);
}

/**
 * The instance staged on `node`, started, healthy, and switched to (the node's first instance
 * of the app: no previous). `say` reports progress.
 */
export async function installInstance(remote: Remote, node: string, x: ExportedInstance, say: (text: string) => void): Promise<void> {
  const step = async (what: string, argv: string[], stdin?: Buffer) => {
    const r = await remote.exec(node, argv, stdin, 15 * 60_000);
    if (r.code !== 0) throw new Error(`${node}: ${x.app}: ${what}: ${tail(r.stderr, 3) || `exit ${r.code}`}`);
  };
  await step('stage', deployVerbs.stage(x.app, x.instance, x.port, x.health, x.runner, x.packages), x.tarball);
  await step('environment', deployVerbs.env(x.app, x.instance), x.env);
  if (x.code) await step('mark', deployVerbs.mark(x.app, x.instance, x.code, null, null));
  if (x.static && x.staticTarball) await step('static files', deployVerbs.staticPut(x.app, x.static), x.staticTarball);
  await step('start', deployVerbs.start(x.app, x.instance));
  await step('wait for the instance', deployVerbs.wait(x.app, x.instance, '/', 60, 'any'));
  await step(`health_check ${x.health}`, deployVerbs.wait(x.app, x.instance, x.health, 30, '2xx'));
  await step('switch', deployVerbs.switch(x.app, x.instance, '-'));
  if (x.static) await step('static switch', deployVerbs.staticSwitch(x.app, x.static));
  say(`${x.app}: ${x.instance} active (as on the other app servers)`);
}
