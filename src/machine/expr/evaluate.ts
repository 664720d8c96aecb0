/**
 * Evaluating an expression against an environment: the names a stop (or a
 * scenario line) can see, and guest memory. A tree walk over plain data:
 * conditions run up to a million times a second, so the common cases
 * (small integers, own data properties) take no detours.
 *
 * The value rules, C-like where it matters for virtio:
 * - numbers are JS numbers, integers in practice; `/` and `%` truncate when
 *   both sides are integers (C); dividing by zero is an error;
 * - `& | ^ ~ << >>` work on integers of any width, two's complement, so
 *   feature masks above bit 31 are exact (`1 << 32` is 4294967296, not 1);
 *   exact, that is, as long as the value fits a double (53 significant
 *   bits), as every feature word, address and index of the machine does;
 * - booleans count as 0 and 1 in arithmetic and comparisons; `+` also
 *   joins two strings; `==` compares numbers by value and anything else by
 *   identity, with null == undefined;
 * - `&&`, `||` and `?:` short-circuit and `&&`/`||` give booleans;
 * - `a.b` and `a[i]` read own data properties (and own getters) of objects,
 *   arrays and typed arrays, entries of a Map, characters of a string — never
 *   functions, never `__proto__`, `constructor` or `prototype`.
 */
import type { GuestMemory } from '../memory/guest-memory';
import { OPTIMIZED_OUT } from '../sim/frames';
import { Builtin, Expr, FORBIDDEN_MEMBERS } from './ast';
import { ExprError } from './errors';

export type Value = number | string | boolean | null | undefined | object;

/** What an expression can see: names (undefined: no such name) and, for u8/le16/le32/le64, guest memory. */
export interface ExprEnv {
  lookup(name: string): Value | undefined;
  readonly mem?: GuestMemory;
}

function err(at: number, reason: string): never {
  throw new ExprError(at + 1, reason);
}

/** C truthiness, extended to the other values: false, 0, NaN, "", null and undefined are false. */
export function truthy(v: Value): boolean {
  return !!v;
}

function kindOf(v: Value): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (v === OPTIMIZED_OUT) return '<optimized out>';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  return `a ${typeof v}`;
}

/** A number for arithmetic: numbers as they are, booleans as 0/1. */
function num(v: Value, at: number, op: string): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  return err(at, `'${op}' needs numbers, got ${kindOf(v)}`);
}

function int(v: Value, at: number, op: string): number {
  const n = num(v, at, op);
  if (!Number.isInteger(n)) err(at, `'${op}' needs integers, got ${n}`);
  return n;
}

const INT32_MIN = -0x8000_0000;
const INT32_MAX = 0x7fff_ffff;
const isI32 = (n: number) => n >= INT32_MIN && n <= INT32_MAX;

/** & | ^ on integers of any width: JS's own operators when both fit in 32 bits, BigInt otherwise. */
function bitwise(op: '&' | '|' | '^', a: number, b: number): number {
  if (isI32(a) && isI32(b)) return op === '&' ? a & b : op === '|' ? a | b : a ^ b;
  const x = BigInt(a);
  const y = BigInt(b);
  return Number(op === '&' ? x & y : op === '|' ? x | y : x ^ y);
}

function shiftCount(n: number, at: number): number {
  if (n < 0 || n > 63) err(at, `shift count ${n} is out of range (0 to 63)`);
  return n;
}

function equal(a: Value, b: Value): boolean {
  if ((typeof a === 'number' || typeof a === 'boolean') && (typeof b === 'number' || typeof b === 'boolean')) {
    return Number(a) === Number(b);
  }
  if (a === undefined) a = null;
  if (b === undefined) b = null;
  return a === b;
}

function compare(op: string, a: Value, b: Value, at: number): boolean {
  let x: number | string;
  let y: number | string;
  if (typeof a === 'string' && typeof b === 'string') {
    x = a;
    y = b;
  } else {
    x = num(a, at, op);
    y = num(b, at, op);
  }
  switch (op) {
    case '<': return x < y;
    case '<=': return x <= y;
    case '>': return x > y;
    default: return x >= y;
  }
}

