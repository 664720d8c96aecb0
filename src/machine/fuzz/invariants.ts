/**
 * What must hold at the end of every fuzz case, and the allow-list of the
 * only ways a device may give up on a ring: QEMU's virtio_error messages
 * for a split virtqueue and virtio-blk's request headers (FIDELITY §3.2,
 * §3.4). Outcomes are grouped by message pattern, not by the numbers in
 * them, so that the distribution says which rules the generator reaches.
 */
import type { Machine } from '../machine';
import * as V from '../spec/virtio';
import type { Ring } from './layout';
import type { Monitor } from './monitor';

export const MOVED_INDEX = /^Guest moved used index from (\d+) to (\d+)$/;

/** Every message a virtio_error may carry, as printf pattern and exact regex. */
export const VIRTIO_ERROR_PATTERNS: readonly { readonly pattern: string; readonly re: RegExp }[] = [
  { pattern: 'Guest moved used index from %u to %u', re: MOVED_INDEX },
  { pattern: 'Virtqueue size exceeded', re: /^Virtqueue size exceeded$/ },
  { pattern: 'Guest says index %u is available', re: /^Guest says index \d+ is available$/ },
  { pattern: 'Invalid size for indirect buffer table', re: /^Invalid size for indirect buffer table$/ },
  { pattern: 'Cannot map indirect buffer', re: /^Cannot map indirect buffer$/ },
  { pattern: 'Incorrect order for descriptors', re: /^Incorrect order for descriptors$/ },
  { pattern: 'virtio: zero sized buffers are not allowed', re: /^virtio: zero sized buffers are not allowed$/ },
  { pattern: 'virtio: bogus descriptor or out of resources', re: /^virtio: bogus descriptor or out of resources$/ },
  { pattern: 'virtio: too many write descriptors in indirect table', re: /^virtio: too many write descriptors in indirect table$/ },
  { pattern: 'Looped descriptor', re: /^Looped descriptor$/ },
  { pattern: 'Desc next is %u', re: /^Desc next is \d+$/ },
  { pattern: 'virtio-blk missing headers', re: /^virtio-blk missing headers$/ },
  { pattern: 'virtio-blk request outhdr too short', re: /^virtio-blk request outhdr too short$/ },
  { pattern: 'virtio-blk request inhdr too short', re: /^virtio-blk request inhdr too short$/ },
  { pattern: 'virtio-blk discard/write_zeroes header too short', re: /^virtio-blk discard\/write_zeroes header too short$/ },
];

/** The outcome of a case that ended well: the device completed everything. */
export const COMPLETED = 'completed';

/** The allow-list pattern `message` matches, or null if it is not a message QEMU gives. */
export function errorPattern(message: string): string | null {
  for (const p of VIRTIO_ERROR_PATTERNS) if (p.re.test(message)) return p.pattern;
  return null;
}

/** How a case's machine was left, for the end-of-case checks. */
export interface Ending {
  m: Machine;
  monitor: Monitor;
  /** The ring taken over after the probe, or null if the probe failed. */
  ring: Ring | null;
  /** GuestAllocator.inUse right after the probe. */
  allocAfterProbe: number;
  /** The vCPU program reached its end. */
  programDone: boolean;
  /** Guest RAM right after the program reset the device (Status = 0), or null if it did not. */
  ramAfterReset: Buffer | null;
}

