/**
 * The fuzzer, inside `npm test`: a fixed-seed run of 10,000 random cases
 * must break no invariant (src/machine/fuzz/invariants.ts and monitor.ts),
 * and must stay useful — its outcomes cover completed requests and most of
 * QEMU's virtio_error messages. Then every case kept in
 * test/regressions/fuzz-cases.json (failures the fuzzer once found) is
 * replayed alone. Also a few checks of the reference rules the checker
 * holds the device to, on hand-made rings.
 */
import { strict as assert } from 'node:assert';
import { COMPLETED, FuzzEnv, VIRTIO_ERROR_PATTERNS, errorPattern, runCase, runFuzz } from '../../src/machine/fuzz';
import { predict } from '../../src/machine/fuzz/reference';
import { GuestMemory } from '../../src/machine/memory/guest-memory';
import * as V from '../../src/machine/spec/virtio';
import regressions from '../regressions/fuzz-cases.json';

/** Fixed: a failure here replays with `npm run fuzz -- --seed=20261125 --case=I`. */
const SEED = 20261125;
const CASES = 10_000;

interface Regression {
  seed: number;
  case: number;
  /** The case ran with resets on (`--reset`). */
  reset?: boolean;
  /** What went wrong, and what was changed. */
  note?: string;
  /** Set while the bug is not fixed: the replay is listed as pending, with this reason. */

  /**
   * What the generator drew for the case when it was recorded. A case is
   * (seed, index) through the generator: if generate.ts changes, the same
   * pair is another case, and this says so instead of passing vacuously.
   */
  pinned?: { queueSize: number; offered: number };
}

describe('fuzz: random rings cannot break the machine', function () {
  this.timeout(120_000);

  it(`${CASES} cases with seed ${SEED}: every invariant holds, outcomes cover the device's answers`, () => {
    const s = runFuzz({ seed: SEED, count: CASES, maxFailures: 5, reset: true });
    const report = s.failed.map((r) => `case ${r.index} (${r.outcome}): ${r.failures.join('; ')}\n  replay: npm run fuzz -- --seed=${r.seed} --case=${r.index}${r.reset ? '' : ' --no-reset'}`);
    assert.deepEqual(report, [], `${s.failedCount} failing cases`);
    assert.deepEqual(s.runFailures, []);
    for (const outcome of Object.keys(s.outcomes)) {
      assert.ok(outcome === COMPLETED || VIRTIO_ERROR_PATTERNS.some((p) => p.pattern === outcome), `outcome '${outcome}' is not an allowed message pattern`);
    }
    assert.ok((s.outcomes[COMPLETED] ?? 0) > CASES / 5, `completed in ${s.outcomes[COMPLETED] ?? 0} cases only`);
    const errors = Object.keys(s.outcomes).filter((o) => o !== COMPLETED);
    assert.ok(errors.length >= 12, `only ${errors.length} distinct virtio_error messages reached: ${errors.join(', ')}`);
  });

  it('a case replays alone, exactly', () => {
    const env = new FuzzEnv(SEED);
    try {
      for (const i of [0, 17, 4242]) {
        const a = runCase(SEED, i, env);
        const b = runCase(SEED, i, env);
        assert.deepEqual([b.outcome, b.events, b.offered, b.failures], [a.outcome, a.events, a.offered, a.failures], `case ${i}`);
      }
    } finally {
      assert.equal(env.close(), null);
    }
  });

  const kept = regressions as Regression[];
  describe(`regressions: ${kept.length} cases the fuzzer once failed (test/regressions/fuzz-cases.json)`, () => {
    for (const r of kept) {
      it(`seed ${r.seed} case ${r.case}${r.reset ? ' --reset' : ''}: ${r.note ?? ''}`, () => {
        const env = new FuzzEnv(r.seed);
        try {
          const res = runCase(r.seed, r.case, env, { reset: r.reset });
          if (r.pinned) {
            const drawn = { queueSize: res.params.options.queueSize, offered: res.offered };
            assert.deepEqual(drawn, r.pinned, 'the generator changed since this case was recorded: find the failing case again and re-pin it');
          }
          assert.deepEqual(res.failures, []);
        } finally {
          assert.equal(env.close(), null);
        }
      });
    }
  });
});

