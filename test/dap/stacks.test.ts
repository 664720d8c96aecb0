/**
 * DAP: threads and the CALL STACK. Thread names (vCPU 0, main-loop,
 * iothread0, thread-pool workers, suspended coroutines as threads of their
 * own); the `qemu bt` of FIDELITY §5 at virtio_blk_rw_complete, function for
 * function, with its `Coroutine at 0x…:` label frame; the vCPU's guest → QEMU
 * label with ioeventfd off (and the KVM one with ioeventfd on); frame names
 * gdb-style; frame sources that exist; paging (startFrame/levels).
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DebugProtocol } from '@vscode/debugprotocol';
import { DEFAULT_SCENARIO, ROOT, Session, fnName, sessionPerTest } from './helpers';

/** FIDELITY §5 (and §2's main loop frames): the whole CALL STACK at virtio_blk_rw_complete, io_uring, no iothread. */
const RW_COMPLETE_STACK = [
  'virtio_blk_rw_complete', 'blk_aio_complete', 'blk_aio_read_entry', 'coroutine_trampoline',
  'Coroutine at',
  'qemu_coroutine_switch', 'qemu_aio_coroutine_enter', 'aio_co_enter', 'luring_process_completions', 'ioq_submit',
  'luring_io_unplug', 'raw_aio_unplug', 'bdrv_io_unplug', 'bdrv_io_unplug', 'blk_io_unplug',
  'virtio_blk_handle_vq', 'virtio_blk_handle_output', 'virtio_queue_notify_vq',
  'aio_dispatch_handler', 'aio_dispatch_handlers', 'aio_dispatch', 'aio_ctx_dispatch', 'g_main_context_dispatch',
  'glib_pollfds_poll', 'os_host_main_loop_wait', 'main_loop_wait', 'qemu_main_loop', 'qemu_default_main', 'main',
];

/** gdb's frame name: `fn (name=value, ...)`, or `fn ()`. */
const GDB_FRAME = /^[A-Za-z_]\w* \((?:[A-Za-z_]\w*=(?:0x[0-9a-f]+|-?\d+|<optimized out>|\.\.\.|false|true|[A-Z_][A-Z0-9_]*)(?:, (?=[A-Za-z_]))?)*\)$/;

function names(frames: DebugProtocol.StackFrame[]): string[] {
  return frames.map((f) => (f.presentationHint === 'label' && f.name.startsWith('Coroutine at ') ? 'Coroutine at' : fnName(f)));
}

async function threadNamed(s: Session, re: RegExp): Promise<DebugProtocol.Thread | undefined> {
  return (await s.threads()).find((t) => re.test(t.name));
}