/** The invariants that must hold once the machine has settled. Empty: the case passed. */
export function checkEnding(e: Ending): string[] {
  const { m, monitor, ring } = e;
  const out: string[] = [];
  if (ring === null) return ['the guest did not bind virtio-blk or set up queue 0'];
  if (!e.programDone) out.push('the vCPU program did not finish (a wait that never ended)');
  const vdev = m.vdev;
  const errors = vdev.errors;
  monitor.settlePending();
  out.push(...monitor.failures);
  if (e.ramAfterReset !== null) return out.concat(checkAfterReset(e, e.ramAfterReset));
  const usedNow = m.mem.read16(ring.used + V.USED_IDX);
  if (!monitor.unchecked && usedNow !== monitor.usedIndex) out.push(`used->idx is ${usedNow}; the device's flushes put it at ${monitor.usedIndex}`);
  if (vdev.broken) {
    if (errors.length !== 1) out.push(`broken with ${errors.length} errors: ${JSON.stringify(errors)}`);
    for (const msg of errors) if (errorPattern(msg) === null) out.push(`virtio_error("${msg}") is not one of QEMU's messages`);
    if (!(vdev.status & V.VIRTIO_CONFIG_S_NEEDS_RESET)) out.push('broken without NEEDS_RESET (VERSION_1 is negotiated)');
    if (!monitor.unchecked && monitor.usedAtError !== null && usedNow !== monitor.usedAtError) {
      out.push(`used->idx moved from ${monitor.usedAtError} to ${usedNow} after virtio_error`);
    }
  } else {
    if (errors.length > 0) out.push(`errors ${JSON.stringify(errors)} but the device is not broken`);
    if (vdev.status & V.VIRTIO_CONFIG_S_NEEDS_RESET) out.push('NEEDS_RESET without an error');
    // Healthy and kicked after the guest's last avail->idx write: it must have taken every head offered.
    const availIdx = m.mem.read16(ring.avail + V.AVAIL_IDX);
    if (!monitor.unchecked) {
      if (availIdx !== (monitor.pops & 0xffff)) out.push(`avail->idx is ${availIdx} but the device read ${monitor.pops & 0xffff} heads`);
      // At idle (FIDELITY §8): notifications re-enabled, so used->flags is 0; with EVENT_IDX the device
      // last wrote avail_event = avail->idx on re-enabling; without it, it never writes avail_event.
      const usedFlags = m.mem.read16(ring.used + V.USED_FLAGS);
      if (usedFlags !== 0) out.push(`used->flags is ${usedFlags} at idle`);
      const availEvent = m.mem.read16(ring.used + V.availEventOff(ring.num));
      const want = vdev.hasFeature(V.VIRTIO_RING_F_EVENT_IDX) ? availIdx : 0;
      if (availEvent !== want) out.push(`avail_event is ${availEvent} at idle, QEMU leaves ${want}`);
    }
  }
  if (monitor.inflight !== 0) out.push(`${monitor.inflight} elements popped and never completed`);
  // Broken or not, every element popped is pushed (a broken device only skips the ring writes) or detached.
  if (vdev.vq[0].inuse !== 0) out.push(`inuse ${vdev.vq[0].inuse} after the machine settled`);
  if (m.alloc.inUse !== e.allocAfterProbe) {
    out.push(`guest allocator: ${m.alloc.inUse} bytes in use at the end, ${e.allocAfterProbe} after the probe`);
  }
  return out;
}

/**
 * After a reset the device has no rings and owns no guest memory: QEMU
 * drains in-flight requests before it resets (virtio_blk_reset → blk_drain),
 * so nothing may land in guest RAM once the Status write has returned.
 */
function checkAfterReset(e: Ending, before: Buffer): string[] {
  const out: string[] = [];
  const { m } = e;
  const ram = m.mem.ram;
  if (!ram.equals(before)) {
    let i = 0;
    while (ram[i] === before[i]) i++;
    out.push(`the device wrote guest RAM after the reset (first at 0x${i.toString(16)})`);
  }
  if (m.vdev.broken) out.push('broken after a reset');
  if (m.vdev.vq[0].inuse !== 0) out.push(`inuse ${m.vdev.vq[0].inuse} after a reset`);
  if (m.alloc.inUse !== e.allocAfterProbe) out.push(`guest allocator: ${m.alloc.inUse} bytes in use at the end, ${e.allocAfterProbe} after the probe`);
  return out;
}

/** The outcome a case counts under: "completed", or the pattern of the device's error. */
export function outcomeOf(m: Machine): string {
  if (!m.vdev.broken) return COMPLETED;
  const msg = m.vdev.errors[0] ?? '(broken without a message)';
  return errorPattern(msg) ?? msg;
}
