/**
 * Every virtio_error the device can reach from what a guest puts in a split
 * ring (FIDELITY §3.2: virtqueue_split_pop and its chain walk) and from the
 * virtio-blk request headers (§3.4: virtio_blk_handle_request), plus the
 * flags QEMU deliberately ignores. Each test lets the real guest publish one
 * request, stops the machine at virtio_blk_handle_output (published, not yet
 * popped), corrupts the ring or the descriptors in guest memory, runs to idle
 * and checks the outcome of §3.3: the device is broken with exactly QEMU's
 * message, NEEDS_RESET is set (VERSION_1 is negotiated) and a config
 * interrupt went out, the used ring did not move and the guest's requests
 * stay in flight. Ignored flags must leave the request completing normally.
 */
import { strict as assert } from 'node:assert';
import { boot, runToFunction, runToIdle } from '../helpers/machine';
import { Machine, RAM_SIZE } from '../../src/machine/machine';
import type { MachineOptions } from '../../src/machine/options';
import type { EventRecord } from '../../src/machine/run';
import type { VirtQueue } from '../../src/machine/qemu/hw/virtio/virtio';
import type { Gpa } from '../../src/machine/memory/guest-memory';
import { generatedSectorText } from '../../src/machine/image/image';
import * as V from '../../src/machine/spec/virtio';

const { VRING_DESC_F_NEXT: NEXT, VRING_DESC_F_WRITE: WRITE, VRING_DESC_F_INDIRECT: INDIRECT } = V;
/** Far outside guest RAM (64 MiB) and any device window. */
const NOWHERE = 0x7fff_0000_0000;

interface Desc { addr: number; len: number; flags: number; next: number }

function readDesc(m: Machine, table: Gpa, i: number): Desc {
  const a = table + i * V.VRING_DESC_SIZE;
  return {
    addr: m.mem.read64(a + V.DESC_ADDR),
    len: m.mem.read32(a + V.DESC_LEN),
    flags: m.mem.read16(a + V.DESC_FLAGS),
    next: m.mem.read16(a + V.DESC_NEXT),
  };
}

/** Overwrite some fields of descriptor `i` of the table at `table` (the ring's own, or an indirect one). */
function patchDesc(m: Machine, table: Gpa, i: number, patch: Partial<Desc>): void {
  const a = table + i * V.VRING_DESC_SIZE;
  if (patch.addr !== undefined) m.mem.write64(a + V.DESC_ADDR, patch.addr);
  if (patch.len !== undefined) m.mem.write32(a + V.DESC_LEN, patch.len);
  if (patch.flags !== undefined) m.mem.write16(a + V.DESC_FLAGS, patch.flags);
  if (patch.next !== undefined) m.mem.write16(a + V.DESC_NEXT, patch.next);
}

interface Stopped {
  m: Machine;
  events: EventRecord[];
  vq: VirtQueue;
  /** The head the guest published for the first request. */
  head: number;
  /** used.idx in guest memory at the stop. */
  usedIdx: number;
  /** events.length at the stop: what came after is the outcome. */
  mark: number;
}

/**
 * Boot `text`, run until the device enters virtio_blk_handle_output for the
 * first kick: the guest has published its request(s), the device has popped
 * nothing. Without indirect descriptors the chain is in the ring itself.
 */
function stopBeforePop(text: string, options: Partial<MachineOptions> = {}): Stopped {
  const { m, events } = boot(text, { indirectDesc: false, ...options });
  const ev = runToFunction(m, 'virtio_blk_handle_output');
  assert.ok(ev, 'the device was kicked');
  if (options.ioeventfd !== false) assert.equal(ev.thread.name, 'main-loop', 'ioeventfd: the main loop handles the queue');
  const vq = m.vdev.vq[0];
  assert.equal(vq.inuse, 0, 'nothing popped yet');
  assert.notEqual(m.mem.read16(vq.avail + V.AVAIL_IDX), vq.last_avail_idx, 'the guest published a request');
  const head = m.mem.read16(vq.avail + V.availRingOff(vq.last_avail_idx % vq.num));
  return { m, events, vq, head, usedIdx: m.mem.read16(vq.used + V.USED_IDX), mark: events.length };
}

