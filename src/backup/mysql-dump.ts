import type { RowCounter } from '../services/types.js';

const NL = 0x0a;
const QUOTE = 0x27; // '
const BACKSLASH = 0x5c;
const OPEN = 0x28; // (
const CLOSE = 0x29; // )
const SEMICOLON = 0x3b;
const SPACE = 0x20;
const DQUOTE = 0x22; // "
const BACKTICK = 0x60;
const HASH = 0x23;
const DASH = 0x2d;
const STAR = 0x2a;
const SLASH = 0x2f;
const BANG = 0x21;
/** The start of a line kept to know what the line is (longer lines are data or routine bodies). */
const KEEP = 4096;
const VALUES = Buffer.from(' VALUES');

const ident = /`((?:[^`]|``)+)`/;
const unquote = (name: string) => name.replaceAll('``', '`');

/**
 * Where a routine's or trigger's body stands, byte by byte: in a string ('...', "..."), a quoted
 * name (`...`), a comment (-- or # to the line's end, /* ... *\/), or in code. A versioned
 * comment (/*!NNNNN ... *\/, as mariadb-dump wraps triggers) is code. The body is the app's own
 * text: a line reading `DELIMITER ;` inside one of its strings must not end it.
 */
class BodyLexer {
  /**
   * `sqlMode`: the mode the body was written under, as mariadb-dump sets it before the body
   * (`/*!50003 SET sql_mode = '...' *\/`): with NO_BACKSLASH_ESCAPES a backslash in a string is
   * a plain character, with ANSI_QUOTES a "..." is a name, as a `...` is.
   */
  constructor(private readonly sqlMode = '') {}

  private quote = 0;
  private escaped = false;
  private block = false;
  private lineComment = false;
  private opening = false;
  private prev = 0;

  feed(b: number): void {
    if (this.opening) {
      this.opening = false;
      if (b !== BANG) {
        this.block = true;
        this.prev = 0;
        return;
      }
    }
    if (this.lineComment) {
      if (b === NL) this.lineComment = false;
    } else if (this.block) {
      if (this.prev === STAR && b === SLASH) {
        this.block = false;
        this.prev = 0;
        return;
      }
    } else if (this.quote) {
      if (this.escaped) this.escaped = false;
      else if (b === BACKSLASH && this.quote !== BACKTICK && !(this.quote === DQUOTE && this.modeHas('ANSI_QUOTES')) && !this.modeHas('NO_BACKSLASH_ESCAPES')) this.escaped = true;
      else if (b === this.quote) this.quote = 0;
    } else if (b === QUOTE || b === DQUOTE || b === BACKTICK) this.quote = b;
    else if (b === HASH || (b === DASH && this.prev === DASH)) this.lineComment = true;
    else if (b === STAR && this.prev === SLASH) this.opening = true;
    this.prev = b;
  }

  private modeHas(flag: string): boolean {
    return this.sqlMode.split(',').includes(flag);
  }

  get inCode(): boolean {
    return !this.quote && !this.block && !this.lineComment && !this.opening;
  }
}

/**
 * Counts the rows of a `mariadb-dump` as it streams by: every table its `CREATE TABLE` lines
 * make (0 rows until data comes), and each row tuple of the `INSERT INTO \`t\` VALUES (...),(...);`
 * statements between `LOCK TABLES \`t\` WRITE;` and `UNLOCK TABLES;` — the table's data
 * section, so an INSERT inside a trigger or routine body is never counted; no line between
 * `DELIMITER ;;` and `DELIMITER ;` (a routine's or trigger's body: an app's own text, where a
 * `CREATE TABLE \`x\`` line must not make a table the restore would then miss), the end read
 * only where a line starts in the body's code (BodyLexer). A tuple is a `(` at
 * depth 0 outside a quoted string ('...', with backslash escapes and '' doubling); a statement
 * ends at a `;` at depth 0 outside a string, on the same line or later ones (MariaDB 10.11 puts
 * each tuple on a line of its own). Bytes, not text: a dump need not be UTF-8.
 */
