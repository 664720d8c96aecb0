/**
 * drivers/block/virtio_blk.c: the guest's virtio-blk driver.
 *
 * Probe reads the config space, sets up the request queues through the
 * transport and sizes the blk-mq tag set from the ring. Each tag owns a
 * struct virtblk_req in guest RAM (16-byte outhdr at +0, status byte at +16);
 * virtio_queue_rq fills it, maps the data and adds the chain to the ring;
 * virtblk_done takes used buffers back off the ring and ends the requests
 * with the status byte the device wrote.
 *
 * It reaches the device only through the virtqueue and the transport's
 * config reads; it must not depend on the device model. The queue lock is a
 * flag: a single vCPU cannot contend for it, but an interrupt taken while it
 * is held would deadlock in Linux, so VirtioBlk.irqs_disabled() tells the
 * machine when not to deliver one.
 */
import { Co, STOP, enter, leave } from '../../../sim/sim';
import { defineFn } from '../../../sim/frames';
import type { KernelObject } from '../../../sim/pointers';
import type { Gpa } from '../../../memory/guest-memory';
import type { BlkStatus } from '../../platform';
import {
  BLK_CFG_ALIGNMENT_OFFSET,
  BLK_CFG_BLK_SIZE,
  BLK_CFG_CAPACITY,
  BLK_CFG_DISCARD_SECTOR_ALIGNMENT,
  BLK_CFG_MAX_DISCARD_SECTORS,
  BLK_CFG_MAX_DISCARD_SEG,
  BLK_CFG_MAX_WRITE_ZEROES_SECTORS,
  BLK_CFG_MIN_IO_SIZE,
  BLK_CFG_NUM_QUEUES,
  BLK_CFG_OPT_IO_SIZE,
  BLK_CFG_PHYSICAL_BLOCK_EXP,
  BLK_CFG_SEG_MAX,
  BLK_CFG_SIZE_MAX,
  BLK_CFG_WRITEBACK,
  SECTOR_SIZE,
  VIRTIO_BLK_DISCARD_WZ_SEG_SIZE,
  VIRTIO_BLK_F_BLK_SIZE,
  VIRTIO_BLK_F_CONFIG_WCE,
  VIRTIO_BLK_F_DISCARD,
  VIRTIO_BLK_F_FLUSH,
  VIRTIO_BLK_F_GEOMETRY,
  VIRTIO_BLK_F_MQ,
  VIRTIO_BLK_F_RO,
  VIRTIO_BLK_F_SEG_MAX,
  VIRTIO_BLK_F_SIZE_MAX,
  VIRTIO_BLK_F_TOPOLOGY,
  VIRTIO_BLK_F_WRITE_ZEROES,
  VIRTIO_BLK_ID_BYTES,
  VIRTIO_BLK_OUTHDR_SIZE,
  VIRTIO_BLK_S_OK,
  VIRTIO_BLK_S_UNSUPP,
  VIRTIO_BLK_T_DISCARD,
  VIRTIO_BLK_T_FLUSH,
  VIRTIO_BLK_T_GET_ID,
  VIRTIO_BLK_T_IN,
  VIRTIO_BLK_T_OUT,
  VIRTIO_BLK_T_WRITE_ZEROES,
  VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
  VIRTIO_ID_BLOCK,
  VIRTIO_RING_F_INDIRECT_DESC,
} from '../../../spec/virtio';
import {
  EINVAL,
  ENOSPC,
  LenOut,
  Scatterlist,
  VqCallback,
  VringVirtqueue,
  kfree,
  kmalloc,
  sg_init_one,
  virtio_has_feature,
  virtqueue_add_sgs,
  virtqueue_disable_cb,
  virtqueue_enable_cb,
  virtqueue_get_buf,
  virtqueue_is_broken,
  virtqueue_kick,
  virtqueue_kick_prepare,
  virtqueue_notify,
} from '../virtio/virtio_ring';
import {
  VirtioDriver,
  VirtioMmioDevice,
  virtio_cread,
  virtio_cread64,
  virtio_cread_feature,
  virtio_device_ready,
  virtio_find_vqs,
} from '../virtio/virtio_mmio';
import {
  BlkMqHwCtx,
  BlkMqOps,
  BlkMqQueueData,
  BlkMqTagSet,
  QueueRqStatus,
  Request,
  RequestQueue,
  StaticRq,
  blk_mq_alloc_tag_set,
  blk_mq_complete_request,
  blk_mq_end_request,
  blk_mq_init_queue,
  blk_mq_rq_to_pdu,
  blk_mq_start_request,
  blk_mq_start_stopped_hw_queues,
  blk_mq_stop_hw_queue,
} from '../../block/blk-mq';

