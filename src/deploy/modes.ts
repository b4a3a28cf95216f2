import { isIP } from 'node:net';
import { ExitError } from '../diagnostics.js';
import { helperSum } from '../layers.js';
import { b64, HELPERS, sudoHelper } from '../remote/commands/helpers.js';
import type { Session } from './session.js';
import type { Versioned } from './shared-state.js';

/**
 * Maintenance and read-only modes of a nodeset's balancers: `silver maintenance`, and an
 * update's `migrate_mode`.
 *
 * A mode is set per key: an app name (every backend `app_APP_N` of its locations) or `*` (every
 * app without an entry of its own). `maintenance`: every request but those from the allowed
 * addresses gets a 503 with `Retry-After` and the message page; `read-only`: GET, HEAD and
 * OPTIONS pass, other methods get that 503; `online`: an explicit "normal" that overrides `*`.
 * The allow list is one for the nodeset. Health checks and `/.silver/balancer-health` are never
 * held back.
 *
 * Where it lives: each balancer applies it at run time (HAProxy's admin socket: no reload, no
 * dropped connection) and keeps it in its own files (`silver-balancer mode`, which checks every
 * argument), so it survives a restart and a reboot; the nodeset's shared state keeps a
 * `maintenance` record (`MaintenanceRecord`) that setup-node writes into a new or rebuilt
 * balancer. No deploy lock is taken: a mode must change while an update holds it (the update
 * calls these itself); changes are read-modify-write of the record.
 *
 * The API:
 *
 *   applyMode(s, { app, mode, retryAfter?, message?, allow? }): Promise<ModesView>
 *       sets the entry of `app` (null: `*`, every app), replacing it; `allow`, when given,
 *       replaces the allow list (absent: unchanged). Defaults: retryAfter 30 s, DEFAULT_MESSAGE.
 *   clearMode(s, app): Promise<ModesView>
 *       removes the entry of `app` (it follows `*` again); null: every entry and the allow list
 *       (everything back to normal).
 *   readModes(s): Promise<ModesView>
 *       the record and what each balancer applies (`same`: it matches the record).
 *   effectiveMode(state, app): ModeEntry | null
 *       what an app's requests get (its own entry, else `*`; null or `online`: normal).
 *
 * To put back what was there before (an update's migrate_mode), read `readModes(s)` first, then
 * `entry ? applyMode(s, { app, ...entry }) : clearMode(s, app)`.
 *
 * Every change writes the record first, then applies it on every balancer concurrently; a
 * balancer that fails (or cannot be reached) makes it throw a `ModeError` naming each such
 * balancer, after the others have changed (running the same command again settles it). Bad
 * input throws an ExitError with code 2 before anything changes.
 */

export type Mode = 'maintenance' | 'read-only' | 'online';
export const MODES: readonly Mode[] = ['maintenance', 'read-only', 'online'];

export interface ModeEntry {
  mode: Mode;
  /** Seconds, 1..86400: the `Retry-After` of a held-back request. */
  retryAfter: number;
  /** The page's text (plain text: the balancer escapes it for HTML). */
  message: string;
}

/** Entries by key (an app name or `*`) and the addresses a maintenance lets through (CIDRs). */
export interface ModeState {
  modes: Record<string, ModeEntry>;
  allow: string[];
}

/**
 * A maintenance silver itself holds an app in (a restore, a database node's replacement), with
 * the entry the app had before: on the nodes with the mode, so that a run killed while it holds
 * the app, and the run after it, put back what was there before the first — never silver's own
 * maintenance. Any other change of the app's entry (`silver maintenance`) ends the hold.
 */
export interface Hold {
  by: string;
  previous: ModeEntry | null;
}

/** The shared state's `maintenance` record. */
export interface MaintenanceRecord extends Versioned, ModeState {
  holds?: Record<string, Hold>;
}

export interface ModeChange {
  /** An app of the nodeset, or null: `*`, every app. */
  app: string | null;
  mode: Mode;
  retryAfter?: number;
  message?: string;
  /** Replaces the allow list when given. */
  allow?: readonly string[];
}

