/**
 * One split-ring descriptor as it sits in guest memory (VIRTIO 1.2 §2.7.5:
 * le64 addr, le32 len, le16 flags, le16 next). The device, the snapshot and
 * the fuzzer's reference all read descriptors through this one decoder.
 */
import type { GuestMemory, Gpa } from './guest-memory';
import { DESC_ADDR, DESC_FLAGS, DESC_LEN, DESC_NEXT, VRING_DESC_SIZE } from '../spec/virtio';

export interface VringDesc {
  addr: number;
  len: number;
  flags: number;
  next: number;
}

/** Descriptor `i` of the table at `table`; the caller checks that it lies in RAM. */
export function readDesc(mem: GuestMemory, table: Gpa, i: number): VringDesc {
  const a = table + i * VRING_DESC_SIZE;
  return { addr: mem.read64(a + DESC_ADDR), len: mem.read32(a + DESC_LEN), flags: mem.read16(a + DESC_FLAGS), next: mem.read16(a + DESC_NEXT) };
}
