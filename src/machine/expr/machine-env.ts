/**
 * The names an expression sees on the machine, at a stop or on a scenario
 * line. Resolved in this order:
 *
 * 1. the frame's parameters by their gdb names (`vq`, `elem`, `req`, `ret`,
 *    `_vq` ...: the machine's own objects, so `elem.in_sg[0].len` and
 *    `req.sector_num` work), then the frame's exposed locals;
 * 2. the scenario's raw `buf` names, as their guest addresses (`u8(status)`);
 * 3. the fields of one queue, with the names and shapes of the state
 *    snapshot: `num`, `desc`, `avail`, `used`, `last_avail_idx`, `driver`,
 *    `inflight`, `vring_desc` ... The queue is ctx.queue, else the queue of a
 *    VirtQueue or VringVirtqueue argument of the frame, else 0;
 * 4. `device`, `queues`, `threads`, and `dmesg` (the guest kernel's log).
 *
 * Everything is read when it is used, never before: a condition such as
 * `avail.idx == 40000` reads one 16-bit word of guest memory, not the ring.
 * Views are object literals with own getters (which the evaluator may call)
 * and lazy arrays; their getters read the machine each time, so a view
 * always shows the machine as it is now, and one set of views per machine
 * (cached) serves every evaluation.
 */
import type { Machine } from '../machine';
import type { Frame } from '../sim/frames';
import { OPTIMIZED_OUT } from '../sim/frames';
import { VirtQueue } from '../qemu/hw/virtio/virtio';
import { virtio_blk_update_config } from '../qemu/hw/block/virtio-blk';
import { VringVirtqueue } from '../linux/drivers/virtio/virtio_ring';
import {
  DescSnapshot, availEntry, decodeQueueIndirect, availField, decodeConfig, decodeDesc, decodeInflight, ringLength, usedEntry, usedField,
} from '../state/snapshot';
import { threadBacktrace } from '../state/backtrace';
import { ExprError } from './errors';
import type { ExprEnv, Value } from './evaluate';
import { lazyArray } from './lazy';
import { QUEUE_NAMES } from './names';

export interface MachineEnvContext {
  /** The selected stack frame: its parameters and locals come first. */
  frame?: Frame;
  /** The queue whose fields the bare queue names mean. */
  queue?: number;
}

/** The queue a frame works on: its first VirtQueue (device) or VringVirtqueue (driver) argument. */
function frameQueue(f: Frame | undefined): number | undefined {
  if (f === undefined) return undefined;
  for (const a of [f.a0, f.a1, f.a2, f.a3]) {
    if (a instanceof VirtQueue) return a.queue_index;
    if (a instanceof VringVirtqueue) return a.index;
  }
  return undefined;
}

function deviceQueue(m: Machine, i: number): VirtQueue {
  const vq = m.vdev.vq[i];
  if (vq === undefined) throw new ExprError(0, `the device has no queue ${i} (it has ${m.vdev.vq.length})`);
  return vq;
}

/** The guest driver's private view of queue i (snapshot `driver`), plus its BAD_RING messages; null if the driver has none. */
function driverView(m: Machine, i: number): object | null {
  const d = m.guest.virtqueue(i);
  if (d === null) return null;
  return {
    get avail_idx_shadow() { return d.avail_idx_shadow; },
    get last_used_idx() { return d.last_used_idx; },
    get num_free() { return d.num_free; },
    get free_head() { return d.free_head; },
    get num_added() { return d.num_added; },
    get broken() { return d.broken; },
    get errors() { return d.errors; },
  };
}

/** A lazy ring array, rebuilt only when the ring's length changes (the queue was set up or reset). */
class RingArray<T> {
  private n = -1;
  private a: T[] = [];
  constructor(private readonly at: (i: number) => T) {}
  get(n: number): T[] {
    if (n !== this.n) {
      this.n = n;
      this.a = lazyArray(n, this.at);
    }
    return this.a;
  }
}

/**
 * The views of one queue. They read guest memory (and QEMU's VirtQueue) in
 * their getters, every time, so one set per queue serves every evaluation:
 * a condition allocates nothing to reach `avail.idx`.
 */
interface QueueViews {
  desc: RingArray<DescSnapshot>;
  avail: object;
  used: object;
  /** `queues[i]`: every field of the queue as an own getter. */
  view: object;
}

interface MachineViews {
  device: object;
  queues: (QueueViews | undefined)[];
}

const views = new WeakMap<Machine, MachineViews>();

function machineViews(m: Machine): MachineViews {
  let v = views.get(m);
  if (v === undefined) {
    v = { device: deviceView(m), queues: [] };
    views.set(m, v);
  }
  return v;
}

