/**
 * Split-ring layout and notification rules, checked on the whole machine:
 * the Linux-style guest driver and the QEMU-style device run together and
 * every assertion reads (or pokes) the bytes they share in guest memory.
 * Covers where the descriptor table, avail and used rings sit for several
 * queue sizes and what a request's descriptors look like (FIDELITY §6, §8),
 * vring_need_event across the 16-bit wrap, EVENT_IDX kick and interrupt
 * suppression on both sides, the flag-based rules without EVENT_IDX
 * (VRING_USED_F_NO_NOTIFY, VRING_AVAIL_F_NO_INTERRUPT), more than 65,536
 * requests through one queue, and when the driver uses indirect
 * descriptors (FIDELITY §1.3-4, §3.1-2, §3.7-8, §4).
 */
import { strict as assert } from 'node:assert';
import { boot, runToFunction, runToIdle } from '../helpers/machine';
import type { EventRecord } from '../../src/machine/run';
import { Machine } from '../../src/machine/machine';
import { validateOptions } from '../../src/machine/options';
import { parseScenario } from '../../src/machine/scenario/parser';
import * as V from '../../src/machine/spec/virtio';

const NEXT = V.VRING_DESC_F_NEXT;
const WRITE = V.VRING_DESC_F_WRITE;
const INDIRECT = V.VRING_DESC_F_INDIRECT;

interface Desc { addr: number; len: number; flags: number; next: number }

/** Descriptor `i` of the table at `table`, decoded by hand from guest memory: {le64 addr, le32 len, le16 flags, le16 next}. */
function desc(m: Machine, table: number, i: number): Desc {
  const a = table + 16 * i;
  return { addr: m.mem.read64(a), len: m.mem.read32(a + 8), flags: m.mem.read16(a + 12), next: m.mem.read16(a + 14) };
}

/** Queue 0's ring addresses and size, as the device was told them. */
function ring(m: Machine): { desc: number; avail: number; used: number; num: number } {
  const vq = m.vdev.vq[0];
  return { desc: vq.desc, avail: vq.avail, used: vq.used, num: vq.num };
}

// The ring fields at the offsets FIDELITY §6 gives, read straight from guest memory.
const availFlags = (m: Machine): number => m.mem.read16(ring(m).avail);
const availIdx = (m: Machine): number => m.mem.read16(ring(m).avail + 2);
const availRing = (m: Machine, i: number): number => m.mem.read16(ring(m).avail + 4 + 2 * i);
const usedEvent = (m: Machine): number => m.mem.read16(ring(m).avail + 4 + 2 * ring(m).num);
const usedFlags = (m: Machine): number => m.mem.read16(ring(m).used);
const usedIdx = (m: Machine): number => m.mem.read16(ring(m).used + 2);
const usedElem = (m: Machine, i: number): { id: number; len: number } => ({
  id: m.mem.read32(ring(m).used + 4 + 8 * i),
  len: m.mem.read32(ring(m).used + 4 + 8 * i + 4),
});
const availEvent = (m: Machine): number => m.mem.read16(ring(m).used + 4 + 8 * ring(m).num);

/** The formula of FIDELITY §1.4, written out again here: (u16)(new − e − 1) < (u16)(new − old). */
function needEvent(e: number, nw: number, old: number): boolean {
  return ((nw - e - 1) & 0xffff) < ((nw - old) & 0xffff);
}

function count(events: readonly EventRecord[], fn: string, after = 0, before = Infinity): number {
  return events.filter((e) => e.fn === fn && e.seq > after && e.seq < before).length;
}

/** Seq numbers of the scenario statements' frames, in order. */
function statementSeqs(events: readonly EventRecord[]): number[] {
  return events.filter((e) => e.fn === 'scenario_statement').map((e) => e.seq);
}

function mustStop(m: Machine, fn: string, thread?: string): number {
  const ev = runToFunction(m, fn, thread);
  assert.ok(ev, `expected the machine to reach ${fn} before going idle`);
  return ev.seq;
}

function allOk(m: Machine): void {
  const bad = m.guest.requests.filter((r) => r.status !== 'BLK_STS_OK');
  assert.deepEqual(bad.map((r) => `${r.statement}: ${r.status}`), []);
  assert.equal(m.guest.inflight, 0);
  assert.equal(m.vdev.broken, false, `device broken: ${m.vdev.errors.join('; ')}`);
}

const WRITE_4K = `"${'w'.repeat(4096)}"`;