describe('fuzz: the reference rules the checker holds the device to', () => {
  const RAM = 64 * 1024;
  const ring = { num: 8, desc: 0x1000, avail: 0x1080, used: 0x1100 };
  const disk = { sectors: 100, readOnly: false };
  const { VRING_DESC_F_NEXT: NEXT, VRING_DESC_F_WRITE: WRITE, VRING_DESC_F_INDIRECT: INDIRECT } = V;

  function desc(mem: GuestMemory, table: number, i: number, addr: number, len: number, flags: number, next = 0): void {
    const a = table + i * 16;
    mem.write64(a, addr);
    mem.write32(a + 8, len);
    mem.write16(a + 12, flags);
    mem.write16(a + 14, next);
  }

  /** A 512-byte read of sector `sector` as a three-descriptor chain at 0..2. */
  function readChain(sector: number): GuestMemory {
    const mem = new GuestMemory(RAM);
    mem.write32(0x2000, V.VIRTIO_BLK_T_IN);
    mem.write64(0x2008, sector);
    desc(mem, ring.desc, 0, 0x2000, 16, NEXT, 1);
    desc(mem, ring.desc, 1, 0x3000, 512, WRITE | NEXT, 2);
    desc(mem, ring.desc, 2, 0x4000, 1, WRITE);
    return mem;
  }

  it('a sound read: every writable byte in the used len, S_OK', () => {
    const v = predict(readChain(7), ring, 0, disk);
    assert.equal(v.error, null);
    assert.ok(v.error === null && v.inBytes === 513 && v.status === V.VIRTIO_BLK_S_OK && v.statusAddr === 0x4000);
  });

  it('a read past the end of the disk: S_IOERR, not an error', () => {
    const v = predict(readChain(100), ring, 0, disk);
    assert.ok(v.error === null && v.status === V.VIRTIO_BLK_S_IOERR);
  });

  it('QEMU\'s messages for broken chains, at the stage QEMU gives them', () => {
    const cases: [string, (m: GuestMemory) => void, string, 'pop' | 'blk'][] = [
      ['loop', (m) => desc(m, ring.desc, 2, 0x4000, 1, WRITE | NEXT, 1), 'Looped descriptor', 'pop'],
      ['next past the table', (m) => desc(m, ring.desc, 2, 0x4000, 1, WRITE | NEXT, 8), 'Desc next is 8', 'pop'],
      ['readable after writable', (m) => desc(m, ring.desc, 2, 0x4000, 1, 0), 'Incorrect order for descriptors', 'pop'],
      ['zero length', (m) => desc(m, ring.desc, 1, 0x3000, 0, WRITE | NEXT, 2), 'virtio: zero sized buffers are not allowed', 'pop'],
      ['past RAM', (m) => desc(m, ring.desc, 1, RAM - 100, 512, WRITE | NEXT, 2), 'virtio: bogus descriptor or out of resources', 'pop'],
      ['indirect table of 40 bytes', (m) => desc(m, ring.desc, 0, 0x5000, 40, INDIRECT), 'Invalid size for indirect buffer table', 'pop'],
      ['indirect table past RAM', (m) => desc(m, ring.desc, 0, RAM - 16, 48, INDIRECT), 'Cannot map indirect buffer', 'pop'],
      ['no writable buffer', (m) => desc(m, ring.desc, 0, 0x2000, 16, 0), 'virtio-blk missing headers', 'blk'],
      ['short header', (m) => desc(m, ring.desc, 0, 0x2000, 8, NEXT, 1), 'virtio-blk request outhdr too short', 'blk'],
    ];
    for (const [what, patch, message, stage] of cases) {
      const mem = readChain(0);
      patch(mem);
      assert.deepEqual(predict(mem, ring, 0, disk), { error: message, stage }, what);
    }
    assert.deepEqual(predict(readChain(0), ring, 8, disk), { error: 'Guest says index 8 is available', stage: 'pop' });
  });

  it('every allow-listed message has a pattern that matches only itself', () => {
    for (const p of VIRTIO_ERROR_PATTERNS) {
      const sample = p.pattern.replace(/%u/g, '12');
      assert.equal(errorPattern(sample), p.pattern);
    }
    assert.equal(errorPattern('Looped descriptor!'), null);
  });
});
