/**
 * The one state snapshot (DESIGN.md): what `virtio/state` returns, what
 * `cli.js run --json` prints, what the inspector draws. Rings, descriptors
 * and indices are decoded from guest memory at the moment it is taken; the
 * device's and the driver's private indices are read from their own
 * structures and labelled as such. Plain JSON data, snake_case names from
 * QEMU and Linux.
 */
import type { GuestMemory } from '../memory/guest-memory';
import type { Sim, SimThread } from '../sim/sim';
import * as V from '../spec/virtio';
import type { VirtIODevice, VirtQueue } from '../qemu/hw/virtio/virtio';
import { FrameInfo, contextFrames, threadBacktrace } from './backtrace';
import { readDesc } from '../memory/vring-desc';

export interface DescSnapshot { addr: number; len: number; flags: number; next: number }
export interface SgSnapshot { addr: number; len: number }

export interface DriverQueueSnapshot {
  avail_idx_shadow: number;
  last_used_idx: number;
  num_free: number;
  free_head: number;
  num_added: number;
  broken: boolean;
}

/** An indirect descriptor table, decoded where a ring descriptor with VRING_DESC_F_INDIRECT points. */
export interface IndirectSnapshot {
  /** The ring descriptor that points at the table. */
  desc: number;
  table: number;
  entries: DescSnapshot[];
  /** The table is longer than the snapshot shows (MAX_INDIRECT_SHOWN). */
  truncated: boolean;
}

/** The virtio-blk request an element carries: its outhdr and the status byte, read from guest memory. */
export interface BlkRequestSnapshot {
  type: number;
  type_name: string;
  ioprio: number;
  sector: number;
  /** The last byte of the last in_sg: what the device wrote, or whatever was there before it did. */
  status: number;
  status_name: string;
}

export interface InflightSnapshot {
  index: number;
  ndescs: number;
  out_num: number;
  in_num: number;
  out_sg: SgSnapshot[];
  in_sg: SgSnapshot[];
  /** The ring-table descriptors the element came from, head first, as guest memory links them now. */
  chain: number[];
  /** The indirect table the head points at, if it is an indirect descriptor. */
  indirect_table: number | null;
  blk: BlkRequestSnapshot | null;
}

export interface QueueSnapshot {
  index: number;
  num: number;
  vring_desc: number;
  vring_avail: number;
  vring_used: number;
  desc: DescSnapshot[];
  avail: { flags: number; idx: number; ring: number[]; used_event: number };
  used: { flags: number; idx: number; ring: { id: number; len: number }[]; avail_event: number };
  last_avail_idx: number;
  shadow_avail_idx: number;
  used_idx: number;
  signalled_used: number;
  signalled_used_valid: boolean;
  inuse: number;
  driver: DriverQueueSnapshot | null;
  inflight: InflightSnapshot[];
  indirect: IndirectSnapshot[];
}

export interface ThreadSnapshot {
  id: number;
  name: string;
  state: 'running' | 'ready' | 'blocked' | 'done';
  /** What a blocked thread waits for (ppoll, the thread-pool semaphore, an interrupt). */
  waiting_on: string | null;
  frames: FrameInfo[];
}

export interface CoroutineSnapshot {
  addr: number;
  entry: string;
  state: string;
  caller: number | null;
  frames: FrameInfo[];
}

export interface BlkConfigSnapshot {
  capacity: number;
  size_max: number;
  seg_max: number;
  blk_size: number;
  writeback: number;
  num_queues: number;
  max_discard_sectors: number;
  max_discard_seg: number;
  discard_sector_alignment: number;
  max_write_zeroes_sectors: number;
  max_write_zeroes_seg: number;
  write_zeroes_may_unmap: number;
}

export interface StateSnapshot {
  device: {
    name: string;
    status: number;
    guest_features: number;
    host_features: number;
    broken: boolean;
    errors: string[];
    config: BlkConfigSnapshot;
    isr: number;
  };
  queues: QueueSnapshot[];
  threads: ThreadSnapshot[];
  coroutines: CoroutineSnapshot[];
  /** Virtual time in nanoseconds and events so far: where in the run this snapshot was taken. */
  time_ns: number;
  events: number;
}

export interface SnapshotSource {
  sim: Sim;
  mem: GuestMemory;
  vdev: VirtIODevice;
  config: Buffer;
  /** The guest driver's private view of queue i, if the driver set it up. */
  driverQueue(i: number): DriverQueueSnapshot | null;
  /** The thread that is executing (stopped), if any. */
  running: SimThread | null;
}