function binary(e: Extract<Expr, { kind: 'binary' }>, env: ExprEnv): Value {
  const op = e.op;
  const at = e.opStart;
  if (op === '&&') return truthy(evaluate(e.left, env)) && truthy(evaluate(e.right, env));
  if (op === '||') return truthy(evaluate(e.left, env)) || truthy(evaluate(e.right, env));
  const a = evaluate(e.left, env);
  const b = evaluate(e.right, env);
  switch (op) {
    case '==': return equal(a, b);
    case '!=': return !equal(a, b);
    case '<': case '<=': case '>': case '>=': return compare(op, a, b, at);
    case '+':
      if (typeof a === 'string' && typeof b === 'string') return a + b;
      return num(a, at, op) + num(b, at, op);
    case '-': return num(a, at, op) - num(b, at, op);
    case '*': return num(a, at, op) * num(b, at, op);
    case '/': case '%': {
      const x = num(a, at, op);
      const y = num(b, at, op);
      if (y === 0) err(at, op === '/' ? 'division by zero' : 'remainder by zero');
      if (op === '%') return x % y;
      return Number.isInteger(x) && Number.isInteger(y) ? Math.trunc(x / y) : x / y;
    }
    case '<<': return int(a, at, op) * 2 ** shiftCount(int(b, at, op), e.right.start);
    case '>>': return Math.floor(int(a, at, op) / 2 ** shiftCount(int(b, at, op), e.right.start));
    case '&': case '|': case '^': return bitwise(op, int(a, at, op), int(b, at, op));
  }
}

/** Normalise what a property holds into a Value; functions and symbols are not data. */
function dataValue(v: unknown, what: string, at: number): Value {
  switch (typeof v) {
    case 'function': return err(at, `${what} is a function; only data can be read`);
    case 'symbol': return err(at, `${what} is a symbol; only data can be read`);
    case 'bigint': return Number(v);
    default: return v as Value;
  }
}

const hasOwn = Object.prototype.hasOwnProperty;

/**
 * An own data property or own getter of `obj`, or MISSING. Reading through
 * `obj[key]` after the own-property test calls an own getter and returns an
 * own value without allocating a property descriptor: the hot path.
 */
function ownProperty(obj: object, key: string, at: number, what: string): Value | typeof MISSING {
  if (!hasOwn.call(obj, key)) return MISSING;
  return dataValue((obj as Record<string, unknown>)[key], what, at);
}
const MISSING = Symbol('missing');

function typeName(obj: object): string {
  if (Array.isArray(obj)) return 'the array';
  const proto = Object.getPrototypeOf(obj);
  const name = proto && proto !== Object.prototype ? (proto.constructor as { name?: string } | undefined)?.name : undefined;
  return name ? name : 'the object';
}

function member(obj: Value, name: string, at: number): Value {
  if (FORBIDDEN_MEMBERS.has(name)) err(at, `member '${name}' is not data and cannot be read`);
  if (obj === OPTIMIZED_OUT) err(at, `cannot read '${name}': the value is <optimized out>`);
  if (obj === null || obj === undefined || typeof obj !== 'object') {
    if (typeof obj === 'string' && name === 'length') return obj.length;
    return err(at, `cannot read member '${name}' of ${kindOf(obj)}`);
  }
  const v = ownProperty(obj, name, at, `'${name}'`);
  if (v === MISSING) return err(at, `${typeName(obj)} has no member '${name}'`);
  return v;
}

function lengthOf(v: object): number | undefined {
  if (ArrayBuffer.isView(v)) return (v as unknown as { length: number }).length;
  if (Array.isArray(v)) return v.length;
  return undefined;
}

