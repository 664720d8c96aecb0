/**
 * The parser of the `.virtio` scenario language (DESIGN.md, "The .virtio
 * scenario language"): one statement a line, turned into the plain data of
 * ast.ts. Nothing in a scenario is evaluated; the parser only checks that
 * every value fits what a virtio-blk request can carry, and reports the first
 * problem as a ScenarioError pointing at the offending token.
 *
 * Statements live in two tables keyed by keyword: requests, which may also
 * appear inside a batch, and the rest (batch, wait, and the raw statements
 * and `expect` of raw.ts). A new statement is one more table entry whose
 * handler pulls its arguments from an Args cursor (lexer.ts). Checks that
 * span lines (names, queue ownership) are made afterwards by validate.ts.
 */
import type { RequestStmt, Scenario, Stmt } from './ast';
import { ScenarioError } from './errors';
import { Args, Line, LineReader, describe, tokenBytes } from './lexer';
import { RAW_STATEMENTS } from './raw';
import { validateScenario } from './validate';

const SECTOR_SIZE = 512;
const MAX_DATA = 1024 * 1024;

function writeData(a: Args): { data: Buffer; dataLen: number } {
  const tok = a.take('DATA');
  const raw = tokenBytes(a, tok, 'DATA');
  if (raw === null) return a.fail(tok.col, `DATA must be a "quoted string" or hex:..., found ${describe(tok)}`);
  if (raw.length === 0) a.fail(tok.col, 'DATA must not be empty');
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
  ...RAW_STATEMENTS,
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

/** Parses a whole scenario and checks it (validate.ts); throws ScenarioError at the first problem. */
export function parseScenario(text: string, file: string): Scenario {
  const r = new LineReader(text, file);
  const statements: Stmt[] = [];
  for (let line = r.read(); line; line = r.read()) statements.push(statement(line, r, ANY));
  const scenario = { file, statements };
  validateScenario(scenario);
  return scenario;
}
