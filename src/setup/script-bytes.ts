import { quoteArg } from '../ssh/quote.js';

/** A line of a script: text, bytes, or pieces of one line (no newline between them). */
export type ScriptLine = string | Buffer | readonly (string | Buffer)[];

/** Texts as UTF-8 bytes made once, for texts every node script holds alike; bounded. */
function byteCache(make: (text: string) => string): (text: string) => Buffer {
  const kept = new Map<string, Buffer>();
  return (text) => {
    let b = kept.get(text);
    if (!b) {
      if (kept.size >= 512) kept.clear();
      b = Buffer.from(make(text));
      kept.set(text, b);
    }
    return b;
  };
}

/**
 * A text every node's script holds (a layer's file, a helper's install line): encoded once, then
 * copied. Node scripts are mostly such texts, hundreds of KB; encoding them again for every node
 * (their comments hold non-ASCII characters, which makes the strings two bytes a character) cost
 * more than sending them.
 */
export const sharedText = byteCache((t) => t);

const quotedValues = byteCache(quoteArg);

/** `K=value` for the shell; a long value (the node list, a rendered file) quoted and encoded once. */
export function assignment(name: string, value: string): ScriptLine {
  return value.length < 256 ? `${name}=${quoteArg(value)}` : [`${name}=`, quotedValues(value)];
}

const NL = Buffer.from('\n');

/** The lines as one script, each ended by a newline. */
export function scriptBytes(lines: readonly ScriptLine[]): Buffer {
  const parts: Buffer[] = [];
  for (const line of lines) {
    for (const piece of typeof line === 'string' || Buffer.isBuffer(line) ? [line] : line) parts.push(typeof piece === 'string' ? Buffer.from(piece) : piece);
    parts.push(NL);
  }
  return Buffer.concat(parts);
}