/** What one balancer applies. */
export interface BalancerModes {
  node: string;
  /** null when it could not be asked (`error` says why). */
  state: ModeState | null;
  /** `running`, `not running` (its files hold the modes; HAProxy loads them when it starts), `no mode rules`. */
  haproxy: string | null;
  /** Whether the running HAProxy applies what its files hold (null: not running). */
  live: boolean | null;
  /** Whether it matches the nodeset's record. */
  same: boolean;
  /** The apps whose own maintenance.html it serves instead of the message page. */
  pages?: string[];
  error?: string;
}

export interface ModesView {
  /** The nodeset's record (empty when none was ever written). */
  record: ModeState;
  seq: number;
  balancers: BalancerModes[];
}

export const DEFAULT_RETRY_AFTER = 30;
export const DEFAULT_MESSAGE = 'We are updating. Please try again in a moment.';
export const MAX_MESSAGE = 1000;
const KEY = /^(?:\*|[a-z][a-z0-9_-]{0,63})$/;
const HELPER = 'silver-balancer';

/** A change that did not reach every balancer: each failed one named. */
export class ModeError extends Error {
  constructor(
    message: string,
    readonly view: ModesView,
  ) {
    super(message);
    this.name = 'ModeError';
  }
}

/** The argv of `silver-balancer mode ...` (setup-layers/balancer/bin); nothing here runs anything. */
export const modeVerbs = {
  set: (key: string, e: ModeEntry) => sudoHelper(HELPER, 'mode', 'set', key, e.mode, String(e.retryAfter), b64(e.message)),
  clear: (keys: readonly string[] | 'all') => sudoHelper(HELPER, 'mode', 'clear', ...(keys === 'all' ? ['--all'] : keys)),
  allow: (cidrs: readonly string[]) => sudoHelper(HELPER, 'mode', 'allow', ...cidrs),
  status: () => sudoHelper(HELPER, 'mode', 'status'),
};

/** `KEY:MODE:RETRY:MESSAGE_B64` per entry: what `silver-balancer mode restore` takes (setup-node). */
export function restoreEntries(state: ModeState): string[] {
  return sortedKeys(state.modes).map((k) => {
    const e = state.modes[k]!;
    return `${k}:${e.mode}:${e.retryAfter}:${b64(e.message)}`;
  });
}

/** One line: `*: maintenance, hello: read-only` (or `no mode`). */
export function modesSummary(state: ModeState): string {
  const keys = sortedKeys(state.modes);
  return keys.length === 0 ? 'no mode' : keys.map((k) => `${k}: ${state.modes[k]!.mode}`).join(', ');
}

/** What an app's requests get: its own entry, else `*`; null when neither is set. */
export function effectiveMode(state: ModeState, app: string): ModeEntry | null {
  return state.modes[app] ?? state.modes['*'] ?? null;
}

const sortedKeys = (modes: Record<string, ModeEntry>) => Object.keys(modes).sort((a, b) => (a === '*' ? -1 : b === '*' ? 1 : a < b ? -1 : a > b ? 1 : 0));

/** Why a message cannot be a page's text, or null. */
export function messageProblem(message: string): string | null {
  const n = [...message].length;
  if (n < 1 || n > MAX_MESSAGE) return `the message has ${n} characters; it must have 1 to ${MAX_MESSAGE}`;
  // (the balancer refuses the same: control characters but newline and tab, unassigned ones)
  const bad = [...message].find((c) => c !== '\n' && c !== '\t' && /[\p{Cc}\p{Cs}\p{Co}\p{Cn}]/u.test(c));
  return bad ? `the message holds a control character (U+${bad.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')})` : null;
}

/**
 * An address or network in the form Python's ipaddress writes it (`10.0.0.1` → `10.0.0.1/32`,
 * IPv6 compressed, lower case); host bits must be clear. Throws with the reason.
 */
