/**
 * Every virtio-blk request type through the whole machine (guest driver →
 * ring → device → block layer → image → status byte → guest): the status byte
 * each one ends with (FIDELITY §3.4: OK 0, IOERR 1, UNSUPP 2) and the guest's
 * blk_status for it (§4, virtblk_result), the bytes reads return and writes
 * leave (generated image and real files), discard and write-zeroes really
 * zeroing, out-of-range and unknown requests, the three image modes' promises
 * about the file on the host (snapshot never writes it, readonly refuses and
 * offers VIRTIO_BLK_F_RO, writethrough changes exactly the written sectors),
 * and the same data path under every aio / ioeventfd / iothread combination.
 */
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { boot, runToFunction, runToIdle } from '../helpers/machine';
import { GENERATED_IMAGE_SIZE, ImageError, generatedSectorText } from '../../src/machine/image/image';
import { DEFAULT_SERIAL } from '../../src/machine/machine';
import type { MachineOptions } from '../../src/machine/options';
import type { RequestRecord } from '../../src/machine/scenario/interpreter';
import type { VirtIOBlockReq } from '../../src/machine/qemu/hw/block/virtio-blk';
import * as V from '../../src/machine/spec/virtio';

const SECTOR = 512;
const CAPACITY = GENERATED_IMAGE_SIZE / SECTOR;

/** Run `text` to the end; the guest's request records, in issue order. */
function runScenario(text: string, options: Partial<MachineOptions> = {}): RequestRecord[] {
  const { m } = boot(text, options);
  try {
    runToIdle(m);
    assert.ok(m.idle, 'the machine went idle');
    assert.equal(m.vdev.broken, false, `device broken: ${m.vdev.errors.join('; ')}`);
    assert.equal(m.guest.inflight, 0, 'every request ended');
    return m.guest.requests;
  } finally {
    m.close();
  }
}

function assertOk(r: RequestRecord): void {
  assert.equal(r.virtio_status, V.VIRTIO_BLK_S_OK, `${r.statement}: virtio status`);
  assert.equal(r.status, 'BLK_STS_OK', `${r.statement}: blk status`);
}

function bytesOf(r: RequestRecord): Buffer {
  assert.ok(r.data_hex !== null, `${r.statement}: no data recorded`);
  return Buffer.from(r.data_hex, 'hex');
}

/** The generated image's sectors [first, first+count). */
function generated(first: number, count: number): Buffer {
  return Buffer.concat(Array.from({ length: count }, (_, i) => generatedSectorText(first + i)));
}

/** `n` bytes of a recognisable pattern seeded by `seed` (never all zero). */
function pattern(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = ((i * 7 + seed * 31 + (i >> 9) * 13) & 0xff) | 1;
  return b;
}

