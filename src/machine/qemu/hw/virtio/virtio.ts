/**
 * The device side of a split virtqueue (hw/virtio/virtio.c): VirtIODevice,
 * VirtQueue, VirtQueueElement, and the functions that pop, fill, flush and
 * notify. Every ring access reads or writes guest memory at the spec's
 * offsets; the device keeps only the indices QEMU keeps (last_avail_idx,
 * shadow_avail_idx, used_idx, signalled_used, inuse).
 *
 * Every check QEMU makes on what the guest put in the ring ends in
 * `virtio_error` with QEMU's message: the device is then broken and touches
 * nothing more. Follows QEMU 7.2; differences with later QEMU are noted.
 */
import { Co, S, STOP, enter, leave, point, setLocals } from '../../../sim/sim';
import { defineFn, definePoint } from '../../../sim/frames';
import type { HostObject } from '../../../sim/pointers';
import type { GuestMemory, Gpa } from '../../../memory/guest-memory';
import * as V from '../../../spec/virtio';
import type { IoVec } from '../../util/iov';
import { readDesc } from '../../../memory/vring-desc';
import { EventNotifier, event_notifier_set, event_notifier_test_and_clear } from '../../util/async';

/** What a transport (virtio-mmio here) does for the device core. */
export interface VirtioBusOps {
  /** k->notify: raise or lower the interrupt after the ISR changed. */
  notify(vdev: VirtIODevice, vector: number): Co<void>;
}

export type HandleOutput = (vdev: VirtIODevice, vq: VirtQueue) => Co<void>;

export class VirtQueueElement implements HostObject {
  readonly ptr: number;
  index = 0;
  len = 0;
  ndescs = 0;
  out_num = 0;
  in_num = 0;
  out_addr: Gpa[] = [];
  in_addr: Gpa[] = [];
  out_sg: IoVec[] = [];
  in_sg: IoVec[] = [];
  constructor(ptr: number) {
    this.ptr = ptr;
  }
}

export class VirtQueue implements HostObject {
  readonly ptr: number;
  num = 0;
  num_default: number;
  desc: Gpa = 0;
  avail: Gpa = 0;
  used: Gpa = 0;
  last_avail_idx = 0;
  shadow_avail_idx = 0;
  used_idx = 0;
  signalled_used = 0;
  signalled_used_valid = false;
  notification = true;
  inuse = 0;
  /** Popped and not yet pushed: the in-flight VirtQueueElements (a guest may offer one head twice). */
  readonly inflight = new Set<VirtQueueElement>();
  handle_output: HandleOutput | null = null;
  readonly host_notifier: EventNotifier;
  host_notifier_enabled = false;
  readonly guest_notifier: EventNotifier;

  constructor(readonly vdev: VirtIODevice, readonly queue_index: number, ptr: number, num: number) {
    this.ptr = ptr;
    this.num_default = num;
    this.num = num;
    this.host_notifier = new EventNotifier(`vq${queue_index} host notifier`);
    this.guest_notifier = new EventNotifier(`vq${queue_index} guest notifier`);
  }

  /** The guest has given the ring addresses (QueueReady). */
  get ready(): boolean {
    return this.desc !== 0;
  }
}

export class VirtIODevice implements HostObject {
  readonly ptr: number;
  status = 0;
  isr = 0;
  host_features = 0;
  guest_features = 0;
  broken = false;
  /** virtio_error messages, in order. */
  readonly errors: string[] = [];
  config_vector = 0;
  generation = 0;
  readonly vq: VirtQueue[] = [];
  bus: VirtioBusOps | null = null;

  constructor(readonly name: string, readonly device_id: number, readonly mem: GuestMemory, ptr: number) {
    this.ptr = ptr;
  }

  hasFeature(bitNo: number): boolean {
    return V.hasFeature(this.guest_features, bitNo);
  }

  addQueue(num: number, handle: HandleOutput): VirtQueue {
    // QEMU allocates vdev->vq as one array of VIRTIO_QUEUE_MAX entries; each VirtQueue is 0x98 bytes.
    const vq = new VirtQueue(this, this.vq.length, S.ptrs.alloc('mmap', 0x98, 8), num);
    vq.handle_output = handle;
    this.vq.push(vq);
    return vq;
  }
}

// ---- ring accessors: guest memory at the spec's offsets (vring_* in QEMU) ----

