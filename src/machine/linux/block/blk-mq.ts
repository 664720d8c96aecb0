/**
 * block/blk-mq.c, just enough of it to feed a blk-mq driver the way Linux
 * does: a tag set whose tags own a static struct request and the driver's
 * per-request data (the pdu) in guest RAM; per hardware queue a dispatch
 * list, a free-tag stack and a stopped bit; dispatch with `bd.last` on the
 * last request of a run; requeue on BLK_STS_DEV_RESOURCE until the driver
 * restarts the stopped queue; completion that ends the request and frees
 * its tag.
 *
 * Work Linux defers to kblockd (an async queue run, a run after a tag is
 * freed) is only marked here; the machine runs it on the vCPU after the
 * interrupt returns, through kblockd_run_pending.
 *
 * This file must not depend on virtio: the driver plugs in through BlkMqOps.
 */
import { Co, STOP, enter, leave } from '../../sim/sim';
import { OPTIMIZED_OUT, defineFn } from '../../sim/frames';
import type { KernelObject } from '../../sim/pointers';
import type { Gpa } from '../../memory/guest-memory';
import type { GuestAllocator } from '../../memory/allocator';
import type { BlkOp, BlkStatus, BlockRequest } from '../platform';

/** What queue_rq may return: a completion status, or "try again once the driver restarts the queue". */
export type QueueRqStatus = BlkStatus | 'BLK_STS_DEV_RESOURCE';

/** struct blk_mq_ops: the driver's half. */
export interface BlkMqOps {
  queue_rq(hctx: BlkMqHwCtx, bd: BlkMqQueueData): Co<QueueRqStatus>;
  /** Kick the device for requests queued with bd.last false (a run that ended early). */
  commit_rqs: ((hctx: BlkMqHwCtx) => Co<void>) | null;
  /** The driver's completion (mq_ops->complete), which ends with blk_mq_end_request. */
  complete(rq: Request): Co<void>;
  /** Build the driver's per-request data living at `rq.pdu_kaddr` (blk_mq_tag_set.cmd_size bytes). */
  init_request(set: BlkMqTagSet, rq: StaticRq): unknown;
}

/** sizeof(struct request) stand-in: the pdu follows it, the pair rounded up to a cache line. */
const REQUEST_STRUCT_SIZE = 0x140;
const CACHE_LINE = 64;
const PAGE_SIZE = 4096;

/** struct blk_mq_tag_set. */
export class BlkMqTagSet {
  /** tags[hctx]: the static requests of each hardware queue. */
  readonly tags: StaticRq[][] = [];
  constructor(
    readonly ops: BlkMqOps,
    readonly nr_hw_queues: number,
    readonly queue_depth: number,
    readonly cmd_size: number,
    readonly driver_data: unknown,
  ) {}
}

/** tags->static_rqs[tag]: the struct request a tag stands for, and the driver's pdu right after it. */
export class StaticRq implements KernelObject {
  /** The struct request in guest RAM. */
  readonly kaddr: Gpa;
  readonly pdu_kaddr: Gpa;
  pdu: unknown = null;
  /** The request holding this tag now. */
  rq: Request | null = null;
  constructor(readonly hctx_idx: number, readonly tag: number, kaddr: Gpa) {
    this.kaddr = kaddr;
    this.pdu_kaddr = kaddr + REQUEST_STRUCT_SIZE;
  }
}

/**
 * struct blk_mq_queue_data. Linux builds it on the dispatching task's stack;
 * the model keeps one per hardware queue in guest RAM so that frames show an address.
 */
export class BlkMqQueueData implements KernelObject {
  rq!: Request;
  last = false;
  constructor(readonly kaddr: Gpa) {}
}

/** struct blk_mq_hw_ctx. */
export class BlkMqHwCtx implements KernelObject {
  readonly kaddr: Gpa;
  /** BLK_MQ_S_STOPPED: the driver ran out of ring space. */
  stopped = false;
  /** hctx->dispatch: requests waiting for a tag, or requeued by the driver. */
  readonly dispatch: Request[] = [];
  /** A tag-less request is waiting: run the queue when a tag is freed. */
  tag_waiting = false;
  /** hctx->run_work queued on kblockd. */
  run_work_pending = false;
  readonly free_tags: number[] = [];
  readonly bd: BlkMqQueueData;
  /** The driver's per-queue data (hctx->driver_data). */
  driver_data: unknown = null;