/** struct virtblk_req: out_hdr @0 (16), in_hdr @16 (status first; 16 with the zoned variant), in_hdr_len @32, sg_table @40, sg[] @56. */
const VBR_STATUS = 16;
const SIZEOF_SCATTERLIST = 32;
const VIRTIO_BLK_INLINE_SG_CNT = 2;
const VIRTBLK_REQ_SIZE = 56 + SIZEOF_SCATTERLIST * VIRTIO_BLK_INLINE_SG_CNT;
/** The most segments Linux lets a request have, ring-size permitting (minus header and status). */
const VIRTIO_BLK_MAX_SG_ELEMS = 32768;
/** Unlimited segment size when the device sets no SIZE_MAX (virtio_max_dma_size without an IOMMU). */
const MAX_SEGMENT_SIZE_DEFAULT = 0xffffffff;

/** The driver's per-request data (blk-mq pdu) of one tag. Its scatterlists are reused request after request. */
export class VirtblkReq implements KernelObject {
  readonly kaddr: Gpa;
  readonly out_hdr_sg = new Scatterlist();
  readonly in_hdr_sg = new Scatterlist();
  /** sg_table: the data segments, chained with `next`. */
  readonly sg: Scatterlist[] = [new Scatterlist()];
  /** The sgs[] array virtblk_add_req builds (on the stack in Linux). */
  readonly sgs: Scatterlist[];
  /** The outhdr's type, kept to pick the data direction. */
  type = 0;
  nents = 0;
  in_hdr_len = 1;
  /** The discard / write-zeroes range (RQF_SPECIAL_PAYLOAD), kmalloc'd per request; -1 when none. */
  special_payload: Gpa = -1;

  constructor(readonly srq: StaticRq) {
    this.kaddr = srq.pdu_kaddr;
    this.sgs = [this.out_hdr_sg, this.out_hdr_sg, this.out_hdr_sg];
  }
}

/** spinlock_t, as a flag: taking it twice is the deadlock Linux would have. */
export class SpinLock {
  held = false;
}

function spin_lock_irqsave(l: SpinLock): void {
  if (l.held) throw new Error('virtio_blk: vq lock taken twice (an interrupt delivered while it was held?)');
  l.held = true;
}

function spin_unlock_irqrestore(l: SpinLock): void {
  l.held = false;
}

/** struct virtio_blk_vq. */
export class VirtioBlkVq {
  readonly lock = new SpinLock();
  constructor(
    readonly vq: VringVirtqueue,
    readonly name: string,
  ) {}
}

/** struct virtio_blk, with the queue limits and disk facts probe learned from the config space. */
export class VirtioBlk implements KernelObject {
  readonly kaddr: Gpa;
  vqs: VirtioBlkVq[] = [];
  num_vqs = 0;
  readonly disk_name = 'vda';
  /** In 512-byte sectors. */
  capacity = 0;
  sg_elems = 1;
  max_segment_size = MAX_SEGMENT_SIZE_DEFAULT;
  logical_block_size = SECTOR_SIZE;
  physical_block_exp = 0;
  alignment_offset = 0;
  min_io_size = 0;
  opt_io_size = 0;
  ro = false;
  writeback = false;
  discard_sector_alignment = 0;
  max_discard_sectors = 0;
  max_discard_seg = 0;
  max_write_zeroes_sectors = 0;
  queue_depth = 0;
  tag_set: BlkMqTagSet | null = null;
  q: RequestQueue | null = null;

