/**
 * Scatter-gather vectors over guest memory (util/iov.c, QEMUIOVector).
 *
 * QEMU maps each descriptor to a host pointer; the machine keeps the
 * guest-physical address instead, so what the inspector shows as an sg entry
 * is where the bytes really are in guest memory.
 */
import type { GuestMemory, Gpa } from '../../memory/guest-memory';

export interface IoVec {
  addr: Gpa;
  len: number;
}

export function iov_size(iov: readonly IoVec[], n = iov.length): number {
  let s = 0;
  for (let i = 0; i < n; i++) s += iov[i].len;
  return s;
}

/** Copy up to `len` bytes starting `offset` bytes into the vector; returns bytes copied. */
export function iov_to_buf(mem: GuestMemory, iov: readonly IoVec[], n: number, offset: number, dst: Buffer, len: number): number {
  let done = 0;
  for (let i = 0; i < n && done < len; i++) {
    const v = iov[i];
    if (offset >= v.len) {
      offset -= v.len;
      continue;
    }
    const chunk = Math.min(v.len - offset, len - done);
    mem.slice(v.addr + offset, chunk).copy(dst, done);
    done += chunk;
    offset = 0;
  }
  return done;
}

/** Copy `src` into the vector starting `offset` bytes in; returns bytes copied. */
export function iov_from_buf(mem: GuestMemory, iov: readonly IoVec[], n: number, offset: number, src: Uint8Array): number {
  let done = 0;
  for (let i = 0; i < n && done < src.length; i++) {
    const v = iov[i];
    if (offset >= v.len) {
      offset -= v.len;
      continue;
    }
    const chunk = Math.min(v.len - offset, src.length - done);
    mem.writeBytes(v.addr + offset, src.subarray(done, done + chunk));
    done += chunk;
    offset = 0;
  }
  return done;
}

/**
 * iov_discard_front: the vector without its first `bytes` bytes. QEMU
 * discards in place and undoes it before completing; the machine takes a
 * copy instead, so the element's own sg lists never change.
 */
export function iov_discard_front(iov: readonly IoVec[], bytes: number): IoVec[] {
  const out: IoVec[] = [];
  for (const v of iov) {
    if (bytes >= v.len) {
      bytes -= v.len;
      continue;
    }
    out.push({ addr: v.addr + bytes, len: v.len - bytes });
    bytes = 0;
  }
  return out;
}

/** iov_discard_back: the vector without its last `bytes` bytes (a copy, as above). */
export function iov_discard_back(iov: readonly IoVec[], bytes: number): IoVec[] {
  const out = iov.map((v) => ({ addr: v.addr, len: v.len }));
  while (out.length > 0 && bytes > 0) {
    const last = out[out.length - 1];
    if (bytes >= last.len) {
      bytes -= last.len;
      out.pop();
    } else {
      last.len -= bytes;
      bytes = 0;
    }
  }
  return out;
}
