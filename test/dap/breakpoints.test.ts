/**
 * DAP: every way to stop. The event filters of DESIGN.md (exception
 * breakpoints), with and without conditions, virtio_error on by default and
 * reached by corrupting the ring, io_error from a read-only image; function
 * breakpoints; line breakpoints in the scenario and in the model's sources
 * (moved to a line that can stop, verified); hit counts, conditions and
 * logpoints.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import type { DebugProtocol } from '@vscode/debugprotocol';
import { DEFAULT_SCENARIO, ROOT, Session, VIRTIO_TS, fnName, lineOf, sessionPerTest } from './helpers';

/** What each filter stops in, and on which thread (default options: ioeventfd on, no iothread). */
const FILTERS: { id: string; fn: string; thread: string }[] = [
  { id: 'kick', fn: 'virtqueue_notify', thread: 'vCPU 0' },
  { id: 'pop', fn: 'virtqueue_pop', thread: 'main-loop' },
  { id: 'handle_output', fn: 'virtio_blk_handle_output', thread: 'main-loop' },
  { id: 'rw_complete', fn: 'virtio_blk_rw_complete', thread: 'main-loop' },
  { id: 'notify', fn: 'virtio_notify_irqfd', thread: 'main-loop' },
  { id: 'get_buf', fn: 'virtqueue_get_buf_ctx_split', thread: 'vCPU 0' },
];

/**
 * A logpoint on virtqueue_pop's first line. DAP has logpoints on source lines
 * only (FunctionBreakpoint has no logMessage), so this is how a VS Code user
 * logs every call of a function.
 */