export function vring_avail_flags(vq: VirtQueue): number {
  return vq.vdev.mem.read16(vq.avail + V.AVAIL_FLAGS);
}
export function vring_avail_idx(vq: VirtQueue): number {
  vq.shadow_avail_idx = vq.vdev.mem.read16(vq.avail + V.AVAIL_IDX);
  return vq.shadow_avail_idx;
}
function vring_avail_ring(vq: VirtQueue, i: number): number {
  return vq.vdev.mem.read16(vq.avail + V.availRingOff(i));
}
export function vring_get_used_event(vq: VirtQueue): number {
  return vq.vdev.mem.read16(vq.avail + V.usedEventOff(vq.num));
}
function vring_used_idx_set(vq: VirtQueue, val: number): void {
  vq.vdev.mem.write16(vq.used + V.USED_IDX, val);
  vq.used_idx = val;
}
function vring_set_avail_event(vq: VirtQueue, val: number): void {
  if (!vq.notification) return;
  vq.vdev.mem.write16(vq.used + V.availEventOff(vq.num), val);
}
function vring_used_flags_set(vq: VirtQueue, mask: number, on: boolean): void {
  const a = vq.used + V.USED_FLAGS;
  const f = vq.vdev.mem.read16(a);
  vq.vdev.mem.write16(a, on ? f | mask : f & ~mask);
}

// ---- errors ----

const F_virtio_error = defineFn('virtio_error', ['vdev', 'fmt']);
/**
 * The guest broke the spec. With VERSION_1 the device asks for a reset
 * (NEEDS_RESET and a config interrupt); in any case it is broken and
 * processes nothing more until reset.
 */
export function* virtio_error(vdev: VirtIODevice, message: string): Co<void> {
  if (enter(F_virtio_error, vdev, JSON.stringify(message))) yield STOP;
  vdev.errors.push(message);
  if (vdev.hasFeature(V.VIRTIO_F_VERSION_1)) {
    vdev.status |= V.VIRTIO_CONFIG_S_NEEDS_RESET;
    yield* virtio_notify_config(vdev);
  }
  vdev.broken = true;
  return leave(F_virtio_error, undefined);
}

const F_notify_config = defineFn('virtio_notify_config', ['vdev']);
export function* virtio_notify_config(vdev: VirtIODevice): Co<void> {
  if (enter(F_notify_config, vdev)) yield STOP;
  if (vdev.status & V.VIRTIO_CONFIG_S_DRIVER_OK) {
    vdev.isr |= 0x3;
    vdev.generation++;
    yield* virtio_notify_vector(vdev, vdev.config_vector);
  }
  return leave(F_notify_config, undefined);
}

export function virtio_device_disabled(vdev: VirtIODevice): boolean {
  return vdev.broken;
}

// ---- avail side ----

const F_queue_empty = defineFn('virtio_queue_empty', ['vq']);
export function* virtio_queue_empty(vq: VirtQueue): Co<boolean> {
  if (enter(F_queue_empty, vq)) yield STOP;
  return leave(F_queue_empty, queue_empty(vq));
}

/** virtio_queue_empty_rcu: no frame of its own in QEMU's hot path. */
function queue_empty(vq: VirtQueue): boolean {
  if (virtio_device_disabled(vq.vdev) || !vq.ready) return true;
  if (vq.shadow_avail_idx !== vq.last_avail_idx) return false;
  return vring_avail_idx(vq) === vq.last_avail_idx;
}

const F_set_notification = defineFn('virtio_queue_set_notification', ['vq', 'enable']);
/**
 * Ask the guest not to kick (enable = 0) while the device drains the ring,
 * then to kick again. With EVENT_IDX only enabling writes avail_event; without
 * it the device toggles VRING_USED_F_NO_NOTIFY.
 */
export function* virtio_queue_set_notification(vq: VirtQueue, enable: number): Co<void> {
  if (enter(F_set_notification, vq, enable)) yield STOP;
  vq.notification = enable !== 0;
  if (vq.ready) {
    if (vq.vdev.hasFeature(V.VIRTIO_RING_F_EVENT_IDX)) {
      vring_set_avail_event(vq, vring_avail_idx(vq)); // reads avail idx either way; writes only when enabling
    } else {
      vring_used_flags_set(vq, V.VRING_USED_F_NO_NOTIFY, !enable);
    }
    // smp_mb() when enabling: the avail idx is read again after this.
  }
  return leave(F_set_notification, undefined);
}

const F_pop = defineFn('virtqueue_pop', ['vq', 'sz']);
export function* virtqueue_pop(vq: VirtQueue, sz: number): Co<VirtQueueElement | null> {
  if (enter(F_pop, vq, sz)) yield STOP;
  const elem = yield* virtqueue_split_pop(vq, sz);
  return leave(F_pop, elem);
}

