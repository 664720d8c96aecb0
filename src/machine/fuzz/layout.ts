/**
 * Where a fuzz case puts things in guest RAM once the guest has probed:
 * the split ring the driver allocated for queue 0 (taken over, raw), an
 * area for indirect tables and an area for request buffers, both allocated
 * from the guest's own allocator and given back at the end of the case.
 *
 * The one rule the generator keeps: nothing the device may write (a
 * device-writable buffer) lies over the avail or the used ring, because the
 * checker reads them to see what the guest offered and what the device
 * completed; a device write there would make the check meaningless, not the
 * device wrong. Everything else may overlap anything, as a buggy or hostile
 * guest's buffers would (the device may write into descriptor tables).
 */
import type { GuestMemory, Gpa } from '../memory/guest-memory';
import type { GuestAllocator } from '../memory/allocator';
import * as V from '../spec/virtio';

/** The split ring of the queue under test, as the guest laid it out. */
export interface Ring {
  readonly num: number;
  readonly desc: Gpa;
  readonly avail: Gpa;
  readonly used: Gpa;
}

/** [a, a+alen) and [b, b+blen) share a byte. */
export function overlaps(a: number, alen: number, b: number, blen: number): boolean {
  return a < b + blen && b < a + alen;
}

/** [addr, addr+len) touches the avail ring or the used ring (used_event and avail_event included). */
export function overRings(ring: Ring, addr: number, len: number): boolean {
  return overlaps(addr, len, ring.avail, V.vringAvailSize(ring.num)) || overlaps(addr, len, ring.used, V.vringUsedSize(ring.num));
}

/** A bump allocator over one area that starts again at the bottom when full (old buffers get reused, as in a sloppy guest). */
export class Area {
  private next: Gpa;

  constructor(readonly start: Gpa, readonly size: number) {
    this.next = start;
  }

  take(len: number, align = 8): Gpa {
    if (len > this.size) return this.start;
    let a = Math.ceil(this.next / align) * align;
    if (a + len > this.start + this.size) a = this.start;
    this.next = a + len;
    return a;
  }
}

/** Bytes of the two areas: a 2048-entry indirect table fits in `tables`; 16 sectors times a few requests in `data`. */
const TABLES_BYTES = 48 * 1024;
const DATA_BYTES = 128 * 1024;

/** The case's areas in guest RAM, allocated after the probe and released at the end. */
export class Arena {
  readonly tables: Area;
  readonly data: Area;
  /** Below the guest allocator's start nothing lives: buffers may go there freely. */
  readonly low: Area;

  constructor(private readonly alloc: GuestAllocator, readonly mem: GuestMemory) {
    this.tables = new Area(alloc.alloc(TABLES_BYTES, 4096), TABLES_BYTES);
    this.data = new Area(alloc.alloc(DATA_BYTES, 4096), DATA_BYTES);
    this.low = new Area(0, alloc.start);
  }

  release(): void {
    this.alloc.release(this.tables.start);
    this.alloc.release(this.data.start);
  }
}
