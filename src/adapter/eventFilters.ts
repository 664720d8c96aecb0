/**
 * The event breakpoints of DESIGN.md: exception-breakpoint filters with
 * fixed ids. Each filter names the modelled functions (or event points) at
 * which it fires, an optional built-in test, and how to describe the stop
 * ("Paused on kick: virtqueue_notify (vq 0, avail.idx 3)").
 */
import type { Machine } from '../machine/machine';
import type { SimEvent } from '../machine/sim/sim';
import { functionNamed, allPoints, FnDesc, PointDesc } from '../machine/sim/frames';
import * as V from '../machine/spec/virtio';

export interface EventFilter {
  readonly id: string;
  readonly label: string;
  readonly description: string;
  readonly default: boolean;
  /** Function entries this filter watches. */
  readonly fns: readonly string[];
  /** Event points (function:point) this filter watches. */
  readonly points: readonly string[];
  /** An extra built-in test, e.g. "the I/O failed". */
  readonly test?: (ev: SimEvent) => boolean;
  /** Key values for the stop description. */
  describe(ev: SimEvent, m: Machine): string;
}

interface QueueLike { queue_index?: number; index?: number; avail?: number; ready?: boolean }

/** The guest-memory view of a queue argument: index and avail.idx. */
function queueFacts(v: unknown, m: Machine): string {
  const q = v as QueueLike | undefined;
  if (!q) return '';
  const index = q.queue_index ?? q.index ?? 0;
  const dq = m.vdev.vq[index];
  if (!dq || !dq.ready) return `vq ${index}`;
  return `vq ${index}, avail.idx ${m.mem.read16(dq.avail + V.AVAIL_IDX)}, used.idx ${m.mem.read16(dq.used + V.USED_IDX)}`;
}

export const EVENT_FILTERS: readonly EventFilter[] = [
  {
    id: 'kick',
    label: 'kick (guest → device)',
    description: 'The guest driver notifies the device (virtqueue_notify → vm_notify writes QueueNotify).',
    default: false,
    fns: ['virtqueue_notify'],
    points: [],
    describe: (ev, m) => queueFacts(ev.frame.a0, m),
  },
  {
    id: 'pop',
    label: 'pop (device takes a request)',
    description: 'virtqueue_pop: the device reads the next available chain into a VirtQueueElement.',
    default: false,
    fns: ['virtqueue_pop'],
    points: [],
    describe: (ev, m) => {
      const vq = ev.frame.a0 as { last_avail_idx: number };
      return `${queueFacts(ev.frame.a0, m)}, last_avail_idx ${vq.last_avail_idx}`;
    },
  },
  {
    id: 'handle_output',
    label: 'handle_output (device is kicked)',
    description: 'virtio_blk_handle_output: the device handles a notification for a queue.',
    default: false,
    fns: ['virtio_blk_handle_output'],
    points: [],
    describe: (ev, m) => queueFacts(ev.frame.a1, m),
  },
  {
    id: 'rw_complete',
    label: 'rw_complete (request done in the block layer)',
    description: 'virtio_blk_rw_complete: a read or write came back from the block layer.',
    default: false,
    fns: ['virtio_blk_rw_complete'],
    points: [],
    describe: (ev) => {
      const req = ev.frame.a0 as { sector_num: number; elem: { index: number } };
      return `head ${req.elem.index}, sector ${req.sector_num}, ret ${String(ev.frame.a1)}`;
    },
  },
  {
    id: 'notify',
    label: 'notify (device → guest interrupt)',
    description: 'The device interrupts the guest (virtio_irq, or the irqfd with the dataplane).',
    default: false,
    fns: ['virtio_irq'],
    points: ['virtio_notify_irqfd:irqfd'],
    describe: (ev, m) => queueFacts(ev.fn.name === 'virtio_irq' ? ev.frame.a0 : ev.frame.a1, m),
  },
  {
    id: 'get_buf',
    label: 'get_buf (guest takes a used buffer)',
    description: 'virtqueue_get_buf: the guest driver finds a used element to complete.',
    default: false,
    fns: [],
    points: ['virtqueue_get_buf_ctx_split:rmb'],
    describe: (ev, m) => {
      const vq = ev.frame.a0 as { last_used_idx: number };
      return `${queueFacts(ev.frame.a0, m)}, last_used_idx ${vq.last_used_idx}`;
    },
  },
  {
    id: 'virtio_error',
    label: 'virtio_error (spec violation)',
    description: 'The device found the guest breaking the virtio spec; it goes broken (NEEDS_RESET).',
    default: true,
    fns: ['virtio_error'],
    points: [],
    describe: (ev) => String(ev.frame.a1),
  },
  {
    id: 'io_error',
    label: 'io_error (block layer error)',
    description: 'A request completes with an error from the block layer (S_IOERR to the guest).',
    default: false,
    fns: ['virtio_blk_rw_complete', 'virtio_blk_flush_complete', 'virtio_blk_discard_write_zeroes_complete'],
    points: [],
    test: (ev) => ev.frame.a1 !== 0,
    describe: (ev) => `ret ${String(ev.frame.a1)}`,
  },
];

export function filterById(id: string): EventFilter | undefined {
  return EVENT_FILTERS.find((f) => f.id === id);
}

export function filterFns(f: EventFilter): FnDesc[] {
  return f.fns.map((n) => {
    const d = functionNamed(n);
    if (!d) throw new Error(`event filter ${f.id}: no modelled function ${n}`);
    return d;
  });
}

export function filterPoints(f: EventFilter): PointDesc[] {
  return f.points.map((key) => {
    const [fn, name] = key.split(':');
    const p = allPoints().find((x) => x.fn.name === fn && x.name === name);
    if (!p) throw new Error(`event filter ${f.id}: no event point ${key}`);
    return p;
  });
}
