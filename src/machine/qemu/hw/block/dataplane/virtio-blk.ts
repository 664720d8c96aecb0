/**
 * virtio-blk's dataplane (hw/block/dataplane/virtio-blk.c, QEMU 7.2): with
 * ioeventfd on, the queues' host notifiers are polled by an AioContext (the
 * main loop's, or an IOThread's) and completions interrupt the guest through
 * the irqfd: at once with EVENT_IDX, else batched in a bottom half.
 */
import { Co, S, STOP, enter, leave } from '../../../../sim/sim';
import { defineFn } from '../../../../sim/frames';
import type { HostObject } from '../../../../sim/pointers';
import { AioContext, QEMUBH, aio_bh_new, aio_set_event_notifier, qemu_bh_schedule } from '../../../util/async';
import * as V from '../../../../spec/virtio';
import { VirtIODevice, VirtQueue, virtio_notify_irqfd, virtio_queue_host_notifier_read, virtio_queue_set_host_notifier_enabled } from '../../virtio/virtio';

export class VirtIOBlockDataPlane implements HostObject {
  readonly ptr: number;
  readonly bh: QEMUBH;
  readonly batch_notify_vqs = new Set<number>();
  constructor(readonly vdev: VirtIODevice, readonly ctx: AioContext) {
    this.ptr = S.ptrs.alloc('heap', 0x50);
    this.bh = aio_bh_new(ctx, 'notify_guest_bh', (o) => notify_guest_bh(o as VirtIOBlockDataPlane), this);
  }
}

const F_notify_guest_bh = defineFn('notify_guest_bh', ['opaque']);
function* notify_guest_bh(s: VirtIOBlockDataPlane): Co<void> {
  if (enter(F_notify_guest_bh, s)) yield STOP;
  const batch = [...s.batch_notify_vqs].sort((a, b) => a - b);
  s.batch_notify_vqs.clear();
  for (const i of batch) yield* virtio_notify_irqfd(s.vdev, s.vdev.vq[i]);
  return leave(F_notify_guest_bh, undefined);
}

const F_dp_notify = defineFn('virtio_blk_data_plane_notify', ['s', 'vq']);
export function* virtio_blk_data_plane_notify(s: VirtIOBlockDataPlane, vq: VirtQueue): Co<void> {
  if (enter(F_dp_notify, s, vq)) yield STOP;
  if (s.vdev.hasFeature(V.VIRTIO_RING_F_EVENT_IDX)) {
    yield* virtio_notify_irqfd(s.vdev, vq);
  } else {
    s.batch_notify_vqs.add(vq.queue_index);
    yield* qemu_bh_schedule(s.bh);
  }
  return leave(F_dp_notify, undefined);
}

/** virtio_blk_data_plane_start / _stop: attach the host notifiers to the AioContext, or detach them. */
export function virtio_blk_data_plane_set(s: VirtIOBlockDataPlane, on: boolean): void {
  for (const vq of s.vdev.vq) {
    if (!vq.ready && on) continue;
    virtio_queue_set_host_notifier_enabled(vq, on);
    aio_set_event_notifier(s.ctx, vq.host_notifier, on ? virtio_queue_host_notifier_read : null);
  }
}
