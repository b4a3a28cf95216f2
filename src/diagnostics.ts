/** A located problem in a user's file: rendered as `FILE:LINE: key: message`. */
export interface Diagnostic {
  file: string;
  line: number;
  key: string;
  message: string;
}

export function diagnostic(file: string, line: number, key: string, message: string): Diagnostic {
  return { file, line, key, message };
}

export function formatDiagnostic(d: Diagnostic): string {
  return d.line > 0 ? `${d.file}:${d.line}: ${d.key}: ${d.message}` : `${d.file}: ${d.message}`;
}

/** Sorted by file then line, identical lines merged. */
export function sortDiagnostics(list: readonly Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  const out: Diagnostic[] = [];
  for (const d of [...list].sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line)) {
    const text = formatDiagnostic(d);
    if (!seen.has(text)) {
      seen.add(text);
      out.push(d);
    }
  }
  return out;
}

/** The user's input is wrong: every problem found, already located. Exit code 2. */
export class ConfigError extends Error {
  readonly diagnostics: Diagnostic[];
  constructor(diagnostics: readonly Diagnostic[]) {
    const sorted = sortDiagnostics(diagnostics);
    super(sorted.map(formatDiagnostic).join('\n'));
    this.name = 'ConfigError';
    this.diagnostics = sorted;
  }
}

/** A failure already reported to the user; carries the exit code. */
export class ExitError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = 'ExitError';
    this.exitCode = exitCode;
  }
}
