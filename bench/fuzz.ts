/**
 * `npm run fuzz`: throw random rings at the machine and check that it cannot
 * be broken (src/machine/fuzz). Options:
 *
 *   --seed=N     the run's seed (default 1)
 *   --count=M    cases to run (default 100000)
 *   --first=I    the first case index (default 0)
 *   --case=I     replay one case, say what it was and what happened
 *   --log        with --case: print every modelled function entered, gdb-style
 *   --no-reset   never end a case with a device reset (by default some cases
 *                reset the device while requests are in flight)
 *   --jobs=J     worker threads sharing the run (default: one per CPU, at most 4);
 *                the cases and their outcomes do not depend on J
 *
 * Every case is a pure function of (seed, index, resets on or off). A run ends with
 * JSON lines: {"figure":"fuzz_cases_per_second",...}, {"outcomes":{...}}
 * (cases by "completed" or virtio_error pattern), then a line of run
 * statistics. Each failing case prints its seed, its index and
 * the command that replays it; any failure makes the exit status 1. A
 * replayed failure becomes a regression test by adding {seed, case, note,
 * pinned: {queueSize, offered}} (the last two as the replay prints them) to
 * test/regressions/fuzz-cases.json, which test/unit/fuzz.test.ts replays.
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { availableParallelism, tmpdir } from 'node:os';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { formatArgs } from '../src/machine/sim/frames';
import { CaseResult, FuzzEnv, FuzzRunOptions, FuzzSummary, mergeSummaries, runCase, runFuzz } from '../src/machine/fuzz';

interface Args {
  seed: number;
  count: number;
  first: number;
  replay: number | null;
  log: boolean;
  reset: boolean;
  jobs: number;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { seed: 1, count: 100_000, first: 0, replay: null, log: false, reset: true, jobs: Math.min(4, availableParallelism()) };
  for (const arg of argv) {
    const m = /^--(seed|count|first|case|jobs)=(\d+)$/.exec(arg);
    if (m) {
      const v = Number(m[2]);
      if (m[1] === 'seed') a.seed = v;
      else if (m[1] === 'count') a.count = v;
      else if (m[1] === 'first') a.first = v;
      else if (m[1] === 'jobs') a.jobs = Math.max(1, v);
      else a.replay = v;
    } else if (arg === '--log') {
      a.log = true;
    } else if (arg === '--reset') {
      a.reset = true;
    } else if (arg === '--no-reset') {
      a.reset = false;
    } else {
      throw new Error(`unknown argument '${arg}' (use --seed=N --count=M --first=I --case=I --log --no-reset --jobs=J)`);
    }
  }
  return a;
}

const replayCommand = (r: CaseResult): string => `npm run fuzz -- --seed=${r.seed} --case=${r.index}${r.reset ? '' : ' --no-reset'}`;

function reportFailure(r: CaseResult): void {
  process.stderr.write(`FAIL seed=${r.seed} case=${r.index} (${r.outcome}):\n`);
  for (const f of r.failures) process.stderr.write(`  - ${f}\n`);
  process.stderr.write(`  replay: ${replayCommand(r)}\n`);
}

function replay(a: Args, index: number): number {
  const env = new FuzzEnv(a.seed);
  let r: CaseResult;
  try {
    r = runCase(a.seed, index, env, {
      reset: a.reset,
      log: a.log
        ? (thread, frame, seq, depth) => process.stdout.write(`${seq} [${thread.name}] ${'  '.repeat(Math.max(0, depth))}${frame.desc.name} (${formatArgs(frame)})\n`)
        : undefined,
    });
  } finally {
    const changed = env.close();
    if (changed) process.stderr.write(`FAIL ${changed}\n`);
  }
  const o = r.params.options;
  process.stdout.write(JSON.stringify({
    seed: r.seed,
    case: r.index,
    options: { queueSize: o.queueSize, indirectDesc: o.indirectDesc, eventIdx: o.eventIdx, ioeventfd: o.ioeventfd, iothread: o.iothread, aio: o.aio, imageMode: o.imageMode, image: r.params.imageFile ? 'file' : 'generated', seed: o.seed },
    outcome: r.outcome,
    events: r.events,
    offered: r.offered,
    prelude: r.prelude,
    reset: r.reset,
    unchecked: r.unchecked,
    failures: r.failures,
  }, null, 2) + '\n');
  if (r.failures.length > 0) {
    reportFailure(r);
    return 1;
  }
  return 0;
}

/** Messages from a worker running one shard of the run. */
type FromWorker = { kind: 'failure'; result: CaseResult } | { kind: 'done'; summary: FuzzSummary };