describe('ring layout (FIDELITY §6, §8)', () => {
  // Offsets from the descriptor table, worked out by hand: avail = 16·N; used = the first
  // multiple of 64 at or after avail + 6 + 2·N.
  //   N=16:   avail 256,   avail ends at 256+6+32     = 294   → used 320
  //   N=256:  avail 4096,  avail ends at 4096+6+512   = 4614  → used 4672
  //   N=1024: avail 16384, avail ends at 16384+6+2048 = 18438 → used 18496
  const cases = [
    { n: 16, avail: 256, used: 320 },
    { n: 256, avail: 4096, used: 4672 },
    { n: 1024, avail: 16384, used: 18496 },
  ];
  for (const c of cases) {
    it(`layout: N=${c.n}: avail at desc+${c.avail}, used at the next 64-byte boundary after avail (desc+${c.used})`, () => {
      const { m } = boot('read 0 4096\nread 8 4096\nread 16 4096\nwait', { queueSize: c.n });
      runToIdle(m);
      allOk(m);
      const s = m.snapshot().queues[0];
      const drv = m.guest.virtqueue(0);
      assert.ok(drv);
      assert.equal(s.num, c.n);
      assert.equal(s.vring_desc % 4096, 0, 'the ring is one page-aligned allocation');
      assert.equal(s.vring_avail - s.vring_desc, c.avail);
      assert.equal(s.vring_used - s.vring_desc, c.used);
      assert.equal(s.vring_used % 64, 0);
      // What the driver laid out is what the device was told through QueueDesc/Driver/Device.
      assert.deepEqual([drv.desc, drv.avail, drv.used], [s.vring_desc, s.vring_avail, s.vring_used]);
      // The fields at the far end of each ring sit at the spec's offsets for this N.
      const { avail, used } = ring(m);
      assert.equal(m.mem.read16(avail + 2), 3, 'avail.idx @2');
      assert.equal(m.mem.read16(avail + 4 + 2 * c.n), 3, 'used_event @4+2N = last_used_idx');
      assert.equal(m.mem.read16(used + 2), 3, 'used.idx @2');
      assert.equal(m.mem.read16(used + 4 + 8 * c.n), 3, 'avail_event @4+8N');
      assert.deepEqual({ id: m.mem.read32(used + 4 + 16), len: m.mem.read32(used + 4 + 20) }, { id: 0, len: 4097 }, 'used.ring[2] @4+16');
      // The snapshot decodes the same bytes.
      assert.equal(s.avail.used_event, 3);
      assert.equal(s.used.avail_event, 3);
      assert.deepEqual(s.used.ring[2], { id: 0, len: 4097 });
    });
  }

  it('layout: one 4 KiB read with indirect descriptors: desc[0] {table, 48, INDIRECT, next 1}, table {16,NEXT,1} {4096,NEXT|WRITE,2} {1,WRITE,3}', () => {
    const { m } = boot('read 8 4096\nwait');
    // The guest has published the request and is about to decide on the kick: the device has not run.
    mustStop(m, 'virtqueue_kick_prepare_split');
    const { desc: dt, num } = ring(m);
    const head = desc(m, dt, 0);
    assert.equal(head.len, 48);
    assert.equal(head.flags, INDIRECT);
    assert.equal(head.next, 1, 'an unchained ring descriptor carries the free-list link');
    assert.equal(availRing(m, 0), 0);
    assert.equal(availIdx(m), 1);
    assert.equal(usedIdx(m), 0);
    // Descriptors 1.. are untouched (Linux keeps its free list in desc_extra).
    assert.ok(m.mem.readBytes(dt + 16, 16 * (num - 1)).every((b) => b === 0), 'descriptors 1.. stay all zero');
    const t = [0, 1, 2].map((i) => desc(m, head.addr, i));
    assert.deepEqual(t.map((d) => [d.len, d.flags, d.next]), [
      [16, NEXT, 1],
      [4096, NEXT | WRITE, 2],
      [1, WRITE, 3],
    ]);
    // The outhdr: {le32 type = IN, le32 ioprio, le64 sector}.
    assert.equal(m.mem.read32(t[0].addr), V.VIRTIO_BLK_T_IN);
    assert.equal(m.mem.read64(t[0].addr + 8), 8);
    assert.equal(t[1].addr, m.guest.requests[0].data_addr);
    assert.equal(t[1].addr % 4096, 0);

    // The device popped it: one element, out_num 1, in_num 2, the sg lists are the table's buffers.
    mustStop(m, 'virtio_blk_handle_request');
    const q = m.snapshot().queues[0];
    assert.equal(q.last_avail_idx, 1);
    assert.equal(q.inuse, 1);
    assert.deepEqual(q.inflight, [{
      index: 0, ndescs: 1, out_num: 1, in_num: 2,
      out_sg: [{ addr: t[0].addr, len: 16 }],
      in_sg: [{ addr: t[1].addr, len: 4096 }, { addr: t[2].addr, len: 1 }],
      // Which ring descriptor it came from, the table behind it, and the request its outhdr carries.
      chain: [0],
      indirect_table: head.addr,
      blk: { type: V.VIRTIO_BLK_T_IN, type_name: 'VIRTIO_BLK_T_IN', ioprio: 0, sector: 8, status: 0, status_name: 'VIRTIO_BLK_S_OK' },
    }]);
    assert.deepEqual(q.indirect, [{ desc: 0, table: head.addr, entries: t, truncated: false }]);

    // Completed, not yet collected: used.ring[0] = {id 0, len 4097 = data + status}.
    mustStop(m, 'virtqueue_get_buf', 'vCPU 0');
    assert.deepEqual(usedElem(m, 0), { id: 0, len: 4097 });
    assert.equal(usedIdx(m), 1);
    assert.equal(m.mem.read8(t[2].addr), V.VIRTIO_BLK_S_OK);
    assert.equal(m.mem.readBytes(t[1].addr, 21).toString('latin1'), 'virtio-debug sector 8');
    runToIdle(m);
    allOk(m);
    assert.equal(m.snapshot().queues[0].driver?.last_used_idx, 1);
  });

  it('layout: without indirect descriptors a read takes descriptors 0,1,2 {16,NEXT,1} {4096,NEXT|WRITE,2} {1,WRITE,3}; a write {4096,NEXT,2} and used len 1', () => {
    const { m } = boot(`read 8 4096\nwrite 16 ${WRITE_4K}\nwait`, { indirectDesc: false });
    mustStop(m, 'virtqueue_kick_prepare_split');
    const { desc: dt } = ring(m);
    const r = [0, 1, 2].map((i) => desc(m, dt, i));
    assert.deepEqual(r.map((d) => [d.len, d.flags, d.next]), [
      [16, NEXT, 1],
      [4096, NEXT | WRITE, 2],
      [1, WRITE, 3],
    ]);
    assert.equal(m.mem.read32(r[0].addr), V.VIRTIO_BLK_T_IN);
    assert.deepEqual(desc(m, dt, 3), { addr: 0, len: 0, flags: 0, next: 0 });
    assert.equal(availRing(m, 0), 0);
    assert.equal(availIdx(m), 1);

    mustStop(m, 'virtio_blk_handle_request');
    const e1 = m.snapshot().queues[0].inflight;
    assert.deepEqual(e1.map((e) => [e.index, e.out_num, e.in_num]), [[0, 1, 2]]);

    // The write: the read's chain went back to the free list head-first, so it reuses 0, 1, 2.
    mustStop(m, 'virtqueue_kick_prepare_split');
    const w = [0, 1, 2].map((i) => desc(m, dt, i));
    assert.deepEqual(w.map((d) => [d.len, d.flags, d.next]), [
      [16, NEXT, 1],
      [4096, NEXT, 2],
      [1, WRITE, 3],
    ]);
    assert.equal(m.mem.read32(w[0].addr), V.VIRTIO_BLK_T_OUT);
    assert.equal(m.mem.read64(w[0].addr + 8), 16);
    assert.equal(m.mem.readBytes(w[1].addr, 4096).toString('latin1'), 'w'.repeat(4096));
    assert.equal(availRing(m, 1), 0);
    assert.equal(availIdx(m), 2);

    mustStop(m, 'virtio_blk_handle_request');
    const e2 = m.snapshot().queues[0].inflight;
    assert.deepEqual(e2.map((e) => [e.index, e.out_num, e.in_num]), [[0, 2, 1]]);

    runToIdle(m);
    allOk(m);
    assert.deepEqual(usedElem(m, 0), { id: 0, len: 4097 }, 'a 4 KiB read: data + status');
    assert.deepEqual(usedElem(m, 1), { id: 0, len: 1 }, 'a write: the status byte only');
    assert.equal(usedIdx(m), 2);
  });
});

