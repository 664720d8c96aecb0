/**
 * drivers/virtio/virtio_mmio.c, guest side of the virtio-mmio transport
 * (version 2 only), plus the few pieces of the virtio core (drivers/virtio/
 * virtio.c, include/linux/virtio_config.h) that its probe runs through:
 * register_virtio_device, virtio_dev_probe, the status helpers, find_vqs and
 * the config-space readers.
 *
 * Everything here talks to the device through the register window only
 * (GuestPlatform.readl/writel), in the order Linux does; it never looks at
 * the device model. It knows the block driver only as a VirtioDriver table
 * (probe, feature table, config_changed), as the virtio bus does.
 */
import { Co, STOP, enter, leave } from '../../../sim/sim';
import { OPTIMIZED_OUT, defineFn } from '../../../sim/frames';
import type { KernelObject } from '../../../sim/pointers';
import type { GuestMemory, Gpa } from '../../../memory/guest-memory';
import type { GuestAllocator } from '../../../memory/allocator';
import type { GuestPlatform } from '../../platform';
import {
  VIRTIO_CONFIG_S_ACKNOWLEDGE,
  VIRTIO_CONFIG_S_DRIVER,
  VIRTIO_CONFIG_S_DRIVER_OK,
  VIRTIO_CONFIG_S_FAILED,
  VIRTIO_CONFIG_S_FEATURES_OK,
  VIRTIO_CONFIG_S_NEEDS_RESET,
  VIRTIO_F_VERSION_1,
  VIRTIO_MMIO_CONFIG,
  VIRTIO_MMIO_CONFIG_GENERATION,
  VIRTIO_MMIO_DEVICE_FEATURES,
  VIRTIO_MMIO_DEVICE_FEATURES_SEL,
  VIRTIO_MMIO_DEVICE_ID,
  VIRTIO_MMIO_DRIVER_FEATURES,
  VIRTIO_MMIO_DRIVER_FEATURES_SEL,
  VIRTIO_MMIO_INTERRUPT_ACK,
  VIRTIO_MMIO_INTERRUPT_STATUS,
  VIRTIO_MMIO_INT_CONFIG,
  VIRTIO_MMIO_INT_VRING,
  VIRTIO_MMIO_MAGIC,
  VIRTIO_MMIO_MAGIC_VALUE,
  VIRTIO_MMIO_QUEUE_AVAIL_HIGH,
  VIRTIO_MMIO_QUEUE_AVAIL_LOW,
  VIRTIO_MMIO_QUEUE_DESC_HIGH,
  VIRTIO_MMIO_QUEUE_DESC_LOW,
  VIRTIO_MMIO_QUEUE_NOTIFY,
  VIRTIO_MMIO_QUEUE_NUM,
  VIRTIO_MMIO_QUEUE_NUM_MAX,
  VIRTIO_MMIO_QUEUE_READY,
  VIRTIO_MMIO_QUEUE_SEL,
  VIRTIO_MMIO_QUEUE_USED_HIGH,
  VIRTIO_MMIO_QUEUE_USED_LOW,
  VIRTIO_MMIO_STATUS,
  VIRTIO_MMIO_VENDOR_ID,
  VIRTIO_MMIO_VERSION,
  VIRTIO_RING_F_EVENT_IDX,
  VIRTIO_RING_F_INDIRECT_DESC,
  bit,
  hasFeature,
} from '../../../spec/virtio';
import {
  EINVAL,
  ENODEV,
  ENOENT,
  IRQ_HANDLED,
  IRQ_NONE,
  VirtioDevice,
  VqCallback,
  VringVirtqueue,
  kmalloc,
  virtio_has_feature,
  vring_create_virtqueue,
  vring_interrupt,
} from './virtio_ring';

const TWO32 = 0x100000000;
/**
 * Alignment of the used ring. Linux's virtio-mmio passes PAGE_SIZE (a legacy
 * QueueAlign leftover); virtio-pci passes SMP_CACHE_BYTES. The machine lays
 * rings out as the virtio-pci guest of FIDELITY §8 did (used at the next
 * 64-byte boundary: +4672 for 256 entries), so it uses the cache line here too.
 */