function popLogpoint(logMessage: string): { path: string; breakpoints: DebugProtocol.SourceBreakpoint[] } {
  return { path: VIRTIO_TS, breakpoints: [{ line: lineOf(VIRTIO_TS, /^export function\* virtqueue_pop\(/), logMessage }] };
}

/** Run to the end, collecting every stop (continuing after each). */
async function allStops(s: Session, onStop?: (e: DebugProtocol.StoppedEvent) => Promise<void>): Promise<DebugProtocol.StoppedEvent[]> {
  const stops: DebugProtocol.StoppedEvent[] = [];
  for (;;) {
    const next = await s.nextStopOrEnd();
    if (next === null) return stops;
    stops.push(next);
    if (onStop) await onStop(next);
    assert.ok(stops.length < 500, 'too many stops');
    await s.dc.continueRequest({ threadId: next.body.threadId! });
  }
}

describe('dap: breakpoints', function () {
  this.timeout(60_000);
  const sessions = sessionPerTest();

  it('initialize offers every event filter, each with a condition; virtio_error on by default', async () => {
    const s = await sessions.stdio();
    const filters = s.capabilities.exceptionBreakpointFilters ?? [];
    assert.deepEqual(filters.map((f) => f.filter), ['kick', 'pop', 'handle_output', 'rw_complete', 'notify', 'get_buf', 'virtio_error', 'io_error']);
    assert.ok(filters.every((f) => f.supportsCondition));
    assert.deepEqual(filters.filter((f) => f.default).map((f) => f.filter), ['virtio_error']);
    assert.equal(s.capabilities.supportsExceptionFilterOptions, true);
    assert.equal(s.capabilities.supportsFunctionBreakpoints, true);
    assert.equal(s.capabilities.supportsConditionalBreakpoints, true);
    assert.equal(s.capabilities.supportsHitConditionalBreakpoints, true);
    assert.equal(s.capabilities.supportsLogPoints, true);
  });

  describe('event filters', () => {
    for (const f of FILTERS) {
      it(`${f.id}: stops with reason exception, "Paused on ${f.id}", in ${f.fn} on ${f.thread}`, async () => {
        const s = await sessions.stdio();
        const stop = await s.launchToStop({ scenario: DEFAULT_SCENARIO }, { filters: [f.id] });
        assert.equal(stop.body.reason, 'exception');
        assert.ok(stop.body.description?.startsWith(`Paused on ${f.id}`), stop.body.description);
        assert.match(stop.body.description!, /\(.*vq 0.*\)|\(head \d+/, 'the key values');
        const threads = await s.threads();
        assert.equal(threads.find((t) => t.id === stop.body.threadId)?.name, f.thread);
        const top = (await s.stack(stop.body.threadId!))[0];
        assert.equal(fnName(top), f.fn);
        const info = await s.dc.exceptionInfoRequest({ threadId: stop.body.threadId! });
        assert.equal(info.body.exceptionId, f.id);
      });
    }

    it('kick names the queue and avail.idx in its description', async () => {
      const s = await sessions.stdio();
      const stop = await s.launchToStop({ scenario: DEFAULT_SCENARIO }, { filters: ['kick'] });
      assert.equal(stop.body.description, 'Paused on kick: virtqueue_notify (vq 0, avail.idx 1, used.idx 0)');
    });

    it('pop with a condition stops only when it holds (vq.last_avail_idx == 2)', async () => {
      // Reference: every pop's last_avail_idx, from a logpoint on virtqueue_pop.
      const ref = await sessions.stdio();
      await ref.launch({ scenario: DEFAULT_SCENARIO }, { lines: [popLogpoint('lai={vq.last_avail_idx}')] });
      await ref.next('terminated');
      const seen = ref.output.map((o) => /^lai=(\d+)\n$/.exec(o.text)?.[1]).filter((x) => x !== undefined).map(Number);
      assert.ok(seen.length >= 7, `only ${seen.length} pops`);
      const expected = seen.filter((x) => x === 2).length;
      assert.ok(expected >= 1 && expected < seen.length);

      const s = await sessions.stdio();
      await s.launch({ scenario: DEFAULT_SCENARIO }, { filters: [], filterOptions: [{ filterId: 'pop', condition: 'vq.last_avail_idx == 2' }] });
      const stops = await allStops(s, async (stop) => {
        assert.ok(stop.body.description?.startsWith('Paused on pop'));
        const top = (await s.stack(stop.body.threadId!))[0];
        assert.equal((await s.evaluate('vq.last_avail_idx', top.id)).result, '2');
      });
      assert.equal(stops.length, expected);
    });

    it('a condition that is never true never stops; one that cannot be parsed is reported unverified', async () => {
      const s = await sessions.stdio();
      const r = await s.launch({ scenario: DEFAULT_SCENARIO }, {
        filters: [],
        filterOptions: [{ filterId: 'rw_complete', condition: 'used.idx == 999' }, { filterId: 'kick', condition: 'avail.idx ==' }],
      });
      assert.equal(r.filters?.length, 2);
      assert.equal(r.filters![0].verified, true);
      assert.equal(r.filters![1].verified, false);
      assert.ok((r.filters![1].message ?? '').length > 0);
      await s.next('terminated');
      assert.equal(s.pending('stopped').length, 0);
    });

    it('virtio_error is on by default: a corrupted avail ring (writeMemory) stops with the message', async () => {
      const s = await sessions.stdio();
      // No setExceptionBreakpoints at all: the adapter's defaults apply. Stop before the device reads the ring.
      const stop = await s.launchToStop({ scenario: DEFAULT_SCENARIO }, { functions: [{ name: 'virtio_blk_handle_output' }] });
      const st = await s.state();
      const q = st.queues[0];
      const slot = q.last_avail_idx % q.num;
      // avail.ring[slot] = 300: a head past the end of a 256-entry ring.
      const w = await s.writeMemory(`0x${(q.vring_avail + 4 + 2 * slot).toString(16)}`, Buffer.from([300 & 0xff, 300 >> 8]));
      assert.equal(w.body?.bytesWritten, 2);
      const err = await s.continueToStop(stop.body.threadId!);
      assert.equal(err.body.reason, 'exception');
      assert.ok(err.body.description?.startsWith('Paused on virtio_error'), err.body.description);
      assert.equal(err.body.text, 'Guest says index 300 is available');
      const info = await s.dc.exceptionInfoRequest({ threadId: err.body.threadId! });
      assert.equal(info.body.exceptionId, 'virtio_error');
      assert.equal(info.body.description, 'Guest says index 300 is available');
      assert.equal(fnName((await s.stack(err.body.threadId!))[0]), 'virtio_error');
      // After the stop the device is broken, and the run ends without further requests done.
      await s.dc.continueRequest({ threadId: err.body.threadId! });
      await s.next('terminated');
      await s.outputMatching(/device is broken: Guest says index 300 is available/);
    });

    it('virtio_error unchecked: the same corruption does not stop', async () => {
      const s = await sessions.stdio();
      const stop = await s.launchToStop({ scenario: DEFAULT_SCENARIO }, { filters: [], functions: [{ name: 'virtio_blk_handle_output' }] });
      const q = (await s.state()).queues[0];
      await s.writeMemory(`0x${(q.vring_avail + 4 + 2 * (q.last_avail_idx % q.num)).toString(16)}`, Buffer.from([0x2c, 0x01]));
      await s.dc.setFunctionBreakpointsRequest({ breakpoints: [] });
      await s.dc.continueRequest({ threadId: stop.body.threadId! });
      await s.next('terminated');
      assert.equal(s.pending('stopped').length, 0);
    });

    it('io_error: a write to a read-only image completes with an error (ret -30, EROFS)', async () => {
      const s = await sessions.stdio();
      const stop = await s.launchToStop({ scenario: DEFAULT_SCENARIO, imageMode: 'readonly' }, { filters: ['io_error'] });
      assert.equal(stop.body.reason, 'exception');
      assert.ok(stop.body.description?.startsWith('Paused on io_error'), stop.body.description);
      assert.match(stop.body.description!, /ret -30/);
      const top = (await s.stack(stop.body.threadId!))[0];
      assert.match(top.name, /^virtio_blk_rw_complete \(opaque=0x[0-9a-f]+, ret=-30\)$/);
      // Only failed completions: the reads before the write did not stop.
      assert.equal((await s.state()).queues[0].used.idx, 1, 'the first read completed without a stop');
    });
  });

  describe('function breakpoints', () => {
    it('virtqueue_pop: verified, stops with reason "function breakpoint" in virtqueue_pop', async () => {
      const s = await sessions.stdio();
      const r = await s.launch({ scenario: DEFAULT_SCENARIO }, { functions: [{ name: 'virtqueue_pop' }] });
      assert.equal(r.functions![0].verified, true);
      const stop = await s.nextStop();
      assert.equal(stop.body.reason, 'function breakpoint');
      assert.deepEqual(stop.body.hitBreakpointIds, [r.functions![0].id]);
      const top = (await s.stack(stop.body.threadId!))[0];
      assert.match(top.name, /^virtqueue_pop \(vq=0x[0-9a-f]+, sz=\d+\)$/);
      assert.equal(top.source?.path, VIRTIO_TS);
    });

    it('an unknown name is unverified with a message, and the others still work', async () => {
      const s = await sessions.stdio();
      const r = await s.launch({ scenario: DEFAULT_SCENARIO }, { functions: [{ name: 'no_such_function' }, { name: 'virtio_blk_rw_complete' }] });
      assert.equal(r.functions![0].verified, false);
      assert.match(r.functions![0].message ?? '', /no_such_function/);
      assert.equal(r.functions![1].verified, true);
      const stop = await s.nextStop();
      assert.equal(fnName((await s.stack(stop.body.threadId!))[0]), 'virtio_blk_rw_complete');
    });

    it('a guest function (virtqueue_add_split) stops on vCPU 0', async () => {
      const s = await sessions.stdio();
      const stop = await s.launchToStop({ scenario: DEFAULT_SCENARIO }, { functions: [{ name: 'virtqueue_add_split' }] });
      assert.equal((await s.threads()).find((t) => t.id === stop.body.threadId)?.name, 'vCPU 0');
    });

    it('hitCondition "3" stops on the 3rd hit, not before', async () => {
      const s = await sessions.stdio();
      // A logpoint on the same function counts the hits.
      await s.launch({ scenario: DEFAULT_SCENARIO }, { lines: [popLogpoint('hit')], functions: [{ name: 'virtqueue_pop', hitCondition: '3' }] });
      const stop = await s.nextStop();
      assert.equal(stop.body.reason, 'function breakpoint');
      assert.equal(s.output.filter((o) => o.text === 'hit\n').length, 3);
      // and only once: the 4th and later hits do not stop.
      await s.dc.continueRequest({ threadId: stop.body.threadId! });
      await s.next('terminated');
      assert.equal(s.pending('stopped').length, 0);
    });

    it('hitCondition "%2" stops on every 2nd hit; a bad hit condition is unverified', async () => {
      const s = await sessions.stdio();
      const r = await s.launch({ scenario: DEFAULT_SCENARIO }, {
        lines: [popLogpoint('hit')],
        functions: [{ name: 'virtqueue_pop', hitCondition: '%2' }, { name: 'virtio_blk_rw_complete', hitCondition: 'often' }],
      });
      assert.equal(r.functions![1].verified, false);
      assert.match(r.functions![1].message ?? '', /hit condition/);
      const stops = await allStops(s, async () => {
        assert.equal(s.output.filter((o) => o.text === 'hit\n').length % 2, 0);
      });
      const hits = s.output.filter((o) => o.text === 'hit\n').length;
      assert.equal(stops.length, Math.floor(hits / 2));
    });

    it('a condition: virtqueue_pop when vq.last_avail_idx == 3', async () => {
      const s = await sessions.stdio();
      const stop = await s.launchToStop({ scenario: DEFAULT_SCENARIO }, { functions: [{ name: 'virtqueue_pop', condition: 'vq.last_avail_idx == 3' }] });
      const top = (await s.stack(stop.body.threadId!))[0];
      assert.equal((await s.evaluate('vq.last_avail_idx', top.id)).result, '3');
      assert.equal((await s.state()).queues[0].last_avail_idx, 3);
    });

    it('a logpoint interpolates {expressions} into an output event and does not stop', async () => {
      const s = await sessions.stdio();
      await s.launch({ scenario: DEFAULT_SCENARIO }, { lines: [popLogpoint('pop at {vq.last_avail_idx}')] });
      await s.next('terminated');
      assert.equal(s.pending('stopped').length, 0);
      const lines = s.output.filter((o) => o.text.startsWith('pop at ')).map((o) => o.text);
      assert.equal(lines[0], 'pop at 0\n');
      assert.ok(lines.includes('pop at 1\n'));
      assert.ok(lines.every((l) => /^pop at \d+\n$/.test(l)), JSON.stringify(lines));
    });

    it('a logMessage on a function breakpoint (beyond DAP, which has none there) logs too', async () => {
      const s = await sessions.stdio();
      const fb = { name: 'virtqueue_pop', logMessage: 'fn pop {vq.last_avail_idx}' } as DebugProtocol.FunctionBreakpoint;
      await s.launch({ scenario: DEFAULT_SCENARIO }, { functions: [fb] });
      await s.next('terminated');
      assert.equal(s.pending('stopped').length, 0);
      assert.ok(s.output.some((o) => o.text === 'fn pop 0\n'));
    });

    it('a logpoint whose expression fails says so and still does not stop', async () => {
      const s = await sessions.stdio();
      await s.launch({ scenario: DEFAULT_SCENARIO }, { lines: [popLogpoint('x={no_such_name}')] });
      await s.next('terminated');
      assert.equal(s.pending('stopped').length, 0);
      assert.ok(s.output.some((o) => /no_such_name/.test(o.text)), JSON.stringify(s.output.slice(0, 5)));
    });
  });

  describe('line breakpoints in the scenario', () => {
    it('a comment line moves to the next statement, verified; the stop is on vCPU 0 with the line at the bottom', async () => {
      const s = await sessions.stdio();
      const r = await s.launch({ scenario: DEFAULT_SCENARIO }, { lines: [{ path: DEFAULT_SCENARIO, breakpoints: [{ line: 1 }] }] });
      const bp = r.lines[0][0];
      assert.equal(bp.verified, true);
      assert.equal(bp.line, 7, 'moved from the comment to `read 0 4096`');
      const stop = await s.nextStop();
      assert.equal(stop.body.reason, 'breakpoint');
      assert.deepEqual(stop.body.hitBreakpointIds, [bp.id]);
      assert.equal((await s.threads()).find((t) => t.id === stop.body.threadId)?.name, 'vCPU 0');
      const frames = await s.stack(stop.body.threadId!);
      const bottom = frames[frames.length - 1];
      assert.equal(bottom.name, 'read 0 4096');
      assert.equal(bottom.line, 7);
      assert.equal(bottom.source?.path, DEFAULT_SCENARIO);
    });

    it('a statement line stays where it is; the stop is before that request is issued', async () => {
      const s = await sessions.stdio();
      const line = lineOf(DEFAULT_SCENARIO, /^flush/);
      const r = await s.launch({ scenario: DEFAULT_SCENARIO }, { lines: [{ path: DEFAULT_SCENARIO, breakpoints: [{ line }] }] });
      assert.equal(r.lines[0][0].line, line);
      const stop = await s.nextStop();
      const frames = await s.stack(stop.body.threadId!);
      assert.equal(frames[frames.length - 1].line, line);
      assert.equal(frames[frames.length - 1].name, 'flush');
      // read and write issued before; the flush not yet.
      assert.equal((await s.state()).queues[0].avail.idx, 2);
    });

    it('a line inside a batch moves to the batch line: its requests are issued together, not yet', async () => {
      const s = await sessions.stdio();
      const batch = lineOf(DEFAULT_SCENARIO, /^batch \{/);
      const r = await s.launch({ scenario: DEFAULT_SCENARIO }, { lines: [{ path: DEFAULT_SCENARIO, breakpoints: [{ line: batch + 2 }] }] });
      assert.equal(r.lines[0][0].verified, true);
      assert.equal(r.lines[0][0].line, batch);
      const stop = await s.nextStop();
      const frames = await s.stack(stop.body.threadId!);
      assert.equal(frames[frames.length - 1].line, batch);
      assert.equal(frames[frames.length - 1].name, 'batch {');
      // The four requests before the batch are in the ring; none of the batch's yet.
      assert.equal((await s.state()).queues[0].avail.idx, 4);
    });

    it('conditions and logpoints on scenario lines', async () => {
      const s = await sessions.stdio();
      const flush = lineOf(DEFAULT_SCENARIO, /^flush/);
      const readBack = lineOf(DEFAULT_SCENARIO, /^read 8 512/);
      await s.launch({ scenario: DEFAULT_SCENARIO }, {
        lines: [{
          path: DEFAULT_SCENARIO,
          breakpoints: [{ line: 7, logMessage: 'before the first read: used.idx={used.idx}' }, { line: flush, condition: 'used.idx == 999' }, { line: readBack, condition: 'used.idx >= 3' }],
        }],
      });
      const stop = await s.nextStop();
      const frames = await s.stack(stop.body.threadId!);
      assert.equal(frames[frames.length - 1].line, readBack);
      assert.ok(s.output.some((o) => o.text === 'before the first read: used.idx=0\n'));
    });

    it('breakpoints in a file that is neither the scenario nor a model source are unverified', async () => {
      const s = await sessions.stdio();
      const r = await s.launch({ scenario: DEFAULT_SCENARIO }, { lines: [{ path: path.join(ROOT, 'README.md'), breakpoints: [{ line: 3 }] }] });
      assert.equal(r.lines[0][0].verified, false);
      assert.ok((r.lines[0][0].message ?? '').length > 0);
    });
  });

  describe('line breakpoints in the model sources', () => {
    it('a line inside virtqueue_split_pop moves to the nearest stoppable line, verified; the stop is there', async () => {
      const s = await sessions.stdio();
      const fnLine = lineOf(VIRTIO_TS, /^export function\* virtqueue_split_pop/);
      const inside = lineOf(VIRTIO_TS, /const heads = /, fnLine);
      const r = await s.launch({ scenario: DEFAULT_SCENARIO }, { lines: [{ path: VIRTIO_TS, breakpoints: [{ line: inside }] }] });
      const bp = r.lines[0][0];
      assert.equal(bp.verified, true);
      assert.ok(bp.line! > inside && bp.line! < lineOf(VIRTIO_TS, /^function walkChain/), `moved to ${bp.line}`);
      const stop = await s.nextStop();
      assert.equal(stop.body.reason, 'breakpoint');
      assert.deepEqual(stop.body.hitBreakpointIds, [bp.id]);
      const top = (await s.stack(stop.body.threadId!))[0];
      assert.equal(fnName(top), 'virtqueue_split_pop');
      assert.equal(top.source?.path, VIRTIO_TS);
      assert.equal(top.line, bp.line, 'the stop shows the line the breakpoint was moved to');
    });

    it('the header line of a function stops at its entry', async () => {
      const s = await sessions.stdio();
      const header = lineOf(VIRTIO_TS, /^export function\* virtqueue_push\(/);
      const r = await s.launch({ scenario: DEFAULT_SCENARIO }, { lines: [{ path: VIRTIO_TS, breakpoints: [{ line: header }] }] });
      const bp = r.lines[0][0];
      assert.equal(bp.verified, true);
      const stop = await s.nextStop();
      const top = (await s.stack(stop.body.threadId!))[0];
      assert.equal(fnName(top), 'virtqueue_push');
      assert.equal(top.line, bp.line);
    });

    it('a hit count on a model line: the 2nd virtqueue_push', async () => {
      const s = await sessions.stdio();
      const header = lineOf(VIRTIO_TS, /^export function\* virtqueue_push\(/);
      await s.launch({ scenario: DEFAULT_SCENARIO }, { lines: [{ path: VIRTIO_TS, breakpoints: [{ line: header, hitCondition: '2' }] }] });
      const stop = await s.nextStop();
      assert.equal(fnName((await s.stack(stop.body.threadId!))[0]), 'virtqueue_push');
      assert.equal((await s.state()).queues[0].used_idx, 1, 'one element pushed before');
    });
  });

  it('breakpoints changed while stopped take effect on continue', async () => {
    const s = await sessions.stdio();
    const stop = await s.launchToStop({ scenario: DEFAULT_SCENARIO, stopOnEntry: true });
    await s.dc.setFunctionBreakpointsRequest({ breakpoints: [{ name: 'virtqueue_flush' }] });
    const next = await s.continueToStop(stop.body.threadId!);
    assert.equal(fnName((await s.stack(next.body.threadId!))[0]), 'virtqueue_flush');
    await s.dc.setFunctionBreakpointsRequest({ breakpoints: [] });
    await s.dc.continueRequest({ threadId: next.body.threadId! });
    await s.next('terminated');
  });
});