/** The ring chain from `head`, as the guest wrote it (no loops expected). */
function ringChain(s: Stopped): number[] {
  const out = [s.head];
  for (let d = readDesc(s.m, s.vq.desc, s.head); d.flags & NEXT; d = readDesc(s.m, s.vq.desc, d.next)) out.push(d.next);
  return out;
}

/** Guest address of the head's indirect table (indirectDesc: true). */
function indirectTable(s: Stopped): { table: Gpa; n: number } {
  const d = readDesc(s.m, s.vq.desc, s.head);
  assert.ok(d.flags & INDIRECT, 'the head refers to an indirect table');
  return { table: d.addr, n: d.len / V.VRING_DESC_SIZE };
}

const after = (s: Stopped, fn: string) => s.events.slice(s.mark).filter((e) => e.fn === fn);

/** Run to idle and check §3.3: broken with exactly `message`, NEEDS_RESET, config irq, nothing more processed. */
function expectBroken(s: Stopped, message: string): void {
  const { m, vq } = s;
  runToIdle(m);
  try {
    assert.ok(m.idle, 'the machine went idle');
    assert.equal(m.vdev.broken, true, 'device broken');
    assert.deepEqual(m.vdev.errors, [message]);
    const dev = m.snapshot().device;
    assert.ok(V.hasFeature(dev.guest_features, V.VIRTIO_F_VERSION_1), 'VERSION_1 negotiated');
    assert.equal(dev.status & V.VIRTIO_CONFIG_S_NEEDS_RESET, V.VIRTIO_CONFIG_S_NEEDS_RESET, 'NEEDS_RESET set');
    assert.equal(after(s, 'virtio_error').length, 1, 'one virtio_error');
    assert.equal(after(s, 'virtio_notify_config').length, 1, 'a config interrupt was sent');
    assert.equal(m.mem.read16(vq.used + V.USED_IDX), s.usedIdx, 'used.idx unchanged');
    assert.equal(vq.used_idx, s.usedIdx, "the device's used_idx unchanged");
    assert.ok(m.guest.requests.length > 0);
    for (const r of m.guest.requests) assert.equal(r.status, null, `${r.statement}: still in flight`);
    assert.equal(m.guest.inflight, m.guest.requests.length);
  } finally {
    m.close();
  }
}

/** Run to idle and check the request(s) completed as if nothing had been touched. */
function expectNormal(s: Stopped, check: (m: Machine) => void): void {
  const { m } = s;
  runToIdle(m);
  try {
    assert.equal(m.vdev.broken, false, `device broken: ${m.vdev.errors.join('; ')}`);
    assert.deepEqual(m.vdev.errors, []);
    assert.equal(m.vdev.status & V.VIRTIO_CONFIG_S_NEEDS_RESET, 0);
    for (const r of m.guest.requests) {
      assert.equal(r.virtio_status, V.VIRTIO_BLK_S_OK, r.statement);
      assert.equal(r.status, 'BLK_STS_OK', r.statement);
    }
    assert.equal(m.mem.read16(s.vq.used + V.USED_IDX), (s.usedIdx + m.guest.requests.length) & 0xffff);
    check(m);
  } finally {
    m.close();
  }
}

const readBack = (sector: number) => (m: Machine) =>
  assert.deepEqual(Buffer.from(m.guest.requests[0].data_hex ?? '', 'hex'), generatedSectorText(sector));

