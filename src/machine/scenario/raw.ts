/**
 * Parsing the raw statements of the `.virtio` language (DESIGN.md, "Raw
 * statements") and `expect`. With raw statements a scenario is a driver of
 * its own, correct or deliberately wrong: it allocates buffers, writes
 * descriptors and ring entries byte by byte, and kicks the device.
 *
 *   queue N                      the queue the statements below act on (default 0)
 *   buf NAME SIZE                allocate SIZE zeroed bytes; NAME is their address
 *   mem ADDR VALUE...            u8:N le16:N le32:N le64:N "text" hex:00ff, one after another
 *   desc I addr=A len=L flags=F next=N [table=ADDR]   (flags: NEXT|WRITE|INDIRECT or a number)
 *   avail HEAD                   avail.ring[avail.idx % num] = HEAD; avail.idx += 1
 *   avail-idx N   avail-flags N   used-event N
 *   notify                       write QueueNotify for the queue
 *   expect EXPR                  check an expression (src/machine/expr) at this point
 *
 * Values are checked against the width of the field they fill; whether an
 * address lies in guest RAM is known only when the statement runs.
 */
import type { AddrRef, MemValue, Stmt } from './ast';
import { Args, NUMBER, describe, tokenBytes } from './lexer';
import { ScenarioError } from './errors';
import { parseExpr } from '../expr/parse';
import { ExprError } from '../expr/errors';
import { VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE } from '../spec/virtio';

const U16 = 0xffffn;
const U32 = 0xffff_ffffn;
const U64 = 0xffff_ffff_ffff_ffffn;
/** The most a single `buf` may take: a quarter of the default guest RAM. */
const MAX_BUF = 16 * 1024 * 1024;
/** virtio-mmio selects queues with a 32-bit register; QEMU has at most 1024 (VIRTIO_QUEUE_MAX). */
const MAX_QUEUE = 1023;
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const FLAG_NAMES: Record<string, number> = { NEXT: VRING_DESC_F_NEXT, WRITE: VRING_DESC_F_WRITE, INDIRECT: VRING_DESC_F_INDIRECT };

/** A non-negative integer (decimal or 0x hex) no larger than `max`; `col` is where `text` starts. */
function bigValue(a: Args, text: string, col: number, max: bigint, what: string): bigint {
  if (text === '') a.fail(col, `missing value for ${what}`);
  if (!NUMBER.test(text)) a.fail(col, `${what} must be a non-negative integer (decimal or 0x hex), found '${text}'`);
  const v = BigInt(text);
  if (v > max) {
    const bits = max.toString(2);
    const limit = [8, 16, 32, 64].includes(bits.length) && /^1+$/.test(bits) ? `it is a ${bits.length}-bit field` : `at most ${max}`;
    a.fail(col, `${what} ${text} is too large (${limit})`);
  }
  return v;
}

function smallValue(a: Args, name: string, max: bigint): number {
  const t = a.take(name);
  if (t.kind !== 'word') a.fail(t.col, `${name} must be a non-negative integer, found ${describe(t)}`);
  return Number(bigValue(a, t.text, t.col, max, name));
}

/** ADDR: a number, a name, or name+offset. */
function addrRef(a: Args, text: string, col: number, what: string): AddrRef {
  if (text === '') a.fail(col, `missing value for ${what}`);
  const plus = text.indexOf('+');
  const head = plus < 0 ? text : text.slice(0, plus);
  if (NUMBER.test(head) && plus < 0) return { name: null, offset: bigValue(a, head, col, U64, what), col, text };
  if (!NAME.test(head)) {
    a.fail(col, `${what} must be a number, a buf name or NAME+OFFSET, found '${text}'`);
  }
  const offset = plus < 0 ? 0n : bigValue(a, text.slice(plus + 1), col + plus + 1, U64, `the offset of ${what}`);
  return { name: head, offset, col, text };
}

/** F: NEXT|WRITE|INDIRECT names or numbers, joined by '|'. */
function descFlags(a: Args, text: string, col: number): number {
  if (text === '') a.fail(col, 'missing value for flags');
  let flags = 0;
  let at = col;
  for (const part of text.split('|')) {
    if (part in FLAG_NAMES) flags |= FLAG_NAMES[part];
    else if (NUMBER.test(part)) flags |= Number(bigValue(a, part, at, U16, 'flags'));
    else {
      const hint = part.toUpperCase() in FLAG_NAMES ? ` (flag names are upper case: ${part.toUpperCase()})` : ' (NEXT, WRITE, INDIRECT or a number)';
      a.fail(at, `unknown flag '${part}'${hint}`);
    }
    at += part.length + 1;
  }
  return flags;
}

function memValue(a: Args): MemValue {
  const t = a.take('VALUE');
  const bytes = tokenBytes(a, t, 'VALUE');
  if (bytes !== null) {
    if (bytes.length === 0) a.fail(t.col, 'an empty string writes nothing');
    return { kind: 'bytes', bytes, col: t.col };
  }
  const m = t.kind === 'word' ? /^(u8|le16|le32|le64):(.*)$/.exec(t.text) : null;
  if (m === null) a.fail(t.col, `VALUE must be u8:N, le16:N, le32:N, le64:N, "text" or hex:..., found ${describe(t)}`);
  const width = ({ u8: 1, le16: 2, le32: 4, le64: 8 } as const)[m[1] as 'u8' | 'le16' | 'le32' | 'le64'];
  const max = (1n << BigInt(width * 8)) - 1n;
  return { kind: 'int', width, value: bigValue(a, m[2], t.col + m[1].length + 1, max, `${m[1]} value`), col: t.col };
}

