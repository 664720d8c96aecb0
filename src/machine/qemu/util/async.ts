/**
 * AioContext, bottom halves and event notifiers (util/async.c, util/aio-posix.c,
 * util/event_notifier-posix.c).
 *
 * An AioContext belongs to one thread (the main loop's, or an IOThread's). It
 * holds fd handlers (here: event notifiers, the eventfds behind ioeventfd and
 * AIO completion) and scheduled bottom halves. Its thread blocks in poll until
 * a notifier is set or a BH is scheduled, then dispatches them.
 */
import { Co, S, STOP, SimThread, WaitQueue, enter, leave } from '../../sim/sim';
import { defineFn } from '../../sim/frames';
import type { HostObject } from '../../sim/pointers';
import { Coroutine, qemu_aio_coroutine_enter, qemu_coroutine_self, qemu_in_coroutine } from './qemu-coroutine';

/** Nanoseconds from an eventfd write to the poller running again (a futex wake-up). */
const WAKEUP_NS = 2000;

export class EventNotifier implements HostObject {
  readonly ptr: number;
  signalled = false;
  /** The AioContext polling this notifier, once a handler is set. */
  ctx: AioContext | null = null;
  handler: ((n: EventNotifier) => Co<void>) | null = null;
  /** Set when the eventfd is a KVM irqfd: signalling it injects a guest interrupt. */
  irqfd: (() => void) | null = null;
  constructor(readonly name: string) {
    this.ptr = S.ptrs.alloc('heap', 0x10);
  }
}

/** event_notifier_set: write the eventfd; its poller wakes up. */
export function event_notifier_set(n: EventNotifier): void {
  n.signalled = true;
  n.ctx?.kick();
  n.irqfd?.();
}

export function event_notifier_test_and_clear(n: EventNotifier): boolean {
  const was = n.signalled;
  n.signalled = false;
  return was;
}

export class QEMUBH implements HostObject {
  readonly ptr: number;
  scheduled = false;
  constructor(readonly ctx: AioContext, readonly name: string, readonly cb: (opaque: unknown) => Co<void>, readonly opaque: unknown) {
    this.ptr = S.ptrs.alloc('heap', 0x30);
  }
}

/** Node of an fd handler, as aio_dispatch_handler receives it. */
export class AioHandler implements HostObject {
  readonly ptr: number;
  constructor(readonly notifier: EventNotifier, readonly io_read: (n: EventNotifier) => Co<void>) {
    this.ptr = S.ptrs.alloc('heap', 0x60);
  }
}

export class AioContext implements HostObject {
  readonly ptr: number;
  readonly handlers: AioHandler[] = [];
  readonly bhs: QEMUBH[] = [];
  readonly poll = new WaitQueue('ppoll');
  /** Coroutines scheduled from another thread (aio_co_schedule). */
  readonly scheduledCoroutines: Coroutine[] = [];
  coScheduleBh: QEMUBH | null = null;
  /** The thread that runs this context's event loop. */
  thread: SimThread | null = null;
  /**
   * Threads that count this context as their own: for the main context, the
   * vCPUs. A vCPU holds the BQL whenever it runs QEMU code (an MMIO exit),
   * and 7.2's qemu_get_current_aio_context() returns the main context in a
   * thread that holds the BQL and has no AioContext of its own. So without a
   * dataplane (ioeventfd off) blk_aio_prwv enters the request coroutine at
   * once, in the vCPU thread.
   */
  readonly bqlThreads: SimThread[] = [];

  constructor(readonly name: string) {
    this.ptr = S.ptrs.alloc('heap', 0x2a0);
  }

  /** Something is ready: wake the thread blocked in poll (aio_notify). */
  kick(): void {
    if (this.poll.waiters.length > 0) this.poll.wake(WAKEUP_NS);
  }

  hasWork(): boolean {
    if (this.bhs.length > 0) return true;
    for (const h of this.handlers) if (h.notifier.signalled) return true;
    return false;
  }
}

/** aio_set_event_notifier: poll `n` in `ctx` and call `io_read` when it is set. */
export function aio_set_event_notifier(ctx: AioContext, n: EventNotifier, io_read: ((n: EventNotifier) => Co<void>) | null): void {
  const i = ctx.handlers.findIndex((h) => h.notifier === n);
  if (i >= 0) ctx.handlers.splice(i, 1);
  n.ctx = io_read ? ctx : null;
  n.handler = io_read;
  if (io_read) ctx.handlers.push(new AioHandler(n, io_read));
}

export function aio_bh_new(ctx: AioContext, name: string, cb: (opaque: unknown) => Co<void>, opaque: unknown): QEMUBH {
  return new QEMUBH(ctx, name, cb, opaque);
}

const F_bh_schedule = defineFn('qemu_bh_schedule', ['bh']);
export function* qemu_bh_schedule(bh: QEMUBH): Co<void> {
  if (enter(F_bh_schedule, bh)) yield STOP;
  if (!bh.scheduled) {
    bh.scheduled = true;
    bh.ctx.bhs.push(bh);
    bh.ctx.kick();
  }
  return leave(F_bh_schedule, undefined);
}

const F_bh_call = defineFn('aio_bh_call', ['bh']);
function* aio_bh_call(bh: QEMUBH): Co<void> {
  if (enter(F_bh_call, bh)) yield STOP;
  yield* bh.cb(bh.opaque);
  return leave(F_bh_call, undefined);
}