  constructor(readonly vdev: VirtioMmioDevice) {
    this.kaddr = kmalloc(vdev.alloc, 0x100);
  }

  /** True while a queue lock is held (spin_lock_irqsave): the vCPU takes no interrupt then. */
  irqs_disabled(): boolean {
    for (const v of this.vqs) if (v.lock.held) return true;
    return false;
  }
}

/** The status byte the device wrote, as a block-layer status. */
export function virtblk_result(status: number): BlkStatus {
  if (status === VIRTIO_BLK_S_OK) return 'BLK_STS_OK';
  if (status === VIRTIO_BLK_S_UNSUPP) return 'BLK_STS_NOTSUPP';
  return 'BLK_STS_IOERR';
}

// ---------------------------------------------------------------- submission

const F_virtblk_setup_cmd = defineFn('virtblk_setup_cmd', ['vdev', 'req', 'vbr']);
/** Fill the outhdr {le32 type, le32 ioprio, le64 sector} and, for discard / write-zeroes, the range payload. */
export function* virtblk_setup_cmd(vdev: VirtioMmioDevice, rq: Request, vbr: VirtblkReq): Co<BlkStatus> {
  if (enter(F_virtblk_setup_cmd, vdev, rq.static_rq, vbr)) yield STOP;
  let type: number;
  let sector = 0;
  let unmap = false;
  switch (rq.op) {
    case 'read': type = VIRTIO_BLK_T_IN; sector = rq.sector; break;
    case 'write': type = VIRTIO_BLK_T_OUT; sector = rq.sector; break;
    case 'flush': type = VIRTIO_BLK_T_FLUSH; break;
    case 'discard': type = VIRTIO_BLK_T_DISCARD; break;
    case 'write-zeroes': type = VIRTIO_BLK_T_WRITE_ZEROES; unmap = rq.unmap; break;
    // REQ_OP_DRV_IN: in Linux virtblk_get_id wrote this header before queueing.
    case 'get-id': type = VIRTIO_BLK_T_GET_ID; break;
  }
  const mem = vdev.mem;
  vbr.type = type;
  vbr.in_hdr_len = 1;
  mem.write32(vbr.kaddr, type);
  mem.write64(vbr.kaddr + 8, sector);
  mem.write32(vbr.kaddr + 4, 0); // req_get_ioprio: no I/O priority set
  if (type === VIRTIO_BLK_T_DISCARD || type === VIRTIO_BLK_T_WRITE_ZEROES) {
    // One range (one bio): {le64 sector, le32 num_sectors, le32 flags}.
    let range: Gpa;
    try {
      range = kmalloc(vdev.alloc, VIRTIO_BLK_DISCARD_WZ_SEG_SIZE);
    } catch {
      return leave(F_virtblk_setup_cmd, 'BLK_STS_RESOURCE');
    }
    mem.write64(range, rq.sector);
    mem.write32(range + 8, Math.floor(rq.nr_bytes / SECTOR_SIZE));
    mem.write32(range + 12, unmap ? VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0);
    vbr.special_payload = range;
  }
  return leave(F_virtblk_setup_cmd, 'BLK_STS_OK');
}

/** virtblk_cleanup_cmd: free the special payload. */
function virtblk_cleanup_cmd(vdev: VirtioMmioDevice, vbr: VirtblkReq): void {
  if (vbr.special_payload >= 0) {
    kfree(vdev.alloc, vbr.special_payload);
    vbr.special_payload = -1;
  }
}

/** Point sg[n] at [addr, addr+len), growing the table if a request needs more segments than before. */
function set_sg(vbr: VirtblkReq, n: number, addr: Gpa, len: number): void {
  if (n === vbr.sg.length) vbr.sg.push(new Scatterlist());
  sg_init_one(vbr.sg[n], addr, len);
  if (n > 0) vbr.sg[n - 1].next = vbr.sg[n];
}

