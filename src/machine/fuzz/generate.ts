/**
 * The guest side of a fuzz case: virtio-blk requests laid out in the split
 * ring the way a driver would (valid-looking chains, direct or through an
 * indirect table), then mutated the way a buggy or hostile driver would
 * (flags, next links, lengths, addresses, table sizes, loops, nesting,
 * chains of more than 1024 buffers), and offered in the avail ring with an
 * avail->idx that is usually right and sometimes far off.
 *
 * Everything is drawn from the case's dice in a fixed order, so a case
 * replays exactly. The rings are written straight into guest memory, as the
 * guest's stores would be; the only rule kept is layout.ts's (nothing
 * device-writable over the used ring). rust-vmm's virtio-queue fuzz targets
 * inspired what to generate; nothing here is taken from them.
 */
import type { GuestMemory, Gpa } from '../memory/guest-memory';
import * as V from '../spec/virtio';
import { Dice, Weights } from './dice';
import { Arena, Ring, overRings } from './layout';

const { VRING_DESC_F_NEXT: NEXT, VRING_DESC_F_WRITE: WRITE, VRING_DESC_F_INDIRECT: INDIRECT } = V;
const DESC = V.VRING_DESC_SIZE;
const SECTOR = V.SECTOR_SIZE;
const TWO32 = 0x100000000;
/** The virtio-mmio window: a device region, not RAM. */
const MMIO_BASE = 0xfeb00000;

// Weights of the generator's choices (the cases below each `choose` say what they are).
const W_SECTOR = new Weights(60, 10, 8, 6, 6, 5, 5);
const W_DATA = new Weights(70, 10, 8, 7, 5);
const W_BEYOND = new Weights(30, 15, 20, 15, 10, 10);
const W_PARTS = new Weights(75, 17, 8);
const W_DWZ_LEN = new Weights(80, 8, 6, 6);
const W_DWZ_COUNT = new Weights(70, 10, 10, 10);
const W_DWZ_FLAGS = new Weights(75, 15, 10);
const W_NEXT = new Weights(40, 25, 20, 15);
const W_MUTATIONS = new Weights(75, 20, 5);
const W_WANT = new Weights(50, 32, 15, 3);

/** What the generator may touch and needs to know. */
export interface GenEnv {
  readonly d: Dice;
  readonly mem: GuestMemory;
  readonly ring: Ring;
  readonly arena: Arena;
  readonly ramSize: number;
  /** Disk capacity in sectors, so that most requests are in range and some are just past it. */
  readonly sectors: number;
  /** VIRTIO_RING_F_INDIRECT_DESC was negotiated (QEMU follows INDIRECT either way). */
  readonly indirect: boolean;
}

/** One descriptor as written: its place (a table and an index in it) and its fields. */
interface Slot {
  table: Gpa;
  index: number;
  addr: number;
  len: number;
  flags: number;
  next: number;
}

/** One device-visible buffer of a request, before it becomes a descriptor. */
interface Piece {
  addr: number;
  len: number;
  write: boolean;
}

/** A request's descriptors as placed: `slots` in chain order, and the ring descriptor that refers to their table. */
interface Chain {
  head: number;
  slots: Slot[];
  indirect: Slot | null;
  /** Entries the table has (an indirect chain's `next` must stay below this). */
  tableEntries: number;
}

// ---- request buffers ----

function writeU64(mem: GuestMemory, a: Gpa, lo: number, hi: number): void {
  mem.write32(a, lo);
  mem.write32(a + 4, hi);
}

/** A sector number as {lo, hi}: usually in range, sometimes at or past the end, sometimes absurd. */
function drawSector(env: GenEnv, n: number): [number, number] {
  const { d, sectors } = env;
  switch (d.choose(W_SECTOR)) {
    case 0: return [d.int(0, Math.max(0, sectors - n)), 0];
    case 1: return [0, 0];
    case 2: return [Math.max(0, sectors - n + d.int(1, 8)), 0];
    case 3: return [sectors, 0];
    case 4: return [d.u32(), 0];
    case 5: return [d.u32(), d.u32()];
    default: return [0xffffffff, 0xffffffff];
  }
}

