/**
 * The io_uring AIO engine (block/io_uring.c, QEMU 7.2).
 *
 * A request queues an sqe and its coroutine yields. Submission happens at
 * once when the queue is not plugged, otherwise at the last unplug
 * (`luring_io_unplug` → `ioq_submit`). Buffered I/O on a cached image file
 * completes inside io_uring_enter, so `ioq_submit` finds the cqes ready and
 * reaps them right away with `luring_process_completions`, which wakes each
 * coroutine: exactly the backtrace of FIDELITY §5. A cqe that is not ready
 * would be reaped later by `qemu_luring_completion_cb` on the ring's fd.
 */
import { Co, S, STOP, enter, leave } from '../../sim/sim';
import { defineFn } from '../../sim/frames';
import type { HostObject } from '../../sim/pointers';
import type { BlockDriverState } from './block-int';
import { AioContext, EventNotifier, aio_co_wake, aio_set_event_notifier, event_notifier_test_and_clear } from '../util/async';
import { Coroutine, qemu_coroutine_self, qemu_coroutine_yield } from '../util/qemu-coroutine';
import type { BDRVRawState, HostIo } from './file-posix';
import { hostIo } from './file-posix';

const EINPROGRESS = 115;
const ENOSPC = 28;
/** Ring size QEMU asks for. */
const MAX_ENTRIES = 128;

class LuringAIOCB implements HostObject {
  readonly ptr: number;
  ret = -EINPROGRESS;
  res = 0;
  constructor(readonly co: Coroutine, readonly io: HostIo) {
    // On the coroutine's stack in QEMU: a local of luring_co_submit.
    this.ptr = S.ptrs.alloc('mmap', 0x80);
  }
}

export class LuringState implements HostObject {
  readonly ptr: number;
  readonly submit_queue: LuringAIOCB[] = [];
  /** Completed by the kernel, not yet reaped. */
  readonly cq: LuringAIOCB[] = [];
  in_queue = 0;
  in_flight = 0;
  plugged = 0;
  blocked = false;
  /** The ring's fd, readable when cqes are posted. */
  readonly completion: EventNotifier;

  constructor(readonly ctx: AioContext, readonly file: BDRVRawState) {
    this.ptr = S.ptrs.alloc('heap', 0x1a0);
    this.completion = new EventNotifier('io_uring ring fd');
    aio_set_event_notifier(ctx, this.completion, (n) => qemu_luring_completion_cb(this, n));
  }
}

const F_process = defineFn('luring_process_completions', ['s']);
export function* luring_process_completions(s: LuringState): Co<void> {
  if (enter(F_process, s)) yield STOP;
  while (s.cq.length > 0) {
    const cb = s.cq.shift()!;
    s.in_flight--;
    const ret = cb.res;
    if (ret === cb.io.bytes) cb.ret = 0;
    else if (ret >= 0) cb.ret = cb.io.type === 'QEMU_AIO_READ' ? 0 : -ENOSPC; // short read: zeroes past EOF
    else cb.ret = ret;
    // A coroutine still running is inside its own ioq_submit: it will see cb.ret when it returns there.
    if (cb.co.caller === null) yield* aio_co_wake(cb.co);
  }
  return leave(F_process, undefined);
}

const F_ioq_submit = defineFn('ioq_submit', ['s'], { file: 'block/io_uring.ts' });
export function* ioq_submit(s: LuringState): Co<number> {
  if (enter(F_ioq_submit, s)) yield STOP;
  // io_uring_submit: the kernel takes every sqe and, for cached buffered I/O, completes it inline.
  const batch = s.submit_queue.splice(0);
  for (const cb of batch) {
    cb.res = hostIo(s.file, cb.io);
    s.cq.push(cb);
  }
  s.in_queue -= batch.length;
  s.in_flight += batch.length;
  s.blocked = s.in_queue > 0;
  if (s.in_flight > 0) yield* luring_process_completions(s);
  return leave(F_ioq_submit, batch.length);
}

const F_do_submit = defineFn('luring_do_submit', ['fd', 'luringcb', 's', 'offset']);
function* luring_do_submit(fd: number, cb: LuringAIOCB, s: LuringState): Co<number> {
  if (enter(F_do_submit, fd, cb, s, cb.io.offset)) yield STOP;
  s.submit_queue.push(cb);
  s.in_queue++;
  let ret = 0;
  if (!s.blocked && (!s.plugged || s.in_flight + s.in_queue >= MAX_ENTRIES)) ret = yield* ioq_submit(s);
  return leave(F_do_submit, ret < 0 ? ret : 0);
}

const F_co_submit = defineFn('luring_co_submit', ['bs', 's', 'fd', 'offset']);
export function* luring_co_submit(bs: BlockDriverState, s: LuringState, fd: number, io: HostIo): Co<number> {
  if (enter(F_co_submit, bs, s, fd, io.offset)) yield STOP;
  const cb = new LuringAIOCB(qemu_coroutine_self(), io);
  const ret = yield* luring_do_submit(fd, cb, s);
  if (ret < 0) return leave(F_co_submit, ret);
  if (cb.ret === -EINPROGRESS) yield* qemu_coroutine_yield();
  return leave(F_co_submit, cb.ret);
}

export function luring_io_plug(s: LuringState): void {
  s.plugged++;
}

const F_unplug = defineFn('luring_io_unplug', ['bs', 's']);
export function* luring_io_unplug(bs: BlockDriverState, s: LuringState): Co<void> {
  if (enter(F_unplug, bs, s)) yield STOP;
  if (--s.plugged === 0 && !s.blocked && s.in_queue > 0) yield* ioq_submit(s);
  return leave(F_unplug, undefined);
}

const F_completion_cb = defineFn('qemu_luring_completion_cb', ['opaque']);
function* qemu_luring_completion_cb(s: LuringState, n: EventNotifier): Co<void> {
  if (enter(F_completion_cb, s)) yield STOP;
  event_notifier_test_and_clear(n);
  yield* luring_process_completions(s);
  if (!s.plugged && s.in_queue > 0) yield* ioq_submit(s);
  return leave(F_completion_cb, undefined);
}
