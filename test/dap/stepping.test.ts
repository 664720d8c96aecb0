/**
 * DAP: stepping at model-frame level (in, over, out: reason 'step', the same
 * thread, the stack deeper / not deeper / shallower), on the device's thread
 * and on the vCPU; pause while a long scenario runs (the adapter answers
 * requests while the machine runs, and pause stops it within a slice).
 */
import { strict as assert } from 'node:assert';
import type { DebugProtocol } from '@vscode/debugprotocol';
import { DEFAULT_SCENARIO, Session, fnName, sessionPerTest, sleep, tempScenario } from './helpers';

/** Frames of a thread's stack, label frames left out. */
async function depth(s: Session, threadId: number): Promise<number> {
  return (await s.stack(threadId)).filter((f) => f.presentationHint !== 'label').length;
}

type StepKind = 'in' | 'over' | 'out';

async function step(s: Session, threadId: number, kind: StepKind): Promise<DebugProtocol.StoppedEvent> {
  if (kind === 'in') await s.dc.stepInRequest({ threadId });
  else if (kind === 'over') await s.dc.nextRequest({ threadId });
  else await s.dc.stepOutRequest({ threadId });
  const stop = await s.nextStop();
  assert.equal(stop.body.reason, 'step', `step ${kind}: ${stop.body.description}`);
  assert.equal(stop.body.threadId, threadId, `step ${kind} stopped another thread`);
  return stop;
}

/** A scenario long enough to pause: `n` reads of 4 KiB. */
function longScenario(n = 20_000): string {
  return tempScenario('long.virtio', Array.from({ length: n }, (_, i) => `read ${(i * 8) % 16384} 4096`).join('\n') + '\n');
}

