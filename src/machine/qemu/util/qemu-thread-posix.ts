/**
 * QEMU's thread entry (util/qemu-thread-posix.c): the bottom frame of every
 * QEMU thread but the main one (vCPUs, IOThreads, thread-pool workers).
 */
import { Co, S, STOP, enter, leave } from '../../sim/sim';
import { defineFn } from '../../sim/frames';

const F_thread_start = defineFn('qemu_thread_start', ['args']);
export function* qemu_thread_start(body: () => Co<void>): Co<void> {
  if (enter(F_thread_start, { ptr: S.ptrs.alloc('heap', 0x30) })) yield STOP;
  yield* body();
  return leave(F_thread_start, undefined);
}
