/**
 * QEMU coroutines (util/qemu-coroutine.c and util/coroutine-ucontext.c),
 * modelled on generators.
 *
 * A coroutine has its own stack of frames, which always starts with
 * `coroutine_trampoline`. Entering it (`qemu_aio_coroutine_enter`) records the
 * current coroutine as its caller and switches to it; `qemu_coroutine_yield`
 * switches back to the caller and clears `caller`. While a coroutine runs,
 * the thread's `qemu bt` is the coroutine's frames, then `Coroutine at
 * <caller>:` and the caller's frames, whose top is `qemu_coroutine_switch`.
 *
 * The switch is a trampoline: the caller's generator steps the coroutine's
 * generator until it yields back (CO_YIELD) or ends. A debugger STOP raised
 * inside the coroutine is passed up to the scheduler and the coroutine is
 * resumed exactly where it stopped.
 */
import { CO_YIELD, Co, CoroutineLike, S, STOP, SimThread, enter, leave } from '../../sim/sim';
import { ExecContext, OPTIMIZED_OUT, defineFn } from '../../sim/frames';
import type { AioContext } from './async';

export type CoroutineEntry = (opaque: unknown) => Co<void>;
export type CoroutineAction = 'COROUTINE_YIELD' | 'COROUTINE_TERMINATE' | 'COROUTINE_ENTER';

export class Coroutine implements CoroutineLike {
  readonly ptr: number;
  readonly ctx: ExecContext;
  caller: Coroutine | null = null;
  state: 'created' | 'running' | 'suspended' | 'terminated' = 'created';
  gen: Co<void> | null = null;
  /** The AioContext the coroutine last ran in (co->ctx). */
  aioCtx: AioContext | null = null;
  /** Coroutines woken from inside this one, entered once it yields (co->co_queue_wakeup). */
  readonly wakeup: Coroutine[] = [];
  /** The thread whose leader this is, for leaders; null for created coroutines. */
  readonly leaderOf: SimThread | null;

  constructor(readonly entry: CoroutineEntry | null, readonly entryName: string, readonly opaque: unknown, leaderOf: SimThread | null = null) {
    this.leaderOf = leaderOf;
    // Leaders are thread-local (TLS); created coroutines are g_malloc'd.
    this.ptr = leaderOf ? S.ptrs.alloc('tls', 0x1000) + 0x320 : S.ptrs.alloc('heap', 0x80);
    this.ctx = leaderOf ? leaderOf.base : new ExecContext(`coroutine ${entryName}`);
  }
}

/** The coroutine running on the current thread: its leader when outside any created coroutine. */
export function qemu_coroutine_self(): Coroutine {
  const t = S.thread;
  if (t.currentCo === null) {
    const leader = new Coroutine(null, 'leader', null, t);
    t.leader = leader;
    t.currentCo = leader;
  }
  return t.currentCo as Coroutine;
}

export function qemu_in_coroutine(): boolean {
  const c = S.thread.currentCo as Coroutine | null;
  return c !== null && c.leaderOf === null;
}

const F_create = defineFn('qemu_coroutine_create', ['entry', 'opaque']);
export function* qemu_coroutine_create(entry: CoroutineEntry, entryName: string, opaque: unknown): Co<Coroutine> {
  if (enter(F_create, entryName, opaque)) yield STOP;
  const co = new Coroutine(entry, entryName, opaque);
  return leave(F_create, co);
}

const F_trampoline = defineFn('coroutine_trampoline', ['i0', 'i1']);
function* coroutine_trampoline(co: Coroutine): Co<void> {
  if (enter(F_trampoline, OPTIMIZED_OUT, OPTIMIZED_OUT)) yield STOP;
  yield* co.entry!(co.opaque);
  co.state = 'terminated';
  return leave(F_trampoline, undefined);
}

const F_switch = defineFn('qemu_coroutine_switch', ['from_', 'to_', 'action']);
/**
 * Switch from `from` to `to`. Entering runs `to` on this thread until it
 * yields back or terminates; yielding (from inside `to`... i.e. `from` is the
 * running coroutine) suspends the running generator with CO_YIELD.
 */
export function* qemu_coroutine_switch(from: Coroutine, to: Coroutine, action: CoroutineAction): Co<CoroutineAction> {
  if (enter(F_switch, from, to, action)) yield STOP;
  if (action !== 'COROUTINE_ENTER') {
    // The running coroutine gives the thread back; it continues here when entered again.
    yield CO_YIELD;
    return leave(F_switch, action);
  }
  const s = S;
  const thread = s.thread;
  const callerCtx = s.ctx;
  to.ctx.baseDepth = callerCtx.baseDepth + callerCtx.depth;
  thread.currentCo = to;
  thread.cur = to.ctx;
  s.ctx = to.ctx;
  if (to.gen === null) to.gen = coroutine_trampoline(to);
  to.state = 'running';
  let r = to.gen.next();
  while (!r.done && r.value !== CO_YIELD) {
    // A stop inside the coroutine: hand it to the scheduler, then carry on inside.
    yield r.value;
    r = to.gen.next();
  }
  thread.currentCo = from;
  thread.cur = callerCtx;
  s.ctx = callerCtx;
  const ret: CoroutineAction = r.done ? 'COROUTINE_TERMINATE' : 'COROUTINE_YIELD';
  if (!r.done) to.state = 'suspended';
  return leave(F_switch, ret);
}

const F_enter = defineFn('qemu_aio_coroutine_enter', ['ctx', 'co']);
export function* qemu_aio_coroutine_enter(ctx: AioContext, co: Coroutine): Co<void> {
  if (enter(F_enter, ctx, co)) yield STOP;
  const self = qemu_coroutine_self();
  const pending: Coroutine[] = [co];
  while (pending.length > 0) {
    const to = pending.shift()!;
    if (to.caller !== null) throw new Error(`Co-routine re-entered recursively (${to.entryName})`);
    to.caller = self;
    to.aioCtx = ctx;
    const ret = yield* qemu_coroutine_switch(self, to, 'COROUTINE_ENTER');
    // Coroutines the entered one woke while running run now, in order.
    pending.push(...to.wakeup.splice(0));
    if (ret === 'COROUTINE_TERMINATE') to.caller = null;
  }
  return leave(F_enter, undefined);
}

const F_yield = defineFn('qemu_coroutine_yield', []);
export function* qemu_coroutine_yield(): Co<void> {
  if (enter(F_yield)) yield STOP;
  const self = qemu_coroutine_self();
  const to = self.caller;
  if (to === null) throw new Error('Co-routine is yielding to no one');
  self.caller = null;
  yield* qemu_coroutine_switch(self, to, 'COROUTINE_YIELD');
  return leave(F_yield, undefined);
}