const SMP_CACHE_BYTES = 64;
/** First and one-past-last reserved (transport) feature bit: VIRTIO_TRANSPORT_F_START/END. */
const VIRTIO_TRANSPORT_F_START = 28;
const VIRTIO_TRANSPORT_F_END = 42;

/** A virtio driver as the virtio bus sees it (struct virtio_driver). */
export interface VirtioDriver {
  readonly name: string;
  /** The virtio device ID it binds to (id_table). */
  readonly device_id: number;
  /** Device-type feature bits it understands (feature_table). */
  readonly feature_table: readonly number[];
  probe(vdev: VirtioMmioDevice): Co<number>;
  config_changed: ((vdev: VirtioMmioDevice) => Co<void>) | null;
}

/** What the machine tells the guest kernel about the device (command line, device tree, CPUs). */
export interface VirtioMmioOptions {
  /** The interrupt line of the virtio-mmio window (default 5). */
  irq?: number;
  /** Ring size to use when the device allows more (0 or absent: QueueNumMax, as Linux does). */
  queueSize?: number;
  /** nr_cpu_ids: virtio-blk uses at most one queue per CPU (default 1). */
  nrCpus?: number;
}

/** struct platform_device for the virtio-mmio window. */
export class PlatformDevice implements KernelObject {
  readonly kaddr: Gpa;
  constructor(readonly platform: GuestPlatform) {
    this.kaddr = kmalloc(platform.alloc, 0x400);
  }
}

/** struct virtio_mmio_device, with its embedded struct virtio_device (same address: vdev comes first). */
export class VirtioMmioDevice implements VirtioDevice {
  readonly kaddr: Gpa;
  readonly mem: GuestMemory;
  readonly alloc: GuestAllocator;
  readonly platform: GuestPlatform;
  /** The register window (vm_dev->base). */
  readonly base: Gpa;
  version = 0;
  id_device = 0;
  id_vendor = 0;
  /** What the device offered (both 32-bit halves), and what was agreed (dev->features). */
  device_features = 0;
  features = 0;
  /** The status byte as the driver last read or wrote it. */
  status = 0;
  readonly vqs: VringVirtqueue[] = [];
  readonly dmesg: string[] = [];
  driver: VirtioDriver | null = null;
  /** The driver's private data (dev->priv): the struct virtio_blk. */
  priv: unknown = null;
  readonly irq: number;
  readonly queue_size_hint: number;
  readonly nr_cpu_ids: number;
  irq_requested = false;
  config_enabled = false;
  config_change_pending = false;
  /** Config interrupts seen, and whether the device was seen asking for a reset. */
  config_changes = 0;
  needs_reset = false;

  constructor(readonly pdev: PlatformDevice, opts: VirtioMmioOptions) {
    this.platform = pdev.platform;
    this.mem = pdev.platform.mem;
    this.alloc = pdev.platform.alloc;
    this.base = pdev.platform.mmioBase;
    this.kaddr = kmalloc(this.alloc, 0x3c0);
    this.irq = opts.irq ?? 5;
    this.queue_size_hint = opts.queueSize ?? 0;
    this.nr_cpu_ids = Math.max(1, opts.nrCpus ?? 1);
  }
}

function readl(vm_dev: VirtioMmioDevice, reg: number): Co<number> {
  return vm_dev.platform.readl(vm_dev.base + reg);
}

function writel(vm_dev: VirtioMmioDevice, value: number, reg: number): Co<void> {
  return vm_dev.platform.writel(value >>> 0, vm_dev.base + reg);
}

// ---------------------------------------------------------------- status

const F_vm_get_status = defineFn('vm_get_status', ['vdev']);
export function* vm_get_status(vm_dev: VirtioMmioDevice): Co<number> {
  if (enter(F_vm_get_status, vm_dev)) yield STOP;
  const status = (yield* readl(vm_dev, VIRTIO_MMIO_STATUS)) & 0xff;
  vm_dev.status = status;
  if ((status & VIRTIO_CONFIG_S_NEEDS_RESET) !== 0) vm_dev.needs_reset = true;
  return leave(F_vm_get_status, status);
}

