/**
 * Running raw statements and `expect` on vCPU 0. The scenario acts as a
 * driver of its own: it stores to guest memory exactly what the statement
 * says (little-endian, at spec offsets) and kicks through the same MMIO
 * write the Linux driver's vm_notify makes, so the device cannot tell it
 * from a driver — which is the point.
 *
 * A statement that names a queue's rings takes that queue from the guest
 * driver (VringVirtqueue.raw_owned): from then on the driver neither adds
 * buffers to it nor takes used ones off it, and ignores its interrupts.
 *
 * What can only be known here (an address outside RAM, a queue the guest
 * never set up, a descriptor index past the table) is a ScenarioError at the
 * statement's file:line:col; the interpreter then stops the scenario.
 */
import type { Co } from '../sim/sim';
import type { AddrRef, ExpectStmt, Loc, MemValue, RawStmt } from './ast';
import { ScenarioError } from './errors';
import type { GuestProgram } from './interpreter';
import { OutOfGuestMemory } from '../memory/allocator';
import { VringVirtqueue, kmalloc } from '../linux/drivers/virtio/virtio_ring';
import {
  AVAIL_FLAGS, AVAIL_IDX, DESC_ADDR, DESC_FLAGS, DESC_LEN, DESC_NEXT, VIRTIO_MMIO_QUEUE_NOTIFY, VRING_DESC_SIZE,
  availRingOff, usedEventOff,
} from '../spec/virtio';
import { ExprError } from '../expr/errors';
import { references } from '../expr/ast';
import { evaluate, truthy } from '../expr/evaluate';
import { formatValue } from '../expr/format';

/** The outcome of one `expect` line, kept in order in GuestProgram.expects (and the CLI's RunResult). */
export interface ExpectRecord {
  file: string;
  line: number;
  /** Column of the expression. */
  col: number;
  expr: string;
  ok: boolean;
  /** `file:line:col: expect failed: EXPR (values)`; null when the expectation held. */
  message: string | null;
}

const TWO64 = 1n << 64n;

function fail(loc: Loc, col: number, reason: string): never {
  throw new ScenarioError(loc.file, loc.line, col, reason);
}

function hex(v: number | bigint): string {
  return '0x' + v.toString(16);
}

/** The guest driver's queue `i`, taken over for raw statements. */
function takeQueue(g: GuestProgram, st: RawStmt): VringVirtqueue {
  const i = g.rawQueue;
  const vq = g.virtqueue(i);
  if (vq === null) {
    const n = g.vm_dev?.vqs.length ?? 0;
    return fail(st.loc, st.loc.col, `${st.kind}: the guest driver set up ${n} queue${n === 1 ? '' : 's'}, so there is no queue ${i} to drive`);
  }
  vq.raw_owned = true;
  return vq;
}

/** An address operand's value: buf address or ring base plus offset, or the number itself. */
function resolve(g: GuestProgram, st: RawStmt, ref: AddrRef): bigint {
  let base = 0n;
  if (ref.name !== null) {
    const buf = g.rawBufs.get(ref.name);
    if (buf !== undefined) {
      base = BigInt(buf.addr);
    } else {
      // vring_desc / vring_avail / vring_used of the current queue, as the driver laid them out (does not take the queue).
      const vq = g.virtqueue(g.rawQueue);
      if (vq === null) fail(st.loc, ref.col, `${st.kind}: '${ref.name}': the guest driver has no queue ${g.rawQueue}`);
      const ring = ref.name === 'vring_desc' ? vq.desc : ref.name === 'vring_avail' ? vq.avail : ref.name === 'vring_used' ? vq.used : null;
      if (ring === null) fail(st.loc, ref.col, `${st.kind}: unknown name '${ref.name}'`);
      base = BigInt(ring);
    }
  }
  const v = base + ref.offset;
  if (v >= TWO64) fail(st.loc, ref.col, `${st.kind}: ${ref.text} is ${hex(v)}, beyond 64 bits`);
  return v;
}

/** An address where the vCPU will store `len` bytes: it must lie in guest RAM. */
function ramAddr(g: GuestProgram, st: RawStmt, ref: AddrRef, len: number, extra = 0n): number {
  const v = resolve(g, st, ref) + extra;
  const mem = g.platform.mem;
  if (v > BigInt(Number.MAX_SAFE_INTEGER) || !mem.valid(Number(v), len)) {
    const what = `${len === 1 ? '1 byte' : `${len} bytes`} at ${hex(v)}${ref.name !== null ? ` (${ref.text}${extra ? ` + ${extra}` : ''})` : ''}`;
    fail(st.loc, ref.col, `${st.kind}: ${what} ${len === 1 ? 'is' : 'are'} outside guest RAM (${hex(mem.base)} to ${hex(mem.base + mem.size)})`);
  }
  return Number(v);
}