  constructor(
    readonly queue: RequestQueue,
    readonly queue_num: number,
    readonly static_rqs: StaticRq[],
    alloc: GuestAllocator,
  ) {
    this.kaddr = alloc.alloc(0x200, CACHE_LINE);
    this.bd = new BlkMqQueueData(alloc.alloc(16, 16));
    // Tag 0 first; a freed tag is the next one handed out.
    for (let t = static_rqs.length - 1; t >= 0; t--) this.free_tags.push(t);
  }
}

/** struct request_queue. */
export class RequestQueue implements KernelObject {
  readonly kaddr: Gpa;
  readonly hctxs: BlkMqHwCtx[] = [];
  /** Requests submitted and not yet ended, including those waiting for a tag. */
  inflight = 0;
  constructor(
    readonly tag_set: BlkMqTagSet,
    readonly queuedata: unknown,
    alloc: GuestAllocator,
  ) {
    this.kaddr = alloc.alloc(0x600, CACHE_LINE);
    for (let i = 0; i < tag_set.nr_hw_queues; i++) this.hctxs.push(new BlkMqHwCtx(this, i, tag_set.tags[i], alloc));
  }
}

/**
 * A block request. It gets a tag (and with it `kaddr`, the driver's
 * per-request data, and `pdu`) when it is dispatched; until then `tag` is -1
 * and `kaddr` 0. After it ends, both keep the values it had.
 */
export class Request implements BlockRequest {
  kaddr: Gpa = 0;
  tag = -1;
  status: BlkStatus | null = null;
  virtioStatus: number | null = null;
  onDone: ((rq: BlockRequest) => void) | null = null;
  hctx: BlkMqHwCtx | null = null;
  static_rq: StaticRq | null = null;
  /** MQ_RQ_IN_FLIGHT once the driver has it (blk_mq_start_request). */
  started = false;

  constructor(
    readonly q: RequestQueue,
    public op: BlkOp,
    public sector: number,
    public data: Gpa | null,
    public nr_bytes: number,
    public unmap: boolean,
  ) {}
}

/** Allocate the static requests of every hardware queue and let the driver build its pdus. */
export function blk_mq_alloc_tag_set(set: BlkMqTagSet, alloc: GuestAllocator): void {
  const stride = Math.ceil((REQUEST_STRUCT_SIZE + set.cmd_size) / CACHE_LINE) * CACHE_LINE;
  for (let h = 0; h < set.nr_hw_queues; h++) {
    const base = alloc.alloc(stride * set.queue_depth, PAGE_SIZE);
    const rqs: StaticRq[] = [];
    for (let t = 0; t < set.queue_depth; t++) {
      const srq = new StaticRq(h, t, base + stride * t);
      srq.pdu = set.ops.init_request(set, srq);
      rqs.push(srq);
    }
    set.tags.push(rqs);
  }
}

export function blk_mq_init_queue(set: BlkMqTagSet, queuedata: unknown, alloc: GuestAllocator): RequestQueue {
  return new RequestQueue(set, queuedata, alloc);
}

/** A new request, not yet submitted. `unmap` matters for write-zeroes only (REQ_NOUNMAP clear). */
export function blk_mq_alloc_request(
  q: RequestQueue,
  op: BlkOp,
  sector: number,
  data: Gpa | null,
  nr_bytes: number,
  unmap = false,
): Request {
  return new Request(q, op, sector, data, nr_bytes, unmap);
}

export function blk_mq_rq_to_pdu<T>(rq: Request): T {
  return rq.static_rq!.pdu as T;
}

/** Requests submitted and not ended: 0 means the guest's block layer is idle. */
export function blk_mq_queue_inflight(q: RequestQueue): number {
  return q.inflight;
}

