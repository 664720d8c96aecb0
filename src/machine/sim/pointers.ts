/**
 * Host-like pointers for QEMU and kernel objects, so frames read as gdb prints
 * them: `vdev=0x555557cae140, vq=0x7ffff40d8010`. They are handed out by bump
 * allocators over the regions where such objects live in a real process
 * (the heap near 0x5555..., mmap'd and TLS areas near 0x7fff...), in program
 * order, so the same object gets the same pointer on every run.
 */

export type HostPtr = number;

/** Anything that shows up as a pointer argument in a frame. */
export interface HostObject {
  readonly ptr: HostPtr;
}

export type Region = 'heap' | 'mmap' | 'tls';

const REGION_BASE: Record<Region, number> = {
  heap: 0x555556f00000, // QEMU's g_malloc'd objects
  mmap: 0x7ffff4000000, // large allocations (VirtQueue arrays), coroutine stacks
  tls: 0x7ffff7200000, // per-thread state: the leader coroutine of each thread
};

export class PointerSpace {
  private readonly next: Record<Region, number> = { ...REGION_BASE };

  alloc(region: Region, size: number, align = 16): HostPtr {
    const p = Math.ceil(this.next[region] / align) * align;
    this.next[region] = p + size;
    return p;
  }
}

/**
 * A guest kernel object. It lives in guest RAM at `kaddr`, and the kernel
 * sees it through the direct map, so gdb in the guest would print
 * PAGE_OFFSET + kaddr (0xffff888000000000 + physical address on x86-64).
 */
export interface KernelObject {
  readonly kaddr: number;
}

export function hex(p: number): string {
  return '0x' + p.toString(16);
}

/** The direct-map pointer of a guest-physical address, as the guest kernel prints it. */
export function kernelPtr(gpa: number): string {
  return '0xffff8880' + gpa.toString(16).padStart(8, '0');
}
