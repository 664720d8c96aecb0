/**
 * The file protocol driver (block/file-posix.c): the node that owns the
 * image file. Reads and writes go to the AIO engine chosen by `aio=`
 * (io_uring, native Linux AIO, or the thread pool); flush, discard and
 * write-zeroes go where QEMU 7.2 sends them (io_uring can flush; the rest
 * runs in the thread pool).
 *
 * `hostIo` stands for the host kernel's preadv/pwritev/fdatasync on the
 * image: it moves bytes between guest RAM and the image, nothing else.
 */
import { Co, S, STOP, enter, leave, sleep } from '../../sim/sim';
import { defineFn } from '../../sim/frames';
import type { GuestMemory } from '../../memory/guest-memory';
import type { BlockImage } from '../../image/image';
import { BlockDriver, BlockDriverState, BDRV_REQ_MAY_UNMAP, QEMUIOVector } from './block-int';
import type { AioContext } from '../util/async';
import { LuringState, luring_co_submit, luring_io_plug, luring_io_unplug } from './io_uring';
import { LinuxAioState, laio_co_submit, laio_io_plug, laio_io_unplug } from './linux-aio';
import { ThreadPool, thread_pool_submit_co } from '../util/thread-pool';

export type AioMode = 'threads' | 'io_uring' | 'native';
export type QemuAioType = 'QEMU_AIO_READ' | 'QEMU_AIO_WRITE' | 'QEMU_AIO_FLUSH' | 'QEMU_AIO_DISCARD' | 'QEMU_AIO_WRITE_ZEROES';

/** bs->opaque of a file node. */
export class BDRVRawState {
  readonly fd = 7;
  luring: LuringState | null = null;
  laio: LinuxAioState | null = null;
  constructor(readonly image: BlockImage, readonly mem: GuestMemory, readonly aio: AioMode, readonly pool: ThreadPool, ctx: AioContext) {
    if (aio === 'io_uring') this.luring = new LuringState(ctx, this);
    if (aio === 'native') this.laio = new LinuxAioState(ctx, this);
  }
}

/** An I/O as the kernel sees it: an operation on the image at an offset, with guest-memory buffers. */
export interface HostIo {
  type: QemuAioType;
  offset: number;
  bytes: number;
  qiov: QEMUIOVector | null;
  unmap: boolean;
}

/** The host kernel's side of one I/O. Returns bytes done (reads/writes) or 0, or -errno. */
export function hostIo(s: BDRVRawState, io: HostIo): number {
  const img = s.image;
  switch (io.type) {
    case 'QEMU_AIO_READ':
    case 'QEMU_AIO_WRITE': {
      let off = io.offset;
      for (const v of io.qiov!.iov) {
        const view = s.mem.slice(v.addr, v.len);
        const r = io.type === 'QEMU_AIO_READ' ? img.pread(view, off) : img.pwrite(view, off);
        if (r < 0) return r;
        off += v.len;
      }
      return io.bytes;
    }
    case 'QEMU_AIO_FLUSH':
      return img.flush();
    case 'QEMU_AIO_DISCARD':
      return img.discard(io.offset, io.bytes);
    case 'QEMU_AIO_WRITE_ZEROES':
      return img.writeZeroes(io.offset, io.bytes, io.unmap);
  }
}

/** Virtual nanoseconds the host takes for an I/O: page-cache speed, fdatasync slower. */
export function hostIoLatency(io: HostIo): number {
  if (io.type === 'QEMU_AIO_FLUSH') return S.rng.between(80_000, 200_000);
  return 2_000 + Math.ceil(io.bytes / 4096) * S.rng.between(1_000, 3_000);
}

function raw(bs: BlockDriverState): BDRVRawState {
  return bs.opaque as BDRVRawState;
}

// ---- work items the thread pool runs (in a worker thread) ----

export class RawPosixAIOData {
  readonly ptr: number;
  constructor(readonly bs: BlockDriverState, readonly io: HostIo) {
    this.ptr = S.ptrs.alloc('mmap', 0x60);
  }
}