export function decodeConfig(c: Buffer): BlkConfigSnapshot {
  return {
    capacity: c.readUInt32LE(V.BLK_CFG_CAPACITY) + c.readUInt32LE(V.BLK_CFG_CAPACITY + 4) * 0x100000000,
    size_max: c.readUInt32LE(V.BLK_CFG_SIZE_MAX),
    seg_max: c.readUInt32LE(V.BLK_CFG_SEG_MAX),
    blk_size: c.readUInt32LE(V.BLK_CFG_BLK_SIZE),
    writeback: c.readUInt8(V.BLK_CFG_WRITEBACK),
    num_queues: c.readUInt16LE(V.BLK_CFG_NUM_QUEUES),
    max_discard_sectors: c.readUInt32LE(V.BLK_CFG_MAX_DISCARD_SECTORS),
    max_discard_seg: c.readUInt32LE(V.BLK_CFG_MAX_DISCARD_SEG),
    discard_sector_alignment: c.readUInt32LE(V.BLK_CFG_DISCARD_SECTOR_ALIGNMENT),
    max_write_zeroes_sectors: c.readUInt32LE(V.BLK_CFG_MAX_WRITE_ZEROES_SECTORS),
    max_write_zeroes_seg: c.readUInt32LE(V.BLK_CFG_MAX_WRITE_ZEROES_SEG),
    write_zeroes_may_unmap: c.readUInt8(V.BLK_CFG_WRITE_ZEROES_MAY_UNMAP),
  };
}

/** Read a u16 if it lies in RAM; a ring the guest pointed outside RAM reads as 0 rather than throwing. */
function r16(mem: GuestMemory, a: number): number {
  return mem.valid(a, 2) ? mem.read16(a) : 0;
}
function r32(mem: GuestMemory, a: number): number {
  return mem.valid(a, 4) ? mem.read32(a) : 0;
}

/*
 * A queue's parts, decoded one at a time: decodeQueue takes them all, the
 * expression environment (expr/machine-env.ts) only the ones a condition
 * reads. A queue whose rings are not set up yet reads as zeros and empty rings.
 */

/** Entry `i` of the descriptor table at `table` (the ring's own, or an indirect one). */
export function decodeDesc(mem: GuestMemory, table: number, i: number): DescSnapshot {
  return mem.valid(table + i * V.VRING_DESC_SIZE, V.VRING_DESC_SIZE) ? readDesc(mem, table, i) : { addr: 0, len: 0, flags: 0, next: 0 };
}

/** How many descriptors, avail entries and used elements the snapshot shows: none before the rings exist. */
export function ringLength(vq: VirtQueue): number {
  return vq.ready ? vq.num : 0;
}

export function availField(mem: GuestMemory, vq: VirtQueue, f: 'flags' | 'idx' | 'used_event'): number {
  if (!vq.ready) return 0;
  const off = f === 'flags' ? V.AVAIL_FLAGS : f === 'idx' ? V.AVAIL_IDX : V.usedEventOff(vq.num);
  return r16(mem, vq.avail + off);
}

export function availEntry(mem: GuestMemory, vq: VirtQueue, i: number): number {
  return r16(mem, vq.avail + V.availRingOff(i));
}

export function usedField(mem: GuestMemory, vq: VirtQueue, f: 'flags' | 'idx' | 'avail_event'): number {
  if (!vq.ready) return 0;
  const off = f === 'flags' ? V.USED_FLAGS : f === 'idx' ? V.USED_IDX : V.availEventOff(vq.num);
  return r16(mem, vq.used + off);
}

export function usedEntry(mem: GuestMemory, vq: VirtQueue, i: number): { id: number; len: number } {
  const u = vq.used + V.usedRingOff(i);
  return { id: r32(mem, u), len: r32(mem, u + 4) };
}

/** More entries than this in one indirect table are not shown (QEMU accepts tables of any length the ring allows). */
export const MAX_INDIRECT_SHOWN = 4096;

/** The table a descriptor with VRING_DESC_F_INDIRECT points at, or null if it lies outside RAM or is empty. */
export function decodeIndirect(mem: GuestMemory, d: DescSnapshot, i: number): IndirectSnapshot | null {
  const n = Math.floor(d.len / V.VRING_DESC_SIZE);
  if (n === 0 || !mem.valid(d.addr, n * V.VRING_DESC_SIZE)) return null;
  const shown = Math.min(n, MAX_INDIRECT_SHOWN);
  const entries: DescSnapshot[] = [];
  for (let k = 0; k < shown; k++) entries.push(readDesc(mem, d.addr, k));
  return { desc: i, table: d.addr, entries, truncated: shown < n };
}

/** Every indirect table the ring's descriptors point at (`desc`: the table already decoded, if at hand). */
export function decodeQueueIndirect(mem: GuestMemory, vq: VirtQueue, desc?: DescSnapshot[]): IndirectSnapshot[] {
  const out: IndirectSnapshot[] = [];
  for (let i = 0; i < ringLength(vq); i++) {
    const d = desc ? desc[i] : decodeDesc(mem, vq.desc, i);
    if (!(d.flags & V.VRING_DESC_F_INDIRECT)) continue;
    const t = decodeIndirect(mem, d, i);
    if (t) out.push(t);
  }
  return out;
}

/** Follow VRING_DESC_F_NEXT from `head` in the ring's table; stops at a loop or an index out of range. */
function ringChain(mem: GuestMemory, vq: VirtQueue, head: number): number[] {
  const chain: number[] = [];
  const seen = new Set<number>();
  for (let i = head; i < vq.num && !seen.has(i); ) {
    seen.add(i);
    chain.push(i);
    const d = decodeDesc(mem, vq.desc, i);
    if (!(d.flags & V.VRING_DESC_F_NEXT) || d.flags & V.VRING_DESC_F_INDIRECT) break;
    i = d.next;
  }
  return chain;
}

