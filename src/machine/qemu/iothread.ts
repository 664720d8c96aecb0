/**
 * IOThread (iothread.c): a thread with its own AioContext, running aio_poll
 * forever. With `iothread` set, virtio-blk's dataplane lives here and so do
 * its request coroutines.
 */
import { Co, STOP, enter, leave } from '../sim/sim';
import { defineFn } from '../sim/frames';
import type { HostObject } from '../sim/pointers';
import { S } from '../sim/sim';
import { AioContext } from './util/async';
import { aio_poll } from './util/aio-posix';
import { qemu_thread_start } from './util/qemu-thread-posix';

export class IOThread implements HostObject {
  readonly ptr: number;
  readonly ctx: AioContext;
  running = true;
  constructor(readonly name: string) {
    this.ptr = S.ptrs.alloc('heap', 0xc0);
    this.ctx = new AioContext(`${name} AioContext`);
  }
}

const F_run = defineFn('iothread_run', ['opaque']);
function* iothread_run(it: IOThread): Co<void> {
  if (enter(F_run, it)) yield STOP;
  while (it.running) yield* aio_poll(it.ctx, true);
  return leave(F_run, undefined);
}

/** The IOThread's thread body. */
export function iothread_thread(it: IOThread): Co<void> {
  return qemu_thread_start(() => iothread_run(it));
}
