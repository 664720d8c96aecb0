/**
 * The guest side (Linux virtio_ring / virtio_mmio / virtio_blk / blk-mq) in
 * isolation: a fake virtio-mmio device plays the other side by reading and
 * writing guest memory directly, and the generators are stepped to the end
 * by a tiny driver loop. Checks ring layout, descriptor bytes, indices and
 * notification decisions against FIDELITY.md §1, §4, §6 and §8.
 */
import { strict as assert } from 'node:assert';
import { Co, S, Sim, SimThread, activate } from '../../src/machine/sim/sim';
import { allPoints } from '../../src/machine/sim/frames';
import { GuestMemory, Gpa } from '../../src/machine/memory/guest-memory';
import { GuestAllocator } from '../../src/machine/memory/allocator';
import type { GuestPlatform } from '../../src/machine/linux/platform';
import * as V from '../../src/machine/spec/virtio';
import {
  Scatterlist,
  VringVirtqueue,
  sg_init_one,
  virtqueue_add_sgs,
  virtqueue_disable_cb,
  virtqueue_get_buf,
  virtqueue_kick_prepare,
  vring_create_virtqueue,
  VirtioDevice,
  ENOSPC,
} from '../../src/machine/linux/drivers/virtio/virtio_ring';
import { VirtioMmioDevice } from '../../src/machine/linux/drivers/virtio/virtio_mmio';
import { VirtioBlk } from '../../src/machine/linux/drivers/block/virtio_blk';
import { Request, blk_mq_alloc_request, blk_mq_submit_requests } from '../../src/machine/linux/block/blk-mq';
import { guest_interrupt, guest_probe, virtio_blk_of } from '../../src/machine/linux';

const MMIO_BASE = 0xd0000000;
const RAM = 16 << 20;

function newSim(): Sim {
  const s = new Sim();
  activate(s);
  s.thread = new SimThread(0, 'vCPU 0');
  s.ctx = s.thread.base;
  return s;
}

/** Step a generator to its end, ignoring STOPs; every frame must have been left. */
function run<T>(g: Co<T>): T {
  let r = g.next();
  while (!r.done) r = g.next();
  assert.equal(S.ctx.depth, 0, 'frame imbalance');
  return r.value;
}

const u16 = (mem: GuestMemory, a: Gpa) => mem.read16(a);
function desc(mem: GuestMemory, table: Gpa, i: number) {
  const d = table + 16 * i;
  return { addr: mem.read64(d), len: mem.read32(d + 8), flags: mem.read16(d + 12), next: mem.read16(d + 14) };
}

const DEFAULT_FEATURES =
  V.bit(V.VIRTIO_F_VERSION_1) +
  V.bit(V.VIRTIO_RING_F_INDIRECT_DESC) +
  V.bit(V.VIRTIO_RING_F_EVENT_IDX) +
  V.bit(V.VIRTIO_BLK_F_SEG_MAX) +
  V.bit(V.VIRTIO_BLK_F_BLK_SIZE) +
  V.bit(V.VIRTIO_BLK_F_FLUSH) +
  V.bit(V.VIRTIO_BLK_F_DISCARD) +
  V.bit(V.VIRTIO_BLK_F_WRITE_ZEROES) +
  V.bit(V.VIRTIO_BLK_F_SIZE_MAX) + // offered but...
  V.bit(V.VIRTIO_F_RING_PACKED); // ...not accepted: the guest models the split ring only

interface FakeOpts {
  features?: number;
  queueNumMax?: number;
  refuseFeatures?: boolean;
  status?: (type: number) => number;
}

/** A virtio-mmio block device that works only on guest memory and its registers. */
class FakeDevice {
  readonly disk = Buffer.alloc(1 << 20);
  features: number;
  queueNumMax: number;
  featSel = 0;
  drvFeatSel = 0;
  driverFeatures = [0, 0];
  status = 0;
  statusWrites: number[] = [];
  queueSel = 0;
  num = 0;
  ready = 0;
  descLo = 0; descHi = 0; availLo = 0; availHi = 0; usedLo = 0; usedHi = 0;
  notifies: number[] = [];
  isr = 0;
  acks: number[] = [];
  lastAvail = 0;
  usedIdx = 0;
  config = Buffer.alloc(V.BLK_CFG_SIZE + 4);

  constructor(readonly mem: GuestMemory, readonly opts: FakeOpts = {}) {
    this.features = opts.features ?? DEFAULT_FEATURES;
    this.queueNumMax = opts.queueNumMax ?? 256;
    for (let i = 0; i < this.disk.length; i++) this.disk[i] = (i * 7 + (i >> 9)) & 0xff;
    this.config.writeUInt32LE(this.disk.length / 512, V.BLK_CFG_CAPACITY);
    this.config.writeUInt32LE(126, V.BLK_CFG_SEG_MAX);
    this.config.writeUInt32LE(512, V.BLK_CFG_BLK_SIZE);
    this.config.writeUInt32LE(0x80000, V.BLK_CFG_SIZE_MAX);
    this.config.writeUInt32LE(0x3fffff, V.BLK_CFG_MAX_DISCARD_SECTORS);
    this.config.writeUInt32LE(1, V.BLK_CFG_MAX_DISCARD_SEG);
  }