/** virtio_blk_outhdr from the first out_sg and the status byte at the end of the last in_sg. */
function decodeBlkRequest(mem: GuestMemory, out: SgSnapshot[], inn: SgSnapshot[]): BlkRequestSnapshot | null {
  const hdr = out[0];
  const st = inn[inn.length - 1];
  if (!hdr || hdr.len < V.VIRTIO_BLK_OUTHDR_SIZE || !mem.valid(hdr.addr, V.VIRTIO_BLK_OUTHDR_SIZE)) return null;
  if (!st || st.len < 1 || !mem.valid(st.addr + st.len - 1, 1)) return null;
  const type = mem.read32(hdr.addr);
  const status = mem.read8(st.addr + st.len - 1);
  return {
    type,
    type_name: V.VIRTIO_BLK_T_NAMES[type] ?? `unknown (${type})`,
    ioprio: mem.read32(hdr.addr + 4),
    sector: mem.read64(hdr.addr + 8),
    status,
    status_name: V.VIRTIO_BLK_S_NAMES[status] ?? `not written yet? (${status})`,
  };
}

/** The device's popped, not yet pushed VirtQueueElements. */
export function decodeInflight(mem: GuestMemory, vq: VirtQueue): InflightSnapshot[] {
  return [...vq.inflight.values()].map((e) => {
    const out_sg = e.out_sg.map((s) => ({ addr: s.addr, len: s.len }));
    const in_sg = e.in_sg.map((s) => ({ addr: s.addr, len: s.len }));
    const head = e.index < vq.num ? decodeDesc(mem, vq.desc, e.index) : null;
    return {
      index: e.index,
      ndescs: e.ndescs,
      out_num: e.out_num,
      in_num: e.in_num,
      out_sg,
      in_sg,
      chain: ringChain(mem, vq, e.index),
      indirect_table: head && head.flags & V.VRING_DESC_F_INDIRECT ? head.addr : null,
      blk: decodeBlkRequest(mem, out_sg, in_sg),
    };
  });
}

export function decodeQueue(mem: GuestMemory, vq: VirtQueue, driver: DriverQueueSnapshot | null): QueueSnapshot {
  const n = ringLength(vq);
  const desc: DescSnapshot[] = [];
  const availRing: number[] = [];
  const usedRing: { id: number; len: number }[] = [];
  for (let i = 0; i < n; i++) {
    desc.push(decodeDesc(mem, vq.desc, i));
    availRing.push(availEntry(mem, vq, i));
    usedRing.push(usedEntry(mem, vq, i));
  }
  return {
    index: vq.queue_index,
    num: vq.num,
    vring_desc: vq.desc,
    vring_avail: vq.avail,
    vring_used: vq.used,
    desc,
    avail: {
      flags: availField(mem, vq, 'flags'),
      idx: availField(mem, vq, 'idx'),
      ring: availRing,
      used_event: availField(mem, vq, 'used_event'),
    },
    used: {
      flags: usedField(mem, vq, 'flags'),
      idx: usedField(mem, vq, 'idx'),
      ring: usedRing,
      avail_event: usedField(mem, vq, 'avail_event'),
    },
    last_avail_idx: vq.last_avail_idx,
    shadow_avail_idx: vq.shadow_avail_idx,
    used_idx: vq.used_idx,
    signalled_used: vq.signalled_used,
    signalled_used_valid: vq.signalled_used_valid,
    inuse: vq.inuse,
    driver,
    inflight: decodeInflight(mem, vq),
    indirect: decodeQueueIndirect(mem, vq, desc),
  };
}

export function takeSnapshot(src: SnapshotSource): StateSnapshot {
  const { sim, mem, vdev } = src;
  const threads: ThreadSnapshot[] = sim.threads.map((t) => ({
    id: t.id,
    name: t.name,
    state: t === src.running ? 'running' : t.state,
    waiting_on: t.state === 'blocked' && t.blockedOn ? t.blockedOn.name : null,
    frames: threadBacktrace(t).flatMap((s) => s.frames),
  }));
  const coroutines: CoroutineSnapshot[] = [...sim.coroutines].map((co) => {
    const c = co as typeof co & { entryName: string; state: string };
    return { addr: co.ptr, entry: c.entryName, state: c.state, caller: co.caller ? co.caller.ptr : null, frames: contextFrames(co.ctx, co.ptr) };
  });
  return {
    device: {
      name: vdev.name,
      status: vdev.status,
      guest_features: vdev.guest_features,
      host_features: vdev.host_features,
      broken: vdev.broken,
      errors: [...vdev.errors],
      config: decodeConfig(src.config),
      isr: vdev.isr,
    },
    queues: vdev.vq.map((vq, i) => decodeQueue(mem, vq, src.driverQueue(i))),
    threads,
    coroutines,
    time_ns: sim.now,
    events: sim.seq,
  };
}
