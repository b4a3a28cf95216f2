import { createHash } from 'node:crypto';
import { isUtf8 } from 'node:buffer';

/**
 * An app's own settings (`silver env`): environment variables the operator gives, kept in each
 * instance's environment file beside silver's own variables, and named there by
 * `SILVER_SETTINGS`, so that every instance keeps the settings it started with (a rollback
 * returns to them) and the primary's active instance says what the settings are now.
 */
export type Settings = Record<string, string>;

/** The variable that names the settings among an instance's environment. */
export const SETTINGS_VAR = 'SILVER_SETTINGS';
const MAX_VALUE = 65536;

/** Why a setting's name cannot be used, or null. Silver's own names are not the app's to set. */
export function badSettingName(key: string): string | null {
  // (not repeated: what is no name may be a value — a secret — given without its KEY=)
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,127}$/.test(key)) return 'is not a variable name (letters, digits, _; not starting with a digit; at most 128)';
  if (key === 'PORT' || key === 'TEMP' || /^(SILVER_|CONFIG_)/.test(key)) return `${key} is set by silver (PORT, TEMP, SILVER_*, CONFIG_*)`;
  return null;
}

/** Why a value cannot be an environment value, or null (never naming the value). */
export function badSettingValue(key: string, value: string): string | null {
  if (value.includes('\0')) return `the value of ${key} holds a NUL byte`;
  if (Buffer.byteLength(value) > MAX_VALUE) return `the value of ${key} is longer than ${MAX_VALUE} bytes`;
  return null;
}

/** A value read from standard input (`KEY=-`): valid UTF-8, one trailing line break dropped. */
export function valueFromInput(key: string, data: Buffer): string {
  if (!isUtf8(data)) throw new Error(`the value of ${key} on standard input is not UTF-8`);
  return data.toString('utf8').replace(/\r?\n$/, '');
}

/** The services' passwords among these variables (CONFIG_*_PASSWORD): values silver's messages never show. */
export function passwordValues(vars: Readonly<Record<string, string>>): string[] {
  return Object.entries(vars).flatMap(([k, v]) => (/PASSWORD/.test(k) && v ? [v] : []));
}

/** A short fingerprint of a value (changes when it changes; never the value). */
export function fingerprint(app: string, key: string, value: string): string {
  return createHash('sha256').update(`${app}\0${key}\0${value}`).digest('hex').slice(0, 12);
}

/**
 * The environment file: `KEY="value"` lines, with `\`, `"`, `$` and backquote escaped and line
 * breaks kept inside the quotes — what systemd's EnvironmentFile and a POSIX shell both read
 * back as the same value, whatever it holds.
 */
export function envFile(vars: Record<string, string>): string {
  return (
    Object.entries(vars)
      .map(([k, v]) => {
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`bad environment variable name ${k}`);
        const bad = badSettingValue(k, v);
        if (bad) throw new Error(bad);
        return `${k}="${v.replace(/[\\"$`]/g, (c) => `\\${c}`)}"`;
      })
      .join('\n') + '\n'
  );
}

/** Reads an environment file back (the form above, and the `KEY='value'` one of older instances). */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const eol = text.indexOf('\n', i);
    const line = text.slice(i, eol < 0 ? text.length : eol);
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)=/.exec(line);
    if (!m) {
      i = eol < 0 ? text.length : eol + 1;
      continue;
    }
    let j = i + m[0].length;
    let value = '';
    const q = text[j];
    if (q === '"' || q === "'") {
      j++;
      while (j < text.length && text[j] !== q) {
        if (q === '"' && text[j] === '\\' && j + 1 < text.length) {
          const c = text[j + 1]!;
          if (c === '\n') j += 2;
          else {
            value += '\\"$`'.includes(c) ? c : `\\${c}`;
            j += 2;
          }
          continue;
        }
        value += text[j++];
      }
      if (j >= text.length) throw new Error(`the environment file has an unterminated value of ${m[1]}`);
      j++;
      const next = text.indexOf('\n', j);
      i = next < 0 ? text.length : next + 1;
    } else {
      value = line.slice(m[0].length).trim();
      i = eol < 0 ? text.length : eol + 1;
    }
    out[m[1]!] = value;
  }
  return out;
}

/** The settings among an instance's environment (named by SILVER_SETTINGS). */
export function settingsOf(env: Record<string, string>): Settings {
  const names = (env[SETTINGS_VAR] ?? '').split(/\s+/).filter(Boolean);
  return Object.fromEntries(names.filter((n) => n in env).map((n) => [n, env[n]!]));
}

/** Silver's variables and the settings as one environment, the settings named by SILVER_SETTINGS. */
export function withSettings(vars: Record<string, string>, settings: Settings): Record<string, string> {
  const names = Object.keys(settings).sort();
  return { ...settings, ...vars, [SETTINGS_VAR]: names.join(' ') };
}

/** One change: a value for a key, or the key removed. */
export type SettingChange = { key: string; value: string } | { key: string; unset: true };

/** The settings after the changes, in order. */
export function applyChanges(settings: Settings, changes: readonly SettingChange[]): Settings {
  const out = { ...settings };
  for (const c of changes) {
    if ('unset' in c) delete out[c.key];
    else out[c.key] = c.value;
  }
  return out;
}

/**
 * Staged changes (`--no-restart`) as lines `set KEY BASE64` / `unset KEY`, and back; a first line
 * `staged STAMP` (when they were staged) orders the app servers' copies.
 */
export function formatPending(changes: readonly SettingChange[], stamp?: number): string {
  const lines = changes.map((c) => ('unset' in c ? `unset ${c.key}` : `set ${c.key} ${Buffer.from(c.value).toString('base64')}`));
  // (with a stamp and no change: the list cleared at that time — newer than what it clears, so
  // that a copy an interrupted clear left on another app server is not taken for the newest)
  if (stamp !== undefined) lines.unshift(`staged ${stamp}`);
  return lines.join('\n') + (lines.length ? '\n' : '');
}

/**
 * A node's staged changes and when they were staged (0: written without a stamp; -1: none, and
 * no record of a clear either; a stamp with no change: cleared then).
 * Of the app servers' copies the newest is the one: `env set --no-restart` killed halfway left
 * the earlier list on some.
 */
export function parseStaged(text: string): { stamp: number; changes: SettingChange[] } {
  const out: SettingChange[] = [];
  let stamp = 0;
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const [op, key, b] = line.split(' ');
    if (op === 'staged' && key && /^\d{1,15}$/.test(key) && b === undefined) {
      stamp = Number(key);
      continue;
    }
    if (!key || badSettingName(key)) throw new Error('the staged settings on the node are damaged');
    if (op === 'unset') out.push({ key, unset: true });
    else if (op === 'set' && b !== undefined) out.push({ key, value: Buffer.from(b, 'base64').toString('utf8') });
    else throw new Error('the staged settings on the node are damaged');
  }
  return { stamp: out.length || stamp > 0 ? stamp : -1, changes: out };
}