describe('vring_need_event across the 16-bit wrap (FIDELITY §1.4)', () => {
  // Expected values worked out by hand from (u16)(new − e − 1) < (u16)(new − old).
  const cases: { e: number; nw: number; old: number; want: boolean; why: string }[] = [
    { e: 0, nw: 1, old: 0, want: true, why: '0 < 1' },
    { e: 1, nw: 1, old: 0, want: false, why: 'e = new: 65535 < 1' },
    { e: 99, nw: 100, old: 100, want: false, why: 'nothing added: x < 0' },
    // One entry added across the wrap: old 65535 → new 0.
    { e: 65535, nw: 0, old: 65535, want: true, why: 'e = new−1 = old: 0 < 1' },
    { e: 0, nw: 0, old: 65535, want: false, why: 'e = new: 65535 < 1' },
    { e: 65534, nw: 0, old: 65535, want: false, why: 'e = old−1: 1 < 1' },
    // Six added, old 65530 → new 0.
    { e: 65535, nw: 0, old: 65530, want: true, why: 'e = new−1: 0 < 6' },
    { e: 65530, nw: 0, old: 65530, want: true, why: 'e = old: 5 < 6' },
    { e: 65529, nw: 0, old: 65530, want: false, why: 'e = old−1: 6 < 6' },
    // Four added, old 65534 → new 2: every e in [old, new−1] = {65534, 65535, 0, 1} is crossed.
    { e: 65534, nw: 2, old: 65534, want: true, why: '3 < 4' },
    { e: 65535, nw: 2, old: 65534, want: true, why: '2 < 4' },
    { e: 0, nw: 2, old: 65534, want: true, why: '1 < 4' },
    { e: 1, nw: 2, old: 65534, want: true, why: 'e = new−1: 0 < 4' },
    { e: 2, nw: 2, old: 65534, want: false, why: 'e = new: 65535 < 4' },
    { e: 65533, nw: 2, old: 65534, want: false, why: 'e = old−1: 4 < 4' },
    // 1036 added, old 65000 → new 500.
    { e: 499, nw: 500, old: 65000, want: true, why: '0 < 1036' },
    { e: 65535, nw: 500, old: 65000, want: true, why: '500 < 1036' },
    { e: 64999, nw: 500, old: 65000, want: false, why: '1036 < 1036' },
    { e: 500, nw: 500, old: 65000, want: false, why: '65535 < 1036' },
    // Half the index space at once.
    { e: 100, nw: 32768, old: 0, want: true, why: '32667 < 32768' },
    { e: 40000, nw: 32768, old: 0, want: false, why: '58303 < 32768' },
  ];
  for (const c of cases) {
    it(`vring_need_event(e=${c.e}, new=${c.nw}, old=${c.old}) is ${c.want} (${c.why})`, () => {
      assert.equal(V.vring_need_event(c.e, c.nw, c.old), c.want);
    });
  }
});