export function parseCidr(text: string): string {
  const m = /^([0-9A-Fa-f:.]+)(?:\/(\d{1,3}))?$/.exec(text);
  const kind = m ? isIP(m[1]!) : 0;
  if (!m || kind === 0) throw new Error(`"${text}" is not an address or CIDR network`);
  const bits = kind === 4 ? 32 : 128;
  const prefix = m[2] === undefined ? bits : Number(m[2]);
  if (prefix > bits || (m[2] !== undefined && m[2] !== String(prefix))) throw new Error(`"${text}": the prefix must be 0 to ${bits}`);
  let address: string;
  let value: bigint;
  if (kind === 4) {
    address = m[1]!;
    value = address.split('.').reduce((v, o) => (v << 8n) | BigInt(Number(o)), 0n);
  } else {
    address = new URL(`http://[${m[1]}]/`).hostname.slice(1, -1);
    const [head, tail] = address.includes('::') ? address.split('::') : [address, null];
    const groups = (part: string | undefined) => (part ? part.split(':') : []);
    const h = groups(head);
    const t = tail === null ? [] : groups(tail);
    const all = tail === null ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
    value = all.reduce((v, g) => (v << 16n) | BigInt(parseInt(g, 16)), 0n);
  }
  const hostMask = (1n << BigInt(bits - prefix)) - 1n;
  if ((value & hostMask) !== 0n) throw new Error(`"${text}" has host bits set (the network is ${prefix === 0 ? 'every address' : 'its address with them cleared'})`);
  return `${address}/${prefix}`;
}

/**
 * A record as the shared state holds it (the deploy user's to write): only entries of the
 * nodeset's own apps or `*`, known modes, Retry-After in range, messages a page can hold,
 * addresses that parse; anything else left out.
 */
export function sanitizeModes(raw: unknown, apps: readonly string[]): ModeState {
  const out: ModeState = { modes: {}, allow: [] };
  if (!raw || typeof raw !== 'object') return out;
  const r = raw as { modes?: unknown; allow?: unknown };
  if (r.modes && typeof r.modes === 'object') {
    for (const [key, v] of Object.entries(r.modes as Record<string, unknown>)) {
      if (!KEY.test(key) || (key !== '*' && !apps.includes(key)) || !v || typeof v !== 'object') continue;
      const e = v as Partial<ModeEntry>;
      if (!MODES.includes(e.mode as Mode) || !Number.isInteger(e.retryAfter) || e.retryAfter! < 1 || e.retryAfter! > 86400) continue;
      if (typeof e.message !== 'string' || messageProblem(e.message) !== null) continue;
      out.modes[key] = { mode: e.mode as Mode, retryAfter: e.retryAfter!, message: e.message };
    }
  }
  if (Array.isArray(r.allow)) {
    for (const c of r.allow) {
      try {
        const cidr = parseCidr(String(c));
        if (!out.allow.includes(cidr)) out.allow.push(cidr);
      } catch {
        // left out
      }
    }
  }
  return out;
}

/** The apps of the nodeset's locations. */
const appsOf = (s: Session) => [...new Set(s.ns.locations.map((l) => l.app))];

/** The record on the nodes (empty, seq 0, when none was written). */
async function readRecord(s: Session): Promise<{ state: ModeState; holds: Record<string, Hold>; seq: number }> {
  return parseRecord((await s.state.read<MaintenanceRecord>('maintenance')).get('maintenance'), appsOf(s));
}

function parseRecord(rec: MaintenanceRecord | undefined, apps: readonly string[]): { state: ModeState; holds: Record<string, Hold>; seq: number } {
  const state = sanitizeModes(rec, apps);
  // (a hold counts only with its app's entry still there, and with a previous entry that passes
  // the same checks as any)
  const holds: Record<string, Hold> = {};
  for (const [app, h] of Object.entries(rec?.holds ?? {})) {
    if (!state.modes[app] || !h || typeof h.by !== 'string' || h.by.length > 64) continue;
    const previous = h.previous === null ? null : (sanitizeModes({ modes: { [app]: h.previous } }, [app]).modes[app] ?? undefined);
    if (previous !== undefined) holds[app] = { by: h.by, previous };
  }
  return { state, holds, seq: rec?.seq ?? 0 };
}

