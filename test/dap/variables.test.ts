/**
 * DAP: what a stop shows. The Virtqueue scope against `virtio/state` and
 * against guest memory read back with readMemory through each value's
 * memoryReference; the VirtQueueElement scope (sg lists, virtio_blk_outhdr,
 * status byte); setVariable and writeMemory changing guest memory and the
 * device reacting (a looped descriptor chain → virtio_error); evaluate; and
 * the `virtio/state` snapshot's shape (DESIGN.md).
 */
import { strict as assert } from 'node:assert';
import type { DebugProtocol } from '@vscode/debugprotocol';
import { DEFAULT_SCENARIO, Session, VirtioState, fnName, sessionPerTest } from './helpers';

type Vars = Map<string, DebugProtocol.Variable>;

async function varMap(s: Session, ref: number): Promise<Vars> {
  return new Map((await s.vars(ref)).map((v) => [v.name, v]));
}

function get(vars: Vars, name: string): DebugProtocol.Variable {
  const v = vars.get(name);
  assert.ok(v, `no variable '${name}' among ${[...vars.keys()].join(', ')}`);
  return v;
}

/** The number a variable shows first: `17`, `0x402000`, `3 (NEXT|WRITE)`. */
function numberOf(v: DebugProtocol.Variable): number {
  const m = /^(0x[0-9a-f]+|\d+)/.exec(v.value);
  assert.ok(m, `${v.name} = ${v.value} is not a number`);
  return Number(m[1]);
}

async function readLe(s: Session, v: DebugProtocol.Variable, size: 1 | 2 | 4 | 8): Promise<number> {
  assert.ok(v.memoryReference, `${v.name} has no memoryReference`);
  const b = await s.readMemory(v.memoryReference, size);
  assert.equal(b.length, size);
  return size === 1 ? b[0] : size === 2 ? b.readUInt16LE(0) : size === 4 ? b.readUInt32LE(0) : Number(b.readBigUInt64LE(0));
}

async function topFrame(s: Session, stop: DebugProtocol.StoppedEvent): Promise<DebugProtocol.StackFrame> {
  return (await s.stack(stop.body.threadId!))[0];
}