describe('EVENT_IDX notification suppression (FIDELITY §1.4, §3.1-2, §3.8, §8)', () => {
  it('driver: a batch of 8 reads publishes avail.idx on every add and kicks once (bd->last)', () => {
    const reads = Array.from({ length: 8 }, (_, i) => `  read ${i * 8} 4096`).join('\n');
    const { m, events } = boot(`batch {\n${reads}\n}\nwait`);
    mustStop(m, 'virtqueue_add_split');
    mustStop(m, 'virtqueue_add_split');
    assert.equal(availIdx(m), 1, 'avail.idx is written by the first add, before any kick');
    const kp = mustStop(m, 'virtqueue_kick_prepare_split');
    assert.equal(availIdx(m), 8);
    assert.equal(m.snapshot().queues[0].driver?.num_added, 8);
    runToIdle(m);
    allOk(m);
    const [batch, wait] = statementSeqs(events);
    assert.equal(count(events, 'virtqueue_add_split', batch, wait), 8);
    assert.equal(count(events, 'virtqueue_kick_prepare_split', batch, wait), 1);
    assert.equal(count(events, 'vm_notify', batch, wait), 1);
    assert.ok(events.some((e) => e.fn === 'vm_notify' && e.seq > kp));
    assert.equal(count(events, 'virtio_blk_handle_output'), 1, 'one notification, one drain of all 8');
    assert.equal(count(events, 'virtio_blk_handle_request'), 8);
  });

  it('driver: two separate reads each kick: the device re-armed avail_event between them (vring_need_event(avail_event, new, old))', () => {
    const { m, events } = boot('read 0 4096\nread 8 4096\nwait');
    const seen: { e: number; old: number; nw: number; seq: number }[] = [];
    for (let i = 0; i < 2; i++) {
      const seq = mustStop(m, 'virtqueue_kick_prepare_split');
      const d = m.snapshot().queues[0].driver!;
      seen.push({ e: availEvent(m), old: (d.avail_idx_shadow - d.num_added) & 0xffff, nw: d.avail_idx_shadow, seq });
    }
    runToIdle(m);
    allOk(m);
    // First: the device never ran, avail_event is still 0. Second: the device's drain ended with
    // virtio_queue_set_notification(vq, 1), which wrote avail_event = avail idx = 1.
    assert.deepEqual(seen.map(({ e, old, nw }) => ({ e, old, nw })), [{ e: 0, old: 0, nw: 1 }, { e: 1, old: 1, nw: 2 }]);
    for (const s of seen) assert.equal(needEvent(s.e, s.nw, s.old), true);
    const notifies = events.filter((e) => e.fn === 'vm_notify').map((e) => e.seq);
    assert.equal(notifies.length, 2);
    assert.ok(notifies[0] > seen[0].seq && notifies[0] < seen[1].seq && notifies[1] > seen[1].seq);
  });

  it('driver: no kick while avail_event says the device has not caught up (a device that has not run yet)', () => {
    const { m, events } = boot('read 0 4096\nread 8 4096\nwait');
    mustStop(m, 'virtqueue_kick_prepare_split');
    const seq = mustStop(m, 'virtqueue_kick_prepare_split');
    // Put avail_event back where a device that had not yet run would have left it: it asked to be
    // told when entry 0 was made available, and that is already behind old = 1.
    m.mem.write16(ring(m).used + 4 + 8 * ring(m).num, 0);
    assert.equal(needEvent(0, 2, 1), false);
    runToIdle(m);
    assert.equal(count(events, 'vm_notify', seq), 0, 'the guest must not notify');
    const q = m.snapshot().queues[0];
    assert.equal(q.avail.idx, 2);
    assert.equal(q.last_avail_idx, 1, 'the device never saw the second request');
    assert.equal(m.guest.inflight, 1);
    assert.equal(m.guest.requests[1].status, null);
  });

  it('driver: with EVENT_IDX the guest ignores VRING_USED_F_NO_NOTIFY', () => {
    const { m, events } = boot('read 0 4096\nread 8 4096\nwait');
    mustStop(m, 'virtqueue_kick_prepare_split');
    const seq = mustStop(m, 'virtqueue_kick_prepare_split');
    m.mem.write16(ring(m).used, V.VRING_USED_F_NO_NOTIFY);
    runToIdle(m);
    allOk(m);
    assert.equal(count(events, 'vm_notify', seq), 1);
  });

  it('device: virtio_should_notify follows !signalled_used_valid || vring_need_event(used_event, used_idx, signalled_used)', () => {
    // ioeventfd off: the device interrupts through virtio_notify → virtio_irq, a frame of its own,
    // so the decision shows in the event log. Threads-pool AIO spreads completions out in time.
    const reads = Array.from({ length: 4 }, (_, i) => `  read ${i * 8} 4096`).join('\n');
    const { m, events } = boot(`read 0 4096\nbatch {\n${reads}\n}\nread 64 4096\nwait`, { ioeventfd: false, aio: 'threads' });
    const vq = m.vdev.vq[0];
    const decisions: { seq: number; thread: string; want: boolean }[] = [];
    m.runUntil((ev) => {
      if (ev.kind === 'enter' && ev.fn.name === 'virtio_should_notify') {
        const want = !vq.signalled_used_valid || needEvent(usedEvent(m), vq.used_idx, vq.signalled_used);
        decisions.push({ seq: ev.seq, thread: ev.thread.name, want });
      }
      return false;
    });
    runToIdle(m);
    allOk(m);
    assert.equal(decisions.length, 6, 'one virtio_should_notify per completion');
    for (const d of decisions) {
      const next = events.find((e) => e.seq > d.seq && e.thread === d.thread && e.depth <= events.find((x) => x.seq === d.seq)!.depth);
      assert.ok(next, 'something follows virtio_should_notify in its thread');
      assert.equal(next.fn === 'virtio_irq', d.want, `decision at event ${d.seq}: expected ${d.want}, next was ${next.fn}`);
    }
    assert.ok(decisions.some((d) => !d.want), 'some completion was suppressed');
    assert.equal(count(events, 'virtio_irq'), decisions.filter((d) => d.want).length);
    assert.ok(count(events, 'vm_interrupt') < m.guest.requests.length, 'fewer interrupts than requests');
  });

  it('device: with EVENT_IDX the device ignores VRING_AVAIL_F_NO_INTERRUPT', () => {
    const { m, events } = boot('read 0 4096\nwait');
    const seq = mustStop(m, 'virtio_blk_handle_output');
    m.mem.write16(ring(m).avail, V.VRING_AVAIL_F_NO_INTERRUPT);
    runToIdle(m);
    allOk(m);
    assert.equal(count(events, 'vm_interrupt', seq), 1);
  });

  it('device: with EVENT_IDX the drain leaves avail_event alone (notifications off) and re-arms it to avail idx at the end; used->flags untouched', () => {
    const { m } = boot('read 0 4096\nbatch {\n  read 8 4096\n  read 16 4096\n}\nwait');
    // First drain: avail_event still 0 while the device pops.
    mustStop(m, 'virtio_blk_handle_request');
    assert.deepEqual([availEvent(m), usedFlags(m), m.vdev.vq[0].last_avail_idx], [0, 0, 1]);
    // Second drain (the batch): avail_event stays at the 1 the first drain left, however far
    // last_avail_idx moves; neither virtio_queue_set_notification(vq, 0) nor virtqueue_pop writes it.
    mustStop(m, 'virtio_blk_handle_request');
    assert.equal(availIdx(m), 3);
    assert.deepEqual([availEvent(m), usedFlags(m), m.vdev.vq[0].last_avail_idx], [1, 0, 2]);
    mustStop(m, 'virtio_blk_handle_request');
    assert.deepEqual([availEvent(m), usedFlags(m), m.vdev.vq[0].last_avail_idx], [1, 0, 3]);
    runToIdle(m);
    allOk(m);
    assert.deepEqual([availEvent(m), usedFlags(m)], [3, 0]);
  });

  it('device: with EVENT_IDX virtio_queue_set_notification(vq, 0) still reads avail->idx (shadow_avail_idx is current before the first pop)', () => {
    // QEMU 7.2 calls vring_set_avail_event(vq, vring_avail_idx(vq)) whether enabling or not; the
    // write is skipped when disabling (vq->notification is already 0) but the read is not.
    for (const eventIdx of [true, false]) {
      const { m } = boot('read 0 4096\nbatch {\n  read 8 4096\n  read 16 4096\n}\nwait', { eventIdx });
      const vq = m.vdev.vq[0];
      const r = m.runUntil((ev) => ev.kind === 'enter' && ev.fn.name === 'virtio_queue_set_notification' && ev.frame.a1 === 0 && vq.last_avail_idx === 1);
      assert.equal(r, 'stopped');
      assert.deepEqual([vq.shadow_avail_idx, availIdx(m)], [1, 3], 'the second drain starts with a stale shadow');
      mustStop(m, 'virtio_blk_get_request');
      const q = m.snapshot().queues[0];
      assert.equal(q.last_avail_idx, 1);
      assert.equal(q.shadow_avail_idx, eventIdx ? 3 : 1, eventIdx ? 'EVENT_IDX: read while disabling' : 'no EVENT_IDX: only the flag is written');
      runToIdle(m);
      allOk(m);
    }
  });

  it('device: at idle with EVENT_IDX used_event = avail.idx = used.idx = avail_event = last_avail_idx = shadow_avail_idx = signalled_used (FIDELITY §8)', () => {
    const { m } = boot(
      `read 0 4096\nwrite 8 ${WRITE_4K}\nflush\nread 8 512\nbatch {\n  read 16 4096\n  read 24 4096\n  get-id\n}\nwait`,
    );
    runToIdle(m);
    allOk(m);
    const q = m.snapshot().queues[0];
    const n = m.guest.requests.length;
    assert.equal(n, 7);
    assert.deepEqual(
      [q.avail.used_event, q.avail.idx, q.used.idx, q.used.avail_event, q.last_avail_idx, q.shadow_avail_idx, q.signalled_used, q.used_idx],
      [n, n, n, n, n, n, n, n],
    );
    assert.deepEqual([usedEvent(m), availIdx(m), usedIdx(m), availEvent(m)], [n, n, n, n], 'the same, read from memory');
    assert.equal(q.signalled_used_valid, true);
    assert.equal(q.inuse, 0);
    assert.deepEqual([q.avail.flags, q.used.flags], [0, 0]);
    assert.deepEqual([availFlags(m), usedFlags(m)], [0, 0]);
    assert.equal(q.driver?.last_used_idx, n);
    assert.equal(q.driver?.num_free, q.num);
  });

  it('driver: queue full (N=16, no indirect): the add notifies on -ENOSPC, virtqueue_kick notifies again, commit_rqs does not; all complete', () => {
    const reads = Array.from({ length: 7 }, (_, i) => `  read ${i * 8} 4096`).join('\n');
    const { m, events } = boot(`batch {\n${reads}\n}\nwait`, { queueSize: 16, indirectDesc: false });
    runToIdle(m);
    allOk(m);
    // 16 descriptors hold 5 three-descriptor chains; the 6th add fails.
    const firstKick = events.find((e) => e.fn === 'virtio_blk_handle_output')!.seq;
    assert.equal(count(events, 'virtqueue_add_split', 0, firstKick), 6);
    assert.equal(count(events, 'vm_notify', 0, firstKick), 2);
    assert.equal(count(events, 'virtqueue_kick', 0, firstKick), 1);
    assert.equal(count(events, 'virtio_commit_rqs', 0, firstKick), 1);
    assert.equal(count(events, 'virtqueue_kick_prepare_split', 0, firstKick), 2);
    assert.equal(m.guest.requests.length, 7);
    assert.equal(usedIdx(m), 7);
  });
});

