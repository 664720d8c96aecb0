/**
 * The virtio-blk device (hw/block/virtio-blk.c, QEMU 7.2).
 *
 * handle_output drains the queue with guest notifications suppressed,
 * parses each request's headers out of its sg lists, merges adjacent reads
 * or writes (up to 32), and sends them to the block layer. Completion
 * stores the status byte, pushes the element to the used ring and notifies
 * the guest: through the dataplane's irqfd path when ioeventfd is on (7.2
 * starts the dataplane whenever ioeventfd is on), else virtio_notify.
 */
import { Co, S, STOP, enter, leave, setLocals } from '../../../sim/sim';
import { defineFn } from '../../../sim/frames';
import type { HostObject } from '../../../sim/pointers';
import type { GuestMemory } from '../../../memory/guest-memory';
import * as V from '../../../spec/virtio';
import {
  VirtIODevice, VirtQueue, VirtQueueElement, virtio_error, virtio_notify, virtio_queue_empty,
  virtio_queue_set_notification, virtqueue_detach_element, virtqueue_pop, virtqueue_push,
} from '../virtio/virtio';
import { IoVec, iov_discard_back, iov_discard_front, iov_from_buf, iov_size, iov_to_buf } from '../../util/iov';
import { BlockBackend, blk_drain, blk_aio_flush, blk_aio_pdiscard, blk_aio_preadv, blk_aio_pwrite_zeroes, blk_aio_pwritev, blk_io_plug, blk_io_unplug } from '../../block/block-backend';
import { QEMUIOVector, qemu_iovec } from '../../block/block-int';
import { VirtIOBlockDataPlane, virtio_blk_data_plane_notify } from './dataplane/virtio-blk';

/** VIRTIO_BLK_MAX_MERGE_REQS */
const MAX_MERGE_REQS = 32;
/** Backend limits QEMU reads from the host (blk_get_max_iov = IOV_MAX, max transfer for a raw file). */
const MAX_IOV = 1024;
const MAX_TRANSFER = 0x7ffff000;

export interface VirtIOBlkConf {
  serial: string;
  queue_size: number;
  num_queues: number;
  seg_max: number;
  request_merging: boolean;
  max_discard_sectors: number;
  max_write_zeroes_sectors: number;
}

export class VirtIOBlock extends VirtIODevice {
  dataplane: VirtIOBlockDataPlane | null = null;
  dataplane_started = false;
  /** Completions go through virtio_blk_data_plane_notify (set when ioeventfd is on). */
  constructor(mem: GuestMemory, readonly blk: BlockBackend, readonly conf: VirtIOBlkConf) {
    super('virtio-blk', V.VIRTIO_ID_BLOCK, mem, S.ptrs.alloc('heap', 0x5b0));
  }
}

export class VirtIOBlockReq implements HostObject {
  readonly ptr: number;
  type = 0;
  sector_num = 0;
  in_len = 0;
  /** Guest address of the status byte (req->in). */
  in = 0;
  qiov: QEMUIOVector | null = null;
  mr_next: VirtIOBlockReq | null = null;
  constructor(readonly dev: VirtIOBlock, readonly vq: VirtQueue, readonly elem: VirtQueueElement) {
    this.ptr = S.ptrs.alloc('heap', 0x180);
  }
}

interface MultiReqBuffer {
  reqs: VirtIOBlockReq[];
  is_write: boolean;
}

