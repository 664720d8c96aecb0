/**
 * drivers/virtio/virtio_ring.c, split ring only: struct vring_virtqueue and
 * the driver half of the VIRTIO 1.x split virtqueue.
 *
 * The ring lives in guest RAM at spec offsets; everything the device may see
 * is written there, little-endian, in the order Linux writes it, with an
 * event point at each barrier. What Linux keeps private (the free list in
 * `desc_extra`, the tokens in `desc_state`, the shadow indices) is kept here
 * in typed arrays and plain fields, which the state snapshot reads as the
 * "driver" view of a queue.
 *
 * This file must not depend on the transport (virtio_mmio), on the block
 * driver, or on anything of the device side: guest memory is the only channel
 * to the device, and "notify" is a callback the transport hands in.
 * The packed ring (virtqueue_add_packed, ...) is not modelled.
 */
import { Co, STOP, enter, leave, point, setLocals } from '../../../sim/sim';
import { OPTIMIZED_OUT, defineFn, definePoint } from '../../../sim/frames';
import type { KernelObject } from '../../../sim/pointers';
import type { GuestMemory, Gpa } from '../../../memory/guest-memory';
import { GuestAllocator, OutOfGuestMemory } from '../../../memory/allocator';
import {
  AVAIL_FLAGS,
  AVAIL_IDX,
  DESC_ADDR,
  DESC_FLAGS,
  DESC_LEN,
  DESC_NEXT,
  USED_FLAGS,
  USED_IDX,
  VRING_AVAIL_F_NO_INTERRUPT,
  VRING_DESC_F_INDIRECT,
  VRING_DESC_F_NEXT,
  VRING_DESC_F_WRITE,
  VRING_DESC_SIZE,
  VRING_SPLIT_MAX_SIZE,
  VRING_USED_F_NO_NOTIFY,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
  availEventOff,
  availRingOff,
  hasFeature,
  usedEventOff,
  usedRingOff,
  vringAvailSize,
  vringDescSize,
  vringUsedSize,
  vring_need_event,
} from '../../../spec/virtio';

// errno values the guest returns (negated, as the kernel does).
export const ENOENT = 2;
export const EIO = 5;
export const ENXIO = 6;
export const ENOMEM = 12;
export const ENODEV = 19;
export const EINVAL = 22;
export const ENOSPC = 28;

export const IRQ_NONE = 0;
export const IRQ_HANDLED = 1;

const PAGE_SIZE = 4096;
/** desc_state[].indir_desc when the head has no indirect table. */
const NO_TABLE = -1;

/**
 * kmalloc stand-in: power-of-two sizes are naturally aligned, as the slab
 * allocator guarantees; larger ones are page aligned.
 */
export function kmalloc(alloc: GuestAllocator, size: number): Gpa {
  let align = 8;
  while (align < size && align < PAGE_SIZE) align <<= 1;
  return alloc.alloc(size, align);
}

export function kfree(alloc: GuestAllocator, addr: Gpa): void {
  alloc.release(addr);
}

/** What the ring needs of struct virtio_device: guest memory and the negotiated features. */
export interface VirtioDevice extends KernelObject {
  readonly mem: GuestMemory;
  readonly alloc: GuestAllocator;
  /** dev->features: the features both sides agreed on (a sum of powers of two). */
  features: number;
  /** dev_err / dev_warn output, oldest first. */
  readonly dmesg: string[];
}

export function virtio_has_feature(vdev: VirtioDevice, fbit: number): boolean {
  return hasFeature(vdev.features, fbit);
}

/**
 * struct scatterlist, reduced to what the ring reads: the DMA address (the
 * GPA: no IOMMU), the length, and sg_next() as a link. Drivers keep these in
 * their per-request data and re-initialise them, so the hot path allocates none.
 */
export class Scatterlist {
  dma_address: Gpa = 0;
  length = 0;
  next: Scatterlist | null = null;
}

export function sg_init_one(sg: Scatterlist, addr: Gpa, len: number): Scatterlist {
  sg.dma_address = addr;
  sg.length = len;
  sg.next = null;
  return sg;
}