function queueViews(m: Machine, i: number): QueueViews {
  const all = machineViews(m).queues;
  const cached = all[i];
  if (cached !== undefined) return cached;
  const vq = deviceQueue(m, i);
  const mem = m.mem;
  const availRing = new RingArray((k) => availEntry(mem, vq, k));
  const usedRing = new RingArray((k) => usedEntry(mem, vq, k));
  const view: Record<string, unknown> = {};
  for (const f of QUEUE_NAMES) Object.defineProperty(view, f, { get: () => queueField(m, i, f), enumerable: true });
  const q: QueueViews = {
    desc: new RingArray((k) => decodeDesc(mem, vq.desc, k)),
    avail: {
      get flags() { return availField(mem, vq, 'flags'); },
      get idx() { return availField(mem, vq, 'idx'); },
      get ring() { return availRing.get(ringLength(vq)); },
      get used_event() { return availField(mem, vq, 'used_event'); },
    },
    used: {
      get flags() { return usedField(mem, vq, 'flags'); },
      get idx() { return usedField(mem, vq, 'idx'); },
      get ring() { return usedRing.get(ringLength(vq)); },
      get avail_event() { return usedField(mem, vq, 'avail_event'); },
    },
    view,
  };
  all[i] = q;
  return q;
}

/** One field of queue i, decoded from guest memory (or read from QEMU's VirtQueue) now. */
function queueField(m: Machine, i: number, name: string): Value | undefined {
  const vq = deviceQueue(m, i);
  switch (name) {
    case 'index': return vq.queue_index;
    case 'num': return vq.num;
    case 'vring_desc': return vq.desc;
    case 'vring_avail': return vq.avail;
    case 'vring_used': return vq.used;
    case 'desc': return queueViews(m, i).desc.get(ringLength(vq));
    case 'avail': return queueViews(m, i).avail;
    case 'used': return queueViews(m, i).used;
    case 'last_avail_idx': return vq.last_avail_idx;
    case 'shadow_avail_idx': return vq.shadow_avail_idx;
    case 'used_idx': return vq.used_idx;
    case 'signalled_used': return vq.signalled_used;
    case 'signalled_used_valid': return vq.signalled_used_valid;
    case 'inuse': return vq.inuse;
    case 'driver': return driverView(m, i);
    case 'inflight': return decodeInflight(m.mem, vq);
    case 'indirect': return decodeQueueIndirect(m.mem, vq);
    default: return undefined;
  }
}

const QUEUE_SET: ReadonlySet<string> = new Set(QUEUE_NAMES);

function deviceView(m: Machine): object {
  const vdev = m.vdev;
  return {
    get name() { return vdev.name; },
    get status() { return vdev.status; },
    get guest_features() { return vdev.guest_features; },
    get host_features() { return vdev.host_features; },
    get broken() { return vdev.broken; },
    get errors() { return vdev.errors; },
    get config() { return decodeConfig(virtio_blk_update_config(vdev)); },
    get isr() { return vdev.isr; },
  };
}

function threadsView(m: Machine): object {
  const threads = m.sim.threads;
  return lazyArray(threads.length, (i) => {
    const t = threads[i];
    return {
      id: t.id,
      name: t.name,
      state: t.state,
      waiting_on: t.state === 'blocked' && t.blockedOn ? t.blockedOn.name : null,
      get frames() { return threadBacktrace(t).flatMap((s) => s.frames); },
    };
  });
}

/** The environment of expressions on machine `m`: see the file header for what each name means. */
export function machineEnv(m: Machine, ctx: MachineEnvContext = {}): ExprEnv {
  const frame = ctx.frame;
  const queue = (): number => ctx.queue ?? frameQueue(frame) ?? 0;
  return {
    mem: m.mem,
    lookup(name: string): Value | undefined {
      if (frame !== undefined) {
        const p = frame.desc.params.indexOf(name);
        if (p >= 0 && p < 4) {
          const v = p === 0 ? frame.a0 : p === 1 ? frame.a1 : p === 2 ? frame.a2 : frame.a3;
          // A parameter always exists; one the model did not record is what gdb calls optimized out.
          return v === undefined ? OPTIMIZED_OUT : (v as Value);
        }
        const locals = frame.locals;
        if (locals !== undefined && Object.prototype.hasOwnProperty.call(locals, name)) return locals[name] as Value;
      }
      const buf = m.guest.rawBufs.get(name);
      if (buf !== undefined) return buf.addr;
      if (QUEUE_SET.has(name)) return queueField(m, queue(), name);
      switch (name) {
        case 'device': return machineViews(m).device;
        case 'queues': return lazyArray(m.vdev.vq.length, (i) => queueViews(m, i).view);
        case 'threads': return threadsView(m);
        case 'dmesg': return m.guest.vm_dev?.dmesg ?? [];
        default: return undefined;
      }
    },
  };
}