/** The balancers, or exit 2 when the nodeset has none. */
function balancersOf(s: Session): string[] {
  const all = s.ns.nodes.filter((n) => n.role === 'balancer');
  if (all.length === 0) throw new ExitError(`nodeset ${s.ns.name} has no balancer: maintenance and read-only modes live on the balancer`, 2);
  return all.map((n) => n.name);
}

/** A balancer's answer to a mode verb (its JSON status). */
function parseStatus(stdout: string): { state: ModeState; haproxy: string | null; live: boolean | null; pages: string[] } {
  const j = JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as { modes: Record<string, ModeEntry>; allow: string[]; haproxy?: string; live?: boolean | null; pages?: Record<string, string> };
  return { state: { modes: j.modes ?? {}, allow: j.allow ?? [] }, haproxy: j.haproxy ?? null, live: j.live ?? null, pages: Object.keys(j.pages ?? {}).sort() };
}

export function sameModes(a: ModeState, b: ModeState): boolean {
  const keys = (m: ModeState) => sortedKeys(m.modes).join(' ');
  if (keys(a) !== keys(b)) return false;
  for (const k of Object.keys(a.modes)) {
    const x = a.modes[k]!;
    const y = b.modes[k]!;
    if (x.mode !== y.mode || x.retryAfter !== y.retryAfter || x.message !== y.message) return false;
  }
  return [...a.allow].sort().join(' ') === [...b.allow].sort().join(' ');
}

/** The balancers must run this silver's helper (setup-node installs it): refuses before any change. */
async function checkHelper(s: Session, nodes: readonly string[]): Promise<void> {
  const localSum = helperSum('balancer', HELPER);
  const stale: string[] = [];
  await Promise.all(
    nodes.map(async (node) => {
      const r = await s.remote.exec(node, ['sha256sum', `${HELPERS}/${HELPER}`]).catch(() => null);
      if (r && r.code === 0 && r.stdout.split(/\s+/)[0] !== localSum) stale.push(node);
    }),
  );
  if (stale.length > 0) throw new ExitError(`the balancers are not set up for this version of silver: ${stale.sort().join(', ')}; run silver setup-node ${s.ns.file} first`, 1);
}

function checkChange(s: Session, change: ModeChange): { key: string; entry: ModeEntry; allow: string[] | null } {
  if (change.app !== null && !appsOf(s).includes(change.app)) {
    throw new ExitError(`app "${change.app}" is not in the locations of ${s.ns.file} (it serves: ${appsOf(s).join(', ') || 'nothing'})`, 2);
  }
  if (!MODES.includes(change.mode)) throw new ExitError(`the mode is one of ${MODES.join(', ')}, not "${change.mode}"`, 2);
  const retryAfter = change.retryAfter ?? DEFAULT_RETRY_AFTER;
  if (!Number.isInteger(retryAfter) || retryAfter < 1 || retryAfter > 86400) throw new ExitError(`--retry-after must be a whole number of seconds from 1 to 86400, got ${retryAfter}`, 2);
  const message = change.message ?? DEFAULT_MESSAGE;
  const problem = messageProblem(message);
  if (problem) throw new ExitError(`--message: ${problem}`, 2);
  let allow: string[] | null = null;
  if (change.allow) {
    allow = [];
    for (const c of change.allow) {
      let cidr: string;
      try {
        cidr = parseCidr(c);
      } catch (e) {
        throw new ExitError(`--allow ${(e as Error).message}`, 2);
      }
      if (!allow.includes(cidr)) allow.push(cidr);
    }
  }
  return { key: change.app ?? '*', entry: { mode: change.mode, retryAfter, message }, allow };
}

/**
 * The new record written, then each balancer's `steps` run in order (concurrently across
 * balancers); the view after it. A balancer that failed, could not be reached, or does not
 * apply the change afterwards (`took`): ModeError. (Other differences from the record, left by
 * a balancer that was away for an earlier change, show as `same: false`.)
 */