const F_split_pop = defineFn('virtqueue_split_pop', ['vq', 'sz']);
const P_pop_head = definePoint(F_split_pop, 'read_head');
const P_pop_avail_event = definePoint(F_split_pop, 'avail_event');
const P_pop_elem = definePoint(F_split_pop, 'elem');

/** Why a chain walk stopped early: the message virtio_error reports. */
type WalkError = string;

export function* virtqueue_split_pop(vq: VirtQueue, sz: number): Co<VirtQueueElement | null> {
  if (enter(F_split_pop, vq, sz)) yield STOP;
  const vdev = vq.vdev;
  if (queue_empty(vq)) return leave(F_split_pop, null);
  // smp_rmb(): read the ring only after seeing the new avail idx.
  const heads = (vq.shadow_avail_idx - vq.last_avail_idx) & 0xffff;
  if (heads > vq.num) {
    yield* virtio_error(vdev, `Guest moved used index from ${vq.last_avail_idx} to ${vq.shadow_avail_idx}`);
    return leave(F_split_pop, null);
  }
  if (vq.inuse >= vq.num) {
    yield* virtio_error(vdev, 'Virtqueue size exceeded');
    return leave(F_split_pop, null);
  }
  // @point read_head
  if (point(P_pop_head)) yield STOP;
  const head = vring_avail_ring(vq, vq.last_avail_idx % vq.num);
  vq.last_avail_idx = (vq.last_avail_idx + 1) & 0xffff;
  if (head >= vq.num) {
    yield* virtio_error(vdev, `Guest says index ${head} is available`);
    return leave(F_split_pop, null);
  }
  if (vdev.hasFeature(V.VIRTIO_RING_F_EVENT_IDX)) {
    // @point avail_event
    if (point(P_pop_avail_event)) yield STOP;
    vring_set_avail_event(vq, vq.last_avail_idx);
  }
  const elem = new VirtQueueElement(S.ptrs.alloc('heap', 0x60 + 0x20 * 4));
  const err = walkChain(vq, head, elem);
  if (err !== null) {
    yield* virtio_error(vdev, err);
    return leave(F_split_pop, null);
  }
  elem.index = head;
  elem.ndescs = 1;
  vq.inuse++;
  vq.inflight.add(elem);
  setLocals({ head, elem });
  // @point elem
  if (point(P_pop_elem)) yield STOP;
  return leave(F_split_pop, elem);
}

/**
 * Walk the chain at `head` (following one indirect table at the head) into
 * `elem`'s sg lists. Returns null, or the virtio_error message that QEMU
 * gives for the rule the chain broke.
 */
function walkChain(vq: VirtQueue, head: number, elem: VirtQueueElement): WalkError | null {
  const mem = vq.vdev.mem;
  let table = vq.desc;
  let max = vq.num;
  let i = head;
  if (!mem.valid(table + i * V.VRING_DESC_SIZE, V.VRING_DESC_SIZE)) return 'virtio: bogus descriptor or out of resources';
  let d = readDesc(mem, table, i);
  if (d.flags & V.VRING_DESC_F_INDIRECT) {
    if (d.len === 0 || d.len % V.VRING_DESC_SIZE !== 0) return 'Invalid size for indirect buffer table';
    if (!mem.valid(d.addr, d.len)) return 'Cannot map indirect buffer';
    // INDIRECT is honoured on the head only: flags inside the table are not followed again.
    table = d.addr;
    max = d.len / V.VRING_DESC_SIZE;
    i = 0;
    d = readDesc(mem, table, i);
  }
  // The hop budget: a chain can have at most `max` descriptors, so more means a loop.
  let seen = 0;
  while (true) {
    if (d.flags & V.VRING_DESC_F_WRITE) {
      const e = mapDesc(mem, elem.in_sg, elem.in_addr, elem.out_num + elem.in_num, d.addr, d.len);
      if (e) return e;
      elem.in_num = elem.in_sg.length;
    } else {
      if (elem.in_num > 0) return 'Incorrect order for descriptors';
      const e = mapDesc(mem, elem.out_sg, elem.out_addr, elem.out_num + elem.in_num, d.addr, d.len);
      if (e) return e;
      elem.out_num = elem.out_sg.length;
    }
    if (++seen > max) return 'Looped descriptor';
    if (!(d.flags & V.VRING_DESC_F_NEXT)) return null;
    const next = d.next;
    if (next >= max) return `Desc next is ${next}`;
    i = next;
    d = readDesc(mem, table, i);
  }
}

