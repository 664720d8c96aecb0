/**
 * The parsed form of a `.virtio` scenario: plain data that the interpreter
 * walks, one statement per source line. Every statement carries its source
 * position so that a line breakpoint, an error or an event in the log can
 * point back at the line that caused it.
 */

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

export type Stmt =
  | RequestStmt
  | { kind: 'batch'; body: RequestStmt[]; loc: Loc }
  | { kind: 'wait'; loc: Loc };

export interface Scenario {
  file: string;
  statements: Stmt[];
}
