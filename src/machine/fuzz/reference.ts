/**
 * The checker's own statement of the rules QEMU 7.2 applies to one popped
 * head (FIDELITY §3.2 and §3.4), written from the spec and FIDELITY, not
 * from the machine's code: given guest memory at the moment the device reads
 * the head, what must happen — a virtio_error with exactly this message, or
 * an element with these device-readable and device-writable buffers, whose
 * request virtio-blk completes with this status byte.
 *
 * The fuzzer evaluates it at the instant the device reads the avail ring
 * (the simulation is single-threaded, so memory cannot change between that
 * instant and the device's own walk), which makes the prediction exact even
 * when a hostile guest points buffers at its own descriptor tables.
 */
import type { GuestMemory, Gpa } from '../memory/guest-memory';
import * as V from '../spec/virtio';
import type { Ring } from './layout';
import { readDesc } from '../memory/vring-desc';

export interface Range {
  addr: Gpa;
  len: number;
}

/**
 * What QEMU does with one head: an error in virtqueue_split_pop (no element
 * is made), an error in virtio_blk_handle_request (the element is made, then
 * detached), or an element and its request's status.
 */
export type Verdict =
  | { readonly error: string; readonly stage: 'pop' | 'blk' }
  | {
      readonly error: null;
      readonly out: readonly Range[];
      readonly in: readonly Range[];
      /** The used element's len: every device-writable byte (virtio-blk's in_len). */
      readonly inBytes: number;
      /** The status byte virtio-blk stores, and where. */
      readonly status: number;
      readonly statusAddr: Gpa;
    };

/** What virtio-blk's answers depend on besides the request: the disk. */
export interface Disk {
  /** Capacity in 512-byte sectors. */
  readonly sectors: number;
  /** Writes, discards and write-zeroes fail with -EPERM (S_IOERR). */
  readonly readOnly: boolean;
}

/** QEMU's VIRTQUEUE_MAX_SIZE: an element holds at most this many sg entries, readable and writable together. */
const MAX_SG = 1024;
/** The machine's drive: max_discard_sectors = max_write_zeroes_sectors = 0x3fffff (machine.ts). */
const MAX_DWZ_SECTORS = 0x3fffff;


/** The chain at `head` (head < num), as virtqueue_split_pop would gather it. */
export function walkHead(mem: GuestMemory, ring: Ring, head: number): { error: string; stage: 'pop' } | { error: null; out: Range[]; in: Range[] } {
  let table = ring.desc;
  let max = ring.num;
  let d = readDesc(mem, table, head);
  // Only the head may refer to a table (one level): flags inside a table are never followed again.
  if (d.flags & V.VRING_DESC_F_INDIRECT) {
    if (d.len === 0 || d.len % V.VRING_DESC_SIZE !== 0) return { error: 'Invalid size for indirect buffer table', stage: 'pop' };
    if (!mem.valid(d.addr, d.len)) return { error: 'Cannot map indirect buffer', stage: 'pop' };
    table = d.addr;
    max = d.len / V.VRING_DESC_SIZE;
    d = readDesc(mem, table, 0);
  }
  const out: Range[] = [];
  const inn: Range[] = [];
  for (let entries = 1; ; entries++) {
    const writable = (d.flags & V.VRING_DESC_F_WRITE) !== 0;
    // Spec 2.7.4.2: every device-readable buffer precedes every device-writable one.
    if (!writable && inn.length > 0) return { error: 'Incorrect order for descriptors', stage: 'pop' };
    if (d.len === 0) return { error: 'virtio: zero sized buffers are not allowed', stage: 'pop' };
    if (out.length + inn.length >= MAX_SG) return { error: 'virtio: too many write descriptors in indirect table', stage: 'pop' };
    // Guest RAM is one region: a buffer maps whole, or (partly outside RAM) not at all.
    if (!mem.valid(d.addr, d.len)) return { error: 'virtio: bogus descriptor or out of resources', stage: 'pop' };
    (writable ? inn : out).push({ addr: d.addr, len: d.len });
    // A chain can hold at most `max` descriptors; one more means it loops.
    if (entries > max) return { error: 'Looped descriptor', stage: 'pop' };
    if (!(d.flags & V.VRING_DESC_F_NEXT)) return { error: null, out, in: inn };
    if (d.next >= max) return { error: `Desc next is ${d.next}`, stage: 'pop' };
    d = readDesc(mem, table, d.next);
  }
}

/** Copy up to `len` bytes starting `skip` bytes into the ranges. */
function gather(mem: GuestMemory, ranges: readonly Range[], skip: number, len: number): Buffer {
  const buf = Buffer.alloc(len);
  let done = 0;
  for (const r of ranges) {
    if (done >= len) break;
    if (skip >= r.len) {
      skip -= r.len;
      continue;
    }
    const n = Math.min(r.len - skip, len - done);
    mem.slice(r.addr + skip, n).copy(buf, done);
    done += n;
    skip = 0;
  }
  return done === len ? buf : buf.subarray(0, done);
}

const sum = (rs: readonly Range[]): number => rs.reduce((s, r) => s + r.len, 0);

