/**
 * A deterministic allocator of guest-physical memory, standing in for the
 * guest kernel's page allocator and kmalloc. Same sequence of calls, same
 * addresses: that is what makes a stop reproducible.
 *
 * First fit over a sorted free list, with coalescing on free, so that a long
 * run (65,536 requests and more) reuses memory instead of growing.
 */
import type { Gpa } from './guest-memory';

interface Extent { addr: Gpa; len: number }

export class OutOfGuestMemory extends Error {}

export class GuestAllocator {
  private free: Extent[];
  private readonly live = new Map<Gpa, number>();

  constructor(readonly start: Gpa, readonly end: Gpa) {
    this.free = [{ addr: start, len: end - start }];
  }

  /** Allocate `len` bytes aligned to `align` (a power of two). */
  alloc(len: number, align = 8): Gpa {
    if (len <= 0) len = 1;
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
      this.live.set(addr, len);
      return addr;
    }
    throw new OutOfGuestMemory(`guest memory exhausted allocating ${len} bytes`);
  }

  release(addr: Gpa): void {
    const len = this.live.get(addr);
    if (len === undefined) throw new Error(`double or foreign free of guest address 0x${addr.toString(16)}`);
    this.live.delete(addr);
    // Insert keeping order, then merge with neighbours.
    let i = 0;
    while (i < this.free.length && this.free[i].addr < addr) i++;
    this.free.splice(i, 0, { addr, len });
    if (i + 1 < this.free.length && addr + len === this.free[i + 1].addr) {
      this.free[i].len += this.free[i + 1].len;
      this.free.splice(i + 1, 1);
    }
    if (i > 0 && this.free[i - 1].addr + this.free[i - 1].len === addr) {
      this.free[i - 1].len += this.free[i].len;
      this.free.splice(i, 1);
    }
  }

  /** Bytes currently allocated: a bound the fuzzer can check. */
  get inUse(): number {
    let n = 0;
    for (const v of this.live.values()) n += v;
    return n;
  }
}