/** Is there kblockd work for kblockd_run_pending? */
export function blk_mq_work_pending(q: RequestQueue): boolean {
  for (const h of q.hctxs) if (h.run_work_pending) return true;
  return false;
}

export function blk_mq_stop_hw_queue(hctx: BlkMqHwCtx): void {
  hctx.stopped = true;
}

export function blk_mq_start_request(rq: Request): void {
  rq.started = true;
}

/** Give `rq` a tag of its hardware queue if it has none; false when all are taken. */
function blk_mq_get_driver_tag(rq: Request): boolean {
  if (rq.tag >= 0 && rq.static_rq !== null && rq.static_rq.rq === rq) return true;
  const hctx = rq.hctx!;
  const tag = hctx.free_tags.pop();
  if (tag === undefined) return false;
  const srq = hctx.static_rqs[tag];
  srq.rq = rq;
  rq.static_rq = srq;
  rq.tag = tag;
  rq.kaddr = srq.pdu_kaddr;
  return true;
}

/**
 * Submit a batch, as a plug flush does: queue them on their hardware queue
 * (the one of `cpu`) and run it now. The driver sees bd.last on the last
 * request it is given in this run.
 */
export function* blk_mq_submit_requests(q: RequestQueue, rqs: readonly Request[], cpu = 0): Co<void> {
  const hctx = q.hctxs[cpu % q.hctxs.length];
  for (const rq of rqs) {
    rq.hctx = hctx;
    q.inflight++;
    hctx.dispatch.push(rq);
  }
  yield* blk_mq_run_hw_queue(hctx, false);
}

const F_blk_mq_run_hw_queue = defineFn('blk_mq_run_hw_queue', ['hctx', 'async']);
export function* blk_mq_run_hw_queue(hctx: BlkMqHwCtx, async: boolean): Co<void> {
  if (enter(F_blk_mq_run_hw_queue, hctx, async)) yield STOP;
  if (hctx.stopped || hctx.dispatch.length === 0) return leave(F_blk_mq_run_hw_queue, undefined);
  if (async) {
    // kblockd_mod_delayed_work_on: the run happens later, in kblockd_run_pending.
    hctx.run_work_pending = true;
    return leave(F_blk_mq_run_hw_queue, undefined);
  }
  yield* blk_mq_sched_dispatch_requests(hctx);
  return leave(F_blk_mq_run_hw_queue, undefined);
}

const F_blk_mq_sched_dispatch_requests = defineFn('blk_mq_sched_dispatch_requests', ['hctx']);
export function* blk_mq_sched_dispatch_requests(hctx: BlkMqHwCtx): Co<void> {
  if (enter(F_blk_mq_sched_dispatch_requests, hctx)) yield STOP;
  if (!hctx.stopped && hctx.dispatch.length > 0) yield* blk_mq_dispatch_rq_list(hctx, hctx.dispatch, 0);
  return leave(F_blk_mq_sched_dispatch_requests, undefined);
}

const F_blk_mq_dispatch_rq_list = defineFn('blk_mq_dispatch_rq_list', ['hctx', 'list', 'nr_budgets']);
/**
 * Hand requests from `list` to the driver until it is empty, a tag runs out
 * or the driver pushes back. A request the driver cannot take now goes back
 * to the head of the list; one it fails is ended. If the run stopped early
 * after queueing some with bd.last false, commit_rqs kicks the device.
 */
