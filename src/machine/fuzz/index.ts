/**
 * The fuzzer: random split rings thrown at the virtio-blk device, every
 * case on a fresh machine, every outcome checked against QEMU's rules.
 *
 *   runFuzz / runCase   run.ts: a run of cases (or one worker's shard of it), or one case replayed
 *   mergeSummaries      run.ts: the summary of a run made by several workers
 *   FuzzEnv             run.ts: what a run's cases share (RAM buffer, image file)
 *   VIRTIO_ERROR_PATTERNS, errorPattern   invariants.ts: the only messages a device may give up with
 *
 * The rest is private: params.ts (the machine of a case), program.ts (vCPU 0's
 * program), generate.ts (ring contents), reference.ts (QEMU's rules),
 * monitor.ts (the checker that rides along), layout.ts, dice.ts.
 */
export { runCase, runFuzz, mergeSummaries, FuzzEnv } from './run';
export type { CaseOptions, CaseResult, FuzzSummary, FuzzRunOptions } from './run';
export { VIRTIO_ERROR_PATTERNS, COMPLETED, errorPattern } from './invariants';