/** The config space as the guest reads it (virtio_blk_update_config). */
export function virtio_blk_update_config(s: VirtIOBlock): Buffer {
  const c = Buffer.alloc(V.BLK_CFG_SIZE);
  c.writeUInt32LE(s.blk.total_sectors % 0x100000000, V.BLK_CFG_CAPACITY);
  c.writeUInt32LE(Math.floor(s.blk.total_sectors / 0x100000000), V.BLK_CFG_CAPACITY + 4);
  c.writeUInt32LE(s.conf.seg_max, V.BLK_CFG_SEG_MAX);
  c.writeUInt32LE(512, V.BLK_CFG_BLK_SIZE);
  c.writeUInt8(1, V.BLK_CFG_WRITEBACK);
  c.writeUInt16LE(s.conf.num_queues, V.BLK_CFG_NUM_QUEUES);
  c.writeUInt32LE(s.conf.max_discard_sectors, V.BLK_CFG_MAX_DISCARD_SECTORS);
  c.writeUInt32LE(1, V.BLK_CFG_MAX_DISCARD_SEG);
  c.writeUInt32LE(1, V.BLK_CFG_DISCARD_SECTOR_ALIGNMENT);
  c.writeUInt32LE(s.conf.max_write_zeroes_sectors, V.BLK_CFG_MAX_WRITE_ZEROES_SECTORS);
  c.writeUInt32LE(1, V.BLK_CFG_MAX_WRITE_ZEROES_SEG);
  c.writeUInt8(1, V.BLK_CFG_WRITE_ZEROES_MAY_UNMAP);
  return c;
}

function sect_range_ok(s: VirtIOBlock, sector: number, size: number): boolean {
  const total = s.blk.total_sectors;
  if (size % 512 !== 0) return false;
  const n = size / 512;
  return sector <= total && n <= total - sector;
}

// ---- completion ----

const F_req_complete = defineFn('virtio_blk_req_complete', ['req', 'status']);
export function* virtio_blk_req_complete(req: VirtIOBlockReq, status: number): Co<void> {
  if (enter(F_req_complete, req, status)) yield STOP;
  const s = req.dev;
  s.mem.write8(req.in, status);
  yield* virtqueue_push(req.vq, req.elem, req.in_len);
  if (s.dataplane_started && s.dataplane) yield* virtio_blk_data_plane_notify(s.dataplane, req.vq);
  else yield* virtio_notify(s, req.vq);
  return leave(F_req_complete, undefined);
}

const F_rw_complete = defineFn('virtio_blk_rw_complete', ['opaque', 'ret']);
/** One callback for a merged request: complete every virtio request in the chain. */
export function* virtio_blk_rw_complete(opaque: unknown, ret: number): Co<void> {
  if (enter(F_rw_complete, opaque, ret)) yield STOP;
  let next = opaque as VirtIOBlockReq | null;
  while (next) {
    const req = next;
    next = req.mr_next;
    // rerror=report / werror=report: an I/O error becomes S_IOERR (werror=stop would pause the VM).
    yield* virtio_blk_req_complete(req, ret === 0 ? V.VIRTIO_BLK_S_OK : V.VIRTIO_BLK_S_IOERR);
  }
  return leave(F_rw_complete, undefined);
}

const F_flush_complete = defineFn('virtio_blk_flush_complete', ['opaque', 'ret']);
function* virtio_blk_flush_complete(opaque: unknown, ret: number): Co<void> {
  if (enter(F_flush_complete, opaque, ret)) yield STOP;
  yield* virtio_blk_req_complete(opaque as VirtIOBlockReq, ret === 0 ? V.VIRTIO_BLK_S_OK : V.VIRTIO_BLK_S_IOERR);
  return leave(F_flush_complete, undefined);
}

const F_dwz_complete = defineFn('virtio_blk_discard_write_zeroes_complete', ['opaque', 'ret']);
function* virtio_blk_discard_write_zeroes_complete(opaque: unknown, ret: number): Co<void> {
  if (enter(F_dwz_complete, opaque, ret)) yield STOP;
  yield* virtio_blk_req_complete(opaque as VirtIOBlockReq, ret === 0 ? V.VIRTIO_BLK_S_OK : V.VIRTIO_BLK_S_IOERR);
  return leave(F_dwz_complete, undefined);
}

// ---- submission ----