  get desc(): Gpa { return this.descHi * 2 ** 32 + this.descLo; }
  get avail(): Gpa { return this.availHi * 2 ** 32 + this.availLo; }
  get used(): Gpa { return this.usedHi * 2 ** 32 + this.usedLo; }

  readl(off: number): number {
    switch (off) {
      case V.VIRTIO_MMIO_MAGIC_VALUE: return V.VIRTIO_MMIO_MAGIC;
      case V.VIRTIO_MMIO_VERSION: return 2;
      case V.VIRTIO_MMIO_DEVICE_ID: return V.VIRTIO_ID_BLOCK;
      case V.VIRTIO_MMIO_VENDOR_ID: return 0x554d4551;
      case V.VIRTIO_MMIO_DEVICE_FEATURES:
        return this.featSel === 0 ? this.features % 2 ** 32 : Math.floor(this.features / 2 ** 32);
      case V.VIRTIO_MMIO_QUEUE_NUM_MAX: return this.queueSel === 0 ? this.queueNumMax : 0;
      case V.VIRTIO_MMIO_QUEUE_READY: return this.ready;
      case V.VIRTIO_MMIO_INTERRUPT_STATUS: return this.isr;
      case V.VIRTIO_MMIO_STATUS: return this.status;
      case V.VIRTIO_MMIO_CONFIG_GENERATION: return 0;
    }
    if (off >= V.VIRTIO_MMIO_CONFIG) return this.config.readUInt32LE(off - V.VIRTIO_MMIO_CONFIG);
    throw new Error(`readl 0x${off.toString(16)}`);
  }

  writel(v: number, off: number): void {
    switch (off) {
      case V.VIRTIO_MMIO_DEVICE_FEATURES_SEL: this.featSel = v; return;
      case V.VIRTIO_MMIO_DRIVER_FEATURES_SEL: this.drvFeatSel = v; return;
      case V.VIRTIO_MMIO_DRIVER_FEATURES: this.driverFeatures[this.drvFeatSel] = v; return;
      case V.VIRTIO_MMIO_QUEUE_SEL: this.queueSel = v; return;
      case V.VIRTIO_MMIO_QUEUE_NUM: this.num = v; return;
      case V.VIRTIO_MMIO_QUEUE_READY: this.ready = v; return;
      case V.VIRTIO_MMIO_QUEUE_DESC_LOW: this.descLo = v; return;
      case V.VIRTIO_MMIO_QUEUE_DESC_HIGH: this.descHi = v; return;
      case V.VIRTIO_MMIO_QUEUE_AVAIL_LOW: this.availLo = v; return;
      case V.VIRTIO_MMIO_QUEUE_AVAIL_HIGH: this.availHi = v; return;
      case V.VIRTIO_MMIO_QUEUE_USED_LOW: this.usedLo = v; return;
      case V.VIRTIO_MMIO_QUEUE_USED_HIGH: this.usedHi = v; return;
      case V.VIRTIO_MMIO_QUEUE_NOTIFY: this.notifies.push(v); return;
      case V.VIRTIO_MMIO_INTERRUPT_ACK: this.acks.push(v); this.isr &= ~v; return;
      case V.VIRTIO_MMIO_STATUS:
        this.statusWrites.push(v);
        if (this.opts.refuseFeatures) v &= ~V.VIRTIO_CONFIG_S_FEATURES_OK;
        this.status = v;
        if (v === 0) { this.ready = 0; this.lastAvail = 0; this.usedIdx = 0; }
        return;
    }
    throw new Error(`writel 0x${off.toString(16)}`);
  }

  /** Pop one available chain (direct or indirect) into readable and writable segments. */
  pop(): { head: number; out: [Gpa, number][]; in: [Gpa, number][] } | null {
    const mem = this.mem;
    if (this.lastAvail === mem.read16(this.avail + 2)) return null;
    const head = mem.read16(this.avail + 4 + 2 * (this.lastAvail % this.num));
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    // With EVENT_IDX negotiated, ask to be kicked for the next one, as QEMU's pop does.
    if (this.driverFeatures[0] & (1 << V.VIRTIO_RING_F_EVENT_IDX)) mem.write16(this.used + 4 + 8 * this.num, this.lastAvail);
    const out: [Gpa, number][] = [];
    const inn: [Gpa, number][] = [];
    let table = this.desc;
    let i = head;
    let d = desc(mem, table, i);
    if (d.flags & V.VRING_DESC_F_INDIRECT) {
      table = d.addr;
      i = 0;
      d = desc(mem, table, 0);
    }
    for (;;) {
      (d.flags & V.VRING_DESC_F_WRITE ? inn : out).push([d.addr, d.len]);
      if (!(d.flags & V.VRING_DESC_F_NEXT)) break;
      i = d.next;
      d = desc(mem, table, i);
    }
    return { head, out, in: inn };
  }

