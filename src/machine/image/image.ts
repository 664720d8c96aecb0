/**
 * The disk image behind the simulated QEMU block layer: what a virtio-blk
 * request finally reads and writes. Either a generated 16 MiB image whose
 * every sector says which sector it is (so a read shows real, checkable
 * bytes), or a raw image file on the host, opened in one of three modes:
 * 'snapshot' (the default: the file is never written, changes live in an
 * in-memory copy-on-write overlay), 'readonly' (writes fail with -EPERM) or
 * 'writethrough' (writes reach the file, flush is fsync).
 *
 * Calls are synchronous and return 0 or a negative errno, as the block layer
 * expects; only opening an image throws (ImageError).
 */
import * as fs from 'node:fs';
import { CowOverlay } from './overlay';

export type ImageMode = 'snapshot' | 'readonly' | 'writethrough';

/** Opening an image failed; the message names the path and the reason. */
export class ImageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImageError';
  }
}

export interface BlockImage {
  readonly size: number;          // bytes; capacity in sectors = Math.floor(size / 512)
  readonly readOnly: boolean;     // true in 'readonly' mode
  readonly description: string;   // e.g. "generated 16 MiB image" or the path
  /** Read into buf from byte offset. Returns 0 or a negative errno (-EIO = -5 if out of range). */
  pread(buf: Uint8Array, offset: number): number;
  /** Returns 0 or negative errno: -EPERM (-1) in readonly mode, -EIO (-5) beyond the end. */
  pwrite(data: Uint8Array, offset: number): number;
  /** Make written data durable: fsync in writethrough mode, nothing otherwise. Returns 0 or -errno. */
  flush(): number;
  /** Zero (and, with unmap, deallocate — same visible effect) [offset, offset+len). Same errors as pwrite. */
  writeZeroes(offset: number, len: number, unmap: boolean): number;
  /** Discard: afterwards the range reads as zeroes (like a raw file with punch-hole). Same errors as pwrite. */
  discard(offset: number, len: number): number;
  close(): void;
}

export const GENERATED_IMAGE_SIZE = 16 * 1024 * 1024;

const SECTOR = 512;
const EPERM = 1;
const EIO = 5;
const EBADF = 9;

/** The line that fills sector `sector` of the generated image. */
function sectorLine(sector: number): string {
  return `virtio-debug sector ${sector}\n`;
}

/** The 512 bytes of sector `sector` of the generated image. */
export function generatedSectorText(sector: number): Buffer {
  if (!Number.isSafeInteger(sector) || sector < 0) {
    throw new RangeError(`generatedSectorText: bad sector ${sector}`);
  }
  return Buffer.from(cachedSector(sector));
}

/**
 * Recently generated sectors (shared, read-only): building a sector from its
 * text is the slow part of a read, and workloads reread the same sectors.
 */
const SECTOR_CACHE_SLOTS = 1024;
/** Direct-mapped: slot `sector % SLOTS` holds the last sector generated there. */
const cacheTag = new Float64Array(SECTOR_CACHE_SLOTS).fill(-1);
const cacheData = Buffer.alloc(SECTOR_CACHE_SLOTS * SECTOR);

/** Where sector `sector` sits in cacheData, generating it there first if needed. */
function cachedSectorOffset(sector: number): number {
  const slot = sector % SECTOR_CACHE_SLOTS;
  const off = slot * SECTOR;
  if (cacheTag[slot] !== sector) {
    const b = cacheData.subarray(off, off + SECTOR);
    // Write the line once, then double it until the sector is full (faster than fill with a string).
    let n = b.write(sectorLine(sector), 0, 'latin1');
    while (n < SECTOR) {
      b.copyWithin(n, 0, Math.min(n, SECTOR - n));
      n *= 2;
    }
    cacheTag[slot] = sector;
  }
  return off;
}

function cachedSector(sector: number): Buffer {
  const off = cachedSectorOffset(sector);
  return cacheData.subarray(off, off + SECTOR);
}

