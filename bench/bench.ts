/**
 * `npm run bench`: the machine's figures, one JSON object per line.
 *
 *   requests_per_second        4 KiB reads through the whole data path, queue depth 1 and 32
 *   requests_per_second_armed  the same with four event breakpoints armed whose conditions never hold
 *   event_points_per_second    a run-to-condition that checks every event against a predicate
 *   (and, from adapter.ts, the debug adapter's step round trip and run-to-condition speed)
 *
 * Each figure is the median of several runs after a warm-up run, so the JIT
 * has compiled the hot path before anything is timed.
 */
import { Machine } from '../src/machine/machine';
import { validateOptions } from '../src/machine/options';
import { parseScenario } from '../src/machine/scenario/parser';
import { functionNamed } from '../src/machine/sim/frames';
import { adapterBench } from './adapter';
import { inspectorBench } from './inspector-bench';
import { extensionBench } from './extension';

const RUNS = 3;

function readsScenario(depth: number, requests: number): string {
  const lines: string[] = [];
  for (let i = 0; i < requests; ) {
    const n = Math.min(depth, requests - i);
    if (n === 1) lines.push(`read ${(i * 8) % 30000} 4096`);
    else {
      lines.push('batch {');
      for (let k = 0; k < n; k++) lines.push(`  read ${((i + k) * 8) % 30000} 4096`);
      lines.push('}');
    }
    i += n;
  }
  return lines.join('\n') + '\n';
}

interface Measured {
  seconds: number;
  requests: number;
  events: number;
}

function runOnce(text: string, arm: ((m: Machine) => void) | null): Measured {
  const m = new Machine({ options: validateOptions({}), scenario: parseScenario(text, 'bench.virtio') });
  m.guest.recordData = false;
  arm?.(m);
  const t0 = process.hrtime.bigint();
  while (m.run() !== 'idle') {
    // A hook that never matches never stops the run.
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const failed = m.guest.requests.filter((r) => r.status !== 'BLK_STS_OK').length;
  if (failed > 0) throw new Error(`${failed} requests failed: the benchmark would measure the wrong thing`);
  const events = m.sim.seq;
  m.close();
  return { seconds, requests: m.guest.requests.length, events };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function measure(text: string, arm: ((m: Machine) => void) | null): { rps: number; eps: number } {
  runOnce(text, arm); // warm-up
  const runs = Array.from({ length: RUNS }, () => runOnce(text, arm));
  return {
    rps: median(runs.map((r) => r.requests / r.seconds)),
    eps: median(runs.map((r) => r.events / r.seconds)),
  };
}

/** The four event filters of the debugger with conditions that never hold (vq index 7 on a one-queue device). */
function armFourBreakpoints(m: Machine): void {
  const names = ['virtqueue_notify', 'virtqueue_pop', 'virtio_blk_handle_output', 'virtio_blk_rw_complete'];
  for (const n of names) m.sim.armFunction(functionNamed(n)!, true);
  m.sim.hook = (ev) => {
    const vq = ev.frame.a0 as { index?: number; queue_index?: number } | undefined;
    return (vq?.queue_index ?? vq?.index) === 7;
  };
}

/** A run-to-condition: every event checked against a predicate that never holds. */
function checkEveryEvent(m: Machine): void {
  m.sim.trapSeq = 0;
  m.sim.hook = (ev) => ev.depth > 1000;
}

function emit(o: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(o) + '\n');
}

async function main(): Promise<void> {
  const requests = 64_000;
  for (const depth of [1, 32]) {
    const text = readsScenario(depth, requests);
    const plain = measure(text, null);
    emit({ figure: 'requests_per_second', depth, requests, value: Math.round(plain.rps), unit: 'requests/s', target: depth === 32 ? '>= 100000' : undefined });
    const armed = measure(text, armFourBreakpoints);
    const slowdown = (plain.rps - armed.rps) / plain.rps;
    emit({ figure: 'requests_per_second_armed', depth, requests, breakpoints: 4, value: Math.round(armed.rps), unit: 'requests/s', slowdown_percent: +(slowdown * 100).toFixed(1), target: 'slowdown <= 15%' });
  }
  for (const depth of [1, 32]) {
    const all = measure(readsScenario(depth, requests), checkEveryEvent);
    emit({ figure: 'event_points_per_second', depth, value: Math.round(all.eps), unit: 'events/s', target: '>= 2000000' });
  }
  await adapterBench(emit);
  await inspectorBench(emit);
  await extensionBench(emit);
}

main().catch((e) => {
  process.stderr.write(`${(e as Error).stack ?? e}\n`);
  process.exitCode = 1;
});
