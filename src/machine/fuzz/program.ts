/**
 * vCPU 0's program in a fuzz case (Machine's `program` hook, in place of a
 * scenario): probe the device with the real driver, take queue 0 away from
 * it (raw_owned), then for a few rounds write requests and avail entries
 * into guest memory and kick the device through QueueNotify — platform.writel,
 * so that with ioeventfd the kick goes to KVM's eventfd and without it to
 * QEMU's MMIO handler, the two paths FIDELITY §2 describes. Between rounds it
 * lets the machine settle, or sleeps a little, or goes straight on (the
 * device then sees rounds pile up).
 *
 * Rarely, a long-run prelude first pushes ~65,000 quick requests through a
 * big ring so that the rounds run across the 16-bit index wrap; and, when
 * asked, some cases end with the driver resetting the device.
 */
import { Co, S, block, sleep } from '../sim/sim';
import type { GuestProgram } from '../scenario/interpreter';
import { guest_probe, virtio_blk_of } from '../linux';
import * as V from '../spec/virtio';
import type { Dice } from './dice';
import { Arena, Ring } from './layout';
import { GenEnv, generateRound, writeQuickRequest } from './generate';
import type { Monitor } from './monitor';

/** Events a round may take per head offered, on top of a fixed allowance; a device that needs more is looping. */
const EVENTS_PER_ROUND = 20_000;
const EVENTS_PER_HEAD = 600;
/** Settling ends when the interrupt line stays down; more rounds of interrupts than this means it never does. */
const MAX_SETTLE_ROUNDS = 16;
/** One case in this many (with a ring of 256 or more) runs the long-run prelude. */
const PRELUDE_ONE_IN = 400;
/** With resets on (FuzzRunOptions.reset), one case in this many ends with the driver resetting the device. */
const RESET_ONE_IN = 25;

/** What the program does after a round's kick (the last round always settles). */
const PAUSES: readonly (readonly [number, 'settle' | 'sleep' | 'none'])[] = [[60, 'settle'], [24, 'sleep'], [16, 'none']];

/** What the program shares with the case runner: set up before the run, filled in by the program. */
export class CaseContext {
  /** The checker; set once the machine exists (the program only runs later, inside Machine.run). */
  monitor!: Monitor;
  /** Disk capacity in sectors. */
  sectors = 0;
  /** Raise the case's event budget to at least `events` more than now. */
  allow: (events: number) => void = () => {};
  // Set by the program:
  ring: Ring | null = null;
  allocAfterProbe = 0;
  done = false;
  /** Heads offered in all (avail entries published). */
  offered = 0;
  prelude = false;
  /** Guest RAM right after the program reset the device, if it did. */
  ramAfterReset: Buffer | null = null;

  constructor(
    readonly d: Dice,
    readonly ramSize: number,
    /** Let the program end some cases with a device reset (off by default: see run.ts). */
    readonly withReset: boolean,
  ) {}
}

/** Wait until nothing else can run, taking the interrupts the device raised meanwhile. */
function* settle(g: GuestProgram): Co<void> {
  for (let i = 0; i < MAX_SETTLE_ROUNDS; i++) {
    yield* block(S.quiescent);
    if (!g.irq.level) return;
    yield* g.service_irq();
  }
}