const F_vm_set_status = defineFn('vm_set_status', ['vdev', 'status']);
export function* vm_set_status(vm_dev: VirtioMmioDevice, status: number): Co<void> {
  if (enter(F_vm_set_status, vm_dev, status)) yield STOP;
  vm_dev.status = status;
  yield* writel(vm_dev, status, VIRTIO_MMIO_STATUS);
  return leave(F_vm_set_status, undefined);
}

const F_vm_reset = defineFn('vm_reset', ['vdev']);
export function* vm_reset(vm_dev: VirtioMmioDevice): Co<void> {
  if (enter(F_vm_reset, vm_dev)) yield STOP;
  // 0 status means a reset.
  vm_dev.status = 0;
  yield* writel(vm_dev, 0, VIRTIO_MMIO_STATUS);
  return leave(F_vm_reset, undefined);
}

const F_virtio_add_status = defineFn('virtio_add_status', ['dev', 'status']);
/** Read-modify-write of the status byte: status bits are only ever added. */
export function* virtio_add_status(vm_dev: VirtioMmioDevice, status: number): Co<void> {
  if (enter(F_virtio_add_status, vm_dev, status)) yield STOP;
  const cur = yield* vm_get_status(vm_dev);
  yield* vm_set_status(vm_dev, cur | status);
  return leave(F_virtio_add_status, undefined);
}

const F_virtio_device_ready = defineFn('virtio_device_ready', ['dev']);
/** DRIVER_OK: from here on the device may use the queues. */
export function* virtio_device_ready(vm_dev: VirtioMmioDevice): Co<void> {
  if (enter(F_virtio_device_ready, vm_dev)) yield STOP;
  const status = yield* vm_get_status(vm_dev);
  yield* vm_set_status(vm_dev, status | VIRTIO_CONFIG_S_DRIVER_OK);
  return leave(F_virtio_device_ready, undefined);
}

// ---------------------------------------------------------------- features

const F_vm_get_features = defineFn('vm_get_features', ['vdev']);
/** DeviceFeatures, high word (sel 1) first, as Linux reads it. */
export function* vm_get_features(vm_dev: VirtioMmioDevice): Co<number> {
  if (enter(F_vm_get_features, vm_dev)) yield STOP;
  yield* writel(vm_dev, 1, VIRTIO_MMIO_DEVICE_FEATURES_SEL);
  const hi = yield* readl(vm_dev, VIRTIO_MMIO_DEVICE_FEATURES);
  yield* writel(vm_dev, 0, VIRTIO_MMIO_DEVICE_FEATURES_SEL);
  const lo = yield* readl(vm_dev, VIRTIO_MMIO_DEVICE_FEATURES);
  return leave(F_vm_get_features, (hi >>> 0) * TWO32 + (lo >>> 0));
}

/**
 * vring_transport_features: of the reserved bits, keep the ones the ring
 * implements. Linux would also keep RING_PACKED, ACCESS_PLATFORM and a few
 * more; this guest models the split ring only, so it never accepts them.
 */
function vring_transport_features(vm_dev: VirtioMmioDevice): void {
  let f = vm_dev.features;
  for (let i = VIRTIO_TRANSPORT_F_START; i < VIRTIO_TRANSPORT_F_END; i++) {
    if (i === VIRTIO_RING_F_INDIRECT_DESC || i === VIRTIO_RING_F_EVENT_IDX || i === VIRTIO_F_VERSION_1) continue;
    if (hasFeature(f, i)) f -= bit(i);
  }
  vm_dev.features = f;
}

