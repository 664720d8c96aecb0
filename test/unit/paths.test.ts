/**
 * The data path, function by function, on the whole machine: the `qemu bt`
 * at `virtio_blk_rw_complete` that FIDELITY §5 shows (frame list and a
 * checked-in golden text), the notify paths and thread placements of §2
 * (ioeventfd off / on, main loop / IOThread) with the frame sides of the
 * backtrace, the §8 order of the trace points for one read, each AIO engine's
 * own completion path (io_uring, native, thread pool; flush included), the
 * determinism DESIGN.md promises (same run twice, other seeds), the
 * stop/resume/step API (a stop never changes the run) and the gdb-style
 * pointer arguments of frames.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { boot, fnNames, runToFunction, runToIdle } from '../helpers/machine';
import { BtSection, formatBacktrace, threadBacktrace } from '../../src/machine/state/backtrace';
import type { Machine } from '../../src/machine/machine';
import type { MachineOptions } from '../../src/machine/options';
import type { SimEvent } from '../../src/machine/sim/sim';
import type { EventRecord } from '../../src/machine/run';

const ROOT = path.resolve(__dirname, '../../..');
const DEFAULT_FILE = 'samples/default.virtio';
const DEFAULT_TEXT = fs.readFileSync(path.join(ROOT, DEFAULT_FILE), 'utf8');
const GOLDEN_RW_COMPLETE = path.join(ROOT, 'test/golden/rw_complete.bt.txt');

const ONE_READ = 'read 0 4096\n';

function names(section: BtSection): string[] {
  return section.frames.map((f) => f.name);
}

/** The machine stopped at the first entry of `fn`, or a failed assertion. */
function stopAt(m: Machine, fn: string, thread?: string): SimEvent {
  const ev = runToFunction(m, fn, thread);
  assert.ok(ev, `the run went idle before ${fn}${thread ? ` in ${thread}` : ''}`);
  assert.equal(ev.fn.name, fn);
  return ev;
}

/** One event the hook saw, copied (the simulator may reuse the object it hands the hook). */
interface Seen {
  seq: number;
  kind: 'enter' | 'point';
  fn: string;
  point: string | null;
  thread: string;
  depth: number;
}

function seen(ev: SimEvent): Seen {
  return { seq: ev.seq, kind: ev.kind, fn: ev.fn.name, point: ev.point ? ev.point.name : null, thread: ev.thread.name, depth: ev.depth };
}

/** Every event of a whole run, points included, with depths: the reference for the step tests. */
function allEvents(text: string, options: Partial<MachineOptions> = {}): Seen[] {
  const { m } = boot(text, options);
  const out: Seen[] = [];
  assert.equal(m.runUntil((ev) => { out.push(seen(ev)); return false; }), 'idle');
  return out;
}

function indexOf(ref: Seen[], ev: Seen): number {
  const i = ref.findIndex((r) => r.seq === ev.seq && r.kind === ev.kind && r.point === ev.point && r.thread === ev.thread);
  assert.ok(i >= 0, `event ${JSON.stringify(ev)} is not in the reference run`);
  assert.deepEqual(ref[i], ev, 'the stop differs from the same event in an uninterrupted run');
  return i;
}

/** A whole run's event log and final snapshot. */
function wholeRun(text: string, options: Partial<MachineOptions> = {}) {
  const { m, events } = boot(text, options, DEFAULT_FILE);
  runToIdle(m);
  assert.ok(m.idle, 'the run did not end idle');
  return { m, events, state: m.snapshot() };
}

function firstIndex(events: readonly EventRecord[], fn: string, from = 0): number {
  for (let i = from; i < events.length; i++) if (events[i].fn === fn) return i;
  return -1;
}

/** Selected function names in order, with immediate repeats collapsed (the second virtqueue_pop finds the ring empty). */
function selected(events: readonly EventRecord[], wanted: readonly string[]): string[] {
  const out: string[] = [];
  for (const e of events) if (wanted.includes(e.fn) && out[out.length - 1] !== e.fn) out.push(e.fn);
  return out;
}