/**
 * blk_rq_map_sg for the request's data: the special payload, the GET_ID
 * buffer, or the data buffer cut into segments of at most max_segment_size
 * (a physically contiguous buffer is otherwise one segment). Returns nents.
 */
function virtblk_map_data(vblk: VirtioBlk, rq: Request, vbr: VirtblkReq): number {
  if (vbr.special_payload >= 0) {
    set_sg(vbr, 0, vbr.special_payload, VIRTIO_BLK_DISCARD_WZ_SEG_SIZE);
    return 1;
  }
  if (rq.op === 'flush') return 0;
  if (rq.op === 'get-id') {
    // The caller's buffer for the serial; one is allocated (and left in rq.data) if none was given.
    if (rq.data === null) rq.data = kmalloc(vblk.vdev.alloc, VIRTIO_BLK_ID_BYTES);
    set_sg(vbr, 0, rq.data, VIRTIO_BLK_ID_BYTES);
    return 1;
  }
  if (rq.data === null || rq.nr_bytes === 0) return 0;
  let n = 0;
  for (let off = 0; off < rq.nr_bytes; n++) {
    const len = Math.min(rq.nr_bytes - off, vblk.max_segment_size);
    set_sg(vbr, n, rq.data + off, len);
    off += len;
  }
  return n;
}

const F_virtblk_add_req = defineFn('virtblk_add_req', ['vq', 'vbr']);
/** [outhdr] readable, [data] readable for OUT-type requests else writable, [status] writable. */
export function* virtblk_add_req(vq: VringVirtqueue, vbr: VirtblkReq): Co<number> {
  if (enter(F_virtblk_add_req, vq, vbr)) yield STOP;
  const sgs = vbr.sgs;
  let num_out = 0;
  let num_in = 0;
  sgs[num_out++] = sg_init_one(vbr.out_hdr_sg, vbr.kaddr, VIRTIO_BLK_OUTHDR_SIZE);
  if (vbr.nents > 0) {
    if ((vbr.type & VIRTIO_BLK_T_OUT) !== 0) sgs[num_out++] = vbr.sg[0];
    else sgs[num_out + num_in++] = vbr.sg[0];
  }
  sgs[num_out + num_in++] = sg_init_one(vbr.in_hdr_sg, vbr.kaddr + VBR_STATUS, vbr.in_hdr_len);
  const r = yield* virtqueue_add_sgs(vq, sgs, num_out, num_in, vbr);
  return leave(F_virtblk_add_req, r);
}

const F_virtio_queue_rq = defineFn('virtio_queue_rq', ['hctx', 'bd']);
/**
 * Queue one request. The ring is kicked only for the last request of a run
 * (bd.last), and outside the lock. A full ring kicks (so the device frees
 * space), stops the hardware queue and asks blk-mq to retry later.
 */
export function* virtio_queue_rq(hctx: BlkMqHwCtx, bd: BlkMqQueueData): Co<QueueRqStatus> {
  if (enter(F_virtio_queue_rq, hctx, bd)) yield STOP;
  const vblk = hctx.queue.queuedata as VirtioBlk;
  const rq = bd.rq;
  const vbr = blk_mq_rq_to_pdu<VirtblkReq>(rq);
  const bvq = vblk.vqs[hctx.queue_num];

  // virtblk_prep_rq
  const st = yield* virtblk_setup_cmd(vblk.vdev, rq, vbr);
  if (st !== 'BLK_STS_OK') return leave(F_virtio_queue_rq, st);
  vbr.nents = virtblk_map_data(vblk, rq, vbr);
  blk_mq_start_request(rq);

  spin_lock_irqsave(bvq.lock);
  const err = yield* virtblk_add_req(bvq.vq, vbr);
  if (err !== 0) {
    yield* virtqueue_kick(bvq.vq);
    // Not on -ENOMEM: that may be a global shortage, not this ring's.
    if (err === -ENOSPC) blk_mq_stop_hw_queue(hctx);
    spin_unlock_irqrestore(bvq.lock);
    // virtblk_fail_to_queue
    virtblk_cleanup_cmd(vblk.vdev, vbr);
    rq.started = false;
    return leave(F_virtio_queue_rq, (err === -ENOSPC ? 'BLK_STS_DEV_RESOURCE' : 'BLK_STS_IOERR'));
  }
  const notify = bd.last && (yield* virtqueue_kick_prepare(bvq.vq));
  spin_unlock_irqrestore(bvq.lock);
  if (notify) yield* virtqueue_notify(bvq.vq);
  return leave(F_virtio_queue_rq, 'BLK_STS_OK');
}

