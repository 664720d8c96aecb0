/**
 * The parsed form of an expression: `expect` lines now, and breakpoint
 * conditions, watch, hover, evaluate and logpoints in the debugger. Plain
 * data (never code); every node keeps the half-open range [start, end) of
 * its source text (0-based), so an error can point at a column and a caller
 * can quote a sub-expression (`used.idx` in "used.idx = 3").
 */

/** Where a node sits in the expression text: 0-based, `end` exclusive. */
export interface Span {
  readonly start: number;
  readonly end: number;
}

export type UnaryOp = '!' | '-' | '~';
export type BinaryOp =
  | '*' | '/' | '%' | '+' | '-' | '<<' | '>>'
  | '<' | '<=' | '>' | '>='
  | '==' | '!=' | '&' | '^' | '|' | '&&' | '||';

/** The only functions an expression can call: guest memory readers and two helpers. */
export type Builtin = 'u8' | 'le16' | 'le32' | 'le64' | 'len' | 'hex';
export const BUILTINS: readonly Builtin[] = ['u8', 'le16', 'le32', 'le64', 'len', 'hex'];

export interface NumberExpr extends Span { readonly kind: 'number'; readonly value: number }
export interface StringExpr extends Span { readonly kind: 'string'; readonly value: string }
/** `true`, `false`, `null`. */
export interface ConstExpr extends Span { readonly kind: 'const'; readonly value: boolean | null }
export interface NameExpr extends Span { readonly kind: 'name'; readonly name: string }
export interface UnaryExpr extends Span { readonly kind: 'unary'; readonly op: UnaryOp; readonly operand: Expr }
export interface BinaryExpr extends Span {
  readonly kind: 'binary';
  readonly op: BinaryOp;
  readonly left: Expr;
  readonly right: Expr;
  /** Where the operator is: type errors point at it. */
  readonly opStart: number;
}
export interface CondExpr extends Span { readonly kind: 'cond'; readonly test: Expr; readonly then: Expr; readonly else: Expr }
export interface MemberExpr extends Span {
  readonly kind: 'member';
  readonly object: Expr;
  readonly name: string;
  readonly nameStart: number;
}
export interface IndexExpr extends Span { readonly kind: 'index'; readonly object: Expr; readonly index: Expr }
export interface CallExpr extends Span { readonly kind: 'call'; readonly fn: Builtin; readonly args: readonly Expr[] }

export type Expr =
  | NumberExpr | StringExpr | ConstExpr | NameExpr | UnaryExpr | BinaryExpr
  | CondExpr | MemberExpr | IndexExpr | CallExpr;

/** Member names that would reach JavaScript's object machinery rather than data: refused everywhere. */
export const FORBIDDEN_MEMBERS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/** Every free name the expression reads, in source order, with its position (for checking names before a run). */
export function freeNames(e: Expr): NameExpr[] {
  const out: NameExpr[] = [];
  const walk = (x: Expr): void => {
    switch (x.kind) {
      case 'name': out.push(x); break;
      case 'unary': walk(x.operand); break;
      case 'binary': walk(x.left); walk(x.right); break;
      case 'cond': walk(x.test); walk(x.then); walk(x.else); break;
      case 'member': walk(x.object); break;
      case 'index': walk(x.object); walk(x.index); break;
      case 'call': x.args.forEach(walk); break;
      default: break;
    }
  };
  walk(e);
  return out;
}

/**
 * The sub-expressions worth showing when a condition is false: each name,
 * member/index chain or call that is not itself part of a longer chain
 * (`used.ring[0].len`, not `used.ring`), plus those inside its index
 * expressions and arguments. Literals and operators are left out.
 */
export function references(e: Expr): Expr[] {
  const out: Expr[] = [];
  const isRef = (x: Expr) => x.kind === 'name' || x.kind === 'member' || x.kind === 'index' || x.kind === 'call';
  const inner = (x: Expr): void => {
    // Inside a chain: only index expressions and call arguments hold further references.
    if (x.kind === 'member') inner(x.object);
    else if (x.kind === 'index') { inner(x.object); walk(x.index); }
    else if (x.kind === 'call') x.args.forEach(walk);
  };
  const walk = (x: Expr): void => {
    if (isRef(x)) {
      out.push(x);
      inner(x);
      return;
    }
    if (x.kind === 'unary') walk(x.operand);
    else if (x.kind === 'binary') { walk(x.left); walk(x.right); }
    else if (x.kind === 'cond') { walk(x.test); walk(x.then); walk(x.else); }
  };
  walk(e);
  return out;
}