describe('dap: threads and stacks', function () {
  this.timeout(60_000);
  const sessions = sessionPerTest();

  describe('threads', () => {
    it('by default: main-loop and vCPU 0 only', async () => {
      const s = await sessions.stdio();
      await s.launchToStop({ scenario: DEFAULT_SCENARIO, stopOnEntry: true });
      const threads = await s.threads();
      assert.deepEqual(threads.map((t) => t.name).sort(), ['main-loop', 'vCPU 0']);
      assert.equal(new Set(threads.map((t) => t.id)).size, threads.length, 'ids are unique');
    });

    it('aio "threads": thread-pool workers appear once the pool is used', async () => {
      const s = await sessions.stdio();
      const stop = await s.launchToStop({ scenario: DEFAULT_SCENARIO, aio: 'threads' }, { filters: ['rw_complete'] });
      const worker = await threadNamed(s, /^worker \d+$/);
      assert.ok(worker, JSON.stringify(await s.threads()));
      const frames = await s.stack(worker.id);
      assert.ok(frames.some((f) => fnName(f) === 'worker_thread'), names(frames).join(' < '));
      // The completion came back through the thread pool's bottom half.
      const main = await s.stack(stop.body.threadId!);
      assert.ok(names(main).includes('thread_pool_completion_bh'), names(main).join(' < '));
    });

    it('iothread: true: iothread0 runs the device and the request coroutine', async () => {
      const s = await sessions.stdio();
      const stop = await s.launchToStop({ scenario: DEFAULT_SCENARIO, iothread: true }, { filters: ['rw_complete'] });
      const threads = await s.threads();
      assert.ok(threads.some((t) => t.name === 'iothread0'));
      assert.equal(threads.find((t) => t.id === stop.body.threadId)?.name, 'iothread0');
      const n = names(await s.stack(stop.body.threadId!));
      assert.deepEqual(n.slice(0, 5), ['virtio_blk_rw_complete', 'blk_aio_complete', 'blk_aio_read_entry', 'coroutine_trampoline', 'Coroutine at']);
      assert.ok(n.join(' ').endsWith('aio_poll iothread_run qemu_thread_start'), n.join(' < '));
    });

    it('a suspended coroutine is a thread of its own: `coroutine 0x… (blk_aio_read_entry)`', async () => {
      const s = await sessions.stdio();
      // aio native: the read was submitted and the coroutine yielded, inside virtio_blk_handle_vq.
      const stop = await s.launchToStop({ scenario: DEFAULT_SCENARIO, aio: 'native' }, { functions: [{ name: 'blk_io_unplug' }] });
      const co = await threadNamed(s, /^coroutine /);
      assert.ok(co, JSON.stringify(await s.threads()));
      const m = /^coroutine (0x[0-9a-f]+) \(blk_aio_read_entry\)$/.exec(co.name);
      assert.ok(m, co.name);
      const state = await s.state();
      const snap = state.coroutines.find((c) => c.addr === Number(m[1]));
      assert.ok(snap, 'virtio/state lists the coroutine');
      assert.equal(snap.entry, 'blk_aio_read_entry');
      assert.equal(snap.state, 'suspended');

      const frames = await s.stack(co.id);
      const n = names(frames);
      assert.equal(n[0], 'qemu_coroutine_switch');
      assert.match(frames[0].name, /action=COROUTINE_YIELD\)$/);
      assert.equal(n[1], 'qemu_coroutine_yield');
      assert.ok(n.includes('laio_co_submit'), n.join(' < '));
      assert.deepEqual(n.slice(-2), ['blk_aio_read_entry', 'coroutine_trampoline']);
      assert.deepEqual(n, snap.frames.map((f) => f.name), 'the same frames as virtio/state');
      // The stopped thread is in the device, not in the coroutine.
      const main = names(await s.stack(stop.body.threadId!));
      assert.deepEqual(main.slice(0, 2), ['blk_io_unplug', 'virtio_blk_handle_vq']);
      assert.ok(!main.includes('Coroutine at'));
      // A coroutine cannot be stepped on its own; the answer says so.
      await assert.rejects(s.dc.nextRequest({ threadId: co.id }), /coroutine/);
    });

    it('a coroutine thread goes away when the coroutine ends', async () => {
      const s = await sessions.stdio();
      const stop = await s.launchToStop({ scenario: DEFAULT_SCENARIO, aio: 'native' }, { functions: [{ name: 'blk_io_unplug' }] });
      const co = await threadNamed(s, /^coroutine /);
      assert.ok(co);
      await s.dc.setFunctionBreakpointsRequest({ breakpoints: [{ name: 'virtqueue_get_buf' }] });
      const later = await s.continueToStop(stop.body.threadId!);
      assert.equal((await threadNamed(s, /^coroutine /)), undefined, 'the request completed; its coroutine is gone');
      await assert.rejects(s.stack(co.id));
      assert.ok((await s.stack(later.body.threadId!)).length > 0);
    });
  });

  describe('FIDELITY §5: the CALL STACK at virtio_blk_rw_complete', () => {
    async function atRwComplete(s: Session): Promise<{ stop: DebugProtocol.StoppedEvent; frames: DebugProtocol.StackFrame[] }> {
      const stop = await s.launchToStop({ scenario: DEFAULT_SCENARIO }, { filters: ['rw_complete'] });
      return { stop, frames: await s.stack(stop.body.threadId!) };
    }

    it('is the coroutine, a `Coroutine at 0x…:` label, then the caller down to main, function for function', async () => {
      const s = await sessions.stdio();
      const { stop, frames } = await atRwComplete(s);
      assert.equal((await s.threads()).find((t) => t.id === stop.body.threadId)?.name, 'main-loop');
      assert.deepEqual(names(frames), RW_COMPLETE_STACK);
      const label = frames[4];
      assert.equal(label.presentationHint, 'label');
      assert.match(label.name, /^Coroutine at 0x[0-9a-f]+:$/);
      assert.equal(label.source, undefined, 'a label has no source');
      assert.equal(frames.filter((f) => f.presentationHint === 'label').length, 1, 'main-loop has no guest frames: no other label');
    });

    it('names frames gdb-style: `fn (arg=0x…, …)`, the switch ENTERing the running coroutine from the label\'s', async () => {
      const s = await sessions.stdio();
      const { frames } = await atRwComplete(s);
      for (const f of frames) if (f.presentationHint !== 'label') assert.match(f.name, GDB_FRAME);
      assert.match(frames[0].name, /^virtio_blk_rw_complete \(opaque=0x[0-9a-f]+, ret=0\)$/);
      assert.equal(frames[3].name, 'coroutine_trampoline (i0=<optimized out>, i1=<optimized out>)');
      const sw = /^qemu_coroutine_switch \(from_=(0x[0-9a-f]+), to_=(0x[0-9a-f]+), action=COROUTINE_ENTER\)$/.exec(frames[5].name);
      assert.ok(sw, frames[5].name);
      assert.equal(frames[4].name, `Coroutine at ${sw[1]}:`, 'the label names the caller the switch came from');
      const running = (await s.state()).coroutines.find((c) => c.state === 'running');
      assert.ok(running);
      assert.equal(Number(sw[2]), running.addr, 'to_ is the coroutine running now');
      assert.equal(running.entry, 'blk_aio_read_entry');
      assert.equal(frames[frames.length - 1].name, 'main (argc=24, argv=0x7fffffffe2a8)');
    });

    it('frames point at model sources that exist, at lines inside them', async () => {
      const s = await sessions.stdio();
      const { frames } = await atRwComplete(s);
      for (const f of frames) {
        if (f.presentationHint === 'label') continue;
        const p = f.source?.path;
        assert.ok(p && path.isAbsolute(p), `${f.name}: ${p}`);
        assert.ok(fs.existsSync(p), `${f.name}: ${p} does not exist`);
        assert.ok(p.startsWith(path.join(ROOT, 'src', 'machine', 'qemu') + path.sep), `${f.name}: ${p}`);
        const lines = fs.readFileSync(p, 'utf8').split('\n').length;
        assert.ok(f.line >= 1 && f.line <= lines, `${f.name}: line ${f.line} of ${lines}`);
      }
      assert.equal(frames[0].source?.path, path.join(ROOT, 'src/machine/qemu/hw/block/virtio-blk.ts'));
      // The top frame's line is inside virtio_blk_rw_complete's body.
      const text = fs.readFileSync(frames[0].source!.path!, 'utf8').split('\n');
      const header = text.findIndex((l) => /function\* virtio_blk_rw_complete\(/.test(l)) + 1;
      assert.ok(frames[0].line >= header && frames[0].line <= header + 3, `line ${frames[0].line}, header at ${header}`);
    });

    it('the frames are the ones virtio/state lists for main-loop', async () => {
      const s = await sessions.stdio();
      const { frames } = await atRwComplete(s);
      const t = (await s.state()).threads.find((x) => x.name === 'main-loop');
      assert.ok(t);
      assert.equal(t.state, 'running');
      assert.deepEqual(t.frames.map((f) => f.name), names(frames).filter((n) => n !== 'Coroutine at'));
    });

    it('pages: startFrame and levels give slices of the same stack, with totalFrames', async () => {
      const s = await sessions.stdio();
      const { stop, frames } = await atRwComplete(s);
      const first = await s.dc.stackTraceRequest({ threadId: stop.body.threadId!, startFrame: 0, levels: 5 });
      assert.equal(first.body.stackFrames.length, 5);
      assert.equal(first.body.totalFrames, frames.length);
      const rest = await s.dc.stackTraceRequest({ threadId: stop.body.threadId!, startFrame: 5, levels: 100 });
      assert.deepEqual([...first.body.stackFrames, ...rest.body.stackFrames].map((f) => f.name), frames.map((f) => f.name));
    });
  });

  describe('vCPU 0: where the guest leaves for the host', () => {
    it('ioeventfd off: at handle_output a label separates QEMU (kvm_cpu_exec …) from the guest (vm_notify …); the scenario line is last', async () => {
      const s = await sessions.stdio();
      const stop = await s.launchToStop({ scenario: DEFAULT_SCENARIO, ioeventfd: false }, { filters: ['handle_output'] });
      assert.equal((await s.threads()).find((t) => t.id === stop.body.threadId)?.name, 'vCPU 0');
      const frames = await s.stack(stop.body.threadId!);
      const labels = frames.map((f, i) => (f.presentationHint === 'label' ? i : -1)).filter((i) => i >= 0);
      assert.equal(labels.length, 1, names(frames).join(' < '));
      const at = labels[0];
      assert.match(frames[at].name, /MMIO/);
      const host = frames.slice(0, at);
      const guest = frames.slice(at + 1, -1);
      assert.deepEqual(names(host), ['virtio_blk_handle_output', 'virtio_queue_notify', 'virtio_mmio_write', 'memory_region_dispatch_write', 'address_space_rw', 'kvm_cpu_exec']);
      assert.match(host[2].name, /^virtio_mmio_write \(opaque=0x[0-9a-f]+, offset=80, value=0, size=4\)$/, 'QueueNotify (0x50) of queue 0');
      assert.deepEqual(names(guest).slice(0, 3), ['vm_notify', 'virtqueue_notify', 'virtio_queue_rq']);
      for (const f of host) assert.ok(f.source?.path?.includes(`${path.sep}src${path.sep}machine${path.sep}qemu${path.sep}`), `${f.name}: ${f.source?.path}`);
      for (const f of guest) assert.ok(f.source?.path?.includes(`${path.sep}src${path.sep}machine${path.sep}linux${path.sep}`), `${f.name}: ${f.source?.path}`);
      const last = frames[frames.length - 1];
      assert.equal(last.name, 'read 0 4096');
      assert.equal(last.source?.path, DEFAULT_SCENARIO);
      assert.equal(last.line, 7);
      for (const f of frames) if (f.presentationHint !== 'label' && f !== last) assert.match(f.name, GDB_FRAME);
    });

    it('ioeventfd on: the guest store is caught by KVM (ioeventfd_write), the vCPU does not exit to QEMU', async () => {
      const s = await sessions.stdio();
      const stop = await s.launchToStop({ scenario: DEFAULT_SCENARIO }, { functions: [{ name: 'ioeventfd_write' }] });
      const frames = await s.stack(stop.body.threadId!);
      const n = names(frames);
      assert.equal(n[0], 'ioeventfd_write');
      assert.equal(frames[1].presentationHint, 'label');
      assert.match(frames[1].name, /KVM|ioeventfd/);
      assert.equal(n[2], 'vm_notify');
      assert.ok(!n.includes('kvm_cpu_exec'), 'no exit to QEMU');
      assert.equal(frames[0].source?.path, path.join(ROOT, 'src/machine/kvm/virt/kvm/eventfd.ts'));
    });
  });
});