export type VqNotify = (vq: VringVirtqueue) => Co<boolean>;
export type VqCallback = (vq: VringVirtqueue) => Co<void>;

/** vring_size(): bytes of a split ring of `num` entries whose used ring is aligned to `align`. */
export function vring_size(num: number, align: number): number {
  return alignUp(vringDescSize(num) + vringAvailSize(num), align) + vringUsedSize(num);
}

function alignUp(v: number, a: number): number {
  return Math.ceil(v / a) * a;
}

/**
 * struct vring_virtqueue (split). Field names are Linux's, flattened:
 * `split.avail_idx_shadow` is `avail_idx_shadow`, `vq.num_free` is `num_free`.
 */
export class VringVirtqueue implements KernelObject {
  /** Where the kmalloc'd struct lives in guest RAM. */
  readonly kaddr: Gpa;
  /** GPAs of the three parts of the ring (split.vring.desc / avail / used). */
  readonly desc: Gpa;
  readonly avail: Gpa;
  readonly used: Gpa;
  /** The ring's allocation: one zeroed, page-aligned block (dma_alloc_coherent). */
  readonly queue_dma_addr: Gpa;
  readonly queue_size_in_bytes: number;

  /** Negotiated VIRTIO_RING_F_INDIRECT_DESC / VIRTIO_RING_F_EVENT_IDX. */
  readonly indirect: boolean;
  readonly event: boolean;

  avail_flags_shadow = 0;
  avail_idx_shadow = 0;
  last_used_idx = 0;
  num_free: number;
  free_head = 0;
  num_added = 0;
  broken = false;
  /**
   * The scenario's raw statements drive this queue (not a Linux field): the
   * driver neither adds to it nor reads its used ring from then on, so the
   * rings stay exactly as the scenario and the device left them.
   */
  raw_owned = false;
  /** Set by vring_interrupt with EVENT_IDX: the device won't interrupt again until we re-arm. */
  event_triggered = false;
  /** BAD_RING messages, oldest first ("id 300 out of range"). */
  readonly errors: string[] = [];

  /** desc_state[]: the caller's token of each head in use (null: not a head), and its indirect table. */
  readonly data: unknown[];
  readonly indir_desc: Float64Array;
  /** desc_extra[]: the driver's private copy of each ring descriptor; `next` is the free-list link. */
  readonly extra_addr: Float64Array;
  readonly extra_len: Uint32Array;
  readonly extra_flags: Uint16Array;
  readonly extra_next: Uint16Array;

  readonly mem: GuestMemory;

  constructor(
    readonly index: number,
    readonly num: number,
    vring_align: number,
    readonly vdev: VirtioDevice,
    readonly notify: VqNotify,
    readonly callback: VqCallback | null,
    readonly name: string,
  ) {
    const alloc = vdev.alloc;
    this.mem = vdev.mem;
    this.kaddr = kmalloc(alloc, 0x100);
    this.queue_size_in_bytes = vring_size(num, vring_align);
    const bytes = alignUp(this.queue_size_in_bytes, PAGE_SIZE);
    this.queue_dma_addr = alloc.alloc(bytes, PAGE_SIZE);
    // dma_alloc_coherent hands out zeroed memory; the allocator may reuse pages.
    this.mem.fill(this.queue_dma_addr, bytes, 0);
    // vring_init: avail right after the table, used at the next `vring_align` boundary after avail.
    this.desc = this.queue_dma_addr;
    this.avail = this.desc + vringDescSize(num);
    this.used = alignUp(this.avail + vringAvailSize(num), vring_align);

    this.indirect = virtio_has_feature(vdev, VIRTIO_RING_F_INDIRECT_DESC);
    this.event = virtio_has_feature(vdev, VIRTIO_RING_F_EVENT_IDX);
    this.num_free = num;
    this.data = new Array<unknown>(num).fill(null);
    this.indir_desc = new Float64Array(num).fill(NO_TABLE);
    this.extra_addr = new Float64Array(num);
    this.extra_len = new Uint32Array(num);
    this.extra_flags = new Uint16Array(num);
    this.extra_next = new Uint16Array(num);
    // The free list starts as 0 → 1 → ... → num-1 (the last link is 0, as kcalloc left it).
    for (let i = 0; i < num - 1; i++) this.extra_next[i] = i + 1;

    // No callback: the driver never wants interrupts for this queue.
    if (callback === null) {
      this.avail_flags_shadow |= VRING_AVAIL_F_NO_INTERRUPT;
      if (!this.event) this.mem.write16(this.avail + AVAIL_FLAGS, this.avail_flags_shadow);
    }
  }
}

