/**
 * The names machineEnv (machine-env.ts) resolves besides a frame's own
 * parameters and the scenario's raw `buf` names. Kept apart from the
 * machine so that the scenario parser can check an `expect` line's names
 * before anything runs, without loading the machine.
 */

/** A queue's fields, with the names and shapes of the state snapshot (state/snapshot.ts, QueueSnapshot). */
export const QUEUE_NAMES: readonly string[] = [
  'index', 'num', 'vring_desc', 'vring_avail', 'vring_used', 'desc', 'avail', 'used',
  'last_avail_idx', 'shadow_avail_idx', 'used_idx', 'signalled_used', 'signalled_used_valid', 'inuse',
  'driver', 'inflight', 'indirect',
];

/** The whole machine: the device as the snapshot shows it, every queue, every thread, the guest's kernel log. */
export const MACHINE_NAMES: readonly string[] = ['device', 'queues', 'threads', 'dmesg'];

/** Everything a scenario line can name without a frame (besides its bufs). */
export const SCENARIO_NAMES: ReadonlySet<string> = new Set([...QUEUE_NAMES, ...MACHINE_NAMES]);
