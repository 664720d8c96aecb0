/**
 * The native Linux AIO engine (block/linux-aio.c, QEMU 7.2; `aio=native`,
 * which QEMU allows only with cache.direct=on, i.e. O_DIRECT).
 *
 * Requests are queued, submitted with io_submit at unplug, and completed by
 * the host kernel some time later: it signals the eventfd that the
 * AioContext polls, and `qemu_laio_completion_cb` reaps the events and wakes
 * each coroutine. So, unlike io_uring on cached I/O, completion always comes
 * back through the event loop.
 */
import { Co, S, STOP, enter, leave } from '../../sim/sim';
import { defineFn } from '../../sim/frames';
import type { HostObject } from '../../sim/pointers';
import type { BlockDriverState } from './block-int';
import { AioContext, EventNotifier, aio_co_wake, aio_set_event_notifier, event_notifier_set, event_notifier_test_and_clear } from '../util/async';
import { Coroutine, qemu_coroutine_self, qemu_coroutine_yield } from '../util/qemu-coroutine';
import type { BDRVRawState, HostIo } from './file-posix';
import { hostIo, hostIoLatency } from './file-posix';

const EINPROGRESS = 115;
const ENOSPC = 28;
/** Default max batch (linux-aio.c). */
const DEFAULT_MAX_BATCH = 32;

class qemu_laiocb implements HostObject {
  readonly ptr: number;
  ret = -EINPROGRESS;
  constructor(readonly co: Coroutine, readonly io: HostIo) {
    this.ptr = S.ptrs.alloc('mmap', 0x80);
  }
}

export class LinuxAioState implements HostObject {
  readonly ptr: number;
  readonly pending: qemu_laiocb[] = [];
  /** io_getevents results not yet processed. */
  readonly events: { cb: qemu_laiocb; res: number }[] = [];
  in_queue = 0;
  in_flight = 0;
  plugged = 0;
  blocked = false;
  readonly e: EventNotifier;

  constructor(readonly ctx: AioContext, readonly file: BDRVRawState) {
    this.ptr = S.ptrs.alloc('heap', 0x1b0);
    this.e = new EventNotifier('linux-aio eventfd');
    aio_set_event_notifier(ctx, this.e, (n) => qemu_laio_completion_cb(this, n));
  }
}

const F_process_one = defineFn('qemu_laio_process_completion', ['laiocb']);
function* qemu_laio_process_completion(cb: qemu_laiocb, res: number): Co<void> {
  if (enter(F_process_one, cb)) yield STOP;
  if (res === cb.io.bytes) cb.ret = 0;
  else if (res >= 0) cb.ret = cb.io.type === 'QEMU_AIO_READ' ? 0 : -ENOSPC;
  else cb.ret = res;
  if (cb.co.caller === null) yield* aio_co_wake(cb.co);
  return leave(F_process_one, undefined);
}

const F_process = defineFn('qemu_laio_process_completions', ['s']);
function* qemu_laio_process_completions(s: LinuxAioState): Co<void> {
  if (enter(F_process, s)) yield STOP;
  while (s.events.length > 0) {
    const ev = s.events.shift()!;
    s.in_flight--;
    yield* qemu_laio_process_completion(ev.cb, ev.res);
  }
  return leave(F_process, undefined);
}

const F_process_and_submit = defineFn('qemu_laio_process_completions_and_submit', ['s']);
function* qemu_laio_process_completions_and_submit(s: LinuxAioState): Co<void> {
  if (enter(F_process_and_submit, s)) yield STOP;
  yield* qemu_laio_process_completions(s);
  if (!s.plugged && s.pending.length > 0) yield* ioq_submit(s);
  return leave(F_process_and_submit, undefined);
}

const F_completion_cb = defineFn('qemu_laio_completion_cb', ['e']);
function* qemu_laio_completion_cb(s: LinuxAioState, e: EventNotifier): Co<void> {
  if (enter(F_completion_cb, e)) yield STOP;
  if (event_notifier_test_and_clear(e)) yield* qemu_laio_process_completions_and_submit(s);
  return leave(F_completion_cb, undefined);
}

const F_ioq_submit = defineFn('ioq_submit', ['s'], { file: 'block/linux-aio.ts' });
/** io_submit: the kernel starts each I/O; each completes after its own latency and signals the eventfd. */
function* ioq_submit(s: LinuxAioState): Co<void> {
  if (enter(F_ioq_submit, s)) yield STOP;
  const batch = s.pending.splice(0);
  s.in_queue -= batch.length;
  s.in_flight += batch.length;
  s.blocked = false;
  for (const cb of batch) {
    S.at(hostIoLatency(cb.io), () => {
      s.events.push({ cb, res: hostIo(s.file, cb.io) });
      event_notifier_set(s.e);
    });
  }
  return leave(F_ioq_submit, undefined);
}

const F_do_submit = defineFn('laio_do_submit', ['fd', 'laiocb', 'offset', 'type']);
function* laio_do_submit(fd: number, cb: qemu_laiocb, s: LinuxAioState): Co<number> {
  if (enter(F_do_submit, fd, cb, cb.io.offset, cb.io.type)) yield STOP;
  s.pending.push(cb);
  s.in_queue++;
  if (!s.blocked && (!s.plugged || s.in_queue >= DEFAULT_MAX_BATCH)) yield* ioq_submit(s);
  return leave(F_do_submit, 0);
}

const F_co_submit = defineFn('laio_co_submit', ['bs', 's', 'fd', 'offset']);
export function* laio_co_submit(bs: BlockDriverState, s: LinuxAioState, fd: number, io: HostIo): Co<number> {
  if (enter(F_co_submit, bs, s, fd, io.offset)) yield STOP;
  const cb = new qemu_laiocb(qemu_coroutine_self(), io);
  const ret = yield* laio_do_submit(fd, cb, s);
  if (ret < 0) return leave(F_co_submit, ret);
  if (cb.ret === -EINPROGRESS) yield* qemu_coroutine_yield();
  return leave(F_co_submit, cb.ret);
}

export function laio_io_plug(s: LinuxAioState): void {
  s.plugged++;
}

const F_unplug = defineFn('laio_io_unplug', ['bs', 's', 'dev_max_batch']);
export function* laio_io_unplug(bs: BlockDriverState, s: LinuxAioState): Co<void> {
  if (enter(F_unplug, bs, s, 0)) yield STOP;
  s.plugged--;
  if (s.in_queue >= DEFAULT_MAX_BATCH || (!s.plugged && !s.blocked && s.pending.length > 0)) yield* ioq_submit(s);
  return leave(F_unplug, undefined);
}
