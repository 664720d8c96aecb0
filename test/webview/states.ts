/** Snapshots taken from the machine at test (or bench) time: large queues are generated, not committed. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { boot, runToFunction } from '../helpers/machine';
import type { MachineOptions } from '../../src/machine/options';
import type { StateSnapshot } from '../../src/machine/state/snapshot';
import { ROOT } from './harness';

export const FIXTURES = path.join(ROOT, 'test', 'webview', 'fixtures');

export function sample(rel: string): string {
  return fs.readFileSync(path.join(ROOT, 'samples', rel), 'utf8');
}

/** A scenario (the bundled default unless given) stopped at the first entry of `fn`. */
export function stateAt(fn: string, options: Partial<MachineOptions> = {}, text = sample('default.virtio')): StateSnapshot {
  const { m } = boot(text, options);
  try {
    if (!runToFunction(m, fn)) throw new Error(`the machine went idle before ${fn}`);
    return m.snapshot();
  } finally {
    m.close();
  }
}