  /** Serve every available request, in order, and raise the interrupt. */
  process(order?: (heads: number[]) => number[]): number[] {
    const mem = this.mem;
    const done: { head: number; len: number }[] = [];
    for (let e = this.pop(); e !== null; e = this.pop()) {
      const [hdr] = e.out;
      const type = mem.read32(hdr[0]);
      const sector = mem.read64(hdr[0] + 8);
      const [stAddr, stLen] = e.in[e.in.length - 1];
      const status = stAddr + stLen - 1;
      let len = 1;
      if (type === V.VIRTIO_BLK_T_IN) {
        let off = sector * 512;
        for (const [a, l] of e.in.slice(0, -1)) {
          mem.writeBytes(a, this.disk.subarray(off, off + l));
          off += l;
          len += l;
        }
      } else if (type === V.VIRTIO_BLK_T_OUT) {
        let off = sector * 512;
        for (const [a, l] of e.out.slice(1)) {
          mem.readBytes(a, l).copy(this.disk, off);
          off += l;
        }
      } else if (type === V.VIRTIO_BLK_T_GET_ID) {
        const id = Buffer.alloc(20);
        id.write('fake-serial');
        mem.writeBytes(e.in[0][0], id);
        len = 21;
      }
      mem.write8(status, this.opts.status ? this.opts.status(type) : V.VIRTIO_BLK_S_OK);
      done.push({ head: e.head, len });
    }
    const heads = done.map((d) => d.head);
    const ord = order ? order(heads) : heads;
    for (const h of ord) this.push(h, done.find((d) => d.head === h)!.len);
    if (ord.length > 0) this.isr |= V.VIRTIO_MMIO_INT_VRING;
    return ord;
  }

  push(id: number, len: number): void {
    const e = this.used + 4 + 8 * (this.usedIdx % this.num);
    this.mem.write32(e, id);
    this.mem.write32(e + 4, len);
    this.usedIdx = (this.usedIdx + 1) & 0xffff;
    this.mem.write16(this.used + 2, this.usedIdx);
  }
}

interface Machine {
  mem: GuestMemory;
  alloc: GuestAllocator;
  dev: FakeDevice;
  vm_dev: VirtioMmioDevice;
  vblk: VirtioBlk;
  vq: VringVirtqueue;
}

function boot(opts: FakeOpts = {}, queueSize = 0): Machine {
  newSim();
  const mem = new GuestMemory(RAM);
  const alloc = new GuestAllocator(0x100000, RAM);
  const dev = new FakeDevice(mem, opts);
  const platform: GuestPlatform = {
    mem,
    alloc,
    mmioBase: MMIO_BASE,
    *readl(addr: Gpa): Co<number> {
      return dev.readl(addr - MMIO_BASE);
    },
    *writel(value: number, addr: Gpa): Co<void> {
      dev.writel(value, addr - MMIO_BASE);
    },
  };
  const vm_dev = run(guest_probe(platform, { queueSize }));
  const vblk = virtio_blk_of(vm_dev)!;
  return { mem, alloc, dev, vm_dev, vblk, vq: vblk !== null ? vblk.vqs[0].vq : (null as unknown as VringVirtqueue) };
}

function submit(m: Machine, rqs: Request[]): void {
  run(blk_mq_submit_requests(m.vblk.q!, rqs));
}

function read(m: Machine, sector: number, bytes: number): Request {
  return blk_mq_alloc_request(m.vblk.q!, 'read', sector, m.alloc.alloc(bytes, 4096), bytes);
}

/** The device serves what is available, then the guest takes the interrupt. */
function complete(m: Machine, order?: (heads: number[]) => number[]): void {
  m.dev.process(order);
  run(guest_interrupt(m.vm_dev));
}

const NO_INDIRECT = DEFAULT_FEATURES - V.bit(V.VIRTIO_RING_F_INDIRECT_DESC);
const NO_EVENT_IDX = DEFAULT_FEATURES - V.bit(V.VIRTIO_RING_F_EVENT_IDX);

