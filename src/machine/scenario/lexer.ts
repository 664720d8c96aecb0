/**
 * The lexical layer of the `.virtio` language, shared by the parser of
 * requests (parser.ts) and of raw statements (raw.ts): one source line at a
 * time split into words, quoted strings and braces with their columns, and a
 * cursor over a statement's arguments whose errors name file:line:col.
 *
 * An `expect` line is not split: everything after the keyword up to the
 * comment is one `expr` token, read later by the expression parser, whose
 * string escapes and operators are its own.
 */
import type { Loc } from './ast';
import { ScenarioError } from './errors';
import { exprEnd } from '../expr/parse';

// ---------------------------------------------------------------- tokenizer

export type Token =
  | { kind: 'word'; text: string; col: number; end: number }
  | { kind: 'string'; text: string; bytes: Buffer; col: number; end: number }
  | { kind: '{' | '}'; text: string; col: number; end: number }
  /** The expression of an `expect` line, up to its comment, trimmed. */
  | { kind: 'expr'; text: string; col: number; end: number };

/** One source line that holds a statement. `end` is the column just past its last token. */
export interface Line {
  tokens: Token[];
  loc: Loc;
  end: number;
}

const SPACE = new Set([' ', '\t', '\r', '\f', '\v']);
const SIMPLE_ESCAPES: Record<string, number> = { n: 0x0a, t: 0x09, r: 0x0d, '0': 0x00, '\\': 0x5c, '"': 0x22 };
const HEX_BYTE = /^[0-9a-fA-F]{2}$/;

/** Splits a line into tokens; returns where the comment starts so the caller can trim it off. */
function tokenize(src: string, file: string, line: number): { tokens: Token[]; commentAt: number } {
  const tokens: Token[] = [];
  const fail = (i: number, reason: string): never => {
    throw new ScenarioError(file, line, i + 1, reason);
  };
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (SPACE.has(c)) {
      i++;
    } else if (c === '#') {
      return { tokens, commentAt: i };
    } else if (c === '{' || c === '}') {
      tokens.push({ kind: c, text: c, col: i + 1, end: i + 2 });
      i++;
    } else if (c === '"') {
      const start = i;
      const bytes: Buffer[] = [];
      let run = '';
      // Plain text is kept as UTF-16 and encoded in runs so surrogate pairs stay whole.
      const flush = () => {
        if (run) bytes.push(Buffer.from(run, 'utf8'));
        run = '';
      };
      i++;
      for (;;) {
        if (i >= src.length) fail(start, `unterminated string (missing closing '"')`);
        const d = src[i];
        if (d === '"') break;
        if (d !== '\\') {
          run += d;
          i++;
          continue;
        }
        flush();
        const e = src[i + 1];
        if (e === undefined) fail(start, `unterminated string (missing closing '"')`);
        if (e in SIMPLE_ESCAPES) {
          bytes.push(Buffer.of(SIMPLE_ESCAPES[e]));
          i += 2;
        } else if (e === 'x') {
          const hex = src.slice(i + 2, i + 4);
          if (!HEX_BYTE.test(hex)) fail(i, `bad escape '\\x${hex}': \\x takes exactly two hex digits`);
          bytes.push(Buffer.of(parseInt(hex, 16)));
          i += 4;
        } else {
          fail(i, `unknown escape '\\${e}' (known: \\n \\t \\r \\0 \\\\ \\" \\xNN)`);
        }
      }
      flush();
      i++;
      tokens.push({ kind: 'string', text: src.slice(start, i), bytes: Buffer.concat(bytes), col: start + 1, end: i + 1 });
    } else {
      const start = i;
      while (i < src.length && !SPACE.has(src[i]) && !'#{}"'.includes(src[i])) i++;
      tokens.push({ kind: 'word', text: src.slice(start, i), col: start + 1, end: i + 1 });
    }
  }
  return { tokens, commentAt: src.length };
}

/** `expect EXPR`: the keyword, then the expression as one token (see the file header). */
const EXPECT = /^(\s*)expect(?=\s|$)/;

function tokenizeExpect(src: string, indent: number): { tokens: Token[]; commentAt: number } {
  const kw = indent + 'expect'.length;
  const tokens: Token[] = [{ kind: 'word', text: 'expect', col: indent + 1, end: kw + 1 }];
  const commentAt = exprEnd(src, kw);
  const body = src.slice(kw, commentAt);
  const text = body.trim();
  if (text) {
    const col = kw + body.length - body.trimStart().length + 1;
    tokens.push({ kind: 'expr', text, col, end: col + text.length });
  }
  return { tokens, commentAt };
}

