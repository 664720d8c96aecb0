/**
 * The vCPU thread's way into QEMU (accel/kvm/kvm-all.c, softmmu/physmem.c,
 * softmmu/memory.c): KVM_RUN returns with KVM_EXIT_MMIO, kvm_cpu_exec
 * dispatches the access to the memory region that owns the address, and the
 * region's handler (virtio_mmio_read / virtio_mmio_write) runs in the vCPU
 * thread. When the access is done, KVM_RUN resumes the guest.
 */
import { Co, S, STOP, enter, leave } from '../../../sim/sim';
import { defineFn } from '../../../sim/frames';
import type { HostObject } from '../../../sim/pointers';

/** A memory region with MMIO callbacks (MemoryRegionOps). */
export interface MemoryRegion extends HostObject {
  readonly name: string;
  readonly addr: number;
  readonly size: number;
  read(offset: number, size: number): Co<number>;
  write(offset: number, value: number, size: number): Co<void>;
}

export class CPUState implements HostObject {
  readonly ptr: number;
  constructor(readonly cpu_index: number, readonly regions: MemoryRegion[]) {
    this.ptr = S.ptrs.alloc('heap', 0x9d00);
  }
  find(addr: number): MemoryRegion | undefined {
    return this.regions.find((r) => addr >= r.addr && addr < r.addr + r.size);
  }
}

const F_dispatch_read = defineFn('memory_region_dispatch_read', ['mr', 'addr', 'pval', 'op']);
function* memory_region_dispatch_read(mr: MemoryRegion, addr: number, size: number): Co<number> {
  if (enter(F_dispatch_read, mr, addr, { ptr: 0x7ffff5ffe5a8 }, `MO_${size * 8}`)) yield STOP;
  const v = yield* mr.read(addr, size);
  return leave(F_dispatch_read, v);
}

const F_dispatch_write = defineFn('memory_region_dispatch_write', ['mr', 'addr', 'data', 'op']);
function* memory_region_dispatch_write(mr: MemoryRegion, addr: number, data: number, size: number): Co<void> {
  if (enter(F_dispatch_write, mr, addr, data, `MO_${size * 8}`)) yield STOP;
  yield* mr.write(addr, data, size);
  return leave(F_dispatch_write, undefined);
}

const F_as_rw = defineFn('address_space_rw', ['as', 'addr', 'attrs', 'buf']);
function* address_space_rw(cpu: CPUState, addr: number, value: number, size: number, is_write: boolean): Co<number> {
  if (enter(F_as_rw, { ptr: 0x555556e3f2c0 }, addr, '...', { ptr: 0x7ffff7fc5028 })) yield STOP;
  const mr = cpu.find(addr);
  let ret = 0xffffffff; // unassigned memory reads as all ones
  if (mr) {
    if (is_write) yield* memory_region_dispatch_write(mr, addr - mr.addr, value, size);
    else ret = yield* memory_region_dispatch_read(mr, addr - mr.addr, size);
  }
  return leave(F_as_rw, ret);
}

const F_cpu_exec = defineFn('kvm_cpu_exec', ['cpu']);
/** Handle one KVM_EXIT_MMIO: a guest load or store to device memory. */
export function* kvm_cpu_exec(cpu: CPUState, addr: number, value: number, size: number, is_write: boolean): Co<number> {
  if (enter(F_cpu_exec, cpu)) yield STOP;
  const v = yield* address_space_rw(cpu, addr, value, size, is_write);
  return leave(F_cpu_exec, v);
}
