/**
 * The parser of the `.virtio` scenario language (DESIGN.md, "The .virtio
 * scenario language"): one statement a line, turned into the plain data of
 * ast.ts. Nothing in a scenario is evaluated; the parser only checks that
 * every value fits what a virtio-blk request can carry, and reports the first
 * problem as a ScenarioError pointing at the offending token.
 *
 * Statements live in two tables keyed by keyword: requests, which may also
 * appear inside a batch, and the rest. A new statement is one more table
 * entry whose handler pulls its arguments from an Args cursor.
 */
import type { Loc, RequestStmt, Scenario, Stmt } from './ast';
import { ScenarioError } from './errors';

const SECTOR_SIZE = 512;
const MAX_DATA = 1024 * 1024;
/** discard and write-zeroes carry the sector count in a 32-bit field. */
const MAX_COUNT = 0xffff_ffff;

// ---------------------------------------------------------------- tokenizer

type Token =
  | { kind: 'word'; text: string; col: number; end: number }
  | { kind: 'string'; text: string; bytes: Buffer; col: number; end: number }
  | { kind: '{' | '}'; text: string; col: number; end: number };

/** One source line that holds a statement. `end` is the column just past its last token. */
interface Line {
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

/** Hands out the statement lines of a file one at a time, so a batch can pull its body. */
class LineReader {
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
      const { tokens, commentAt } = tokenize(src, this.file, lineNo);
      if (tokens.length === 0) continue;
      const text = src.slice(0, commentAt).trim();
      const loc: Loc = { file: this.file, line: lineNo, col: tokens[0].col, text };
      return { tokens, loc, end: tokens[tokens.length - 1].end };
    }
    return undefined;
  }
}

// ---------------------------------------------------------------- arguments

function describe(t: Token): string {
  return t.kind === 'string' ? `a string ${t.text}` : `'${t.text}'`;
}

const NUMBER = /^(?:0[xX][0-9a-fA-F]+|[0-9]+)$/;

