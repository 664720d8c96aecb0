/**
 * Modelled functions and their frames.
 *
 * Every function the machine models (a Linux or QEMU function, or a scenario
 * line) has one `FnDesc`: its real name, its parameter names, and where it is
 * written in `src/machine` (found by the source index at build time, so the
 * line a frame points at is the line of the model's code). A running call is a
 * `Frame` on an `ExecContext`: a thread's own stack or a coroutine's.
 *
 * Frames are pooled per context and their arguments kept raw; formatting them
 * gdb-style happens only when somebody looks (a stop, the event log).
 */
import sourceIndex from './source-index.json';
import { hex, kernelPtr } from './pointers';

export type Side = 'guest' | 'qemu' | 'kvm' | 'scenario';

export interface FnDesc {
  readonly id: number;
  readonly name: string;
  readonly params: readonly string[];
  /** Path of the model's source, relative to the project (src/machine/...). */
  readonly file: string;
  readonly line: number;
  readonly side: Side;
  /** Entered and logged, but not shown in backtraces (gdb cannot see tail calls). */
  readonly hidden: boolean;
}

/** A named step inside a function: "the avail write", "the barrier", ... */
export interface PointDesc {
  readonly id: number;
  readonly name: string;
  readonly fn: FnDesc;
  readonly line: number;
}

/** Printed in place of an argument gdb cannot recover. */
export const OPTIMIZED_OUT = Object.freeze({ optimizedOut: true });

const fns: FnDesc[] = [];
const fnsByName = new Map<string, FnDesc>();
const points: PointDesc[] = [];

type IndexEntry = { file: string; line: number; points?: Record<string, number> };
const index = sourceIndex as Record<string, IndexEntry[]>;

/** Which program a function belongs to, from the top folder of its model source. */
function sideOf(file: string): Side {
  const top = file.replace(/^src\/machine\//, '').split('/')[0];
  if (top === 'linux') return 'guest';
  if (top === 'kvm') return 'kvm';
  if (top === 'scenario') return 'scenario';
  return 'qemu';
}

function locate(name: string, fileHint?: string): IndexEntry {
  const found = index[name] ?? [];
  const hits = fileHint ? found.filter((e) => e.file.endsWith(fileHint)) : found;
  if (hits.length !== 1) {
    throw new Error(
      `modelled function ${name}${fileHint ? ` in ${fileHint}` : ''}: ` +
        `${hits.length} definitions in the source index (run the build to refresh it)`,
    );
  }
  return hits[0];
}

/**
 * Declare a modelled function. `name` must be a `function*` (or `function`)
 * of that name under src/machine; `fileHint` picks one when two files define
 * the same name (QEMU has a raw_co_preadv in both raw-format.c and file-posix.c).
 */
export function defineFn(
  name: string,
  params: readonly string[],
  opts: { file?: string; hidden?: boolean } = {},
): FnDesc {
  const at = locate(name, opts.file);
  const d: FnDesc = {
    id: fns.length,
    name,
    params,
    file: at.file,
    line: at.line,
    side: sideOf(at.file),
    hidden: opts.hidden ?? false,
  };
  if (fns.length >= 4096) throw new Error('too many modelled functions (raise MAX_DESCS in sim.ts)');
  fns.push(d);
  if (!fnsByName.has(name)) fnsByName.set(name, d);
  return d;
}

/** Declare a named event point inside `fn`, marked in the source by a `// @point name` comment. */
export function definePoint(fn: FnDesc, name: string): PointDesc {
  const at = locate(fn.name, fn.file);
  const line = at.points?.[name];
  if (line === undefined) throw new Error(`event point ${fn.name}:${name} has no '// @point ${name}' marker`);
  const p: PointDesc = { id: points.length, name, fn, line };
  points.push(p);
  return p;
}

export function allFunctions(): readonly FnDesc[] {
  return fns;
}
export function functionNamed(name: string): FnDesc | undefined {
  return fnsByName.get(name);
}
export function functionsNamed(name: string): FnDesc[] {
  return fns.filter((f) => f.name === name);
}
export function allPoints(): readonly PointDesc[] {
  return points;
}

export class Frame {
  desc!: FnDesc;
  a0: unknown;
  a1: unknown;
  a2: unknown;
  a3: unknown;
  /** The event point this frame last passed, for its current line. */
  at: PointDesc | undefined;
  /** Locals a function chooses to expose (the element it is building, ...). */
  locals: Record<string, unknown> | undefined;
  /** The line being executed, when known exactly (taken from the JavaScript stack at a stop); 0 otherwise. */
  execLine = 0;

  args(): unknown[] {
    const n = this.desc.params.length;
    const all = [this.a0, this.a1, this.a2, this.a3];
    return all.slice(0, Math.min(n, 4));
  }

  /** Where the frame is executing: the exact line if known, else its last event point, else the function's line. */
  get line(): number {
    return this.execLine || (this.at ? this.at.line : this.desc.line);
  }
}

/** A stack of frames: a thread's own, or a coroutine's. */
export class ExecContext {
  frames: Frame[] = [];
  depth = 0;
  /** Depth of the frames below this context in its thread's `qemu bt` (coroutine callers). */
  baseDepth = 0;

  constructor(readonly label: string) {}

  top(): Frame | undefined {
    return this.depth > 0 ? this.frames[this.depth - 1] : undefined;
  }

  /** Frames innermost first, hidden ones left out, as gdb lists them. */
  visibleFrames(): Frame[] {
    const out: Frame[] = [];
    for (let i = this.depth - 1; i >= 0; i--) if (!this.frames[i].desc.hidden) out.push(this.frames[i]);
    return out;
  }
}

/** One argument as gdb prints it. */
export function formatArg(v: unknown): string {
  if (v === undefined || v === OPTIMIZED_OUT) return '<optimized out>';
  if (v === null) return '0x0';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toString();
  if (typeof v === 'string') return v;
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (typeof v === 'object') {
    const o = v as { ptr?: number; kaddr?: number; kptrText?: string };
    if (typeof o.ptr === 'number') return hex(o.ptr);
    if (typeof o.kptrText === 'string') return o.kptrText;
    if (typeof o.kaddr === 'number') return kernelPtr(o.kaddr);
  }
  return String(v);
}

export function formatArgs(f: Frame): string {
  const names = f.desc.params;
  const vals = f.args();
  return names.map((n, i) => `${n}=${formatArg(vals[i])}`).join(', ');
}