const F_handle_rw = defineFn('handle_aiocb_rw', ['opaque']);
export function* handle_aiocb_rw(opaque: unknown): Co<number> {
  const acb = opaque as RawPosixAIOData;
  if (enter(F_handle_rw, acb)) yield STOP;
  yield* sleep(hostIoLatency(acb.io)); // preadv/pwritev blocks this worker
  const ret = hostIo(raw(acb.bs), acb.io);
  return leave(F_handle_rw, ret === acb.io.bytes ? 0 : ret < 0 ? ret : -28);
}

const F_handle_flush = defineFn('handle_aiocb_flush', ['opaque']);
export function* handle_aiocb_flush(opaque: unknown): Co<number> {
  const acb = opaque as RawPosixAIOData;
  if (enter(F_handle_flush, acb)) yield STOP;
  yield* sleep(hostIoLatency(acb.io)); // fdatasync
  return leave(F_handle_flush, hostIo(raw(acb.bs), acb.io));
}

const F_handle_discard = defineFn('handle_aiocb_discard', ['opaque']);
export function* handle_aiocb_discard(opaque: unknown): Co<number> {
  const acb = opaque as RawPosixAIOData;
  if (enter(F_handle_discard, acb)) yield STOP;
  yield* sleep(hostIoLatency(acb.io)); // fallocate(PUNCH_HOLE)
  return leave(F_handle_discard, hostIo(raw(acb.bs), acb.io));
}

const F_handle_wz = defineFn('handle_aiocb_write_zeroes', ['opaque']);
export function* handle_aiocb_write_zeroes(opaque: unknown): Co<number> {
  const acb = opaque as RawPosixAIOData;
  if (enter(F_handle_wz, acb)) yield STOP;
  yield* sleep(hostIoLatency(acb.io)); // fallocate(ZERO_RANGE)
  return leave(F_handle_wz, hostIo(raw(acb.bs), acb.io));
}

const F_pool_submit = defineFn('raw_thread_pool_submit', ['bs', 'func', 'arg']);
function* raw_thread_pool_submit(bs: BlockDriverState, func: (opaque: unknown) => Co<number>, funcName: string, io: HostIo): Co<number> {
  const acb = new RawPosixAIOData(bs, io);
  if (enter(F_pool_submit, bs, funcName, acb)) yield STOP;
  const ret = yield* thread_pool_submit_co(raw(bs).pool, func, funcName, acb);
  return leave(F_pool_submit, ret);
}

// ---- the driver ----

const F_prw = defineFn('raw_co_prw', ['bs', 'offset', 'bytes', 'qiov']);
function* raw_co_prw(bs: BlockDriverState, offset: number, bytes: number, qiov: QEMUIOVector, type: QemuAioType): Co<number> {
  if (enter(F_prw, bs, offset, bytes, qiov)) yield STOP;
  const s = raw(bs);
  const io: HostIo = { type, offset, bytes, qiov, unmap: false };
  let ret: number;
  if (s.luring) ret = yield* luring_co_submit(bs, s.luring, s.fd, io);
  else if (s.laio) ret = yield* laio_co_submit(bs, s.laio, s.fd, io);
  else ret = yield* raw_thread_pool_submit(bs, handle_aiocb_rw, 'handle_aiocb_rw', io);
  return leave(F_prw, ret);
}

const F_preadv = defineFn('raw_co_preadv', ['bs', 'offset', 'bytes', 'qiov'], { file: 'block/file-posix.ts' });
function* raw_co_preadv(bs: BlockDriverState, offset: number, bytes: number, qiov: QEMUIOVector, _flags: number): Co<number> {
  if (enter(F_preadv, bs, offset, bytes, qiov)) yield STOP;
  const ret = yield* raw_co_prw(bs, offset, bytes, qiov, 'QEMU_AIO_READ');
  return leave(F_preadv, ret);
}

