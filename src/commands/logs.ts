import { printableLines } from '../output/printable.js';
import { PassThrough } from 'node:stream';
import { Session } from '../deploy/session.js';
import { ExitError } from '../diagnostics.js';
import type { Nodeset } from '../nodeset/types.js';
import { logsVerb } from '../remote/commands/logs.js';
import type { Runtime } from '../runtime.js';
import { quoteCommand } from '../ssh/quote.js';
import { printable } from '../output/printable.js';

/**
 * `silver logs APP FILE [-f] [--node NAME] [--since TIME] [-n N] [--json]`: the app's journal
 * lines from every app server (its instances' output, and systemd's words about them), merged in
 * time order, each with its node and instance. `-f` follows every node at once — new instances
 * too, since their lines carry the app's name — until Ctrl-C. `silver logs silver FILE` is the
 * same for silver's own steps on every node (setup, deploys, backups), kept under one identifier.
 */
export interface LogLine {
  node: string;
  /** Microseconds since the epoch. */
  time: number;
  /** The instance (or, for silver's own lines, `silverlining`). */
  source: string;
  priority: number;
  message: string;
}

export interface LogsOptions {
  node?: string;
  /** Seconds since the epoch. */
  since: number | null;
  lines: number;
  follow: boolean;
  /** Each line as it is printed. */
  write(line: LogLine): void;
}

interface JournalRecord {
  __REALTIME_TIMESTAMP?: string;
  __CURSOR?: string;
  MESSAGE?: string | number[] | null;
  PRIORITY?: string;
  SILVER_INSTANCE?: string;
  _SYSTEMD_UNIT?: string;
  UNIT?: string;
  SYSLOG_IDENTIFIER?: string;
}

/** One `journalctl -o json` line as a LogLine (and its cursor), or null. */
export function parseJournalLine(node: string, text: string): { line: LogLine; cursor: string } | null {
  let r: JournalRecord;
  try {
    r = JSON.parse(text) as JournalRecord;
  } catch {
    return null;
  }
  if (!r.__REALTIME_TIMESTAMP || !r.__CURSOR) return null;
  const message = Array.isArray(r.MESSAGE) ? Buffer.from(r.MESSAGE).toString('utf8') : (r.MESSAGE ?? '');
  // (the instance from the unit journald itself recorded — or, for systemd's own lines, the unit
  // they are about — never from a field any process could set in its own lines)
  const unit = r._SYSTEMD_UNIT ?? r.UNIT ?? '';
  const fromUnit = /^silver-(.+)\.service$/.exec(unit)?.[1];
  const source = fromUnit ?? r.SYSLOG_IDENTIFIER ?? 'journal';
  return { line: { node, time: Number(r.__REALTIME_TIMESTAMP), source, priority: Number(r.PRIORITY ?? 6), message }, cursor: r.__CURSOR };
}

/** `--since`: seconds since the epoch from `2026-12-02T10:00`, `2026-12-02 10:00:00`, or `10m`/`2h`/`3d` ago. */
export function parseSince(text: string, now: number): number {
  const ago = /^(\d+)([smhd])$/.exec(text);
  if (ago) return Math.floor(now / 1000) - Number(ago[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[ago[2] as 's' | 'm' | 'h' | 'd'];
  if (/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2})?)?(Z|[+-]\d{2}:\d{2})?$/.test(text)) {
    const t = Date.parse(text.replace(' ', 'T'));
    if (!Number.isNaN(t)) return Math.floor(t / 1000);
  }
  throw new ExitError(`--since "${text}": give a time (2026-12-02T10:00, 2026-12-02 10:00:00) or an age (30s, 10m, 2h, 3d)`, 2);
}

export function formatLogLine(l: LogLine): string {
  const t = new Date(Math.floor(l.time / 1000)).toISOString().replace('T', ' ').replace('Z', '');
  return `${t} ${l.node} ${printable(l.source)}: ${printable(l.message)}`;
}

export async function logs(ns: Nodeset, who: string, rt: Runtime, opts: LogsOptions): Promise<void> {
  const ownSteps = who === 'silver';
  if (!ownSteps && !ns.locations.some((l) => l.app === who)) throw new ExitError(`app "${who}" is not in the locations of ${ns.file} (silver logs silver FILE: silver's own steps)`, 2);
  const role = ownSteps ? null : 'appserver';
  if (opts.node && !ns.nodes.some((n) => n.name === opts.node && (!role || n.role === role))) throw new ExitError(`--node ${opts.node}: not ${role ? 'an app server' : 'a node'} of nodeset ${ns.name}`, 2);
  const s = await Session.open(ns, rt, []);
  try {
    const nodes = s.all.filter((n) => (!role || n.role === role) && (!opts.node || n.name === opts.node));
    for (const m of s.missing.filter((x) => (!role || x.role === role) && (!opts.node || x.name === opts.node))) rt.io.err(`${m.name}: ${m.error}`);
    if (nodes.length === 0) throw new ExitError('no node to read logs from can be reached', 1);
    // The backlog first, merged in time order; then, with -f, each node from where its backlog ended.
    const cursors = new Map<string, string>();
    const backlog: LogLine[] = [];
    await Promise.all(
      nodes.map(async (n) => {
        const out = await s.remote.run(n.name, 'reading the journal', logsVerb(who, opts.lines, opts.since, false), undefined, 5 * 60_000);
        for (const text of out.split('\n')) {
          const p = parseJournalLine(n.name, text);
          if (!p) continue;
          backlog.push(p.line);
          cursors.set(n.name, p.cursor);
        }
      }),
    );
    backlog.sort((a, b) => a.time - b.time);
    for (const l of backlog.slice(-opts.lines)) opts.write(l);
    if (!opts.follow) return;
    await follow(s, who, nodes.map((n) => n.name), cursors, rt, opts);
  } finally {
    await s.close();
  }
}

/** Every node followed on a channel of its own until Ctrl-C (or until every node ends). */
async function follow(s: Session, who: string, nodes: string[], cursors: ReadonlyMap<string, string>, rt: Runtime, opts: LogsOptions): Promise<void> {
  const handles = nodes.map((node) => {
    const target = s.targets.find((t) => t.name === node)!;
    // (from the node's last line shown; a node with none: from now on)
    const cursor = cursors.get(node);
    const argv = logsVerb(who, 0, cursor ? { cursor } : Math.floor(rt.now() / 1000), true);
    // (the channel's input stays open while it follows: the node ends journalctl when it closes)
    const input = new PassThrough();
    let buffer = '';
    const handle = rt.attach(target, quoteCommand(argv), {
      stdin: input,
      onStdout: (chunk) => {
        buffer += chunk.toString('utf8');
        let nl: number;
        while ((nl = buffer.indexOf('\n')) >= 0) {
          const p = parseJournalLine(node, buffer.slice(0, nl));
          buffer = buffer.slice(nl + 1);
          if (p) opts.write(p.line);
        }
      },
      onStderr: (chunk) => rt.io.err(`${node}: ${printableLines(chunk.toString('utf8').trimEnd())}`),
    });
    return { node, handle, input };
  });
  const dispose = rt.onInterrupt(() => {
    for (const h of handles) {
      h.input.end();
      h.handle.stop();
    }
  });
  try {
    await Promise.all(handles.map((h) => h.handle.done.catch((e: Error) => rt.io.err(`${h.node}: ${e.message}`))));
  } finally {
    dispose();
  }
}
