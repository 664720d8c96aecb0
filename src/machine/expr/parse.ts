/**
 * Reading an expression: a small C-like grammar, turned into the plain data
 * of ast.ts. Nothing is evaluated here and nothing in the text can become
 * code: names are looked up later in an environment, member names that
 * reach JavaScript's object machinery are refused, and only the built-ins
 * can be called.
 *
 * Precedence, loosest first, as in C:
 *   ?:   ||   &&   |   ^   &   == !=   < <= > >=   << >>   + -   * / %
 *   unary ! - ~   postfix . [] ()
 * (so `a & 4 == 4` is `a & (4 == 4)`, as a C programmer expects).
 */
import { BUILTINS, BinaryOp, Builtin, Expr, FORBIDDEN_MEMBERS, UnaryOp } from './ast';
import { ExprError } from './errors';

type Tok =
  | { t: 'num'; v: number; s: number; e: number }
  | { t: 'str'; v: string; s: number; e: number }
  | { t: 'id'; v: string; s: number; e: number }
  | { t: 'op'; v: string; s: number; e: number }
  | { t: 'eof'; v: ''; s: number; e: number };

const OPS2 = new Set(['<<', '>>', '<=', '>=', '==', '!=', '&&', '||']);
const OPS1 = new Set(['+', '-', '*', '/', '%', '<', '>', '!', '~', '&', '^', '|', '?', ':', '(', ')', '[', ']', '.', ',']);
const ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', '0': '\0', '\\': '\\', '"': '"', "'": "'" };
const ID_START = /[A-Za-z_]/;
const ID_CHAR = /[A-Za-z0-9_]/;
const DIGIT = /[0-9]/;
/** Deeper nesting than this is a mistake (or an attack on the stack), not an expression. */
const MAX_DEPTH = 200;

function fail(at: number, reason: string): never {
  throw new ExprError(at + 1, reason);
}

function lex(text: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === ' ' || c === '\t' || c === '\r' || c === '\n') {
      i++;
    } else if (DIGIT.test(c)) {
      const s = i;
      const hex = c === '0' && (text[i + 1] === 'x' || text[i + 1] === 'X');
      i += hex ? 2 : 0;
      while (i < text.length && ID_CHAR.test(text[i])) i++;
      const word = text.slice(s, i);
      if (!(hex ? /^0[xX][0-9a-fA-F]+$/ : /^[0-9]+$/).test(word)) fail(s, `bad number '${word}'`);
      if (!hex && word.length > 1 && word[0] === '0') fail(s, `'${word}': a leading 0 means octal in C; write ${Number(word)} or 0x${Number(word).toString(16)}`);
      const v = Number(BigInt(word));
      if (!Number.isSafeInteger(v)) fail(s, `number ${word} is too large (integers stop at 2^53; use shifts for feature bits)`);
      out.push({ t: 'num', v, s, e: i });
    } else if (ID_START.test(c)) {
      const s = i;
      while (i < text.length && ID_CHAR.test(text[i])) i++;
      out.push({ t: 'id', v: text.slice(s, i), s, e: i });
    } else if (c === '"') {
      const s = i++;
      let v = '';
      for (;;) {
        if (i >= text.length) fail(s, `unterminated string (missing closing '"')`);
        const d = text[i];
        if (d === '"') break;
        if (d !== '\\') {
          v += d;
          i++;
          continue;
        }
        const x = text[i + 1];
        if (x !== undefined && x in ESCAPES) {
          v += ESCAPES[x];
          i += 2;
        } else if (x === 'x' && /^[0-9a-fA-F]{2}$/.test(text.slice(i + 2, i + 4))) {
          v += String.fromCharCode(parseInt(text.slice(i + 2, i + 4), 16));
          i += 4;
        } else {
          fail(i, `unknown escape '\\${x ?? ''}' (known: \\n \\t \\r \\0 \\\\ \\" \\' \\xNN)`);
        }
      }
      i++;
      out.push({ t: 'str', v, s, e: i });
    } else if (OPS2.has(text.slice(i, i + 2))) {
      out.push({ t: 'op', v: text.slice(i, i + 2), s: i, e: i + 2 });
      i += 2;
    } else if (OPS1.has(c)) {
      out.push({ t: 'op', v: c, s: i, e: i + 1 });
      i++;
    } else if (c === '=') {
      fail(i, `'=' assigns in C; an expression only compares: use '=='`);
    } else {
      fail(i, `unexpected character '${c}'`);
    }
  }
  out.push({ t: 'eof', v: '', s: text.length, e: text.length });
  return out;
}

const PREC: Record<string, number> = {
  '||': 1, '&&': 2, '|': 3, '^': 4, '&': 5, '==': 6, '!=': 6,
  '<': 7, '<=': 7, '>': 7, '>=': 7, '<<': 8, '>>': 8, '+': 9, '-': 9, '*': 10, '/': 10, '%': 10,
};

function show(t: Tok): string {
  if (t.t === 'eof') return 'the end of the expression';
  if (t.t === 'str') return 'a string';
  return `'${t.v}'`;
}

class Parser {
  private i = 0;
  private depth = 0;

  constructor(private readonly toks: Tok[]) {}

  private get tok(): Tok {
    return this.toks[this.i];
  }

  private isOp(v: string): boolean {
    const t = this.tok;
    return t.t === 'op' && t.v === v;
  }

  private expectOp(v: string, what: string): Tok {
    const t = this.tok;
    if (t.t !== 'op' || t.v !== v) fail(t.s, `expected '${v}' ${what}, found ${show(t)}`);
    this.i++;
    return t;
  }