describe('requests: every type and its status byte (generated image)', () => {
  it('read returns the image bytes: read 8 512 is generatedSectorText(8)', () => {
    const [r] = runScenario('read 8 512\n');
    assertOk(r);
    assert.deepEqual(bytesOf(r), generatedSectorText(8));
  });

  it('a multi-sector read returns every sector in order', () => {
    const [r] = runScenario('read 100 4096\n');
    assertOk(r);
    assert.deepEqual(bytesOf(r), generated(100, 8));
  });

  it('write then read returns what was written (text padded with zeroes to the sector)', () => {
    const [w, rd, other] = runScenario('write 8 "hello, virtio"\nwait\nread 8 512\nread 9 512\n');
    assertOk(w);
    assertOk(rd);
    const want = Buffer.alloc(SECTOR);
    want.write('hello, virtio', 'latin1');
    assert.deepEqual(bytesOf(rd), want);
    // The neighbour is untouched.
    assert.deepEqual(bytesOf(other), generatedSectorText(9));
  });

  it('a multi-sector hex: write then read returns every byte', () => {
    const data = pattern(3 * SECTOR, 1);
    const [w, rd, before, after] = runScenario(
      `write 200 hex:${data.toString('hex')}\nwait\nread 200 1536\nread 199 512\nread 203 512\n`,
    );
    assertOk(w);
    assert.equal(w.bytes, 3 * SECTOR);
    assert.deepEqual(bytesOf(rd), data);
    assert.deepEqual(bytesOf(before), generatedSectorText(199));
    assert.deepEqual(bytesOf(after), generatedSectorText(203));
  });

  it('flush completes with S_OK', () => {
    const [w, f] = runScenario('write 8 "x"\nflush\n');
    assertOk(w);
    assertOk(f);
  });

  it('get-id returns the serial "VIRTIO-DEBUG-0001", NUL-terminated, and writes nothing past the NUL', () => {
    const { m } = boot('get-id\n');
    // Fill the guest's 20-byte ID buffer with 0xff first, so the NUL and the untouched tail are the device's doing.
    const ev = runToFunction(m, 'virtio_blk_handle_request');
    assert.ok(ev, 'the device parsed the request');
    const req = ev.frame.a0 as VirtIOBlockReq;
    assert.equal(req.elem.in_num, 2, 'ID buffer and status byte');
    const idBuf = req.elem.in_sg[0];
    assert.equal(idBuf.len, V.VIRTIO_BLK_ID_BYTES);
    m.mem.fill(idBuf.addr, idBuf.len, 0xff);
    runToIdle(m);
    const [r] = m.guest.requests;
    assertOk(r);
    const want = Buffer.from(DEFAULT_SERIAL + '\0', 'latin1');
    assert.equal(DEFAULT_SERIAL, 'VIRTIO-DEBUG-0001');
    assert.equal(want.length, 18);
    // The device writes min(strlen+1, 20) bytes: the serial and its NUL; the last two bytes keep the guest's 0xff.
    assert.deepEqual(bytesOf(r), Buffer.concat([want, Buffer.from([0xff, 0xff])]));
    m.close();
  });

  it('discard completes with S_OK and the sectors then read as zeroes', () => {
    const [d, rd, before, after] = runScenario('discard 64 8\nwait\nread 64 4096\nread 63 512\nread 72 512\n');
    assertOk(d);
    assert.deepEqual(bytesOf(rd), Buffer.alloc(8 * SECTOR));
    assert.deepEqual(bytesOf(before), generatedSectorText(63));
    assert.deepEqual(bytesOf(after), generatedSectorText(72));
  });

  it('write-zeroes without unmap completes with S_OK and zeroes exactly its sectors', () => {
    const [z, rd, before, after] = runScenario('write-zeroes 80 4\nwait\nread 80 2048\nread 79 512\nread 84 512\n');
    assertOk(z);
    assert.deepEqual(bytesOf(rd), Buffer.alloc(4 * SECTOR));
    assert.deepEqual(bytesOf(before), generatedSectorText(79));
    assert.deepEqual(bytesOf(after), generatedSectorText(84));
  });

  it('write-zeroes with unmap completes with S_OK and zeroes exactly its sectors', () => {
    const [z, rd, before, after] = runScenario('write-zeroes 90 3 unmap\nwait\nread 90 1536\nread 89 512\nread 93 512\n');
    assertOk(z);
    assert.deepEqual(bytesOf(rd), Buffer.alloc(3 * SECTOR));
    assert.deepEqual(bytesOf(before), generatedSectorText(89));
    assert.deepEqual(bytesOf(after), generatedSectorText(93));
  });

  it('write-zeroes with unmap sends the UNMAP flag in its range payload; without, flags are 0', () => {
    for (const [stmt, flags] of [['write-zeroes 90 3 unmap', 1], ['write-zeroes 90 3', 0]] as const) {
      const { m } = boot(stmt + '\n');
      const ev = runToFunction(m, 'virtio_blk_handle_request');
      assert.ok(ev, 'the device parsed the request');
      const req = ev.frame.a0 as VirtIOBlockReq;
      const hdr = req.elem.out_sg[0];
      assert.equal(m.mem.read32(hdr.addr), V.VIRTIO_BLK_T_WRITE_ZEROES);
      // The payload {le64 sector, le32 num_sectors, le32 flags}: the second readable descriptor.
      const seg = req.elem.out_sg[1];
      assert.equal(seg.len, 16);
      assert.equal(m.mem.read64(seg.addr), 90);
      assert.equal(m.mem.read32(seg.addr + 8), 3);
      assert.equal(m.mem.read32(seg.addr + 12), flags, stmt);
      runToIdle(m);
      assertOk(m.guest.requests[0]);
      m.close();
    }
  });

  it('a read past the capacity → S_IOERR (1) and BLK_STS_IOERR; the last sector itself is fine', () => {
    // The scenario hands the request straight to blk-mq (Linux's bio_check_eod would stop it earlier), so the device answers:
    // virtio_blk_sect_range_ok fails → S_IOERR without touching the image.
    const [past, straddle, last] = runScenario(`read ${CAPACITY} 512\nread ${CAPACITY - 1} 1024\nread ${CAPACITY - 1} 512\n`);
    for (const r of [past, straddle]) {
      assert.equal(r.virtio_status, V.VIRTIO_BLK_S_IOERR, r.statement);
      assert.equal(r.status, 'BLK_STS_IOERR', r.statement);
    }
    assertOk(last);
    assert.deepEqual(bytesOf(last), generatedSectorText(CAPACITY - 1));
  });

  it('a write, discard or write-zeroes past the capacity → S_IOERR', () => {
    const rs = runScenario(`write ${CAPACITY} "x"\ndiscard ${CAPACITY - 1} 2\nwrite-zeroes ${CAPACITY} 1\n`);
    for (const r of rs) {
      assert.equal(r.virtio_status, V.VIRTIO_BLK_S_IOERR, r.statement);
      assert.equal(r.status, 'BLK_STS_IOERR', r.statement);
    }
  });

  it('an unknown request type (outhdr.type rewritten to 99 in guest memory) → S_UNSUPP (2), BLK_STS_NOTSUPP', () => {
    const { m } = boot('read 8 512\n');
    const ev = runToFunction(m, 'virtio_blk_handle_request');
    assert.ok(ev, 'the device parsed the request');
    const req = ev.frame.a0 as VirtIOBlockReq;
    const hdr = req.elem.out_sg[0].addr;
    assert.equal(m.mem.read32(hdr), V.VIRTIO_BLK_T_IN, 'the header the guest wrote');
    m.mem.write32(hdr, 99);
    runToIdle(m);
    const [r] = m.guest.requests;
    assert.equal(r.virtio_status, V.VIRTIO_BLK_S_UNSUPP);
    assert.equal(r.status, 'BLK_STS_NOTSUPP');
    // Not a spec violation: the device answers and stays usable.
    assert.equal(m.vdev.broken, false);
    assert.deepEqual(m.vdev.errors, []);
    m.close();
  });
});