/** The program: probe, take queue 0, maybe the long run, the rounds, maybe a reset; then give the memory back. */
export function* fuzz_guest(g: GuestProgram, c: CaseContext): Co<void> {
  const { d } = c;
  const { mem, alloc, mmioBase } = g.platform;
  g.vm_dev = yield* guest_probe(g.platform);
  const vq = g.virtqueue(0);
  if (virtio_blk_of(g.vm_dev) === null || vq === null) return;
  // From here the driver leaves queue 0 alone: its rings are ours and the device's.
  vq.raw_owned = true;
  c.allocAfterProbe = alloc.inUse;
  const ring: Ring = { num: vq.num, desc: vq.desc, avail: vq.avail, used: vq.used };
  c.ring = ring;
  c.monitor.attach(ring);
  const arena = new Arena(alloc, mem);
  const env: GenEnv = { d, mem, ring, arena, ramSize: c.ramSize, sectors: c.sectors, indirect: vq.indirect };
  const notifyAt = mmioBase + V.VIRTIO_MMIO_QUEUE_NOTIFY;
  let idx = mem.read16(ring.avail + V.AVAIL_IDX);

  const offer = (heads: readonly number[], extra: number): void => {
    for (let i = 0; i < heads.length; i++) mem.write16(ring.avail + V.availRingOff((idx + i) % ring.num), heads[i]);
    idx = (idx + heads.length + extra) & 0xffff;
    c.offered += heads.length + extra;
  };
  const kick = function* (): Co<void> {
    // Sometimes a kick for a queue the device does not have first: QEMU ignores it (and KVM's datamatch misses it).
    if (d.chance(0.06)) yield* g.platform.writel(d.pick([1, 2, 3, 7, d.u32()]), notifyAt);
    for (let n = d.weighted([[88, 1], [9, 2], [3, 3]]); n > 0; n--) yield* g.platform.writel(0, notifyAt);
  };

  if (ring.num >= 256 && d.int(1, PRELUDE_ONE_IN) === 1) {
    // The long run: the same quick request, a ringful at a time, until the indices are just short of 65536.
    c.prelude = true;
    const head = writeQuickRequest(env);
    const target = 0x10000 - d.int(1, 2 * ring.num);
    c.allow(target * EVENTS_PER_HEAD);
    for (let done = 0; done < target; ) {
      const k = Math.min(ring.num, target - done);
      offer(new Array<number>(k).fill(head), 0);
      mem.write16(ring.avail + V.AVAIL_IDX, idx);
      yield* g.platform.writel(0, notifyAt);
      yield* settle(g);
      done += k;
    }
  }

  const rounds = d.weighted([[55, 1], [25, 2], [12, 3], [8, 4]]);
  for (let r = 0; r < rounds; r++) {
    const plan = generateRound(env);
    c.allow(EVENTS_PER_ROUND + EVENTS_PER_HEAD * (plan.heads.length + plan.extra));
    if (d.chance(0.05)) {
      // avail->idx published before the entries it covers, with a kick in between: the device reads stale slots.
      const early = (idx + plan.heads.length + plan.extra) & 0xffff;
      mem.write16(ring.avail + V.AVAIL_IDX, early);
      yield* kick();
    }
    offer(plan.heads, plan.extra);
    if (plan.idxOverride) idx = plan.idxOverride(idx) & 0xffff;
    mem.write16(ring.avail + V.AVAIL_IDX, idx);
    // The driver's side of notification suppression: the device reads these to decide on interrupts.
    if (d.chance(0.2)) mem.write16(ring.avail + V.AVAIL_FLAGS, d.pick([0, V.VRING_AVAIL_F_NO_INTERRUPT, d.u16()]));
    if (d.chance(0.2)) mem.write16(ring.avail + V.usedEventOff(ring.num), d.chance(0.5) ? idx : d.u16());
    yield* kick();
    // After the last round the machine always settles; between rounds it may not (the device sees rounds pile up).
    const pause = r === rounds - 1 ? 'settle' : d.weighted(PAUSES);
    if (pause === 'settle') yield* settle(g);
    else if (pause === 'sleep') yield* sleep(d.int(0, 30_000));
  }
  if (c.withReset && d.int(1, RESET_ONE_IN) === 1) {
    // A driver that resets the device (Status = 0), maybe with requests still in flight. QEMU drains
    // them first (virtio_blk_reset → blk_drain); once the write returns the device owns no guest memory.
    if (d.chance(0.7)) {
      const heads = generateRound(env).heads;
      c.allow(EVENTS_PER_ROUND + EVENTS_PER_HEAD * heads.length);
      offer(heads, 0);
      mem.write16(ring.avail + V.AVAIL_IDX, idx);
      yield* kick();
      if (d.chance(0.5)) yield* sleep(d.int(0, 20_000));
    }
    yield* g.platform.writel(0, mmioBase + V.VIRTIO_MMIO_STATUS);
    c.ramAfterReset = Buffer.from(mem.ram);
    yield* settle(g);
  }
  arena.release();
  c.done = true;
}
