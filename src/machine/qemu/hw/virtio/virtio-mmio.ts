/**
 * The virtio-mmio transport, device side (hw/virtio/virtio-mmio.c, version 2
 * registers, VIRTIO 1.2 §4.2.2). The guest's readl/writel on the register
 * window arrive here through an MMIO exit (or, for QueueNotify with
 * ioeventfd, never arrive: KVM signals the eventfd instead).
 *
 * The proxy keeps what the guest wrote into the queue registers until
 * QueueReady, then hands the ring addresses to the VirtQueue.
 */
import { Co, S, STOP, enter, leave } from '../../../sim/sim';
import { defineFn } from '../../../sim/frames';
import type { HostObject } from '../../../sim/pointers';
import * as V from '../../../spec/virtio';
import { VirtIODevice, virtio_queue_notify, virtio_reset, virtio_notify_vector } from './virtio';

/** An interrupt line (qemu_irq): the machine connects it to the vCPU. */
export interface IrqLine {
  set(level: boolean): void;
}

/** What a device model supplies to its transport. */
export interface VirtioDeviceClass {
  /** vdc->get_config: the config space as the guest reads it now. */
  get_config(vdev: VirtIODevice): Buffer;
  /** vdc->set_status: the driver changed the status byte. */
  set_status(vdev: VirtIODevice, status: number): Co<void>;
  /** Start or stop ioeventfd (and the dataplane behind it). */
  set_ioeventfd(vdev: VirtIODevice, on: boolean): void;
  /** vdc->reset: the device's own reset, before the core forgets the rings (virtio-blk drains its requests). */
  reset(vdev: VirtIODevice): Co<void>;
}

interface ProxyQueue {
  num: number;
  ready: number;
  desc: [number, number];
  avail: [number, number];
  used: [number, number];
}

export class VirtIOMMIOProxy implements HostObject {
  readonly ptr: number;
  host_features_sel = 0;
  guest_features_sel = 0;
  guest_features: [number, number] = [0, 0];
  queue_sel = 0;
  readonly vqs: ProxyQueue[];
  readonly bus = {
    notify: (vdev: VirtIODevice, vector: number): Co<void> => virtio_mmio_update_irq(this, vdev, vector),
  };

  constructor(
    readonly vdev: VirtIODevice,
    readonly vdc: VirtioDeviceClass,
    readonly irq: IrqLine,
    readonly ioeventfd: boolean,
  ) {
    this.ptr = S.ptrs.alloc('heap', 0x6a0);
    this.vqs = vdev.vq.map(() => ({ num: 0, ready: 0, desc: [0, 0], avail: [0, 0], used: [0, 0] }));
    vdev.bus = this.bus;
  }
}

const hi32 = (v: number): number => Math.floor(v / 0x100000000) >>> 0;
const lo32 = (v: number): number => v >>> 0;
const join64 = (p: [number, number]): number => p[0] + p[1] * 0x100000000;

const F_update_irq = defineFn('virtio_mmio_update_irq', ['opaque', 'vector']);
/** The interrupt line follows the ISR: asserted while any bit is set (level-triggered). */
export function* virtio_mmio_update_irq(proxy: VirtIOMMIOProxy, vdev: VirtIODevice, vector: number): Co<void> {
  if (enter(F_update_irq, proxy, vector)) yield STOP;
  proxy.irq.set(vdev.isr !== 0);
  return leave(F_update_irq, undefined);
}

const F_mmio_read = defineFn('virtio_mmio_read', ['opaque', 'offset', 'size']);
export function* virtio_mmio_read(proxy: VirtIOMMIOProxy, offset: number, size: number): Co<number> {
  if (enter(F_mmio_read, proxy, offset, size)) yield STOP;
  return leave(F_mmio_read, mmioRead(proxy, offset, size));
}

function mmioRead(proxy: VirtIOMMIOProxy, offset: number, size: number): number {
  const vdev = proxy.vdev;
  if (offset >= V.VIRTIO_MMIO_CONFIG) {
    const cfg = proxy.vdc.get_config(vdev);
    const o = offset - V.VIRTIO_MMIO_CONFIG;
    if (o + size > cfg.length) return 0;
    return size === 1 ? cfg.readUInt8(o) : size === 2 ? cfg.readUInt16LE(o) : cfg.readUInt32LE(o);
  }
  const q = proxy.vqs[proxy.queue_sel];
  switch (offset) {
    case V.VIRTIO_MMIO_MAGIC_VALUE: return V.VIRTIO_MMIO_MAGIC;
    case V.VIRTIO_MMIO_VERSION: return 2;
    case V.VIRTIO_MMIO_DEVICE_ID: return vdev.device_id;
    case V.VIRTIO_MMIO_VENDOR_ID: return 0x554d4551; // "QEMU"
    case V.VIRTIO_MMIO_DEVICE_FEATURES:
      return proxy.host_features_sel === 0 ? lo32(vdev.host_features) : proxy.host_features_sel === 1 ? hi32(vdev.host_features) : 0;
    case V.VIRTIO_MMIO_QUEUE_NUM_MAX: return q ? vdev.vq[proxy.queue_sel].num_default : 0;
    case V.VIRTIO_MMIO_QUEUE_READY: return q ? q.ready : 0;
    case V.VIRTIO_MMIO_INTERRUPT_STATUS: return vdev.isr;
    case V.VIRTIO_MMIO_STATUS: return vdev.status;
    case V.VIRTIO_MMIO_CONFIG_GENERATION: return vdev.generation;
    case V.VIRTIO_MMIO_QUEUE_DESC_LOW: return q ? q.desc[0] : 0;
    case V.VIRTIO_MMIO_QUEUE_DESC_HIGH: return q ? q.desc[1] : 0;
    case V.VIRTIO_MMIO_QUEUE_AVAIL_LOW: return q ? q.avail[0] : 0;
    case V.VIRTIO_MMIO_QUEUE_AVAIL_HIGH: return q ? q.avail[1] : 0;
    case V.VIRTIO_MMIO_QUEUE_USED_LOW: return q ? q.used[0] : 0;
    case V.VIRTIO_MMIO_QUEUE_USED_HIGH: return q ? q.used[1] : 0;
    default: return 0; // write-only or reserved registers read as 0
  }
}

