/**
 * A sparse, in-memory copy-on-write overlay over a read-only base image: the
 * place where a snapshot image (and the generated image) keeps what the guest
 * wrote, discarded or zeroed, while the base is never touched.
 *
 * The overlay is kept in 4 KiB chunks. A chunk is either a private copy
 * (written data, materialised from the base on first write) or part of a
 * zeroed run of whole chunks; anything else reads through to the base.
 * Zeroed runs are stored as a sorted list of chunk ranges, so discarding a
 * whole multi-gigabyte disk (as mkfs does) costs one entry, not millions.
 *
 * Callers check ranges; every method here assumes 0 <= offset, offset + len <= size.
 */

export const OVERLAY_CHUNK = 4096;

/** Reads `len` bytes at `offset` of the base into dst[dstOff..]. Returns 0 or -errno. */
export type BaseReader = (dst: Buffer, dstOff: number, len: number, offset: number) => number;

/** A set of disjoint, non-adjacent half-open ranges [start, end) of chunk indices, sorted. */
class RangeSet {
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];

  /** Index of the last range whose start <= x, or -1. */
  private floor(x: number): number {
    let lo = 0;
    let hi = this.starts.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.starts[mid] <= x) { found = mid; lo = mid + 1; } else { hi = mid - 1; }
    }
    return found;
  }

  has(x: number): boolean {
    const i = this.floor(x);
    return i >= 0 && x < this.ends[i];
  }

  /** Add [start, end), merging with every range it overlaps or touches. */
  add(start: number, end: number): void {
    if (start >= end) return;
    let first = this.floor(start);
    if (first < 0 || this.ends[first] < start) first++;
    let last = first;
    while (last < this.starts.length && this.starts[last] <= end) last++;
    // Ranges [first, last) overlap or touch [start, end).
    if (last > first) {
      start = Math.min(start, this.starts[first]);
      end = Math.max(end, this.ends[last - 1]);
    }
    this.starts.splice(first, last - first, start);
    this.ends.splice(first, last - first, end);
  }

  get count(): number { return this.starts.length; }
}

export class CowOverlay {
  private readonly chunks = new Map<number, Buffer>();
  private readonly zeroed = new RangeSet();

  constructor(readonly size: number, private readonly base: BaseReader) {}

  /** Number of private chunks and zeroed runs held (for tests and diagnostics). */
  get footprint(): { chunks: number; zeroRuns: number } {
    return { chunks: this.chunks.size, zeroRuns: this.zeroed.count };
  }

  read(dst: Buffer, offset: number): number {
    const len = dst.length;
    let pos = 0;
    // A run of consecutive bytes that come from the base, read in one call.
    let baseStart = -1;
    const flushBase = (upTo: number): number => {
      if (baseStart < 0) return 0;
      const r = this.base(dst, baseStart, upTo - baseStart, offset + baseStart);
      baseStart = -1;
      return r;
    };
    while (pos < len) {
      const abs = offset + pos;
      const index = Math.floor(abs / OVERLAY_CHUNK);
      const within = abs - index * OVERLAY_CHUNK;
      const n = Math.min(OVERLAY_CHUNK - within, len - pos);
      const chunk = this.chunks.get(index);
      if (chunk !== undefined) {
        const r = flushBase(pos);
        if (r < 0) return r;
        chunk.copy(dst, pos, within, within + n);
      } else if (this.zeroed.has(index)) {
        const r = flushBase(pos);
        if (r < 0) return r;
        dst.fill(0, pos, pos + n);
      } else if (baseStart < 0) {
        baseStart = pos;
      }
      pos += n;
    }
    return flushBase(len);
  }

  write(data: Buffer, offset: number): number {
    let pos = 0;
    while (pos < data.length) {
      const abs = offset + pos;
      const index = Math.floor(abs / OVERLAY_CHUNK);
      const within = abs - index * OVERLAY_CHUNK;
      const n = Math.min(OVERLAY_CHUNK - within, data.length - pos);
      const chunk = this.chunkForWrite(index, within === 0 && n === this.chunkLength(index));
      if (typeof chunk === 'number') return chunk;
      data.copy(chunk, within, pos, pos + n);
      pos += n;
    }
    return 0;
  }

  /** Make [offset, offset+len) read as zeroes. */
  zero(offset: number, len: number): number {
    if (len <= 0) return 0;
    const end = offset + len;
    const firstFull = Math.ceil(offset / OVERLAY_CHUNK);
    // The image's last chunk may be short; it counts as full if the range reaches the end.
    const lastFullEnd = end === this.size ? Math.ceil(end / OVERLAY_CHUNK) : Math.floor(end / OVERLAY_CHUNK);
    if (firstFull >= lastFullEnd) {
      return this.zeroPartial(offset, end);
    }
    let r = this.zeroPartial(offset, firstFull * OVERLAY_CHUNK);
    if (r < 0) return r;
    r = this.zeroPartial(Math.min(lastFullEnd * OVERLAY_CHUNK, end), end);
    if (r < 0) return r;
    this.dropChunks(firstFull, lastFullEnd);
    this.zeroed.add(firstFull, lastFullEnd);
    return 0;
  }

  /** Zero [start, end) through private chunks; the range lies within at most a few chunks. */
  private zeroPartial(start: number, end: number): number {
    let abs = start;
    while (abs < end) {
      const index = Math.floor(abs / OVERLAY_CHUNK);
      const within = abs - index * OVERLAY_CHUNK;
      const n = Math.min(OVERLAY_CHUNK - within, end - abs);
      if (!this.zeroed.has(index) || this.chunks.has(index)) {
        const chunk = this.chunkForWrite(index, false);
        if (typeof chunk === 'number') return chunk;
        chunk.fill(0, within, within + n);
      }
      abs += n;
    }
    return 0;
  }

  private dropChunks(first: number, end: number): void {
    if (end - first < this.chunks.size) {
      for (let i = first; i < end; i++) this.chunks.delete(i);
    } else {
      for (const i of this.chunks.keys()) {
        if (i >= first && i < end) this.chunks.delete(i);
      }
    }
  }

  private chunkLength(index: number): number {
    return Math.min(OVERLAY_CHUNK, this.size - index * OVERLAY_CHUNK);
  }

  /** The private copy of a chunk, made on first use; `overwrite` skips reading the base. */
  private chunkForWrite(index: number, overwrite: boolean): Buffer | number {
    let chunk = this.chunks.get(index);
    if (chunk !== undefined) return chunk;
    const len = this.chunkLength(index);
    if (overwrite || this.zeroed.has(index)) {
      chunk = Buffer.alloc(len);
    } else {
      chunk = Buffer.allocUnsafe(len);
      const r = this.base(chunk, 0, len, index * OVERLAY_CHUNK);
      if (r < 0) return r;
    }
    this.chunks.set(index, chunk);
    return chunk;
  }
}