const F_vm_finalize_features = defineFn('vm_finalize_features', ['vdev']);
export function* vm_finalize_features(vm_dev: VirtioMmioDevice): Co<number> {
  if (enter(F_vm_finalize_features, vm_dev)) yield STOP;
  vring_transport_features(vm_dev);
  if (!virtio_has_feature(vm_dev, VIRTIO_F_VERSION_1)) {
    vm_dev.dmesg.push('New virtio-mmio devices (version 2) must provide VIRTIO_F_VERSION_1 feature!');
    return leave(F_vm_finalize_features, -EINVAL);
  }
  const f = vm_dev.features;
  yield* writel(vm_dev, 1, VIRTIO_MMIO_DRIVER_FEATURES_SEL);
  yield* writel(vm_dev, Math.floor(f / TWO32), VIRTIO_MMIO_DRIVER_FEATURES);
  yield* writel(vm_dev, 0, VIRTIO_MMIO_DRIVER_FEATURES_SEL);
  yield* writel(vm_dev, f % TWO32, VIRTIO_MMIO_DRIVER_FEATURES);
  return leave(F_vm_finalize_features, 0);
}

const F_virtio_features_ok = defineFn('virtio_features_ok', ['dev']);
/** Set FEATURES_OK and read it back: a device that clears it refuses our subset. */
export function* virtio_features_ok(vm_dev: VirtioMmioDevice): Co<number> {
  if (enter(F_virtio_features_ok, vm_dev)) yield STOP;
  if (!virtio_has_feature(vm_dev, VIRTIO_F_VERSION_1)) return leave(F_virtio_features_ok, 0);
  yield* virtio_add_status(vm_dev, VIRTIO_CONFIG_S_FEATURES_OK);
  const status = yield* vm_get_status(vm_dev);
  if ((status & VIRTIO_CONFIG_S_FEATURES_OK) === 0) {
    vm_dev.dmesg.push(`virtio: device refuses features: ${status.toString(16)}`);
    return leave(F_virtio_features_ok, -ENODEV);
  }
  return leave(F_virtio_features_ok, 0);
}

/** dev->features = what both want: the driver's table ∩ the device's offer, plus the offered transport bits. */
function negotiate(device_features: number, drv: VirtioDriver): number {
  let f = 0;
  for (const b of drv.feature_table) if (hasFeature(device_features, b)) f += bit(b);
  for (let i = VIRTIO_TRANSPORT_F_START; i < VIRTIO_TRANSPORT_F_END; i++) {
    if (hasFeature(device_features, i) && !drv.feature_table.includes(i)) f += bit(i);
  }
  return f;
}

// ---------------------------------------------------------------- probe

const F_virtio_dev_probe = defineFn('virtio_dev_probe', ['_d']);
/** The virtio bus binding a driver: DRIVER, features, FEATURES_OK, the driver's probe, DRIVER_OK. */
export function* virtio_dev_probe(vm_dev: VirtioMmioDevice, drv: VirtioDriver): Co<number> {
  if (enter(F_virtio_dev_probe, vm_dev)) yield STOP;
  vm_dev.driver = drv;
  yield* virtio_add_status(vm_dev, VIRTIO_CONFIG_S_DRIVER);
  vm_dev.device_features = yield* vm_get_features(vm_dev);
  vm_dev.features = negotiate(vm_dev.device_features, drv);
  let err = yield* vm_finalize_features(vm_dev);
  if (err === 0) err = yield* virtio_features_ok(vm_dev);
  if (err === 0) err = yield* drv.probe(vm_dev);
  if (err !== 0) {
    vm_dev.driver = null;
    yield* virtio_add_status(vm_dev, VIRTIO_CONFIG_S_FAILED);
    return leave(F_virtio_dev_probe, err);
  }
  // If the driver's probe didn't set DRIVER_OK, the core does.
  if (((yield* vm_get_status(vm_dev)) & VIRTIO_CONFIG_S_DRIVER_OK) === 0) yield* virtio_device_ready(vm_dev);
  vm_dev.config_enabled = true;
  if (vm_dev.config_change_pending) {
    vm_dev.config_change_pending = false;
    yield* virtio_config_changed(vm_dev);
  }
  return leave(F_virtio_dev_probe, 0);
}

