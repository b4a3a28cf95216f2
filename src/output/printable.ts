/**
 * What an app (or anyone but silver) wrote, safe for a terminal: control characters — escape
 * sequences, carriage returns, line breaks — shown as \xNN, tabs kept. Anything silver prints
 * that an app's code, output or files could have chosen goes through it.
 */
export function printable(text: string): string {
  return text.replace(/[\x00-\x08\x0a-\x1f\x7f\x80-\x9f]/g, hex);
}

/** A control character as `\xNN`. */
const hex = (c: string) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;

/** As printable, with line breaks and tabs kept: an app's output shown line by line on a terminal. */
export function printableLines(text: string): string {
  return text.replace(/[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]/g, hex);
}

/**
 * JSON for a terminal or a pipe: as JSON.stringify, with the C1 controls (U+0080–U+009F, which
 * JSON leaves as they are and some terminals act on) and DEL escaped as \u00XX — the same
 * strings to a JSON reader.
 */
export function jsonText(value: unknown, indent?: number): string {
  return JSON.stringify(value, null, indent).replace(/[\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