const F_bh_poll = defineFn('aio_bh_poll', ['ctx']);
/** Run the bottom halves scheduled so far (not ones they schedule: those wait for the next round). */
export function* aio_bh_poll(ctx: AioContext): Co<boolean> {
  if (enter(F_bh_poll, ctx)) yield STOP;
  const batch = ctx.bhs.splice(0);
  for (const bh of batch) {
    bh.scheduled = false;
    yield* aio_bh_call(bh);
  }
  return leave(F_bh_poll, batch.length > 0);
}

const F_dispatch_handler = defineFn('aio_dispatch_handler', ['ctx', 'node']);
export function* aio_dispatch_handler(ctx: AioContext, node: AioHandler): Co<boolean> {
  if (enter(F_dispatch_handler, ctx, node)) yield STOP;
  yield* node.io_read(node.notifier);
  return leave(F_dispatch_handler, true);
}

/** Handlers whose notifier is set, in registration order. */
function readyHandlers(ctx: AioContext): AioHandler[] {
  return ctx.handlers.filter((h) => h.notifier.signalled);
}

const F_dispatch_handlers = defineFn('aio_dispatch_handlers', ['ctx']);
export function* aio_dispatch_handlers(ctx: AioContext): Co<boolean> {
  if (enter(F_dispatch_handlers, ctx)) yield STOP;
  let progress = false;
  for (const node of readyHandlers(ctx)) progress = (yield* aio_dispatch_handler(ctx, node)) || progress;
  return leave(F_dispatch_handlers, progress);
}

const F_dispatch_ready = defineFn('aio_dispatch_ready_handlers', ['ctx', 'ready_list']);
export function* aio_dispatch_ready_handlers(ctx: AioContext, ready: AioHandler[]): Co<boolean> {
  if (enter(F_dispatch_ready, ctx, { ptr: 0x7ffff5ffe5f0 })) yield STOP;
  let progress = false;
  for (const node of ready) progress = (yield* aio_dispatch_handler(ctx, node)) || progress;
  return leave(F_dispatch_ready, progress);
}

const F_dispatch = defineFn('aio_dispatch', ['ctx']);
export function* aio_dispatch(ctx: AioContext): Co<void> {
  if (enter(F_dispatch, ctx)) yield STOP;
  yield* aio_bh_poll(ctx);
  yield* aio_dispatch_handlers(ctx);
  return leave(F_dispatch, undefined);
}

const F_co_schedule_bh_cb = defineFn('co_schedule_bh_cb', ['opaque']);
function* co_schedule_bh_cb(opaque: unknown): Co<void> {
  const ctx = opaque as AioContext;
  if (enter(F_co_schedule_bh_cb, ctx)) yield STOP;
  for (const co of ctx.scheduledCoroutines.splice(0)) yield* qemu_aio_coroutine_enter(ctx, co);
  return leave(F_co_schedule_bh_cb, undefined);
}

const F_co_schedule = defineFn('aio_co_schedule', ['ctx', 'co']);
export function* aio_co_schedule(ctx: AioContext, co: Coroutine): Co<void> {
  if (enter(F_co_schedule, ctx, co)) yield STOP;
  ctx.scheduledCoroutines.push(co);
  ctx.coScheduleBh ??= aio_bh_new(ctx, 'co_schedule_bh_cb', co_schedule_bh_cb, ctx);
  yield* qemu_bh_schedule(ctx.coScheduleBh);
  return leave(F_co_schedule, undefined);
}

const F_co_enter = defineFn('aio_co_enter', ['ctx', 'co']);
/**
 * Enter `co` in `ctx`: scheduled there if `ctx` belongs to another thread;
 * queued behind the running coroutine if we are inside one; else entered now.
 */
export function* aio_co_enter(ctx: AioContext, co: Coroutine): Co<void> {
  if (enter(F_co_enter, ctx, co)) yield STOP;
  if (!aio_context_is_current(ctx)) {
    yield* aio_co_schedule(ctx, co);
  } else if (qemu_in_coroutine()) {
    qemu_coroutine_self().wakeup.push(co);
  } else {
    yield* qemu_aio_coroutine_enter(ctx, co);
  }
  return leave(F_co_enter, undefined);
}

/** gdb shows no frame for it: it tail-calls aio_co_enter. */
const F_co_wake = defineFn('aio_co_wake', ['co'], { hidden: true });
export function* aio_co_wake(co: Coroutine): Co<void> {
  if (enter(F_co_wake, co)) yield STOP;
  yield* aio_co_enter(co.aioCtx!, co);
  return leave(F_co_wake, undefined);
}

const F_ctx_dispatch = defineFn('aio_ctx_dispatch', ['source', 'callback', 'user_data']);
/** The main AioContext's GSource dispatch. */
export function* aio_ctx_dispatch(ctx: AioContext): Co<boolean> {
  if (enter(F_ctx_dispatch, ctx, null, null)) yield STOP;
  yield* aio_dispatch(ctx);
  return leave(F_ctx_dispatch, true);
}

/** ctx === qemu_get_current_aio_context() in the running thread. */
function aio_context_is_current(ctx: AioContext): boolean {
  const t = S.thread;
  return ctx.thread === null || ctx.thread === t || ctx.bqlThreads.includes(t);
}
