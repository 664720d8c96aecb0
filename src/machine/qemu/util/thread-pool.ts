/**
 * The thread pool (util/thread-pool.c): blocking work (preadv, fdatasync,
 * fallocate) runs in worker threads so the event loop never blocks. A
 * coroutine submits and yields; a worker runs the function, then schedules
 * the pool's completion bottom half in the AioContext, which calls back
 * `thread_pool_co_cb` and wakes the coroutine.
 *
 * Workers are started on demand, as QEMU does, up to max_threads (64), and
 * block on the pool's semaphore when idle.
 */
import { Co, S, STOP, SimThread, WaitQueue, block, enter, leave } from '../../sim/sim';
import { defineFn } from '../../sim/frames';
import type { HostObject } from '../../sim/pointers';
import { AioContext, QEMUBH, aio_bh_new, aio_co_wake, qemu_bh_schedule } from './async';
import { Coroutine, qemu_coroutine_self, qemu_coroutine_yield } from './qemu-coroutine';
import { qemu_thread_start } from './qemu-thread-posix';

const EINPROGRESS = 115;

type WorkFn = (arg: unknown) => Co<number>;

class ThreadPoolElement implements HostObject {
  readonly ptr: number;
  state: 'THREAD_QUEUED' | 'THREAD_ACTIVE' | 'THREAD_DONE' = 'THREAD_QUEUED';
  ret = 0;
  constructor(readonly func: WorkFn, readonly funcName: string, readonly arg: unknown, readonly cb: (opaque: ThreadPoolCo, ret: number) => Co<void>, readonly opaque: ThreadPoolCo) {
    this.ptr = S.ptrs.alloc('heap', 0x70);
  }
}

class ThreadPoolCo implements HostObject {
  readonly ptr: number;
  ret = -EINPROGRESS;
  constructor(readonly co: Coroutine) {
    this.ptr = S.ptrs.alloc('mmap', 0x10);
  }
}

export class ThreadPool implements HostObject {
  readonly ptr: number;
  readonly request_list: ThreadPoolElement[] = [];
  readonly head: ThreadPoolElement[] = [];
  readonly sem = new WaitQueue('thread pool semaphore');
  readonly completion_bh: QEMUBH;
  readonly workers: SimThread[] = [];
  idle_threads = 0;
  max_threads = 64;

  constructor(readonly ctx: AioContext) {
    this.ptr = S.ptrs.alloc('heap', 0x150);
    this.completion_bh = aio_bh_new(ctx, 'thread_pool_completion_bh', (p) => thread_pool_completion_bh(p as ThreadPool), this);
  }
}

const F_worker = defineFn('worker_thread', ['opaque']);
function* worker_thread(pool: ThreadPool): Co<void> {
  if (enter(F_worker, pool)) yield STOP;
  while (true) {
    while (pool.request_list.length === 0) {
      pool.idle_threads++;
      yield* block(pool.sem);
      pool.idle_threads--;
    }
    const req = pool.request_list.shift()!;
    req.state = 'THREAD_ACTIVE';
    const ret = yield* req.func(req.arg);
    req.ret = ret;
    req.state = 'THREAD_DONE';
    yield* qemu_bh_schedule(pool.completion_bh);
  }
}

function spawn_thread(pool: ThreadPool): void {
  const t = S.addThread(`worker ${pool.workers.length}`, () => qemu_thread_start(() => worker_thread(pool)));
  t.wakeAt = S.now;
  pool.workers.push(t);
}

const F_submit_aio = defineFn('thread_pool_submit_aio', ['pool', 'func', 'arg', 'cb']);
function* thread_pool_submit_aio(pool: ThreadPool, func: WorkFn, funcName: string, arg: unknown, tpc: ThreadPoolCo): Co<ThreadPoolElement> {
  if (enter(F_submit_aio, pool, funcName, arg, 'thread_pool_co_cb')) yield STOP;
  const req = new ThreadPoolElement(func, funcName, arg, thread_pool_co_cb, tpc);
  pool.head.push(req);
  if (pool.idle_threads === 0 && pool.workers.length < pool.max_threads) spawn_thread(pool);
  pool.request_list.push(req);
  pool.sem.wake(1_000); // qemu_sem_post: one futex wake-up
  return leave(F_submit_aio, req);
}

const F_submit_co = defineFn('thread_pool_submit_co', ['pool', 'func', 'arg']);
export function* thread_pool_submit_co(pool: ThreadPool, func: WorkFn, funcName: string, arg: unknown): Co<number> {
  if (enter(F_submit_co, pool, funcName, arg)) yield STOP;
  const tpc = new ThreadPoolCo(qemu_coroutine_self());
  yield* thread_pool_submit_aio(pool, func, funcName, arg, tpc);
  yield* qemu_coroutine_yield();
  return leave(F_submit_co, tpc.ret);
}

const F_co_cb = defineFn('thread_pool_co_cb', ['opaque', 'ret']);
function* thread_pool_co_cb(tpc: ThreadPoolCo, ret: number): Co<void> {
  if (enter(F_co_cb, tpc, ret)) yield STOP;
  tpc.ret = ret;
  yield* aio_co_wake(tpc.co);
  return leave(F_co_cb, undefined);
}

const F_completion_bh = defineFn('thread_pool_completion_bh', ['opaque']);
function* thread_pool_completion_bh(pool: ThreadPool): Co<void> {
  if (enter(F_completion_bh, pool)) yield STOP;
  for (let i = 0; i < pool.head.length; ) {
    const el = pool.head[i];
    if (el.state !== 'THREAD_DONE') {
      i++;
      continue;
    }
    pool.head.splice(i, 1);
    yield* el.cb(el.opaque, el.ret);
  }
  return leave(F_completion_bh, undefined);
}