describe('requests: image modes with a real file', () => {
  const FILE_SIZE = 1024 * 1024;
  let dir: string;
  let original: Buffer;

  function sha256(file: string): string {
    return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  }

  function freshImage(name: string): string {
    const p = path.join(dir, name);
    fs.writeFileSync(p, original);
    return p;
  }

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'virtio-requests-'));
    original = pattern(FILE_SIZE, 7);
  });

  after(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const sectors = (first: number, count: number) => original.subarray(first * SECTOR, (first + count) * SECTOR);

  it('the file is what reads return, and its capacity bounds the requests', () => {
    const image = freshImage('plain.img');
    const [a, b, past] = runScenario(`read 0 512\nread 100 4096\nread ${FILE_SIZE / SECTOR} 512\n`, { image });
    assert.deepEqual(bytesOf(a), sectors(0, 1));
    assert.deepEqual(bytesOf(b), sectors(100, 8));
    assert.equal(past.virtio_status, V.VIRTIO_BLK_S_IOERR);
  });

  it('snapshot (default): reads in the run see the writes, the file hash is unchanged', () => {
    const image = freshImage('snapshot.img');
    const hash = sha256(image);
    const data = pattern(2 * SECTOR, 2);
    const rs = runScenario(
      [
        `write 8 hex:${data.toString('hex')}`,
        'discard 16 8',
        'write-zeroes 32 4',
        'write-zeroes 36 4 unmap',
        'flush',
        'wait',
        'read 8 1024',
        'read 16 4096',
        'read 32 4096',
        'read 40 512',
      ].join('\n') + '\n',
      { image },
    );
    rs.forEach(assertOk);
    const [, , , , , w8, d16, z32, r40] = rs;
    assert.deepEqual(bytesOf(w8), data);
    assert.deepEqual(bytesOf(d16), Buffer.alloc(8 * SECTOR));
    assert.deepEqual(bytesOf(z32), Buffer.alloc(8 * SECTOR));
    assert.deepEqual(bytesOf(r40), sectors(40, 1));
    assert.equal(sha256(image), hash, 'snapshot mode never writes the file');
  });

  it('readonly: VIRTIO_BLK_F_RO offered and negotiated, writes → S_IOERR, reads and flush OK, file unchanged', () => {
    const image = freshImage('readonly.img');
    const hash = sha256(image);
    const { m } = boot('write 8 "nope"\nwrite-zeroes 16 2\ndiscard 24 2\nflush\nwait\nread 8 512\nread 16 1024\n', {
      image,
      imageMode: 'readonly',
    });
    try {
      runToIdle(m);
      const dev = m.snapshot().device;
      assert.ok(V.hasFeature(dev.host_features, V.VIRTIO_BLK_F_RO), 'host_features has RO (bit 5)');
      assert.ok(V.hasFeature(dev.guest_features, V.VIRTIO_BLK_F_RO), 'guest_features has RO (bit 5)');
      assert.equal(dev.broken, false);
      const [w, z, d, f, r8, r16] = m.guest.requests;
      for (const r of [w, z, d]) {
        assert.equal(r.virtio_status, V.VIRTIO_BLK_S_IOERR, r.statement);
        assert.equal(r.status, 'BLK_STS_IOERR', r.statement);
      }
      assertOk(f);
      assertOk(r8);
      assert.deepEqual(bytesOf(r8), sectors(8, 1), 'the refused write left the sector alone');
      assert.deepEqual(bytesOf(r16), sectors(16, 2), 'the refused write-zeroes left the sectors alone');
    } finally {
      m.close();
    }
    assert.equal(sha256(image), hash);
  });

  it('a read-write run does not offer VIRTIO_BLK_F_RO', () => {
    const { m } = boot('read 0 512\n', { image: freshImage('rw.img') });
    runToIdle(m);
    assert.equal(V.hasFeature(m.snapshot().device.host_features, V.VIRTIO_BLK_F_RO), false);
    m.close();
  });

  it('writethrough: exactly the written sectors change in the file, and FLUSH completes OK', () => {
    const image = freshImage('writethrough.img');
    const a = pattern(SECTOR, 3);
    const b = pattern(3 * SECTOR, 4);
    const rs = runScenario(
      [
        `write 8 hex:${a.toString('hex')}`,
        `write 1000 hex:${b.toString('hex')}`,
        'write-zeroes 50 2',
        'write-zeroes 60 1 unmap',
        'discard 70 4',
        'flush',
        'wait',
        'read 1000 1536',
      ].join('\n') + '\n',
      { image, imageMode: 'writethrough' },
    );
    rs.forEach(assertOk);
    assert.deepEqual(bytesOf(rs[6]), b);
    const want = Buffer.from(original);
    a.copy(want, 8 * SECTOR);
    b.copy(want, 1000 * SECTOR);
    want.fill(0, 50 * SECTOR, 52 * SECTOR);
    want.fill(0, 60 * SECTOR, 61 * SECTOR);
    want.fill(0, 70 * SECTOR, 74 * SECTOR);
    const got = fs.readFileSync(image);
    assert.equal(got.length, FILE_SIZE, 'the file keeps its size');
    // Compare every byte, and name the first sector that differs.
    const diff = got.findIndex((v, i) => v !== want[i]);
    assert.equal(diff, -1, `first differing byte at ${diff} (sector ${Math.floor(diff / SECTOR)})`);
  });

  it('a missing image path: the Machine constructor throws ImageError naming the path', () => {
    const missing = path.join(dir, 'no-such-dir', 'missing.img');
    assert.throws(
      () => boot('read 0 512\n', { image: missing }),
      (e: unknown) => e instanceof ImageError && e.message.includes(missing),
    );
  });
});

