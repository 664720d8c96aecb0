/**
 * Guest-physical memory: one flat little-endian address space that the guest
 * driver and the device share. Rings, headers, data buffers and status bytes
 * all live here; neither side keeps a private copy of what the other wrote.
 *
 * Addresses are guest-physical (GPA) numbers. An access outside RAM returns
 * `false` from the checked helpers so that the device can report "bogus
 * descriptor" the way QEMU does when address_space_map fails.
 */

export type Gpa = number;

export class GuestMemory {
  readonly ram: Buffer;
  readonly base: Gpa;

  constructor(size: number, base: Gpa = 0) {
    this.ram = Buffer.alloc(size);
    this.base = base;
  }

  get size(): number {
    return this.ram.length;
  }

  /** True when [addr, addr+len) lies entirely inside RAM. */
  valid(addr: Gpa, len: number): boolean {
    const off = addr - this.base;
    return Number.isInteger(off) && off >= 0 && len >= 0 && off + len <= this.ram.length;
  }

  private off(addr: Gpa, len: number): number {
    const off = addr - this.base;
    if (!(off >= 0 && off + len <= this.ram.length)) {
      throw new RangeError(`guest access outside RAM: 0x${addr.toString(16)}+${len}`);
    }
    return off;
  }

  read8(a: Gpa): number { return this.ram[this.off(a, 1)]; }
  read16(a: Gpa): number { return this.ram.readUInt16LE(this.off(a, 2)); }
  read32(a: Gpa): number { return this.ram.readUInt32LE(this.off(a, 4)); }
  read64(a: Gpa): number {
    const o = this.off(a, 8);
    // Guest addresses and sizes stay below 2^53 (DESIGN.md): a double holds them exactly.
    return this.ram.readUInt32LE(o) + this.ram.readUInt32LE(o + 4) * 0x100000000;
  }
  write8(a: Gpa, v: number): void { this.ram[this.off(a, 1)] = v & 0xff; }
  write16(a: Gpa, v: number): void { this.ram.writeUInt16LE(v & 0xffff, this.off(a, 2)); }
  write32(a: Gpa, v: number): void { this.ram.writeUInt32LE(v >>> 0, this.off(a, 4)); }
  write64(a: Gpa, v: number): void {
    const o = this.off(a, 8);
    this.ram.writeUInt32LE(v % 0x100000000 >>> 0, o);
    this.ram.writeUInt32LE(Math.floor(v / 0x100000000) >>> 0, o + 4);
  }

  /** A view (not a copy) of guest memory. */
  slice(a: Gpa, len: number): Buffer {
    const o = this.off(a, len);
    return this.ram.subarray(o, o + len);
  }
  readBytes(a: Gpa, len: number): Buffer {
    return Buffer.from(this.slice(a, len));
  }
  writeBytes(a: Gpa, data: Uint8Array): void {
    this.ram.set(data, this.off(a, data.length));
  }
  fill(a: Gpa, len: number, v: number): void {
    const o = this.off(a, len);
    this.ram.fill(v, o, o + len);
  }
}
