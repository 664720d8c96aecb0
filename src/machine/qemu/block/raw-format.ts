/**
 * The raw format driver (block/raw-format.c): `-drive format=raw` puts this
 * node on top of the file node. It passes every request to its `file` child
 * unchanged (no offset, no size limit configured).
 */
import { Co, STOP, enter, leave } from '../../sim/sim';
import { defineFn } from '../../sim/frames';
import { BdrvChild, BlockDriver, BlockDriverState, QEMUIOVector, BDRV_REQ_ZERO_WRITE } from './block-int';
import { bdrv_co_pdiscard, bdrv_co_preadv_part, bdrv_co_pwritev_part } from './io';

const F_preadv = defineFn('raw_co_preadv', ['bs', 'offset', 'bytes', 'qiov'], { file: 'block/raw-format.ts' });
function* raw_co_preadv(bs: BlockDriverState, offset: number, bytes: number, qiov: QEMUIOVector, flags: number): Co<number> {
  if (enter(F_preadv, bs, offset, bytes, qiov)) yield STOP;
  const ret = yield* bdrv_co_preadv_part(bs.file, offset, bytes, qiov, flags);
  return leave(F_preadv, ret);
}

const F_pwritev = defineFn('raw_co_pwritev', ['bs', 'offset', 'bytes', 'qiov'], { file: 'block/raw-format.ts' });
function* raw_co_pwritev(bs: BlockDriverState, offset: number, bytes: number, qiov: QEMUIOVector, flags: number): Co<number> {
  if (enter(F_pwritev, bs, offset, bytes, qiov)) yield STOP;
  const ret = yield* bdrv_co_pwritev_part(bs.file, offset, bytes, qiov, flags);
  return leave(F_pwritev, ret);
}

const F_pwrite_zeroes = defineFn('raw_co_pwrite_zeroes', ['bs', 'offset', 'bytes', 'flags'], { file: 'block/raw-format.ts' });
function* raw_co_pwrite_zeroes(bs: BlockDriverState, offset: number, bytes: number, flags: number): Co<number> {
  if (enter(F_pwrite_zeroes, bs, offset, bytes, flags)) yield STOP;
  const ret = yield* bdrv_co_pwritev_part(bs.file, offset, bytes, null, flags | BDRV_REQ_ZERO_WRITE);
  return leave(F_pwrite_zeroes, ret);
}

const F_pdiscard = defineFn('raw_co_pdiscard', ['bs', 'offset', 'bytes'], { file: 'block/raw-format.ts' });
function* raw_co_pdiscard(bs: BlockDriverState, offset: number, bytes: number): Co<number> {
  if (enter(F_pdiscard, bs, offset, bytes)) yield STOP;
  const ret = yield* bdrv_co_pdiscard(bs.file, offset, bytes);
  return leave(F_pdiscard, ret);
}

export const bdrv_raw: BlockDriver = {
  format_name: 'raw',
  bdrv_co_preadv: raw_co_preadv,
  bdrv_co_pwritev: raw_co_pwritev,
  bdrv_co_pwrite_zeroes: raw_co_pwrite_zeroes,
  bdrv_co_pdiscard: raw_co_pdiscard,
  bdrv_co_flush_to_disk: null,
  bdrv_io_plug: null,
  bdrv_io_unplug: null,
};

/** raw_open: a format node over `file`. */
export function raw_open(file: BdrvChild): BlockDriverState {
  return new BlockDriverState(bdrv_raw, file, file.bs.total_sectors);
}
