/**
 * The deterministic scheduler and the event points.
 *
 * Threads are generators. A thread runs until it yields a request to the
 * scheduler: sleep for some virtual nanoseconds, block on a wait queue, or
 * stop (a breakpoint matched). The next thread to run is the ready one with
 * the earliest virtual time, ties broken by thread id; timers (device and
 * host-kernel work that needs no thread, like a disk finishing an I/O) fire
 * in time order between them. Nothing depends on wall-clock time, so the
 * same scenario and options always give the same interleaving.
 *
 * Modelled functions call `enter` first and `leave` on return; both are a
 * few field writes unless a breakpoint is armed on that function (per
 * machine: `armFunction`) or the client asked to see every event (`trapSeq`). A matched event makes `enter`
 * return true, and the function then yields STOP up its `yield*` chain to
 * the scheduler, which returns to the client with everything frozen in place.
 */
import { ExecContext, Frame, FnDesc, PointDesc } from './frames';
import { PointerSpace } from './pointers';
import { Rng } from './random';
import { assignExecLines, captureCallSites } from './callsites';

/** Upper bound on modelled functions and on event points (a few hundred of each exist). */
const MAX_DESCS = 4096;

export const STOP = Object.freeze({ kind: 'stop' as const });
export const CO_YIELD = Object.freeze({ kind: 'co-yield' as const });

export interface SleepReq { readonly kind: 'sleep'; readonly ns: number }
export interface BlockReq { readonly kind: 'block'; readonly on: WaitQueue }
export type SchedReq = typeof STOP | typeof CO_YIELD | SleepReq | BlockReq;

/** What every modelled function returns: a generator the scheduler can suspend. */
export type Co<T = void> = Generator<SchedReq, T, unknown>;

/** What the scheduler needs of a QEMU coroutine (the full type lives in qemu/util). */
export interface CoroutineLike {
  readonly ptr: number;
  readonly ctx: ExecContext;
  caller: CoroutineLike | null;
}

export type ThreadState = 'ready' | 'blocked' | 'done';

export class SimThread {
  state: ThreadState = 'ready';
  wakeAt = 0;
  /** The context executing now: the thread's own, or a coroutine it entered. */
  cur: ExecContext;
  readonly base: ExecContext;
  /** The coroutine running on this thread, or its leader (QEMU's per-thread main coroutine). */
  currentCo: CoroutineLike | null = null;
  leader: CoroutineLike | null = null;
  blockedOn: WaitQueue | null = null;
  gen: Co<void> | null = null;

  constructor(readonly id: number, readonly name: string) {
    this.base = new ExecContext(name);
    this.cur = this.base;
  }
}

/** Something threads wait for: an eventfd, a semaphore, a halted vCPU's interrupt line. */
export class WaitQueue {
  readonly waiters: SimThread[] = [];
  constructor(readonly name: string) {}

  /** Make every waiter ready `delay` ns from now. */
  wake(delay = 0): void {
    const s = S;
    for (const t of this.waiters) {
      t.state = 'ready';
      t.blockedOn = null;
      t.wakeAt = s.now + delay;
    }
    this.waiters.length = 0;
  }
}

export interface SimEvent {
  readonly seq: number;
  readonly kind: 'enter' | 'point';
  readonly fn: FnDesc;
  readonly point: PointDesc | undefined;
  readonly frame: Frame;
  readonly thread: SimThread;
  readonly ctx: ExecContext;
  /** Depth in the thread's `qemu bt` (coroutine frames on top of their caller's). */
  readonly depth: number;
}

export type EventHook = (ev: SimEvent) => boolean;
export type LogHook = (thread: SimThread, frame: Frame, seq: number) => void;

interface Timer { at: number; order: number; fire: () => void }

export type RunOutcome = 'stopped' | 'idle' | 'slice' | 'limit';