/** Bytes of a data buffer: whole sectors mostly, odd sizes and big ones sometimes. */
function drawDataBytes(env: GenEnv): number {
  const { d } = env;
  switch (d.choose(W_DATA)) {
    case 0: return SECTOR * d.skewed(1, 16);
    case 1: return d.int(1, 8192);
    case 2: return SECTOR * d.int(32, 128);
    case 3: return 0;
    default: return SECTOR * d.int(1, 8) + (d.chance(0.5) ? -1 : 1);
  }
}

/** A buffer for `len` bytes: the data area mostly, low memory or an old buffer sometimes (overlaps are fine). */
function buffer(env: GenEnv, len: number): Gpa {
  const { d, arena } = env;
  if (d.chance(0.08) && len <= arena.low.size) return d.int(0, arena.low.size - len);
  return arena.data.take(Math.max(len, 1), d.chance(0.5) ? SECTOR : 8);
}

/** Cut [addr, addr+len) into 1–3 descriptors (a driver may scatter any buffer; QEMU joins them back). */
function cut(env: GenEnv, addr: number, len: number, write: boolean, out: Piece[]): void {
  const { d } = env;
  const parts = Math.min(len, 1 + d.choose(W_PARTS));
  if (parts <= 1) {
    out.push({ addr, len, write });
    return;
  }
  const cuts = new Set<number>();
  while (cuts.size < parts - 1) cuts.add(d.int(1, len - 1));
  let prev = 0;
  for (const c of [...cuts].sort((a, b) => a - b).concat(len)) {
    out.push({ addr: addr + prev, len: c - prev, write });
    prev = c;
  }
}

type ReqKind = 'in' | 'out' | 'flush' | 'get-id' | 'discard' | 'write-zeroes' | 'random' | 'many';

/**
 * One virtio-blk request: the 16-byte header, the data or discard/write-zeroes
 * segment, the status byte. Written into guest memory; returns its buffers in
 * chain order (device-readable first, as the spec wants).
 */
function request(env: GenEnv, kind: ReqKind): Piece[] {
  const { d, mem } = env;
  const pieces: Piece[] = [];
  let type = 0;
  let outData = 0;
  let inData = 0;
  let dataSectors = 0;
  switch (kind) {
    case 'in':
      type = d.chance(0.05) ? (V.VIRTIO_BLK_T_IN | V.VIRTIO_BLK_T_BARRIER) >>> 0 : V.VIRTIO_BLK_T_IN;
      inData = drawDataBytes(env);
      break;
    case 'out':
      type = V.VIRTIO_BLK_T_OUT;
      outData = drawDataBytes(env);
      break;
    case 'flush':
      type = d.chance(0.8) ? V.VIRTIO_BLK_T_FLUSH : V.VIRTIO_BLK_T_FLUSH | V.VIRTIO_BLK_T_OUT;
      if (d.chance(0.1)) inData = d.int(1, 64);
      break;
    case 'get-id':
      type = V.VIRTIO_BLK_T_GET_ID;
      inData = d.chance(0.7) ? V.VIRTIO_BLK_ID_BYTES : d.int(1, 64);
      break;
    case 'discard':
    case 'write-zeroes':
      type = kind === 'discard' ? V.VIRTIO_BLK_T_DISCARD : V.VIRTIO_BLK_T_WRITE_ZEROES;
      if (d.chance(0.08)) type &= ~V.VIRTIO_BLK_T_OUT; // without the OUT bit: unsupported
      outData = [V.VIRTIO_BLK_DISCARD_WZ_SEG_SIZE, 8, 32, 0][d.choose(W_DWZ_LEN)];
      break;
    case 'random':
      type = d.chance(0.5) ? d.u32() : d.int(0, 32);
      if (d.chance(0.5)) outData = d.int(1, 1024);
      if (d.chance(0.5)) inData = d.int(1, 1024);
      break;
    case 'many':
      // More than QEMU's 1024 sg entries (or just under): the element cannot hold them.
      type = V.VIRTIO_BLK_T_IN;
      break;
  }
  if (kind === 'in' || kind === 'out') dataSectors = Math.ceil(Math.max(inData, outData) / SECTOR);
  const [lo, hi] = drawSector(env, dataSectors);

  // The header, sometimes with the payload right after it in one buffer (legal; Linux never does it).
  const joined = outData > 0 && d.chance(0.1);
  const hdr = buffer(env, V.VIRTIO_BLK_OUTHDR_SIZE + (joined ? outData : 0));
  mem.write32(hdr, type);
  mem.write32(hdr + 4, d.chance(0.9) ? 0 : d.u32()); // ioprio: ignored by QEMU
  writeU64(mem, hdr + 8, lo, hi);
  if (joined) {
    fillPayload(env, kind, hdr + V.VIRTIO_BLK_OUTHDR_SIZE, outData);
    cut(env, hdr, V.VIRTIO_BLK_OUTHDR_SIZE + outData, false, pieces);
  } else {
    cut(env, hdr, V.VIRTIO_BLK_OUTHDR_SIZE, false, pieces);
    if (outData > 0) {
      const a = buffer(env, outData);
      fillPayload(env, kind, a, outData);
      cut(env, a, outData, false, pieces);
    }
  }
  if (kind === 'many') {
    // 1000–1100 one-to-four-byte writable buffers inside one data page.
    const page = buffer(env, 4096);
    const n = d.int(1000, 1100);
    for (let i = 0; i < n; i++) pieces.push({ addr: page + d.int(0, 4092), len: d.int(1, 4), write: true });
  }
  // The status byte: its own descriptor, or the last byte of the last data buffer (QEMU takes the last in byte either way).
  if (inData > 0 && d.chance(0.15)) {
    const a = buffer(env, inData + 1);
    cut(env, a, inData + 1, true, pieces);
  } else {
    if (inData > 0) cut(env, buffer(env, inData), inData, true, pieces);
    pieces.push({ addr: buffer(env, 1), len: 1, write: true });
  }
  return pieces;
}