async function change(
  s: Session,
  next: (current: ModeState) => ModeState,
  steps: (state: ModeState) => string[][],
  took: (balancer: ModeState, state: ModeState) => boolean,
  nextHolds: (current: Record<string, Hold>) => Record<string, Hold>,
): Promise<ModesView> {
  const names = balancersOf(s);
  await checkHelper(s, s.balancers.map((b) => b.name));
  // (beside another command's change — two operators, an update's hold — built upon, never lost)
  let state: ModeState = { modes: {}, allow: [] };
  const { seq } = await s.state.update<MaintenanceRecord>('maintenance', (cur) => {
    const current = parseRecord(cur ?? undefined, appsOf(s));
    state = next(current.state);
    const holds = nextHolds(current.holds);
    return { ...state, ...(Object.keys(holds).length ? { holds } : {}) };
  });
  const apply = async (node: string, argvs: string[][], target: ModeState, ok: (b: ModeState) => boolean): Promise<BalancerModes> => {
    const missing = s.missing.find((m) => m.name === node);
    if (missing) return { node, state: null, haproxy: null, live: null, same: false, error: missing.error };
    try {
      let out = '';
      for (const argv of argvs) out = await s.remote.run(node, `silver-balancer ${argv.slice(3, 5).join(' ')}`, argv);
      const st = parseStatus(out);
      return { node, ...st, same: sameModes(st.state, target), ...(ok(st.state) ? {} : { error: 'it does not apply the change afterwards' }) };
    } catch (e) {
      return { node, state: null, haproxy: null, live: null, same: false, error: (e as Error).message.replace(`${node}: `, '') };
    }
  };
  let balancers = await Promise.all(names.map((node) => apply(node, steps(state), state, (b) => took(b, state))));
  let record = state;
  let applied = seq;
  // A change written to the record after this one, whose own steps reached a balancer before
  // these: the balancers take the newest record whole (its entries set, the others cleared) —
  // again while yet newer ones come (a change written after the last read sends its own steps
  // after these).
  for (let round = 0; round < 5; round++) {
    const latest = await readRecord(s);
    if (latest.seq <= applied) break;
    record = latest.state;
    applied = latest.seq;
    balancers = await Promise.all(
      balancers.map((b) => {
        const extra = b.state ? Object.keys(b.state.modes).filter((k) => !(k in latest.state.modes)) : [];
        const argvs = [modeVerbs.allow(latest.state.allow), ...Object.entries(latest.state.modes).map(([k, e]) => modeVerbs.set(k, e)), ...(extra.length ? [modeVerbs.clear(extra)] : [])];
        return b.state ? apply(b.node, argvs, latest.state, (st) => sameModes(st, latest.state)) : b;
      }),
    );
  }
  const view: ModesView = { record, seq: applied, balancers };
  const failed = balancers.filter((b) => b.error !== undefined);
  if (failed.length > 0) {
    throw new ModeError(
      `the nodeset's record has the change, but ${failed.map((b) => `${b.node} does not (${b.error})`).join('; ')}; run the same command again once ${failed.length === 1 ? 'it answers' : 'they answer'}`,
      view,
    );
  }
  return view;
}

const sameEntry = (a: ModeEntry | undefined, b: ModeEntry | undefined) => (!a && !b) || (!!a && !!b && a.mode === b.mode && a.retryAfter === b.retryAfter && a.message === b.message);
const sameAllow = (a: readonly string[], b: readonly string[]) => [...a].sort().join(' ') === [...b].sort().join(' ');

const without = (holds: Record<string, Hold>, key: string) => Object.fromEntries(Object.entries(holds).filter(([k]) => k !== key));

/**
 * Sets the entry of `change.app` (null: `*`), replacing it; see the top of this file. A hold of
 * the app ends with it (a person's change), unless `hold` is the new one, or `keep` (silver's own
 * passing change — an update's migrate_mode and its putting back — carries a hold through).
 */