/** A cursor over a statement's arguments; errors carry the keyword as a prefix. */
class Args {
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

function writeData(a: Args): { data: Buffer; dataLen: number } {
  const tok = a.take('DATA');
  let raw: Buffer;
  if (tok.kind === 'string') {
    raw = tok.bytes;
    if (raw.length === 0) a.fail(tok.col, 'DATA must not be empty');
  } else if (tok.kind === 'word' && tok.text.startsWith('hex:')) {
    const digits = tok.text.slice(4);
    if (digits.length === 0) a.fail(tok.col, 'hex: needs at least one byte (two hex digits)');
    const bad = digits.search(/[^0-9a-fA-F]/);
    if (bad >= 0) a.fail(tok.col + 4 + bad, `bad hex digit '${digits[bad]}' in DATA`);
    if (digits.length % 2) a.fail(tok.col, `hex: needs an even number of hex digits, found ${digits.length}`);
    raw = Buffer.from(digits, 'hex');
  } else {
    a.fail(tok.col, `DATA must be a "quoted string" or hex:..., found ${describe(tok)}`);
  }
  const padded = Math.ceil(raw.length / SECTOR_SIZE) * SECTOR_SIZE;
  if (padded > MAX_DATA) {
    a.fail(tok.col, `DATA is ${padded} bytes once padded to whole sectors; at most ${MAX_DATA}`);
  }
  const data = Buffer.alloc(padded);
  raw.copy(data);
  return { data, dataLen: raw.length };
}

// ---------------------------------------------------------------- statements

interface Def<T> {
  usage: string;
  parse: (a: Args, r: LineReader) => T;
}

/** Each handler consumes its arguments, then calls a.end() before building the node. */
const REQUESTS = new Map<string, Def<RequestStmt>>([
  ['read', {
    usage: 'read SECTOR BYTES',
    parse: (a) => {
      const sector = a.sector();
      const { value: bytes, tok } = a.number('BYTES');
      if (bytes === 0) a.fail(tok.col, 'BYTES must be greater than 0');
      if (bytes % SECTOR_SIZE) a.fail(tok.col, `BYTES must be a multiple of 512, got ${tok.text}`);
      if (bytes > MAX_DATA) a.fail(tok.col, `BYTES must be at most ${MAX_DATA}, got ${tok.text}`);
      a.end();
      return { kind: 'read', sector, bytes, loc: a.loc };
    },
  }],
  ['write', {
    usage: 'write SECTOR "text" | write SECTOR hex:...',
    parse: (a) => {
      const sector = a.sector();
      const { data, dataLen } = writeData(a);
      a.end();
      return { kind: 'write', sector, data, dataLen, loc: a.loc };
    },
  }],
  ['flush', { usage: 'flush', parse: (a) => ({ kind: 'flush', loc: a.end() }) }],
  ['get-id', { usage: 'get-id', parse: (a) => ({ kind: 'get-id', loc: a.end() }) }],
  ['discard', {
    usage: 'discard SECTOR COUNT',
    parse: (a) => {
      const sector = a.sector();
      const count = a.count();
      a.end();
      return { kind: 'discard', sector, count, loc: a.loc };
    },
  }],
  ['write-zeroes', {
    usage: 'write-zeroes SECTOR COUNT [unmap]',
    parse: (a) => {
      const sector = a.sector();
      const count = a.count();
      const flag = a.peek();
      const unmap = flag?.kind === 'word' && flag.text === 'unmap';
      if (unmap) a.take('unmap');
      a.end();
      return { kind: 'write-zeroes', sector, count, unmap, loc: a.loc };
    },
  }],
]);

const STATEMENTS = new Map<string, Def<Stmt>>([
  ['batch', { usage: 'batch {', parse: parseBatch }],
  ['wait', { usage: 'wait', parse: (a) => ({ kind: 'wait', loc: a.end() }) }],
]);

const KEYWORDS = [...REQUESTS.keys(), ...STATEMENTS.keys()];

function parseBatch(a: Args, r: LineReader): Stmt {
  const brace = a.take("'{'");
  if (brace.kind !== '{') a.fail(brace.col, `expected '{', found ${describe(brace)}`);
  const extra = a.peek();
  if (extra) a.fail(extra.col, `unexpected ${describe(extra)} after '{' (the body goes on the lines below, '}' alone on its own line)`);
  const opened = a.loc.line;
  const body: RequestStmt[] = [];
  for (;;) {
    const line = r.read();
    if (!line) a.fail(a.loc.col, `unclosed batch (no '}' before the end of the file)`);
    const head = line.tokens[0];
    if (head.kind === '}') {
      const after = line.tokens[1];
      if (after) {
        throw new ScenarioError(line.loc.file, line.loc.line, after.col,
          `unexpected ${describe(after)} after '}' (the '}' that closes a batch stands alone on its line)`);
      }
      break;
    }
    if (head.kind === 'word' && STATEMENTS.has(head.text)) {
      const inner: Args = new Args(line, '');
      if (head.text === 'batch') inner.fail(head.col, `batches cannot be nested (the batch on line ${opened} is still open)`);
      inner.fail(head.col, `not allowed inside a batch, which holds only requests (close the batch on line ${opened} with '}' first)`);
    }
    body.push(statement(line, r, REQUESTS));
  }
  if (body.length === 0) a.fail(a.loc.col, `empty batch (put at least one request between '{' and '}')`);
  return { kind: 'batch', body, loc: a.loc };
}

function statement<T>(line: Line, r: LineReader, table: Map<string, Def<T>>): T {
  const head = line.tokens[0];
  const fail = (reason: string): never => {
    throw new ScenarioError(line.loc.file, line.loc.line, head.col, reason);
  };
  if (head.kind === '}') fail(`'}' without an open 'batch {'`);
  if (head.kind !== 'word') fail(`expected a statement, found ${describe(head)}`);
  const def = table.get(head.text);
  if (def) return def.parse(new Args(line, def.usage), r);
  const hint = KEYWORDS.includes(head.text.toLowerCase())
    ? `keywords are lower case: did you mean '${head.text.toLowerCase()}'?`
    : `expected one of: ${KEYWORDS.join(', ')}`;
  return fail(`unknown statement '${head.text}' (${hint})`);
}

const ANY = new Map<string, Def<Stmt>>([...REQUESTS, ...STATEMENTS]);

/** Parses a whole scenario; throws ScenarioError at the first problem. */
export function parseScenario(text: string, file: string): Scenario {
  const r = new LineReader(text, file);
  const statements: Stmt[] = [];
  for (let line = r.read(); line; line = r.read()) statements.push(statement(line, r, ANY));
  return { file, statements };
}
