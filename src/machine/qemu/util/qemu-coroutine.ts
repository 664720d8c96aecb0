/**
 * QEMU coroutines (util/qemu-coroutine.c), modelled on generators; the
 * stack switch itself is in coroutine-ucontext.ts.
 *
 * A coroutine has its own stack of frames, which always starts with
 * `coroutine_trampoline`. Entering it (`qemu_aio_coroutine_enter`) records the
 * current coroutine as its caller and switches to it; `qemu_coroutine_yield`
 * switches back to the caller and clears `caller`. While a coroutine runs,
 * the thread's `qemu bt` is the coroutine's frames, then `Coroutine at
 * <caller>:` and the caller's frames, whose top is `qemu_coroutine_switch`.
 */
import { Co, CoroutineLike, S, STOP, SimThread, enter, leave } from '../../sim/sim';
import { ExecContext, defineFn } from '../../sim/frames';
import { qemu_coroutine_switch } from './coroutine-ucontext';
import type { AioContext } from './async';

export type CoroutineEntry = (opaque: unknown) => Co<void>;

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

  constructor(public entry: CoroutineEntry | null, public entryName: string, public opaque: unknown, leaderOf: SimThread | null = null) {
    this.leaderOf = leaderOf;
    // Leaders are thread-local (TLS); created coroutines are g_malloc'd.
    this.ptr = leaderOf ? S.ptrs.alloc('tls', 0x1000) + 0x320 : S.ptrs.alloc('heap', 0x80);
    this.ctx = leaderOf ? leaderOf.base : new ExecContext(`coroutine ${entryName}`);
    if (!leaderOf) S.coroutines.add(this);
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

/**
 * Terminated coroutines kept for reuse, as QEMU's coroutine pool does
 * (POOL_MIN_BATCH_SIZE 64): a new request often gets the stack, and so the
 * address, of one that just finished.
 */
const POOL_MAX = 64;
const pools = new WeakMap<object, Coroutine[]>();

function poolOf(): Coroutine[] {
  let p = pools.get(S);
  if (p === undefined) pools.set(S, (p = []));
  return p;
}

/** qemu_coroutine_delete: back to the pool, or gone. */
export function qemu_coroutine_delete(co: Coroutine): void {
  S.coroutines.delete(co);
  const pool = poolOf();
  if (pool.length < POOL_MAX) pool.push(co);
}

const F_create = defineFn('qemu_coroutine_create', ['entry', 'opaque']);
export function* qemu_coroutine_create(entry: CoroutineEntry, entryName: string, opaque: unknown): Co<Coroutine> {
  if (enter(F_create, entryName, opaque)) yield STOP;
  let co = poolOf().pop();
  if (co === undefined) {
    co = new Coroutine(entry, entryName, opaque);
  } else {
    co.entry = entry;
    co.entryName = entryName;
    co.opaque = opaque;
    co.state = 'created';
    co.gen = null;
    co.caller = null;
    co.aioCtx = null;
    S.coroutines.add(co);
  }
  return leave(F_create, co);
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
    if (ret === 'COROUTINE_TERMINATE') {
      to.caller = null;
      qemu_coroutine_delete(to);
    }
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
