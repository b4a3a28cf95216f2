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

/**
 * The text with every occurrence of these secret values (4 characters or more) as `[REDACTED]`:
 * the longest first (a short value inside a longer one must not break the longer one's match),
 * and each line of a value of several lines on its own too (output is read line by line).
 */
export function redact(text: string, values: Iterable<string>): string {
  const all = new Set<string>();
  for (const v of values) {
    all.add(v);
    if (v.includes('\n')) for (const line of v.split('\n')) all.add(line.trim());
  }
  let out = text;
  for (const v of [...all].filter((x) => x.length >= 4).sort((a, b) => b.length - a.length)) out = out.split(v).join(REDACTED);
  return out;
}
