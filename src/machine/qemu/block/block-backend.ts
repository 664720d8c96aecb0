/**
 * BlockBackend, the device's handle on its drive (block/block-backend.c).
 *
 * blk_aio_* calls are the device's asynchronous entry: each creates a
 * coroutine (`blk_aio_read_entry`, ...) and enters it at once. The coroutine
 * runs the request down the graph until the AIO engine makes it yield; when
 * it resumes and finishes it calls `blk_aio_complete`, which runs the
 * device's callback (virtio_blk_rw_complete) — in the coroutine, which is
 * why `qemu bt` there shows a `Coroutine at` section.
 */
import { Co, S, STOP, WaitQueue, block, enter, leave } from '../../sim/sim';
import { defineFn } from '../../sim/frames';
import type { HostObject } from '../../sim/pointers';
import { BdrvChild, BDRV_REQ_MAY_UNMAP, BDRV_REQ_ZERO_WRITE, QEMUIOVector } from './block-int';
import { bdrv_co_flush, bdrv_co_pdiscard, bdrv_co_preadv_part, bdrv_co_pwritev_part, bdrv_io_plug, bdrv_io_unplug } from './io';
import { AioContext, aio_bh_new, aio_co_enter, qemu_bh_schedule } from '../util/async';
import { CoroutineEntry, qemu_coroutine_create } from '../util/qemu-coroutine';

export type BlockCompletionFunc = (opaque: unknown, ret: number) => Co<void>;

const NOT_DONE = 0x7fffffff;
const EROFS = 30;

export class BlockBackend implements HostObject {
  readonly ptr: number;
  in_flight = 0;
  /** Woken when the last in-flight request completes (what blk_drain waits for). */
  readonly drained = new WaitQueue('blk_drain');
  constructor(readonly root: BdrvChild, public ctx: AioContext, readonly readOnly: boolean) {
    this.ptr = S.ptrs.alloc('heap', 0x3a0);
  }
  get total_sectors(): number {
    return this.root.bs.total_sectors;
  }
}

/** BlkAioEmAIOCB with its BlkRwCo. */
export class BlkAioEmAIOCB implements HostObject {
  readonly ptr: number;
  ret = NOT_DONE;
  has_returned = false;
  constructor(
    readonly blk: BlockBackend,
    readonly offset: number,
    readonly bytes: number,
    readonly qiov: QEMUIOVector | null,
    readonly flags: number,
    readonly cb: BlockCompletionFunc,
    readonly cbName: string,
    readonly opaque: unknown,
  ) {
    this.ptr = S.ptrs.alloc('heap', 0x60);
  }
}

const F_complete = defineFn('blk_aio_complete', ['acb']);
function* blk_aio_complete(acb: BlkAioEmAIOCB): Co<void> {
  if (enter(F_complete, acb)) yield STOP;
  if (acb.has_returned) {
    yield* acb.cb(acb.opaque, acb.ret);
    if (--acb.blk.in_flight === 0) acb.blk.drained.wake();
  }
  return leave(F_complete, undefined);
}

const F_complete_bh = defineFn('blk_aio_complete_bh', ['opaque']);
function* blk_aio_complete_bh(opaque: unknown): Co<void> {
  if (enter(F_complete_bh, opaque)) yield STOP;
  yield* blk_aio_complete(opaque as BlkAioEmAIOCB);
  return leave(F_complete_bh, undefined);
}

const F_prwv = defineFn('blk_aio_prwv', ['blk', 'offset', 'bytes', 'iobuf']);
function* blk_aio_prwv(
  blk: BlockBackend, offset: number, bytes: number, qiov: QEMUIOVector | null,
  entry: CoroutineEntry, entryName: string, flags: number, cb: BlockCompletionFunc, cbName: string, opaque: unknown,
): Co<BlkAioEmAIOCB> {
  if (enter(F_prwv, blk, offset, bytes, qiov)) yield STOP;
  blk.in_flight++;
  const acb = new BlkAioEmAIOCB(blk, offset, bytes, qiov, flags, cb, cbName, opaque);
  const co = yield* qemu_coroutine_create(entry, entryName, acb);
  yield* aio_co_enter(blk.ctx, co);
  acb.has_returned = true;
  if (acb.ret !== NOT_DONE) {
    // The request finished before we got here: complete from a bottom half, never re-entrantly.
    yield* qemu_bh_schedule(aio_bh_new(blk.ctx, 'blk_aio_complete_bh', blk_aio_complete_bh, acb));
  }
  return leave(F_prwv, acb);
}

