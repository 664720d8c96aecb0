/**
 * The coroutine stack switch (util/coroutine-ucontext.c): every coroutine's
 * stack starts in `coroutine_trampoline`, and `qemu_coroutine_switch` moves
 * the thread from one coroutine to another.
 *
 * The switch is a trampoline over generators: entering steps the target
 * coroutine's generator until it yields back (CO_YIELD) or ends. A debugger
 * STOP raised inside the coroutine is passed up to the scheduler, and the
 * coroutine resumes exactly where it stopped.
 */
import { CO_YIELD, Co, S, STOP, enter, leave } from '../../sim/sim';
import { OPTIMIZED_OUT, defineFn } from '../../sim/frames';
import type { Coroutine } from './qemu-coroutine';

export type CoroutineAction = 'COROUTINE_YIELD' | 'COROUTINE_TERMINATE' | 'COROUTINE_ENTER';

const F_trampoline = defineFn('coroutine_trampoline', ['i0', 'i1']);
export function* coroutine_trampoline(co: Coroutine): Co<void> {
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

