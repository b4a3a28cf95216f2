import { dirname, normalize, resolve as resolvePath } from 'node:path';
import { diagnostic, type Diagnostic } from '../diagnostics.js';
import { parseIni, type IniDocument, type Section } from '../ini/parse.js';
import type { ConfigHost } from './host.js';
import { InterpolationError, Interpolator } from './interpolate.js';

/**
 * Reads a file and every file it `extends` (in `[general]`, relative to the file that names it,
 * recursively; one path per line, later lines win over earlier ones, the extending file wins
 * over all of them) and merges them key by key. Each entry keeps the file and line it came from.
 */
export interface LoadResult {
  doc: IniDocument;
  diagnostics: Diagnostic[];
  /** Every file read, the named one first. */
  files: string[];
}

export function loadLayered(path: string, host: ConfigHost, displayPath = path): LoadResult {
  const diagnostics: Diagnostic[] = [];
  const files: string[] = [];
  const text = host.readFile(path);
  if (text === undefined) {
    return { doc: { file: displayPath, sections: new Map() }, diagnostics: [diagnostic(displayPath, 0, 'file', 'cannot read this nodeset file (no such file, or not readable)')], files };
  }
  const doc = load(path, displayPath, text, host, [], diagnostics, files);
  return { doc, diagnostics, files };
}

function load(
  path: string,
  display: string,
  text: string,
  host: ConfigHost,
  chain: string[],
  diagnostics: Diagnostic[],
  files: string[],
): IniDocument {
  files.push(display);
  const parsed = parseIni(text, display);
  diagnostics.push(...parsed.diagnostics);
  const ext = parsed.doc.sections.get('general')?.entries.get('extends');
  if (!ext) return parsed.doc;

  const envOnly = new Interpolator(parsed.doc, host.env);
  const bases: IniDocument[] = [];
  for (const item of ext.lines) {
    let target: string;
    try {
      target = envOnly.envOnly(item.text, { ...ext, line: item.line });
    } catch (e) {
      if (e instanceof InterpolationError) {
        diagnostics.push(e.diagnostic);
        continue;
      }
      throw e;
    }
    const full = resolvePath(dirname(path), target);
    const shown = relativeDisplay(display, target);
    if ([...chain, path].includes(full)) {
      diagnostics.push(diagnostic(display, item.line, 'extends', `${target}: extends cycle (${[...chain, path, full].join(' -> ')})`));
      continue;
    }
    const baseText = host.readFile(full);
    if (baseText === undefined) {
      diagnostics.push(diagnostic(display, item.line, 'extends', `${target}: no such file (looked for ${full})`));
      continue;
    }
    bases.push(load(full, shown, baseText, host, [...chain, path], diagnostics, files));
  }
  return merge([...bases, parsed.doc], display);
}

function relativeDisplay(fromDisplay: string, target: string): string {
  if (target.startsWith('/')) return target;
  const dir = dirname(fromDisplay);
  return normalize(dir === '.' ? target : `${dir}/${target}`);
}

/** Later documents win, key by key. */
export function merge(docs: IniDocument[], file: string): IniDocument {
  const sections = new Map<string, Section>();
  for (const doc of docs) {
    for (const [name, sec] of doc.sections) {
      const into = sections.get(name);
      if (!into) {
        sections.set(name, { ...sec, entries: new Map(sec.entries) });
        continue;
      }
      for (const [key, entry] of sec.entries) into.entries.set(key, entry);
      into.file = sec.file;
      into.line = sec.line;
    }
  }
  return { file, sections };
}