/** What a write or a discard/write-zeroes segment carries. */
function fillPayload(env: GenEnv, kind: ReqKind, a: Gpa, len: number): void {
  const { d, mem } = env;
  if ((kind === 'discard' || kind === 'write-zeroes') && len >= 8) {
    const n = [() => d.skewed(1, 64), () => 0, () => d.u32(), () => 0x400000][d.choose(W_DWZ_COUNT)]();
    const [lo, hi] = drawSector(env, n);
    writeU64(mem, a, lo, hi);
    if (len >= 16) {
      mem.write32(a + 8, n);
      // Flags: UNMAP is valid for write-zeroes only; any other bit is unsupported.
      const f = d.choose(W_DWZ_FLAGS);
      mem.write32(a + 12, f === 0 ? 0 : f === 1 ? V.VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : d.u32());
    }
    return;
  }
  mem.fill(a, len, d.int(0, 255));
}

// ---- placing chains in the ring ----

/** Ring descriptors not used yet this round, drawn at random (without shuffling all 1024 of a big ring). */
class FreeSlots {
  private readonly taken: Uint8Array;
  private left: number;

  constructor(private readonly d: Dice, private readonly num: number) {
    this.taken = new Uint8Array(num);
    this.left = num;
  }

  get length(): number {
    return this.left;
  }

  take(): number {
    const { d, num, taken } = this;
    // Random probes while the ring is mostly free, then a walk from a random start.
    let i = d.int(0, num - 1);
    for (let t = 0; t < 8 && taken[i]; t++) i = d.int(0, num - 1);
    while (taken[i]) i = (i + 1) % num;
    taken[i] = 1;
    this.left--;
    return i;
  }
}

