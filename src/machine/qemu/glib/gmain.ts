/**
 * The one piece of GLib the data path passes through (glib/gmain.c):
 * dispatching the main context's ready sources. The main AioContext is a
 * GSource whose dispatch function is aio_ctx_dispatch.
 */
import { Co, STOP, enter, leave } from '../../sim/sim';
import { defineFn } from '../../sim/frames';
import { AioContext, aio_ctx_dispatch } from '../util/async';

const F_dispatch = defineFn('g_main_context_dispatch', ['context']);
export function* g_main_context_dispatch(ctx: AioContext): Co<void> {
  if (enter(F_dispatch, { ptr: ctx.ptr - 0x5e0 })) yield STOP;
  yield* aio_ctx_dispatch(ctx);
  return leave(F_dispatch, undefined);
}