describe('virtio errors: the avail ring (virtqueue_split_pop)', () => {
  it('Guest moved used index: avail.idx more than num ahead of last_avail_idx', () => {
    // §3.2 / QEMU virtqueue_num_heads: (u16)(avail.idx − last_avail_idx) > num is a guest bug. (Real QEMU makes this check in
    // virtqueue_num_heads, which virtqueue_get_avail_bytes uses; 7.2's virtqueue_split_pop does not call it. FIDELITY puts it in pop.)
    // num + 1 ahead, and one "behind" (65535 ahead, mod 2^16).
    for (const ahead of [(num: number) => num + 1, () => 0xffff]) {
      const s = stopBeforePop('read 0 512\n');
      assert.equal(s.vq.last_avail_idx, 0);
      const idx = ahead(s.vq.num);
      s.m.mem.write16(s.vq.avail + V.AVAIL_IDX, idx);
      expectBroken(s, `Guest moved used index from 0 to ${idx}`);
      assert.equal(s.vq.last_avail_idx, 0, 'no head was taken');
    }
  });

  it('Virtqueue size exceeded: a head offered while num elements are already in flight', () => {
    // §3.2 / QEMU virtqueue_split_pop: inuse >= num → "Virtqueue size exceeded". Honest route: 4 requests fill a 4-entry ring,
    // the device pops all 4 (they stay in flight until the block layer completes them), then the guest offers a 5th head.
    const { m, events } = boot('batch {\n read 0 512\n read 8 512\n read 16 512\n read 24 512\n}\n', { queueSize: 4, indirectDesc: true });
    const ev = runToFunction(m, 'virtio_queue_empty', 'main-loop'); // handle_vq's do-while test, after the inner pop loop
    assert.ok(ev);
    const vq = m.vdev.vq[0];
    assert.equal(vq.num, 4);
    assert.equal(vq.inuse, 4, 'four elements popped and in flight');
    assert.equal(vq.last_avail_idx, 4);
    // A 5th head (descriptor 0 again: QEMU does not check for duplicates) in slot 4 % 4, and avail.idx moved on.
    m.mem.write16(vq.avail + V.availRingOff(4 % vq.num), 0);
    m.mem.write16(vq.avail + V.AVAIL_IDX, 5);
    const s: Stopped = { m, events, vq, head: 0, usedIdx: 0, mark: events.length };
    expectBroken(s, 'Virtqueue size exceeded');
    assert.equal(vq.last_avail_idx, 4, 'the 5th head was not taken');
    // The four reads finished in the block layer, but a broken device publishes nothing (virtqueue_fill/flush).
    assert.equal(after(s, 'virtio_blk_req_complete').length, 4, 'all four completed in the block layer');
    assert.equal(vq.inuse, 0, 'inuse drops back as the elements are flushed');
  });

  it('Guest says index %u is available: an avail ring entry >= num', () => {
    // §3.2 / QEMU virtqueue_get_head: head >= num is fatal; last_avail_idx has already moved past the entry.
    const s = stopBeforePop('read 0 512\n');
    s.m.mem.write16(s.vq.avail + V.availRingOff(0), s.vq.num);
    expectBroken(s, `Guest says index ${s.vq.num} is available`);
    assert.equal(s.vq.last_avail_idx, 1);
  });
});

