import { inspect } from 'node:util';

export const REDACTED = '[REDACTED]';

/**
 * A secret value. It prints, serialises and interpolates into strings as `[REDACTED]`;
 * only `reveal()` gives the value, and only the code that hands it to a provider calls it.
 */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return REDACTED;
  }
  toJSON(): string {
    return REDACTED;
  }
  [inspect.custom](): string {
    return REDACTED;
  }
}

/** Keys whose values are secrets wherever they appear. */
export function isSecretKey(key: string): boolean {
  return /(secret|password|passwd|token|api_key|apikey|private_key)/i.test(key) && key !== 'secret_file';
}

/** The shortest value redact() hides: a shorter one would hide every match of it in the text. */
export const MIN_REDACTED = 4;

/**
 * The text with every occurrence of these secret values (4 characters or more) as `[REDACTED]`:
 * the longest first (a short value inside a longer one must not break the longer one's match),
 * each line of a value of several lines on its own too (output is read line by line), and each
 * value as an app or a tool would print it encoded — JSON-escaped, URL-encoded (a query or a
 * form), base64 — as well as verbatim.
 */
export function redact(text: string, values: Iterable<string>): string {
  const all = new Set<string>();
  for (const v of values) {
    for (const one of [v, ...(v.includes('\n') ? v.split('\n').map((l) => l.trim()) : [])]) {
      if (one.length < MIN_REDACTED) continue;
      for (const form of encodings(one)) all.add(form);
    }
  }
  let out = text;
  // (every form of a value of 4 characters or more is as long)
  for (const v of [...all].sort((a, b) => b.length - a.length)) out = out.split(v).join(REDACTED);
  return out;
}

/** A value and the forms it takes encoded (each once). */
function encodings(v: string): string[] {
  const base64 = Buffer.from(v, 'utf8').toString('base64');
  return [
    v,
    JSON.stringify(v).slice(1, -1),
    encodeURIComponent(v),
    new URLSearchParams({ v }).toString().slice(2),
    base64,
    // (inside a longer base64 text the value's own padding is not there)
    base64.replace(/=+$/, ''),
  ];
}