/** Lay `pieces` out as a chain: in the ring's own table, or in an indirect table the head refers to. */
function place(env: GenEnv, pieces: Piece[], free: FreeSlots): Chain | null {
  const { d, ring, arena } = env;
  if (free.length === 0 || pieces.length === 0) return null;
  const wantIndirect = env.indirect ? d.chance(0.55) : d.chance(0.08);
  if (wantIndirect || pieces.length > free.length || pieces.length > ring.num) {
    const extra = d.chance(0.1) ? d.int(1, 4) : 0;
    const entries = pieces.length + extra;
    const table = arena.tables.take(entries * DESC, 16);
    // Chain entries in table order usually, scattered over the table sometimes (links make the order);
    // QEMU starts a table at entry 0, so the chain's first buffer stays there.
    let order: number[] | null = null;
    if (entries > 2 && d.chance(0.15)) order = [0, ...d.shuffle([...Array(entries - 1).keys()].map((i) => i + 1))];
    const at = (i: number): number => (order === null ? i : order[i]);
    const slots = pieces.map((p, i) => slot(table, at(i), p));
    // Unused entries: zero, or left-over junk.
    for (let i = pieces.length; i < entries; i++) junkEntry(env, table, at(i));
    const head = free.take();
    return link(env, { head, slots, indirect: { table: ring.desc, index: head, addr: table, len: entries * DESC, flags: INDIRECT, next: 0 }, tableEntries: entries });
  }
  const idx = pieces.map(() => free.take());
  const slots = pieces.map((p, i) => slot(ring.desc, idx[i], p));
  return link(env, { head: idx[0], slots, indirect: null, tableEntries: ring.num });
}

function slot(table: Gpa, index: number, p: Piece): Slot {
  return { table, index, addr: p.addr, len: p.len, flags: p.write ? WRITE : 0, next: 0 };
}

/** NEXT on all but the last; the last keeps a stale link sometimes (Linux leaves its free-list link there). */
function link(env: GenEnv, c: Chain): Chain {
  const s = c.slots;
  for (let i = 0; i < s.length; i++) {
    if (i + 1 < s.length) {
      s[i].flags |= NEXT;
      s[i].next = s[i + 1].index;
    } else {
      s[i].next = env.d.chance(0.3) ? env.d.u16() : 0;
    }
  }
  return c;
}

function junkEntry(env: GenEnv, table: Gpa, index: number): void {
  const { d, mem } = env;
  const a = table + index * DESC;
  if (d.chance(0.5)) {
    mem.fill(a, DESC, 0);
    return;
  }
  const s: Slot = { table, index, addr: buffer(env, 64), len: d.int(0, 64), flags: d.int(0, 7), next: d.int(0, 8) };
  writeSlot(env, s);
}

// ---- mutations: what a buggy driver writes ----

type Mutation = (env: GenEnv, c: Chain) => void;

const pickSlot = (env: GenEnv, c: Chain): Slot => env.d.pick(c.slots);

/** Addresses that are not RAM: just past it, the MMIO window, 4 GiB and beyond, the top of the 64-bit space. */
function beyondRam(env: GenEnv): number {
  const { d, ramSize } = env;
  switch (d.choose(W_BEYOND)) {
    case 0: return ramSize + d.int(0, 0xffff);
    case 1: return MMIO_BASE + d.int(0, 0x1ff);
    case 2: return TWO32 + d.int(0, 0xffffff);
    case 3: return 2 ** 40;
    case 4: return 2 ** 52;
    default: return 2 ** 64 - 4096;
  }
}