export function virtqueue_get_vring_size(vq: VringVirtqueue): number {
  return vq.num;
}

export function virtqueue_is_broken(vq: VringVirtqueue): boolean {
  return vq.broken;
}

/** BAD_RING(): log against the device, keep the message, and stop using the queue. */
function bad_ring(vq: VringVirtqueue, msg: string): void {
  vq.vdev.dmesg.push(`${vq.name}:${msg}`);
  vq.errors.push(msg);
  vq.broken = true;
}

function more_used_split(vq: VringVirtqueue): boolean {
  return vq.last_used_idx !== vq.mem.read16(vq.used + USED_IDX);
}

const F_vring_create_virtqueue = defineFn('vring_create_virtqueue', ['index', 'num', 'vring_align', 'vdev']);
/** Allocate and initialise a split ring of `num` entries; null when num is not a power of two. */
export function* vring_create_virtqueue(
  index: number,
  num: number,
  vring_align: number,
  vdev: VirtioDevice,
  notify: VqNotify,
  callback: VqCallback | null,
  name: string,
): Co<VringVirtqueue | null> {
  if (enter(F_vring_create_virtqueue, index, num, vring_align, vdev)) yield STOP;
  if (num === 0 || (num & (num - 1)) !== 0 || num > VRING_SPLIT_MAX_SIZE) {
    vdev.dmesg.push(`Bad virtqueue length ${num}`);
    return leave(F_vring_create_virtqueue, null);
  }
  const vq = new VringVirtqueue(index, num, vring_align, vdev, notify, callback, name);
  return leave(F_vring_create_virtqueue, vq);
}

const F_virtqueue_add_sgs = defineFn('virtqueue_add_sgs', ['_vq', 'sgs', 'out_sgs', 'in_sgs']);
/**
 * Expose `out_sgs` device-readable then `in_sgs` device-writable scatterlists
 * as one buffer; `data` is the token virtqueue_get_buf hands back.
 */
export function* virtqueue_add_sgs(
  vq: VringVirtqueue,
  sgs: readonly Scatterlist[],
  out_sgs: number,
  in_sgs: number,
  data: unknown,
): Co<number> {
  if (enter(F_virtqueue_add_sgs, vq, OPTIMIZED_OUT, out_sgs, in_sgs)) yield STOP;
  let total_sg = 0;
  for (let i = 0; i < out_sgs + in_sgs; i++) {
    for (let sg: Scatterlist | null = sgs[i]; sg !== null; sg = sg.next) total_sg++;
  }
  const r = yield* virtqueue_add_split(vq, sgs, total_sg, out_sgs, in_sgs, data);
  return leave(F_virtqueue_add_sgs, r);
}

/**
 * virtqueue_add_desc_split: fill descriptor `i` of `table`. A ring descriptor
 * takes its `next` from the private free list (so an unchained descriptor
 * still carries the link); a table entry keeps the `next` alloc_indirect_split
 * wrote. Returns the next descriptor to fill.
 */
function add_desc_split(vq: VringVirtqueue, table: Gpa, i: number, addr: Gpa, len: number, flags: number, indirect: boolean): number {
  const mem = vq.mem;
  const d = table + VRING_DESC_SIZE * i;
  mem.write16(d + DESC_FLAGS, flags);
  mem.write64(d + DESC_ADDR, addr);
  mem.write32(d + DESC_LEN, len);
  if (indirect) return mem.read16(d + DESC_NEXT);
  const next = vq.extra_next[i];
  mem.write16(d + DESC_NEXT, next);
  vq.extra_addr[i] = addr;
  vq.extra_len[i] = len;
  vq.extra_flags[i] = flags;
  return next;
}

