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
      diagnostics.push(diagnostic(display, item.line, 'extends', `${target}: no such file (looked for ${full}; a configuration is a regular file of at most 16 MiB)`));
      continue;
    }
    bases.push(load(full, shown, baseText, host, [...chain, path], diagnostics, files));
  }
  return merge([...bases, parsed.doc], display, replacedSections(parsed.doc, diagnostics));
}

/**
 * The sections this (extending) file replaces whole instead of merging key by key: those that
 * say `inherit = false`, and a `[provider]` that names another provider (`provider =` or
 * `name =`): the inherited provider's keys mean nothing to another one. `inherit` is taken out
 * of the section here; a value other than true/false is a located error.
 */
function replacedSections(doc: IniDocument, diagnostics: Diagnostic[]): Set<string> {
  const out = new Set<string>();
  for (const [name, sec] of doc.sections) {
    const e = sec.entries.get('inherit');
    if (!e) continue;
    sec.entries.delete('inherit');
    const v = e.value.trim().toLowerCase();
    if (v === 'false' || v === 'no') out.add(name);
    else if (v !== 'true' && v !== 'yes') diagnostics.push(diagnostic(e.file, e.line, 'inherit', `must be true or false (false: this section replaces the inherited one whole), not "${e.value}"`));
  }
  return out;
}

/** A later [provider] that names another provider than the one it would merge into. */
function otherProvider(into: Section, sec: Section): boolean {
  return ['provider', 'name'].some((k) => {
    const named = sec.entries.get(k)?.value.trim();
    return named !== undefined && named !== into.entries.get(k)?.value.trim();
  });
}

function relativeDisplay(fromDisplay: string, target: string): string {
  if (target.startsWith('/')) return target;
  const dir = dirname(fromDisplay);
  return normalize(dir === '.' ? target : `${dir}/${target}`);
}

/** Later documents win, key by key; the last document's sections named in `replace` (and a [provider] naming another provider) replace whole. */
export function merge(docs: IniDocument[], file: string, replace: ReadonlySet<string> = new Set()): IniDocument {
  const sections = new Map<string, Section>();
  docs.forEach((doc, i) => {
    const last = i === docs.length - 1;
    for (const [name, sec] of doc.sections) {
      const into = sections.get(name);
      if (!into || (last && (replace.has(name) || (name === 'provider' && otherProvider(into, sec))))) {
        sections.set(name, { ...sec, entries: new Map(sec.entries) });
        continue;
      }
      for (const [key, entry] of sec.entries) into.entries.set(key, entry);
      into.file = sec.file;
      into.line = sec.line;
    }
  });
  return { file, sections };
}