const F_virtio_commit_rqs = defineFn('virtio_commit_rqs', ['hctx']);
/** A dispatch run ended before bd.last: kick for what it queued. */
export function* virtio_commit_rqs(hctx: BlkMqHwCtx): Co<void> {
  if (enter(F_virtio_commit_rqs, hctx)) yield STOP;
  const bvq = (hctx.queue.queuedata as VirtioBlk).vqs[hctx.queue_num];
  spin_lock_irqsave(bvq.lock);
  const kick = yield* virtqueue_kick_prepare(bvq.vq);
  spin_unlock_irqrestore(bvq.lock);
  if (kick) yield* virtqueue_notify(bvq.vq);
  return leave(F_virtio_commit_rqs, undefined);
}

// ---------------------------------------------------------------- completion

const F_virtblk_request_done = defineFn('virtblk_request_done', ['req']);
/** mq_ops->complete: read the status byte the device wrote, free the payload, end the request. */
export function* virtblk_request_done(rq: Request): Co<void> {
  if (enter(F_virtblk_request_done, rq.static_rq)) yield STOP;
  const vbr = blk_mq_rq_to_pdu<VirtblkReq>(rq);
  const vdev = (rq.q.queuedata as VirtioBlk).vdev;
  const status = vdev.mem.read8(vbr.kaddr + VBR_STATUS);
  rq.virtioStatus = status;
  virtblk_cleanup_cmd(vdev, vbr);
  yield* blk_mq_end_request(rq, virtblk_result(status));
  return leave(F_virtblk_request_done, undefined);
}

const F_virtblk_done = defineFn('virtblk_done', ['vq']);
/**
 * The queue's callback. Interrupts off, drain the used ring, interrupts back
 * on; if more arrived meanwhile, go round again. Then restart a queue that
 * was stopped for lack of ring space.
 */
export function* virtblk_done(vq: VringVirtqueue): Co<void> {
  if (enter(F_virtblk_done, vq)) yield STOP;
  const vblk = (vq.vdev as VirtioMmioDevice).priv as VirtioBlk;
  const bvq = vblk.vqs[vq.index];
  const len: LenOut = { value: 0 };
  let req_done = false;
  spin_lock_irqsave(bvq.lock);
  do {
    yield* virtqueue_disable_cb(vq);
    let vbr: unknown;
    while ((vbr = yield* virtqueue_get_buf(vq, len)) !== null) {
      yield* blk_mq_complete_request((vbr as VirtblkReq).srq.rq!);
      req_done = true;
    }
    if (virtqueue_is_broken(vq)) break;
  } while (!(yield* virtqueue_enable_cb(vq)));
  // In case the queue is stopped waiting for more buffers.
  if (req_done) yield* blk_mq_start_stopped_hw_queues(vblk.q!, true);
  spin_unlock_irqrestore(bvq.lock);
  return leave(F_virtblk_done, undefined);
}

// ---------------------------------------------------------------- probe

const F_virtblk_update_capacity = defineFn('virtblk_update_capacity', ['vblk', 'resize']);
export function* virtblk_update_capacity(vblk: VirtioBlk, resize: boolean): Co<void> {
  if (enter(F_virtblk_update_capacity, vblk, resize)) yield STOP;
  // The field is in 512-byte sectors whatever the block size.
  const capacity = yield* virtio_cread64(vblk.vdev, BLK_CFG_CAPACITY);
  if (resize && capacity !== vblk.capacity) vblk.vdev.dmesg.push(`[${vblk.disk_name}] new size: ${capacity} 512-byte logical blocks`);
  else if (!resize) vblk.vdev.dmesg.push(`[${vblk.disk_name}] ${capacity} 512-byte logical blocks`);
  vblk.capacity = capacity;
  return leave(F_virtblk_update_capacity, undefined);
}