  private nest(): void {
    if (++this.depth > MAX_DEPTH) fail(this.tok.s, 'expression nested too deeply');
  }

  whole(): Expr {
    if (this.tok.t === 'eof') fail(0, 'empty expression');
    const e = this.cond();
    const t = this.toks[this.i];
    if (t.t !== 'eof') fail(t.s, `unexpected ${show(t)} after a complete expression`);
    return e;
  }

  private cond(): Expr {
    this.nest();
    const test = this.binary(1);
    let e = test;
    if (this.isOp('?')) {
      this.i++;
      const then = this.cond();
      this.expectOp(':', "after the '?' branch");
      const els = this.cond();
      e = { kind: 'cond', test, then, else: els, start: test.start, end: els.end };
    }
    this.depth--;
    return e;
  }

  private binary(min: number): Expr {
    let left = this.unary();
    for (;;) {
      const t = this.tok;
      const prec = t.t === 'op' ? PREC[t.v] : undefined;
      if (prec === undefined || prec < min) return left;
      this.i++;
      this.nest();
      const right = this.binary(prec + 1);
      this.depth--;
      left = { kind: 'binary', op: t.v as BinaryOp, left, right, opStart: t.s, start: left.start, end: right.end };
    }
  }

  private unary(): Expr {
    const t = this.tok;
    if (t.t === 'op' && (t.v === '!' || t.v === '-' || t.v === '~')) {
      this.i++;
      this.nest();
      const operand = this.unary();
      this.depth--;
      return { kind: 'unary', op: t.v as UnaryOp, operand, start: t.s, end: operand.end };
    }
    return this.postfix();
  }

  private postfix(): Expr {
    let e = this.primary();
    for (;;) {
      const t = this.tok;
      if (t.t !== 'op') return e;
      if (t.v === '.') {
        this.i++;
        const n = this.tok;
        if (n.t !== 'id') fail(n.s, `expected a member name after '.', found ${show(n)}`);
        if (FORBIDDEN_MEMBERS.has(n.v)) fail(n.s, `member '${n.v}' is not data and cannot be read`);
        this.i++;
        e = { kind: 'member', object: e, name: n.v, nameStart: n.s, start: e.start, end: n.e };
      } else if (t.v === '[') {
        this.i++;
        this.nest();
        const index = this.cond();
        this.depth--;
        const close = this.expectOp(']', 'to close the index');
        e = { kind: 'index', object: e, index, start: e.start, end: close.e };
      } else if (t.v === '(') {
        e = this.call(e, t);
      } else {
        return e;
      }
    }
  }

  private call(callee: Expr, open: Tok): Expr {
    if (callee.kind !== 'name') fail(open.s, `only the built-in functions (${BUILTINS.join(', ')}) can be called`);
    const fn = callee.name;
    if (!(BUILTINS as readonly string[]).includes(fn)) {
      fail(callee.start, `'${fn}' is not a built-in function (the built-ins: ${BUILTINS.join(', ')})`);
    }
    this.i++;
    const args: Expr[] = [];
    if (!this.isOp(')')) {
      for (;;) {
        this.nest();
        args.push(this.cond());
        this.depth--;
        if (!this.isOp(',')) break;
        this.i++;
      }
    }
    const close = this.expectOp(')', `to close the call of ${fn}`);
    if (args.length !== 1) fail(callee.start, `${fn} takes 1 argument, got ${args.length}`);
    return { kind: 'call', fn: fn as Builtin, args, start: callee.start, end: close.e };
  }

  private primary(): Expr {
    const t = this.tok;
    switch (t.t) {
      case 'num':
        this.i++;
        return { kind: 'number', value: t.v, start: t.s, end: t.e };
      case 'str':
        this.i++;
        return { kind: 'string', value: t.v, start: t.s, end: t.e };
      case 'id':
        this.i++;
        if (t.v === 'true' || t.v === 'false') return { kind: 'const', value: t.v === 'true', start: t.s, end: t.e };
        if (t.v === 'null') return { kind: 'const', value: null, start: t.s, end: t.e };
        return { kind: 'name', name: t.v, start: t.s, end: t.e };
      case 'op':
        if (t.v === '(') {
          this.i++;
          this.nest();
          const inner = this.cond();
          this.depth--;
          const close = this.expectOp(')', "to close '('");
          // The parentheses belong to the span: an error or a quote covers them.
          return { ...inner, start: t.s, end: close.e };
        }
        break;
      default:
        break;
    }
    const prev = this.i > 0 ? this.toks[this.i - 1] : null;
    if (prev !== null && prev.t === 'op') {
      return fail(t.s, `expected an expression after '${prev.v}'${t.t === 'eof' ? '' : `, found ${show(t)}`}`);
    }
    return fail(t.s, `expected an expression, found ${show(t)}`);
  }
}

/** Parse `text` into an Expr; throws ExprError with the 1-based column of the problem. */
export function parseExpr(text: string): Expr {
  return new Parser(lex(text)).whole();
}

/**
 * Where an expression that starts at `from` ends on a line of a file that
 * uses `#` for comments: the first `#` outside a string literal, else the
 * end. The `.virtio` reader uses it to cut `expect` lines.
 */
export function exprEnd(line: string, from: number): number {
  for (let i = from; i < line.length; i++) {
    const c = line[i];
    if (c === '#') return i;
    if (c === '"') {
      for (i++; i < line.length && line[i] !== '"'; i++) if (line[i] === '\\') i++;
    }
  }
  return line.length;
}