const MUTATIONS: readonly (readonly [number, Mutation])[] = [
  // flags
  [10, (env, c) => { pickSlot(env, c).flags ^= env.d.pick([NEXT, WRITE, INDIRECT]); }],
  [4, (env, c) => { pickSlot(env, c).flags = env.d.chance(0.5) ? env.d.int(0, 7) : env.d.u16(); }],
  [5, (_env, c) => { c.slots[c.slots.length - 1].flags &= ~WRITE; }], // a readable status after writable data
  [4, (env, c) => { pickSlot(env, c).flags &= ~NEXT; }], // the chain ends early
  // next links
  [8, (env, c) => {
    const s = pickSlot(env, c);
    const max = c.tableEntries;
    if (env.d.chance(0.7)) s.flags |= NEXT;
    const k = env.d.choose(W_NEXT);
    s.next = k === 0 ? env.d.int(0, max - 1) : k === 1 ? max : k === 2 ? max + env.d.int(1, 16) : env.d.u16();
  }],
  [8, (env, c) => {
    // A loop: a descriptor links back to itself or to an earlier one in its chain.
    const { d } = env;
    const i = d.chance(0.6) ? c.slots.length - 1 : d.int(0, c.slots.length - 1);
    const j = d.int(0, i);
    c.slots[i].flags |= NEXT;
    c.slots[i].next = c.slots[j].index;
  }],
  // lengths
  [6, (env, c) => { pickSlot(env, c).len = 0; }],
  [5, (env, c) => {
    const s = pickSlot(env, c);
    s.len = env.d.pick([0xffffffff, 0x80000000, env.ramSize, Math.max(1, env.ramSize - s.addr + env.d.int(1, 4096))]);
  }],
  [5, (env, c) => { c.slots[0].len = env.d.int(1, 15); }], // a header shorter than 16 bytes
  // addresses
  [6, (env, c) => { pickSlot(env, c).addr = beyondRam(env); }],
  [5, (env, c) => {
    // Starts in RAM, ends past it.
    const s = pickSlot(env, c);
    s.len = Math.max(s.len, 2);
    s.addr = env.ramSize - env.d.int(1, Math.min(s.len - 1, 4096));
  }],
  [3, (env, c) => { pickSlot(env, c).addr = env.d.pick([env.ring.desc, env.ring.avail]) + env.d.int(0, 15); }],
  // INDIRECT where QEMU does not follow it: on a non-head descriptor, or nested in a table
  [5, (env, c) => {
    const s = pickSlot(env, c);
    s.flags |= INDIRECT;
    if (env.d.chance(0.5)) {
      // ...pointing at a real table: a nested one, if anyone followed it.
      const n = env.d.int(1, 4);
      const t = env.arena.tables.take(n * DESC, 16);
      for (let i = 0; i < n; i++) junkEntry(env, t, i);
      s.addr = t;
      s.len = n * DESC;
    }
  }],
  // the indirect head and its table
  [12, (env, c) => {
    const h = c.indirect;
    if (h === null) return;
    const { d } = env;
    const n = c.tableEntries;
    d.weighted<() => void>([
      [20, () => { h.len = 0; }],
      [20, () => { h.len = n * DESC + d.int(1, 15); }],
      [15, () => { h.len = DESC * d.int(1, Math.max(1, n - 1)); }], // the table cut short: next links run off it
      [10, () => { h.len = DESC * (n + d.int(1, 8)); }],
      [15, () => { h.addr = beyondRam(env); }],
      [10, () => { h.addr = env.ramSize - DESC * d.int(1, n); }],
      [10, () => { h.flags |= d.pick([NEXT, WRITE, NEXT | WRITE]); h.next = d.u16(); }], // ignored on a table head
    ])();
  }],
];

/** Mutate chain `c` with probability `rate`: one mutation mostly, up to three. */
function mutate(env: GenEnv, c: Chain, rate: number): void {
  const { d } = env;
  if (!d.chance(rate)) return;
  for (let n = 1 + d.choose(W_MUTATIONS); n > 0; n--) d.weighted(MUTATIONS)(env, c);
}

/** How hostile a round's driver is: the chance that each chain is mutated (clean rounds keep the device busy completing). */
const MUTATION_RATES: readonly number[] = [0, 0, 0.1, 0.25, 0.5];

// ---- writing ----

function writeSlot(env: GenEnv, s: Slot): void {
  const { mem, ring } = env;
  // The one rule: no writable buffer over the avail or used ring, which the checker reads (layout.ts).
  if (s.flags & WRITE && overRings(ring, s.addr, s.len)) s.addr = env.ramSize;
  const a = s.table + s.index * DESC;
  writeU64(mem, a + V.DESC_ADDR, s.addr % TWO32 >>> 0, Math.floor(s.addr / TWO32) >>> 0);
  mem.write32(a + V.DESC_LEN, s.len);
  mem.write16(a + V.DESC_FLAGS, s.flags);
  mem.write16(a + V.DESC_NEXT, s.next);
}

