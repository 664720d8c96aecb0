/**
 * The block layer's graph (include/block/block_int.h): a BlockBackend's root
 * is a BlockDriverState (the raw format node) whose `file` child is the
 * file-posix node that owns the image. Drivers are tables of coroutine
 * functions, as in QEMU.
 */
import type { Co } from '../../sim/sim';
import { S } from '../../sim/sim';
import type { HostObject } from '../../sim/pointers';
import type { IoVec } from '../util/iov';

/** A QEMUIOVector: the sg list a request reads into or writes from, in guest memory. */
export interface QEMUIOVector extends HostObject {
  readonly iov: IoVec[];
  readonly size: number;
}

export function qemu_iovec(iov: IoVec[]): QEMUIOVector {
  let size = 0;
  for (const v of iov) size += v.len;
  return { ptr: S.ptrs.alloc('heap', 0x20), iov, size };
}

export const BDRV_REQ_ZERO_WRITE = 0x2;
export const BDRV_REQ_MAY_UNMAP = 0x4;
export const BDRV_REQ_FUA = 0x10;

export interface BlockDriver {
  readonly format_name: string;
  bdrv_co_preadv(bs: BlockDriverState, offset: number, bytes: number, qiov: QEMUIOVector, flags: number): Co<number>;
  bdrv_co_pwritev(bs: BlockDriverState, offset: number, bytes: number, qiov: QEMUIOVector, flags: number): Co<number>;
  bdrv_co_pwrite_zeroes(bs: BlockDriverState, offset: number, bytes: number, flags: number): Co<number>;
  bdrv_co_pdiscard(bs: BlockDriverState, offset: number, bytes: number): Co<number>;
  /** Only the protocol driver talks to the disk; format drivers flush through their child. */
  bdrv_co_flush_to_disk: ((bs: BlockDriverState) => Co<number>) | null;
  bdrv_io_plug: ((bs: BlockDriverState) => void) | null;
  bdrv_io_unplug: ((bs: BlockDriverState) => Co<void>) | null;
}

export class BlockDriverState implements HostObject {
  readonly ptr: number;
  io_plugged = 0;
  /** Driver state (bs->opaque). */
  opaque: unknown = null;
  constructor(readonly drv: BlockDriver, readonly file: BdrvChild | null, readonly total_sectors: number) {
    this.ptr = S.ptrs.alloc('heap', 0x4010);
  }
}

export class BdrvChild implements HostObject {
  readonly ptr: number;
  constructor(readonly name: string, readonly bs: BlockDriverState) {
    this.ptr = S.ptrs.alloc('heap', 0x90);
  }
}