describe('virtio errors: the descriptor chain (virtqueue_split_pop)', () => {
  it('Invalid size for indirect buffer table: len 0', () => {
    // §3.2 / QEMU virtqueue_split_pop: an INDIRECT head needs len > 0.
    const s = stopBeforePop('read 0 512\n', { indirectDesc: true });
    indirectTable(s);
    patchDesc(s.m, s.vq.desc, s.head, { len: 0 });
    expectBroken(s, 'Invalid size for indirect buffer table');
  });

  it('Invalid size for indirect buffer table: len not a multiple of 16', () => {
    // §3.2 / QEMU virtqueue_split_pop: an INDIRECT head's len must be a whole number of 16-byte descriptors.
    const s = stopBeforePop('read 0 512\n', { indirectDesc: true });
    assert.equal(indirectTable(s).n, 3);
    patchDesc(s.m, s.vq.desc, s.head, { len: 40 });
    expectBroken(s, 'Invalid size for indirect buffer table');
  });

  it('Cannot map indirect buffer: the table runs off the end of guest RAM', () => {
    // §3.2 / QEMU address_space_cache_init: a table that cannot be mapped whole (here it starts in RAM and ends past it).
    const s = stopBeforePop('read 0 512\n', { indirectDesc: true });
    patchDesc(s.m, s.vq.desc, s.head, { addr: RAM_SIZE - 16 });
    expectBroken(s, 'Cannot map indirect buffer');
  });

  it('Incorrect order for descriptors: a readable descriptor after a writable one', () => {
    // §3.2 / spec 2.7.4.2: all device-readable descriptors come before the device-writable ones.
    const s = stopBeforePop('read 0 512\n');
    const [, data, status] = ringChain(s);
    assert.ok(readDesc(s.m, s.vq.desc, data).flags & WRITE);
    patchDesc(s.m, s.vq.desc, status, { flags: 0 }); // the status byte, now device-readable, after the writable data
    expectBroken(s, 'Incorrect order for descriptors');
  });

  it('Incorrect order for descriptors: inside an indirect table too', () => {
    // §3.2: the same rule holds for the table's chain.
    const s = stopBeforePop('read 0 512\n', { indirectDesc: true });
    const { table } = indirectTable(s);
    patchDesc(s.m, table, 2, { flags: 0 });
    expectBroken(s, 'Incorrect order for descriptors');
  });

  it('virtio: zero sized buffers are not allowed: a descriptor with len 0', () => {
    // §3.2 / QEMU virtqueue_map_desc: len 0 is refused.
    const s = stopBeforePop('read 0 512\n');
    patchDesc(s.m, s.vq.desc, ringChain(s)[1], { len: 0 });
    expectBroken(s, 'virtio: zero sized buffers are not allowed');
  });

  it('virtio: bogus descriptor or out of resources: a buffer outside guest RAM', () => {
    // §3.2 / QEMU virtqueue_map_desc: dma_memory_map fails. (QEMU 7.2 maps the first ≤4 KiB of a non-RAM buffer through its one
    // bounce buffer, so the buffer here is 8 KiB: its second page finds the bounce buffer busy and fails in QEMU too.)
    const s = stopBeforePop('read 0 8192\n');
    const data = ringChain(s)[1];
    assert.equal(readDesc(s.m, s.vq.desc, data).len, 8192, 'the data is one descriptor');
    patchDesc(s.m, s.vq.desc, data, { addr: NOWHERE });
    expectBroken(s, 'virtio: bogus descriptor or out of resources');
  });

  it('Looped descriptor: next points back into the chain', () => {
    // §3.2 / QEMU virtqueue_split_pop: more than `max` descriptors in one chain means a loop.
    const s = stopBeforePop('read 0 512\n');
    const [, data, status] = ringChain(s);
    // status → data → status → ...: all writable, so only the loop check can stop it.
    patchDesc(s.m, s.vq.desc, status, { flags: WRITE | NEXT, next: data });
    expectBroken(s, 'Looped descriptor');
  });

  it('Looped descriptor: a loop inside an indirect table is bounded by the table size', () => {
    // §3.2: in a table, max is len / 16.
    const s = stopBeforePop('read 0 512\n', { indirectDesc: true });
    const { table } = indirectTable(s);
    patchDesc(s.m, table, 2, { flags: WRITE | NEXT, next: 2 });
    expectBroken(s, 'Looped descriptor');
  });

  it('Desc next is %u: next >= num', () => {
    // §3.2 / QEMU virtqueue_split_read_next_desc: next must index the table.
    const s = stopBeforePop('read 0 512\n');
    patchDesc(s.m, s.vq.desc, ringChain(s)[1], { next: s.vq.num });
    expectBroken(s, `Desc next is ${s.vq.num}`);
  });

  it('Desc next is %u: inside an indirect table, next >= the table size', () => {
    // §3.2: in a table, max is len / 16 (3 here), not the ring size.
    const s = stopBeforePop('read 0 512\n', { indirectDesc: true });
    const { table, n } = indirectTable(s);
    patchDesc(s.m, table, 1, { next: n });
    expectBroken(s, `Desc next is ${n}`);
  });

  it('virtio: too many write descriptors in indirect table: a table whose chain needs more than 1024 sg entries', () => {
    // QEMU virtqueue_map_desc: an element holds at most VIRTQUEUE_MAX_SIZE (1024) sg entries, readable and writable together.
    const s = stopBeforePop('read 0 512\n', { indirectDesc: true });
    const { table: guestTable } = indirectTable(s);
    const hdr = readDesc(s.m, guestTable, 0);
    const data = readDesc(s.m, guestTable, 1);
    // A bigger table in guest RAM: the guest's header, then 1100 one-byte writable buffers, all chained (no loop: max is 1101).
    const n = 1101;
    const table = s.m.alloc.alloc(n * V.VRING_DESC_SIZE, 16);
    patchDesc(s.m, table, 0, { ...hdr, flags: NEXT, next: 1 });
    for (let i = 1; i < n; i++) patchDesc(s.m, table, i, { addr: data.addr + (i % 512), len: 1, flags: i < n - 1 ? WRITE | NEXT : WRITE, next: i + 1 });
    patchDesc(s.m, s.vq.desc, s.head, { addr: table, len: n * V.VRING_DESC_SIZE });
    expectBroken(s, 'virtio: too many write descriptors in indirect table');
  });

  it('INDIRECT on a non-head descriptor is ignored: the buffer is used as data, the request completes', () => {
    // §3.2 / QEMU virtqueue_split_pop: INDIRECT is only honoured on the head. Followed, the 512 data bytes would be read as 32
    // descriptors of text (an error); ignored, the descriptor is the (writable) data buffer it always was.
    const s = stopBeforePop('read 8 512\n');
    const data = ringChain(s)[1];
    patchDesc(s.m, s.vq.desc, data, { flags: NEXT | WRITE | INDIRECT });
    expectNormal(s, readBack(8));
  });

  it('INDIRECT inside an indirect table is not followed: the request completes', () => {
    // §3.2 / spec 2.7.5.3.1: a driver MUST NOT set INDIRECT in a table; QEMU does not follow it (one level only).
    const s = stopBeforePop('read 8 512\n', { indirectDesc: true });
    const { table } = indirectTable(s);
    patchDesc(s.m, table, 1, { flags: NEXT | WRITE | INDIRECT });
    expectNormal(s, readBack(8));
  });

  it('WRITE and NEXT on the INDIRECT head are ignored: the table alone makes the chain', () => {
    // Spec 2.7.5.3.2: the device ignores WRITE on a descriptor that refers to a table; QEMU never reads the head's next.
    const s = stopBeforePop('read 8 512\n', { indirectDesc: true });
    patchDesc(s.m, s.vq.desc, s.head, { flags: INDIRECT | WRITE | NEXT, next: s.vq.num + 7 });
    expectNormal(s, readBack(8));
  });
});