describe('dap: stepping and pause', function () {
  this.timeout(60_000);
  const sessions = sessionPerTest();

  async function atHandleOutput(s: Session): Promise<number> {
    const stop = await s.launchToStop({ scenario: DEFAULT_SCENARIO }, { filters: ['handle_output'] });
    assert.equal(fnName((await s.stack(stop.body.threadId!))[0]), 'virtio_blk_handle_output');
    return stop.body.threadId!;
  }

  it('step in goes into the next call (deeper), on the same thread', async () => {
    const s = await sessions.stdio();
    const t = await atHandleOutput(s);
    const before = await depth(s, t);
    await step(s, t, 'in');
    const frames = await s.stack(t);
    assert.equal(fnName(frames[0]), 'virtio_blk_handle_vq');
    assert.equal(fnName(frames[1]), 'virtio_blk_handle_output');
    assert.equal(await depth(s, t), before + 1);
  });

  it('step in, again and again: every stop deeper or the same, or back out only after a return', async () => {
    const s = await sessions.stdio();
    const t = await atHandleOutput(s);
    let d = await depth(s, t);
    for (let i = 0; i < 3; i++) {
      await step(s, t, 'in');
      const now = await depth(s, t);
      assert.ok(now >= d, `step in #${i + 1}: ${now} < ${d}`);
      d = now;
    }
  });

  it('step over never goes deeper', async () => {
    const s = await sessions.stdio();
    const t = await atHandleOutput(s);
    // A breakpoint reached during a step wins (the next kick's handle_output would): clear them.
    await s.dc.setExceptionBreakpointsRequest({ filters: [] });
    await step(s, t, 'in'); // into virtio_blk_handle_vq
    // Each next from the main loop's top level runs to its next iteration; the run ends after the last request.
    let steps = 0;
    for (; steps < 12; steps++) {
      const before = await depth(s, t);
      const top = fnName((await s.stack(t))[0]);
      await s.dc.nextRequest({ threadId: t });
      const e = await s.nextStopOrEnd();
      if (e === null) break;
      assert.equal(e.body.reason, 'step');
      assert.equal(e.body.threadId, t);
      const after = await depth(s, t);
      assert.ok(after <= before, `next #${steps + 1} from ${top}: ${after} > ${before}`);
    }
    assert.ok(steps >= 3, `only ${steps} steps`);
  });

  it('step out returns to a shallower frame', async () => {
    const s = await sessions.stdio();
    const stop = await s.launchToStop({ scenario: DEFAULT_SCENARIO }, { functions: [{ name: 'virtqueue_split_pop' }] });
    const t = stop.body.threadId!;
    await s.dc.setFunctionBreakpointsRequest({ breakpoints: [] });
    const before = await depth(s, t);
    await step(s, t, 'out');
    const after = await depth(s, t);
    assert.ok(after < before, `${after} >= ${before}`);
    const names = (await s.stack(t)).map(fnName);
    assert.ok(!names.includes('virtqueue_split_pop'), names.join(' < '));
    await step(s, t, 'out');
    assert.ok((await depth(s, t)) < after);
  });

  it('on vCPU 0 from the entry stop: in goes into the request, out comes back, over stays level', async () => {
    const s = await sessions.stdio();
    const entry = await s.launchToStop({ scenario: DEFAULT_SCENARIO, stopOnEntry: true });
    const t = entry.body.threadId!;
    assert.equal(await depth(s, t), 1);
    await step(s, t, 'in');
    const inside = await s.stack(t);
    assert.ok(inside.length > 1);
    assert.equal(inside[inside.length - 1].name, 'read 0 4096', 'the scenario line stays at the bottom');
    await step(s, t, 'out');
    assert.equal(await depth(s, t), 1, 'back at the statement level');
    await step(s, t, 'over');
    assert.ok((await depth(s, t)) <= 1);
  });

  it('a breakpoint reached during a step stops there (reason breakpoint, not step)', async () => {
    const s = await sessions.stdio();
    const stop = await s.launchToStop({ scenario: DEFAULT_SCENARIO }, { functions: [{ name: 'virtqueue_split_pop' }] });
    const t = stop.body.threadId!;
    // Out of the first pop, out of virtio_blk_handle_request: the next pop comes first.
    await step(s, t, 'out');
    await s.dc.stepOutRequest({ threadId: t });
    const hit = await s.nextStop();
    assert.equal(hit.body.reason, 'function breakpoint');
    assert.equal(fnName((await s.stack(t))[0]), 'virtqueue_split_pop');
  });

  it('stepping past the end of the run ends the session', async () => {
    const s = await sessions.stdio();
    const t = await atHandleOutput(s);
    await s.dc.setExceptionBreakpointsRequest({ filters: [] });
    let ended = false;
    for (let i = 0; i < 200 && !ended; i++) {
      await s.dc.stepOutRequest({ threadId: t });
      const e = await s.nextStopOrEnd();
      if (e === null) ended = true;
      else assert.equal(e.body.reason, 'step');
    }
    assert.ok(ended, 'still stepping after 200 step outs');
  });

  it('after a step, continue runs on to the next breakpoint', async () => {
    const s = await sessions.stdio();
    const t = await atHandleOutput(s);
    await step(s, t, 'in');
    await s.dc.setExceptionBreakpointsRequest({ filters: ['rw_complete'] });
    const stop = await s.continueToStop(t);
    assert.equal(stop.body.reason, 'exception');
    assert.ok(stop.body.description?.startsWith('Paused on rw_complete'));
  });

  describe('pause', () => {
    it('stops a long scenario while it runs (reason pause); continue and pause again', async () => {
      const s = await sessions.stdio();
      await s.launch({ scenario: longScenario() });
      await sleep(150);
      // The adapter serves requests while the machine runs.
      assert.ok((await s.threads()).some((t) => t.name === 'vCPU 0'));
      await assert.rejects(s.stack(1), /running/);
      assert.equal(s.pending('terminated').length, 0, 'the scenario ended before the pause: make it longer');
      await s.dc.pauseRequest({ threadId: 1 });
      const stop = await s.nextStop();
      assert.equal(stop.body.reason, 'pause');
      const first = await s.state();
      assert.ok(first.events > 0);
      assert.ok((await s.stack(stop.body.threadId!)).length > 0);
      await sleep(200);
      assert.equal((await s.state()).events, first.events, 'paused means not running');

      await s.dc.continueRequest({ threadId: stop.body.threadId! });
      await sleep(200);
      await s.dc.pauseRequest({ threadId: 1 });
      const again = await s.nextStop();
      assert.equal(again.body.reason, 'pause');
      assert.ok((await s.state()).events > first.events);
      await s.dc.terminateRequest();
      await s.next('terminated');
    });

    it('pause while stopped does no harm', async () => {
      const s = await sessions.stdio();
      const entry = await s.launchToStop({ scenario: DEFAULT_SCENARIO, stopOnEntry: true });
      await s.dc.pauseRequest({ threadId: entry.body.threadId! });
      assert.equal((await s.stack(entry.body.threadId!))[0].line, 7);
      await s.dc.continueRequest({ threadId: entry.body.threadId! });
      await s.next('terminated');
    });
  });
});