describe('without EVENT_IDX: flags (FIDELITY §3.1, §3.8, §4, §8)', () => {
  it('device: sets VRING_USED_F_NO_NOTIFY while draining and clears it after; never writes avail_event', () => {
    const { m } = boot('read 0 4096\nbatch {\n  read 8 4096\n  read 16 4096\n}\nwait', { eventIdx: false });
    mustStop(m, 'virtqueue_kick_prepare_split');
    // A sentinel where avail_event would be: only the device could change it.
    m.mem.write16(ring(m).used + 4 + 8 * ring(m).num, 0xbeef);
    mustStop(m, 'virtio_queue_set_notification');
    assert.equal(usedFlags(m), 0, 'before the drain');
    mustStop(m, 'virtio_blk_handle_request');
    assert.equal(usedFlags(m), V.VRING_USED_F_NO_NOTIFY, 'inside the drain');
    assert.equal(m.snapshot().queues[0].used.flags, 1);
    mustStop(m, 'virtio_blk_handle_request'); // the batch's first
    assert.equal(usedFlags(m), V.VRING_USED_F_NO_NOTIFY);
    mustStop(m, 'virtio_blk_handle_request');
    assert.equal(usedFlags(m), V.VRING_USED_F_NO_NOTIFY);
    runToIdle(m);
    allOk(m);
    assert.equal(usedFlags(m), 0, 'after the drain');
    assert.equal(availEvent(m), 0xbeef, 'the device never writes avail_event without EVENT_IDX');
  });

  it('at idle: avail_event stays 0, signalled_used 0 and not valid, the guest still writes used_event = last_used_idx (FIDELITY §8)', () => {
    const { m } = boot(`read 0 4096\nwrite 8 ${WRITE_4K}\nflush\nbatch {\n  read 8 4096\n  get-id\n}\nwait`, { eventIdx: false });
    runToIdle(m);
    allOk(m);
    const q = m.snapshot().queues[0];
    assert.equal(q.used.avail_event, 0);
    assert.equal(availEvent(m), 0);
    assert.equal(q.signalled_used, 0);
    assert.equal(q.signalled_used_valid, false);
    assert.equal(q.driver?.last_used_idx, 5);
    assert.equal(usedEvent(m), 5);
    assert.deepEqual([availIdx(m), usedIdx(m), q.last_avail_idx], [5, 5, 5]);
    assert.deepEqual([availFlags(m), usedFlags(m)], [0, 0]);
  });

  it('device: VRING_AVAIL_F_NO_INTERRUPT is honoured: virtio_should_notify is false and no interrupt comes', () => {
    // Control: the same run untouched gets its interrupt.
    {
      const { m, events } = boot('read 0 4096\nwait', { eventIdx: false });
      runToIdle(m);
      allOk(m);
      const sn = events.find((e) => e.fn === 'virtio_should_notify')!.seq;
      assert.equal(count(events, 'vm_interrupt', sn), 1);
    }
    const { m, events } = boot('read 0 4096\nwait', { eventIdx: false });
    // Published, not yet handled by the device.
    const seq = mustStop(m, 'virtio_blk_handle_output');
    assert.equal(availIdx(m), 1);
    assert.equal(usedIdx(m), 0);
    m.mem.write16(ring(m).avail, availFlags(m) | V.VRING_AVAIL_F_NO_INTERRUPT);
    runToIdle(m);
    const sn = events.filter((e) => e.fn === 'virtio_should_notify' && e.seq > seq);
    assert.equal(sn.length, 1, 'the device asked once');
    assert.equal(count(events, 'vm_interrupt', seq), 0, 'no interrupt after the completion');
    assert.equal(usedIdx(m), 1, 'the device did complete the request');
    assert.equal(m.irq.level, false);
    assert.equal(m.vdev.isr & 1, 0);
    const q = m.snapshot().queues[0];
    assert.equal(q.driver?.last_used_idx, 0, 'the guest never collected it');
    assert.equal(m.guest.inflight, 1);
    assert.equal(m.guest.requests[0].status, null);
  });

  it('driver: VRING_USED_F_NO_NOTIFY is honoured: the guest does not kick', () => {
    const { m, events } = boot('read 0 4096\nread 8 4096\nwait', { eventIdx: false });
    mustStop(m, 'virtqueue_kick_prepare_split');
    const seq = mustStop(m, 'virtqueue_kick_prepare_split');
    assert.equal(usedFlags(m), 0);
    m.mem.write16(ring(m).used, V.VRING_USED_F_NO_NOTIFY);
    runToIdle(m);
    assert.equal(count(events, 'vm_notify', seq), 0, 'no notify for the second request');
    assert.equal(count(events, 'vm_notify'), 1);
    const q = m.snapshot().queues[0];
    assert.deepEqual([q.avail.idx, q.last_avail_idx, q.used.idx], [2, 1, 1]);
    assert.equal(m.guest.inflight, 1);
    assert.deepEqual(m.guest.requests.map((r) => r.status), ['BLK_STS_OK', null]);
  });
});