/** Fill dst[dstOff, dstOff+len) with the generated image's bytes at `offset`. */
function readGenerated(dst: Buffer, dstOff: number, len: number, offset: number): number {
  let pos = 0;
  while (pos < len) {
    const abs = offset + pos;
    const sector = Math.floor(abs / SECTOR);
    const within = abs - sector * SECTOR;
    const n = Math.min(SECTOR - within, len - pos);
    const off = cachedSectorOffset(sector);
    cacheData.copy(dst, dstOff + pos, off + within, off + within + n);
    pos += n;
  }
  return 0;
}

/** A Buffer view of the caller's bytes, without copying. */
function asBuffer(a: Uint8Array): Buffer {
  return Buffer.isBuffer(a) ? a : Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** The negative errno of a failed fs call, or -EIO if it has none. */
function negErrno(e: unknown): number {
  const errno = (e as { errno?: unknown }).errno;
  return typeof errno === 'number' && errno < 0 ? errno : -EIO;
}

function describeFsError(e: unknown): string {
  const code = (e as { code?: unknown }).code;
  switch (code) {
    case 'ENOENT': return 'no such file';
    case 'EISDIR': return 'is a directory';
    case 'ENOTDIR': return 'a component of the path is not a directory';
    case 'EACCES':
    case 'EPERM': return 'permission denied';
    case 'EROFS': return 'read-only file system';
    default: return e instanceof Error ? e.message : String(e);
  }
}

/**
 * The shared part of every image: range and mode checks, then the backend
 * operations, which may assume a valid range.
 */
abstract class ImageBase implements BlockImage {
  protected closed = false;

  constructor(
    readonly size: number,
    readonly readOnly: boolean,
    readonly description: string,
  ) {}

  protected abstract doRead(buf: Buffer, offset: number): number;
  protected abstract doWrite(data: Buffer, offset: number): number;
  protected abstract doZero(offset: number, len: number): number;
  protected abstract doFlush(): number;
  protected abstract doClose(): void;

  /** -EIO unless [offset, offset+len) lies within the image. */
  private checkRange(offset: number, len: number): number {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(len) || offset < 0 || len < 0) return -EIO;
    return offset + len <= this.size ? 0 : -EIO;
  }

  /** Checks for a request that changes the image: closed, read-only, then range. */
  private checkModify(offset: number, len: number): number {
    if (this.closed) return -EBADF;
    if (this.readOnly) return -EPERM;
    return this.checkRange(offset, len);
  }

  pread(buf: Uint8Array, offset: number): number {
    if (this.closed) return -EBADF;
    const r = this.checkRange(offset, buf.length);
    if (r < 0) return r;
    if (buf.length === 0) return 0;
    return this.doRead(asBuffer(buf), offset);
  }

  pwrite(data: Uint8Array, offset: number): number {
    const r = this.checkModify(offset, data.length);
    if (r < 0) return r;
    if (data.length === 0) return 0;
    return this.doWrite(asBuffer(data), offset);
  }

  flush(): number {
    if (this.closed) return -EBADF;
    return this.doFlush();
  }

  writeZeroes(offset: number, len: number, _unmap: boolean): number {
    // Unmapping is not visible to the guest: the range reads as zeroes either way.
    const r = this.checkModify(offset, len);
    if (r < 0) return r;
    return len === 0 ? 0 : this.doZero(offset, len);
  }

  discard(offset: number, len: number): number {
    const r = this.checkModify(offset, len);
    if (r < 0) return r;
    return len === 0 ? 0 : this.doZero(offset, len);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.doClose();
  }
}

/** The generated image, or a file in 'snapshot' or 'readonly' mode: a base under an overlay. */
class OverlayImage extends ImageBase {
  private readonly overlay: CowOverlay;

  constructor(
    size: number,
    readOnly: boolean,
    description: string,
    base: (dst: Buffer, dstOff: number, len: number, offset: number) => number,
    private readonly onClose: () => void,
  ) {
    super(size, readOnly, description);
    this.overlay = new CowOverlay(size, base);
  }

