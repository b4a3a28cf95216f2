import { b64, sudoHelper } from './helpers.js';

/**
 * The verbs of `silver-deploy` (setup-layers/appserver/bin), the root half of a deploy on an
 * app server, built as argv; nothing here runs anything.
 */
const verb = (...args: string[]) => sudoHelper('silver-deploy', ...args);

export type UpdateRole = 'primary' | 'secondary';

export const deployVerbs = {
  stage: (app: string, instance: string, port: number, health: string, runner: string, packages: readonly string[]) =>
    verb('stage', app, instance, String(port), health, b64(runner), ...packages),
  env: (app: string, instance: string) => verb('env', app, instance),
  start: (app: string, instance: string) => verb('start', app, instance),
  stop: (app: string, instance: string) => verb('stop', app, instance),
  /** Start, then wait until it listens (at most `seconds`): one call. */
  up: (app: string, instance: string, seconds: number) => verb('up', app, instance, String(seconds)),
  /** The stop `ms` milliseconds from now, by a timer on the node (a later start of the instance calls it off). */
  stopAfter: (app: string, instance: string, ms: number) => verb('stop-after', app, instance, String(Math.max(0, Math.round(ms)))),
  /** Until the instance listens (`any`) or its path answers 2xx; `-`: its health_check. */
  wait: (app: string, instance: string, path: string, seconds: number, want: 'any' | '2xx') => verb('wait', app, instance, path, String(seconds), want),
  fetch: (app: string, instance: string, path: string, role: UpdateRole) => verb('fetch', app, instance, path, role),
  fetchScript: (app: string, instance: string, role: UpdateRole, command: string) => verb('fetch-script', app, instance, role, b64(command)),
  /** The migration command, once, as the app's user in the (not yet started) instance; output on stdout. */
  migrate: (app: string, instance: string, command: string) => verb('migrate', app, instance, b64(command)),
  /** Exit 0 (and the unit's name) while a migration of the app runs, one an earlier update started included. */
  migrating: (app: string) => verb('migrating', app),
  /** The migration path on the started instance, with `X-Silverlining-Update: migrate`. */
  migratePath: (app: string, instance: string, path: string) => verb('fetch', app, instance, path, 'migrate'),
  /** Traffic to the instance; `previous`: what the previous link becomes (default: the replaced one; `-`: none). */
  switch: (app: string, instance: string, previous?: string) => verb('switch', app, instance, ...(previous ? [previous] : [])),
  /** Traffic to the instance (the replaced one becomes previous), then the replaced one's stop after `ms`, by a timer on the node. */
  switchStop: (app: string, instance: string, ms: number) => verb('switch-stop', app, instance, String(Math.max(0, Math.round(ms)))),
  unswitch: (app: string) => verb('unswitch', app),
  status: () => verb('status'),
  /** After stage: the instance's code sum and static version (copied from its folder `dir`). */
  mark: (app: string, instance: string, code: string, staticSum: string | null, dir: string | null) => verb('mark', app, instance, code, staticSum ?? '-', dir ?? '-'),
  /** A static version (a tarball of the static folder on stdin). */
  staticPut: (app: string, staticSum: string) => verb('static-put', app, staticSum),
  /** Static-only: the active instance serves this static version. */
  staticSwitch: (app: string, staticSum: string) => verb('static-switch', app, staticSum),
  prune: (app: string, keep: number) => verb('prune', app, String(keep)),
  /** The active instance as a new app server needs it (KEY VALUE lines; holds the app's environment). */
  export: (app: string) => verb('export', app),
  /** A new instance with the code of `from` (silver env: the same code, another environment). */
  clone: (app: string, from: string, instance: string, port: number) => verb('clone', app, from, instance, String(port)),
  /** The active instance's environment file (it holds the app's secrets); empty without one. */
  envGet: (app: string) => verb('env-get', app),
  /** Settings staged with `silver env --no-restart` (set: on stdin). */
  pending: (op: 'get' | 'set' | 'clear', app: string) => verb('pending', op, app),
  /** A one-off command's text (on stdin), kept on the node for the run that names its id (printed). */
  runStage: (app: string) => verb('run-stage', app),
  /** The command run-stage kept, as the app's user in its active instance; `tty`: on the caller's terminal. */
  run: (app: string, mode: 'pipe' | 'tty', id: string) => verb('run', app, mode, id),
};