/** alloc_indirect_split: a kmalloc'd table whose entries are pre-chained i → i+1; -1 if memory is short. */
function alloc_indirect_split(vq: VringVirtqueue, total_sg: number): Gpa {
  let table: Gpa;
  try {
    table = kmalloc(vq.vdev.alloc, total_sg * VRING_DESC_SIZE);
  } catch (e) {
    if (e instanceof OutOfGuestMemory) return NO_TABLE; // Linux falls back to direct descriptors
    throw e;
  }
  for (let i = 0; i < total_sg; i++) vq.mem.write16(table + VRING_DESC_SIZE * i + DESC_NEXT, i + 1);
  return table;
}

const F_virtqueue_add_split = defineFn('virtqueue_add_split', ['_vq', 'sgs', 'total_sg', 'out_sgs']);
const P_avail_write = definePoint(F_virtqueue_add_split, 'avail_write');
const P_add_wmb = definePoint(F_virtqueue_add_split, 'wmb');
const P_avail_idx_write = definePoint(F_virtqueue_add_split, 'avail_idx_write');
export function* virtqueue_add_split(
  vq: VringVirtqueue,
  sgs: readonly Scatterlist[],
  total_sg: number,
  out_sgs: number,
  in_sgs: number,
  data: unknown,
): Co<number> {
  if (enter(F_virtqueue_add_split, vq, OPTIMIZED_OUT, total_sg, out_sgs)) yield STOP;
  // A null token could not be told from "not a head" when the buffer comes back (Linux: BUG_ON).
  if (data === null || data === undefined) throw new Error('virtqueue_add_split: null data token');
  if (vq.broken) return leave(F_virtqueue_add_split, -EIO);
  const mem = vq.mem;
  const head = vq.free_head;

  // virtqueue_use_indirect: one ring slot per request whenever there is one to spare.
  const table = vq.indirect && total_sg > 1 && vq.num_free > 0 ? alloc_indirect_split(vq, total_sg) : NO_TABLE;
  const indirect = table !== NO_TABLE;
  const tbl = indirect ? table : vq.desc;
  let i = indirect ? 0 : head;
  const descs_used = indirect ? 1 : total_sg;

  if (vq.num_free < descs_used) {
    // Linux forces a notify here when there is something for the device to read ("historical reasons").
    if (out_sgs > 0) yield* vq.notify(vq);
    if (indirect) kfree(vq.vdev.alloc, table);
    return leave(F_virtqueue_add_split, -ENOSPC);
  }

  let prev = i;
  const nsgs = out_sgs + in_sgs;
  for (let n = 0; n < nsgs; n++) {
    const flags = n < out_sgs ? VRING_DESC_F_NEXT : VRING_DESC_F_NEXT | VRING_DESC_F_WRITE;
    for (let sg: Scatterlist | null = sgs[n]; sg !== null; sg = sg.next) {
      prev = i;
      i = add_desc_split(vq, tbl, i, sg.dma_address, sg.length, flags, indirect);
    }
  }
  // The last one doesn't continue (its `next` stays as it was: the free-list link or i+1).
  const lastFlags = tbl + VRING_DESC_SIZE * prev + DESC_FLAGS;
  mem.write16(lastFlags, mem.read16(lastFlags) & ~VRING_DESC_F_NEXT);
  if (!indirect) vq.extra_flags[prev] &= ~VRING_DESC_F_NEXT;
  if (indirect) add_desc_split(vq, vq.desc, head, table, total_sg * VRING_DESC_SIZE, VRING_DESC_F_INDIRECT, false);

  vq.num_free -= descs_used;
  vq.free_head = indirect ? vq.extra_next[head] : i;
  vq.data[head] = data;
  vq.indir_desc[head] = table;

  const slot = vq.avail_idx_shadow & (vq.num - 1);
  setLocals({ head, indirect, descs_used, table: indirect ? table : null });
  if (point(P_avail_write)) yield STOP; // @point avail_write
  mem.write16(vq.avail + availRingOff(slot), head);
  // Descriptors and the ring entry must be visible before the new index.
  if (point(P_add_wmb)) yield STOP; // @point wmb
  vq.avail_idx_shadow = (vq.avail_idx_shadow + 1) & 0xffff;
  if (point(P_avail_idx_write)) yield STOP; // @point avail_idx_write
  mem.write16(vq.avail + AVAIL_IDX, vq.avail_idx_shadow);
  vq.num_added++;

  // Very unlikely, but num_added must not reach 2^16 between kicks or the device could miss a wrap.
  if (vq.num_added === 0xffff) yield* virtqueue_kick(vq);
  return leave(F_virtqueue_add_split, 0);
}