/** virtio_blk_sect_range_ok: whole sectors, inside the disk. */
function rangeOk(disk: Disk, sector: number, bytes: number): boolean {
  if (bytes % V.SECTOR_SIZE !== 0) return false;
  const n = bytes / V.SECTOR_SIZE;
  return sector <= disk.sectors && n <= disk.sectors - sector;
}

const u64 = (b: Buffer, off: number): number => b.readUInt32LE(off) + b.readUInt32LE(off + 4) * 0x100000000;

/** The status of a request whose headers are sound (virtio_blk_handle_request's switch, then the block layer). */
function requestStatus(disk: Disk, type: number, sector: number, outPayload: number, inData: number, dwz: Buffer | null): number {
  const { VIRTIO_BLK_S_OK: OK, VIRTIO_BLK_S_IOERR: IOERR, VIRTIO_BLK_S_UNSUPP: UNSUPP } = V;
  const isOut = (type & V.VIRTIO_BLK_T_OUT) !== 0;
  // OUT says the direction; BARRIER is a legacy flag QEMU ignores.
  switch ((type & ~(V.VIRTIO_BLK_T_OUT | V.VIRTIO_BLK_T_BARRIER)) >>> 0) {
    case V.VIRTIO_BLK_T_IN:
      if (!rangeOk(disk, sector, isOut ? outPayload : inData)) return IOERR;
      return isOut && disk.readOnly ? IOERR : OK;
    case V.VIRTIO_BLK_T_FLUSH:
    case V.VIRTIO_BLK_T_GET_ID:
      return OK;
    case V.VIRTIO_BLK_T_DISCARD & ~V.VIRTIO_BLK_T_OUT:
    case V.VIRTIO_BLK_T_WRITE_ZEROES & ~V.VIRTIO_BLK_T_OUT: {
      if (!isOut || outPayload > V.VIRTIO_BLK_DISCARD_WZ_SEG_SIZE || dwz === null) return UNSUPP;
      const isWz = ((type & ~V.VIRTIO_BLK_T_BARRIER) >>> 0) === V.VIRTIO_BLK_T_WRITE_ZEROES;
      const start = u64(dwz, 0);
      const count = dwz.readUInt32LE(8);
      const flags = dwz.readUInt32LE(12);
      if (count > MAX_DWZ_SECTORS || !rangeOk(disk, start, count * V.SECTOR_SIZE)) return IOERR;
      // Unknown flags, and UNMAP on a discard, are unsupported (spec 5.2.6.2).
      if (isWz ? (flags & ~V.VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) !== 0 : flags !== 0) return UNSUPP;
      return disk.readOnly ? IOERR : OK;
    }
    default:
      return UNSUPP;
  }
}

/** Everything QEMU does with head `head` of the ring, read from memory now. */
export function predict(mem: GuestMemory, ring: Ring, head: number, disk: Disk): Verdict {
  if (head >= ring.num) return { error: `Guest says index ${head} is available`, stage: 'pop' };
  const w = walkHead(mem, ring, head);
  if (w.error !== null) return w;
  // virtio_blk_handle_request: a readable header and a writable status byte at least.
  if (w.out.length < 1 || w.in.length < 1) return { error: 'virtio-blk missing headers', stage: 'blk' };
  const outBytes = sum(w.out);
  if (outBytes < V.VIRTIO_BLK_OUTHDR_SIZE) return { error: 'virtio-blk request outhdr too short', stage: 'blk' };
  const last = w.in[w.in.length - 1];
  if (last.len < 1) return { error: 'virtio-blk request inhdr too short', stage: 'blk' };
  const hdr = gather(mem, w.out, 0, V.VIRTIO_BLK_OUTHDR_SIZE);
  const type = hdr.readUInt32LE(0);
  const sector = u64(hdr, 8);
  const outPayload = outBytes - V.VIRTIO_BLK_OUTHDR_SIZE;
  const base = (type & ~(V.VIRTIO_BLK_T_OUT | V.VIRTIO_BLK_T_BARRIER)) >>> 0;
  let dwz: Buffer | null = null;
  const isDwz = base === (V.VIRTIO_BLK_T_DISCARD & ~V.VIRTIO_BLK_T_OUT) || base === (V.VIRTIO_BLK_T_WRITE_ZEROES & ~V.VIRTIO_BLK_T_OUT);
  if (isDwz && (type & V.VIRTIO_BLK_T_OUT) !== 0 && outPayload <= V.VIRTIO_BLK_DISCARD_WZ_SEG_SIZE) {
    dwz = gather(mem, w.out, V.VIRTIO_BLK_OUTHDR_SIZE, V.VIRTIO_BLK_DISCARD_WZ_SEG_SIZE);
    if (dwz.length < V.VIRTIO_BLK_DISCARD_WZ_SEG_SIZE) return { error: 'virtio-blk discard/write_zeroes header too short', stage: 'blk' };
  }
  const inBytes = sum(w.in);
  return {
    error: null,
    out: w.out,
    in: w.in,
    inBytes,
    status: requestStatus(disk, type, sector, outPayload, inBytes - 1, dwz),
    statusAddr: last.addr + last.len - 1,
  };
}