describe('virtio errors: virtio-blk request headers (virtio_blk_handle_request)', () => {
  it('virtio-blk missing headers: a chain with no writable descriptor (header only)', () => {
    // §3.4 / QEMU virtio_blk_handle_request: out_num < 1 or in_num < 1.
    const s = stopBeforePop('read 0 512\n');
    patchDesc(s.m, s.vq.desc, s.head, { flags: 0 }); // the chain ends after the 16-byte header
    expectBroken(s, 'virtio-blk missing headers');
    assert.equal(after(s, 'virtio_blk_handle_request').length, 1, 'popped, then refused by virtio-blk');
    assert.equal(s.vq.inuse, 0, 'the element was detached');
  });

  it('virtio-blk missing headers: a chain with no readable descriptor', () => {
    // §3.4: out_num < 1 — the header is device-writable, so there is no outhdr to read.
    const s = stopBeforePop('read 0 512\n');
    patchDesc(s.m, s.vq.desc, s.head, { flags: NEXT | WRITE });
    expectBroken(s, 'virtio-blk missing headers');
  });

  it('virtio-blk missing headers: the status descriptor of a write is read-only (every descriptor readable)', () => {
    // §3.4: a write's header and data are readable; with the status byte readable too, in_num is 0.
    const s = stopBeforePop('write 8 "status?"\n');
    const chain = ringChain(s);
    assert.equal(chain.length, 3);
    patchDesc(s.m, s.vq.desc, chain[2], { flags: 0 });
    expectBroken(s, 'virtio-blk missing headers');
  });

  it('virtio-blk request outhdr too short: a header descriptor of 8 bytes', () => {
    // §3.4 / QEMU iov_to_buf: the 16-byte outhdr must fit in the readable part (a read has only the header readable).
    const s = stopBeforePop('read 0 512\n');
    patchDesc(s.m, s.vq.desc, s.head, { len: 8 });
    expectBroken(s, 'virtio-blk request outhdr too short');
  });

  it('virtio-blk request inhdr too short is unreachable: a 0-byte status descriptor fails the zero-size check first', () => {
    // §3.4 checks the last in iov has ≥ 1 byte, but virtqueue_map_desc never makes an empty iov: len 0 is refused during the pop,
    // so "inhdr too short" cannot happen with a split ring. What the guest sees is the zero-size error.
    const s = stopBeforePop('read 0 512\n');
    patchDesc(s.m, s.vq.desc, ringChain(s)[2], { len: 0 });
    expectBroken(s, 'virtio: zero sized buffers are not allowed');
    assert.equal(after(s, 'virtio_blk_handle_request').length, 0, 'virtio-blk never saw the request');
  });

  it('virtio-blk discard/write_zeroes header too short: a discard range of 8 bytes', () => {
    // QEMU virtio_blk_handle_request: the 16-byte {sector, num_sectors, flags} range must follow the outhdr.
    const s = stopBeforePop('discard 64 8\n');
    const chain = ringChain(s);
    assert.equal(readDesc(s.m, s.vq.desc, chain[1]).len, 16);
    patchDesc(s.m, s.vq.desc, chain[1], { len: 8 });
    expectBroken(s, 'virtio-blk discard/write_zeroes header too short');
  });
});

