/**
 * Launch attributes as the machine takes them: defaults, every type and
 * range check with a message that names the attribute, the combinations
 * QEMU refuses, and the command-line form.
 */
import assert from 'node:assert/strict';
import { ATTRIBUTES, DEFAULT_OPTIONS, OptionError, optionsFromArgs, validateOptions } from '../../src/machine/options';
import { boot, runToIdle } from '../helpers/machine';
import { VIRTIO_BLK_F_MQ, hasFeature } from '../../src/machine/spec/virtio';

function rejects(raw: Record<string, unknown>, attribute: string, message: RegExp): void {
  assert.throws(
    () => validateOptions(raw),
    (e: unknown) => e instanceof OptionError && e.attribute === attribute && message.test(e.message),
  );
}

describe('options', () => {
  it('test_defaults_are_design_md_defaults', () => {
    assert.deepEqual(validateOptions({}), DEFAULT_OPTIONS);
    assert.equal(DEFAULT_OPTIONS.queueSize, 256);
    assert.equal(DEFAULT_OPTIONS.aio, 'io_uring');
    assert.equal(DEFAULT_OPTIONS.imageMode, 'snapshot');
    assert.equal(DEFAULT_OPTIONS.ioeventfd, true);
  });

  it('test_every_attribute_has_a_type_check_naming_it', () => {
    for (const [name, spec] of Object.entries(ATTRIBUTES)) {
      const wrong = spec.kind === 'boolean' || spec.kind === 'integer' ? 'nope' : 42;
      rejects({ [name]: wrong }, name, new RegExp(`attribute '${name}' must be`));
    }
  });

  it('test_ranges_and_enums', () => {
    rejects({ queueSize: 3 }, 'queueSize', /power of 2, got 3/);
    rejects({ queueSize: 65536 }, 'queueSize', /from 2 to 32768/);
    rejects({ aio: 'posix' }, 'aio', /one of "threads", "io_uring", "native"/);
    rejects({ imageMode: 'rw' }, 'imageMode', /"snapshot", "readonly", "writethrough"/);
    rejects({ seed: -1 }, 'seed', /integer from 0/);
    rejects({ numQueues: 0 }, 'numQueues', /from 1 to 16/);
  });

  it('test_refused_combinations', () => {
    rejects({ iothread: true, ioeventfd: false }, 'iothread', /requires 'ioeventfd': true/);
    rejects({ packed: true }, 'packed', /packed virtqueues are not modelled yet/);
  });

  it('test_command_line_form', () => {
    const o = optionsFromArgs(['--queueSize=16', '--ioeventfd=false', '--aio=threads', '--seed=0x10']);
    assert.equal(o.queueSize, 16);
    assert.equal(o.ioeventfd, false);
    assert.equal(o.aio, 'threads');
    assert.equal(o.seed, 16);
    assert.doesNotThrow(() => optionsFromArgs(['--iothread']));
    assert.throws(() => optionsFromArgs(['--iothread', '--ioeventfd=false']), OptionError);
    assert.throws(() => optionsFromArgs(['--bogus=1']), /unknown option '--bogus'/);
    assert.throws(() => optionsFromArgs(['queueSize=1']), /expected --name=value/);
  });

  it('test_num_queues_offers_mq_and_a_one_vcpu_guest_uses_one', () => {
    const { m } = boot('read 0 512\nwait\n', { numQueues: 4 });
    runToIdle(m);
    const s = m.snapshot();
    assert.equal(s.queues.length, 4);
    assert.equal(s.device.config.num_queues, 4);
    assert.ok(hasFeature(s.device.host_features, VIRTIO_BLK_F_MQ));
    // Linux uses min(nr_cpu_ids, num_queues) queues: one vCPU, one queue.
    assert.ok(s.queues[0].vring_desc !== 0);
    for (const q of s.queues.slice(1)) assert.equal(q.vring_desc, 0);
    assert.equal(s.queues[0].used.idx, 1);
    assert.equal(m.guest.requests[0].status, 'BLK_STS_OK');
  });
});