// ---- coroutine bodies ----

const F_do_preadv = defineFn('blk_co_do_preadv_part', ['blk', 'offset', 'bytes', 'qiov']);
function* blk_co_do_preadv_part(blk: BlockBackend, offset: number, bytes: number, qiov: QEMUIOVector, flags: number): Co<number> {
  if (enter(F_do_preadv, blk, offset, bytes, qiov)) yield STOP;
  const ret = yield* bdrv_co_preadv_part(blk.root, offset, bytes, qiov, flags);
  return leave(F_do_preadv, ret);
}

const F_do_pwritev = defineFn('blk_co_do_pwritev_part', ['blk', 'offset', 'bytes', 'qiov']);
function* blk_co_do_pwritev_part(blk: BlockBackend, offset: number, bytes: number, qiov: QEMUIOVector | null, flags: number): Co<number> {
  if (enter(F_do_pwritev, blk, offset, bytes, qiov)) yield STOP;
  // A read-only drive (readonly=on) refuses writes before they reach the graph.
  if (blk.readOnly) return leave(F_do_pwritev, -EROFS);
  const ret = yield* bdrv_co_pwritev_part(blk.root, offset, bytes, qiov, flags);
  return leave(F_do_pwritev, ret);
}

const F_read_entry = defineFn('blk_aio_read_entry', ['opaque']);
function* blk_aio_read_entry(opaque: unknown): Co<void> {
  const acb = opaque as BlkAioEmAIOCB;
  if (enter(F_read_entry, acb)) yield STOP;
  acb.ret = yield* blk_co_do_preadv_part(acb.blk, acb.offset, acb.bytes, acb.qiov!, acb.flags);
  yield* blk_aio_complete(acb);
  return leave(F_read_entry, undefined);
}

const F_write_entry = defineFn('blk_aio_write_entry', ['opaque']);
function* blk_aio_write_entry(opaque: unknown): Co<void> {
  const acb = opaque as BlkAioEmAIOCB;
  if (enter(F_write_entry, acb)) yield STOP;
  acb.ret = yield* blk_co_do_pwritev_part(acb.blk, acb.offset, acb.bytes, acb.qiov, acb.flags);
  yield* blk_aio_complete(acb);
  return leave(F_write_entry, undefined);
}

const F_do_flush = defineFn('blk_co_do_flush', ['blk']);
function* blk_co_do_flush(blk: BlockBackend): Co<number> {
  if (enter(F_do_flush, blk)) yield STOP;
  const ret = yield* bdrv_co_flush(blk.root.bs);
  return leave(F_do_flush, ret);
}

const F_flush_entry = defineFn('blk_aio_flush_entry', ['opaque']);
function* blk_aio_flush_entry(opaque: unknown): Co<void> {
  const acb = opaque as BlkAioEmAIOCB;
  if (enter(F_flush_entry, acb)) yield STOP;
  acb.ret = yield* blk_co_do_flush(acb.blk);
  yield* blk_aio_complete(acb);
  return leave(F_flush_entry, undefined);
}

const F_do_pdiscard = defineFn('blk_co_do_pdiscard', ['blk', 'offset', 'bytes']);
function* blk_co_do_pdiscard(blk: BlockBackend, offset: number, bytes: number): Co<number> {
  if (enter(F_do_pdiscard, blk, offset, bytes)) yield STOP;
  if (blk.readOnly) return leave(F_do_pdiscard, -EROFS);
  const ret = yield* bdrv_co_pdiscard(blk.root, offset, bytes);
  return leave(F_do_pdiscard, ret);
}

const F_pdiscard_entry = defineFn('blk_aio_pdiscard_entry', ['opaque']);
function* blk_aio_pdiscard_entry(opaque: unknown): Co<void> {
  const acb = opaque as BlkAioEmAIOCB;
  if (enter(F_pdiscard_entry, acb)) yield STOP;
  acb.ret = yield* blk_co_do_pdiscard(acb.blk, acb.offset, acb.bytes);
  yield* blk_aio_complete(acb);
  return leave(F_pdiscard_entry, undefined);
}

// ---- the device-facing API ----

