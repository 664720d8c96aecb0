/**
 * Running fuzz cases: one case on a fresh machine (runCase), or a whole run
 * of them (runFuzz) with the run-wide checks — the snapshot-mode image file
 * is byte-for-byte unchanged, and the process heap does not grow with the
 * number of cases.
 *
 * A case is fully determined by (run seed, case index): its machine, its
 * image choice and every ring write. That is what lets a failure be replayed
 * alone (`npm run fuzz -- --seed=N --case=I`) and kept as a regression.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { threadId } from 'node:worker_threads';
import { EventLogger, Machine } from '../machine';
import { GuestMemory } from '../memory/guest-memory';
import type { Scenario } from '../scenario/ast';
import { Dice, caseSeed } from './dice';
import { CaseParams, FUZZ_RAM_SIZE, drawParams } from './params';
import { Monitor, watchedEvents } from './monitor';
import { CaseContext, fuzz_guest } from './program';
import { checkEnding, outcomeOf } from './invariants';

/** The probe and the first round start inside this budget; the program raises it as it offers heads. */
const INITIAL_EVENT_BUDGET = 50_000;
/** Scheduler steps per case: far more than any case needs, so only a runaway machine reaches it. */
const MAX_STEPS = 20_000_000;
/** Heap growth over a run (after GC) that counts as a leak. */
const HEAP_GROWTH_LIMIT = 32 * 1024 * 1024;

const NO_SCENARIO: Scenario = { file: 'fuzz', statements: [] };

/** What every case of a run shares: the RAM buffer (reused, zeroed per case) and the image file. */
export class FuzzEnv {
  readonly memory = new GuestMemory(FUZZ_RAM_SIZE);
  /** A raw image file for the cases that run on one (snapshot or readonly mode), or null. */
  readonly imagePath: string | null;
  private readonly hashBefore: string | null;

  constructor(seed: number, withFile = true) {
    if (!withFile) {
      this.imagePath = null;
      this.hashBefore = null;
      return;
    }
    // One file per run and per worker thread: workers of one run must not share (or delete) each other's.
    this.imagePath = path.join(os.tmpdir(), `virtio-fuzz-${process.pid}-${threadId}-${seed >>> 0}-${Date.now()}.img`);
    fs.writeFileSync(this.imagePath, imageBytes(seed));
    this.hashBefore = hashFile(this.imagePath);
  }

  /** Remove the image file; a message if its bytes changed during the run, else null. */
  close(): string | null {
    if (this.imagePath === null) return null;
    const after = hashFile(this.imagePath);
    fs.rmSync(this.imagePath, { force: true });
    return after === this.hashBefore ? null : `the image file changed in snapshot/readonly mode (sha256 ${this.hashBefore} → ${after})`;
  }
}

/**
 * The run's image: 1 MiB and 3 sectors plus a partial one (capacity rounds
 * down, so the tail is never addressable), each sector saying which it is.
 */
function imageBytes(seed: number): Buffer {
  const size = 1024 * 1024 + 3 * 512 + 100;
  const b = Buffer.alloc(size);
  for (let s = 0; s * 512 < size; s++) {
    b.write(`fuzz image ${seed >>> 0} sector ${s}\n`.padEnd(512, '.'), s * 512, Math.min(512, size - s * 512), 'latin1');
  }
  return b;
}

function hashFile(p: string): string {
  return createHash('sha256').update(fs.readFileSync(p)).digest('hex');
}

export interface CaseResult {
  seed: number;
  index: number;
  params: CaseParams;
  /** "completed" or the pattern of the device's virtio_error. */
  outcome: string;
  /** Invariants that did not hold; empty when the case passed. */
  failures: string[];
  events: number;
  /** Heads offered through the avail ring. */
  offered: number;
  /** A device-writable buffer lay over the used ring (the used-ring checks were off). */
  unchecked: boolean;
  prelude: boolean;
  /** Run with CaseOptions.reset (its replay needs the same). */
  reset: boolean;
}

/** How cases are run, beyond (seed, index): a case replays only with the same settings. */
export interface CaseOptions {
  /**
   * End some cases with a device reset while requests may be in flight
   * (the device must drain them first, as QEMU's virtio_blk_reset →
   * blk_drain does: seed 1 case 252 found it did not).
   */
  reset?: boolean;
  /** Sees every modelled function entered (replay only: it is slow). */
  log?: EventLogger;
}