describe('requests: every aio engine, ioeventfd on/off, iothread', () => {
  const combos: Partial<MachineOptions>[] = [];
  for (const aio of ['io_uring', 'native', 'threads'] as const) {
    combos.push({ aio, ioeventfd: false }, { aio, ioeventfd: true }, { aio, ioeventfd: true, iothread: true });
  }
  const data = pattern(2 * SECTOR, 5);
  const text = [
    'read 8 512',
    `write 300 hex:${data.toString('hex')}`,
    'flush',
    'wait',
    'read 300 1024',
    'batch {',
    '  read 16 4096',
    '  read 299 2048',
    '}',
    'wait',
  ].join('\n') + '\n';

  for (const o of combos) {
    it(`aio=${o.aio} ioeventfd=${o.ioeventfd} iothread=${o.iothread ?? false}: read, write, flush, read back`, () => {
      const { m, events } = boot(text, o);
      try {
        runToIdle(m);
        assert.equal(m.vdev.broken, false);
        const rs = m.guest.requests;
        assert.equal(rs.length, 6);
        rs.forEach(assertOk);
        assert.deepEqual(bytesOf(rs[0]), generatedSectorText(8));
        assert.deepEqual(bytesOf(rs[3]), data);
        assert.deepEqual(bytesOf(rs[4]), generated(16, 8));
        assert.deepEqual(bytesOf(rs[5]), Buffer.concat([generatedSectorText(299), data, generatedSectorText(302)]));
        // The device ran in the thread the options ask for (FIDELITY §2).
        const want = o.iothread ? 'iothread0' : o.ioeventfd ? 'main-loop' : 'vCPU 0';
        const threads = new Set(events.filter((e) => e.fn === 'virtio_blk_handle_output').map((e) => e.thread));
        assert.deepEqual([...threads], [want]);
      } finally {
        m.close();
      }
    });
  }
});
