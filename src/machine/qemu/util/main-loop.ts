/**
 * The main loop's wait (util/main-loop.c): block in ppoll until one of the
 * main AioContext's fds is readable or a bottom half is scheduled, then let
 * glib dispatch the AioContext's GSource.
 */
import { Co, STOP, block, enter, leave } from '../../sim/sim';
import { defineFn } from '../../sim/frames';
import type { AioContext } from './async';
import { g_main_context_dispatch } from '../glib/gmain';

const F_poll = defineFn('qemu_poll_ns', ['fds', 'nfds', 'timeout']);
/** ppoll: the thread sleeps here while nothing is ready. */
export function* qemu_poll_ns(ctx: AioContext, timeout: number): Co<number> {
  if (enter(F_poll, { ptr: ctx.ptr + 0x100 }, ctx.handlers.length, timeout)) yield STOP;
  while (!ctx.hasWork()) yield* block(ctx.poll);
  return leave(F_poll, 1);
}

const F_glib_pollfds_poll = defineFn('glib_pollfds_poll', []);
function* glib_pollfds_poll(ctx: AioContext): Co<void> {
  if (enter(F_glib_pollfds_poll)) yield STOP;
  yield* g_main_context_dispatch(ctx);
  return leave(F_glib_pollfds_poll, undefined);
}

const F_os_wait = defineFn('os_host_main_loop_wait', ['timeout']);
function* os_host_main_loop_wait(ctx: AioContext, timeout: number): Co<number> {
  if (enter(F_os_wait, timeout)) yield STOP;
  // The BQL is dropped around ppoll so vCPU threads can run meanwhile.
  const ret = yield* qemu_poll_ns(ctx, timeout);
  yield* glib_pollfds_poll(ctx);
  return leave(F_os_wait, ret);
}

const F_main_loop_wait = defineFn('main_loop_wait', ['nonblocking']);
export function* main_loop_wait(ctx: AioContext, nonblocking: number): Co<void> {
  if (enter(F_main_loop_wait, nonblocking)) yield STOP;
  yield* os_host_main_loop_wait(ctx, -1);
  return leave(F_main_loop_wait, undefined);
}