describe('dap: variables, memory, evaluate, virtio/state', function () {
  this.timeout(60_000);
  const sessions = sessionPerTest();

  async function atRwComplete(s: Session, args: Record<string, unknown> = {}) {
    const stop = await s.launchToStop({ scenario: DEFAULT_SCENARIO, ...args }, { filters: ['rw_complete'] });
    const top = await topFrame(s, stop);
    return { stop, top, state: await s.state() };
  }

  describe('the Virtqueue scope', () => {
    it('shows the indices and rings virtio/state shows for the same queue', async () => {
      const s = await sessions.stdio();
      const { top, state } = await atRwComplete(s);
      const q = state.queues[0];
      const scope = await s.scope(top.id, 'Virtqueue');
      assert.equal(scope.name, 'Virtqueue 0');
      const vq = await varMap(s, scope.variablesReference);
      for (const f of ['index', 'num', 'vring_desc', 'vring_avail', 'vring_used', 'last_avail_idx', 'shadow_avail_idx', 'used_idx', 'signalled_used', 'inuse'] as const) {
        assert.equal(numberOf(get(vq, f)), q[f], f);
      }
      assert.equal(get(vq, 'signalled_used_valid').value, String(q.signalled_used_valid));
      const avail = await varMap(s, get(vq, 'avail').variablesReference);
      const used = await varMap(s, get(vq, 'used').variablesReference);
      assert.equal(numberOf(get(avail, 'idx')), q.avail.idx);
      assert.equal(numberOf(get(avail, 'flags')), q.avail.flags);
      assert.equal(numberOf(get(avail, 'used_event')), q.avail.used_event);
      assert.equal(numberOf(get(used, 'idx')), q.used.idx);
      assert.equal(numberOf(get(used, 'flags')), q.used.flags);
      assert.equal(numberOf(get(used, 'avail_event')), q.used.avail_event);
      const driver = await varMap(s, get(vq, 'driver').variablesReference);
      for (const f of ['avail_idx_shadow', 'last_used_idx', 'num_free', 'free_head'] as const) assert.equal(numberOf(get(driver, f)), q.driver![f], `driver.${f}`);
      // At rw_complete of the first read: one request in, none back.
      assert.equal(q.avail.idx, 1);
      assert.equal(q.used.idx, 0);
      assert.equal(q.inuse, 1);
    });

    it('every guest-memory value has a memoryReference, and readMemory there returns the same value', async () => {
      const s = await sessions.stdio();
      const { top, state } = await atRwComplete(s);
      const q = state.queues[0];
      const vq = await varMap(s, (await s.scope(top.id, 'Virtqueue')).variablesReference);
      assert.equal(get(vq, 'vring_avail').memoryReference, `0x${q.vring_avail.toString(16)}`);
      const avail = await varMap(s, get(vq, 'avail').variablesReference);
      const used = await varMap(s, get(vq, 'used').variablesReference);
      assert.equal(await readLe(s, get(avail, 'idx'), 2), q.avail.idx);
      assert.equal(await readLe(s, get(avail, 'flags'), 2), q.avail.flags);
      assert.equal(await readLe(s, get(used, 'idx'), 2), q.used.idx);
      assert.equal(await readLe(s, get(used, 'avail_event'), 2), q.used.avail_event);
      assert.equal(get(avail, 'idx').memoryReference, `0x${(q.vring_avail + 2).toString(16)}`);
      // The avail ring's first entry and the head's descriptor, byte for byte.
      const ring = await varMap(s, get(avail, 'ring').variablesReference);
      assert.equal(ring.size, q.num);
      assert.equal(await readLe(s, get(ring, '[0]'), 2), q.avail.ring[0]);
      const descs = await varMap(s, get(vq, 'desc').variablesReference);
      assert.equal(descs.size, q.num);
      const d0 = get(descs, '[0]');
      const raw = await s.readMemory(d0.memoryReference!, 16);
      assert.deepEqual(
        { addr: Number(raw.readBigUInt64LE(0)), len: raw.readUInt32LE(8), flags: raw.readUInt16LE(12), next: raw.readUInt16LE(14) },
        q.desc[0],
      );
      const d0f = await varMap(s, d0.variablesReference);
      assert.equal(numberOf(get(d0f, 'addr')), q.desc[0].addr);
      assert.equal(numberOf(get(d0f, 'len')), q.desc[0].len);
      assert.equal(numberOf(get(d0f, 'next')), q.desc[0].next);
      // INDIRECT_DESC is on: descriptor 0 is the indirect table, flags decoded.
      assert.equal(q.desc[0].flags, 4);
      assert.match(get(d0f, 'flags').value, /^4 \(INDIRECT\)$/);
      assert.equal(q.desc[0].len, 48, 'three 16-byte entries: outhdr, data, status');
      // readMemory reads the whole range it is asked, from any offset.
      const wide = await s.readMemory(get(vq, 'vring_avail').memoryReference!, 4, 2);
      assert.equal(wide.readUInt16LE(0), q.avail.idx);
      assert.equal(wide.readUInt16LE(2), q.avail.ring[0]);
    });

    it('readMemory outside guest RAM answers unreadable bytes, not an error', async () => {
      const s = await sessions.stdio();
      await atRwComplete(s);
      const r = (await s.dc.send('readMemory', { memoryReference: '0xfffffff000', count: 16 })) as DebugProtocol.ReadMemoryResponse;
      assert.equal(r.body?.unreadableBytes, 16);
      assert.equal(Buffer.from(r.body?.data ?? '', 'base64').length, 0);
    });

    it('a reference from before a resume answers with no variables, not an error (VS Code may still ask for it)', async () => {
      const s = await sessions.stdio();
      const { stop, top } = await atRwComplete(s);
      const stale = (await s.scope(top.id, 'Virtqueue')).variablesReference;
      assert.ok((await s.vars(stale)).length > 0);
      await s.continueToStop(stop.body.threadId!);
      assert.deepEqual(await s.vars(stale), []);
    });
  });

  describe('the VirtQueueElement scope at rw_complete', () => {
    it('shows out_sg/in_sg as virtio/state does, the virtio_blk_outhdr and the status byte', async () => {
      const s = await sessions.stdio();
      const { top, state } = await atRwComplete(s);
      const inflight = state.queues[0].inflight;
      assert.equal(inflight.length, 1);
      const e = inflight[0];
      const el = await varMap(s, (await s.scope(top.id, 'VirtQueueElement')).variablesReference);
      assert.equal(numberOf(get(el, 'index')), e.index);
      assert.equal(numberOf(get(el, 'out_num')), 1);
      assert.equal(numberOf(get(el, 'in_num')), 2, 'a read: data and status are device-writable');
      assert.equal(e.out_num, 1);
      assert.equal(e.in_num, 2);
      const out = await s.vars(get(el, 'out_sg').variablesReference);
      const inn = await s.vars(get(el, 'in_sg').variablesReference);
      assert.equal(out.length, 1);
      assert.equal(inn.length, 2);
      const sg = async (v: DebugProtocol.Variable) => {
        const kids = await varMap(s, v.variablesReference);
        return { addr: numberOf(get(kids, 'iov_base')), len: numberOf(get(kids, 'iov_len')) };
      };
      assert.deepEqual(await sg(out[0]), e.out_sg[0]);
      assert.deepEqual(await sg(inn[0]), e.in_sg[0]);
      assert.deepEqual(await sg(inn[1]), e.in_sg[1]);
      assert.equal(e.out_sg[0].len, 16);
      assert.equal(e.in_sg[0].len, 4096);
      assert.equal(e.in_sg[1].len, 1);
      assert.equal(inn[0].memoryReference, `0x${e.in_sg[0].addr.toString(16)}`);

      const hdr = get(el, 'virtio_blk_outhdr');
      assert.match(hdr.value, /type=VIRTIO_BLK_T_IN, sector=0/);
      const raw = await s.readMemory(hdr.memoryReference!, 16);
      assert.equal(raw.readUInt32LE(0), 0, 'VIRTIO_BLK_T_IN');
      assert.equal(Number(raw.readBigUInt64LE(8)), 0, 'sector 0');
      const fields = await varMap(s, hdr.variablesReference);
      assert.match(get(fields, 'type').value, /^0 \(VIRTIO_BLK_T_IN\)$/);
      assert.equal(get(fields, 'sector').value, '0');
      const status = get(el, 'status');
      assert.equal(status.memoryReference, `0x${(e.in_sg[1].addr).toString(16)}`);
      // The data came back from the image: readMemory shows the first sector's text.
      const data = await s.readMemory(inn[0].memoryReference!, 32);
      assert.match(data.toString('latin1'), /virtio-debug sector 0/);
    });

    it('the Arguments scope shows the frame\'s arguments by their gdb names', async () => {
      const s = await sessions.stdio();
      const { top } = await atRwComplete(s);
      const args = await varMap(s, (await s.scope(top.id, 'Arguments')).variablesReference);
      assert.deepEqual([...args.keys()], ['opaque', 'ret']);
      assert.equal(get(args, 'ret').value, '0');
      assert.match(get(args, 'opaque').value, /VirtIOBlockReq 0x[0-9a-f]+/);
      assert.ok(get(args, 'opaque').variablesReference > 0, 'the request is expandable');
    });
  });

  describe('setVariable and writeMemory', () => {
    /** Stopped at handle_output with plain (non-indirect) chains: desc 0 → 1 → 2 of the first read. */
    async function atHandleOutput(s: Session): Promise<{ stop: DebugProtocol.StoppedEvent; descs: number }> {
      const stop = await s.launchToStop({ scenario: DEFAULT_SCENARIO, indirectDesc: false }, { filters: ['handle_output', 'virtio_error'] });
      assert.ok(stop.body.description?.startsWith('Paused on handle_output'));
      const top = await topFrame(s, stop);
      const scope = await s.scope(top.id, 'Virtqueue');
      const desc = (await s.varAt(scope.variablesReference, ['desc'])).v;
      return { stop, descs: desc.variablesReference };
    }

    it('desc[1].next = 1 writes guest memory, and the device then reports a looped descriptor', async () => {
      const s = await sessions.stdio();
      const { stop, descs } = await atHandleOutput(s);
      const before = (await s.state()).queues[0].desc;
      assert.deepEqual(before.slice(0, 3).map((d) => [d.flags, d.next]), [[1, 1], [3, 2], [2, 3]], 'NEXT→1, NEXT|WRITE→2, WRITE');
      const d1 = await s.vars(get(await varMap(s, descs), '[1]').variablesReference);
      const next = d1.find((v) => v.name === 'next')!;
      const ref = get(await varMap(s, descs), '[1]').variablesReference;
      const r = await s.dc.setVariableRequest({ variablesReference: ref, name: 'next', value: '1' });
      assert.equal(r.body.value, '1');
      // Guest memory holds it: readMemory at the field, and virtio/state.
      assert.equal(await readLe(s, next, 2), 1);
      assert.equal((await s.state()).queues[0].desc[1].next, 1);
      // The device walks 0 → 1 → 1 → … and gives up.
      const err = await s.continueToStop(stop.body.threadId!);
      assert.equal(err.body.reason, 'exception');
      assert.ok(err.body.description?.startsWith('Paused on virtio_error'), err.body.description);
      assert.equal(err.body.text, 'Looped descriptor');
      const frames = await s.stack(err.body.threadId!);
      assert.deepEqual(frames.slice(0, 3).map(fnName), ['virtio_error', 'virtqueue_split_pop', 'virtqueue_pop']);
      await s.dc.continueRequest({ threadId: err.body.threadId! });
      await s.next('terminated');
      await s.outputMatching(/device is broken: Looped descriptor/);
    });

    it('a flags field takes an expression; the device then finds the chain out of order', async () => {
      const s = await sessions.stdio();
      const { stop, descs } = await atHandleOutput(s);
      // desc[2] (the status byte, WRITE) gets NEXT and points back at desc 0, a readable one: out of order.
      const ref = get(await varMap(s, descs), '[2]').variablesReference;
      await s.dc.setVariableRequest({ variablesReference: ref, name: 'next', value: '0' });
      const r = await s.dc.setVariableRequest({ variablesReference: ref, name: 'flags', value: '1 | 2' });
      assert.equal(r.body.value, '3 (NEXT|WRITE)');
      const err = await s.continueToStop(stop.body.threadId!);
      assert.equal(err.body.text, 'Incorrect order for descriptors');
    });

    it('a bad value is an error answer; the session goes on', async () => {
      const s = await sessions.stdio();
      const { stop, descs } = await atHandleOutput(s);
      const ref = get(await varMap(s, descs), '[1]').variablesReference;
      await assert.rejects(s.dc.setVariableRequest({ variablesReference: ref, name: 'next', value: 'next +' }));
      await assert.rejects(s.dc.setVariableRequest({ variablesReference: ref, name: 'nope', value: '1' }), /nope/);
      await assert.rejects(s.dc.setVariableRequest({ variablesReference: ref, name: 'next', value: '-1' }));
      assert.equal((await s.state()).queues[0].desc[1].next, 2, 'unchanged');
      // Read-only values say so.
      const top = await topFrame(s, stop);
      const vq = await s.scope(top.id, 'Virtqueue');
      await assert.rejects(s.dc.setVariableRequest({ variablesReference: vq.variablesReference, name: 'num', value: '8' }), /cannot be set/);
      await s.dc.continueRequest({ threadId: stop.body.threadId! });
      assert.ok((await s.nextStop()).body.description?.startsWith('Paused on handle_output'));
    });

    it('writeMemory writes guest memory that readMemory and the Virtqueue scope then show', async () => {
      const s = await sessions.stdio();
      const { stop, descs } = await atHandleOutput(s);
      const d2 = get(await varMap(s, descs), '[2]');
      // desc[2].len (offset 8) = 0: the status buffer becomes zero-sized.
      const w = await s.writeMemory(d2.memoryReference!, Buffer.from([0, 0, 0, 0]), 8);
      assert.equal(w.body?.bytesWritten, 4);
      assert.equal((await s.readMemory(d2.memoryReference!, 4, 8)).readUInt32LE(0), 0);
      const fields = await varMap(s, get(await varMap(s, descs), '[2]').variablesReference);
      assert.equal(get(fields, 'len').value, '0');
      const err = await s.continueToStop(stop.body.threadId!);
      assert.equal(err.body.text, 'virtio: zero sized buffers are not allowed');
      // Outside guest RAM: an error answer.
      await assert.rejects(s.writeMemory('0xfffffff000', Buffer.from([1])), /outside guest RAM/);
    });

    it('a device index (shadow_avail_idx) is settable like gdb\'s set var', async () => {
      const s = await sessions.stdio();
      const stop = await s.launchToStop({ scenario: DEFAULT_SCENARIO }, { filters: ['handle_output'] });
      const top = await topFrame(s, stop);
      const vq = await s.scope(top.id, 'Virtqueue');
      const r = await s.dc.setVariableRequest({ variablesReference: vq.variablesReference, name: 'shadow_avail_idx', value: '0' });
      assert.equal(r.body.value, '0');
      assert.equal((await s.state()).queues[0].shadow_avail_idx, 0);
    });
  });

  describe('evaluate', () => {
    async function atPop(s: Session) {
      const stop = await s.launchToStop({ scenario: DEFAULT_SCENARIO }, { functions: [{ name: 'virtqueue_pop', condition: 'vq.last_avail_idx == 1' }] });
      return { stop, top: await topFrame(s, stop), state: await s.state() };
    }

    it('avail.idx, vq.last_avail_idx, device.broken, le16(vring_avail + 2) agree with virtio/state', async () => {
      const s = await sessions.stdio();
      const { top, state } = await atPop(s);
      const q = state.queues[0];
      assert.equal((await s.evaluate('avail.idx', top.id)).result, String(q.avail.idx));
      assert.equal((await s.evaluate('vq.last_avail_idx', top.id)).result, String(q.last_avail_idx));
      assert.equal(q.last_avail_idx, 1);
      assert.equal((await s.evaluate('device.broken', top.id)).result, 'false');
      assert.equal((await s.evaluate('le16(vring_avail + 2)', top.id)).result, String(q.avail.idx));
      assert.equal((await s.evaluate('used.idx', undefined, 'repl')).result, String(q.used.idx), 'without a frame: queue 0');
      assert.equal((await s.evaluate('avail.idx - used.idx', top.id, 'hover')).result, String(q.avail.idx - q.used.idx));
    });

    it('an object is expandable', async () => {
      const s = await sessions.stdio();
      const { top, state } = await atPop(s);
      const r = await s.evaluate('vq', top.id);
      assert.ok(r.variablesReference > 0);
      const kids = await varMap(s, r.variablesReference);
      assert.equal(numberOf(get(kids, 'last_avail_idx')), state.queues[0].last_avail_idx);
    });

    it('a bad expression is an error answer with a message, and the session goes on', async () => {
      const s = await sessions.stdio();
      const { stop, top } = await atPop(s);
      await assert.rejects(s.evaluate('avail.idx +', top.id), (e: Error) => e.message.length > 0);
      await assert.rejects(s.evaluate('no_such_name', top.id), /no_such_name/);
      await assert.rejects(s.evaluate('process.exit(1)', top.id));
      assert.ok((await s.evaluate('avail.idx', top.id)).result.length > 0);
      const again = await s.continueToStop(stop.body.threadId!);
      assert.ok(again.body.reason);
    });
  });

  describe('virtio/state', () => {
    it('returns the DESIGN.md snapshot: device, queues[0] with every field, threads, coroutines', async () => {
      const s = await sessions.stdio();
      const { state } = await atRwComplete(s);
      const st: VirtioState = state;
      for (const k of ['status', 'guest_features', 'host_features', 'broken', 'errors', 'config', 'isr']) assert.ok(k in st.device, `device.${k}`);
      for (const k of ['capacity', 'seg_max', 'num_queues']) assert.ok(k in st.device.config, `device.config.${k}`);
      assert.equal(st.device.broken, false);
      assert.deepEqual(st.device.errors, []);
      assert.equal(st.queues.length, 1);
      const q = st.queues[0];
      const keys = ['index', 'num', 'vring_desc', 'vring_avail', 'vring_used', 'desc', 'avail', 'used', 'last_avail_idx', 'shadow_avail_idx', 'used_idx', 'signalled_used', 'signalled_used_valid', 'inuse', 'driver', 'inflight'];
      for (const k of keys) assert.ok(k in q, `queues[0].${k}`);
      assert.equal(q.num, 256);
      assert.equal(q.desc.length, 256);
      assert.deepEqual(Object.keys(q.desc[0]).sort(), ['addr', 'flags', 'len', 'next']);
      assert.deepEqual(Object.keys(q.avail).sort(), ['flags', 'idx', 'ring', 'used_event']);
      assert.deepEqual(Object.keys(q.used).sort(), ['avail_event', 'flags', 'idx', 'ring']);
      assert.equal(q.avail.ring.length, 256);
      assert.deepEqual(Object.keys(q.used.ring[0]).sort(), ['id', 'len']);
      for (const k of ['avail_idx_shadow', 'last_used_idx', 'num_free', 'free_head', 'num_added', 'broken']) assert.ok(q.driver && k in q.driver, `driver.${k}`);
      for (const k of ['index', 'ndescs', 'out_num', 'in_num', 'out_sg', 'in_sg']) assert.ok(k in q.inflight[0], `inflight[0].${k}`);
      // FIDELITY §8's layout for N = 256: avail at desc + 4096, used at the next 64-byte boundary after it.
      assert.equal(q.vring_avail, q.vring_desc + 4096);
      assert.equal(q.vring_used, q.vring_desc + 4672);
      assert.deepEqual(st.threads.map((t) => t.name).sort(), ['main-loop', 'vCPU 0']);
      for (const t of st.threads) for (const k of ['id', 'name', 'state', 'frames']) assert.ok(k in t, `threads[].${k}`);
      const co = st.coroutines.find((c) => c.entry === 'blk_aio_read_entry');
      assert.ok(co);
      for (const k of ['addr', 'entry', 'state', 'caller', 'frames']) assert.ok(k in co, `coroutines[].${k}`);
      assert.equal(co.state, 'running');
      assert.equal(typeof co.caller, 'number');
      assert.deepEqual(co.frames.map((f) => f.name), ['virtio_blk_rw_complete', 'blk_aio_complete', 'blk_aio_read_entry', 'coroutine_trampoline']);
      // Plain JSON numbers throughout.
      assert.equal(JSON.stringify(JSON.parse(JSON.stringify(st))), JSON.stringify(st));
    });

    it('at the end of the run: every request back, indices equal (FIDELITY §8 idle)', async () => {
      const s = await sessions.stdio();
      const stop = await s.launchToStop({ scenario: DEFAULT_SCENARIO }, { lines: [{ path: DEFAULT_SCENARIO, breakpoints: [{ line: 16 }] }] });
      await s.dc.setBreakpointsRequest({ source: { path: DEFAULT_SCENARIO }, breakpoints: [] });
      await s.dc.setFunctionBreakpointsRequest({ breakpoints: [{ name: 'do_idle', condition: 'used.idx == 7 && driver.last_used_idx == 7' }] });
      const idle = await s.continueToStop(stop.body.threadId!);
      assert.ok(idle);
      const q = (await s.state()).queues[0];
      assert.equal(q.avail.idx, 7);
      assert.equal(q.used.idx, 7);
      assert.equal(q.last_avail_idx, 7);
      assert.equal(q.inuse, 0);
      assert.deepEqual(q.inflight, []);
    });
  });
});