/** Hands out the statement lines of a file one at a time, so a batch can pull its body. */
export class LineReader {
  private readonly lines: string[];
  private next = 0;

  constructor(text: string, readonly file: string) {
    // A BOM is not a column anyone can see in an editor.
    this.lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  }

  read(): Line | undefined {
    while (this.next < this.lines.length) {
      const lineNo = ++this.next;
      const src = this.lines[lineNo - 1];
      const ex = EXPECT.exec(src);
      const { tokens, commentAt } = ex ? tokenizeExpect(src, ex[1].length) : tokenize(src, this.file, lineNo);
      if (tokens.length === 0) continue;
      const text = src.slice(0, commentAt).trim();
      const loc: Loc = { file: this.file, line: lineNo, col: tokens[0].col, text };
      return { tokens, loc, end: tokens[tokens.length - 1].end };
    }
    return undefined;
  }
}

// ---------------------------------------------------------------- arguments

export function describe(t: Token): string {
  return t.kind === 'string' ? `a string ${t.text}` : `'${t.text}'`;
}

const SECTOR_SIZE = 512;
/** discard and write-zeroes carry the sector count in a 32-bit field. */
const MAX_COUNT = 0xffff_ffff;
export const NUMBER = /^(?:0[xX][0-9a-fA-F]+|[0-9]+)$/;

/** A cursor over a statement's arguments; errors carry the keyword as a prefix. */
export class Args {
  private i = 1;

  constructor(readonly line: Line, private readonly usage: string) {}

  get keyword(): string {
    return this.line.tokens[0].text;
  }

  get loc(): Loc {
    return this.line.loc;
  }

  fail(col: number, reason: string): never {
    throw new ScenarioError(this.loc.file, this.loc.line, col, `${this.keyword}: ${reason}`);
  }

  peek(): Token | undefined {
    return this.line.tokens[this.i];
  }

  take(name: string): Token {
    const t = this.line.tokens[this.i];
    if (!t) this.fail(this.line.end, `missing ${name} (usage: ${this.usage})`);
    this.i++;
    return t;
  }

  /** A non-negative integer, decimal or 0x-hex, that a JS number holds exactly. */
  number(name: string): { value: number; tok: Token } {
    const tok = this.take(name);
    if (tok.kind !== 'word' || !NUMBER.test(tok.text)) {
      this.fail(tok.col, `${name} must be a non-negative integer (decimal or 0x hex), found ${describe(tok)}`);
    }
    const big = BigInt(tok.text);
    if (big > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(tok.col, `${name} ${tok.text} is too large`);
    return { value: Number(big), tok };
  }

  sector(): number {
    const { value, tok } = this.number('SECTOR');
    // The device turns the sector into a byte offset; that must stay exact.
    if (!Number.isSafeInteger(value * SECTOR_SIZE)) {
      this.fail(tok.col, `SECTOR ${tok.text} is too large (SECTOR*512 must be below 2^53)`);
    }
    return value;
  }

  count(): number {
    const { value, tok } = this.number('COUNT');
    if (value === 0) this.fail(tok.col, 'COUNT must be greater than 0');
    if (value > MAX_COUNT) this.fail(tok.col, `COUNT must be at most ${MAX_COUNT} (a 32-bit field), got ${tok.text}`);
    return value;
  }

  /** The statement is complete: anything left is a mistake worth pointing at. Returns the loc for the node. */
  end(): Loc {
    const t = this.peek();
    if (t) this.fail(t.col, `unexpected ${describe(t)} after a complete statement (usage: ${this.usage})`);
    return this.loc;
  }
}

/** The bytes of a "quoted string" or hex:... token; null when the token is neither. */
export function tokenBytes(a: Args, tok: Token, what: string): Buffer | null {
  if (tok.kind === 'string') return tok.bytes;
  if (tok.kind !== 'word' || !tok.text.startsWith('hex:')) return null;
  const digits = tok.text.slice(4);
  if (digits.length === 0) a.fail(tok.col, 'hex: needs at least one byte (two hex digits)');
  const bad = digits.search(/[^0-9a-fA-F]/);
  if (bad >= 0) a.fail(tok.col + 4 + bad, `bad hex digit '${digits[bad]}' in ${what}`);
  if (digits.length % 2) a.fail(tok.col, `hex: needs an even number of hex digits, found ${digits.length}`);
  return Buffer.from(digits, 'hex');
}