/** virtqueue_map_desc: one descriptor becomes one sg entry (guest RAM is one contiguous region). */
function mapDesc(mem: GuestMemory, sg: IoVec[], addrs: Gpa[], used: number, pa: Gpa, len: number): WalkError | null {
  if (len === 0) return 'virtio: zero sized buffers are not allowed';
  if (used >= V.VIRTQUEUE_MAX_SIZE) return 'virtio: too many write descriptors in indirect table';
  if (!mem.valid(pa, len)) return 'virtio: bogus descriptor or out of resources';
  sg.push({ addr: pa, len });
  addrs.push(pa);
  return null;
}

// ---- used side ----

const F_push = defineFn('virtqueue_push', ['vq', 'elem', 'len']);
export function* virtqueue_push(vq: VirtQueue, elem: VirtQueueElement, len: number): Co<void> {
  if (enter(F_push, vq, elem, len)) yield STOP;
  yield* virtqueue_fill(vq, elem, len, 0);
  yield* virtqueue_flush(vq, 1);
  return leave(F_push, undefined);
}

const F_fill = defineFn('virtqueue_fill', ['vq', 'elem', 'len', 'idx']);
const P_used_write = definePoint(F_fill, 'used_write');
export function* virtqueue_fill(vq: VirtQueue, elem: VirtQueueElement, len: number, idx: number): Co<void> {
  if (enter(F_fill, vq, elem, len, idx)) yield STOP;
  vq.inflight.delete(elem);
  elem.len = len;
  if (!virtio_device_disabled(vq.vdev)) {
    const slot = (idx + vq.used_idx) % vq.num;
    const a = vq.used + V.usedRingOff(slot);
    // @point used_write
    if (point(P_used_write)) yield STOP;
    vq.vdev.mem.write32(a, elem.index);
    vq.vdev.mem.write32(a + 4, len);
  }
  return leave(F_fill, undefined);
}

const F_flush = defineFn('virtqueue_flush', ['vq', 'count']);
const P_flush_wmb = definePoint(F_flush, 'wmb');
const P_used_idx = definePoint(F_flush, 'used_idx');
export function* virtqueue_flush(vq: VirtQueue, count: number): Co<void> {
  if (enter(F_flush, vq, count)) yield STOP;
  if (virtio_device_disabled(vq.vdev)) {
    vq.inuse -= count;
    return leave(F_flush, undefined);
  }
  // @point wmb
  if (point(P_flush_wmb)) yield STOP; // smp_wmb(): the used elements are visible before the index
  const old = vq.used_idx;
  const nw = (old + count) & 0xffff;
  // @point used_idx
  if (point(P_used_idx)) yield STOP;
  vring_used_idx_set(vq, nw);
  vq.inuse -= count;
  // If the guest's last signalled index fell behind by a whole window, it is no longer trustworthy.
  const sinceSignal = ((nw - vq.signalled_used) << 16) >> 16;
  if (sinceSignal < ((nw - old) & 0xffff)) vq.signalled_used_valid = false;
  return leave(F_flush, undefined);
}

/** Detach without pushing (virtqueue_detach_element): the request was dropped. */
export function virtqueue_detach_element(vq: VirtQueue, elem: VirtQueueElement): void {
  vq.inflight.delete(elem);
  vq.inuse--;
}

// ---- notifications to the guest ----

const F_should_notify = defineFn('virtio_should_notify', ['vdev', 'vq']);
const P_should_mb = definePoint(F_should_notify, 'mb');
export function* virtio_should_notify(vdev: VirtIODevice, vq: VirtQueue): Co<boolean> {
  if (enter(F_should_notify, vdev, vq)) yield STOP;
  // @point mb
  if (point(P_should_mb)) yield STOP; // smp_mb(): see the guest's latest flags / used_event
  if (!vdev.hasFeature(V.VIRTIO_RING_F_EVENT_IDX)) {
    return leave(F_should_notify, !(vring_avail_flags(vq) & V.VRING_AVAIL_F_NO_INTERRUPT));
  }
  const valid = vq.signalled_used_valid;
  vq.signalled_used_valid = true;
  const old = vq.signalled_used;
  const nw = (vq.signalled_used = vq.used_idx);
  return leave(F_should_notify, !valid || V.vring_need_event(vring_get_used_event(vq), nw, old));
}

