/**
 * Generic request paths of the block layer (block/io.c): every read and
 * write passes bdrv_co_preadv_part / bdrv_co_pwritev_part, the aligned
 * variant, then the driver. Runs inside the request's coroutine.
 */
import { Co, STOP, enter, leave } from '../../sim/sim';
import { defineFn } from '../../sim/frames';
import { BDRV_REQ_ZERO_WRITE, BdrvChild, BlockDriverState, QEMUIOVector } from './block-int';

const EIO = 5;
const ENOMEDIUM = 123;

function rangeOk(bs: BlockDriverState, offset: number, bytes: number): boolean {
  return offset >= 0 && bytes >= 0 && offset + bytes <= bs.total_sectors * 512;
}

const F_driver_preadv = defineFn('bdrv_driver_preadv', ['bs', 'offset', 'bytes', 'qiov']);
function* bdrv_driver_preadv(bs: BlockDriverState, offset: number, bytes: number, qiov: QEMUIOVector, flags: number): Co<number> {
  if (enter(F_driver_preadv, bs, offset, bytes, qiov)) yield STOP;
  const ret = yield* bs.drv.bdrv_co_preadv(bs, offset, bytes, qiov, flags);
  return leave(F_driver_preadv, ret);
}

const F_aligned_preadv = defineFn('bdrv_aligned_preadv', ['child', 'req', 'offset', 'bytes']);
function* bdrv_aligned_preadv(child: BdrvChild, offset: number, bytes: number, qiov: QEMUIOVector, flags: number): Co<number> {
  if (enter(F_aligned_preadv, child, qiov, offset, bytes)) yield STOP;
  const ret = yield* bdrv_driver_preadv(child.bs, offset, bytes, qiov, flags);
  return leave(F_aligned_preadv, ret);
}

const F_preadv_part = defineFn('bdrv_co_preadv_part', ['child', 'offset', 'bytes', 'qiov']);
export function* bdrv_co_preadv_part(child: BdrvChild | null, offset: number, bytes: number, qiov: QEMUIOVector, flags: number): Co<number> {
  if (enter(F_preadv_part, child, offset, bytes, qiov)) yield STOP;
  if (child === null) return leave(F_preadv_part, -ENOMEDIUM);
  if (!rangeOk(child.bs, offset, bytes)) return leave(F_preadv_part, -EIO);
  const ret = yield* bdrv_aligned_preadv(child, offset, bytes, qiov, flags);
  return leave(F_preadv_part, ret);
}

const F_driver_pwritev = defineFn('bdrv_driver_pwritev', ['bs', 'offset', 'bytes', 'qiov']);
function* bdrv_driver_pwritev(bs: BlockDriverState, offset: number, bytes: number, qiov: QEMUIOVector, flags: number): Co<number> {
  if (enter(F_driver_pwritev, bs, offset, bytes, qiov)) yield STOP;
  const ret = yield* bs.drv.bdrv_co_pwritev(bs, offset, bytes, qiov, flags);
  return leave(F_driver_pwritev, ret);
}

const F_do_pwrite_zeroes = defineFn('bdrv_co_do_pwrite_zeroes', ['bs', 'offset', 'bytes', 'flags']);
function* bdrv_co_do_pwrite_zeroes(bs: BlockDriverState, offset: number, bytes: number, flags: number): Co<number> {
  if (enter(F_do_pwrite_zeroes, bs, offset, bytes, flags)) yield STOP;
  const ret = yield* bs.drv.bdrv_co_pwrite_zeroes(bs, offset, bytes, flags);
  return leave(F_do_pwrite_zeroes, ret);
}

const F_aligned_pwritev = defineFn('bdrv_aligned_pwritev', ['child', 'req', 'offset', 'bytes']);
function* bdrv_aligned_pwritev(child: BdrvChild, offset: number, bytes: number, qiov: QEMUIOVector | null, flags: number): Co<number> {
  if (enter(F_aligned_pwritev, child, qiov, offset, bytes)) yield STOP;
  const ret =
    flags & BDRV_REQ_ZERO_WRITE || qiov === null
      ? yield* bdrv_co_do_pwrite_zeroes(child.bs, offset, bytes, flags)
      : yield* bdrv_driver_pwritev(child.bs, offset, bytes, qiov, flags);
  return leave(F_aligned_pwritev, ret);
}

const F_pwritev_part = defineFn('bdrv_co_pwritev_part', ['child', 'offset', 'bytes', 'qiov']);
export function* bdrv_co_pwritev_part(child: BdrvChild | null, offset: number, bytes: number, qiov: QEMUIOVector | null, flags: number): Co<number> {
  if (enter(F_pwritev_part, child, offset, bytes, qiov)) yield STOP;
  if (child === null) return leave(F_pwritev_part, -ENOMEDIUM);
  if (!rangeOk(child.bs, offset, bytes)) return leave(F_pwritev_part, -EIO);
  const ret = yield* bdrv_aligned_pwritev(child, offset, bytes, qiov, flags);
  return leave(F_pwritev_part, ret);
}

const F_flush = defineFn('bdrv_co_flush', ['bs']);
/** Flush a node: its driver's cache to disk, then its children. */
export function* bdrv_co_flush(bs: BlockDriverState): Co<number> {
  if (enter(F_flush, bs)) yield STOP;
  let ret = 0;
  if (bs.drv.bdrv_co_flush_to_disk) ret = yield* bs.drv.bdrv_co_flush_to_disk(bs);
  if (ret === 0 && bs.file) ret = yield* bdrv_co_flush(bs.file.bs);
  return leave(F_flush, ret);
}

const F_pdiscard = defineFn('bdrv_co_pdiscard', ['child', 'offset', 'bytes']);
export function* bdrv_co_pdiscard(child: BdrvChild | null, offset: number, bytes: number): Co<number> {
  if (enter(F_pdiscard, child, offset, bytes)) yield STOP;
  if (child === null) return leave(F_pdiscard, -ENOMEDIUM);
  if (!rangeOk(child.bs, offset, bytes)) return leave(F_pdiscard, -EIO);
  const ret = yield* child.bs.drv.bdrv_co_pdiscard(child.bs, offset, bytes);
  return leave(F_pdiscard, ret);
}

const F_io_plug = defineFn('bdrv_io_plug', ['bs']);
/** Children first, then this node's driver on the first plug. */
export function* bdrv_io_plug(bs: BlockDriverState): Co<void> {
  if (enter(F_io_plug, bs)) yield STOP;
  if (bs.file) yield* bdrv_io_plug(bs.file.bs);
  if (bs.io_plugged++ === 0 && bs.drv.bdrv_io_plug) bs.drv.bdrv_io_plug(bs);
  return leave(F_io_plug, undefined);
}

const F_io_unplug = defineFn('bdrv_io_unplug', ['bs']);
/** This node's driver on the last unplug (it submits what was queued), then the children. */
export function* bdrv_io_unplug(bs: BlockDriverState): Co<void> {
  if (enter(F_io_unplug, bs)) yield STOP;
  if (--bs.io_plugged === 0 && bs.drv.bdrv_io_unplug) yield* bs.drv.bdrv_io_unplug(bs);
  if (bs.file) yield* bdrv_io_unplug(bs.file.bs);
  return leave(F_io_unplug, undefined);
}
