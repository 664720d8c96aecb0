/**
 * A full ring (FIDELITY §1.1, §1.3): when the driver cannot place a request
 * (-ENOSPC), blk-mq stops the hardware queue and requeues it; a completion
 * restarts the queue and the request goes out. Nothing is lost or reordered
 * in the image, and the ring indices stay consistent.
 */
import assert from 'node:assert/strict';
import { boot, fnNames, runToIdle } from '../helpers/machine';
import { generatedSectorText } from '../../src/machine/image/image';

describe('full ring', () => {
  it('test_enospc_stops_the_hw_queue_and_completion_restarts_it', () => {
    // 4 descriptors, no indirect: a read takes 3, so the second of a batch finds 1 free.
    const reads = Array.from({ length: 6 }, (_, i) => `  read ${i * 8} 512`).join('\n');
    const { m, events } = boot(`batch {\n${reads}\n}\nwait\n`, { queueSize: 4, indirectDesc: false });
    runToIdle(m);
    const names = fnNames(events, 'vCPU 0');
    assert.ok(names.includes('blk_mq_start_stopped_hw_queues'), 'the completion path restarts the queue');
    // The error path kicks before giving up (virtqueue_kick), as virtio_queue_rq does on -ENOSPC.
    assert.ok(names.includes('virtqueue_kick'), 'virtqueue_kick on the -ENOSPC path');
    const reqs = m.guest.requests;
    assert.equal(reqs.length, 6);
    for (const [i, r] of reqs.entries()) {
      assert.equal(r.status, 'BLK_STS_OK', `request ${i}`);
      assert.equal(Buffer.from(r.data_hex!, 'hex').toString('latin1'), generatedSectorText(i * 8).toString('latin1'));
    }
    const q = m.snapshot().queues[0];
    assert.equal(q.used.idx, 6);
    assert.equal(q.avail.idx, 6);
    assert.equal(q.driver!.num_free, 4);
    assert.equal(q.inuse, 0);
  });

  it('test_tag_exhaustion_waits_without_enospc', () => {
    // With indirect descriptors every request takes one ring slot, so the queue depth (= ring size) binds first.
    const reads = Array.from({ length: 10 }, (_, i) => `  read ${i * 8} 512`).join('\n');
    const { m, events } = boot(`batch {\n${reads}\n}\nwait\n`, { queueSize: 4 });
    runToIdle(m);
    assert.ok(m.guest.requests.every((r) => r.status === 'BLK_STS_OK'));
    assert.equal(m.snapshot().queues[0].used.idx, 10);
    assert.ok(!fnNames(events).includes('virtqueue_kick'), 'no -ENOSPC path when tags run out first');
  });
});