function writeChain(env: GenEnv, c: Chain): void {
  for (const s of c.slots) writeSlot(env, s);
  if (c.indirect) writeSlot(env, c.indirect);
}

// ---- one round: requests, then what the avail ring offers ----

/** What a round wrote, for the program to offer and kick. */
export interface RoundPlan {
  /** Heads to offer, in order (some duplicated, some bogus). */
  heads: number[];
  /** Added to avail->idx beyond heads.length: slots offered without being written (stale or zero). */
  extra: number;
  /** Replace avail->idx by this (absolute, u16) instead: an index that moved too far, or backwards. */
  idxOverride: ((idx: number) => number) | null;
}

const KINDS: readonly (readonly [number, ReqKind])[] = [
  [30, 'in'], [22, 'out'], [9, 'flush'], [9, 'get-id'], [9, 'discard'], [9, 'write-zeroes'], [11, 'random'], [0.4, 'many'],
];

/** Write a round of requests into the ring and its tables; say which heads to offer. */
export function generateRound(env: GenEnv): RoundPlan {
  const { d, ring } = env;
  const free = new FreeSlots(d, ring.num);
  const w = d.choose(W_WANT);
  const want = w === 0 ? d.int(1, 2) : w === 1 ? d.int(3, 8) : w === 2 ? d.int(9, 32) : d.int(1, ring.num);
  const rate = d.pick(MUTATION_RATES);
  const heads: number[] = [];
  for (let i = 0; i < want && free.length > 0; i++) {
    const c = place(env, request(env, d.weighted(KINDS)), free);
    if (c === null) break;
    mutate(env, c, rate);
    writeChain(env, c);
    heads.push(c.head);
  }
  if (heads.length > 0 && d.chance(0.15)) {
    // The same head offered more than once (QEMU does not check).
    for (let k = d.int(1, 4); k > 0; k--) heads.splice(d.int(0, heads.length), 0, d.pick(heads));
  }
  if (d.chance(0.05)) heads.splice(d.int(0, heads.length), 0, d.chance(0.5) ? ring.num + d.int(0, 8) : d.u16());
  if (heads.length > 0 && d.chance(0.05)) {
    // Fill the ring with copies of one head: with the next round, the device may have `num` elements in flight.
    const h = d.pick(heads);
    while (heads.length < ring.num) heads.push(h);
  }
  // Slots offered without being written this round: stale heads (or zeros) from before; usually still within num.
  const extra = !d.chance(0.05) ? 0 : d.chance(0.8) ? d.int(0, Math.max(0, ring.num - heads.length)) : d.int(1, ring.num);
  let idxOverride: RoundPlan['idxOverride'] = null;
  if (d.chance(0.03)) {
    const num = ring.num;
    idxOverride = d.weighted<(idx: number) => number>([
      [35, (idx) => idx + num + 1 + d.int(0, 64)],
      [20, (idx) => idx - 1],
      [15, (idx) => idx + 0xffff],
      [15, (idx) => idx + 0x8000],
      [15, () => d.u16()],
    ]);
  }
  return { heads, extra, idxOverride };
}

/**
 * A request that virtio-blk finishes at once (an unsupported type): the
 * long-run prelude offers it tens of thousands of times to bring the ring
 * indices near the 16-bit wrap. Returns its head.
 */
export function writeQuickRequest(env: GenEnv): number {
  const { mem, ring, arena } = env;
  const hdr = arena.data.take(V.VIRTIO_BLK_OUTHDR_SIZE, 16);
  mem.write32(hdr, 0x100); // no such type: S_UNSUPP, completed inside handle_output
  mem.write32(hdr + 4, 0);
  writeU64(mem, hdr + 8, 0, 0);
  const status = arena.data.take(1, 8);
  const head = ring.num - 2;
  writeSlot(env, { table: ring.desc, index: head, addr: hdr, len: V.VIRTIO_BLK_OUTHDR_SIZE, flags: NEXT, next: head + 1 });
  writeSlot(env, { table: ring.desc, index: head + 1, addr: status, len: 1, flags: WRITE, next: 0 });
  return head;
}
