/**
 * Debug adapter figures, through `node dist/adapter.js` on stdio as VS Code
 * drives it:
 *
 *   step_round_trip_ms       next → stopped → stackTrace → scopes → variables of every scope
 *   run_to_condition_events_per_second  continue to a conditional event breakpoint ~1,000,000 events ahead
 */
import * as path from 'node:path';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { DebugClient } from '@vscode/debugadapter-testsupport';
import type { DebugProtocol } from '@vscode/debugprotocol';

const ROOT = path.resolve(__dirname, '..');
const ADAPTER = path.join(ROOT, 'dist', 'adapter.js');

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

async function client(): Promise<DebugClient> {
  const dc = new DebugClient('node', ADAPTER, 'virtio');
  await dc.start();
  return dc;
}

async function stepRoundTrip(scenario: string, emit: (o: Record<string, unknown>) => void): Promise<void> {
  const dc = await client();
  try {
    const first = dc.waitForEvent('stopped') as Promise<DebugProtocol.StoppedEvent>;
    await Promise.all([dc.configurationSequence(), dc.launch({ scenario, stopOnEntry: true })]);
    let threadId = (await first).body.threadId!;
    const times: number[] = [];
    for (let i = 0; i < 400; i++) {
      const t0 = process.hrtime.bigint();
      const stopped = dc.waitForEvent('stopped') as Promise<DebugProtocol.StoppedEvent>;
      // Step into: the next modelled event of the same thread, as a person stepping through the path would.
      await dc.stepInRequest({ threadId });
      const ev = await stopped;
      threadId = ev.body.threadId!;
      const st = await dc.stackTraceRequest({ threadId, startFrame: 0, levels: 20 });
      const scopes = await dc.scopesRequest({ frameId: st.body.stackFrames.find((f) => f.presentationHint !== 'label')!.id });
      await Promise.all(scopes.body.scopes.filter((s) => !s.expensive).map((s) => dc.variablesRequest({ variablesReference: s.variablesReference })));
      if (i >= 50) times.push(Number(process.hrtime.bigint() - t0) / 1e6); // the first steps warm the JIT
    }
    emit({ figure: 'step_round_trip_ms', p50: +percentile(times, 50).toFixed(3), p99: +percentile(times, 99).toFixed(3), samples: times.length, target: 'p50 <= 1.5, p99 <= 5' });
  } finally {
    await dc.stop();
  }
}

async function runToCondition(scenario: string, emit: (o: Record<string, unknown>) => void): Promise<void> {
  const dc = await client();
  try {
    await Promise.all([dc.configurationSequence(), dc.launch({ scenario, stopOnEntry: true }), dc.waitForEvent('stopped')]);
    const before = (await dc.customRequest('virtio/state')).body as { events: number };
    await dc.setExceptionBreakpointsRequest({ filters: [], filterOptions: [{ filterId: 'pop', condition: 'vq.last_avail_idx == 9000' }] });
    const stopped = dc.waitForEvent('stopped', 60_000);
    const t0 = process.hrtime.bigint();
    await dc.continueRequest({ threadId: 1 });
    await stopped;
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const after = (await dc.customRequest('virtio/state')).body as { events: number };
    const events = after.events - before.events;
    emit({ figure: 'run_to_condition_events_per_second', events, seconds: +seconds.toFixed(3), value: Math.round(events / seconds), target: '>= 1000000' });
  } finally {
    await dc.stop();
  }
}

export async function adapterBench(emit: (o: Record<string, unknown>) => void): Promise<void> {
  // Sequential 4 KiB reads: ~110 events each, so the 9,000th pop is about a million events in.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'virtio-bench-'));
  const scenario = path.join(dir, 'reads.virtio');
  fs.writeFileSync(scenario, Array.from({ length: 12000 }, (_, i) => `read ${(i * 8) % 30000} 4096`).join('\n') + '\n');
  try {
    await stepRoundTrip(scenario, emit);
    await runToCondition(scenario, emit);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