const F_notify_vector = defineFn('virtio_notify_vector', ['vdev', 'vector']);
export function* virtio_notify_vector(vdev: VirtIODevice, vector: number): Co<void> {
  if (enter(F_notify_vector, vdev, vector)) yield STOP;
  if (vdev.bus) yield* vdev.bus.notify(vdev, vector);
  return leave(F_notify_vector, undefined);
}

const F_virtio_irq = defineFn('virtio_irq', ['vq']);
function* virtio_irq(vq: VirtQueue): Co<void> {
  if (enter(F_virtio_irq, vq)) yield STOP;
  vq.vdev.isr |= 0x1;
  yield* virtio_notify_vector(vq.vdev, 0);
  return leave(F_virtio_irq, undefined);
}

const F_notify = defineFn('virtio_notify', ['vdev', 'vq']);
/** Interrupt the guest through the transport, if the guest wants it. */
export function* virtio_notify(vdev: VirtIODevice, vq: VirtQueue): Co<void> {
  if (enter(F_notify, vdev, vq)) yield STOP;
  if (yield* virtio_should_notify(vdev, vq)) yield* virtio_irq(vq);
  return leave(F_notify, undefined);
}

const F_notify_irqfd = defineFn('virtio_notify_irqfd', ['vdev', 'vq']);
const P_irqfd = definePoint(F_notify_irqfd, 'irqfd');
/** Interrupt the guest through its irqfd: KVM injects it without QEMU's irq path (dataplane). */
export function* virtio_notify_irqfd(vdev: VirtIODevice, vq: VirtQueue): Co<void> {
  if (enter(F_notify_irqfd, vdev, vq)) yield STOP;
  if (yield* virtio_should_notify(vdev, vq)) {
    // @point irqfd
    if (point(P_irqfd)) yield STOP;
    vdev.isr |= 0x1;
    event_notifier_set(vq.guest_notifier);
  }
  return leave(F_notify_irqfd, undefined);
}

// ---- notifications from the guest ----

const F_queue_notify = defineFn('virtio_queue_notify', ['vdev', 'n']);
/** A QueueNotify write that reached QEMU (no ioeventfd): handle the queue in this thread. */
export function* virtio_queue_notify(vdev: VirtIODevice, n: number): Co<void> {
  if (enter(F_queue_notify, vdev, n)) yield STOP;
  const vq = vdev.vq[n];
  if (vq && vq.ready && !vdev.broken) {
    if (vq.host_notifier_enabled) event_notifier_set(vq.host_notifier);
    else if (vq.handle_output) yield* vq.handle_output(vdev, vq);
  }
  return leave(F_queue_notify, undefined);
}

const F_notify_vq = defineFn('virtio_queue_notify_vq', ['vq']);
export function* virtio_queue_notify_vq(vq: VirtQueue): Co<void> {
  if (enter(F_notify_vq, vq)) yield STOP;
  if (vq.ready && vq.handle_output && !vq.vdev.broken) yield* vq.handle_output(vq.vdev, vq);
  return leave(F_notify_vq, undefined);
}

/** The ioeventfd's handler. A tail call: gdb shows virtio_queue_notify_vq directly under aio_dispatch_handler. */
const F_host_notifier_read = defineFn('virtio_queue_host_notifier_read', ['n'], { hidden: true });
export function* virtio_queue_host_notifier_read(n: EventNotifier): Co<void> {
  if (enter(F_host_notifier_read, n)) yield STOP;
  const vq = hostNotifierOwner.get(n);
  if (vq && event_notifier_test_and_clear(n)) yield* virtio_queue_notify_vq(vq);
  return leave(F_host_notifier_read, undefined);
}

/** container_of(n, VirtQueue, host_notifier). */
const hostNotifierOwner = new WeakMap<EventNotifier, VirtQueue>();
export function virtio_queue_set_host_notifier_enabled(vq: VirtQueue, enabled: boolean): void {
  vq.host_notifier_enabled = enabled;
  hostNotifierOwner.set(vq.host_notifier, vq);
}

/** Device reset (status written 0): rings forgotten, indices zeroed, errors cleared. */
export function virtio_reset(vdev: VirtIODevice): void {
  vdev.status = 0;
  vdev.isr = 0;
  vdev.guest_features = 0;
  vdev.broken = false;
  vdev.errors.length = 0;
  for (const vq of vdev.vq) {
    vq.desc = vq.avail = vq.used = 0;
    vq.num = vq.num_default;
    vq.last_avail_idx = vq.shadow_avail_idx = vq.used_idx = vq.signalled_used = 0;
    vq.signalled_used_valid = false;
    vq.notification = true;
    vq.inuse = 0;
    vq.inflight.clear();
  }
}
