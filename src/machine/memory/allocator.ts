/**
 * A deterministic allocator of guest-physical memory, standing in for the
 * guest kernel's page allocator and kmalloc. Same sequence of calls, same
 * addresses: that is what makes a stop reproducible.
 *
 * Freed blocks go to a cache per (size, alignment), like a slab cache, and
 * the next allocation of that shape reuses the most recently freed one: a
 * long run (65,536 requests and more) recycles the same few addresses
 * instead of growing. New shapes come from a first-fit free list.
 */
import type { Gpa } from './guest-memory';

interface Extent { addr: Gpa; len: number }

export class OutOfGuestMemory extends Error {}

export class GuestAllocator {
  private free: Extent[];
  /** addr → its shape key (see shapeKey). */
  private readonly live = new Map<Gpa, number>();
  /** shape key → freed blocks of that shape, most recent last. */
  private readonly caches = new Map<number, Gpa[]>();

  constructor(readonly start: Gpa, readonly end: Gpa) {
    this.free = [{ addr: start, len: end - start }];
  }

  /** Allocate `len` bytes aligned to `align` (a power of two). */
  alloc(len: number, align = 8): Gpa {
    const addr = this.tryAlloc(len, align);
    if (addr !== null) return addr;
    // Out of fresh memory: give every cached block back to the free list and try once more.
    this.reclaim();
    const again = this.tryAlloc(len, align);
    if (again === null) throw new OutOfGuestMemory(`guest memory exhausted allocating ${len} bytes`);
    return again;
  }

  private tryAlloc(len: number, align: number): Gpa | null {
    if (len <= 0) len = 1;
    const key = shapeKey(len, align);
    const cached = this.caches.get(key);
    if (cached !== undefined && cached.length > 0) {
      const addr = cached.pop()!;
      this.live.set(addr, key);
      return addr;
    }
    for (let i = 0; i < this.free.length; i++) {
      const e = this.free[i];
      const addr = Math.ceil(e.addr / align) * align;
      const pad = addr - e.addr;
      if (pad + len > e.len) continue;
      const tail = e.len - pad - len;
      const repl: Extent[] = [];
      if (pad > 0) repl.push({ addr: e.addr, len: pad });
      if (tail > 0) repl.push({ addr: addr + len, len: tail });
      this.free.splice(i, 1, ...repl);
      this.live.set(addr, key);
      return addr;
    }
    return null;
  }

  /** Return cached blocks to the free list, merging neighbours. */
  private reclaim(): void {
    for (const [key, addrs] of this.caches) {
      const len = Math.floor(key / SHAPE_ALIGN_SPAN);
      for (const addr of addrs) this.free.push({ addr, len });
    }
    this.caches.clear();
    this.free.sort((a, b) => a.addr - b.addr);
    const merged: Extent[] = [];
    for (const e of this.free) {
      const last = merged[merged.length - 1];
      if (last && last.addr + last.len === e.addr) last.len += e.len;
      else merged.push({ ...e });
    }
    this.free = merged;
  }

  release(addr: Gpa): void {
    const key = this.live.get(addr);
    if (key === undefined) throw new Error(`double or foreign free of guest address 0x${addr.toString(16)}`);
    this.live.delete(addr);
    let cache = this.caches.get(key);
    if (cache === undefined) this.caches.set(key, (cache = []));
    cache.push(addr);
  }

  /** Bytes currently allocated: a bound the fuzzer can check. */
  get inUse(): number {
    let n = 0;
    for (const key of this.live.values()) n += Math.floor(key / SHAPE_ALIGN_SPAN);
    return n;
  }
}

/** Alignments are powers of two up to 2^20, so a shape fits in one safe integer. */
const SHAPE_ALIGN_SPAN = 2 ** 21;
function shapeKey(len: number, align: number): number {
  return len * SHAPE_ALIGN_SPAN + align;
}
