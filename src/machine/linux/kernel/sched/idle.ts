/**
 * The guest's idle loop (kernel/sched/idle.c): with nothing to run, the
 * vCPU halts until an interrupt (or, between scenario statements, until the
 * application's next request is due). Interrupts are taken on top of this
 * frame, as they are on a real idle CPU.
 */
import { Co, S, STOP, WaitQueue, block, enter, leave } from '../../../sim/sim';
import { defineFn } from '../../../sim/frames';

export interface IdleCpu {
  readonly irq: { readonly level: boolean };
  readonly wake: WaitQueue;
  /** Take the pending interrupt(s). */
  service_irq(): Co<void>;
}

const F_do_idle = defineFn('do_idle', []);
/** Halt until `until` (virtual ns; Infinity: for ever), taking interrupts as they come. */
export function* do_idle(cpu: IdleCpu, until: number): Co<void> {
  if (enter(F_do_idle)) yield STOP;
  // One timer for the whole idle period; an interrupt wakes the vCPU earlier.
  if (until !== Infinity) {
    const wq = cpu.wake;
    S.at(until - S.now, () => wq.wake());
  }
  while (true) {
    yield* cpu.service_irq();
    if (S.now >= until) break;
    if (!cpu.irq.level) yield* block(cpu.wake);
  }
  return leave(F_do_idle, undefined);
}