const F_pwritev = defineFn('raw_co_pwritev', ['bs', 'offset', 'bytes', 'qiov'], { file: 'block/file-posix.ts' });
function* raw_co_pwritev(bs: BlockDriverState, offset: number, bytes: number, qiov: QEMUIOVector, _flags: number): Co<number> {
  if (enter(F_pwritev, bs, offset, bytes, qiov)) yield STOP;
  const ret = yield* raw_co_prw(bs, offset, bytes, qiov, 'QEMU_AIO_WRITE');
  return leave(F_pwritev, ret);
}

const F_flush_to_disk = defineFn('raw_co_flush_to_disk', ['bs']);
function* raw_co_flush_to_disk(bs: BlockDriverState): Co<number> {
  if (enter(F_flush_to_disk, bs)) yield STOP;
  const s = raw(bs);
  const io: HostIo = { type: 'QEMU_AIO_FLUSH', offset: 0, bytes: 0, qiov: null, unmap: false };
  // 7.2: io_uring flushes itself (IORING_OP_FSYNC); linux-aio cannot, so the thread pool does.
  const ret = s.luring
    ? yield* luring_co_submit(bs, s.luring, s.fd, io)
    : yield* raw_thread_pool_submit(bs, handle_aiocb_flush, 'handle_aiocb_flush', io);
  return leave(F_flush_to_disk, ret);
}

const F_pdiscard = defineFn('raw_co_pdiscard', ['bs', 'offset', 'bytes'], { file: 'block/file-posix.ts' });
function* raw_co_pdiscard(bs: BlockDriverState, offset: number, bytes: number): Co<number> {
  if (enter(F_pdiscard, bs, offset, bytes)) yield STOP;
  const io: HostIo = { type: 'QEMU_AIO_DISCARD', offset, bytes, qiov: null, unmap: true };
  const ret = yield* raw_thread_pool_submit(bs, handle_aiocb_discard, 'handle_aiocb_discard', io);
  return leave(F_pdiscard, ret);
}

const F_pwrite_zeroes = defineFn('raw_co_pwrite_zeroes', ['bs', 'offset', 'bytes', 'flags'], { file: 'block/file-posix.ts' });
function* raw_co_pwrite_zeroes(bs: BlockDriverState, offset: number, bytes: number, flags: number): Co<number> {
  if (enter(F_pwrite_zeroes, bs, offset, bytes, flags)) yield STOP;
  const io: HostIo = { type: 'QEMU_AIO_WRITE_ZEROES', offset, bytes, qiov: null, unmap: (flags & BDRV_REQ_MAY_UNMAP) !== 0 };
  const ret = yield* raw_thread_pool_submit(bs, handle_aiocb_write_zeroes, 'handle_aiocb_write_zeroes', io);
  return leave(F_pwrite_zeroes, ret);
}

function raw_aio_plug(bs: BlockDriverState): void {
  const s = raw(bs);
  if (s.luring) luring_io_plug(s.luring);
  if (s.laio) laio_io_plug(s.laio);
}

const F_aio_unplug = defineFn('raw_aio_unplug', ['bs']);
function* raw_aio_unplug(bs: BlockDriverState): Co<void> {
  if (enter(F_aio_unplug, bs)) yield STOP;
  const s = raw(bs);
  if (s.luring) yield* luring_io_unplug(bs, s.luring);
  if (s.laio) yield* laio_io_unplug(bs, s.laio);
  return leave(F_aio_unplug, undefined);
}

export const bdrv_file: BlockDriver = {
  format_name: 'file',
  bdrv_co_preadv: raw_co_preadv,
  bdrv_co_pwritev: raw_co_pwritev,
  bdrv_co_pwrite_zeroes: raw_co_pwrite_zeroes,
  bdrv_co_pdiscard: raw_co_pdiscard,
  bdrv_co_flush_to_disk: raw_co_flush_to_disk,
  bdrv_io_plug: raw_aio_plug,
  bdrv_io_unplug: raw_aio_unplug,
};

/** raw_open (file-posix): a protocol node over the image. */
export function file_open(state: BDRVRawState): BlockDriverState {
  const bs = new BlockDriverState(bdrv_file, null, Math.floor(state.image.size / 512));
  bs.opaque = state;
  return bs;
}