describe('guest virtio ring (Linux side)', () => {
  describe('probe and handshake', () => {
    it('walks the status byte 0, ACK, DRIVER, FEATURES_OK, DRIVER_OK and negotiates the AND of both sides', () => {
      const m = boot();
      assert.deepEqual(m.dev.statusWrites, [0, 1, 3, 11, 15]);
      const want =
        V.bit(V.VIRTIO_F_VERSION_1) +
        V.bit(V.VIRTIO_RING_F_INDIRECT_DESC) +
        V.bit(V.VIRTIO_RING_F_EVENT_IDX) +
        V.bit(V.VIRTIO_BLK_F_SEG_MAX) +
        V.bit(V.VIRTIO_BLK_F_BLK_SIZE) +
        V.bit(V.VIRTIO_BLK_F_FLUSH) +
        V.bit(V.VIRTIO_BLK_F_DISCARD) +
        V.bit(V.VIRTIO_BLK_F_WRITE_ZEROES) +
        V.bit(V.VIRTIO_BLK_F_SIZE_MAX);
      assert.equal(m.vm_dev.features, want);
      assert.equal(m.dev.driverFeatures[0] + m.dev.driverFeatures[1] * 2 ** 32, want);
      assert.equal(m.vm_dev.device_features, DEFAULT_FEATURES);
      assert.equal(m.vblk.capacity, 2048);
      assert.equal(m.vblk.sg_elems, 126);
      assert.equal(m.vblk.max_segment_size, 0x80000);
      assert.equal(m.vblk.max_discard_sectors, 0x3fffff);
      assert.equal(m.vq.num, 256);
      assert.equal(m.dev.num, 256);
      assert.equal(m.dev.ready, 1);
      assert.equal(m.vblk.queue_depth, 256);
      assert.ok(m.vq.indirect && m.vq.event);
    });

    it('takes INDIRECT_DESC and EVENT_IDX only when the device offers them; depth halves without indirect', () => {
      const m = boot({ features: NO_INDIRECT - V.bit(V.VIRTIO_RING_F_EVENT_IDX) });
      assert.ok(!m.vq.indirect && !m.vq.event);
      assert.equal(m.vblk.queue_depth, 128);
    });

    it('gives up with FAILED when the device refuses FEATURES_OK', () => {
      const m = boot({ refuseFeatures: true });
      assert.equal(m.vblk, null);
      assert.ok(m.dev.status & V.VIRTIO_CONFIG_S_FAILED);
      assert.ok(m.vm_dev.dmesg.some((l) => l.startsWith('virtio: device refuses features')));
      assert.equal(m.dev.ready, 0);
    });

    it('uses a smaller ring when asked (QueueNum = min(QueueNumMax, requested))', () => {
      const m = boot({ queueNumMax: 1024 }, 64);
      assert.equal(m.vq.num, 64);
      assert.equal(m.dev.num, 64);
    });
  });

  describe('ring layout', () => {
    for (const n of [4, 256, 1024]) {
      it(`N=${n}: avail = desc + 16N, used at the next 64-byte boundary, as the registers say`, () => {
        const m = boot({ queueNumMax: n });
        const vq = m.vq;
        const used = Math.ceil((vq.desc + 16 * n + 6 + 2 * n) / 64) * 64;
        assert.equal(vq.desc % 4096, 0);
        assert.equal(vq.avail, vq.desc + 16 * n);
        assert.equal(vq.used, used);
        assert.deepEqual([m.dev.desc, m.dev.avail, m.dev.used], [vq.desc, vq.avail, vq.used]);
        if (n === 256) assert.deepEqual([vq.avail - vq.desc, vq.used - vq.desc], [4096, 4672]);
        assert.equal(vq.num_free, n);
        assert.equal(vq.free_head, 0);
      });
    }
  });

  describe('adding buffers', () => {
    it('without INDIRECT_DESC a read is descriptors 0,1,2 = {16,NEXT,1} {len,NEXT|WRITE,2} {1,WRITE,3}', () => {
      const m = boot({ features: NO_INDIRECT });
      const rq = read(m, 8, 4096);
      submit(m, [rq]);
      const { mem, vq } = m;
      assert.equal(rq.tag, 0);
      assert.deepEqual(desc(mem, vq.desc, 0), { addr: rq.kaddr, len: 16, flags: V.VRING_DESC_F_NEXT, next: 1 });
      assert.deepEqual(desc(mem, vq.desc, 1), { addr: rq.data, len: 4096, flags: V.VRING_DESC_F_NEXT | V.VRING_DESC_F_WRITE, next: 2 });
      assert.deepEqual(desc(mem, vq.desc, 2), { addr: rq.kaddr + 16, len: 1, flags: V.VRING_DESC_F_WRITE, next: 3 });
      assert.deepEqual(desc(mem, vq.desc, 3), { addr: 0, len: 0, flags: 0, next: 0 });
      // The outhdr: type IN, ioprio 0, sector 8.
      assert.deepEqual([mem.read32(rq.kaddr), mem.read32(rq.kaddr + 4), mem.read64(rq.kaddr + 8)], [0, 0, 8]);
      assert.equal(u16(mem, vq.avail + 4), 0);
      assert.equal(u16(mem, vq.avail + 2), 1);
      assert.deepEqual([vq.avail_idx_shadow, vq.num_free, vq.free_head, vq.num_added], [1, 253, 3, 0]);
      assert.deepEqual(m.dev.notifies, [0]);

      const w = blk_mq_alloc_request(m.vblk.q!, 'write', 16, m.alloc.alloc(512, 512), 512);
      submit(m, [w]);
      assert.deepEqual(desc(mem, vq.desc, 4), { addr: w.data, len: 512, flags: V.VRING_DESC_F_NEXT, next: 5 });
      assert.equal(u16(mem, vq.avail + 6), 3);
    });

    it('with INDIRECT_DESC a request is ring descriptor 0 = {table, 48, INDIRECT, next 1} and avail slots hold 0', () => {
      const m = boot();
      const { mem, vq } = m;
      const before = m.alloc.inUse;
      const rq = read(m, 0, 4096);
      submit(m, [rq]);
      const d0 = desc(mem, vq.desc, 0);
      assert.deepEqual({ ...d0, addr: 0 }, { addr: 0, len: 48, flags: V.VRING_DESC_F_INDIRECT, next: 1 });
      assert.deepEqual(desc(mem, d0.addr, 0), { addr: rq.kaddr, len: 16, flags: V.VRING_DESC_F_NEXT, next: 1 });
      assert.deepEqual(desc(mem, d0.addr, 1), { addr: rq.data, len: 4096, flags: V.VRING_DESC_F_NEXT | V.VRING_DESC_F_WRITE, next: 2 });
      assert.deepEqual(desc(mem, d0.addr, 2), { addr: rq.kaddr + 16, len: 1, flags: V.VRING_DESC_F_WRITE, next: 3 });
      for (let i = 1; i < 4; i++) assert.deepEqual(desc(mem, vq.desc, i), { addr: 0, len: 0, flags: 0, next: 0 });
      assert.deepEqual([vq.num_free, vq.free_head], [255, 1]);
      complete(m);
      assert.equal(rq.status, 'BLK_STS_OK');
      assert.equal(m.alloc.inUse, before + 4096, 'the indirect table was freed on detach');
      // The next request reuses descriptor 0; its avail slot (1) holds 0 too.
      const rq2 = read(m, 8, 4096);
      submit(m, [rq2]);
      assert.equal(u16(mem, vq.avail + 4 + 2), 0);
      assert.equal(desc(mem, vq.desc, 0).len, 48);
      assert.equal(u16(mem, vq.avail + 2), 2);
    });

    it('publishes avail->idx on every add, and one batch gets one kick', () => {
      const m = boot();
      const { mem, vq } = m;
      const hdr = m.alloc.alloc(16, 16);
      const st = m.alloc.alloc(1, 1);
      const a = new Scatterlist();
      const b = new Scatterlist();
      for (let k = 1; k <= 3; k++) {
        const r = run(virtqueue_add_sgs(vq, [sg_init_one(a, hdr, 16), sg_init_one(b, st, 1)], 1, 1, { k }));
        assert.equal(r, 0);
        assert.equal(u16(mem, vq.avail + 2), k);
        assert.equal(vq.num_added, k);
      }
      assert.equal(run(virtqueue_kick_prepare(vq)), true);
      assert.equal(vq.num_added, 0);

      const m2 = boot();
      submit(m2, [read(m2, 0, 4096), read(m2, 8, 4096), read(m2, 16, 4096)]);
      assert.equal(u16(m2.mem, m2.vq.avail + 2), 3);
      assert.deepEqual(m2.dev.notifies, [0]);
    });

    it('returns -ENOSPC when the ring is full, notifying if there is something to read', () => {
      const m = boot({ features: NO_INDIRECT, queueNumMax: 4 });
      const { vq } = m;
      const s = [new Scatterlist(), new Scatterlist(), new Scatterlist()];
      const sgs = [sg_init_one(s[0], 0x1000, 16), sg_init_one(s[1], 0x2000, 512), sg_init_one(s[2], 0x3000, 1)];
      assert.equal(run(virtqueue_add_sgs(vq, sgs, 1, 2, 'a')), 0);
      assert.equal(vq.num_free, 1);
      assert.equal(run(virtqueue_add_sgs(vq, sgs, 1, 2, 'b')), -ENOSPC);
      assert.deepEqual(m.dev.notifies, [0]);
      assert.equal(run(virtqueue_add_sgs(vq, sgs, 0, 3, 'c')), -ENOSPC);
      assert.deepEqual(m.dev.notifies, [0], 'no forced notify without out sgs');
      assert.equal(vq.num_free, 1);
    });
  });

  describe('kick_prepare', () => {
    function added(vq: VringVirtqueue, shadow: number, n: number): void {
      vq.avail_idx_shadow = shadow & 0xffff;
      vq.num_added = n;
    }
    it('with EVENT_IDX asks vring_need_event(avail_event, new, old), across the 16-bit wrap', () => {
      const m = boot();
      const { mem, vq } = m;
      const availEvent = vq.used + 4 + 8 * vq.num;
      const cases: [number, number, number, boolean][] = [
        // [new shadow, num_added, avail_event, expected]
        [3, 3, 0, true],
        [3, 3, 2, true],
        [3, 3, 3, false],
        [1, 2, 0xffff, true], // old 0xffff, new 1: event at old
        [1, 2, 0, true], // event between, across the wrap
        [1, 2, 1, false], // event at new: not yet
        [0, 1, 0xffff, true],
        [0, 1, 0xfffe, false], // already past
      ];
      for (const [shadow, n, ev, want] of cases) {
        added(vq, shadow, n);
        mem.write16(availEvent, ev);
        assert.equal(run(virtqueue_kick_prepare(vq)), want, `shadow ${shadow} added ${n} avail_event ${ev}`);
        assert.equal(vq.num_added, 0);
      }
    });

    it('without EVENT_IDX asks !(used->flags & NO_NOTIFY), ignoring avail_event', () => {
      const m = boot({ features: NO_EVENT_IDX });
      const { mem, vq } = m;
      mem.write16(vq.used + 4 + 8 * vq.num, 0x1234);
      added(vq, 0, 1);
      assert.equal(run(virtqueue_kick_prepare(vq)), true);
      mem.write16(vq.used, V.VRING_USED_F_NO_NOTIFY);
      added(vq, 1, 1);
      assert.equal(run(virtqueue_kick_prepare(vq)), false);
    });
  });

  describe('get_buf and completion', () => {
    it('completes a read: data in place, status OK, len 4097, ring back to its idle state', () => {
      const m = boot();
      const { mem, vq } = m;
      const rq = read(m, 8, 4096);
      let done = 0;
      rq.onDone = () => done++;
      submit(m, [rq]);
      complete(m);
      assert.equal(done, 1);
      assert.equal(rq.status, 'BLK_STS_OK');
      assert.equal(rq.virtioStatus, 0);
      assert.ok(mem.readBytes(rq.data!, 4096).equals(m.dev.disk.subarray(4096, 8192)));
      assert.equal(mem.read32(vq.used + 8), 4097);
      assert.deepEqual([vq.last_used_idx, vq.num_free, vq.free_head, vq.broken], [1, 256, 0, false]);
      assert.deepEqual(m.dev.acks, [V.VIRTIO_MMIO_INT_VRING]);
      // Idle with EVENT_IDX: used_event = avail.idx = used.idx = avail_event, flags 0.
      assert.equal(u16(mem, vq.avail + 4 + 2 * vq.num), 1);
      assert.equal(u16(mem, vq.avail), 0);
      assert.equal(m.vblk.q!.inflight, 0);
    });

    it('get_buf writes used_event = last_used_idx while callbacks are enabled', () => {
      const m = boot();
      const { mem, vq } = m;
      submit(m, [read(m, 0, 512), read(m, 1, 512)]);
      m.dev.process();
      const usedEvent = vq.avail + 4 + 2 * vq.num;
      mem.write16(usedEvent, 0x7777);
      assert.notEqual(run(virtqueue_get_buf(vq, null)), null);
      assert.equal(u16(mem, usedEvent), 1);
      assert.notEqual(run(virtqueue_get_buf(vq, null)), null);
      assert.equal(u16(mem, usedEvent), 2);
      assert.equal(run(virtqueue_get_buf(vq, null)), null);
    });

    it('disable_cb: with EVENT_IDX parks used_event, without sets NO_INTERRUPT; enable_cb undoes both', () => {
      const m = boot();
      run(virtqueue_disable_cb(m.vq));
      assert.equal(u16(m.mem, m.vq.avail), 0);
      assert.equal(u16(m.mem, m.vq.avail + 4 + 2 * m.vq.num), 0);
      const m2 = boot({ features: NO_EVENT_IDX });
      const { mem, vq } = m2;
      run(virtqueue_disable_cb(vq));
      assert.equal(u16(mem, vq.avail), V.VRING_AVAIL_F_NO_INTERRUPT);
      submit(m2, [read(m2, 0, 512)]);
      complete(m2);
      // The interrupt path re-enabled: flag clear, and used_event written even without EVENT_IDX.
      assert.equal(u16(mem, vq.avail), 0);
      assert.equal(u16(mem, vq.avail + 4 + 2 * vq.num), 1);
    });

    it('a used id out of range breaks the queue with "id %u out of range"', () => {
      const m = boot();
      const rq = read(m, 0, 512);
      submit(m, [rq]);
      m.dev.pop();
      m.dev.push(300, 513);
      m.dev.isr |= 1;
      run(guest_interrupt(m.vm_dev));
      assert.equal(m.vq.broken, true);
      assert.deepEqual(m.vq.errors, ['id 300 out of range']);
      assert.equal(rq.status, null);
      assert.equal(m.vblk.q!.inflight, 1);
      // A broken queue fails new requests at once.
      const rq2 = read(m, 0, 512);
      submit(m, [rq2]);
      assert.equal(rq2.status, 'BLK_STS_IOERR');
    });

    it('a used id that is not a head breaks the queue with "id %u is not a head!"', () => {
      const m = boot({ features: NO_INDIRECT });
      submit(m, [read(m, 0, 512)]);
      m.dev.pop();
      m.dev.push(1, 513);
      assert.equal(run(virtqueue_get_buf(m.vq, null)), null);
      assert.deepEqual(m.vq.errors, ['id 1 is not a head!']);
      assert.ok(m.vm_dev.dmesg.includes('req.0:id 1 is not a head!'));
    });

    it('returns descriptors to the free list; next in guest memory is written only when a descriptor is used', () => {
      const m = boot({ features: NO_INDIRECT, queueNumMax: 16 });
      const { mem, vq } = m;
      submit(m, [read(m, 0, 512), read(m, 1, 512)]);
      assert.deepEqual([vq.free_head, vq.num_free], [6, 10]);
      complete(m); // heads 0 then 3: each chain goes to the front of the free list
      assert.deepEqual([vq.free_head, vq.num_free], [3, 16]);
      assert.deepEqual([vq.extra_next[5], vq.extra_next[2]], [0, 6]); // 3→4→5→0→1→2→6
      // Detaching wrote nothing: the last descriptors still carry the links they had when used.
      assert.deepEqual([desc(mem, vq.desc, 2).next, desc(mem, vq.desc, 5).next], [3, 6]);
      submit(m, [read(m, 2, 512)]);
      assert.deepEqual(desc(mem, vq.desc, 5), { addr: mem.read64(vq.desc + 16 * 3) + 16, len: 1, flags: V.VRING_DESC_F_WRITE, next: 0 });
      assert.equal(vq.free_head, 0);
      submit(m, [read(m, 3, 512)]);
      assert.equal(desc(mem, vq.desc, 2).next, 6);
      assert.deepEqual([vq.free_head, vq.num_free], [6, 10]);
      complete(m, (heads) => heads.reverse()); // out of order: head 0 first, then 3
      assert.deepEqual([vq.free_head, vq.extra_next[5], vq.extra_next[2]], [3, 0, 6]);
    });
  });

  describe('blk-mq and virtio_blk', () => {
    it('a full ring stops the hw queue (DEV_RESOURCE) and the completion restarts it', () => {
      const m = boot({ features: NO_INDIRECT, queueNumMax: 4 });
      assert.equal(m.vblk.queue_depth, 2);
      const a = read(m, 0, 512);
      const b = read(m, 1, 512);
      submit(m, [a, b]);
      const hctx = m.vblk.q!.hctxs[0];
      assert.equal(hctx.stopped, true);
      assert.deepEqual(hctx.dispatch, [b]);
      // add_split's forced notify (out sgs), then virtqueue_kick on the error path.
      assert.deepEqual(m.dev.notifies, [0, 0]);
      complete(m);
      assert.equal(a.status, 'BLK_STS_OK');
      assert.equal(hctx.stopped, false);
      assert.equal(b.status, null);
      assert.equal(m.dev.notifies.length, 3, 'kblockd re-ran the queue and kicked');
      complete(m);
      assert.equal(b.status, 'BLK_STS_OK');
      assert.equal(m.vblk.q!.inflight, 0);
    });

    it('requests beyond the queue depth wait for a tag', () => {
      const m = boot({ queueNumMax: 4 });
      const rqs = [0, 1, 2, 3, 4, 5].map((s) => read(m, s, 512));
      submit(m, rqs);
      assert.deepEqual(rqs.map((r) => r.tag), [0, 1, 2, 3, -1, -1]);
      assert.equal(m.vblk.q!.inflight, 6);
      complete(m);
      assert.deepEqual(rqs.map((r) => r.tag).slice(4), [3, 2]);
      complete(m);
      assert.ok(rqs.every((r) => r.status === 'BLK_STS_OK'));
      assert.equal(m.vblk.q!.inflight, 0);
    });

    it('flush, get-id, discard and write-zeroes build the right headers, payloads and directions', () => {
      const m = boot({ features: NO_INDIRECT, status: (t) => (t === V.VIRTIO_BLK_T_DISCARD ? V.VIRTIO_BLK_S_UNSUPP : t === V.VIRTIO_BLK_T_FLUSH ? V.VIRTIO_BLK_S_IOERR : 0) });
      const { mem, vq } = m;
      const q = m.vblk.q!;
      const flush = blk_mq_alloc_request(q, 'flush', 99, null, 0);
      submit(m, [flush]);
      assert.deepEqual([mem.read32(flush.kaddr), mem.read64(flush.kaddr + 8)], [V.VIRTIO_BLK_T_FLUSH, 0]);
      assert.deepEqual(desc(mem, vq.desc, 1), { addr: flush.kaddr + 16, len: 1, flags: V.VRING_DESC_F_WRITE, next: 2 });
      complete(m);
      assert.deepEqual([flush.status, flush.virtioStatus], ['BLK_STS_IOERR', 1]);

      const id = blk_mq_alloc_request(q, 'get-id', 0, null, 0);
      submit(m, [id]);
      complete(m);
      assert.equal(id.status, 'BLK_STS_OK');
      assert.equal(mem.readBytes(id.data!, 11).toString(), 'fake-serial');

      const before = m.alloc.inUse;
      const disc = blk_mq_alloc_request(q, 'discard', 64, null, 8 * 512);
      submit(m, [disc]);
      const d1 = desc(mem, vq.desc, 1);
      assert.equal(d1.flags, V.VRING_DESC_F_NEXT, 'the range is device-readable');
      assert.deepEqual([mem.read64(d1.addr), mem.read32(d1.addr + 8), mem.read32(d1.addr + 12)], [64, 8, 0]);
      assert.equal(mem.read32(disc.kaddr), V.VIRTIO_BLK_T_DISCARD);
      complete(m);
      assert.equal(disc.status, 'BLK_STS_NOTSUPP');
      assert.equal(m.alloc.inUse, before, 'the payload was freed');

      const wz = blk_mq_alloc_request(q, 'write-zeroes', 128, null, 4 * 512, true);
      submit(m, [wz]);
      const w1 = desc(mem, vq.desc, 1);
      assert.deepEqual([mem.read32(wz.kaddr), mem.read64(w1.addr), mem.read32(w1.addr + 8), mem.read32(w1.addr + 12)], [13, 128, 4, 1]);
      complete(m);
      assert.equal(wz.status, 'BLK_STS_OK');
    });

    it('a config interrupt is acknowledged and reads Status (NEEDS_RESET shows)', () => {
      const m = boot();
      m.dev.status |= V.VIRTIO_CONFIG_S_NEEDS_RESET;
      m.dev.isr = V.VIRTIO_MMIO_INT_CONFIG;
      run(guest_interrupt(m.vm_dev));
      assert.deepEqual(m.dev.acks, [V.VIRTIO_MMIO_INT_CONFIG]);
      assert.equal(m.vm_dev.config_changes, 1);
      assert.equal(m.vm_dev.needs_reset, true);
    });
  });

  describe('event points', () => {
    it('stop at the avail write, wmb, avail idx write, kick mb, get_buf rmb and used_event write', () => {
      const m = boot();
      const names = ['avail_write', 'wmb', 'avail_idx_write', 'mb', 'rmb', 'used_event_write'];
      const fns = ['virtqueue_add_split', 'virtqueue_kick_prepare_split', 'virtqueue_get_buf_ctx_split'];
      const pts = allPoints().filter((p) => names.includes(p.name) && fns.includes(p.fn.name));
      assert.equal(pts.length, 6);
      const seen: string[] = [];
      S.hook = (ev) => {
        seen.push(`${ev.fn.name}:${ev.point!.name}`);
        return true;
      };
      for (const p of pts) S.armPoint(p, true);
      try {
        let stops = 0;
        const step = (g: Co<unknown>) => {
          for (let r = g.next(); !r.done; r = g.next()) stops++;
        };
        step(blk_mq_submit_requests(m.vblk.q!, [read(m, 0, 512)]));
        m.dev.process();
        // Callbacks enabled: get_buf publishes used_event.
        step(virtqueue_get_buf(m.vq, null));
        assert.equal(stops, seen.length);
        assert.deepEqual(seen, [
          'virtqueue_add_split:avail_write',
          'virtqueue_add_split:wmb',
          'virtqueue_add_split:avail_idx_write',
          'virtqueue_kick_prepare_split:mb',
          'virtqueue_get_buf_ctx_split:rmb',
          'virtqueue_get_buf_ctx_split:used_event_write',
        ]);
        for (const p of pts) assert.ok(p.line > p.fn.line, `${p.name} is inside ${p.fn.name}`);
      } finally {
        for (const p of pts) S.armPoint(p, false);
        S.hook = null;
      }
    });

    it('vring_create_virtqueue rejects a size that is not a power of two', () => {
      const m = boot();
      const vdev: VirtioDevice = m.vm_dev;
      const vq = run(vring_create_virtqueue(1, 100, 64, vdev, function* () { return true; }, null, 'x'));
      assert.equal(vq, null);
      assert.ok(vdev.dmesg.includes('Bad virtqueue length 100'));
    });
  });
});