/** A case running this long is stuck in a loop that produces no events (the event budget cannot stop those). */
const STUCK_SECONDS = 60;

/** A worker's case never ended; the message says which and how to replay it. */
class StuckCase extends Error {}

/**
 * Run the cases on `jobs` worker threads, each taking every jobs-th case;
 * failures are reported as they come. A watchdog reads which case each
 * worker is on (shared memory) and names a case that never ends.
 */
function runParallel(o: FuzzRunOptions, jobs: number): Promise<FuzzSummary> {
  const t0 = process.hrtime.bigint();
  const workers: Worker[] = [];
  let stuck: Error | null = null;
  const shards = Array.from({ length: jobs }, (_, index) => new Promise<FuzzSummary>((resolve, reject) => {
    const progress = new Int32Array(new SharedArrayBuffer(4)).fill(-1);
    const w = new Worker(__filename, { workerData: { ...o, shard: { index, of: jobs }, progress } });
    workers.push(w);
    let seen = -1;
    let since = Date.now();
    const watch = setInterval(() => {
      const now = Atomics.load(progress, 0);
      if (now !== seen) {
        seen = now;
        since = Date.now();
      } else if (Date.now() - since > STUCK_SECONDS * 1000) {
        stuck = new StuckCase(`FAIL seed=${o.seed} case=${now}: still running after ${STUCK_SECONDS} s, in a loop no event budget can stop\n  replay: npm run fuzz -- --seed=${o.seed} --case=${now}${o.reset ? '' : ' --no-reset'}`);
        for (const x of workers) void x.terminate();
      }
    }, 1000);
    w.on('message', (msg: FromWorker) => {
      if (msg.kind === 'failure') reportFailure(msg.result);
      else resolve(msg.summary);
    });
    w.on('error', reject);
    w.on('exit', (code) => {
      clearInterval(watch);
      if (code !== 0) reject(stuck ?? new Error(`fuzz worker ${index} exited with ${code}`));
    });
  }));
  return Promise.all(shards).then((parts) => mergeSummaries(parts, Number(process.hrtime.bigint() - t0) / 1e9));
}

/** Terminated workers (or a run cut short) leave image files behind; FuzzEnv names them after this process. */
function removeImageFiles(): void {
  for (const f of readdirSync(tmpdir())) if (f.startsWith(`virtio-fuzz-${process.pid}-`)) rmSync(join(tmpdir(), f), { force: true });
}

/** A worker: run its shard, report each failure at once and the summary at the end. */
function workerMain(): void {
  const o = workerData as FuzzRunOptions;
  const post = (m: FromWorker): void => parentPort!.postMessage(m);
  const summary = runFuzz({ ...o, onFailure: (result) => post({ kind: 'failure', result }) });
  post({ kind: 'done', summary });
}

async function main(): Promise<number> {
  const a = parseArgs(process.argv.slice(2));
  if (a.replay !== null) return replay(a, a.replay);
  const o: FuzzRunOptions = { seed: a.seed, count: a.count, first: a.first, reset: a.reset };
  const jobs = Math.min(a.jobs, Math.max(1, Math.floor(a.count / 1000)));
  const s = jobs > 1 ? await runParallel(o, jobs) : runFuzz({ ...o, onFailure: reportFailure });
  const sorted = Object.fromEntries(Object.entries(s.outcomes).sort((x, y) => y[1] - x[1]));
  process.stdout.write(JSON.stringify({ figure: 'fuzz_cases_per_second', value: Math.round(s.casesPerSecond) }) + '\n');
  process.stdout.write(JSON.stringify({ outcomes: sorted }) + '\n');
  process.stdout.write(JSON.stringify({
    fuzz: {
      seed: s.seed, reset: s.reset, first: s.first, cases: s.count, jobs, seconds: Number(s.seconds.toFixed(2)), failed: s.failedCount,
      unchecked: s.unchecked, long_runs: s.preludes, heap_growth_bytes: s.heapGrowth,
    },
  }) + '\n');
  for (const f of s.runFailures) process.stderr.write(`FAIL run seed=${s.seed}: ${f}\n`);
  return s.failedCount > 0 || s.runFailures.length > 0 ? 1 : 0;
}

if (isMainThread) {
  // However the run ends (a closed pipe, a stuck worker), its image files go.
  process.on('exit', removeImageFiles);
  main().then((code) => (process.exitCode = code), (e: unknown) => {
    process.stderr.write(e instanceof StuckCase ? `${e.message}\n` : `fuzz: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 2;
  });
} else {
  workerMain();
}