function valueBytes(v: MemValue): Buffer {
  if (v.kind === 'bytes') return v.bytes;
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v.value);
  return b.subarray(0, v.width);
}

function writeDesc(g: GuestProgram, at: number, addr: bigint, len: number, flags: number, next: number): void {
  const mem = g.platform.mem;
  const b = Buffer.alloc(VRING_DESC_SIZE);
  b.writeBigUInt64LE(addr, DESC_ADDR);
  b.writeUInt32LE(len, DESC_LEN);
  b.writeUInt16LE(flags, DESC_FLAGS);
  b.writeUInt16LE(next, DESC_NEXT);
  mem.writeBytes(at, b);
}

/** One raw statement; may yield (notify leaves the guest through MMIO). */
export function* raw_statement(g: GuestProgram, st: RawStmt): Co<void> {
  const mem = g.platform.mem;
  switch (st.kind) {
    case 'queue':
      g.rawQueue = st.index;
      takeQueue(g, st);
      return;
    case 'buf': {
      let addr: number;
      try {
        addr = kmalloc(g.platform.alloc, st.size);
      } catch (e) {
        if (e instanceof OutOfGuestMemory) fail(st.loc, st.loc.col, `buf: no ${st.size} bytes of guest memory left for '${st.name}'`);
        throw e;
      }
      // kzalloc: the allocator may hand out memory a request used before.
      mem.fill(addr, st.size, 0);
      g.rawBufs.set(st.name, { addr, size: st.size });
      return;
    }
    case 'mem': {
      const bytes = Buffer.concat(st.values.map(valueBytes));
      mem.writeBytes(ramAddr(g, st, st.addr, bytes.length), bytes);
      return;
    }
    case 'desc': {
      const addr = resolve(g, st, st.addr);
      let at: number;
      if (st.table !== null) {
        at = ramAddr(g, st, st.table, VRING_DESC_SIZE, BigInt(st.index * VRING_DESC_SIZE));
      } else {
        const vq = takeQueue(g, st);
        if (st.index >= vq.num) fail(st.loc, st.indexCol, `desc: queue ${vq.index} has ${vq.num} descriptors (0 to ${vq.num - 1}); use mem to write past the table`);
        at = vq.desc + st.index * VRING_DESC_SIZE;
      }
      writeDesc(g, at, addr, st.len, st.flags, st.next);
      return;
    }
    case 'avail': {
      const vq = takeQueue(g, st);
      const idx = mem.read16(vq.avail + AVAIL_IDX);
      mem.write16(vq.avail + availRingOff(idx % vq.num), st.head);
      mem.write16(vq.avail + AVAIL_IDX, (idx + 1) & 0xffff);
      return;
    }
    case 'avail-idx':
      mem.write16(takeQueue(g, st).avail + AVAIL_IDX, st.value);
      return;
    case 'avail-flags':
      mem.write16(takeQueue(g, st).avail + AVAIL_FLAGS, st.value);
      return;
    case 'used-event': {
      const vq = takeQueue(g, st);
      mem.write16(vq.avail + usedEventOff(vq.num), st.value);
      return;
    }
    case 'notify': {
      const vq = takeQueue(g, st);
      // What vm_notify does: a 32-bit MMIO write of the queue index; KVM's ioeventfd or QEMU's MMIO exit takes it from there.
      yield* g.platform.writel(vq.index, g.platform.mmioBase + VIRTIO_MMIO_QUEUE_NOTIFY);
      return;
    }
  }
}

/** `expect EXPR`: evaluate against the machine, queue = the current raw queue; record the outcome. */
export function run_expect(g: GuestProgram, st: ExpectStmt): ExpectRecord {
  const env = g.exprEnv?.(g.rawQueue);
  if (env === undefined) throw new Error('expect: the machine gave the guest program no expression environment');
  let ok = false;
  let why: string | null = null;
  try {
    ok = truthy(evaluate(st.expr, env));
  } catch (e) {
    if (!(e instanceof ExprError)) throw e;
    why = e.reason;
  }
  let message: string | null = null;
  if (!ok) {
    // Show what the names came to: "used.idx = 0, u8(status) = 255".
    const seen = new Set<string>();
    const values: string[] = [];
    for (const r of references(st.expr)) {
      const text = st.source.slice(r.start, r.end);
      if (seen.has(text)) continue;
      seen.add(text);
      let shown: string;
      try {
        shown = formatValue(evaluate(r, env));
      } catch (e) {
        if (!(e instanceof ExprError)) throw e;
        shown = `<error: ${e.reason}>`;
      }
      values.push(`${text} = ${shown}`);
    }
    const detail = [...(why !== null ? [`error: ${why}`] : []), ...values].join(', ');
    message = `${st.loc.file}:${st.loc.line}:${st.col}: expect failed: ${st.source}${detail ? ` (${detail})` : ''}`;
  }
  return { file: st.loc.file, line: st.loc.line, col: st.col, expr: st.source, ok, message };
}
