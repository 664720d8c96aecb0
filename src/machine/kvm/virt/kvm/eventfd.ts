/**
 * The host kernel's KVM eventfd bindings (virt/kvm/eventfd.c).
 *
 * ioeventfd: a guest store to a registered address (QueueNotify, with the
 * queue index as datamatch) is completed inside KVM, which signals the
 * eventfd; the vCPU never exits to QEMU. irqfd: signalling the eventfd
 * injects the guest interrupt without going through QEMU's irq code.
 */
import { Co, S, STOP, enter, leave } from '../../../sim/sim';
import { defineFn } from '../../../sim/frames';

/** Something an eventfd can wake: QEMU's EventNotifier. */
export interface Signalable {
  signal(): void;
}

export class KvmIoeventfd {
  /** struct _ioeventfd, kmalloc'd in the host kernel: above 2^53, so kept as the text gdb would print. */
  readonly kptrText: string;
  constructor(readonly addr: number, readonly length: number, readonly datamatch: number, readonly eventfd: Signalable) {
    const slot = S.ptrs.alloc('heap', 0x40) % 0x100000000;
    this.kptrText = '0xffff8881' + slot.toString(16).padStart(8, '0');
  }
}

const F_write = defineFn('ioeventfd_write', ['vcpu', 'this', 'addr', 'val']);
/** The store matched an ioeventfd: signal it and let the guest carry on. */
export function* ioeventfd_write(p: KvmIoeventfd, addr: number, val: number): Co<void> {
  if (enter(F_write, '0xffffc90000a3b000', p, addr, val)) yield STOP;
  p.eventfd.signal();
  return leave(F_write, undefined);
}
