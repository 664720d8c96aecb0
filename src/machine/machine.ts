/**
 * The simulated machine: guest RAM, a vCPU running the Linux-style guest,
 * and a QEMU-style process (main loop, optional IOThread, thread-pool
 * workers) with one virtio-blk device on virtio-mmio over a disk image.
 *
 * This file only wires the parts together and offers the run/stop API; the
 * behaviour lives in linux/, qemu/ and kvm/. Nothing here knows of VS Code
 * or DAP (DESIGN.md): the debug adapter and the CLI drive it through
 * `run`, the stop hooks and `snapshot`.
 */
import { Co, RunOutcome, S, Sim, SimEvent, SimThread, WaitQueue, activate } from './sim/sim';
import type { Frame } from './sim/frames';
import { GuestMemory } from './memory/guest-memory';
import { GuestAllocator } from './memory/allocator';
import * as V from './spec/virtio';
import type { MachineOptions } from './options';
import { BlockImage, openImage } from './image/image';
import { AioContext, EventNotifier, event_notifier_set } from './qemu/util/async';
import { ThreadPool } from './qemu/util/thread-pool';
import { BDRVRawState, file_open } from './qemu/block/file-posix';
import { raw_open } from './qemu/block/raw-format';
import { BdrvChild } from './qemu/block/block-int';
import { BlockBackend } from './qemu/block/block-backend';
import { VirtIOBlock, virtio_blk_handle_output, virtio_blk_reset, virtio_blk_update_config } from './qemu/hw/block/virtio-blk';
import { VirtIOBlockDataPlane, virtio_blk_data_plane_set } from './qemu/hw/block/dataplane/virtio-blk';
import { IrqLine, VirtIOMMIOProxy, virtio_mmio_read, virtio_mmio_write } from './qemu/hw/virtio/virtio-mmio';
import { IOThread, iothread_thread } from './qemu/iothread';
import { main } from './qemu/softmmu/main';
import { CPUState, MemoryRegion, kvm_cpu_exec } from './qemu/accel/kvm/kvm-all';
import { KvmIoeventfd, ioeventfd_write } from './kvm/virt/kvm/eventfd';
import type { GuestPlatform } from './linux/platform';
import type { Scenario } from './scenario/ast';
import { GuestProgram, guest_main } from './scenario/interpreter';
import { machineEnv } from './expr/machine-env';
import { StateSnapshot, takeSnapshot, DriverQueueSnapshot } from './state/snapshot';

/** x86 microvm's layout: RAM from 0, virtio-mmio slots at 0xfeb00000. */
export const RAM_SIZE = 64 * 1024 * 1024;
export const VIRTIO_MMIO_BASE = 0xfeb00000;
export const VIRTIO_MMIO_SIZE = 0x200;
/** Below this, the guest kernel's own image and data: the allocator starts above. */
const GUEST_HEAP_START = 4 * 1024 * 1024;
/** The drive's serial, as GET_ID returns it (QEMU's default is empty; ours says what it is). */
export const DEFAULT_SERIAL = 'VIRTIO-DEBUG-0001';
/** Nanoseconds from KVM injecting an interrupt to the vCPU taking it. */
const IRQ_LATENCY_NS = 1_000;

export type EventLogger = (thread: SimThread, frame: Frame, seq: number, depth: number) => void;

export interface MachineInit {
  options: MachineOptions;
  scenario: Scenario;
  /** Called for every modelled function entered (the CLI's event log). */
  log?: EventLogger;
  /** Guest RAM in bytes (default 64 MiB); a fuzzer running thousands of machines wants less. */
  ramSize?: number;
  /**
   * vCPU 0's program in place of the scenario's (guest_main): the fuzzer
   * probes, then drives the rings itself. It must probe first (guest_probe).
   */
  program?: (g: GuestProgram) => Co<void>;
  /**
   * Guest RAM to run on, already zeroed by the caller (its size overrides
   * ramSize): the fuzzer reuses one buffer instead of allocating a fresh one
   * per machine, which costs more than the machine itself.
   */
  memory?: GuestMemory;
}

export class Machine {
  readonly sim: Sim;
  readonly options: MachineOptions;
  readonly mem: GuestMemory;
  readonly alloc: GuestAllocator;
  readonly image: BlockImage;
  readonly vdev: VirtIOBlock;
  readonly proxy: VirtIOMMIOProxy;
  readonly mainCtx: AioContext;
  readonly iothread: IOThread | null;
  readonly pool: ThreadPool;
  readonly vcpu: SimThread;
  readonly mainThread: SimThread;
  readonly cpu: CPUState;
  readonly guest: GuestProgram;
  /** The vCPU's interrupt line and the wait queue a halted vCPU sleeps on. */
  readonly irq: IrqLine & { level: boolean };
  readonly vcpuWake = new WaitQueue('interrupt (hlt)');
  private readonly ioeventfds: KvmIoeventfd[] = [];
  private lastStopThread: SimThread | null = null;