export class MysqlDumpCounter implements RowCounter {
  private readonly tables = new Map<string, number>();
  private line: number[] = [];
  /** In an INSERT's values: the table, the parenthesis depth, inside a string, after a backslash. */
  private insert: string | null = null;
  private depth = 0;
  private quoted = false;
  private escaped = false;
  private locked: string | null = null;
  /** Between `DELIMITER ;;` and `DELIMITER ;`: a routine's or trigger's body, none of its lines a table of the dump. */
  private delimited = false;
  private body = new BodyLexer();
  /** The current line began in the body's code (not in one of its strings or comments). */
  private lineInCode = true;
  /** The sql_mode mariadb-dump set last (outside a body): the next body's. */
  private sqlMode = '';

  write(chunk: Buffer): void {
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (this.insert !== null) {
        if (this.quoted) {
          if (this.escaped) this.escaped = false;
          else if (b === BACKSLASH) this.escaped = true;
          else if (b === QUOTE) this.quoted = false;
        } else if (b === QUOTE) this.quoted = true;
        else if (b === OPEN) {
          if (this.depth === 0) this.tables.set(this.insert, (this.tables.get(this.insert) ?? 0) + 1);
          this.depth++;
        } else if (b === CLOSE) this.depth--;
        else if (b === SEMICOLON && this.depth === 0) this.insert = null;
        continue;
      }
      if (this.delimited) this.body.feed(b);
      if ((b === SPACE || b === NL) && this.locked !== null && this.startsInsert()) continue;
      if (b === NL) {
        this.endLine();
        this.lineInCode = !this.delimited || this.body.inCode;
        continue;
      }
      if (this.line.length < KEEP) this.line.push(b);
    }
  }

  /** At a space or a line's end: the line so far reads `INSERT INTO \`t\` VALUES` for the table being dumped. */
  private startsInsert(): boolean {
    const n = this.line.length;
    if (n < 20) return false;
    for (let k = 0; k < VALUES.length; k++) if (this.line[n - VALUES.length + k] !== VALUES[k]) return false;
    // (with its columns named where the table has an INVISIBLE one: mariadb-dump lists them)
    const m = /^INSERT INTO `((?:[^`]|``)+)`(?: \(`(?:[^`]|``)+`(?:, `(?:[^`]|``)+`)*\))? VALUES$/.exec(Buffer.from(this.line).toString('utf8'));
    if (!m || unquote(m[1]!) !== this.locked) return false;
    this.insert = this.locked;
    this.depth = 0;
    this.quoted = false;
    this.escaped = false;
    this.line = [];
    return true;
  }

  private endLine(): void {
    const text = Buffer.from(this.line).toString('utf8');
    this.line = [];
    if (this.delimited) {
      if (this.lineInCode && text.trimEnd() === 'DELIMITER ;') this.delimited = false;
      return;
    }
    const mode = /^\/\*!\d+ SET sql_mode\s*=\s*'([A-Z_,]*)'/.exec(text);
    if (mode) this.sqlMode = mode[1]!;
    if (text.startsWith('DELIMITER ') && text.trimEnd() !== 'DELIMITER ;') {
      this.delimited = true;
      this.body = new BodyLexer(this.sqlMode);
    } else if (text.startsWith('CREATE TABLE `')) {
      const m = ident.exec(text);
      if (m) this.tables.set(unquote(m[1]!), this.tables.get(unquote(m[1]!)) ?? 0);
    } else if (text.startsWith('LOCK TABLES `')) {
      const m = /^LOCK TABLES `((?:[^`]|``)+)` WRITE;$/.exec(text);
      this.locked = m ? unquote(m[1]!) : null;
    } else if (text.startsWith('UNLOCK TABLES;')) this.locked = null;
  }

  counts(): Record<string, number> {
    return Object.fromEntries([...this.tables].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }
}

/** Why these bytes are not a whole mariadb-dump (it ends with its `-- Dump completed` line), or null. */
export function mysqlDumpProblem(_head: Buffer, tail: Buffer, size: number): string | null {
  if (size === 0) return 'the dump is empty';
  const lines = tail.toString('latin1').replace(/\n+$/, '').split('\n');
  if (!lines.at(-1)!.startsWith('-- Dump completed')) return 'the dump does not end with its "-- Dump completed" line: it is truncated';
  return null;
}
