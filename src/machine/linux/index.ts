/**
 * The guest kernel, as the machine sees it: a table of contents of the
 * entry points it calls on the vCPU thread. The code lives in files that
 * mirror Linux's paths (drivers/virtio, drivers/block, block).
 *
 *   guest_probe        boot: find the virtio-mmio device and bind virtio_blk
 *   blk_mq_alloc_request / blk_mq_submit_requests   issue I/O (one batch = one kick)
 *   guest_interrupt    the device raised the interrupt line: vm_interrupt, then kblockd's work
 *   blk_mq_queue_inflight   0 when every submitted request has ended
 */
import type { Co } from '../sim/sim';
import type { GuestPlatform } from './platform';
import { PlatformDevice, VirtioMmioDevice, VirtioMmioOptions, virtio_mmio_probe, vm_interrupt } from './drivers/virtio/virtio_mmio';
import { VirtioBlk, virtio_blk } from './drivers/block/virtio_blk';
import { kblockd_run_pending } from './block/blk-mq';

export { VringVirtqueue, virtqueue_get_vring_size, virtqueue_is_broken } from './drivers/virtio/virtio_ring';
export { VirtioMmioDevice, vm_interrupt } from './drivers/virtio/virtio_mmio';
export type { VirtioMmioOptions } from './drivers/virtio/virtio_mmio';
export { VirtioBlk, virtio_blk } from './drivers/block/virtio_blk';
export {
  Request,
  RequestQueue,
  blk_mq_alloc_request,
  blk_mq_queue_inflight,
  blk_mq_submit_requests,
  blk_mq_work_pending,
  kblockd_run_pending,
} from './block/blk-mq';

/**
 * Probe the virtio-mmio window of `platform` with the virtio-blk driver.
 * Always returns the device: `virtio_blk_of(vm_dev)` is the disk when the
 * driver bound; otherwise the reason is in `vm_dev.dmesg`.
 */
export function* guest_probe(platform: GuestPlatform, opts: VirtioMmioOptions = {}): Co<VirtioMmioDevice> {
  return yield* virtio_mmio_probe(new PlatformDevice(platform), virtio_blk, opts);
}

export function virtio_blk_of(vm_dev: VirtioMmioDevice): VirtioBlk | null {
  return vm_dev.driver === virtio_blk ? (vm_dev.priv as VirtioBlk) : null;
}

/**
 * The interrupt line of `vm_dev` fired: run the handler, then the block
 * layer's deferred work (restarting a queue stopped on a full ring, or
 * requests that waited for a tag). Deliver it only when
 * `virtio_blk_of(vm_dev)?.irqs_disabled()` is false.
 */
export function* guest_interrupt(vm_dev: VirtioMmioDevice): Co<void> {
  yield* vm_interrupt(vm_dev.irq, vm_dev);
  const vblk = virtio_blk_of(vm_dev);
  if (vblk !== null && vblk.q !== null) yield* kblockd_run_pending(vblk.q);
}