const F_submit_requests = defineFn('submit_requests', ['s', 'mrb', 'start', 'num_reqs']);
function* submit_requests(s: VirtIOBlock, mrb: MultiReqBuffer, start: number, num_reqs: number): Co<void> {
  if (enter(F_submit_requests, s, { ptr: 0x7ffff5ffe3c0 }, start, num_reqs)) yield STOP;
  const first = mrb.reqs[start];
  let qiov = first.qiov!;
  if (num_reqs > 1) {
    // Merged: one vector over all the requests' buffers, and the requests chained for completion.
    const iov: IoVec[] = [];
    for (let i = start; i < start + num_reqs; i++) {
      iov.push(...mrb.reqs[i].qiov!.iov);
      if (i > start) mrb.reqs[i - 1].mr_next = mrb.reqs[i];
    }
    qiov = qemu_iovec(iov);
  }
  const offset = first.sector_num * 512;
  if (mrb.is_write) yield* blk_aio_pwritev(s.blk, offset, qiov, 0, virtio_blk_rw_complete, 'virtio_blk_rw_complete', first);
  else yield* blk_aio_preadv(s.blk, offset, qiov, 0, virtio_blk_rw_complete, 'virtio_blk_rw_complete', first);
  return leave(F_submit_requests, undefined);
}

const F_submit_multireq = defineFn('virtio_blk_submit_multireq', ['s', 'mrb']);
/** Sort by sector and submit runs of adjacent requests as one (merging). */
export function* virtio_blk_submit_multireq(s: VirtIOBlock, mrb: MultiReqBuffer): Co<void> {
  if (enter(F_submit_multireq, s, { ptr: 0x7ffff5ffe3c0 })) yield STOP;
  if (mrb.reqs.length === 1) {
    yield* submit_requests(s, mrb, 0, 1);
  } else if (mrb.reqs.length > 1) {
    mrb.reqs.sort((a, b) => a.sector_num - b.sector_num);
    let start = 0, num = 0, sector = 0, nb = 0, niov = 0;
    for (let i = 0; i < mrb.reqs.length; i++) {
      const req = mrb.reqs[i];
      const q = req.qiov!;
      if (num > 0 && (sector + nb !== req.sector_num || niov > MAX_IOV - q.iov.length || q.size > MAX_TRANSFER || nb > (MAX_TRANSFER - q.size) / 512)) {
        yield* submit_requests(s, mrb, start, num);
        num = 0;
      }
      if (num === 0) {
        sector = req.sector_num;
        nb = niov = 0;
        start = i;
      }
      nb += q.size / 512;
      niov += q.iov.length;
      num++;
    }
    yield* submit_requests(s, mrb, start, num);
  }
  mrb.reqs.length = 0;
  return leave(F_submit_multireq, undefined);
}

const F_handle_flush = defineFn('virtio_blk_handle_flush', ['req', 'mrb']);
function* virtio_blk_handle_flush(req: VirtIOBlockReq, mrb: MultiReqBuffer): Co<void> {
  if (enter(F_handle_flush, req, { ptr: 0x7ffff5ffe3c0 })) yield STOP;
  // Writes already gathered must reach the backend before the flush.
  if (mrb.is_write && mrb.reqs.length > 0) yield* virtio_blk_submit_multireq(req.dev, mrb);
  yield* blk_aio_flush(req.dev.blk, virtio_blk_flush_complete, 'virtio_blk_flush_complete', req);
  return leave(F_handle_flush, undefined);
}

const F_handle_dwz = defineFn('virtio_blk_handle_discard_write_zeroes', ['req', 'dwz_hdr', 'is_write_zeroes']);
function* virtio_blk_handle_discard_write_zeroes(req: VirtIOBlockReq, hdr: Buffer, is_wz: boolean): Co<number> {
  if (enter(F_handle_dwz, req, { ptr: 0x7ffff5ffe400 }, is_wz)) yield STOP;
  const s = req.dev;
  const sector = hdr.readUInt32LE(0) + hdr.readUInt32LE(4) * 0x100000000;
  const num_sectors = hdr.readUInt32LE(8);
  const flags = hdr.readUInt32LE(12);
  const max = is_wz ? s.conf.max_write_zeroes_sectors : s.conf.max_discard_sectors;
  let status: number = V.VIRTIO_BLK_S_OK;
  if (num_sectors > max) status = V.VIRTIO_BLK_S_IOERR;
  else if (!sect_range_ok(s, sector, num_sectors * 512)) status = V.VIRTIO_BLK_S_IOERR;
  else if (is_wz) {
    if (flags & ~V.VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) status = V.VIRTIO_BLK_S_UNSUPP;
    else yield* blk_aio_pwrite_zeroes(s.blk, sector * 512, num_sectors * 512, (flags & V.VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) !== 0, virtio_blk_discard_write_zeroes_complete, 'virtio_blk_discard_write_zeroes_complete', req);
  } else {
    // Discard has no flags defined: any bit makes it unsupported.
    if (flags) status = V.VIRTIO_BLK_S_UNSUPP;
    else yield* blk_aio_pdiscard(s.blk, sector * 512, num_sectors * 512, virtio_blk_discard_write_zeroes_complete, 'virtio_blk_discard_write_zeroes_complete', req);
  }
  return leave(F_handle_dwz, status);
}

