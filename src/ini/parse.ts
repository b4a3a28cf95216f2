import { diagnostic, type Diagnostic } from '../diagnostics.js';

/**
 * INITools-style INI, as Silverlining used it:
 * - `[section]` headers, case-sensitive;
 * - `key = value` or `key: value` (split at the first `=` or `:`);
 * - a line that starts with whitespace continues the previous value (joined with `\n`),
 *   a blank line ends the value;
 * - whole-line comments start with `#` or `;`; ` #` / ` ;` after a value start an inline comment.
 * Every value keeps the file and line it came from, and so does every continuation line.
 */

export interface ValueLine {
  text: string;
  line: number;
}

export interface Entry {
  key: string;
  /** The value: its lines joined with `\n`; an empty first line is dropped. */
  value: string;
  /** Each non-empty line of the value with its own line number. */
  lines: ValueLine[];
  file: string;
  line: number;
}

export interface Section {
  name: string;
  file: string;
  line: number;
  entries: Map<string, Entry>;
}

export interface IniDocument {
  file: string;
  sections: Map<string, Section>;
}

export interface ParseResult {
  doc: IniDocument;
  diagnostics: Diagnostic[];
}

const INLINE_COMMENT = /\s[#;]/;

function stripInlineComment(text: string): string {
  const m = INLINE_COMMENT.exec(text);
  return (m ? text.slice(0, m.index) : text).trim();
}

function finishValue(entry: Entry, raw: ValueLine[]): void {
  const lines = raw.filter((l, i) => !(i === 0 && l.text === ''));
  entry.lines = lines;
  entry.value = lines.map((l) => l.text).join('\n');
}

export function parseIni(text: string, file: string): ParseResult {
  // (a UTF-8 byte order mark, as some editors write one, is not part of the first line)
  if (text.startsWith('\uFEFF')) text = text.slice(1);
  const diagnostics: Diagnostic[] = [];
  const sections = new Map<string, Section>();
  let section: Section | undefined;
  let entry: Entry | undefined;
  let raw: ValueLine[] = [];

  const close = () => {
    if (entry) finishValue(entry, raw);
    entry = undefined;
    raw = [];
  };

  const lines = text.split(/\r?\n/);
  lines.forEach((source, i) => {
    const line = i + 1;
    const trimmed = source.trim();
    if (trimmed === '') {
      close();
      return;
    }
    if (trimmed.startsWith('#') || trimmed.startsWith(';')) return;

    if (/^\s/.test(source)) {
      if (!entry) {
        diagnostics.push(
          diagnostic(file, line, '(continuation)', 'continuation line with no key before it (a blank line ends a value; the line is not shown: it may hold a secret)'),
        );
        return;
      }
      raw.push({ text: stripInlineComment(trimmed), line });
      return;
    }

    close();
    if (trimmed.startsWith('[')) {
      const m = /^\[([^\]]+)\]$/.exec(stripInlineComment(trimmed));
      if (!m || !m[1] || m[1].trim() !== m[1]) {
        diagnostics.push(diagnostic(file, line, trimmed, 'malformed section header, expected [name]'));
        section = undefined;
        return;
      }
      const name = m[1];
      section = sections.get(name) ?? { name, file, line, entries: new Map() };
      sections.set(name, section);
      return;
    }

    const sep = /[=:]/.exec(source);
    if (!sep || sep.index === 0) {
      // (the line's first word, when it reads as a key: the rest may be a secret's value)
      const word = /^[A-Za-z_][A-Za-z0-9_.-]{0,39}(?=\s|$)/.exec(trimmed)?.[0] ?? '(line)';
      diagnostics.push(diagnostic(file, line, word, 'expected "key = value" (the rest of the line is not shown: it may hold a secret)'));
      return;
    }
    const key = source.slice(0, sep.index).trim();
    if (!section) {
      diagnostics.push(diagnostic(file, line, key, 'key outside of any [section]'));
      return;
    }
    // A key is set once in a section of a file (a section's header may come again: its keys
    // join the first's). A second assignment is a mistake that would drop the first silently — a
    // second [appserver] with its own locations — so it is an error; `extends` is how another
    // file's keys are overridden.
    const first = section.entries.get(key);
    if (first) {
      diagnostics.push(diagnostic(file, line, key, `already set on line ${first.line} of [${section.name}] (a key is set once in a section of a file)`));
    }
    entry = { key, value: '', lines: [], file, line };
    // (the second one's continuation lines are still its own, kept out of the section)
    if (!first) section.entries.set(key, entry);
    raw = [{ text: stripInlineComment(source.slice(sep.index + 1)), line }];
  });
  close();

  return { doc: { file, sections }, diagnostics };
}
