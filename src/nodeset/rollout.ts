import type { Parsed } from './values.js';

/**
 * `[appserver] rollout = 1, 25%`: how many app servers activate together, like Ansible's
 * `serial`. Entries are counts or percentages of the app-server count (rounded up, at least 1);
 * the last entry repeats. The primary always activates alone first: when the first entry is
 * larger than 1, the rest of that first batch follows it as a batch of its own.
 */
export type BatchEntry = { count: number } | { percent: number };

/** The default (no `rollout` key): one app server at a time. */
export const ONE_AT_A_TIME: readonly BatchEntry[] = [{ count: 1 }];

const MAX_COUNT = 10000;

function parseEntry(token: string): Parsed<BatchEntry> {
  const bad = { ok: false as const, error: `entry "${token}" must be a number of app servers (1 or more) or a percentage of them (1% to 100%)` };
  const pct = /^([0-9]+)%$/.exec(token);
  if (pct) {
    const p = Number(pct[1]);
    return p >= 1 && p <= 100 ? { ok: true, value: { percent: p } } : bad;
  }
  if (!/^[0-9]+$/.test(token)) return bad;
  const n = Number(token);
  return n >= 1 && n <= MAX_COUNT ? { ok: true, value: { count: n } } : bad;
}

/** `1, 25%`, `1 2 50%`: entries separated by commas and/or whitespace. */
export function parseRollout(text: string): Parsed<BatchEntry[]> {
  if (text.trim() === '') return { ok: false, error: 'is empty: give batch sizes, e.g. "1, 25%" (or leave the key out: one app server at a time)' };
  const entries: BatchEntry[] = [];
  for (const part of text.split(',')) {
    const tokens = part.trim().split(/\s+/).filter(Boolean);
    if (tokens.length === 0) return { ok: false, error: `has an empty entry in "${text.trim()}"` };
    for (const token of tokens) {
      const e = parseEntry(token);
      if (!e.ok) return e;
      entries.push(e.value);
    }
  }
  return { ok: true, value: entries };
}

export function formatRollout(entries: readonly BatchEntry[]): string {
  return entries.map((e) => ('count' in e ? String(e.count) : `${e.percent}%`)).join(', ');
}

function sizeOf(e: BatchEntry, total: number): number {
  return 'count' in e ? e.count : Math.max(1, Math.floor((total * e.percent + 99) / 100));
}

/** The batch sizes for `total` app servers: the primary alone, then the entries (the last repeating). */
export function batchSizes(total: number, entries: readonly BatchEntry[]): number[] {
  if (total <= 0) return [];
  const sizes = [1];
  let left = total - 1;
  for (let i = 0; left > 0; i++) {
    // (the primary was the first member of the first entry's batch)
    const n = Math.min(sizeOf(entries[Math.min(i, entries.length - 1)]!, total) - (i === 0 ? 1 : 0), left);
    if (n <= 0) continue;
    sizes.push(n);
    left -= n;
  }
  return sizes;
}

/** The app servers (primary first) cut into their batches. */
export function batches<T>(nodes: readonly T[], entries: readonly BatchEntry[]): T[][] {
  let at = 0;
  return batchSizes(nodes.length, entries).map((n) => nodes.slice(at, (at += n)));
}
