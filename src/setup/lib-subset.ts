/**
 * The part of lib.sh a script needs: its top-level lines (settings and variables, a few lines)
 * and the functions the script calls, with every lib.sh function those call in turn. setup-node's
 * probe sends this instead of the whole library: a fifth of its bytes, on every node of every
 * no-op run (the bytes cross the network and the node's shell parses them).
 *
 * lib.sh's layout makes this safe to cut by lines: a function begins with `name() {` and ends
 * with `}`, both at the start of a line; whatever else stands at the start of a line outside a
 * function is a top-level line, kept whole and in order.
 */

const FUNCTION = /^([a-z_][a-z0-9_]*)\(\) \{$/;

interface Library {
  top: string[];
  functions: Map<string, string[]>;
  order: string[];
}

function parse(text: string): Library {
  const top: string[] = [];
  const functions = new Map<string, string[]>();
  const order: string[] = [];
  let current: string[] | null = null;
  for (const line of text.split('\n')) {
    if (current) {
      current.push(line);
      if (line === '}') current = null;
      continue;
    }
    const m = FUNCTION.exec(line);
    if (m) {
      current = [line];
      functions.set(m[1]!, current);
      order.push(m[1]!);
    } else if (line.trim() !== '' && !line.startsWith('#')) {
      top.push(line);
    }
  }
  if (current) throw new Error(`lib.sh: function ${order.at(-1)} does not end with a line "}"`);
  return { top, functions, order };
}

const comment = (line: string) => /^\s*#/.test(line);

/** Lines without their comments (whole comment lines, and a comment after code), for finding names. */
function code(lines: readonly string[]): string {
  return lines
    .filter((l) => !comment(l))
    .map((l) => l.replace(/\s#\s.*$/, ''))
    .join('\n');
}

/**
 * The lib.sh functions a text names (as whole words): the text's words read once, in one pass
 * (a name is lib.sh's function names' own alphabet: letters, digits, _).
 */
function named(text: string, lib: Library): string[] {
  const words = new Set(text.match(/[A-Za-z0-9_]+/g));
  return lib.order.filter((name) => words.has(name));
}

/** A function's lines without its comment lines (none of lib.sh's functions writes a here-document that starts a line with #; one that holds a here-document keeps all). */
function withoutComments(lines: readonly string[]): string[] {
  return lines.some((l) => l.includes('<<')) ? [...lines] : lines.filter((l) => !comment(l));
}

const cache = new Map<string, { lib: string; out: string }>();
let parsed: { text: string; lib: Library } | undefined;

/** lib.sh's top-level lines and the functions `uses` calls, directly or through others, in lib.sh's order. */
export function libSubset(libText: string, uses: string): string {
  const kept = cache.get(uses);
  if (kept?.lib === libText) return kept.out;
  if (parsed?.text !== libText) parsed = { text: libText, lib: parse(libText) };
  const { lib } = parsed;
  const want = new Set<string>();
  const queue = named(code(uses.split('\n')), lib);
  while (queue.length > 0) {
    const name = queue.pop()!;
    if (want.has(name)) continue;
    want.add(name);
    queue.push(...named(code(lib.functions.get(name)!.slice(1)), lib));
  }
  const out = [...lib.top, ...lib.order.filter((n) => want.has(n)).flatMap((n) => withoutComments(lib.functions.get(n)!))].join('\n') + '\n';
  if (cache.size >= 16) cache.clear();
  cache.set(uses, { lib: libText, out });
  return out;
}
