import test from 'ava';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { layersRoot } from '../../src/layers.js';
import { nodeScript } from '../../src/setup/plan.js';
import { probeScript } from '../../src/setup/fast-path.js';

// Every helper a node's script calls is defined in it: a name of lib.sh's kind (words joined by
// `_`) at a command's place — a line's start, after `if`, `!`, `&&`, `||`, `;`, `then`, `do` —
// in the full script of every layer and in the probe. `sh -n` passes a call of a function that is
// gone; the node would fail with "not found" at that line.

const LAYERS = ['base', 'wire', 'appserver', 'balancer', 'service/postgresql', 'service/mysql'].filter((l) => existsSync(join(layersRoot(), l, 'setup.sh')));

/** A shell file's lines that run: no comment lines, no here-document bodies, no quoted text. */
function code(text: string): string[] {
  const out: string[] = [];
  let end: string | null = null;
  for (const line of text.split('\n')) {
    if (end !== null) {
      if (line.trim() === end) end = null;
      continue;
    }
    if (/^\s*#/.test(line)) continue;
    out.push(line.replace(/'[^']*'|"(?:[^"\\]|\\.)*"/g, "''"));
    const m = /<<-?\s*\\?['"]?([A-Za-z_]+)['"]?/.exec(line);
    if (m) end = m[1]!;
  }
  return out;
}

const defs = (text: string) => [...text.matchAll(/^\s*([A-Za-z_][A-Za-z0-9_]*)\(\) \{/gm)].map((m) => m[1]!);

/**
 * The names of lib.sh's kind that `files` (shell files) call at a command's place, and that
 * `script` (a whole node script: its own lines at a line's start) calls, defined in neither.
 */
function undefinedCalls(script: string, files: readonly string[]): string[] {
  const defined = new Set([...defs(script), ...files.flatMap(defs)]);
  const called = new Set<string>();
  for (const line of files.flatMap(code)) {
    for (const m of line.matchAll(/(?:^|[;&|!(]\s*|\b(?:if|then|do|else|until|while)\s+)([a-z][a-z0-9]*_[a-z0-9_]+)(?=\s|$|;)/g)) called.add(m[1]!);
  }
  for (const m of script.matchAll(/^([a-z][a-z0-9]*_[a-z0-9_]+)(?: [^=\n]*)?$/gm)) called.add(m[1]!);
  return [...called].filter((n) => !defined.has(n)).sort();
}

const read = (path: string) => (existsSync(path) ? readFileSync(path, 'utf8') : '');

test('every helper the full script of each layer, and the probe, calls is defined there', (t) => {
  const root = layersRoot();
  const files = [read(join(root, 'lib.sh')), ...LAYERS.flatMap((l) => [read(join(root, l, 'setup.sh')), read(join(root, l, 'probe.sh'))])];
  const full = nodeScript(LAYERS.map((layer) => ({ layer, vars: { SILVER_CHECK: '0' } })), undefined, 'a'.repeat(64)).toString();
  t.deepEqual(undefinedCalls(full, files), []);
  const probe = probeScript(LAYERS, 'a'.repeat(64), false).toString();
  t.deepEqual(undefinedCalls(probe, files), []);
  // (the check itself: a call of a name defined nowhere is found, in a file and in the script)
  t.deepEqual(undefinedCalls(full, [...files, 'if gone_helper x; then :; fi\nx && other_gone']), ['gone_helper', 'other_gone']);
  t.deepEqual(undefinedCalls(`${full}\nplan_gone\n`, files), ['plan_gone']);
});