const F_register_virtio_device = defineFn('register_virtio_device', ['dev']);
/** Reset the device (a previous driver may have left it in any state), ACKNOWLEDGE, then bind a driver. */
export function* register_virtio_device(vm_dev: VirtioMmioDevice, drv: VirtioDriver): Co<number> {
  if (enter(F_register_virtio_device, vm_dev)) yield STOP;
  yield* vm_reset(vm_dev);
  yield* virtio_add_status(vm_dev, VIRTIO_CONFIG_S_ACKNOWLEDGE);
  // device_add → the bus matches the device ID against the driver's id_table.
  const err = vm_dev.id_device === drv.device_id ? yield* virtio_dev_probe(vm_dev, drv) : 0;
  return leave(F_register_virtio_device, err);
}

const F_virtio_mmio_probe = defineFn('virtio_mmio_probe', ['pdev']);
/**
 * Find the device behind the window and bind `drv` to it. Returns the
 * device whatever happened (a refused probe leaves FAILED in the status and
 * the reason in dmesg); `driver` is null unless the driver bound.
 */
export function* virtio_mmio_probe(pdev: PlatformDevice, drv: VirtioDriver, opts: VirtioMmioOptions = {}): Co<VirtioMmioDevice> {
  if (enter(F_virtio_mmio_probe, pdev)) yield STOP;
  const vm_dev = new VirtioMmioDevice(pdev, opts);
  const magic = yield* readl(vm_dev, VIRTIO_MMIO_MAGIC_VALUE);
  if (magic !== VIRTIO_MMIO_MAGIC) {
    vm_dev.dmesg.push(`Wrong magic value 0x${magic.toString(16).padStart(8, '0')}!`);
    return leave(F_virtio_mmio_probe, vm_dev);
  }
  vm_dev.version = yield* readl(vm_dev, VIRTIO_MMIO_VERSION);
  if (vm_dev.version !== 2) {
    // Linux also drives version 1 (legacy); this guest models the modern interface only.
    vm_dev.dmesg.push(`Version ${vm_dev.version} not supported!`);
    return leave(F_virtio_mmio_probe, vm_dev);
  }
  vm_dev.id_device = yield* readl(vm_dev, VIRTIO_MMIO_DEVICE_ID);
  // ID 0 is a placeholder with no function: stop quietly.
  if (vm_dev.id_device === 0) return leave(F_virtio_mmio_probe, vm_dev);
  vm_dev.id_vendor = yield* readl(vm_dev, VIRTIO_MMIO_VENDOR_ID);
  yield* register_virtio_device(vm_dev, drv);
  return leave(F_virtio_mmio_probe, vm_dev);
}

// ---------------------------------------------------------------- queues

const F_vm_notify = defineFn('vm_notify', ['vq']);
/** Write the queue's index to QueueNotify: the device learns which queue has news. */
export function* vm_notify(vq: VringVirtqueue): Co<boolean> {
  if (enter(F_vm_notify, vq)) yield STOP;
  yield* writel(vq.vdev as VirtioMmioDevice, vq.index, VIRTIO_MMIO_QUEUE_NOTIFY);
  return leave(F_vm_notify, true);
}