const F_virtqueue_kick_prepare = defineFn('virtqueue_kick_prepare', ['_vq']);
/** Does the device need a notification for what was added since the last kick? */
export function* virtqueue_kick_prepare(vq: VringVirtqueue): Co<boolean> {
  if (enter(F_virtqueue_kick_prepare, vq)) yield STOP;
  const r = yield* virtqueue_kick_prepare_split(vq);
  return leave(F_virtqueue_kick_prepare, r);
}

const F_virtqueue_kick_prepare_split = defineFn('virtqueue_kick_prepare_split', ['_vq']);
const P_kick_mb = definePoint(F_virtqueue_kick_prepare_split, 'mb');
export function* virtqueue_kick_prepare_split(vq: VringVirtqueue): Co<boolean> {
  if (enter(F_virtqueue_kick_prepare_split, vq)) yield STOP;
  // The new avail entries must be visible before we read the device's event index / flags.
  if (point(P_kick_mb)) yield STOP; // @point mb
  const old_idx = (vq.avail_idx_shadow - vq.num_added) & 0xffff;
  const new_idx = vq.avail_idx_shadow;
  vq.num_added = 0;
  let needs_kick: boolean;
  if (vq.event) {
    needs_kick = vring_need_event(vq.mem.read16(vq.used + availEventOff(vq.num)), new_idx, old_idx);
  } else {
    needs_kick = (vq.mem.read16(vq.used + USED_FLAGS) & VRING_USED_F_NO_NOTIFY) === 0;
  }
  return leave(F_virtqueue_kick_prepare_split, needs_kick);
}

const F_virtqueue_notify = defineFn('virtqueue_notify', ['_vq']);
/** Tell the device through the transport; a transport that fails leaves the queue broken. */
export function* virtqueue_notify(vq: VringVirtqueue): Co<boolean> {
  if (enter(F_virtqueue_notify, vq)) yield STOP;
  if (vq.broken) return leave(F_virtqueue_notify, false);
  if (!(yield* vq.notify(vq))) {
    vq.broken = true;
    return leave(F_virtqueue_notify, false);
  }
  return leave(F_virtqueue_notify, true);
}

const F_virtqueue_kick = defineFn('virtqueue_kick', ['vq']);
/** kick_prepare + notify. Drivers use it on error paths; the fast path splits the two around the lock. */
export function* virtqueue_kick(vq: VringVirtqueue): Co<boolean> {
  if (enter(F_virtqueue_kick, vq)) yield STOP;
  let ok = true;
  if (yield* virtqueue_kick_prepare(vq)) ok = yield* virtqueue_notify(vq);
  return leave(F_virtqueue_kick, ok);
}

/** Out-parameter of virtqueue_get_buf (`unsigned int *len`): the used element's len. */
export interface LenOut {
  value: number;
}

const F_virtqueue_get_buf = defineFn('virtqueue_get_buf', ['_vq', 'len']);
/** The token of the next used buffer, or null when there is none (or the ring is broken). */
export function* virtqueue_get_buf(vq: VringVirtqueue, len: LenOut | null): Co<unknown> {
  if (enter(F_virtqueue_get_buf, vq, OPTIMIZED_OUT)) yield STOP;
  const r = yield* virtqueue_get_buf_ctx_split(vq, len);
  return leave(F_virtqueue_get_buf, r);
}