describe('index wrap: more than 65,536 requests through one queue', () => {
  it('wrap: 70,000 reads in batches of 32 all complete; avail.idx = used.idx = last_avail_idx = last_used_idx = 70000 mod 65536', function () {
    this.timeout(60_000);
    const total = 70_000;
    const lines: string[] = [];
    for (let i = 0; i < total; i += 32) {
      lines.push('batch {');
      for (let j = i; j < Math.min(total, i + 32); j++) lines.push(`  read ${(j * 8) % 32768} 4096`);
      lines.push('}');
    }
    lines.push('wait');
    // No event log: millions of events would only cost time and memory here.
    const m = new Machine({ options: validateOptions({}), scenario: parseScenario(lines.join('\n'), 'wrap.virtio') });
    m.guest.recordData = false;
    // Each completion must hand back its own request's buffer: check the first and last sector
    // of every 4 KiB read (the generated image says "virtio-debug sector N" in sector N).
    const wrong: string[] = [];
    m.guest.onRequestDone = (r) => {
      const a = r.data_addr!;
      const first = m.mem.readBytes(a, 32).toString('latin1');
      const last = m.mem.readBytes(a + 7 * 512, 32).toString('latin1');
      if (!first.startsWith(`virtio-debug sector ${r.sector}\n`) || !last.startsWith(`virtio-debug sector ${r.sector + 7}\n`)) {
        if (wrong.length < 5) wrong.push(`${r.statement} (line ${r.line}) got ${JSON.stringify(first)}`);
      }
    };
    runToIdle(m);
    assert.equal(m.idle, true);
    assert.equal(m.guest.requests.length, total);
    allOk(m);
    assert.deepEqual(wrong, []);
    const want = total % 65536;
    assert.equal(want, 4464);
    const q = m.snapshot().queues[0];
    assert.deepEqual(
      { avail: q.avail.idx, used: q.used.idx, last_avail: q.last_avail_idx, shadow: q.shadow_avail_idx, used_idx: q.used_idx },
      { avail: want, used: want, last_avail: want, shadow: want, used_idx: want },
    );
    assert.equal(q.driver?.last_used_idx, want);
    assert.equal(q.driver?.avail_idx_shadow, want);
    assert.equal(q.driver?.num_free, q.num);
    assert.equal(q.driver?.broken, false);
    assert.equal(q.inuse, 0);
    assert.deepEqual(m.vdev.errors, []);
    // EVENT_IDX bookkeeping wrapped with the indices.
    assert.deepEqual([q.avail.used_event, q.used.avail_event, q.signalled_used], [want, want, want]);
    // The last request's used element sits in slot (70000 − 1) mod 256 = 111.
    assert.equal(usedElem(m, (total - 1) % q.num).len, 4097);
  });
});

