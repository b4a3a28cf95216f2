import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';

const FILE = join(process.cwd(), 'bench/RESULTS.md');

/** Replaces (or appends) one benchmark's section of bench/RESULTS.md, between markers. */
export function writeSection(id: string, title: string, command: string, lines: string[]): void {
  const begin = `<!-- ${id}:begin -->`;
  const end = `<!-- ${id}:end -->`;
  const machine = `${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GB, node ${process.version}`;
  const body = [
    begin,
    `## ${title}`,
    '',
    `Command: \`${command}\` — run ${new Date().toISOString().slice(0, 10)} on ${machine}`,
    '',
    '```',
    ...lines,
    '```',
    end,
  ].join('\n');
  let text = existsSync(FILE) ? readFileSync(FILE, 'utf8') : '# Benchmark results\n\nEach section is rewritten by the command it names.\n';
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  text = a >= 0 && b > a ? text.slice(0, a) + body + text.slice(b + end.length) : `${text.trimEnd()}\n\n${body}\n`;
  writeFileSync(FILE, text);
}

/** The lines of a section as bench/RESULTS.md holds it now (before a run rewrites it); [] when none. */
export function sectionLines(id: string): string[] {
  const text = existsSync(FILE) ? readFileSync(FILE, 'utf8') : '';
  const a = text.indexOf(`<!-- ${id}:begin -->`);
  const b = text.indexOf(`<!-- ${id}:end -->`);
  return a >= 0 && b > a ? text.slice(a, b).split('\n') : [];
}

/** The middle value of some timings (the upper one of an even count). */
export function median(xs: readonly number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
}