  protected doRead(buf: Buffer, offset: number): number { return this.overlay.read(buf, offset); }
  protected doWrite(data: Buffer, offset: number): number { return this.overlay.write(data, offset); }
  protected doZero(offset: number, len: number): number { return this.overlay.zero(offset, len); }
  protected doFlush(): number { return 0; }
  protected doClose(): void { this.onClose(); }
}

/** A file in 'writethrough' mode: every change reaches the file. */
class WritethroughImage extends ImageBase {
  private static zeroes: Buffer | undefined;

  constructor(private readonly fd: number, size: number, description: string) {
    super(size, false, description);
  }

  protected doRead(buf: Buffer, offset: number): number { return readFd(this.fd, buf, 0, buf.length, offset); }

  protected doWrite(data: Buffer, offset: number): number {
    try {
      let pos = 0;
      while (pos < data.length) {
        const n = fs.writeSync(this.fd, data, pos, data.length - pos, offset + pos);
        if (n <= 0) return -EIO;
        pos += n;
      }
      return 0;
    } catch (e) {
      return negErrno(e);
    }
  }

  protected doZero(offset: number, len: number): number {
    const zeroes = (WritethroughImage.zeroes ??= Buffer.alloc(1024 * 1024));
    let pos = 0;
    while (pos < len) {
      const n = Math.min(zeroes.length, len - pos);
      const r = this.doWrite(n === zeroes.length ? zeroes : zeroes.subarray(0, n), offset + pos);
      if (r < 0) return r;
      pos += n;
    }
    return 0;
  }

  protected doFlush(): number {
    try {
      fs.fsyncSync(this.fd);
      return 0;
    } catch (e) {
      return negErrno(e);
    }
  }

  protected doClose(): void { closeQuietly(this.fd); }
}

/** Read exactly len bytes at offset into dst[dstOff..]; bytes past a (shrunk) end read as zeroes. */
function readFd(fd: number, dst: Buffer, dstOff: number, len: number, offset: number): number {
  try {
    let pos = 0;
    while (pos < len) {
      const n = fs.readSync(fd, dst, dstOff + pos, len - pos, offset + pos);
      if (n <= 0) {
        dst.fill(0, dstOff + pos, dstOff + len);
        break;
      }
      pos += n;
    }
    return 0;
  } catch (e) {
    return negErrno(e);
  }
}

function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // Nothing useful to do: the image is going away.
  }
}

function openFile(path: string, mode: ImageMode): BlockImage {
  let fd: number;
  try {
    fd = fs.openSync(path, mode === 'writethrough' ? 'r+' : 'r');
  } catch (e) {
    throw new ImageError(`image ${path}: ${describeFsError(e)}`);
  }
  let size: number;
  try {
    const st = fs.fstatSync(fd);
    if (st.isDirectory()) throw new ImageError(`image ${path}: is a directory`);
    if (!st.isFile()) throw new ImageError(`image ${path}: not a regular file`);
    size = st.size;
  } catch (e) {
    closeQuietly(fd);
    throw e instanceof ImageError ? e : new ImageError(`image ${path}: ${describeFsError(e)}`);
  }
  if (mode === 'writethrough') return new WritethroughImage(fd, size, path);
  return new OverlayImage(
    size,
    mode === 'readonly',
    path,
    (dst, dstOff, len, offset) => readFd(fd, dst, dstOff, len, offset),
    () => closeQuietly(fd),
  );
}

/**
 * Open the image a machine runs on: the file at `path` in `mode` (default
 * 'snapshot'), or without a path the generated 16 MiB image.
 */
export function openImage(opts: { path?: string; mode?: ImageMode }): BlockImage {
  const mode = opts.mode ?? 'snapshot';
  if (mode !== 'snapshot' && mode !== 'readonly' && mode !== 'writethrough') {
    throw new ImageError(`image ${opts.path ?? '(generated)'}: unknown mode '${String(mode)}'`);
  }
  if (opts.path === undefined) {
    return new OverlayImage(
      GENERATED_IMAGE_SIZE,
      mode === 'readonly',
      `generated ${GENERATED_IMAGE_SIZE / (1024 * 1024)} MiB image`,
      readGenerated,
      () => {},
    );
  }
  return openFile(opts.path, mode);
}