type Parse = (a: Args) => Stmt;

function parseDesc(a: Args): Stmt {
  const iTok = a.take('I');
  if (iTok.kind !== 'word') a.fail(iTok.col, `I must be a descriptor index, found ${describe(iTok)}`);
  const index = Number(bigValue(a, iTok.text, iTok.col, U16, 'I'));
  const seen = new Set<string>();
  let addr: AddrRef = { name: null, offset: 0n, col: iTok.col, text: '0' };
  let len = 0;
  let flags = 0;
  let next = 0;
  let table: AddrRef | null = null;
  for (let t = a.peek(); t; t = a.peek()) {
    a.take('KEY=VALUE');
    const eq = t.kind === 'word' ? t.text.indexOf('=') : -1;
    if (eq <= 0) a.fail(t.col, `expected KEY=VALUE (addr=, len=, flags=, next=, table=), found ${describe(t)}`);
    const key = t.text.slice(0, eq);
    const value = t.text.slice(eq + 1);
    const vcol = t.col + eq + 1;
    if (seen.has(key)) a.fail(t.col, `${key}= given twice`);
    seen.add(key);
    switch (key) {
      case 'addr': addr = addrRef(a, value, vcol, 'addr'); break;
      case 'len': len = Number(bigValue(a, value, vcol, U32, 'len')); break;
      case 'flags': flags = descFlags(a, value, vcol); break;
      case 'next': next = Number(bigValue(a, value, vcol, U16, 'next')); break;
      case 'table': table = addrRef(a, value, vcol, 'table'); break;
      default: a.fail(t.col, `unknown key '${key}' (known: addr, len, flags, next, table)`);
    }
  }
  return { kind: 'desc', index, indexCol: iTok.col, addr, len, flags, next, table, loc: a.end() };
}

function parseExpect(a: Args): Stmt {
  const t = a.take('EXPR');
  let expr;
  try {
    expr = parseExpr(t.text);
  } catch (e) {
    if (e instanceof ExprError) throw new ScenarioError(a.loc.file, a.loc.line, t.col + e.col - 1, `expect: ${e.reason}`);
    throw e;
  }
  return { kind: 'expect', expr, source: t.text, col: t.col, loc: a.end() };
}

/** Raw statements and `expect`, by keyword, with their usage. */
export const RAW_STATEMENTS = new Map<string, { usage: string; parse: Parse }>([
  ['queue', {
    usage: 'queue N',
    parse: (a) => {
      const index = smallValue(a, 'N', BigInt(MAX_QUEUE));
      return { kind: 'queue', index, loc: a.end() };
    },
  }],
  ['buf', {
    usage: 'buf NAME SIZE',
    parse: (a) => {
      const n = a.take('NAME');
      if (n.kind !== 'word' || !NAME.test(n.text)) a.fail(n.col, `NAME must be a name (letters, digits, _), found ${describe(n)}`);
      const { value: size, tok } = a.number('SIZE');
      if (size === 0) a.fail(tok.col, 'SIZE must be greater than 0');
      if (size > MAX_BUF) a.fail(tok.col, `SIZE must be at most ${MAX_BUF}, got ${tok.text}`);
      return { kind: 'buf', name: n.text, nameCol: n.col, size, loc: a.end() };
    },
  }],
  ['mem', {
    usage: 'mem ADDR VALUE... (u8:N le16:N le32:N le64:N "text" hex:...)',
    parse: (a) => {
      const t = a.take('ADDR');
      if (t.kind !== 'word') a.fail(t.col, `ADDR must be a number, a buf name or NAME+OFFSET, found ${describe(t)}`);
      const addr = addrRef(a, t.text, t.col, 'ADDR');
      const values = [memValue(a)];
      while (a.peek()) values.push(memValue(a));
      return { kind: 'mem', addr, values, loc: a.end() };
    },
  }],
  ['desc', { usage: 'desc I addr=A len=L flags=F next=N [table=ADDR]', parse: parseDesc }],
  ['avail', { usage: 'avail HEAD', parse: (a) => ({ kind: 'avail', head: smallValue(a, 'HEAD', U16), loc: a.end() }) }],
  ['avail-idx', { usage: 'avail-idx N', parse: (a) => ({ kind: 'avail-idx', value: smallValue(a, 'N', U16), loc: a.end() }) }],
  ['avail-flags', { usage: 'avail-flags N', parse: (a) => ({ kind: 'avail-flags', value: smallValue(a, 'N', U16), loc: a.end() }) }],
  ['used-event', { usage: 'used-event N', parse: (a) => ({ kind: 'used-event', value: smallValue(a, 'N', U16), loc: a.end() }) }],
  ['notify', { usage: 'notify', parse: (a) => ({ kind: 'notify', loc: a.end() }) }],
  ['expect', { usage: 'expect EXPR', parse: parseExpect }],
]);