/** Run case `index` of the run seeded `seed`. */
export function runCase(seed: number, index: number, env: FuzzEnv, opts: CaseOptions = {}): CaseResult {
  const d = new Dice(caseSeed(seed, index));
  const params = drawParams(d, seed, index, env.imagePath);
  env.memory.ram.fill(0);
  const failures: string[] = [];
  let m: Machine | null = null;
  const ctx = new CaseContext(d, FUZZ_RAM_SIZE, opts.reset ?? false);
  let outcome = 'exception';
  try {
    const machine = (m = new Machine({
      options: params.options,
      scenario: NO_SCENARIO,
      memory: env.memory,
      log: opts.log,
      program: (g) => fuzz_guest(g, ctx),
    }));
    const sim = machine.sim;
    ctx.sectors = Math.floor(machine.image.size / 512);
    ctx.monitor = new Monitor(machine.mem, machine.vdev.vq[0], { sectors: ctx.sectors, readOnly: machine.image.readOnly });
    // The budget works through the slice end: past it, every event is checked and the run stops.
    ctx.allow = (events) => {
      sim.sliceEnd = sim.trapSeq = Math.max(sim.sliceEnd, sim.seq + events);
    };
    sim.sliceEnd = sim.trapSeq = INITIAL_EVENT_BUDGET;
    arm(machine, ctx.monitor);
    const r = machine.run(MAX_STEPS);
    if (r === 'slice') failures.push(`event budget exceeded: still running after ${sim.seq} events (a loop the device did not catch?)`);
    else if (r === 'limit') failures.push(`step budget exceeded: ${MAX_STEPS} scheduler steps`);
    else if (r === 'stopped') failures.push('the machine stopped on a breakpoint nobody set');
    else {
      failures.push(...checkEnding({ m: machine, monitor: ctx.monitor, ring: ctx.ring, allocAfterProbe: ctx.allocAfterProbe, programDone: ctx.done, ramAfterReset: ctx.ramAfterReset }));
    }
    outcome = outcomeOf(machine);
  } catch (e) {
    failures.push(`exception escaped the machine: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  } finally {
    try {
      m?.close();
    } catch (e) {
      failures.push(`exception closing the machine: ${String(e)}`);
    }
  }
  return {
    seed,
    index,
    params,
    outcome,
    failures,
    events: m?.sim.seq ?? 0,
    offered: ctx.offered,
    unchecked: ctx.monitor?.unchecked ?? false,
    prelude: ctx.prelude,
    reset: opts.reset ?? false,
  };
}

/** Let the monitor see the events it checks, and nothing else. */
function arm(m: Machine, monitor: Monitor): void {
  const sim = m.sim;
  const w = watchedEvents();
  for (const f of [w.fill, w.flush, w.error]) sim.armFunction(f, true);
  for (const p of [w.readHead, w.elem]) sim.armPoint(p, true);
  sim.hook = (ev) => monitor.onEvent(ev);
}

// ---- a run ----

export interface FuzzSummary {
  seed: number;
  reset: boolean;
  first: number;
  count: number;
  seconds: number;
  casesPerSecond: number;
  /** Cases by outcome: "completed" or a virtio_error pattern. */
  outcomes: Record<string, number>;
  /** The failing cases (at most `maxFailures` kept), in case order. */
  failed: CaseResult[];
  failedCount: number;
  /** Failures of the run as a whole (image file, heap). */
  runFailures: string[];
  unchecked: number;
  preludes: number;
  heapGrowth: number | null;
}

export interface FuzzRunOptions {
  seed: number;
  count: number;
  /** First case index (default 0). */
  first?: number;
  maxFailures?: number;
  /** Called for each failing case as it happens. */
  onFailure?: (r: CaseResult) => void;
  /** See CaseOptions.reset. */
  reset?: boolean;
  /** Run only the cases whose offset from `first` is `index` modulo `of` (one worker's share of a run). */
  shard?: { index: number; of: number };
  /** The index of the case running now is stored here (shared memory: a watchdog in another thread reads it). */
  progress?: Int32Array;
}

export function runFuzz(o: FuzzRunOptions): FuzzSummary {
  const first = o.first ?? 0;
  const maxFailures = o.maxFailures ?? 50;
  const env = new FuzzEnv(o.seed);
  const outcomes: Record<string, number> = {};
  const failed: CaseResult[] = [];
  let failedCount = 0;
  let unchecked = 0;
  let preludes = 0;
  const runFailures: string[] = [];
  // The heap is measured after a tenth of the run (the JIT and caches warm) and again at the end.
  const shard = o.shard ?? { index: 0, of: 1 };
  let ran = 0;
  const mark = first + Math.min(o.count - 1, Math.max(50, Math.floor(o.count / 10)));
  let heapAtMark: number | null = null;
  const t0 = process.hrtime.bigint();
  try {
    for (let i = first; i < first + o.count; i++) {
      if ((i - first) % shard.of !== shard.index) {
        if (i === mark) heapAtMark = heapAfterGc();
        continue;
      }
      ran++;
      if (o.progress) Atomics.store(o.progress, 0, i);
      const r = runCase(o.seed, i, env, { reset: o.reset });
      outcomes[r.outcome] = (outcomes[r.outcome] ?? 0) + 1;
      if (r.unchecked) unchecked++;
      if (r.prelude) preludes++;
      if (r.failures.length > 0) {
        failedCount++;
        if (failed.length < maxFailures) failed.push(r);
        o.onFailure?.(r);
      }
      if (i === mark) heapAtMark = heapAfterGc();
    }
  } finally {
    const fileChange = env.close();
    if (fileChange) runFailures.push(fileChange);
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  let heapGrowth: number | null = null;
  if (heapAtMark !== null && ran >= 1000) {
    heapGrowth = heapAfterGc() - heapAtMark;
    if (heapGrowth > HEAP_GROWTH_LIMIT) runFailures.push(`the heap grew by ${(heapGrowth / 1048576).toFixed(1)} MiB over the run (limit ${HEAP_GROWTH_LIMIT / 1048576} MiB)`);
  }
  return {
    seed: o.seed,
    reset: o.reset ?? false,
    first,
    count: ran,
    seconds,
    casesPerSecond: ran / seconds,
    outcomes,
    failed,
    failedCount,
    runFailures,
    unchecked,
    preludes,
    heapGrowth,
  };
}

/** One summary of a run made by several workers (each ran a shard), `seconds` being the run's wall time. */
export function mergeSummaries(parts: readonly FuzzSummary[], seconds: number): FuzzSummary {
  const outcomes: Record<string, number> = {};
  for (const p of parts) for (const [k, n] of Object.entries(p.outcomes)) outcomes[k] = (outcomes[k] ?? 0) + n;
  const count = parts.reduce((s, p) => s + p.count, 0);
  const growth = parts.map((p) => p.heapGrowth).filter((g): g is number => g !== null);
  return {
    seed: parts[0].seed,
    reset: parts[0].reset,
    first: Math.min(...parts.map((p) => p.first)),
    count,
    seconds,
    casesPerSecond: count / seconds,
    outcomes,
    failed: parts.flatMap((p) => p.failed).sort((a, b) => a.index - b.index),
    failedCount: parts.reduce((s, p) => s + p.failedCount, 0),
    runFailures: parts.flatMap((p) => p.runFailures),
    unchecked: parts.reduce((s, p) => s + p.unchecked, 0),
    preludes: parts.reduce((s, p) => s + p.preludes, 0),
    heapGrowth: growth.length > 0 ? Math.max(...growth) : null,
  };
}

let gcFn: (() => void) | null | undefined;

/** heapUsed after a full collection when one can be had (node --expose-gc, or V8's flag set at run time). */
function heapAfterGc(): number {
  if (gcFn === undefined) {
    gcFn = (globalThis as { gc?: () => void }).gc ?? null;
    if (gcFn === null) {
      try {
        setFlagsFromString('--expose-gc');
        gcFn = runInNewContext('gc') as () => void;
      } catch {
        gcFn = null;
      }
    }
  }
  gcFn?.();
  return process.memoryUsage().heapUsed;
}