export class Sim {
  /** Host-like pointers for QEMU objects, handed out in program order. */
  readonly ptrs = new PointerSpace();
  readonly rng: Rng;
  now = 0;
  seq = 0;
  /** Every event with seq >= trapSeq is checked against the hook (0: all of them). */
  trapSeq = Infinity;
  /** A run slice ends at this event, so a client can pause a long run. */
  sliceEnd = Infinity;
  hook: EventHook | null = null;
  /** Functions and event points whose every event the hook must see, by FnDesc.id / PointDesc.id. */
  readonly armedFns = new Uint8Array(MAX_DESCS);
  readonly armedPoints = new Uint8Array(MAX_DESCS);
  log: LogHook | null = null;
  thread!: SimThread;
  ctx!: ExecContext;
  stopEvent: SimEvent | null = null;
  private readonly scratch: { -readonly [K in keyof SimEvent]: SimEvent[K] } = {
    seq: 0, kind: 'enter', fn: undefined as unknown as FnDesc, point: undefined,
    frame: undefined as unknown as Frame, thread: undefined as unknown as SimThread,
    ctx: undefined as unknown as ExecContext, depth: 0,
  };
  readonly threads: SimThread[] = [];
  /**
   * Threads waiting for the rest of the machine to settle: woken when no
   * other thread can run and no timer is pending (a scenario's `wait` on a
   * device it drives by hand, where no request completion will come).
   */
  readonly quiescent = new WaitQueue('machine idle');
  /** Live coroutines (created and not yet terminated), in creation order. */
  readonly coroutines = new Set<CoroutineLike>();
  private timers: Timer[] = [];
  private timerOrder = 0;
  /** A thread that stopped resumes first, whatever else became ready: stopping never changes the run. */
  private resumeFirst: SimThread | null = null;

  constructor(seed = 0) {
    this.rng = new Rng(seed);
  }

  armFunction(d: FnDesc, on: boolean): void {
    this.armedFns[d.id] = on ? 1 : 0;
  }

  armPoint(p: PointDesc, on: boolean): void {
    this.armedPoints[p.id] = on ? 1 : 0;
  }

  addThread(name: string, body: (t: SimThread) => Co<void>): SimThread {
    const t = new SimThread(this.threads.length, name);
    this.threads.push(t);
    const prevThread = this.thread;
    const prevCtx = this.ctx;
    this.thread = t;
    this.ctx = t.base;
    t.gen = body(t);
    this.thread = prevThread;
    this.ctx = prevCtx;
    return t;
  }

  /** Run `fire` at virtual time now + delay, outside any thread (hardware, host kernel). */
  at(delay: number, fire: () => void): void {
    const tm: Timer = { at: this.now + delay, order: this.timerOrder++, fire };
    const q = this.timers;
    let i = q.length;
    while (i > 0 && (q[i - 1].at > tm.at || (q[i - 1].at === tm.at && q[i - 1].order > tm.order))) i--;
    q.splice(i, 0, tm);
  }

  get pendingTimers(): number {
    return this.timers.length;
  }

  /**
   * Ask the hook about this event. The event object handed to the hook is
   * reused for the next check (a run-to-condition evaluates millions of
   * them); a hook that wants to keep one must copy it. A stop keeps a copy
   * in `stopEvent`.
   */
  check(fn: FnDesc, point: PointDesc | undefined, frame: Frame): boolean {
    if (this.hook !== null) {
      const ctx = this.ctx;
      const ev = this.scratch;
      ev.seq = this.seq;
      ev.kind = point ? 'point' : 'enter';
      ev.fn = fn;
      ev.point = point;
      ev.frame = frame;
      ev.thread = this.thread;
      ev.ctx = ctx;
      ev.depth = ctx.baseDepth + ctx.depth;
      if (this.hook(ev)) {
        this.stopEvent = { ...ev };
        this.locateStoppedFrames();
        return true;
      }
    }
    if (this.seq >= this.sliceEnd) {
      this.stopEvent = null;
      return true;
    }
    return false;
  }

  /** Exact lines are valid for one stop only: once the machine runs again, frames fall back to entry and point lines. */
  private execLinesSet = false;

  private clearExecLines(): void {
    this.execLinesSet = false;
    const clear = (c: ExecContext) => {
      for (let i = 0; i < c.depth; i++) c.frames[i].execLine = 0;
    };
    for (const th of this.threads) clear(th.base);
    for (const c of this.coroutines) clear(c.ctx);
  }

  /** At a stop: the exact line of every frame of the stopped thread's running chain. */
  private locateStoppedFrames(): void {
    this.execLinesSet = true;
    const t = this.thread;
    const frames: Frame[] = [];
    let ctx: ExecContext | null = this.ctx;
    let co = t.currentCo;
    while (ctx !== null) {
      for (let i = ctx.depth - 1; i >= 0; i--) frames.push(ctx.frames[i]);
      // Below a coroutine's frames, the JavaScript stack holds its caller's (the switch stepped it).
      if (co !== null && co !== t.leader && co.caller !== null) {
        ctx = co.caller.ctx;
        co = co.caller;
      } else ctx = null;
    }
    assignExecLines(frames, captureCallSites());
  }