describe('indirect descriptors: when the driver uses them (FIDELITY §1.3)', () => {
  // One of each request type: [type, flags of each descriptor of the chain, len of each].
  const mixed = `batch {\n  read 0 4096\n  write 8 ${WRITE_4K}\n  flush\n  get-id\n  discard 64 8\n  write-zeroes 128 8\n}\nwait`;
  const expected: { type: number; flags: number[]; lens: number[] }[] = [
    { type: V.VIRTIO_BLK_T_IN, flags: [NEXT, NEXT | WRITE, WRITE], lens: [16, 4096, 1] },
    { type: V.VIRTIO_BLK_T_OUT, flags: [NEXT, NEXT, WRITE], lens: [16, 4096, 1] },
    { type: V.VIRTIO_BLK_T_FLUSH, flags: [NEXT, WRITE], lens: [16, 1] },
    { type: V.VIRTIO_BLK_T_GET_ID, flags: [NEXT, NEXT | WRITE, WRITE], lens: [16, 20, 1] },
    { type: V.VIRTIO_BLK_T_DISCARD, flags: [NEXT, NEXT, WRITE], lens: [16, 16, 1] },
    { type: V.VIRTIO_BLK_T_WRITE_ZEROES, flags: [NEXT, NEXT, WRITE], lens: [16, 16, 1] },
  ];

  it('indirect: with INDIRECT_DESC every request (total_sg > 1) takes one ring descriptor {table, 16·total_sg, INDIRECT}', () => {
    const { m } = boot(mixed);
    mustStop(m, 'virtqueue_kick_prepare_split');
    const { desc: dt, num } = ring(m);
    assert.equal(availIdx(m), expected.length);
    const heads = expected.map((_, i) => availRing(m, i));
    assert.deepEqual(heads, [0, 1, 2, 3, 4, 5]);
    for (let i = 0; i < expected.length; i++) {
      const x = expected[i];
      const d = desc(m, dt, heads[i]);
      assert.equal(d.flags, INDIRECT, `request ${i}: INDIRECT only (never with NEXT)`);
      assert.equal(d.len, 16 * x.flags.length, `request ${i}: len = 16·total_sg`);
      const table = x.flags.map((_, j) => desc(m, d.addr, j));
      assert.deepEqual(table.map((t) => t.flags), x.flags, `request ${i}: table flags`);
      assert.deepEqual(table.map((t) => t.len), x.lens, `request ${i}: table lens`);
      assert.deepEqual(table.map((t) => t.next), x.flags.map((_, j) => j + 1), `request ${i}: table chained i → i+1`);
      assert.equal(m.mem.read32(table[0].addr), x.type, `request ${i}: outhdr type`);
    }
    assert.equal(m.snapshot().queues[0].driver?.num_free, num - expected.length);
    assert.ok(m.mem.readBytes(dt + 16 * expected.length, 16 * (num - expected.length)).every((b) => b === 0));
    runToIdle(m);
    allOk(m);
  });

  it('indirect: a FLUSH (header + status, total_sg 2 > 1) is still indirect: {table, 32, INDIRECT}; used len 1', () => {
    const { m } = boot('flush\nwait');
    mustStop(m, 'virtqueue_kick_prepare_split');
    const d = desc(m, ring(m).desc, 0);
    assert.deepEqual([d.len, d.flags, d.next], [32, INDIRECT, 1]);
    const t = [desc(m, d.addr, 0), desc(m, d.addr, 1)];
    assert.deepEqual(t.map((x) => [x.len, x.flags, x.next]), [[16, NEXT, 1], [1, WRITE, 2]]);
    assert.equal(m.mem.read32(t[0].addr), V.VIRTIO_BLK_T_FLUSH);
    assert.equal(m.mem.read64(t[0].addr + 8), 0, 'FLUSH carries sector 0');
    mustStop(m, 'virtio_blk_handle_request');
    const e = m.snapshot().queues[0].inflight;
    assert.deepEqual(e.map((x) => [x.out_num, x.in_num]), [[1, 1]]);
    runToIdle(m);
    allOk(m);
    assert.deepEqual(usedElem(m, 0), { id: 0, len: 1 });
  });

  it('indirect: with indirectDesc false no descriptor is ever INDIRECT; each request is a direct chain in the ring', () => {
    const { m } = boot(mixed, { indirectDesc: false });
    mustStop(m, 'virtqueue_kick_prepare_split');
    const { desc: dt, num } = ring(m);
    let used = 0;
    for (let i = 0; i < expected.length; i++) {
      const x = expected[i];
      const chain: Desc[] = [];
      for (let j = availRing(m, i); ; ) {
        const d = desc(m, dt, j);
        chain.push(d);
        if (!(d.flags & NEXT) || chain.length > x.flags.length) break;
        j = d.next;
      }
      assert.deepEqual(chain.map((d) => d.flags), x.flags, `request ${i}: chain flags`);
      assert.deepEqual(chain.map((d) => d.len), x.lens, `request ${i}: chain lens`);
      assert.equal(m.mem.read32(chain[0].addr), x.type, `request ${i}: outhdr type`);
      used += chain.length;
    }
    assert.equal(used, 17);
    assert.equal(m.snapshot().queues[0].driver?.num_free, num - 17);
    runToIdle(m);
    allOk(m);
    // Every descriptor the run ever wrote is still in the table: none is INDIRECT.
    const flags = m.snapshot().queues[0].desc.map((d) => d.flags);
    assert.ok(flags.every((f) => (f & INDIRECT) === 0));
    assert.ok(flags.filter((f) => f !== 0).length >= 17);
  });
});