const F_vm_setup_vq = defineFn('vm_setup_vq', ['vdev', 'index', 'callback', 'name']);
export function* vm_setup_vq(vm_dev: VirtioMmioDevice, index: number, callback: VqCallback | null, name: string): Co<VringVirtqueue | null> {
  if (enter(F_vm_setup_vq, vm_dev, index, callback?.name ?? null, name)) yield STOP;
  yield* writel(vm_dev, index, VIRTIO_MMIO_QUEUE_SEL);
  // The queue shouldn't already be set up.
  if ((yield* readl(vm_dev, VIRTIO_MMIO_QUEUE_READY)) !== 0) {
    vm_dev.dmesg.push(`virtqueue ${index} already active`);
    return leave(F_vm_setup_vq, null);
  }
  let num = yield* readl(vm_dev, VIRTIO_MMIO_QUEUE_NUM_MAX);
  if (vm_dev.queue_size_hint > 0 && vm_dev.queue_size_hint < num) num = vm_dev.queue_size_hint;
  const vq = num === 0 ? null : yield* vring_create_virtqueue(index, num, SMP_CACHE_BYTES, vm_dev, vm_notify, callback, name);
  if (vq === null) {
    yield* writel(vm_dev, 0, VIRTIO_MMIO_QUEUE_READY);
    return leave(F_vm_setup_vq, null);
  }
  yield* writel(vm_dev, vq.num, VIRTIO_MMIO_QUEUE_NUM);
  yield* writel(vm_dev, vq.desc % TWO32, VIRTIO_MMIO_QUEUE_DESC_LOW);
  yield* writel(vm_dev, Math.floor(vq.desc / TWO32), VIRTIO_MMIO_QUEUE_DESC_HIGH);
  yield* writel(vm_dev, vq.avail % TWO32, VIRTIO_MMIO_QUEUE_AVAIL_LOW);
  yield* writel(vm_dev, Math.floor(vq.avail / TWO32), VIRTIO_MMIO_QUEUE_AVAIL_HIGH);
  yield* writel(vm_dev, vq.used % TWO32, VIRTIO_MMIO_QUEUE_USED_LOW);
  yield* writel(vm_dev, Math.floor(vq.used / TWO32), VIRTIO_MMIO_QUEUE_USED_HIGH);
  yield* writel(vm_dev, 1, VIRTIO_MMIO_QUEUE_READY);
  vm_dev.vqs.push(vq);
  return leave(F_vm_setup_vq, vq);
}

const F_vm_find_vqs = defineFn('vm_find_vqs', ['vdev', 'nvqs', 'vqs', 'callbacks']);
export function* vm_find_vqs(
  vm_dev: VirtioMmioDevice,
  nvqs: number,
  vqs: VringVirtqueue[],
  callbacks: readonly (VqCallback | null)[],
  names: readonly string[],
): Co<number> {
  if (enter(F_vm_find_vqs, vm_dev, nvqs, OPTIMIZED_OUT, OPTIMIZED_OUT)) yield STOP;
  // request_irq(irq, vm_interrupt, IRQF_SHARED, ...): the machine calls vm_interrupt on this line.
  vm_dev.irq_requested = true;
  for (let i = 0; i < nvqs; i++) {
    const vq = yield* vm_setup_vq(vm_dev, i, callbacks[i], names[i]);
    if (vq === null) {
      vm_dev.vqs.length = 0; // vm_del_vqs
      return leave(F_vm_find_vqs, -ENOENT);
    }
    vqs[i] = vq;
  }
  return leave(F_vm_find_vqs, 0);
}

const F_virtio_find_vqs = defineFn('virtio_find_vqs', ['vdev', 'nvqs', 'vqs', 'callbacks']);
/** The driver's entry to the transport's find_vqs (vdev->config->find_vqs). */
export function* virtio_find_vqs(
  vm_dev: VirtioMmioDevice,
  nvqs: number,
  vqs: VringVirtqueue[],
  callbacks: readonly (VqCallback | null)[],
  names: readonly string[],
): Co<number> {
  if (enter(F_virtio_find_vqs, vm_dev, nvqs, OPTIMIZED_OUT, OPTIMIZED_OUT)) yield STOP;
  const r = yield* vm_find_vqs(vm_dev, nvqs, vqs, callbacks, names);
  return leave(F_virtio_find_vqs, r);
}

// ---------------------------------------------------------------- interrupt

const F_virtio_config_changed = defineFn('virtio_config_changed', ['dev']);
/**
 * A config interrupt. Linux hands it to the driver's config_changed (for
 * virtio-blk, work that re-reads the capacity); the model also reads Status
 * at once so that a device gone NEEDS_RESET is visible on the guest side.
 */
export function* virtio_config_changed(vm_dev: VirtioMmioDevice): Co<void> {
  if (enter(F_virtio_config_changed, vm_dev)) yield STOP;
  vm_dev.config_changes++;
  if (!vm_dev.config_enabled) {
    vm_dev.config_change_pending = true;
    return leave(F_virtio_config_changed, undefined);
  }
  const status = yield* vm_get_status(vm_dev);
  if ((status & VIRTIO_CONFIG_S_NEEDS_RESET) !== 0) vm_dev.dmesg.push('virtio: device needs reset (status 0x' + status.toString(16) + ')');
  const cb = vm_dev.driver?.config_changed ?? null;
  if (cb !== null) yield* cb(vm_dev);
  return leave(F_virtio_config_changed, undefined);
}