  private pick(): SimThread | null {
    const rf = this.resumeFirst;
    if (rf !== null) {
      this.resumeFirst = null;
      if (rf.state === 'ready') return rf;
    }
    let best: SimThread | null = null;
    for (const t of this.threads) {
      if (t.state !== 'ready') continue;
      if (best === null || t.wakeAt < best.wakeAt) best = t;
    }
    return best;
  }

  /**
   * Run until a hook matches (stopped), the slice ends (slice), nothing is
   * left to do (idle), or `maxSteps` scheduler steps pass (limit).
   */
  run(maxSteps = Infinity): RunOutcome {
    activate(this);
    if (this.execLinesSet) this.clearExecLines();
    for (let steps = 0; steps < maxSteps; steps++) {
      const t = this.pick();
      const tm = this.timers.length > 0 ? this.timers[0] : null;
      if (tm !== null && (t === null || tm.at < t.wakeAt)) {
        this.timers.shift();
        if (tm.at > this.now) this.now = tm.at;
        tm.fire();
        continue;
      }
      if (t === null) {
        if (this.quiescent.waiters.length === 0) return 'idle';
        this.quiescent.wake(0);
        continue;
      }
      if (t.wakeAt > this.now) this.now = t.wakeAt;
      this.thread = t;
      this.ctx = t.cur;
      const r = t.gen!.next();
      if (r.done) {
        t.state = 'done';
        continue;
      }
      const req = r.value;
      switch (req.kind) {
        case 'stop':
          this.resumeFirst = t;
          return this.stopEvent === null ? 'slice' : 'stopped';
        case 'sleep':
          t.wakeAt = this.now + req.ns;
          break;
        case 'block':
          t.state = 'blocked';
          t.blockedOn = req.on;
          req.on.waiters.push(t);
          break;
        case 'co-yield':
          throw new Error(`thread ${t.name}: qemu_coroutine_yield outside a coroutine`);
      }
    }
    return 'limit';
  }
}

/** The machine whose code is running: modelled functions reach it through this (QEMU's "current"). */
export let S: Sim = new Sim();

export function activate(sim: Sim): void {
  S = sim;
}

/** Push a frame for `d`; true when the caller must `yield STOP`. */
export function enter(d: FnDesc, a0?: unknown, a1?: unknown, a2?: unknown, a3?: unknown): boolean {
  const s = S;
  const c = s.ctx;
  let f = c.frames[c.depth];
  if (f === undefined) {
    f = new Frame();
    c.frames.push(f);
  }
  f.desc = d;
  f.a0 = a0;
  f.a1 = a1;
  f.a2 = a2;
  f.a3 = a3;
  f.at = undefined;
  f.locals = undefined;
  f.execLine = 0;
  c.depth++;
  const seq = ++s.seq;
  if (s.log !== null) s.log(s.thread, f, seq);
  if (s.armedFns[d.id] !== 0 || seq >= s.trapSeq) return s.check(d, undefined, f);
  return false;
}

/** Pop the frame of `d` and pass `r` through: `return leave(F, r)`. */
export function leave<T>(d: FnDesc, r: T): T {
  const c = S.ctx;
  const f = c.frames[--c.depth];
  if (f === undefined || f.desc !== d) {
    c.depth++;
    throw new Error(`frame imbalance: leaving ${d.name} but ${f?.desc.name ?? 'nothing'} is on top`);
  }
  return r;
}

/** Reach the named event point `p` inside the innermost frame; true when the caller must `yield STOP`. */
export function point(p: PointDesc): boolean {
  const s = S;
  const c = s.ctx;
  const f = c.frames[c.depth - 1];
  f.at = p;
  if (s.armedPoints[p.id] !== 0 || s.seq >= s.trapSeq) return s.check(p.fn, p, f);
  return false;
}

/**
 * Expose a function's locals on its frame, for the Variables view and for
 * conditions (`head == 3`). Called just before an event point, so a stop
 * there shows them.
 */
export function setLocals(locals: Record<string, unknown>): void {
  const c = S.ctx;
  c.frames[c.depth - 1].locals = locals;
}

export function* sleep(ns: number): Co<void> {
  yield { kind: 'sleep', ns };
}

export function* block(on: WaitQueue): Co<void> {
  yield { kind: 'block', on };
}
