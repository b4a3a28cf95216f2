import { diagnostic, type Diagnostic } from '../diagnostics.js';
import type { Entry, IniDocument } from '../ini/parse.js';

/**
 * Lazy interpolation over one resolved (merged) document:
 * `${NAME}` is an environment variable, `${section:key}` another value of the document
 * (the section is everything before the last `:`, so `${service:mysql:node_name}` works),
 * `$$` is a literal `$`. `{{n}}` is left in place for the node expansion to fill.
 * Values resolve on first use; a cycle is reported with its whole chain.
 */

/**
 * A reference's text is shown in an error only when it reads as a name (a variable, a section, a
 * key): anything else between `${` and `}` may be part of a secret — a password holding `${` —
 * and is never printed.
 */
const NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;
const UNNAMED = 'a ${...} reference that names no variable, section or key (its text is not shown: it may be part of a secret; $$ writes a literal $)';
/** `message` when every part reads as a name, else UNNAMED. */
const named = (message: string, ...parts: string[]) => (parts.every((p) => NAME.test(p)) ? message : UNNAMED);

const MAX_VALUE = 1 << 20;

const PATTERN = /\$\$|\$\{([^}]*)\}/g;

export class InterpolationError extends Error {
  constructor(readonly diagnostic: Diagnostic) {
    super(diagnostic.message);
  }
}

export class Interpolator {
  private readonly cache = new Map<string, string>();
  private readonly stack: string[] = [];

  /**
   * `noEnv`: environment variables are refused with this reason (app.ini: an app's author must not
   * read the environment of whoever runs silver).
   */
  constructor(
    private readonly doc: IniDocument,
    private readonly env: Readonly<Record<string, string | undefined>>,
    private readonly noEnv?: string,
  ) {}

  /** The resolved value of an entry; throws InterpolationError located at the faulty entry. */
  value(section: string, entry: Entry): string {
    const id = `${section}\u0000${entry.key}`;
    const cached = this.cache.get(id);
    if (cached !== undefined) return cached;
    if (this.stack.includes(id)) {
      const chain = [...this.stack.slice(this.stack.indexOf(id)), id].map((s) => {
        const [sec, key] = s.split('\u0000');
        return `[${sec}] ${key}`;
      });
      throw new InterpolationError(
        diagnostic(entry.file, entry.line, entry.key, `interpolation cycle: ${chain.join(' -> ')}`),
      );
    }
    this.stack.push(id);
    try {
      const out = this.expand(entry.value, (ref) => this.lookup(ref, section, entry));
      // (references that each double the one before grow without end: a value stops at 1 MiB)
      if (out.length > MAX_VALUE) throw new InterpolationError(diagnostic(entry.file, entry.line, entry.key, `the value grows past ${MAX_VALUE >> 20} MiB when its references are filled in`));
      this.cache.set(id, out);
      return out;
    } finally {
      this.stack.pop();
    }
  }

  /** Expands a string that is not stored in the document (it may only use environment variables). */
  envOnly(text: string, entry: Entry): string {
    return this.expand(text, (ref) => {
      if (ref.includes(':')) {
        throw new InterpolationError(
          diagnostic(entry.file, entry.line, entry.key, named(`\${${ref}}: only environment variables can be used here`, ref.replace(':', ''))),
        );
      }
      return this.lookup(ref, '', entry);
    });
  }

  private expand(text: string, lookup: (ref: string) => string): string {
    return text.replace(PATTERN, (match, ref: string | undefined) => (match === '$$' ? '$' : lookup(ref ?? '')));
  }

  private lookup(ref: string, fromSection: string, from: Entry): string {
    const fail = (message: string): never => {
      throw new InterpolationError(diagnostic(from.file, from.line, from.key, message));
    };
    if (ref === '') fail('empty ${} reference');
    const colon = ref.lastIndexOf(':');
    if (colon < 0) {
      if (this.noEnv) fail(named(`\${${ref}}: ${this.noEnv}`, ref));
      const v = this.env[ref];
      if (v === undefined) fail(named(`\${${ref}}: environment variable ${ref} is not set`, ref));
      return v as string;
    }
    const secName = colon === 0 ? fromSection : ref.slice(0, colon);
    const key = ref.slice(colon + 1);
    const sec = this.doc.sections.get(secName);
    if (!sec) return fail(named(`\${${ref}}: no section [${secName}]`, secName, key));
    const target = sec.entries.get(key);
    if (!target) return fail(named(`\${${ref}}: no key ${key} in [${secName}]`, key));
    return this.value(secName, target);
  }
}
