/**
 * What the guest kernel sees of the machine: RAM, a page/kmalloc allocator
 * over it, the virtio-mmio window and MMIO accessors. readl/writel are
 * generators because an MMIO access leaves the guest: QEMU (or KVM, for an
 * ioeventfd) handles it, with frames of its own that can stop.
 *
 * Also the block request the guest's block layer hands to the driver
 * (struct request with virtio_blk's per-request data, struct virtblk_req).
 */
import type { Co } from '../sim/sim';
import type { GuestMemory, Gpa } from '../memory/guest-memory';
import type { GuestAllocator } from '../memory/allocator';

export interface GuestPlatform {
  readonly mem: GuestMemory;
  /** kmalloc / dma_alloc_coherent / page allocator, all deterministic. */
  readonly alloc: GuestAllocator;
  /** Guest-physical base of the virtio-mmio register window. */
  readonly mmioBase: Gpa;
  readl(addr: Gpa): Co<number>;
  writel(value: number, addr: Gpa): Co<void>;
}

export type BlkOp = 'read' | 'write' | 'flush' | 'get-id' | 'discard' | 'write-zeroes';

/** blk_status_t values the driver can end a request with. */
export type BlkStatus = 'BLK_STS_OK' | 'BLK_STS_IOERR' | 'BLK_STS_NOTSUPP' | 'BLK_STS_RESOURCE';

/**
 * One block request (struct request + struct virtblk_req). `kaddr` is where
 * the per-request data lives in guest RAM; its first 16 bytes are the
 * virtio_blk_outhdr and `kaddr + 16` is the status byte, as in Linux where
 * both are fields of struct virtblk_req.
 */
export interface BlockRequest {
  readonly kaddr: Gpa;
  readonly tag: number;
  op: BlkOp;
  /** First 512-byte sector. */
  sector: number;
  /** Data buffer in guest RAM (the bio's pages), null for FLUSH. */
  data: Gpa | null;
  /** Bytes of data: a multiple of 512 for read/write; for discard/write-zeroes the range in bytes. */
  nr_bytes: number;
  /** write-zeroes may unmap (REQ_NOUNMAP clear). */
  unmap: boolean;
  /** Set when the request completes. */
  status: BlkStatus | null;
  /** The virtio status byte the device wrote, as read by virtblk_request_done. */
  virtioStatus: number | null;
  /** Called (outside any frame) once the request has completed. */
  onDone: ((rq: BlockRequest) => void) | null;
}