export async function applyMode(s: Session, modeChange: ModeChange, hold?: Hold | 'keep'): Promise<ModesView> {
  const { key, entry, allow } = checkChange(s, modeChange);
  return change(
    s,
    (cur) => ({ modes: { ...cur.modes, [key]: entry }, allow: allow ?? cur.allow }),
    // (the allow list first: a maintenance never starts without the addresses it lets through)
    () => [...(allow ? [modeVerbs.allow(allow)] : []), modeVerbs.set(key, entry)],
    (b) => sameEntry(b.modes[key], entry) && (!allow || sameAllow(b.allow, allow)),
    (holds) => (hold === 'keep' ? holds : hold && key !== '*' ? { ...holds, [key]: hold } : without(holds, key)),
  );
}

/**
 * `app` in maintenance, held by silver (`by`: what holds it, e.g. `restore`): the entry it had
 * before is kept on the nodes with it (see Hold), and returned. When an earlier run's hold is
 * still there (it was killed, or left the app held on purpose), the entry from before that one.
 */
export async function holdApp(s: Session, app: string, by: string, message: string): Promise<ModeEntry | null> {
  const { state, holds } = await readRecord(s);
  const previous = holds[app] ? holds[app]!.previous : (state.modes[app] ?? null);
  await applyMode(s, { app, mode: 'maintenance', message }, { by, previous });
  return previous;
}

/** The app's own entry in the nodes' record (none: null) — the record alone, no balancer asked. */
export async function recordedMode(s: Session, app: string): Promise<ModeEntry | null> {
  return (await readRecord(s)).state.modes[app] ?? null;
}

/** Who holds each app silver holds in maintenance (holdApp's `by`), by app; one read of the record. */
export async function holders(s: Session): Promise<Map<string, string>> {
  return new Map(Object.entries((await readRecord(s)).holds).map(([app, h]) => [app, h.by]));
}

/** The hold of `app` ended: its entry from before holdApp put back (none: it follows `*` again). */
export async function releaseApp(s: Session, app: string, previous: ModeEntry | null): Promise<void> {
  if (previous) await applyMode(s, { app, ...previous });
  else await clearMode(s, app);
}

/** Removes the entry of `app` (ending its hold, unless `keep`: see applyMode); null: every entry and the allow list. */
export async function clearMode(s: Session, app: string | null, keep?: 'keep'): Promise<ModesView> {
  if (app !== null && !appsOf(s).includes(app)) {
    throw new ExitError(`app "${app}" is not in the locations of ${s.ns.file} (it serves: ${appsOf(s).join(', ') || 'nothing'})`, 2);
  }
  if (app === null) {
    return change(s, () => ({ modes: {}, allow: [] }), () => [modeVerbs.clear('all'), modeVerbs.allow([])], (b) => Object.keys(b.modes).length === 0 && b.allow.length === 0, () => ({}));
  }
  return change(
    s,
    (cur) => ({ modes: Object.fromEntries(Object.entries(cur.modes).filter(([k]) => k !== app)), allow: cur.allow }),
    () => [modeVerbs.clear([app])],
    (b) => b.modes[app] === undefined,
    (holds) => (keep ? holds : without(holds, app)),
  );
}

/** The record and what each balancer applies. */
export async function readModes(s: Session): Promise<ModesView> {
  const names = balancersOf(s);
  const [record, balancers] = await Promise.all([
    readRecord(s),
    Promise.all(
      names.map(async (node): Promise<Omit<BalancerModes, 'same'>> => {
        const missing = s.missing.find((m) => m.name === node);
        if (missing) return { node, state: null, haproxy: null, live: null, error: missing.error };
        try {
          return { node, ...parseStatus(await s.remote.run(node, 'silver-balancer mode status', modeVerbs.status())) };
        } catch (e) {
          return { node, state: null, haproxy: null, live: null, error: (e as Error).message.replace(`${node}: `, '') };
        }
      }),
    ),
  ]);
  return { record: record.state, seq: record.seq, balancers: balancers.map((b) => ({ ...b, same: b.state !== null && sameModes(b.state, record.state) })) };
}