const F_virtblk_config_changed = defineFn('virtblk_config_changed', ['vdev']);
/** drv->config_changed. Linux queues work that re-reads the capacity; the model does it now. */
export function* virtblk_config_changed(vdev: VirtioMmioDevice): Co<void> {
  if (enter(F_virtblk_config_changed, vdev)) yield STOP;
  const vblk = vdev.priv as VirtioBlk | null;
  if (vblk !== null) yield* virtblk_update_capacity(vblk, true);
  return leave(F_virtblk_config_changed, undefined);
}

const F_init_vq = defineFn('init_vq', ['vblk']);
/** One request queue per CPU at most (nr_cpu_ids), and no more than the device offers with MQ. */
export function* init_vq(vblk: VirtioBlk): Co<number> {
  if (enter(F_init_vq, vblk)) yield STOP;
  const vdev = vblk.vdev;
  let num_vqs = yield* virtio_cread_feature(vdev, VIRTIO_BLK_F_MQ, BLK_CFG_NUM_QUEUES, 2);
  if (num_vqs === 0) {
    vdev.dmesg.push('MQ advertised but zero queues reported');
    return leave(F_init_vq, -EINVAL);
  }
  num_vqs = Math.min(vdev.nr_cpu_ids, num_vqs ?? 1);
  const callbacks: VqCallback[] = [];
  const names: string[] = [];
  for (let i = 0; i < num_vqs; i++) {
    callbacks.push(virtblk_done);
    names.push(`req.${i}`);
  }
  const vqs: VringVirtqueue[] = [];
  const err = yield* virtio_find_vqs(vdev, num_vqs, vqs, callbacks, names);
  if (err !== 0) return leave(F_init_vq, err);
  vblk.vqs = vqs.map((vq, i) => new VirtioBlkVq(vq, names[i]));
  vblk.num_vqs = num_vqs;
  return leave(F_init_vq, 0);
}

const virtio_mq_ops: BlkMqOps = {
  queue_rq: virtio_queue_rq,
  commit_rqs: virtio_commit_rqs,
  complete: virtblk_request_done,
  init_request: (_set, srq) => new VirtblkReq(srq),
};

/** Config fields that only tune queue limits: read when their feature was negotiated, as Linux does. */
function* virtblk_read_limits(vblk: VirtioBlk): Co<void> {
  const vdev = vblk.vdev;
  const wce = yield* virtio_cread_feature(vdev, VIRTIO_BLK_F_CONFIG_WCE, BLK_CFG_WRITEBACK, 1);
  vblk.writeback = wce !== null ? wce !== 0 : virtio_has_feature(vdev, VIRTIO_BLK_F_FLUSH);
  vblk.ro = virtio_has_feature(vdev, VIRTIO_BLK_F_RO);
  const size_max = yield* virtio_cread_feature(vdev, VIRTIO_BLK_F_SIZE_MAX, BLK_CFG_SIZE_MAX, 4);
  if (size_max !== null && size_max > 0) vblk.max_segment_size = Math.min(vblk.max_segment_size, size_max);
  const blk_size = yield* virtio_cread_feature(vdev, VIRTIO_BLK_F_BLK_SIZE, BLK_CFG_BLK_SIZE, 4);
  if (blk_size !== null && blk_size > 0) vblk.logical_block_size = blk_size;
  if (virtio_has_feature(vdev, VIRTIO_BLK_F_TOPOLOGY)) {
    vblk.physical_block_exp = yield* virtio_cread(vdev, BLK_CFG_PHYSICAL_BLOCK_EXP, 1);
    vblk.alignment_offset = yield* virtio_cread(vdev, BLK_CFG_ALIGNMENT_OFFSET, 1);
    vblk.min_io_size = yield* virtio_cread(vdev, BLK_CFG_MIN_IO_SIZE, 2);
    vblk.opt_io_size = yield* virtio_cread(vdev, BLK_CFG_OPT_IO_SIZE, 4);
  }
  if (virtio_has_feature(vdev, VIRTIO_BLK_F_DISCARD)) {
    vblk.discard_sector_alignment = yield* virtio_cread(vdev, BLK_CFG_DISCARD_SECTOR_ALIGNMENT, 4);
    vblk.max_discard_sectors = yield* virtio_cread(vdev, BLK_CFG_MAX_DISCARD_SECTORS, 4);
    vblk.max_discard_seg = yield* virtio_cread(vdev, BLK_CFG_MAX_DISCARD_SEG, 4);
  }
  const wz = yield* virtio_cread_feature(vdev, VIRTIO_BLK_F_WRITE_ZEROES, BLK_CFG_MAX_WRITE_ZEROES_SECTORS, 4);
  if (wz !== null) vblk.max_write_zeroes_sectors = wz > 0 ? wz : 0xffffffff;
}