const F_handle_request = defineFn('virtio_blk_handle_request', ['req', 'mrb']);
/** Parse one request out of its element. Nonzero: the guest broke the spec (the device is now broken). */
export function* virtio_blk_handle_request(req: VirtIOBlockReq, mrb: MultiReqBuffer): Co<number> {
  if (enter(F_handle_request, req, { ptr: 0x7ffff5ffe3c0 })) yield STOP;
  const s = req.dev;
  const mem = s.mem;
  const elem = req.elem;
  if (elem.out_num < 1 || elem.in_num < 1) {
    yield* virtio_error(s, 'virtio-blk missing headers');
    return leave(F_handle_request, -1);
  }
  const outhdr = Buffer.alloc(V.VIRTIO_BLK_OUTHDR_SIZE);
  if (iov_to_buf(mem, elem.out_sg, elem.out_num, 0, outhdr, outhdr.length) !== outhdr.length) {
    yield* virtio_error(s, 'virtio-blk request outhdr too short');
    return leave(F_handle_request, -1);
  }
  const out_iov = iov_discard_front(elem.out_sg, V.VIRTIO_BLK_OUTHDR_SIZE);
  const lastIn = elem.in_sg[elem.in_num - 1];
  if (lastIn.len < 1) {
    yield* virtio_error(s, 'virtio-blk request inhdr too short');
    return leave(F_handle_request, -1);
  }
  req.in_len = iov_size(elem.in_sg);
  req.in = lastIn.addr + lastIn.len - 1;
  const in_iov = iov_discard_back(elem.in_sg, 1);
  const type = outhdr.readUInt32LE(0);
  req.type = type;
  setLocals({ type, in_len: req.in_len, status_addr: req.in });
  switch ((type & ~(V.VIRTIO_BLK_T_OUT | V.VIRTIO_BLK_T_BARRIER)) >>> 0) {
    case V.VIRTIO_BLK_T_IN: {
      const is_write = (type & V.VIRTIO_BLK_T_OUT) !== 0;
      req.sector_num = outhdr.readUInt32LE(8) + outhdr.readUInt32LE(12) * 0x100000000;
      req.qiov = qemu_iovec(is_write ? out_iov : in_iov);
      if (!sect_range_ok(s, req.sector_num, req.qiov.size)) {
        yield* virtio_blk_req_complete(req, V.VIRTIO_BLK_S_IOERR);
        break;
      }
      // Merging stops at 32 requests and whenever the direction changes.
      if (mrb.reqs.length > 0 && (mrb.reqs.length === MAX_MERGE_REQS || is_write !== mrb.is_write || !s.conf.request_merging)) {
        yield* virtio_blk_submit_multireq(s, mrb);
      }
      mrb.reqs.push(req);
      mrb.is_write = is_write;
      break;
    }
    case V.VIRTIO_BLK_T_FLUSH:
      yield* virtio_blk_handle_flush(req, mrb);
      break;
    case V.VIRTIO_BLK_T_GET_ID: {
      // The serial, NUL-terminated if it fits, never more than 20 bytes or the buffer.
      const serial = Buffer.from(s.conf.serial + '\0', 'latin1');
      const size = Math.min(serial.length, iov_size(in_iov), V.VIRTIO_BLK_ID_BYTES);
      iov_from_buf(mem, in_iov, in_iov.length, 0, serial.subarray(0, size));
      yield* virtio_blk_req_complete(req, V.VIRTIO_BLK_S_OK);
      break;
    }
    case V.VIRTIO_BLK_T_DISCARD & ~V.VIRTIO_BLK_T_OUT:
    case V.VIRTIO_BLK_T_WRITE_ZEROES & ~V.VIRTIO_BLK_T_OUT: {
      const is_wz = ((type & ~V.VIRTIO_BLK_T_BARRIER) >>> 0) === V.VIRTIO_BLK_T_WRITE_ZEROES;
      // One segment only, and the type must carry the OUT bit.
      if (!(type & V.VIRTIO_BLK_T_OUT) || iov_size(out_iov) > V.VIRTIO_BLK_DISCARD_WZ_SEG_SIZE) {
        yield* virtio_blk_req_complete(req, V.VIRTIO_BLK_S_UNSUPP);
        break;
      }
      const hdr = Buffer.alloc(V.VIRTIO_BLK_DISCARD_WZ_SEG_SIZE);
      if (iov_to_buf(mem, out_iov, out_iov.length, 0, hdr, hdr.length) !== hdr.length) {
        yield* virtio_error(s, 'virtio-blk discard/write_zeroes header too short');
        return leave(F_handle_request, -1);
      }
      const err = yield* virtio_blk_handle_discard_write_zeroes(req, hdr, is_wz);
      if (err !== V.VIRTIO_BLK_S_OK) yield* virtio_blk_req_complete(req, err);
      break;
    }
    default:
      yield* virtio_blk_req_complete(req, V.VIRTIO_BLK_S_UNSUPP);
  }
  return leave(F_handle_request, 0);
}

