/**
 * Record the inspector's fixtures from the real machine: `virtio/state`
 * snapshots at a few stops, written to test/webview/fixtures/*.json.
 *
 *   npx tsc -p . && node out/test/webview/record-fixtures.js
 *
 * Each fixture is { stop: { reason, description }, state }.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { boot, runToFunction, runToIdle } from '../helpers/machine';
import type { StateSnapshot } from '../../src/machine/state/snapshot';
import type { StopContext } from '../../src/inspector/protocol';

export interface Fixture {
  stop: StopContext | null;
  state: StateSnapshot;
}

import { FIXTURES, sample } from './states';

function stopAt(fn: string): StopContext {
  return { reason: 'function breakpoint', description: `Paused on function breakpoint ${fn}`, threadId: 1 };
}


export function record(): Record<string, Fixture> {
  const out: Record<string, Fixture> = {};
  // Direct descriptors (no VIRTIO_RING_F_INDIRECT_DESC): chains in the ring's table.
  {
    const { m } = boot(sample('default.virtio'), { indirectDesc: false });
    runToFunction(m, 'virtio_blk_handle_output');
    out['direct-handle-output'] = { stop: stopAt('virtio_blk_handle_output'), state: m.snapshot() };
    runToFunction(m, 'virtio_blk_rw_complete');
    out['direct-rw-complete'] = { stop: stopAt('virtio_blk_rw_complete'), state: m.snapshot() };
    // The batch: several elements in flight at once.
    for (let i = 0; i < 50; i++) {
      if (!runToFunction(m, 'virtio_blk_rw_complete')) break;
      const s = m.snapshot();
      if (s.queues[0].inflight.length >= 2) {
        out['direct-batch'] = { stop: stopAt('virtio_blk_rw_complete'), state: s };
        break;
      }
    }
    m.close();
  }
  // The default options: Linux sends every request through an indirect table.
  {
    const { m } = boot(sample('default.virtio'));
    runToFunction(m, 'virtio_blk_rw_complete');
    out['indirect-rw-complete'] = { stop: stopAt('virtio_blk_rw_complete'), state: m.snapshot() };
    m.close();
  }
  // A raw driver's indirect write.
  {
    const { m } = boot(sample('raw/indirect-write.virtio'));
    runToFunction(m, 'virtio_blk_handle_output');
    runToFunction(m, 'virtqueue_push');
    out['raw-indirect'] = { stop: stopAt('virtqueue_push'), state: m.snapshot() };
    m.close();
  }
  // A spec violation: the device is broken.
  {
    const { m } = boot(sample('errors/looped-descriptor.virtio'));
    runToIdle(m);
    out['error-looped'] = { stop: { reason: 'exception', description: 'virtio_error: Looped descriptor' }, state: m.snapshot() };
    m.close();
  }
  return out;
}

if (require.main === module) {
  fs.mkdirSync(FIXTURES, { recursive: true });
  for (const [name, f] of Object.entries(record())) {
    fs.writeFileSync(path.join(FIXTURES, `${name}.json`), JSON.stringify(f) + '\n');
    const q = f.state.queues[0];
    process.stdout.write(`${name}: num ${q.num}, avail.idx ${q.avail.idx}, used.idx ${q.used.idx}, inflight ${q.inflight.map((e) => e.index).join(',')}, broken ${f.state.device.broken}\n`);
  }
}