const F_virtblk_probe = defineFn('virtblk_probe', ['vdev']);
export function* virtblk_probe(vdev: VirtioMmioDevice): Co<number> {
  if (enter(F_virtblk_probe, vdev)) yield STOP;
  // How many segments a request may have, before anything is allocated; at least one.
  let sg_elems = (yield* virtio_cread_feature(vdev, VIRTIO_BLK_F_SEG_MAX, BLK_CFG_SEG_MAX, 4)) ?? 0;
  if (sg_elems === 0) sg_elems = 1;
  sg_elems = Math.min(sg_elems, VIRTIO_BLK_MAX_SG_ELEMS - 2);

  const vblk = new VirtioBlk(vdev);
  vblk.sg_elems = sg_elems;
  vdev.priv = vblk;
  const err = yield* init_vq(vblk);
  if (err !== 0) {
    vdev.priv = null;
    kfree(vdev.alloc, vblk.kaddr);
    return leave(F_virtblk_probe, err);
  }

  // Default queue depth fills the ring; without indirect descriptors a request takes (at least) two.
  let queue_depth = vblk.vqs[0].vq.num_free;
  if (!virtio_has_feature(vdev, VIRTIO_RING_F_INDIRECT_DESC)) queue_depth = Math.floor(queue_depth / 2);
  vblk.queue_depth = queue_depth;
  const set = new BlkMqTagSet(virtio_mq_ops, vblk.num_vqs, queue_depth, VIRTBLK_REQ_SIZE, vblk);
  blk_mq_alloc_tag_set(set, vdev.alloc);
  vblk.tag_set = set;
  vblk.q = blk_mq_init_queue(set, vblk, vdev.alloc);
  vblk.q.hctxs.forEach((h, i) => (h.driver_data = vblk.vqs[i]));

  yield* virtblk_read_limits(vblk);
  yield* virtblk_update_capacity(vblk, false);
  yield* virtio_device_ready(vdev);
  // device_add_disk would now scan the partition table (three 4 KiB reads on a real guest); not modelled.
  return leave(F_virtblk_probe, 0);
}

/** struct virtio_driver virtio_blk. Linux also lists SECURE_ERASE (and ZONED), which the spec module lacks. */
export const virtio_blk: VirtioDriver = {
  name: 'virtio_blk',
  device_id: VIRTIO_ID_BLOCK,
  feature_table: [
    VIRTIO_BLK_F_SEG_MAX,
    VIRTIO_BLK_F_SIZE_MAX,
    VIRTIO_BLK_F_GEOMETRY,
    VIRTIO_BLK_F_RO,
    VIRTIO_BLK_F_BLK_SIZE,
    VIRTIO_BLK_F_FLUSH,
    VIRTIO_BLK_F_TOPOLOGY,
    VIRTIO_BLK_F_CONFIG_WCE,
    VIRTIO_BLK_F_MQ,
    VIRTIO_BLK_F_DISCARD,
    VIRTIO_BLK_F_WRITE_ZEROES,
  ],
  probe: virtblk_probe,
  config_changed: virtblk_config_changed,
};