const F_mmio_write = defineFn('virtio_mmio_write', ['opaque', 'offset', 'value', 'size']);
export function* virtio_mmio_write(proxy: VirtIOMMIOProxy, offset: number, value: number, size: number): Co<void> {
  if (enter(F_mmio_write, proxy, offset, value, size)) yield STOP;
  const vdev = proxy.vdev;
  const q = proxy.vqs[proxy.queue_sel];
  switch (offset) {
    case V.VIRTIO_MMIO_DEVICE_FEATURES_SEL: proxy.host_features_sel = value; break;
    case V.VIRTIO_MMIO_DRIVER_FEATURES:
      if (proxy.guest_features_sel < 2) proxy.guest_features[proxy.guest_features_sel] = value >>> 0;
      break;
    case V.VIRTIO_MMIO_DRIVER_FEATURES_SEL: proxy.guest_features_sel = value; break;
    case V.VIRTIO_MMIO_QUEUE_SEL: proxy.queue_sel = value; break;
    case V.VIRTIO_MMIO_QUEUE_NUM:
      if (q) q.num = value;
      break;
    case V.VIRTIO_MMIO_QUEUE_DESC_LOW: if (q) q.desc[0] = value >>> 0; break;
    case V.VIRTIO_MMIO_QUEUE_DESC_HIGH: if (q) q.desc[1] = value >>> 0; break;
    case V.VIRTIO_MMIO_QUEUE_AVAIL_LOW: if (q) q.avail[0] = value >>> 0; break;
    case V.VIRTIO_MMIO_QUEUE_AVAIL_HIGH: if (q) q.avail[1] = value >>> 0; break;
    case V.VIRTIO_MMIO_QUEUE_USED_LOW: if (q) q.used[0] = value >>> 0; break;
    case V.VIRTIO_MMIO_QUEUE_USED_HIGH: if (q) q.used[1] = value >>> 0; break;
    case V.VIRTIO_MMIO_QUEUE_READY:
      if (q) setQueueReady(proxy, proxy.queue_sel, value);
      break;
    case V.VIRTIO_MMIO_QUEUE_NOTIFY:
      if (value < vdev.vq.length) yield* virtio_queue_notify(vdev, value);
      break;
    case V.VIRTIO_MMIO_INTERRUPT_ACK:
      vdev.isr &= ~value;
      yield* virtio_notify_vector(vdev, 0);
      break;
    case V.VIRTIO_MMIO_STATUS:
      yield* setStatus(proxy, value & 0xff);
      break;
    default:
      break; // read-only and reserved registers ignore writes, as QEMU does (it logs a guest error)
  }
  return leave(F_mmio_write, undefined);
}

function setQueueReady(proxy: VirtIOMMIOProxy, n: number, value: number): void {
  const q = proxy.vqs[n];
  const vq = proxy.vdev.vq[n];
  if (value) {
    // virtio_queue_set_num + virtio_queue_set_rings: the size must be a power of 2 no larger than the maximum.
    const num = q.num;
    if (num === 0 || num > vq.num_default || (num & (num - 1)) !== 0) return;
    vq.num = num;
    vq.desc = join64(q.desc);
    vq.avail = join64(q.avail);
    vq.used = join64(q.used);
    q.ready = 1;
  } else {
    q.ready = 0;
    vq.desc = vq.avail = vq.used = 0;
  }
}

function* setStatus(proxy: VirtIOMMIOProxy, value: number): Co<void> {
  const vdev = proxy.vdev;
  if (!(value & V.VIRTIO_CONFIG_S_DRIVER_OK) && proxy.ioeventfd) proxy.vdc.set_ioeventfd(vdev, false);
  if (value & V.VIRTIO_CONFIG_S_FEATURES_OK && !(vdev.status & V.VIRTIO_CONFIG_S_FEATURES_OK)) {
    // virtio_set_features: the driver may only accept what the device offered.
    const asked = join64(proxy.guest_features);
    let accepted = 0;
    for (let b = 0; b < 64; b++) if (V.hasFeature(asked, b) && V.hasFeature(vdev.host_features, b)) accepted += V.bit(b);
    vdev.guest_features = accepted;
    if (accepted !== asked) value &= ~V.VIRTIO_CONFIG_S_FEATURES_OK;
  }
  vdev.status = value;
  yield* proxy.vdc.set_status(vdev, value);
  if (value & V.VIRTIO_CONFIG_S_DRIVER_OK && proxy.ioeventfd) proxy.vdc.set_ioeventfd(vdev, true);
  if (value === 0) {
    yield* proxy.vdc.reset(vdev);
    virtio_reset(vdev);
    proxy.guest_features = [0, 0];
    for (const q of proxy.vqs) Object.assign(q, { num: 0, ready: 0, desc: [0, 0], avail: [0, 0], used: [0, 0] });
  }
}
