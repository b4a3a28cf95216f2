/** What app servers report about their apps, and the names and ports a deploy picks. */

export interface InstanceState {
  name: string;
  port: number;
  running: boolean;
}

export interface AppState {
  app: string;
  active: string | null;
  previous: string | null;
  /** The active instance's own health check: `ok`, `unhealthy:CODE`, `stopped`; null without one. */
  health: string | null;
  /** The active instance's code sum and static version (null: unknown or none). */
  code: string | null;
  static: string | null;
  instances: InstanceState[];
}

/** Parses `silver-deploy status`: `app NAME active X previous Y health H instances I:PORT:STATE ...`. */
export function parseStatus(stdout: string): AppState[] {
  const out: AppState[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^app (\S+) active (\S+) previous (\S+)(?: health (\S+))?(?: code (\S+) static (\S+))? instances(.*)$/.exec(line.trim());
    if (!m) continue;
    const instances = (m[7] ?? '')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map((item) => {
        const [name, port, state] = item.split(':');
        return { name: name!, port: Number(port), running: state === 'active' };
      });
    const health = m[4] === undefined || m[4] === '-' ? null : m[4];
    const opt = (v: string | undefined) => (v === undefined || v === '-' ? null : v);
    out.push({ app: m[1]!, active: opt(m[2]), previous: opt(m[3]), health, code: opt(m[5]), static: opt(m[6]), instances });
  }
  return out;
}

/** The next instance name `APP.YYYY-MM-DD_NNN` after every one that exists on any node. */
export function nextInstanceName(app: string, date: Date, existing: readonly string[]): string {
  const day = date.toISOString().slice(0, 10);
  const prefix = `${app}.${day}_`;
  const max = existing.filter((n) => n.startsWith(prefix)).reduce((m, n) => Math.max(m, Number(n.slice(prefix.length)) || 0), 0);
  if (max >= 999) throw new Error(`more than 999 instances of ${app} today`);
  return `${prefix}${String(max + 1).padStart(3, '0')}`;
}

/** A port no instance of any app uses on these nodes, from 20001. */
export function freePort(used: readonly number[]): number {
  const taken = new Set(used);
  for (let p = 20001; p < 30000; p++) if (!taken.has(p)) return p;
  throw new Error('no free instance port between 20001 and 29999');
}