const F_vm_interrupt = defineFn('vm_interrupt', ['irq', 'opaque']);
/** The interrupt handler: read and acknowledge InterruptStatus, then config and/or used-buffer work. */
export function* vm_interrupt(irq: number, vm_dev: VirtioMmioDevice): Co<number> {
  if (enter(F_vm_interrupt, irq, vm_dev)) yield STOP;
  let ret = IRQ_NONE;
  const status = yield* readl(vm_dev, VIRTIO_MMIO_INTERRUPT_STATUS);
  yield* writel(vm_dev, status, VIRTIO_MMIO_INTERRUPT_ACK);
  if ((status & VIRTIO_MMIO_INT_CONFIG) !== 0) {
    yield* virtio_config_changed(vm_dev);
    ret = IRQ_HANDLED;
  }
  if ((status & VIRTIO_MMIO_INT_VRING) !== 0) {
    for (const vq of vm_dev.vqs) ret |= yield* vring_interrupt(irq, vq);
  }
  return leave(F_vm_interrupt, ret);
}

// ---------------------------------------------------------------- config space

const F_vm_generation = defineFn('vm_generation', ['vdev']);
export function* vm_generation(vm_dev: VirtioMmioDevice): Co<number> {
  if (enter(F_vm_generation, vm_dev)) yield STOP;
  const gen = yield* readl(vm_dev, VIRTIO_MMIO_CONFIG_GENERATION);
  return leave(F_vm_generation, gen);
}

const F_vm_get = defineFn('vm_get', ['vdev', 'offset', 'buf', 'len']);
/**
 * Read a config field of `len` bytes at `offset`. Linux uses readb/readw for
 * 1- and 2-byte fields; the platform offers readl only, so those read the
 * aligned 32-bit word and pick their bytes (little-endian). 8 bytes: two readl.
 */
export function* vm_get(vm_dev: VirtioMmioDevice, offset: number, len: 1 | 2 | 4 | 8): Co<number> {
  if (enter(F_vm_get, vm_dev, offset, OPTIMIZED_OUT, len)) yield STOP;
  const at = VIRTIO_MMIO_CONFIG + offset;
  let v: number;
  if (len === 8) {
    const lo = yield* readl(vm_dev, at);
    const hi = yield* readl(vm_dev, at + 4);
    v = (hi >>> 0) * TWO32 + (lo >>> 0);
  } else if (len === 4) {
    v = (yield* readl(vm_dev, at)) >>> 0;
  } else {
    const word = yield* readl(vm_dev, at & ~3);
    v = (word >>> (8 * (at & 3))) & (len === 2 ? 0xffff : 0xff);
  }
  return leave(F_vm_get, v);
}

/** virtio_cread for 1/2/4-byte fields: a single get. */
export function* virtio_cread(vm_dev: VirtioMmioDevice, offset: number, len: 1 | 2 | 4): Co<number> {
  return yield* vm_get(vm_dev, offset, len);
}

/** virtio_cread for 8-byte fields: retried until the config generation is stable around it. */
export function* virtio_cread64(vm_dev: VirtioMmioDevice, offset: number): Co<number> {
  let gen = yield* vm_generation(vm_dev);
  let old: number;
  let v: number;
  do {
    old = gen;
    v = yield* vm_get(vm_dev, offset, 8);
    gen = yield* vm_generation(vm_dev);
  } while (gen !== old);
  return v;
}

/** virtio_cread_feature: the field, or null when the feature that guards it was not negotiated. */
export function* virtio_cread_feature(vm_dev: VirtioMmioDevice, fbit: number, offset: number, len: 1 | 2 | 4): Co<number | null> {
  if (!virtio_has_feature(vm_dev, fbit)) return null;
  return yield* virtio_cread(vm_dev, offset, len);
}
