/**
 * DAP: the session's life. Launch attributes validated (a wrong one is named,
 * a missing file names its path, and the adapter goes on serving), launch
 * with no arguments at all, stopOnEntry, noDebug, the `trace` event log,
 * restart (also while the machine runs), terminate and disconnect, and
 * requests the adapter cannot serve (an error answer, never a dead adapter).
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DebugProtocol } from '@vscode/debugprotocol';
import { DEFAULT_SCENARIO, Session, fnName, sessionPerTest, sleep, tempFile, tempScenario } from './helpers';

/** The first statement of samples/default.virtio. */
const FIRST_LINE = 7;

describe('dap: launch and session life', function () {
  this.timeout(60_000);
  const sessions = sessionPerTest();

  /** After a failed launch the adapter still answers, and a good launch then works. */
  async function stillServes(s: Session): Promise<void> {
    const threads = await s.threads();
    assert.ok(Array.isArray(threads));
  }

  describe('a bad attribute is named, and the adapter goes on', () => {
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ['queueSize: 3 (not a power of 2)', { queueSize: 3 }, /queueSize.*power of 2/],
      ['queueSize: "256" (a string)', { queueSize: '256' }, /queueSize/],
      ['aio: "x"', { aio: 'x' }, /aio.*"threads", "io_uring", "native"/],
      ['eventIdx: "yes"', { eventIdx: 'yes' }, /eventIdx.*boolean/],
      ['imageMode: "rw"', { imageMode: 'rw' }, /imageMode/],
      ['seed: -1', { seed: -1 }, /seed/],
      ['stopOnEntry: 1', { stopOnEntry: 1 }, /stopOnEntry/],
      ['trace: "on"', { trace: 'on' }, /trace.*boolean/],
      ['noDebug: "no"', { noDebug: 'no' }, /noDebug.*boolean/],
      ['an unknown attribute', { queueSzie: 16 }, /unknown attribute 'queueSzie'/],
      ['iothread without ioeventfd', { iothread: true, ioeventfd: false }, /iothread.*ioeventfd/],
      ['packed: true (not modelled)', { packed: true }, /packed/],
      ['numQueues: 0', { numQueues: 0 }, /numQueues/],
      ['scenario: 42', { scenario: 42 }, /scenario/],
    ];
    for (const [what, args, re] of cases) {
      it(what, async () => {
        const s = await sessions.stdio();
        const msg = await s.launchError(args);
        assert.match(msg, re);
        await stillServes(s);
      });
    }

    it('every bad launch in one session, then a good one', async () => {
      const s = await sessions.stdio();
      for (const [, args, re] of cases) assert.match(await s.launchError(args), re);
      const stop = await s.launchToStop({ stopOnEntry: true });
      assert.equal(stop.body.reason, 'entry');
    });
  });

  it('a missing scenario file is named by its path', async () => {
    const s = await sessions.stdio();
    const missing = path.join(path.dirname(DEFAULT_SCENARIO), 'no-such-scenario.virtio');
    const msg = await s.launchError({ scenario: missing });
    assert.ok(msg.includes(missing), msg);
    assert.match(msg, /scenario/);
    await stillServes(s);
  });

  it('a missing image file is named by its path', async () => {
    const s = await sessions.stdio();
    const missing = path.join(path.dirname(DEFAULT_SCENARIO), 'no-such-disk.img');
    const msg = await s.launchError({ image: missing });
    assert.ok(msg.includes(missing), msg);
    assert.match(msg, /image/);
    await stillServes(s);
  });

  it('a scenario with a syntax error is named by file:line:col', async () => {
    const s = await sessions.stdio();
    const file = tempScenario('bad.virtio', 'read 0 4096\nreed 8 512\n');
    const msg = await s.launchError({ scenario: file });
    assert.ok(msg.includes(`${file}:2:1`), msg);
    await stillServes(s);
  });

  it('a launch with no arguments at all runs the bundled default to its end', async () => {
    // DAP makes the launch arguments optional; DebugClient sends none for {}.
    const s = await sessions.stdio();
    await s.launch({});
    await s.next('terminated');
    assert.equal(s.pending('stopped').length, 0);
    await s.outputMatching(/ran to its end: 7 requests/);
  });

  it('image: a raw file is the disk (reads return its bytes); writethrough writes reach it', async () => {
    const s = await sessions.stdio();
    const bytes = Buffer.alloc(1024 * 1024);
    bytes.write('a raw image for the DAP tests', 0, 'latin1');
    const img = tempFile('disk.img', bytes);
    const scenario = tempScenario('rw.virtio', 'read 0 512\nwrite 1 "written through"\nwait\n');
    const stop = await s.launchToStop({ scenario, image: img, imageMode: 'writethrough' }, { filters: ['rw_complete'] });
    const el = (await s.state()).queues[0].inflight[0];
    const data = await s.readMemory(`0x${el.in_sg[0].addr.toString(16)}`, 29);
    assert.equal(data.toString('latin1'), 'a raw image for the DAP tests');
    await s.dc.setExceptionBreakpointsRequest({ filters: [] });
    await s.dc.continueRequest({ threadId: stop.body.threadId! });
    await s.next('terminated');
    assert.equal(fs.readFileSync(img).subarray(512, 512 + 15).toString('latin1'), 'written through');
    await s.dc.disconnectRequest({});
  });

  it('launch attributes reach the machine: queueSize, numQueues, eventIdx, indirectDesc, seed', async () => {
    const s = await sessions.stdio();
    await s.launchToStop({ scenario: DEFAULT_SCENARIO, queueSize: 16, numQueues: 2, eventIdx: false, indirectDesc: false, seed: 7 }, { filters: ['rw_complete'] });
    const st = await s.state();
    assert.equal(st.queues.length, 2);
    assert.equal(st.queues[0].num, 16);
    assert.equal(st.device.config.num_queues, 2);
    const bit = (f: number, b: number) => Math.floor(f / 2 ** b) % 2;
    assert.equal(bit(st.device.guest_features, 29), 0, 'no EVENT_IDX');
    assert.equal(bit(st.device.guest_features, 28), 0, 'no INDIRECT_DESC');
    assert.equal(st.queues[0].desc[0].flags, 1, 'a plain chain: NEXT');
  });

  it('stopOnEntry stops at the first scenario line, on vCPU 0', async () => {
    const s = await sessions.stdio();
    const stop = await s.launchToStop({ scenario: DEFAULT_SCENARIO, stopOnEntry: true });
    assert.equal(stop.body.reason, 'entry');
    const threads = await s.threads();
    assert.equal(threads.find((t) => t.id === stop.body.threadId)?.name, 'vCPU 0');
    const frames = await s.stack(stop.body.threadId!);
    assert.equal(frames.length, 1, 'nothing runs on the vCPU yet but the statement');
    assert.equal(frames[0].name, 'read 0 4096');
    assert.equal(frames[0].line, FIRST_LINE);
    assert.equal(frames[0].source?.path, DEFAULT_SCENARIO);
    assert.match(stop.body.description ?? '', /read 0 4096/);
  });

  it('without stopOnEntry and breakpoints the run goes to its end: exited, terminated', async () => {
    const s = await sessions.stdio();
    await s.launch({ scenario: DEFAULT_SCENARIO });
    const exited = await s.next<DebugProtocol.ExitedEvent>('exited');
    assert.equal(exited.body.exitCode, 0);
    await s.next('terminated');
    assert.equal(s.pending('stopped').length, 0);
  });

  it('noDebug runs to the end: no stop on entry, breakpoints or filters', async () => {
    const s = await sessions.stdio();
    await s.launch(
      { scenario: DEFAULT_SCENARIO, noDebug: true, stopOnEntry: true },
      { filters: ['kick', 'pop', 'virtio_error'], functions: [{ name: 'virtqueue_pop' }], lines: [{ path: DEFAULT_SCENARIO, breakpoints: [{ line: FIRST_LINE }] }] },
    );
    await s.next('terminated');
    assert.equal(s.pending('stopped').length, 0, 'noDebug stopped');
    await s.outputMatching(/ran to its end/);
  });

  it('trace: true sends the gdb-style event log to the Debug Console; false sends none', async () => {
    const s = await sessions.stdio();
    await s.launch({ scenario: DEFAULT_SCENARIO, trace: true });
    await s.next('terminated');
    const log = s.output.filter((o) => o.category === 'stdout').map((o) => o.text).join('');
    assert.match(log, /vCPU 0 +.*virtqueue_add_split \(/);
    assert.match(log, /main-loop +.*virtqueue_pop \(vq=0x[0-9a-f]+, sz=\d+\)/);
    assert.match(log, /virtio_blk_rw_complete \(opaque=0x[0-9a-f]+, ret=0\)/);

    const quiet = await sessions.stdio();
    await quiet.launch({ scenario: DEFAULT_SCENARIO, trace: false });
    await quiet.next('terminated');
    assert.equal(quiet.output.filter((o) => /virtqueue_pop \(/.test(o.text)).length, 0);
  });

  describe('restart', () => {
    it('starts again from the beginning: stopOnEntry stops at the first line again', async () => {
      const s = await sessions.stdio();
      const entry = await s.launchToStop({ scenario: DEFAULT_SCENARIO, stopOnEntry: true }, { filters: ['rw_complete'] });
      assert.equal(entry.body.reason, 'entry');
      const first = await s.state();
      const rw = await s.continueToStop(entry.body.threadId!);
      assert.equal(rw.body.reason, 'exception');
      const later = await s.state();
      assert.ok(later.events > first.events);

      await s.dc.restartRequest({});
      const again = await s.nextStop();
      assert.equal(again.body.reason, 'entry');
      const frames = await s.stack(again.body.threadId!);
      assert.equal(frames[0].line, FIRST_LINE);
      const restarted = await s.state();
      assert.equal(restarted.events, first.events, 'the same deterministic machine, at the same point');
      assert.equal(restarted.queues[0].used.idx, 0);
      // The breakpoints carry over to the new machine.
      const rw2 = await s.continueToStop(again.body.threadId!);
      assert.equal(rw2.body.reason, 'exception');
      assert.match(rw2.body.description ?? '', /^Paused on rw_complete/);
    });

    it('with new launch arguments (an edited launch.json): the new scenario and options', async () => {
      const s = await sessions.stdio();
      const entry = await s.launchToStop({ scenario: DEFAULT_SCENARIO, stopOnEntry: true });
      const other = tempScenario('other.virtio', '# another scenario\n\nflush\nread 0 512\n');
      await s.dc.restartRequest({ arguments: { type: 'virtio', request: 'launch', name: 'x', scenario: other, stopOnEntry: true, queueSize: 16 } } as DebugProtocol.RestartArguments);
      const stop = await s.nextStop();
      assert.equal(stop.body.reason, 'entry');
      const frames = await s.stack(stop.body.threadId!);
      assert.deepEqual([frames[0].name, frames[0].line, frames[0].source?.path], ['flush', 3, other]);
      assert.equal((await s.state()).queues[0].num, 16);
      // A bad configuration fails the restart and leaves the session as it was.
      await assert.rejects(s.dc.restartRequest({ arguments: { scenario: other, queueSize: 3 } } as DebugProtocol.RestartArguments), /queueSize/);
      assert.equal((await s.stack(stop.body.threadId!))[0].name, 'flush');
      void entry;
    });

    it('while the machine runs: one run of the new machine, nothing of the old one', async () => {
      const s = await sessions.stdio();
      const file = tempScenario('long.virtio', Array.from({ length: 20_000 }, (_, i) => `read ${(i * 8) % 4096} 4096`).join('\n') + '\n');
      const entry = await s.launchToStop({ scenario: file, stopOnEntry: true });
      await s.dc.continueRequest({ threadId: entry.body.threadId! });
      await sleep(300);
      // Restart while running: the new machine must stop on entry and stay stopped.
      await s.dc.restartRequest({});
      const stop = await s.nextStop();
      assert.equal(stop.body.reason, 'entry');
      const a = await s.state();
      await sleep(500);
      const b = await s.state();
      assert.equal(b.events, a.events, 'the machine ran on after the entry stop (a second run loop?)');
      assert.equal((await s.stack(stop.body.threadId!))[0].line, 1);
    });
  });

  describe('terminate and disconnect', () => {
    it('terminate at a stop answers and ends the session', async () => {
      const s = await sessions.stdio();
      await s.launchToStop({ scenario: DEFAULT_SCENARIO }, { functions: [{ name: 'virtqueue_pop' }] });
      await s.dc.terminateRequest();
      await s.next('terminated');
      await s.dc.disconnectRequest({});
    });

    it('terminate while the machine runs stops it', async () => {
      const s = await sessions.stdio();
      const file = tempScenario('long.virtio', Array.from({ length: 20_000 }, () => 'read 0 4096').join('\n') + '\n');
      await s.launch({ scenario: file });
      await sleep(200);
      await s.dc.terminateRequest();
      await s.next('terminated');
      await sleep(300);
      assert.equal(s.pending('terminated').length, 0, 'a second terminated event: the machine ran on');
      assert.equal(s.output.filter((o) => /internal error/.test(o.text)).length, 0, JSON.stringify(s.output));
    });

    it('disconnect answers, and the stdio adapter then exits', async () => {
      const s = await sessions.stdio();
      await s.launchToStop({ scenario: DEFAULT_SCENARIO, stopOnEntry: true });
      const proc = s.adapterProcess!;
      const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
      await s.dc.disconnectRequest({ terminateDebuggee: true });
      const code = await Promise.race([exited, sleep(5_000).then(() => 'still running')]);
      assert.equal(code, 0);
    });
  });

  describe('requests it cannot serve get an error answer; the session goes on', () => {
    it('unknown custom request, unknown thread, frame and variables reference, a request before launch', async () => {
      const s = await sessions.stdio();
      await assert.rejects(s.state(), /not launched/);
      const stop = await s.launchToStop({ scenario: DEFAULT_SCENARIO, stopOnEntry: true });
      await assert.rejects(s.dc.customRequest('virtio/nope'), /unknown request 'virtio\/nope'/);
      await assert.rejects(s.stack(4242), /thread 4242/);
      await assert.rejects(s.scopes(987654), /no frame/);
      await assert.rejects(s.vars(987654), /no variables/);
      await assert.rejects(s.readMemory('not-an-address', 4), /memory reference/);
      const frames = await s.stack(stop.body.threadId!);
      assert.equal(fnName(frames[0]), 'read 0 4096');
      const st = await s.state();
      assert.equal(st.queues.length, 1);
    });
  });
});