const F_get_request = defineFn('virtio_blk_get_request', ['s', 'vq']);
function* virtio_blk_get_request(s: VirtIOBlock, vq: VirtQueue): Co<VirtIOBlockReq | null> {
  if (enter(F_get_request, s, vq)) yield STOP;
  const elem = yield* virtqueue_pop(vq, 0x180);
  return leave(F_get_request, elem ? new VirtIOBlockReq(s, vq, elem) : null);
}

const F_handle_vq = defineFn('virtio_blk_handle_vq', ['s', 'vq']);
export function* virtio_blk_handle_vq(s: VirtIOBlock, vq: VirtQueue): Co<void> {
  if (enter(F_handle_vq, s, vq)) yield STOP;
  const mrb: MultiReqBuffer = { reqs: [], is_write: false };
  const suppress = vq.notification;
  yield* blk_io_plug(s.blk);
  do {
    if (suppress) yield* virtio_queue_set_notification(vq, 0);
    let req: VirtIOBlockReq | null;
    while ((req = yield* virtio_blk_get_request(s, vq))) {
      if (yield* virtio_blk_handle_request(req, mrb)) {
        virtqueue_detach_element(vq, req.elem);
        break;
      }
    }
    if (suppress) yield* virtio_queue_set_notification(vq, 1);
  } while (!(yield* virtio_queue_empty(vq)));
  if (mrb.reqs.length > 0) yield* virtio_blk_submit_multireq(s, mrb);
  yield* blk_io_unplug(s.blk);
  return leave(F_handle_vq, undefined);
}

const F_reset = defineFn('virtio_blk_reset', ['vdev']);
/** Let every request in the block layer complete (into the rings the guest is about to forget) before the reset. */
export function* virtio_blk_reset(vdev: VirtIODevice): Co<void> {
  if (enter(F_reset, vdev)) yield STOP;
  yield* blk_drain((vdev as VirtIOBlock).blk);
  return leave(F_reset, undefined);
}

const F_handle_output = defineFn('virtio_blk_handle_output', ['vdev', 'vq']);
export function* virtio_blk_handle_output(vdev: VirtIODevice, vq: VirtQueue): Co<void> {
  if (enter(F_handle_output, vdev, vq)) yield STOP;
  yield* virtio_blk_handle_vq(vdev as VirtIOBlock, vq);
  return leave(F_handle_output, undefined);
}
