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

/** The text with every occurrence of these secret values (4 characters or more) as `[REDACTED]`. */
export function redact(text: string, values: Iterable<string>): string {
  let out = text;
  for (const v of values) if (v.length >= 4) out = out.split(v).join(REDACTED);
  return out;
}
