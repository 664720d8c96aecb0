/**
 * The main thread (softmmu/main.c, softmmu/runstate.c, QEMU 7.2): main →
 * qemu_default_main → qemu_main_loop, which waits and dispatches forever.
 * (QEMU ≤ 7.1 showed `qemu_main (argc, argv, envp)` here instead.)
 */
import { Co, STOP, enter, leave } from '../../sim/sim';
import { defineFn } from '../../sim/frames';
import type { AioContext } from '../util/async';
import { main_loop_wait } from '../util/main-loop';

const F_main_loop = defineFn('qemu_main_loop', []);
function* qemu_main_loop(ctx: AioContext): Co<void> {
  if (enter(F_main_loop)) yield STOP;
  while (true) yield* main_loop_wait(ctx, 0);
}

const F_default_main = defineFn('qemu_default_main', []);
function* qemu_default_main(ctx: AioContext): Co<number> {
  if (enter(F_default_main)) yield STOP;
  yield* qemu_main_loop(ctx);
  return leave(F_default_main, 0);
}

const F_main = defineFn('main', ['argc', 'argv']);
export function* main(ctx: AioContext): Co<void> {
  if (enter(F_main, 24, { ptr: 0x7fffffffe2a8 })) yield STOP;
  yield* qemu_default_main(ctx);
  return leave(F_main, undefined);
}