export function* blk_mq_dispatch_rq_list(hctx: BlkMqHwCtx, list: Request[], nr_budgets: number): Co<boolean> {
  if (enter(F_blk_mq_dispatch_rq_list, hctx, OPTIMIZED_OUT, nr_budgets)) yield STOP;
  const ops = hctx.queue.tag_set.ops;
  const bd = hctx.bd;
  let queued = 0;
  let errors = 0;
  let ret: QueueRqStatus = 'BLK_STS_OK';
  while (list.length > 0) {
    const rq = list[0];
    if (!blk_mq_get_driver_tag(rq)) {
      hctx.tag_waiting = true; // blk_mq_mark_tag_wait: re-run when a tag is freed
      break;
    }
    list.shift();
    bd.rq = rq;
    bd.last = list.length === 0 || !blk_mq_get_driver_tag(list[0]);
    ret = yield* ops.queue_rq(hctx, bd);
    if (ret === 'BLK_STS_OK') {
      queued++;
    } else if (ret === 'BLK_STS_DEV_RESOURCE' || ret === 'BLK_STS_RESOURCE') {
      list.unshift(rq); // blk_mq_handle_dev_resource
      break;
    } else {
      errors++;
      yield* blk_mq_end_request(rq, ret);
    }
  }
  const stoppedEarly = list.length > 0 || errors > 0 || ret === 'BLK_STS_DEV_RESOURCE' || ret === 'BLK_STS_RESOURCE';
  if (stoppedEarly && ops.commit_rqs !== null && queued > 0) yield* ops.commit_rqs(hctx);
  // BLK_STS_RESOURCE (memory, not ring space): Linux retries after a delay; here, on the next kblockd run.
  if (ret === 'BLK_STS_RESOURCE') hctx.run_work_pending = true;
  return leave(F_blk_mq_dispatch_rq_list, queued + errors > 0);
}

const F_blk_mq_start_stopped_hw_queues = defineFn('blk_mq_start_stopped_hw_queues', ['q', 'async']);
/** The driver has room again: clear the stopped bit and run what was waiting. */
export function* blk_mq_start_stopped_hw_queues(q: RequestQueue, async: boolean): Co<void> {
  if (enter(F_blk_mq_start_stopped_hw_queues, q, async)) yield STOP;
  for (const hctx of q.hctxs) {
    if (!hctx.stopped) continue;
    hctx.stopped = false;
    yield* blk_mq_run_hw_queue(hctx, async);
  }
  return leave(F_blk_mq_start_stopped_hw_queues, undefined);
}

const F_blk_mq_complete_request = defineFn('blk_mq_complete_request', ['rq']);
/** Single CPU: no IPI to the submitting CPU, the driver's complete runs right here. */
export function* blk_mq_complete_request(rq: Request): Co<void> {
  if (enter(F_blk_mq_complete_request, rq.static_rq)) yield STOP;
  yield* rq.q.tag_set.ops.complete(rq);
  return leave(F_blk_mq_complete_request, undefined);
}

const F_blk_mq_end_request = defineFn('blk_mq_end_request', ['rq', 'error']);
/** End `rq` with `error`, free its tag (waking a tag waiter), then tell the submitter. */
export function* blk_mq_end_request(rq: Request, error: BlkStatus): Co<void> {
  if (enter(F_blk_mq_end_request, rq.static_rq, error)) yield STOP;
  rq.status = error;
  rq.started = false;
  const hctx = rq.hctx!;
  const srq = rq.static_rq;
  if (srq !== null && srq.rq === rq) {
    srq.rq = null;
    hctx.free_tags.push(rq.tag);
  }
  rq.q.inflight--;
  if (hctx.tag_waiting) {
    hctx.tag_waiting = false;
    yield* blk_mq_run_hw_queue(hctx, true);
  }
  if (rq.onDone !== null) rq.onDone(rq);
  return leave(F_blk_mq_end_request, undefined);
}

const F_blk_mq_run_work_fn = defineFn('blk_mq_run_work_fn', ['work']);
/** kblockd's work item for a hardware queue. */
export function* blk_mq_run_work_fn(hctx: BlkMqHwCtx): Co<void> {
  if (enter(F_blk_mq_run_work_fn, hctx)) yield STOP;
  hctx.run_work_pending = false;
  yield* blk_mq_sched_dispatch_requests(hctx);
  return leave(F_blk_mq_run_work_fn, undefined);
}

/** Run the kblockd work queued so far (once per hardware queue; work it queues waits for the next call). */
export function* kblockd_run_pending(q: RequestQueue): Co<void> {
  for (const hctx of q.hctxs) if (hctx.run_work_pending) yield* blk_mq_run_work_fn(hctx);
}