  constructor(init: MachineInit) {
    const o = (this.options = init.options);
    this.sim = new Sim(o.seed);
    activate(this.sim);
    const sim = this.sim;
    if (init.log) {
      const log = init.log;
      sim.log = (t, f, seq) => log(t, f, seq, sim.ctx.baseDepth + sim.ctx.depth - 1);
    }
    const ram = init.memory?.size ?? init.ramSize ?? RAM_SIZE;
    this.mem = init.memory ?? new GuestMemory(ram);
    this.alloc = new GuestAllocator(Math.min(GUEST_HEAP_START, ram / 4), ram);
    this.image = openImage({ path: o.image, mode: o.imageMode });

    // QEMU side: the main AioContext, optionally an IOThread, the block graph, the device.
    this.mainCtx = new AioContext('qemu_aio_context');
    this.iothread = o.iothread ? new IOThread('iothread0') : null;
    const blkCtx = this.iothread ? this.iothread.ctx : this.mainCtx;
    this.pool = new ThreadPool(blkCtx);
    const file = new BdrvChild('file', file_open(new BDRVRawState(this.image, this.mem, o.aio, this.pool, blkCtx)));
    const root = new BdrvChild('root', raw_open(file));
    // The drive is `-drive format=raw,discard=unmap`: a DISCARD reaches the file (QEMU's default,
    // discard=ignore, would complete it without touching the data).
    const blk = new BlockBackend(root, blkCtx, o.imageMode === 'readonly');
    this.vdev = new VirtIOBlock(this.mem, blk, {
      serial: DEFAULT_SERIAL,
      queue_size: o.queueSize,
      num_queues: o.numQueues,
      seg_max: o.queueSize - 2,
      request_merging: true,
      max_discard_sectors: 0x3fffff,
      max_write_zeroes_sectors: 0x3fffff,
    });
    this.vdev.host_features = hostFeatures(o, this.image.readOnly);
    for (let i = 0; i < o.numQueues; i++) this.vdev.addQueue(o.queueSize, virtio_blk_handle_output);

    this.irq = {
      level: false,
      set: (level: boolean) => {
        this.irq.level = level;
        if (level) this.vcpuWake.wake(IRQ_LATENCY_NS);
      },
    };
    this.proxy = new VirtIOMMIOProxy(this.vdev, {
      get_config: (vdev) => virtio_blk_update_config(vdev as VirtIOBlock),
      set_status: function* () {},
      set_ioeventfd: (_vdev, on) => this.setIoeventfd(on),
      reset: virtio_blk_reset,
    }, this.irq, o.ioeventfd);
    if (o.ioeventfd) this.vdev.dataplane = new VirtIOBlockDataPlane(this.vdev, blkCtx);
    // The irqfd: a signalled guest notifier raises the vCPU's interrupt line inside KVM.
    for (const vq of this.vdev.vq) bindIrqfd(vq.guest_notifier, this.irq);

    const mmio: MemoryRegion = {
      ptr: S.ptrs.alloc('heap', 0x110),
      name: 'virtio-mmio',
      addr: VIRTIO_MMIO_BASE,
      size: VIRTIO_MMIO_SIZE,
      read: (off, size) => virtio_mmio_read(this.proxy, off, size),
      write: (off, value, size) => virtio_mmio_write(this.proxy, off, value, size),
    };
    this.cpu = new CPUState(0, [mmio]);

    // Threads, in QEMU's creation order: the main thread, the IOThread, then the vCPU.
    const mainCtx = this.mainCtx;
    this.mainThread = sim.addThread('main-loop', () => main(mainCtx));
    mainCtx.thread = this.mainThread;
    if (this.iothread) {
      const it = this.iothread;
      it.ctx.thread = sim.addThread('iothread0', () => iothread_thread(it));
    }
    const platform: GuestPlatform = {
      mem: this.mem,
      alloc: this.alloc,
      mmioBase: VIRTIO_MMIO_BASE,
      readl: (addr) => this.mmioAccess(addr, 0, false),
      writel: (value, addr) => this.mmioWrite(addr, value),
    };
    this.guest = new GuestProgram(init.scenario, platform, this.irq, this.vcpuWake);
    // `expect` lines see the whole machine, as the debugger's expressions do.
    this.guest.exprEnv = (queue) => machineEnv(this, { queue });
    const program = init.program ?? guest_main;
    this.vcpu = sim.addThread('vCPU 0', () => program(this.guest));
    // The vCPU holds the BQL in QEMU code: there the main context is its current one.
    this.mainCtx.bqlThreads.push(this.vcpu);
  }

  // ---- the guest's MMIO accesses ----

  private *mmioWrite(addr: number, value: number): Co<void> {
    for (const p of this.ioeventfds) {
      if (p.addr === addr && p.datamatch === value) {
        yield* ioeventfd_write(p, addr, value);
        return;
      }
    }
    yield* this.mmioAccess(addr, value, true);
  }