describe('virtio errors: a broken device processes nothing more', () => {
  for (const ioeventfd of [true, false]) {
    it(`a further valid request is not processed; the guest's requests stay in flight (ioeventfd=${ioeventfd})`, () => {
      // §3.3 / QEMU virtio_queue_notify(_vq): a broken device ignores notifications; the guest is never answered.
      const s = stopBeforePop('read 0 512\nread 8 512\nread 16 512\n', { ioeventfd });
      s.m.mem.write16(s.vq.avail + V.availRingOff(0), s.vq.num + 1);
      expectBroken(s, `Guest says index ${s.vq.num + 1} is available`);
      const ring = s.events.slice(s.mark);
      assert.equal(s.m.guest.requests.length, 3, 'the guest issued every request');
      assert.ok(ring.filter((e) => e.fn === 'vm_notify').length >= 1, 'the guest kicked again');
      assert.equal(ring.filter((e) => e.fn === 'virtio_blk_handle_output').length, 0, 'the kick was dropped');
      assert.equal(ring.filter((e) => e.fn === 'virtqueue_pop').length, 1, 'only the failing pop');
      assert.equal(s.m.mem.read16(s.vq.avail + V.AVAIL_IDX), 3, 'all three published');
      assert.equal(s.vq.last_avail_idx, 1);
    });
  }
});
