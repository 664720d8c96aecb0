/**
 * The parsed form of a `.virtio` scenario: plain data that the interpreter
 * walks, one statement per source line. Every statement carries its source
 * position so that a line breakpoint, an error or an event in the log can
 * point back at the line that caused it.
 *
 * Besides requests (which go through the guest's block layer and driver)
 * there are raw statements, with which the scenario drives a queue as a
 * driver of its own, and `expect`, which checks an expression.
 */
import type { Expr } from '../expr/ast';

export interface Loc {
  file: string;
  /** 1-based. */
  line: number;
  /** 1-based column of the statement's keyword. */
  col: number;
  /** The source line, trimmed, without its comment: what a stop shows. */
  text: string;
}

/** A statement that becomes one virtio-blk request; only these may sit in a batch. */
export type RequestStmt =
  | { kind: 'read'; sector: number; bytes: number; loc: Loc }
  /** `data` is padded with zeros to whole sectors; `dataLen` is what the scenario wrote. */
  | { kind: 'write'; sector: number; data: Buffer; dataLen: number; loc: Loc }
  | { kind: 'flush'; loc: Loc }
  | { kind: 'get-id'; loc: Loc }
  | { kind: 'discard'; sector: number; count: number; loc: Loc }
  | { kind: 'write-zeroes'; sector: number; count: number; unmap: boolean; loc: Loc };

/**
 * An address operand of a raw statement: a number, a name (a `buf`, or a
 * ring base of the current queue: vring_desc, vring_avail, vring_used), or
 * `name+offset`. Resolved when the statement runs (buf addresses and ring
 * bases are known only then). Addresses are 64-bit: a descriptor may point
 * anywhere, on purpose.
 */
export interface AddrRef {
  /** null: a plain number, held in `offset`. */
  name: string | null;
  offset: bigint;
  /** Column of the operand (of its name, when it has one). */
  col: number;
  text: string;
}

export const RING_BASES: readonly string[] = ['vring_desc', 'vring_avail', 'vring_used'];

/** One value of a `mem` statement, written where the previous one ended. */
export type MemValue =
  | { kind: 'int'; width: 1 | 2 | 4 | 8; value: bigint; col: number }
  | { kind: 'bytes'; bytes: Buffer; col: number };

export type RawStmt =
  /** Select the queue the following raw statements act on (and take it from the driver). */
  | { kind: 'queue'; index: number; loc: Loc }
  /** Allocate `size` zeroed bytes of guest memory and bind `name` to their address. */
  | { kind: 'buf'; name: string; nameCol: number; size: number; loc: Loc }
  | { kind: 'mem'; addr: AddrRef; values: MemValue[]; loc: Loc }
  /** Write descriptor `index` of the queue's table, or of the indirect table at `table`. */
  | { kind: 'desc'; index: number; indexCol: number; addr: AddrRef; len: number; flags: number; next: number; table: AddrRef | null; loc: Loc }
  /** avail.ring[avail.idx % num] = head; avail.idx += 1. */
  | { kind: 'avail'; head: number; loc: Loc }
  | { kind: 'avail-idx' | 'avail-flags' | 'used-event'; value: number; loc: Loc }
  /** The vCPU writes the queue's index to QueueNotify. */
  | { kind: 'notify'; loc: Loc };

/** `expect EXPR`: `source` is the expression's text, which starts at column `col` of the line. */
export interface ExpectStmt { kind: 'expect'; expr: Expr; source: string; col: number; loc: Loc }

export type Stmt =
  | RequestStmt
  | { kind: 'batch'; body: RequestStmt[]; loc: Loc }
  | { kind: 'wait'; loc: Loc }
  | RawStmt
  | ExpectStmt;

/** Raw statements that take their queue from the guest driver (`mem` and `buf` do not; nor does `desc ... table=`). */
export function takesQueue(st: Stmt): boolean {
  switch (st.kind) {
    case 'queue': case 'avail': case 'avail-idx': case 'avail-flags': case 'used-event': case 'notify':
      return true;
    case 'desc':
      return st.table === null;
    default:
      return false;
  }
}

export interface Scenario {
  file: string;
  statements: Stmt[];
}