  private *mmioAccess(addr: number, value: number, isWrite: boolean): Co<number> {
    return yield* kvm_cpu_exec(this.cpu, addr, value, 4, isWrite);
  }

  /** virtio_mmio_start_ioeventfd / _stop: register QueueNotify with KVM and start the dataplane. */
  private setIoeventfd(on: boolean): void {
    const dp = this.vdev.dataplane;
    if (!dp || this.vdev.dataplane_started === on) return;
    this.ioeventfds.length = 0;
    if (on) {
      for (const vq of this.vdev.vq) {
        if (!vq.ready) continue;
        const n = vq.host_notifier;
        this.ioeventfds.push(new KvmIoeventfd(VIRTIO_MMIO_BASE + V.VIRTIO_MMIO_QUEUE_NOTIFY, 4, vq.queue_index, {
          signal: () => event_notifier_set(n),
        }));
      }
    }
    virtio_blk_data_plane_set(dp, on);
    this.vdev.dataplane_started = on;
  }

  // ---- running and stopping ----

  /**
   * Run until a hook stops the machine, the slice ends, or every thread is
   * idle. `hook` sees the events it is asked to (see Sim.trapSeq and Sim.armFunction).
   */
  run(maxSteps = Infinity): RunOutcome {
    activate(this.sim);
    const r = this.sim.run(maxSteps);
    this.lastStopThread = r === 'stopped' || r === 'slice' ? this.sim.thread : null;
    return r;
  }

  /** Run until `pred` holds for an event (checked on every event), or the machine goes idle. */
  runUntil(pred: (ev: SimEvent) => boolean): RunOutcome {
    const s = this.sim;
    const saved = { hook: s.hook, trap: s.trapSeq };
    s.hook = pred;
    s.trapSeq = 0;
    try {
      return this.run();
    } finally {
      s.hook = saved.hook;
      s.trapSeq = saved.trap;
    }
  }

  /** Step at frame level in `thread`: into the next call, over the current one, or out of it. */
  step(thread: SimThread, kind: 'in' | 'over' | 'out'): RunOutcome {
    const start = this.sim.stopEvent;
    const depth = start && start.thread === thread ? start.depth : Infinity;
    return this.runUntil((ev) => {
      if (ev.thread !== thread) return false;
      if (kind === 'in') return true;
      if (kind === 'over') return ev.depth <= depth;
      return ev.depth < depth;
    });
  }

  get stopEvent(): SimEvent | null {
    return this.sim.stopEvent;
  }

  /** True when every thread waits for something that will not come (the run is over). */
  get idle(): boolean {
    return this.sim.threads.every((t) => t.state !== 'ready') && this.sim.pendingTimers === 0;
  }

  snapshot(): StateSnapshot {
    activate(this.sim);
    return takeSnapshot({
      sim: this.sim,
      mem: this.mem,
      vdev: this.vdev,
      config: virtio_blk_update_config(this.vdev),
      driverQueue: (i) => this.driverQueue(i),
      running: this.lastStopThread,
    });
  }

  private driverQueue(i: number): DriverQueueSnapshot | null {
    const vq = this.guest.virtqueue(i);
    if (!vq) return null;
    return {
      avail_idx_shadow: vq.avail_idx_shadow,
      last_used_idx: vq.last_used_idx,
      num_free: vq.num_free,
      free_head: vq.free_head,
      num_added: vq.num_added,
      broken: vq.broken,
    };
  }

  close(): void {
    this.image.close();
  }
}

function bindIrqfd(n: EventNotifier, irq: IrqLine): void {
  // KVM's irqfd: a write to the eventfd injects the interrupt; QEMU's irq code is not involved.
  n.irqfd = () => irq.set(true);
}

/** What virtio-blk offers (virtio_blk_get_features plus the transport's defaults). */
function hostFeatures(o: MachineOptions, readOnly: boolean): number {
  const bits = [
    V.VIRTIO_F_VERSION_1,
    V.VIRTIO_BLK_F_SEG_MAX,
    V.VIRTIO_BLK_F_GEOMETRY,
    V.VIRTIO_BLK_F_BLK_SIZE,
    V.VIRTIO_BLK_F_TOPOLOGY,
    V.VIRTIO_BLK_F_FLUSH,
    V.VIRTIO_BLK_F_CONFIG_WCE,
    V.VIRTIO_BLK_F_DISCARD,
    V.VIRTIO_BLK_F_WRITE_ZEROES,
  ];
  if (readOnly) bits.push(V.VIRTIO_BLK_F_RO);
  if (o.numQueues > 1) bits.push(V.VIRTIO_BLK_F_MQ);
  if (o.indirectDesc) bits.push(V.VIRTIO_RING_F_INDIRECT_DESC);
  if (o.eventIdx) bits.push(V.VIRTIO_RING_F_EVENT_IDX);
  return bits.reduce((acc, b) => acc + V.bit(b), 0);
}