describe('paths', () => {
  describe('FIDELITY §5: the qemu bt at virtio_blk_rw_complete', () => {
    const MAIN_LOOP_TAIL = [
      'aio_dispatch_handler', 'aio_dispatch_handlers', 'aio_dispatch', 'aio_ctx_dispatch', 'g_main_context_dispatch',
      'glib_pollfds_poll', 'os_host_main_loop_wait', 'main_loop_wait', 'qemu_main_loop', 'qemu_default_main', 'main',
    ];

    function atRwComplete() {
      const b = boot(DEFAULT_TEXT, {}, DEFAULT_FILE);
      const ev = stopAt(b.m, 'virtio_blk_rw_complete');
      return { ...b, ev, bt: threadBacktrace(ev.thread) };
    }

    it('section 0 is the coroutine: rw_complete ← blk_aio_complete ← blk_aio_read_entry ← coroutine_trampoline', () => {
      const { ev, bt } = atRwComplete();
      assert.equal(ev.thread.name, 'main-loop');
      assert.equal(bt[0].coroutine, null, 'the running stack has no Coroutine header');
      assert.deepEqual(names(bt[0]), ['virtio_blk_rw_complete', 'blk_aio_complete', 'blk_aio_read_entry', 'coroutine_trampoline']);
      assert.match(bt[0].frames[0].args, /^opaque=0x[0-9a-f]+, ret=0$/);
      assert.equal(bt[0].frames[3].args, 'i0=<optimized out>, i1=<optimized out>');
    });

    it('then exactly one Coroutine section: the caller, from the switch down to main', () => {
      const { ev, bt } = atRwComplete();
      assert.equal(bt.length, 2);
      const caller = bt[1];
      assert.ok(caller.coroutine !== null);
      // The caller is the main loop thread's leader coroutine (QEMU's per-thread main coroutine).
      assert.equal(caller.coroutine, ev.thread.leader?.ptr);
      assert.deepEqual(names(caller), [
        'qemu_coroutine_switch', 'qemu_aio_coroutine_enter', 'aio_co_enter', 'luring_process_completions', 'ioq_submit',
        'luring_io_unplug', 'raw_aio_unplug', 'bdrv_io_unplug', 'bdrv_io_unplug', 'blk_io_unplug',
        'virtio_blk_handle_vq', 'virtio_blk_handle_output', 'virtio_queue_notify_vq', ...MAIN_LOOP_TAIL,
      ]);
      const sw = caller.frames[0];
      assert.match(sw.args, /^from_=0x[0-9a-f]+, to_=0x[0-9a-f]+, action=COROUTINE_ENTER$/);
      // from_ is the caller itself, to_ the coroutine running now.
      assert.equal(sw.args.split(', ')[0], `from_=0x${caller.coroutine.toString(16)}`);
      assert.equal(sw.args.split(', ')[1], `to_=0x${(ev.thread.currentCo?.ptr ?? -1).toString(16)}`);
      assert.ok(bt.every((s) => s.frames.every((f) => f.side === 'qemu')), 'every frame is QEMU code');
    });

    it('leaves out the tail calls gdb cannot see, though they ran', () => {
      const { events, bt } = atRwComplete();
      const all = fnNames(events);
      assert.ok(all.includes('virtio_queue_host_notifier_read'), 'virtio_queue_host_notifier_read was entered');
      assert.ok(all.includes('aio_co_wake'), 'aio_co_wake was entered');
      const shown = bt.flatMap(names);
      assert.ok(!shown.includes('virtio_queue_host_notifier_read'));
      assert.ok(!shown.includes('aio_co_wake'));
    });

    it('prints as the checked-in golden text (test/golden/rw_complete.bt.txt)', () => {
      const { bt } = atRwComplete();
      const text = formatBacktrace(bt);
      const golden = fs.readFileSync(GOLDEN_RW_COMPLETE, 'utf8').replace(/\n$/, '');
      // The golden was written once and checked by eye against FIDELITY §5; a difference is a failure, never a rewrite.
      assert.equal(text, golden);
      assert.match(text.split('\n')[4], /^Coroutine at 0x[0-9a-f]+:$/);
    });
  });

  describe('FIDELITY §2: notify paths and thread placement', () => {
    it('ioeventfd off: vCPU 0 exits to QEMU, virtio_mmio_write → virtio_queue_notify → handle_output, over the guest frames', () => {
      const { m } = boot(ONE_READ, { ioeventfd: false });
      const ev = stopAt(m, 'virtio_blk_handle_output');
      assert.equal(ev.thread.name, 'vCPU 0');
      const bt = threadBacktrace(ev.thread);
      assert.equal(bt.length, 1);
      const frames = bt[0].frames;
      assert.deepEqual(frames.slice(0, 9).map((f) => f.name), [
        'virtio_blk_handle_output', 'virtio_queue_notify', 'virtio_mmio_write', 'memory_region_dispatch_write',
        'address_space_rw', 'kvm_cpu_exec', 'vm_notify', 'virtqueue_notify', 'virtio_queue_rq',
      ]);
      assert.deepEqual(frames.slice(0, 6).map((f) => f.side), ['qemu', 'qemu', 'qemu', 'qemu', 'qemu', 'qemu']);
      const guest = frames.slice(6, -1);
      assert.ok(guest.length >= 3);
      assert.ok(guest.every((f) => f.side === 'guest'), `guest frames: ${guest.map((f) => `${f.name}:${f.side}`).join(' ')}`);
      const bottom = frames[frames.length - 1];
      assert.deepEqual({ side: bottom.side, name: bottom.name, file: bottom.file, line: bottom.line }, { side: 'scenario', name: 'read 0 4096', file: 'test.virtio', line: 1 });
      assert.equal(frames[2].args.split(', ')[1], 'offset=80', 'the write is to QueueNotify (0x050)');
      assert.equal(frames[1].args.split(', ')[1], 'n=0');
    });

    it('ioeventfd on (default): the main loop runs handle_output from aio_dispatch_handler', () => {
      const { m } = boot(ONE_READ);
      const ev = stopAt(m, 'virtio_blk_handle_output');
      assert.equal(ev.thread.name, 'main-loop');
      const bt = threadBacktrace(ev.thread);
      assert.equal(bt.length, 1);
      assert.deepEqual(names(bt[0]), [
        'virtio_blk_handle_output', 'virtio_queue_notify_vq', 'aio_dispatch_handler', 'aio_dispatch_handlers', 'aio_dispatch',
        'aio_ctx_dispatch', 'g_main_context_dispatch', 'glib_pollfds_poll', 'os_host_main_loop_wait', 'main_loop_wait',
        'qemu_main_loop', 'qemu_default_main', 'main',
      ]);
      assert.ok(bt[0].frames.every((f) => f.side === 'qemu'));
    });

    it('iothread: the IOThread runs handle_output from aio_poll', () => {
      const { m } = boot(ONE_READ, { iothread: true });
      const ev = stopAt(m, 'virtio_blk_handle_output');
      assert.equal(ev.thread.name, 'iothread0');
      const bt = threadBacktrace(ev.thread);
      assert.equal(bt.length, 1);
      assert.deepEqual(names(bt[0]), [
        'virtio_blk_handle_output', 'virtio_queue_notify_vq', 'aio_dispatch_handler', 'aio_dispatch_ready_handlers',
        'aio_poll', 'iothread_run', 'qemu_thread_start',
      ]);
    });

    it('ioeventfd on: the kick is completed in KVM (ioeventfd_write), no MMIO exit to QueueNotify', () => {
      const { m, events } = boot(ONE_READ);
      const ev = stopAt(m, 'ioeventfd_write');
      assert.equal(ev.thread.name, 'vCPU 0');
      const frames = threadBacktrace(ev.thread)[0].frames;
      assert.deepEqual(frames.slice(0, 3).map((f) => [f.name, f.side]), [['ioeventfd_write', 'kvm'], ['vm_notify', 'guest'], ['virtqueue_notify', 'guest']]);
      runToIdle(m);
      const notifyWrites = events.filter((e) => e.fn === 'virtio_mmio_write' && /offset=80,/.test(e.args));
      assert.deepEqual(notifyWrites, []);
      assert.equal(events.filter((e) => e.fn === 'ioeventfd_write').length, 1);
      assert.ok(!fnNames(events).includes('virtio_queue_notify'));
    });

    it('ioeventfd off: the request coroutine is entered at once in vCPU 0, which holds the BQL', () => {
      // 7.2 util/async.c: in a thread without an AioContext of its own that holds the BQL (a vCPU in an
      // MMIO exit), qemu_get_current_aio_context() is the main context, so aio_co_enter(main, co) from
      // blk_aio_prwv enters the coroutine directly instead of scheduling it on the main loop.
      const { m, events } = wholeRun(ONE_READ, { ioeventfd: false });
      assert.equal(m.guest.requests[0].status, 'BLK_STS_OK');
      const threadOf = (fn: string) => events.filter((e) => e.fn === fn).map((e) => e.thread);
      assert.deepEqual(threadOf('blk_aio_read_entry'), ['vCPU 0']);
      assert.deepEqual(threadOf('luring_co_submit'), ['vCPU 0']);
      assert.deepEqual(threadOf('aio_co_schedule'), [], 'nothing is scheduled across threads');
      // io_uring completes cached reads inside ioq_submit (at blk_io_unplug), so the completion is there too.
      assert.deepEqual(threadOf('virtio_blk_rw_complete'), ['vCPU 0']);
      assert.deepEqual(threadOf('virtio_notify'), ['vCPU 0']);
      const unplug = firstIndex(events, 'blk_io_unplug');
      assert.ok(firstIndex(events, 'ioq_submit', unplug) > unplug, 'submitted at unplug, as with a dataplane');
    });

    it('ioeventfd off, aio=threads: the coroutine submits from vCPU 0, the completion bottom half runs in the main loop', () => {
      const { m, events } = wholeRun(ONE_READ, { ioeventfd: false, aio: 'threads' });
      assert.equal(m.guest.requests[0].status, 'BLK_STS_OK');
      const threadOf = (fn: string) => events.filter((e) => e.fn === fn).map((e) => e.thread);
      assert.deepEqual(threadOf('thread_pool_submit_co'), ['vCPU 0']);
      assert.deepEqual(threadOf('handle_aiocb_rw'), ['worker 0']);
      assert.deepEqual(threadOf('thread_pool_completion_bh'), ['main-loop']);
      assert.deepEqual(threadOf('virtio_blk_rw_complete'), ['main-loop']);
      assert.deepEqual(threadOf('virtio_notify'), ['main-loop']);
    });

    it('ioeventfd off: the kick is an MMIO write of offset=80 in vCPU 0, and KVM has no ioeventfd', () => {
      const { m, events } = boot(ONE_READ, { ioeventfd: false });
      runToIdle(m);
      const notifyWrites = events.filter((e) => e.fn === 'virtio_mmio_write' && /offset=80,/.test(e.args));
      assert.equal(notifyWrites.length, 1);
      assert.equal(notifyWrites[0].thread, 'vCPU 0');
      assert.ok(!fnNames(events).includes('ioeventfd_write'));
      assert.ok(!fnNames(events).includes('virtio_queue_notify_vq'));
    });
  });

  describe('FIDELITY §8: the order of one read, notify to interrupt', () => {
    const SELECTED = [
      'virtio_queue_notify_vq', 'virtio_queue_notify', 'virtqueue_pop', 'luring_co_submit', 'ioq_submit',
      'luring_process_completions', 'virtio_blk_rw_complete', 'virtio_blk_req_complete', 'virtqueue_fill',
      'virtqueue_flush', 'virtio_notify_irqfd', 'virtio_notify',
    ];
    const MIDDLE = [
      'virtqueue_pop', 'luring_co_submit', 'ioq_submit', 'luring_process_completions', 'virtio_blk_rw_complete',
      'virtio_blk_req_complete', 'virtqueue_fill', 'virtqueue_flush',
    ];

    for (const [label, options] of [['default', {}], ['iothread', { iothread: true }], ['eventIdx off', { eventIdx: false }]] as const) {
      it(`ioeventfd on (${label}): … virtqueue_flush, then virtio_notify_irqfd`, () => {
        const { events } = wholeRun(ONE_READ, options);
        assert.deepEqual(selected(events, SELECTED), ['virtio_queue_notify_vq', ...MIDDLE, 'virtio_notify_irqfd']);
      });
    }

    it('the dataplane batches through notify_guest_bh only without EVENT_IDX (FIDELITY §3.8)', () => {
      const withBh = wholeRun(ONE_READ, { eventIdx: false }).events;
      assert.deepEqual(selected(withBh, ['virtqueue_flush', 'virtio_blk_data_plane_notify', 'notify_guest_bh', 'virtio_notify_irqfd']),
        ['virtqueue_flush', 'virtio_blk_data_plane_notify', 'notify_guest_bh', 'virtio_notify_irqfd']);
      const bh = withBh.find((e) => e.fn === 'notify_guest_bh');
      const irqfd = withBh.find((e) => e.fn === 'virtio_notify_irqfd');
      assert.equal(irqfd?.depth, (bh?.depth ?? -2) + 1, 'the bottom half calls virtio_notify_irqfd');
      const direct = wholeRun(ONE_READ).events;
      assert.ok(!fnNames(direct).includes('notify_guest_bh'));
      const dp = direct.find((e) => e.fn === 'virtio_blk_data_plane_notify');
      assert.equal(direct.find((e) => e.fn === 'virtio_notify_irqfd')?.depth, (dp?.depth ?? -2) + 1, 'with EVENT_IDX: straight from virtio_blk_data_plane_notify');
    });

    it('ioeventfd off: virtio_queue_notify … virtqueue_flush, then virtio_notify', () => {
      const { events } = wholeRun(ONE_READ, { ioeventfd: false });
      assert.deepEqual(selected(events, SELECTED), ['virtio_queue_notify', ...MIDDLE, 'virtio_notify']);
    });

    it('the element is pushed with len 4097 (data + status) and the guest gets it back', () => {
      const { m, events } = wholeRun(ONE_READ);
      const fill = events.find((e) => e.fn === 'virtqueue_fill');
      assert.match(fill?.args ?? '', /, len=4097, idx=0$/);
      assert.equal(m.guest.requests.length, 1);
      assert.equal(m.guest.requests[0].status, 'BLK_STS_OK');
      const i = firstIndex(events, 'virtqueue_flush');
      assert.ok(firstIndex(events, 'virtqueue_get_buf', i) > i, 'the guest reaps the used element after the flush');
    });
  });

  describe('AIO engines (aio=io_uring | native | threads)', () => {
    /** Every request of the default sample ends OK, and the data went through the image. */
    function checkRequests(m: Machine): void {
      const rq = m.guest.requests;
      assert.equal(rq.length, 7);
      for (const r of rq) assert.equal(r.status, 'BLK_STS_OK', `${r.statement}: ${r.status}`);
      const read0 = rq.find((r) => r.statement === 'read 0 4096');
      assert.ok(read0?.data_hex?.startsWith(Buffer.from('virtio-debug sector 0\n').toString('hex')));
      const readBack = rq.find((r) => r.statement === 'read 8 512');
      assert.ok(readBack?.data_hex?.startsWith(Buffer.from('hello, virtio\0').toString('hex')), 'the write is read back');
    }

    it('io_uring: luring_co_submit, completed inside ioq_submit', () => {
      const { m, events } = wholeRun(DEFAULT_TEXT, { aio: 'io_uring' });
      checkRequests(m);
      const names = fnNames(events);
      assert.ok(names.includes('luring_co_submit'));
      for (const other of ['laio_co_submit', 'thread_pool_submit_co', 'handle_aiocb_rw', 'handle_aiocb_flush']) assert.ok(!names.includes(other), other);
      assert.deepEqual(m.sim.threads.map((t) => t.name), ['main-loop', 'vCPU 0'], 'no worker thread was started');
    });

    for (const iothread of [false, true]) {
      const ctxThread = iothread ? 'iothread0' : 'main-loop';
      it(`native${iothread ? ' with an IOThread' : ''}: laio_co_submit, then qemu_laio_completion_cb in ${ctxThread}`, () => {
        const { m, events } = wholeRun(DEFAULT_TEXT, { aio: 'native', iothread });
        checkRequests(m);
        const submit = firstIndex(events, 'laio_co_submit');
        assert.ok(submit >= 0);
        assert.equal(events[submit].thread, ctxThread);
        const cb = firstIndex(events, 'qemu_laio_completion_cb', submit);
        assert.ok(cb > submit, 'the completion comes back through the event loop');
        assert.equal(events[cb].thread, ctxThread);
        const done = firstIndex(events, 'virtio_blk_rw_complete', submit);
        assert.ok(done > cb, 'rw_complete runs after the completion callback');
        assert.equal(events[done].thread, ctxThread);
        assert.ok(!fnNames(events).includes('luring_co_submit'));
      });

      it(`threads${iothread ? ' with an IOThread' : ''}: thread_pool_submit_co, worker 0 runs handle_aiocb_rw, thread_pool_completion_bh in ${ctxThread}`, () => {
        const { m, events } = wholeRun(DEFAULT_TEXT, { aio: 'threads', iothread });
        checkRequests(m);
        const submit = firstIndex(events, 'thread_pool_submit_co');
        assert.ok(submit >= 0);
        assert.equal(events[submit].thread, ctxThread);
        const work = firstIndex(events, 'handle_aiocb_rw', submit);
        assert.ok(work > submit);
        assert.equal(events[work].thread, 'worker 0');
        const bh = firstIndex(events, 'thread_pool_completion_bh', work);
        assert.ok(bh > work);
        assert.equal(events[bh].thread, ctxThread);
        const done = firstIndex(events, 'virtio_blk_rw_complete', submit);
        assert.ok(done > bh);
        assert.equal(events[done].thread, ctxThread);
        assert.ok(events.filter((e) => e.fn === 'handle_aiocb_rw').every((e) => /^worker \d+$/.test(e.thread)), 'only workers do the I/O');
        assert.ok(!fnNames(events).includes('luring_co_submit'));
        assert.ok(!fnNames(events).includes('laio_co_submit'));
      });
    }

    it('a flush with aio=native goes through the thread pool (handle_aiocb_flush in a worker)', () => {
      const { m, events } = wholeRun('flush\n', { aio: 'native' });
      assert.equal(m.guest.requests[0].status, 'BLK_STS_OK');
      const flush = events.filter((e) => e.fn === 'handle_aiocb_flush');
      assert.equal(flush.length, 1);
      assert.match(flush[0].thread, /^worker \d+$/);
      const toDisk = firstIndex(events, 'raw_co_flush_to_disk');
      assert.ok(toDisk >= 0 && firstIndex(events, 'thread_pool_submit_co', toDisk) > toDisk);
      assert.ok(!fnNames(events).includes('laio_co_submit'), 'linux-aio cannot flush');
    });

    it('a flush with aio=io_uring goes through luring_co_submit, no thread pool', () => {
      const { m, events } = wholeRun('flush\n', { aio: 'io_uring' });
      assert.equal(m.guest.requests[0].status, 'BLK_STS_OK');
      const toDisk = firstIndex(events, 'raw_co_flush_to_disk');
      assert.ok(toDisk >= 0);
      const submit = firstIndex(events, 'luring_co_submit', toDisk);
      assert.ok(submit > toDisk);
      assert.equal(events[submit].depth, events[toDisk].depth + 1, 'raw_co_flush_to_disk calls luring_co_submit');
      assert.ok(!fnNames(events).includes('handle_aiocb_flush'));
      assert.ok(!fnNames(events).includes('thread_pool_submit_co'));
    });
  });

  describe('determinism', () => {
    for (const aio of ['io_uring', 'native', 'threads'] as const) {
      it(`the same scenario and options give the same events and snapshot (aio=${aio})`, () => {
        const a = wholeRun(DEFAULT_TEXT, { aio });
        const b = wholeRun(DEFAULT_TEXT, { aio });
        assert.ok(a.events.length > 500);
        assert.deepEqual(JSON.parse(JSON.stringify(b.events)), JSON.parse(JSON.stringify(a.events)));
        assert.deepEqual(JSON.parse(JSON.stringify(b.state)), JSON.parse(JSON.stringify(a.state)));
      });
    }

    it('another seed changes only the timing: same events, same rings, other time_ns (aio=threads)', () => {
      const a = wholeRun(DEFAULT_TEXT, { aio: 'threads', seed: 0 });
      const b = wholeRun(DEFAULT_TEXT, { aio: 'threads', seed: 12345 });
      // What holds: the seed draws host I/O latencies; with one vCPU issuing I/O synchronously they
      // move the clock but not the interleaving, so even the event list is identical.
      assert.deepEqual(JSON.parse(JSON.stringify(b.events)), JSON.parse(JSON.stringify(a.events)));
      assert.notEqual(b.state.time_ns, a.state.time_ns, 'the seed must reach the latencies');
      assert.deepEqual(JSON.parse(JSON.stringify(b.state.queues)), JSON.parse(JSON.stringify(a.state.queues)));
      const { time_ns: _ta, ...restA } = a.state;
      const { time_ns: _tb, ...restB } = b.state;
      assert.deepEqual(JSON.parse(JSON.stringify(restB)), JSON.parse(JSON.stringify(restA)));
      // The guest saw the same bytes.
      assert.deepEqual(b.m.guest.requests.map((r) => r.data_hex), a.m.guest.requests.map((r) => r.data_hex));
    });

    it('another seed changes nothing at all with io_uring: its completions are inline, nothing is drawn', () => {
      const a = wholeRun(DEFAULT_TEXT, { aio: 'io_uring', seed: 1 });
      const b = wholeRun(DEFAULT_TEXT, { aio: 'io_uring', seed: 99 });
      assert.deepEqual(JSON.parse(JSON.stringify(b.events)), JSON.parse(JSON.stringify(a.events)));
      assert.deepEqual(JSON.parse(JSON.stringify(b.state)), JSON.parse(JSON.stringify(a.state)));
    });

    it('another seed may reorder events with aio=native, but the final rings and data are the same', () => {
      const a = wholeRun(DEFAULT_TEXT, { aio: 'native', seed: 1 });
      const b = wholeRun(DEFAULT_TEXT, { aio: 'native', seed: 99 });
      // What holds: the flush's drawn latency (80-200 µs) decides whether it completes before or after the
      // next statement is issued, so the interleaving differs; what the rings hold at the end does not.
      assert.notDeepEqual(b.events.map((e) => `${e.thread} ${e.fn}`), a.events.map((e) => `${e.thread} ${e.fn}`));
      assert.notEqual(b.state.time_ns, a.state.time_ns);
      assert.deepEqual(JSON.parse(JSON.stringify(b.state.queues)), JSON.parse(JSON.stringify(a.state.queues)));
      assert.deepEqual(b.state.device, a.state.device);
      assert.deepEqual(b.m.guest.requests.map((r) => [r.statement, r.status, r.data_hex]), a.m.guest.requests.map((r) => [r.statement, r.status, r.data_hex]));
    });
  });

  describe('stop, resume, step', () => {
    it('a stop at an event, then run(), ends exactly where an uninterrupted run ends', () => {
      const ref = wholeRun(DEFAULT_TEXT);
      const { m, events } = boot(DEFAULT_TEXT, {}, DEFAULT_FILE);
      let stops = 0;
      for (const fn of ['virtqueue_pop', 'virtio_blk_rw_complete', 'virtqueue_get_buf']) {
        assert.ok(stopAt(m, fn));
        stops++;
      }
      assert.equal(stops, 3);
      runToIdle(m);
      assert.deepEqual(JSON.parse(JSON.stringify(events)), JSON.parse(JSON.stringify(ref.events)));
      assert.deepEqual(JSON.parse(JSON.stringify(m.snapshot())), JSON.parse(JSON.stringify(ref.state)));
    });

    for (const options of [{}, { aio: 'threads', iothread: true }, { ioeventfd: false, aio: 'native' }] as Partial<MachineOptions>[]) {
      it(`stopping at every single event still gives the same run (${JSON.stringify(options)})`, () => {
        const ref = wholeRun(DEFAULT_TEXT, options);
        const { m, events } = boot(DEFAULT_TEXT, options, DEFAULT_FILE);
        let n = 0;
        while (m.runUntil(() => true) === 'stopped') n++;
        assert.ok(n >= ref.events.length, `${n} stops for ${ref.events.length} entries`);
        assert.deepEqual(JSON.parse(JSON.stringify(events)), JSON.parse(JSON.stringify(ref.events)));
        assert.deepEqual(JSON.parse(JSON.stringify(m.snapshot())), JSON.parse(JSON.stringify(ref.state)));
      });
    }

    it('stopping at every event point, over and over, still ends in the same state', () => {
      const ref = wholeRun(DEFAULT_TEXT);
      const { m, events } = boot(DEFAULT_TEXT, {}, DEFAULT_FILE);
      const points = new Set<string>();
      let n = 0;
      while (m.runUntil((ev) => ev.kind === 'point') === 'stopped') {
        const ev = m.stopEvent!;
        assert.equal(ev.kind, 'point');
        assert.ok(ev.point);
        // A point is inside the frame that reached it: that frame is the top of the backtrace.
        assert.equal(threadBacktrace(ev.thread)[0].frames[0].name, ev.fn.name);
        points.add(`${ev.fn.name}:${ev.point.name}`);
        n++;
      }
      assert.ok(n > 50, `only ${n} point stops`);
      for (const p of ['virtqueue_add_split:wmb', 'virtqueue_split_pop:read_head', 'virtqueue_flush:used_idx', 'virtio_should_notify:mb']) {
        assert.ok(points.has(p), `no stop at ${p}`);
      }
      assert.ok(m.idle);
      assert.deepEqual(JSON.parse(JSON.stringify(events)), JSON.parse(JSON.stringify(ref.events)));
      assert.deepEqual(JSON.parse(JSON.stringify(m.snapshot())), JSON.parse(JSON.stringify(ref.state)));
    });

    /** Stop with `first`, step `kind` `times` times; each stop must be the event the rule picks in the reference run. */
    function checkSteps(text: string, options: Partial<MachineOptions>, first: string, kind: 'in' | 'over' | 'out', times: number): Seen[] {
      const ref = allEvents(text, options);
      const { m } = boot(text, options);
      let start = seen(stopAt(m, first));
      const stops: Seen[] = [];
      for (let k = 0; k < times; k++) {
        const i = indexOf(ref, start);
        const thread = m.sim.threads.find((t) => t.name === start.thread)!;
        const expected = ref.slice(i + 1).find((r) => r.thread === start.thread && (kind === 'in' || (kind === 'over' ? r.depth <= start.depth : r.depth < start.depth)));
        const r = m.step(thread, kind);
        if (expected === undefined) {
          assert.notEqual(r, 'stopped', `step ${kind} stopped though no event qualifies`);
          break;
        }
        assert.equal(r, 'stopped', `step ${kind} from ${start.fn} did not stop`);
        const got = seen(m.stopEvent!);
        assert.deepEqual(got, expected, `step ${kind} #${k} from ${start.fn}@${start.depth}`);
        if (kind === 'over') assert.ok(got.depth <= start.depth);
        if (kind === 'out') assert.ok(got.depth < start.depth);
        indexOf(ref, got);
        stops.push(got);
        start = got;
      }
      return stops;
    }

    it("step 'in' goes to the next event of the same thread", () => {
      const stops = checkSteps(ONE_READ, {}, 'virtio_blk_handle_output', 'in', 40);
      assert.deepEqual(stops.slice(0, 3).map((s) => s.fn), ['virtio_blk_handle_vq', 'blk_io_plug', 'bdrv_io_plug']);
      assert.ok(stops.some((s) => s.kind === 'point'), 'stepping in also stops at event points');
      assert.ok(stops.every((s) => s.thread === 'main-loop'));
    });

    it("step 'in' from the vCPU's kick ignores what the main loop does meanwhile", () => {
      const stops = checkSteps(ONE_READ, {}, 'ioeventfd_write', 'in', 5);
      assert.ok(stops.every((s) => s.thread === 'vCPU 0'));
    });

    it("step 'over' never stops deeper than where it started", () => {
      const stops = checkSteps(DEFAULT_TEXT, {}, 'virtio_blk_handle_output', 'over', 20);
      // Over the whole request: back in main_loop_wait, then once per loop iteration until the run is idle.
      assert.ok(stops.length >= 3 && stops.length < 20, `${stops.length} stops`);
      assert.ok(stops.every((s) => s.fn === 'main_loop_wait' && s.depth === 4), stops.map((s) => `${s.fn}@${s.depth}`).join(' '));
    });

    it("step 'over' from a function with children stops at its next sibling", () => {
      const stops = checkSteps(ONE_READ, {}, 'virtqueue_push', 'over', 1);
      assert.equal(stops[0].fn, 'virtio_blk_data_plane_notify');
    });

    it("step 'over' from the kick in vCPU 0 skips the device and stays in the guest", () => {
      const stops = checkSteps(DEFAULT_TEXT, {}, 'virtqueue_notify', 'over', 10);
      assert.equal(stops.length, 10);
      assert.ok(stops.every((s) => s.thread === 'vCPU 0'));
      assert.ok(!stops.some((s) => s.fn === 'vm_notify'));
    });

    it("step 'out' stops shallower, also out of a coroutine", () => {
      // virtqueue_fill runs in the request's coroutine; its sibling virtqueue_flush (same depth) is not a stop.
      const stops = checkSteps(DEFAULT_TEXT, {}, 'virtqueue_fill', 'out', 3);
      assert.deepEqual(stops.slice(0, 2).map((s) => s.fn), ['virtio_blk_data_plane_notify', 'main_loop_wait']);
      for (let k = 1; k < stops.length; k++) assert.ok(stops[k].depth < stops[k - 1].depth);
    });

    it("step 'out' from virtqueue_split_pop skips its event points", () => {
      const stops = checkSteps(ONE_READ, {}, 'virtqueue_split_pop', 'out', 1);
      assert.equal(stops.length, 1);
      assert.notEqual(stops[0].fn, 'virtqueue_split_pop');
    });
  });

  describe('frame arguments, gdb-style', () => {
    const TWO_READS = 'read 0 4096\nread 8 4096\n';

    function handleOutputFrame(m: Machine) {
      const ev = stopAt(m, 'virtio_blk_handle_output');
      return threadBacktrace(ev.thread)[0].frames[0];
    }

    it('handle_output reads (vdev=0x…, vq=0x…), the same in two runs and at two stops of one run', () => {
      const a = boot(TWO_READS);
      const first = handleOutputFrame(a.m);
      assert.equal(first.name, 'virtio_blk_handle_output');
      assert.match(first.args, /^vdev=0x[0-9a-f]+, vq=0x[0-9a-f]+$/);
      const second = handleOutputFrame(a.m);
      assert.equal(second.args, first.args, 'the same device and queue at the second kick');
      const b = boot(TWO_READS);
      assert.equal(handleOutputFrame(b.m).args, first.args, 'the same pointers in another run');
      // A pointer names an object: the VirtQueue of the frame below is the same vq.
      const bt = threadBacktrace(a.m.stopEvent!.thread)[0].frames;
      assert.equal(bt[1].name, 'virtio_queue_notify_vq');
      assert.equal(bt[1].args, first.args.replace(/^vdev=0x[0-9a-f]+, /, ''));
    });

    it('the vdev pointer of handle_output is the one rw_complete reaches through its request', () => {
      const { m, events } = boot(ONE_READ);
      const out = handleOutputFrame(m);
      stopAt(m, 'virtio_blk_rw_complete');
      const vdev = out.args.split(', ')[0].slice('vdev='.length);
      const handleVq = events.find((e) => e.fn === 'virtio_blk_handle_vq');
      assert.equal(handleVq?.args.split(', ')[0], `s=${vdev}`, 'virtio_blk_handle_vq (s=vdev) — the same VirtIOBlock');
      const req = events.find((e) => e.fn === 'virtio_blk_handle_request')?.args.split(', ')[0].slice('req='.length);
      const rw = threadBacktrace(m.stopEvent!.thread)[0].frames[0];
      assert.equal(rw.args, `opaque=${req}, ret=0`, 'rw_complete gets the VirtIOBlockReq handle_request had');
    });
  });
});