const F_virtqueue_get_buf_ctx_split = defineFn('virtqueue_get_buf_ctx_split', ['_vq', 'len', 'ctx']);
const P_get_rmb = definePoint(F_virtqueue_get_buf_ctx_split, 'rmb');
const P_get_used_event = definePoint(F_virtqueue_get_buf_ctx_split, 'used_event_write');
export function* virtqueue_get_buf_ctx_split(vq: VringVirtqueue, len: LenOut | null): Co<unknown> {
  if (enter(F_virtqueue_get_buf_ctx_split, vq, OPTIMIZED_OUT, null)) yield STOP;
  if (vq.broken) return leave(F_virtqueue_get_buf_ctx_split, null);
  if (!more_used_split(vq)) return leave(F_virtqueue_get_buf_ctx_split, null);
  const mem = vq.mem;
  // Read the used element only after seeing the device's used->idx.
  if (point(P_get_rmb)) yield STOP; // @point rmb
  const elem = vq.used + usedRingOff(vq.last_used_idx & (vq.num - 1));
  const id = mem.read32(elem);
  if (len !== null) len.value = mem.read32(elem + 4);
  if (id >= vq.num) {
    bad_ring(vq, `id ${id} out of range`);
    return leave(F_virtqueue_get_buf_ctx_split, null);
  }
  const ret = vq.data[id];
  if (ret === null) {
    bad_ring(vq, `id ${id} is not a head!`);
    return leave(F_virtqueue_get_buf_ctx_split, null);
  }
  yield* detach_buf_split(vq, id);
  vq.last_used_idx = (vq.last_used_idx + 1) & 0xffff;
  // If we expect an interrupt for the next entry, tell the device (virtio_store_mb: store, then full barrier).
  if ((vq.avail_flags_shadow & VRING_AVAIL_F_NO_INTERRUPT) === 0) {
    if (point(P_get_used_event)) yield STOP; // @point used_event_write
    mem.write16(vq.avail + usedEventOff(vq.num), vq.last_used_idx);
  }
  return leave(F_virtqueue_get_buf_ctx_split, ret);
}

const F_detach_buf_split = defineFn('detach_buf_split', ['vq', 'head', 'ctx']);
/**
 * Give the chain at `head` back to the free list (its last descriptor links to
 * the old free head; `head` becomes the free head) and free its indirect table.
 * The chain is walked in desc_extra, not in guest memory, as current Linux does:
 * the device cannot corrupt the free list by rewriting descriptors.
 */
export function* detach_buf_split(vq: VringVirtqueue, head: number): Co<void> {
  if (enter(F_detach_buf_split, vq, head, null)) yield STOP;
  vq.data[head] = null;
  let i = head;
  while ((vq.extra_flags[i] & VRING_DESC_F_NEXT) !== 0) {
    i = vq.extra_next[i];
    vq.num_free++;
  }
  vq.extra_next[i] = vq.free_head;
  vq.free_head = head;
  vq.num_free++;
  const table = vq.indir_desc[head];
  if (table !== NO_TABLE) {
    kfree(vq.vdev.alloc, table);
    vq.indir_desc[head] = NO_TABLE;
  }
  return leave(F_detach_buf_split, undefined);
}

const F_virtqueue_disable_cb = defineFn('virtqueue_disable_cb', ['_vq']);
/**
 * Ask for no interrupts. With EVENT_IDX Linux leaves avail->flags alone and
 * (when the device has not just interrupted) parks used_event at 0; without
 * it, it sets VRING_AVAIL_F_NO_INTERRUPT. This is 6.1's order: an interrupt
 * already taken (event_triggered) makes it a no-op, so get_buf keeps writing
 * used_event in the completion loop. Later kernels set the shadow flag first.
 */
