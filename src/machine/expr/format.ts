/**
 * Values as text, short enough for a hover, a watch line, an `expect`
 * failure or a logpoint, and logpoint templates ("{expr}").
 *
 * Numbers: integers from 0x10000 up print in hex, smaller ones and
 * negative ones in decimal. Below 0x10000 live the quantities people count
 * (ring indices, which are 16-bit, lengths, sectors, status bytes, flags);
 * from there up are guest addresses and feature masks, which people read in
 * hex. Strings are quoted; an object the machine gives a host or guest
 * address prints as gdb prints a pointer, `(VirtQueue *) 0x7ffff4000000`;
 * arrays and other objects print their first few members.
 */
import { OPTIMIZED_OUT } from '../sim/frames';
import { hex, kernelPtr } from '../sim/pointers';
import { ExprError } from './errors';
import { evaluate, ExprEnv, Value } from './evaluate';
import { parseExpr } from './parse';
import type { Expr } from './ast';

const HEX_FROM = 0x10000;
const MAX_ITEMS = 8;
const MAX_DEPTH = 2;

function formatNumber(n: number): string {
  if (Number.isInteger(n) && n >= HEX_FROM) return '0x' + (Number.isSafeInteger(n) ? n.toString(16) : BigInt(n).toString(16));
  return String(n);
}

function className(o: object): string | null {
  const proto = Object.getPrototypeOf(o);
  if (proto === null || proto === Object.prototype) return null;
  const name = (proto.constructor as { name?: string } | undefined)?.name;
  return name || null;
}

function items(list: string[], total: number): string {
  return total > list.length ? `${list.join(', ')}, … ${total - list.length} more` : list.join(', ');
}

function format(v: unknown, depth: number): string {
  switch (typeof v) {
    case 'number': return formatNumber(v);
    case 'string': return JSON.stringify(v);
    case 'boolean': return v ? 'true' : 'false';
    case 'undefined': return 'undefined';
    case 'bigint': return formatNumber(Number(v));
    case 'function': return '<function>';
    case 'symbol': return v.toString();
    default: break;
  }
  if (v === null) return 'null';
  if (v === OPTIMIZED_OUT) return '<optimized out>';
  const o = v as object;
  const arrayLike = Array.isArray(o) || ArrayBuffer.isView(o);
  if (!arrayLike) {
    // Objects that stand for a QEMU structure or a guest kernel one: a pointer, as gdb prints it.
    const p = o as { ptr?: unknown; kaddr?: unknown };
    const name = className(o);
    if (name && typeof p.ptr === 'number') return `(${name} *) ${hex(p.ptr)}`;
    if (name && typeof p.kaddr === 'number') return `(${name} *) ${kernelPtr(p.kaddr)}`;
  }
  if (depth >= MAX_DEPTH) return arrayLike ? '[…]' : '{…}';
  if (arrayLike) {
    const a = o as ArrayLike<unknown>;
    const shown: string[] = [];
    for (let i = 0; i < Math.min(a.length, MAX_ITEMS); i++) shown.push(format(a[i], depth + 1));
    return `[${items(shown, a.length)}]`;
  }
  if (o instanceof Map) {
    const shown: string[] = [];
    for (const [k, x] of o) {
      if (shown.length === MAX_ITEMS) break;
      shown.push(`${format(k, depth + 1)} => ${format(x, depth + 1)}`);
    }
    return `Map(${o.size}) {${items(shown, o.size)}}`;
  }
  const keys = Object.keys(o);
  const shown: string[] = [];
  for (const k of keys.slice(0, MAX_ITEMS)) {
    const d = Object.getOwnPropertyDescriptor(o, k);
    let x: unknown;
    try {
      x = d?.get ? d.get.call(o) : d?.value;
    } catch (e) {
      x = `<${(e as Error).message}>`;
    }
    shown.push(`${k}: ${format(x, depth + 1)}`);
  }
  const name = className(o);
  return `${name ? name + ' ' : ''}{${items(shown, keys.length)}}`;
}

/** A value as one short line of text (see the file header for the rules). */
export function formatValue(v: Value): string {
  return format(v, 0);
}

type Part = string | { expr: Expr };

/** Parsed templates: a logpoint is formatted every time it is hit. */
const templates = new Map<string, Part[]>();
const MAX_TEMPLATES = 256;

function parseTemplate(template: string): Part[] {
  const parts: Part[] = [];
  let text = '';
  let i = 0;
  while (i < template.length) {
    const c = template[i];
    if ((c === '{' || c === '}') && template[i + 1] === c) {
      text += c;
      i += 2;
    } else if (c === '}') {
      throw new ExprError(i + 1, `unmatched '}' (write '}}' for a brace)`);
    } else if (c === '{') {
      // The expression ends at the first '}' outside a string literal.
      let j = i + 1;
      for (; j < template.length && template[j] !== '}'; j++) {
        if (template[j] === '"') j = skipString(template, j);
      }
      if (j >= template.length) throw new ExprError(i + 1, `unclosed '{' (write '{{' for a brace)`);
      let expr: Expr;
      try {
        expr = parseExpr(template.slice(i + 1, j));
      } catch (e) {
        if (e instanceof ExprError) throw new ExprError(i + 1 + e.col, e.reason);
        throw e;
      }
      if (text) parts.push(text);
      text = '';
      parts.push({ expr });
      i = j + 1;
    } else {
      text += c;
      i++;
    }
  }
  if (text) parts.push(text);
  return parts;
}

/** Index of the closing quote of the string literal that opens at `at` (or the end). */
function skipString(s: string, at: number): number {
  let i = at + 1;
  while (i < s.length && s[i] !== '"') i += s[i] === '\\' ? 2 : 1;
  return i;
}

/**
 * A logpoint's text: each `{expr}` replaced by formatValue of its value,
 * `{{` and `}}` for literal braces. A template that does not parse throws
 * ExprError (column in the template), so a logpoint can be refused when it
 * is set; an expression that fails when evaluated prints `<error: reason>`
 * in its place, so one bad hit does not lose the rest of the line.
 */
export function interpolate(template: string, env: ExprEnv): string {
  let parts = templates.get(template);
  if (parts === undefined) {
    parts = parseTemplate(template);
    if (templates.size >= MAX_TEMPLATES) templates.clear();
    templates.set(template, parts);
  }
  let out = '';
  for (const p of parts) {
    if (typeof p === 'string') {
      out += p;
      continue;
    }
    try {
      out += formatValue(evaluate(p.expr, env));
    } catch (e) {
      if (!(e instanceof ExprError)) throw e;
      out += `<error: ${e.reason}>`;
    }
  }
  return out;
}