function index(obj: Value, i: Value, at: number, iat: number): Value {
  if (obj === OPTIMIZED_OUT) err(at, 'cannot index: the value is <optimized out>');
  if (typeof obj === 'string') {
    const n = int(i, iat, '[]');
    if (n < 0 || n >= obj.length) err(iat, `index ${n} out of range (length ${obj.length})`);
    return obj[n];
  }
  if (obj === null || obj === undefined || typeof obj !== 'object') return err(at, `cannot index ${kindOf(obj)}`);
  if (obj instanceof Map) {
    if (typeof i !== 'number' && typeof i !== 'string') err(iat, `a map key must be a number or a string, got ${kindOf(i)}`);
    if (!obj.has(i)) err(iat, `no entry ${typeof i === 'string' ? JSON.stringify(i) : i} in the map`);
    return dataValue(obj.get(i), `entry ${String(i)}`, iat);
  }
  const n = lengthOf(obj);
  if (n !== undefined) {
    const k = int(i, iat, '[]');
    if (k < 0 || k >= n) err(iat, `index ${k} out of range (length ${n})`);
    // An index inside the bounds of an array or typed array is its own element (a hole reads undefined).
    return dataValue((obj as unknown as Record<number, unknown>)[k], `element ${k}`, iat);
  }
  if (typeof i !== 'string') return err(iat, `an object is indexed by a member name (a string), got ${kindOf(i)}`);
  return member(obj, i, iat);
}

function hexText(n: number): string {
  return n < 0 ? '-0x' + BigInt(-n).toString(16) : '0x' + BigInt(n).toString(16);
}

const WIDTH: Record<'u8' | 'le16' | 'le32' | 'le64', number> = { u8: 1, le16: 2, le32: 4, le64: 8 };

function call(fn: Builtin, arg: Value, at: number, env: ExprEnv): Value {
  switch (fn) {
    case 'len':
      if (typeof arg === 'string') return arg.length;
      if (arg instanceof Map) return arg.size;
      if (arg !== null && typeof arg === 'object' && arg !== OPTIMIZED_OUT) {
        const n = lengthOf(arg);
        if (n !== undefined) return n;
      }
      return err(at, `len() needs an array or a string, got ${kindOf(arg)}`);
    case 'hex':
      return hexText(int(arg, at, 'hex'));
    default: {
      const width = WIDTH[fn];
      const addr = int(arg, at, fn);
      const mem = env.mem;
      if (!mem) return err(at, `${fn}() has no guest memory to read here`);
      if (addr < 0 || !mem.valid(addr, width)) {
        return err(at, `${fn}(${hexText(addr)}): address outside guest RAM (${hexText(mem.base)} to ${hexText(mem.base + mem.size)})`);
      }
      switch (width) {
        case 1: return mem.read8(addr);
        case 2: return mem.read16(addr);
        case 4: return mem.read32(addr);
        default: return mem.read64(addr);
      }
    }
  }
}

/** The value of `e` in `env`; throws ExprError (with the column of the failing part) when it has none. */
export function evaluate(e: Expr, env: ExprEnv): Value {
  switch (e.kind) {
    case 'number':
    case 'string':
    case 'const':
      return e.value;
    case 'name': {
      let v: Value | undefined;
      try {
        v = env.lookup(e.name);
      } catch (x) {
        // An environment that cannot produce a value says why; the column is the name's.
        if (x instanceof ExprError && x.col === 0) throw new ExprError(e.start + 1, x.reason);
        throw x;
      }
      if (v === undefined) err(e.start, `unknown name '${e.name}'`);
      return v;
    }
    case 'unary': {
      const v = evaluate(e.operand, env);
      if (e.op === '!') return !truthy(v);
      if (e.op === '-') return -num(v, e.start, '-');
      const n = int(v, e.start, '~');
      return isI32(n) ? ~n : Number(~BigInt(n));
    }
    case 'binary':
      return binary(e, env);
    case 'cond':
      return truthy(evaluate(e.test, env)) ? evaluate(e.then, env) : evaluate(e.else, env);
    case 'member': {
      const obj = evaluate(e.object, env);
      try {
        return member(obj, e.name, e.nameStart);
      } catch (x) {
        throw positioned(x, e.nameStart);
      }
    }
    case 'index': {
      const obj = evaluate(e.object, env);
      const i = evaluate(e.index, env);
      try {
        return index(obj, i, e.start, e.index.start);
      } catch (x) {
        throw positioned(x, e.index.start);
      }
    }
    case 'call': {
      const arg = evaluate(e.args[0], env);
      try {
        return call(e.fn, arg, e.start, env);
      } catch (x) {
        throw positioned(x, e.start);
      }
    }
  }
}

/** Errors raised by the machine's own getters carry no column: give them the column of the access. */
function positioned(x: unknown, at: number): unknown {
  return x instanceof ExprError && x.col === 0 ? new ExprError(at + 1, x.reason) : x;
}
