import type { Size } from './types.js';

/** Pure validators for single values: each returns the parsed value or an error message. */
export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const fail = <T>(error: string): Parsed<T> => ({ ok: false, error });

export function parseBool(text: string): Parsed<boolean> {
  const t = text.trim().toLowerCase();
  if (['true', 'yes', 'on', '1'].includes(t)) return ok(true);
  if (['false', 'no', 'off', '0'].includes(t)) return ok(false);
  return fail(`must be true or false, got "${text}"`);
}

export function parseCount(text: string, max = 10000): Parsed<number> {
  const t = text.trim();
  if (!/^-?\d+$/.test(t)) return fail(`must be a whole number, got "${text}"`);
  const n = Number(t);
  if (n < 0) return fail(`must not be negative, got ${n}`);
  if (n > max) return fail(`must be at most ${max}, got ${n}`);
  return ok(n);
}

const UNITS: Record<string, number> = { '': 1, m: 1, mb: 1, mib: 1, g: 1024, gb: 1024, gib: 1024 };

/** `ram 256MB`, `ram 1GB`, `ram 512` (MB), or `id FLAVOR`. */
export function parseSize(text: string): Parsed<Size> {
  const t = text.trim();
  const ram = /^ram\s+(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(t);
  if (ram) {
    const unit = UNITS[(ram[2] ?? '').toLowerCase()];
    if (unit === undefined) return fail(`unknown unit "${ram[2]}" in "${text}" (use MB or GB)`);
    const mb = Math.round(Number(ram[1]) * unit);
    if (mb <= 0) return fail(`memory must be more than 0, got "${text}"`);
    return ok({ kind: 'ram', mb });
  }
  const id = /^id\s+(\S+)$/.exec(t);
  if (id && id[1]) return ok({ kind: 'id', id: id[1] });
  return fail(`must be "ram <N>MB", "ram <N>GB" or "id <flavor>", got "${text}"`);
}

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/i;

/** RFC 1123 host name; `allowWildcard` admits a leading `*.`. */
export function checkHostname(name: string, allowWildcard = false): string | null {
  const n = allowWildcard && name.startsWith('*.') ? name.slice(2) : name;
  if (n.length === 0) return 'is empty';
  if (n.length > 253) return `"${name}" is not a valid host name (longer than 253 characters)`;
  const bad = n.split('.').find((label) => !LABEL.test(label));
  if (bad !== undefined) return `"${name}" is not a valid host name`;
  if (/^\d+$/.test(n.split('.').at(-1) ?? '')) return `"${name}" is not a valid host name (numeric top-level label)`;
  return null;
}

/** An app name: its user is `app-NAME` (useradd takes 32 characters), its unit slice `silver-app-NAME` (no `-` at the end or twice: systemd refuses the slice). */
export const APP_NAME = /^[a-z][a-z0-9_]*(-[a-z0-9_]+)*$/;
const APP_NAME_MAX = 28;

/**
 * Names an app may not take: its name becomes a system user (`app-NAME`), a database role and
 * a database, so a name that is (or maps to) a built-in one would hand the app that role.
 */
const RESERVED_APPS = new Set(['postgres', 'template0', 'template1', 'mysql', 'sys', 'information_schema', 'performance_schema', 'root', 'silver', 'public', 'mariadb', 'admin', 'none', 'current_user', 'session_user', 'current_role']);

/** Why an app name cannot be used, or null. */
export function appNameProblem(name: string): string | null {
  if (!APP_NAME.test(name) || name.length > APP_NAME_MAX) return `app name "${name}" must match [a-z][a-z0-9_-]* with no - at its end or twice in a row (at most ${APP_NAME_MAX} characters)`;
  const db = name.replaceAll('-', '_');
  if (RESERVED_APPS.has(name) || RESERVED_APPS.has(db) || db.startsWith('pg_') || db.startsWith('mysql_')) {
    return `app name "${name}" is reserved: it is (or maps to) a built-in system user, database role or database`;
  }
  // (silver's own throw-away databases are silver_old_APP_*, silver_restore_APP_*,
  // silver_verify_APP_*: an app of such a name would have its database dropped as one)
  if (db.startsWith('silver_')) return `app name "${name}" is reserved: silver names its own scratch databases silver_*`;
  return null;
}

/** A location path the front proxy and the balancer can hold literally: no quotes, `;`, `$`, spaces, braces. */
export const LOCATION_PATH = /^\/[A-Za-z0-9._~/%-]*$/;
export const NODESET_NAME = /^[a-z0-9][a-z0-9-]{0,39}$/;

/** Dumps each app keeps on the service node (and on the copy) when `backup_keep` is not given. */
export const DEFAULT_BACKUP_KEEP = 7;

/**
 * Why `backup =` is not a schedule, or null: `daily`, `hourly`, `weekly`, or a systemd
 * OnCalendar expression (`*-*-* 03:30:00`, `Mon..Fri 02:00`) of letters, digits and `*:,./~-`
 * and spaces only (the node checks it again with `systemd-analyze calendar`).
 */
export function backupCalendarProblem(v: string): string | null {
  const text = v.trim();
  if (['daily', 'hourly', 'weekly'].includes(text)) return null;
  if (!/^[A-Za-z0-9*:,./~ -]{1,100}$/.test(text) || !/[0-9*]/.test(text)) return `"${text}" must be daily, hourly, weekly or a systemd OnCalendar expression (e.g. *-*-* 03:30:00)`;
  return null;
}