export function* virtqueue_disable_cb(vq: VringVirtqueue): Co<void> {
  if (enter(F_virtqueue_disable_cb, vq)) yield STOP;
  if (!vq.event_triggered && (vq.avail_flags_shadow & VRING_AVAIL_F_NO_INTERRUPT) === 0) {
    vq.avail_flags_shadow |= VRING_AVAIL_F_NO_INTERRUPT;
    if (vq.event) vq.mem.write16(vq.avail + usedEventOff(vq.num), 0);
    else vq.mem.write16(vq.avail + AVAIL_FLAGS, vq.avail_flags_shadow);
  }
  return leave(F_virtqueue_disable_cb, undefined);
}

const F_virtqueue_enable_cb_prepare = defineFn('virtqueue_enable_cb_prepare', ['_vq']);
const P_enable_used_event = definePoint(F_virtqueue_enable_cb_prepare, 'used_event_write');
/**
 * Turn interrupts back on and return the index to poll from. Linux does both
 * (clears the flag and points used_event at last_used_idx) whatever was
 * negotiated, which is why used_event moves even without EVENT_IDX.
 */
export function* virtqueue_enable_cb_prepare(vq: VringVirtqueue): Co<number> {
  if (enter(F_virtqueue_enable_cb_prepare, vq)) yield STOP;
  vq.event_triggered = false;
  if ((vq.avail_flags_shadow & VRING_AVAIL_F_NO_INTERRUPT) !== 0) {
    vq.avail_flags_shadow &= ~VRING_AVAIL_F_NO_INTERRUPT;
    if (!vq.event) vq.mem.write16(vq.avail + AVAIL_FLAGS, vq.avail_flags_shadow);
  }
  const last_used_idx = vq.last_used_idx;
  if (point(P_enable_used_event)) yield STOP; // @point used_event_write
  vq.mem.write16(vq.avail + usedEventOff(vq.num), last_used_idx);
  return leave(F_virtqueue_enable_cb_prepare, last_used_idx);
}

const F_virtqueue_poll = defineFn('virtqueue_poll', ['_vq', 'last_used_idx']);
const P_poll_mb = definePoint(F_virtqueue_poll, 'mb');
/** Has the device used more buffers since `last_used_idx`? */
export function* virtqueue_poll(vq: VringVirtqueue, last_used_idx: number): Co<boolean> {
  if (enter(F_virtqueue_poll, vq, last_used_idx)) yield STOP;
  if (vq.broken) return leave(F_virtqueue_poll, false);
  // The used_event store must be visible before we re-read used->idx, or an interrupt could be lost.
  if (point(P_poll_mb)) yield STOP; // @point mb
  return leave(F_virtqueue_poll, (last_used_idx & 0xffff) !== vq.mem.read16(vq.used + USED_IDX));
}

const F_virtqueue_enable_cb = defineFn('virtqueue_enable_cb', ['_vq']);
/** Re-arm interrupts; false when buffers arrived meanwhile (the caller must process them). */
export function* virtqueue_enable_cb(vq: VringVirtqueue): Co<boolean> {
  if (enter(F_virtqueue_enable_cb, vq)) yield STOP;
  const last_used_idx = yield* virtqueue_enable_cb_prepare(vq);
  const more = yield* virtqueue_poll(vq, last_used_idx);
  return leave(F_virtqueue_enable_cb, !more);
}

const F_vring_interrupt = defineFn('vring_interrupt', ['irq', '_vq']);
/** The per-queue interrupt handler: run the driver's callback if the device used something. */
export function* vring_interrupt(irq: number, vq: VringVirtqueue): Co<number> {
  if (enter(F_vring_interrupt, irq, vq)) yield STOP;
  // A queue the scenario drives with raw statements is not the driver's any more: leave its rings alone.
  if (vq.raw_owned) return leave(F_vring_interrupt, IRQ_NONE);
  if (!more_used_split(vq)) return leave(F_vring_interrupt, IRQ_NONE);
  if (vq.broken) return leave(F_vring_interrupt, IRQ_HANDLED);
  // Just a hint: the device won't send another event until used_event is moved again.
  if (vq.event) vq.event_triggered = true;
  if (vq.callback !== null) yield* vq.callback(vq);
  return leave(F_vring_interrupt, IRQ_HANDLED);
}