const F_preadv = defineFn('blk_aio_preadv', ['blk', 'offset', 'qiov', 'flags']);
export function* blk_aio_preadv(blk: BlockBackend, offset: number, qiov: QEMUIOVector, flags: number, cb: BlockCompletionFunc, cbName: string, opaque: unknown): Co<BlkAioEmAIOCB> {
  if (enter(F_preadv, blk, offset, qiov, flags)) yield STOP;
  const acb = yield* blk_aio_prwv(blk, offset, qiov.size, qiov, blk_aio_read_entry, 'blk_aio_read_entry', flags, cb, cbName, opaque);
  return leave(F_preadv, acb);
}

const F_pwritev = defineFn('blk_aio_pwritev', ['blk', 'offset', 'qiov', 'flags']);
export function* blk_aio_pwritev(blk: BlockBackend, offset: number, qiov: QEMUIOVector, flags: number, cb: BlockCompletionFunc, cbName: string, opaque: unknown): Co<BlkAioEmAIOCB> {
  if (enter(F_pwritev, blk, offset, qiov, flags)) yield STOP;
  const acb = yield* blk_aio_prwv(blk, offset, qiov.size, qiov, blk_aio_write_entry, 'blk_aio_write_entry', flags, cb, cbName, opaque);
  return leave(F_pwritev, acb);
}

const F_flush = defineFn('blk_aio_flush', ['blk', 'cb', 'opaque']);
export function* blk_aio_flush(blk: BlockBackend, cb: BlockCompletionFunc, cbName: string, opaque: unknown): Co<BlkAioEmAIOCB> {
  if (enter(F_flush, blk, cbName, opaque)) yield STOP;
  const acb = yield* blk_aio_prwv(blk, 0, 0, null, blk_aio_flush_entry, 'blk_aio_flush_entry', 0, cb, cbName, opaque);
  return leave(F_flush, acb);
}

const F_pdiscard = defineFn('blk_aio_pdiscard', ['blk', 'offset', 'bytes', 'cb']);
export function* blk_aio_pdiscard(blk: BlockBackend, offset: number, bytes: number, cb: BlockCompletionFunc, cbName: string, opaque: unknown): Co<BlkAioEmAIOCB> {
  if (enter(F_pdiscard, blk, offset, bytes, cbName)) yield STOP;
  const acb = yield* blk_aio_prwv(blk, offset, bytes, null, blk_aio_pdiscard_entry, 'blk_aio_pdiscard_entry', 0, cb, cbName, opaque);
  return leave(F_pdiscard, acb);
}

const F_pwrite_zeroes = defineFn('blk_aio_pwrite_zeroes', ['blk', 'offset', 'bytes', 'flags']);
export function* blk_aio_pwrite_zeroes(blk: BlockBackend, offset: number, bytes: number, unmap: boolean, cb: BlockCompletionFunc, cbName: string, opaque: unknown): Co<BlkAioEmAIOCB> {
  const flags = BDRV_REQ_ZERO_WRITE | (unmap ? BDRV_REQ_MAY_UNMAP : 0);
  if (enter(F_pwrite_zeroes, blk, offset, bytes, flags)) yield STOP;
  const acb = yield* blk_aio_prwv(blk, offset, bytes, null, blk_aio_write_entry, 'blk_aio_write_entry', flags, cb, cbName, opaque);
  return leave(F_pwrite_zeroes, acb);
}

const F_drain = defineFn('blk_drain', ['blk']);
/**
 * Wait until no request of `blk` is in flight. QEMU polls the AioContext
 * itself here; the machine lets the context's own thread complete them.
 */
export function* blk_drain(blk: BlockBackend): Co<void> {
  if (enter(F_drain, blk)) yield STOP;
  while (blk.in_flight > 0) yield* block(blk.drained);
  return leave(F_drain, undefined);
}

const F_plug = defineFn('blk_io_plug', ['blk']);
export function* blk_io_plug(blk: BlockBackend): Co<void> {
  if (enter(F_plug, blk)) yield STOP;
  yield* bdrv_io_plug(blk.root.bs);
  return leave(F_plug, undefined);
}

const F_unplug = defineFn('blk_io_unplug', ['blk']);
export function* blk_io_unplug(blk: BlockBackend): Co<void> {
  if (enter(F_unplug, blk)) yield STOP;
  yield* bdrv_io_unplug(blk.root.bs);
  return leave(F_unplug, undefined);
}
