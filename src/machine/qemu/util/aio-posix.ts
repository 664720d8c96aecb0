/**
 * aio_poll (util/aio-posix.c): an IOThread's loop body. Block until
 * something is ready, run the bottom halves, then the ready handlers.
 */
import { Co, STOP, enter, leave } from '../../sim/sim';
import { defineFn } from '../../sim/frames';
import { AioContext, aio_bh_poll, aio_dispatch_ready_handlers } from './async';
import { qemu_poll_ns } from './main-loop';

const F_aio_poll = defineFn('aio_poll', ['ctx', 'blocking']);
export function* aio_poll(ctx: AioContext, blocking: boolean): Co<boolean> {
  if (enter(F_aio_poll, ctx, blocking)) yield STOP;
  if (blocking) yield* qemu_poll_ns(ctx, -1);
  const ready = ctx.handlers.filter((h) => h.notifier.signalled);
  let progress = yield* aio_bh_poll(ctx);
  progress = (yield* aio_dispatch_ready_handlers(ctx, ready)) || progress;
  return leave(F_aio_poll, progress);
}
