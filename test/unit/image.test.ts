/**
 * Tests of the disk image layer (src/machine/image): the generated image's
 * self-describing sectors, the three file modes (snapshot never touches the
 * file, readonly refuses writes, writethrough changes exactly what was
 * written), range errors, and the copy-on-write overlay's merging across
 * chunk boundaries, checked against a plain in-memory model.
 */
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  GENERATED_IMAGE_SIZE,
  ImageError,
  generatedSectorText,
  openImage,
  type BlockImage,
} from '../../src/machine/image/image';

const EPERM = -1;
const EIO = -5;

function sha256(file: string): string {
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function read(img: BlockImage, offset: number, len: number): Buffer {
  const buf = Buffer.alloc(len, 0xaa);
  assert.equal(img.pread(buf, offset), 0, `pread(${offset}, ${len})`);
  return buf;
}

/** The generated image's bytes [offset, offset+len), built from generatedSectorText. */
function expectedGenerated(offset: number, len: number): Buffer {
  const first = Math.floor(offset / 512);
  const last = Math.floor((offset + len - 1) / 512);
  const parts: Buffer[] = [];
  for (let s = first; s <= last; s++) parts.push(generatedSectorText(s));
  const start = offset - first * 512;
  return Buffer.concat(parts).subarray(start, start + len);
}

/** A small deterministic PRNG (xorshift32). */
function rng(seed: number): (n: number) => number {
  let x = seed >>> 0 || 1;
  return (n: number) => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x % n;
  };
}

function patterned(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (i * 31 + seed * 7 + 1) & 0xff;
  return b;
}

describe('image: generated', () => {
  it('is 16 MiB, writable, and described', () => {
    const img = openImage({});
    assert.equal(img.size, GENERATED_IMAGE_SIZE);
    assert.equal(GENERATED_IMAGE_SIZE, 16 * 1024 * 1024);
    assert.equal(Math.floor(img.size / 512), 32768);
    assert.equal(img.readOnly, false);
    assert.match(img.description, /generated 16 MiB image/);
    img.close();
  });

  it('sector text: the line repeated to 512 bytes, the last repetition truncated', () => {
    const s0 = generatedSectorText(0);
    assert.equal(s0.length, 512);
    const line0 = 'virtio-debug sector 0\n';
    assert.equal(s0.toString('latin1'), line0.repeat(Math.ceil(512 / line0.length)).slice(0, 512));
    const s8 = generatedSectorText(8).toString('latin1');
    assert.ok(s8.startsWith('virtio-debug sector 8\nvirtio-debug sector 8\n'));
    assert.equal(s8.length, 512);
    assert.throws(() => generatedSectorText(-1), RangeError);
  });

  it('reads sector 0, sector 8 and the last sector', () => {
    const img = openImage({});
    assert.deepEqual(read(img, 0, 512), generatedSectorText(0));
    assert.deepEqual(read(img, 8 * 512, 512), generatedSectorText(8));
    const last = GENERATED_IMAGE_SIZE / 512 - 1;
    assert.equal(last, 32767);
    const b = read(img, last * 512, 512);
    assert.deepEqual(b, generatedSectorText(last));
    assert.ok(b.toString('latin1').startsWith('virtio-debug sector 32767\n'));
  });

  it('reads unaligned ranges across sectors', () => {
    const img = openImage({});
    for (const [off, len] of [[1, 1], [500, 30], [511, 1026], [4095, 4098], [12345, 7777]]) {
      assert.deepEqual(read(img, off, len), expectedGenerated(off, len), `${off}+${len}`);
    }
  });

  it('accepts any Uint8Array, not only Buffers', () => {
    const img = openImage({});
    const backing = new Uint8Array(2048);
    const view = new Uint8Array(backing.buffer, 512, 1024);
    assert.equal(img.pread(view, 512 * 3), 0);
    assert.deepEqual(Buffer.from(view), expectedGenerated(512 * 3, 1024));
    assert.ok(backing.subarray(0, 512).every((x) => x === 0));
    assert.equal(img.pwrite(new Uint8Array([1, 2, 3]), 10), 0);
    assert.deepEqual([...read(img, 9, 5)], [expectedGenerated(9, 1)[0], 1, 2, 3, expectedGenerated(13, 1)[0]]);
  });

  it('writes go to an overlay private to each image', () => {
    const a = openImage({});
    const data = patterned(4096, 1);
    assert.equal(a.pwrite(data, 8192), 0);
    assert.deepEqual(read(a, 8192, 4096), data);
    const b = openImage({});
    assert.deepEqual(read(b, 8192, 4096), expectedGenerated(8192, 4096));
  });

  it('discard and write-zeroes read back zeroes, the rest untouched', () => {
    const img = openImage({ mode: 'writethrough' });
    assert.equal(img.discard(1000, 10000), 0);
    assert.deepEqual(read(img, 1000, 10000), Buffer.alloc(10000));
    assert.deepEqual(read(img, 0, 1000), expectedGenerated(0, 1000));
    assert.deepEqual(read(img, 11000, 2000), expectedGenerated(11000, 2000));
    assert.equal(img.writeZeroes(GENERATED_IMAGE_SIZE - 512, 512, true), 0);
    assert.deepEqual(read(img, GENERATED_IMAGE_SIZE - 1024, 1024),
      Buffer.concat([expectedGenerated(GENERATED_IMAGE_SIZE - 1024, 512), Buffer.alloc(512)]));
    // Discarding the whole image is cheap and reads back zeroes everywhere.
    assert.equal(img.discard(0, GENERATED_IMAGE_SIZE), 0);
    assert.deepEqual(read(img, 5 * 1024 * 1024 + 3, 70000), Buffer.alloc(70000));
    // And a later write shows through the zeroed range.
    assert.equal(img.pwrite(Buffer.from('hello'), 4094), 0);
    assert.deepEqual(read(img, 4090, 12), Buffer.from([0, 0, 0, 0, ...Buffer.from('hello'), 0, 0, 0]));
  });

  it('readonly mode rejects every change with -EPERM', () => {
    const img = openImage({ mode: 'readonly' });
    assert.equal(img.readOnly, true);
    assert.equal(img.pwrite(Buffer.alloc(512, 1), 0), EPERM);
    assert.equal(img.discard(0, 512), EPERM);
    assert.equal(img.writeZeroes(0, 512, false), EPERM);
    assert.equal(img.flush(), 0);
    assert.deepEqual(read(img, 0, 512), generatedSectorText(0));
  });

  it('out-of-range requests fail with -EIO and change nothing', () => {
    const img = openImage({});
    const end = GENERATED_IMAGE_SIZE;
    assert.equal(img.pread(Buffer.alloc(512), end), EIO);
    assert.equal(img.pread(Buffer.alloc(1024), end - 512), EIO);
    assert.equal(img.pread(Buffer.alloc(1), -1), EIO);
    assert.equal(img.pread(Buffer.alloc(1), 0.5), EIO);
    assert.equal(img.pread(Buffer.alloc(0), end), 0);
    assert.equal(img.pwrite(Buffer.alloc(1024, 7), end - 512), EIO);
    assert.equal(img.discard(end - 512, 513), EIO);
    assert.equal(img.writeZeroes(end, 1, false), EIO);
    assert.equal(img.writeZeroes(0, -1, false), EIO);
    assert.deepEqual(read(img, end - 512, 512), expectedGenerated(end - 512, 512));
  });

  it('a 4 KiB read is fast', () => {
    const img = openImage({});
    const buf = Buffer.alloc(4096);
    assert.equal(img.pwrite(Buffer.alloc(4096, 9), 4096 * 100), 0);
    const n = 20000;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) img.pread(buf, ((i * 7919) % 4000) * 4096);
    const perReadUs = Number(process.hrtime.bigint() - t0) / 1000 / n;
    // Generous bound so that a loaded CI machine does not fail; typically ~1-3 µs.
    assert.ok(perReadUs < 50, `4 KiB read took ${perReadUs.toFixed(2)} µs`);
  });

  it('matches a plain in-memory model under random writes, zeroes and reads', () => {
    const img = openImage({});
    const window = 64 * 1024;
    const base = 3 * 1024 * 1024 + 100; // deliberately not chunk-aligned
    const model = expectedGenerated(base, window);
    const next = rng(12345);
    for (let step = 0; step < 2000; step++) {
      const off = next(window);
      const len = 1 + next(Math.min(9000, window - off));
      switch (next(4)) {
        case 0: {
          const data = patterned(len, step);
          assert.equal(img.pwrite(data, base + off), 0);
          data.copy(model, off);
          break;
        }
        case 1:
          assert.equal(img.discard(base + off, len), 0);
          model.fill(0, off, off + len);
          break;
        case 2:
          assert.equal(img.writeZeroes(base + off, len, next(2) === 1), 0);
          model.fill(0, off, off + len);
          break;
        default:
          assert.deepEqual(read(img, base + off, len), model.subarray(off, off + len), `step ${step}`);
      }
    }
    assert.deepEqual(read(img, base, window), model);
    assert.deepEqual(read(img, base - 5000, 5000), expectedGenerated(base - 5000, 5000));
    assert.deepEqual(read(img, base + window, 5000), expectedGenerated(base + window, 5000));
  });
});

describe('image: files', () => {
  let dir: string;
  let file: string;
  let original: Buffer;
  // 64 KiB + 1536: not a multiple of the overlay's 4 KiB chunk, so the last chunk is short.
  const FILE_SIZE = 64 * 1024 + 1536;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'virtio-debug-image-'));
    file = path.join(dir, 'disk.img');
    original = patterned(FILE_SIZE, 99);
    fs.writeFileSync(file, original);
  });

  afterEach(() => {
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('missing file: ImageError naming the path', () => {
    const missing = path.join(dir, 'nope.img');
    for (const mode of ['snapshot', 'readonly', 'writethrough'] as const) {
      assert.throws(() => openImage({ path: missing, mode }), (e: unknown) => {
        assert.ok(e instanceof ImageError);
        assert.ok(e.message.includes(missing), e.message);
        assert.match(e.message, /no such file/);
        return true;
      });
    }
  });

  it('a directory: ImageError naming the path', () => {
    for (const mode of ['snapshot', 'readonly', 'writethrough'] as const) {
      assert.throws(() => openImage({ path: dir, mode }), (e: unknown) => {
        assert.ok(e instanceof ImageError);
        assert.ok(e.message.includes(dir), e.message);
        assert.match(e.message, /directory/);
        return true;
      });
    }
  });

  it('size is the file size; reads return the file', () => {
    const img = openImage({ path: file });
    assert.equal(img.size, FILE_SIZE);
    assert.equal(img.readOnly, false);
    assert.ok(img.description.includes(file));
    assert.deepEqual(read(img, 0, FILE_SIZE), original);
    assert.deepEqual(read(img, 777, 9999), original.subarray(777, 777 + 9999));
    img.close();
  });

  it('snapshot (default): write then read returns what was written; the file is never changed', () => {
    const before = sha256(file);
    const img = openImage({ path: file });
    const data = patterned(5000, 3);
    assert.equal(img.pwrite(data, 4000), 0);
    assert.deepEqual(read(img, 4000, 5000), data);
    assert.deepEqual(read(img, 0, 4000), original.subarray(0, 4000));
    assert.deepEqual(read(img, 9000, 1000), original.subarray(9000, 10000));
    assert.equal(img.discard(20000, 9000), 0);
    assert.deepEqual(read(img, 20000, 9000), Buffer.alloc(9000));
    assert.equal(img.writeZeroes(40000, 5000, false), 0);
    assert.equal(img.writeZeroes(50000, 5000, true), 0);
    assert.deepEqual(read(img, 40000, 5000), Buffer.alloc(5000));
    assert.deepEqual(read(img, 50000, 5000), Buffer.alloc(5000));
    // The short last chunk, through to the end.
    assert.equal(img.pwrite(Buffer.alloc(100, 0xee), FILE_SIZE - 100), 0);
    assert.equal(img.discard(FILE_SIZE - 3000, 2000), 0);
    const tail = Buffer.concat([Buffer.alloc(2000), original.subarray(FILE_SIZE - 1000, FILE_SIZE - 100), Buffer.alloc(100, 0xee)]);
    assert.deepEqual(read(img, FILE_SIZE - 3000, 3000), tail);
    assert.equal(img.flush(), 0);
    img.close();
    assert.equal(sha256(file), before);
    assert.deepEqual(fs.readFileSync(file), original);
  });

  it('snapshot: reads crossing overlay-chunk boundaries merge overlay over file', () => {
    const img = openImage({ path: file, mode: 'snapshot' });
    const model = Buffer.from(original);
    // Small writes straddling chunk boundaries, with untouched chunks between them.
    for (const [off, len] of [[4090, 12], [3 * 4096 - 1, 2], [5 * 4096, 4096], [7 * 4096 + 10, 8192]]) {
      const data = patterned(len, off);
      assert.equal(img.pwrite(data, off), 0);
      data.copy(model, off);
    }
    assert.equal(img.discard(2 * 4096 + 100, 300), 0);
    model.fill(0, 2 * 4096 + 100, 2 * 4096 + 400);
    assert.deepEqual(read(img, 0, FILE_SIZE), model);
    for (let off = 0; off < FILE_SIZE - 10000; off += 1237) {
      assert.deepEqual(read(img, off, 10000), model.subarray(off, off + 10000), `at ${off}`);
    }
    img.close();
    assert.deepEqual(fs.readFileSync(file), original);
  });

  it('snapshot: matches a plain model under random operations, file untouched', () => {
    const before = sha256(file);
    const img = openImage({ path: file });
    const model = Buffer.from(original);
    const next = rng(777);
    for (let step = 0; step < 1500; step++) {
      const off = next(FILE_SIZE);
      const len = 1 + next(Math.min(12000, FILE_SIZE - off));
      const op = next(4);
      if (op === 0) {
        const data = patterned(len, step);
        assert.equal(img.pwrite(data, off), 0);
        data.copy(model, off);
      } else if (op === 1 || op === 2) {
        assert.equal(op === 1 ? img.discard(off, len) : img.writeZeroes(off, len, false), 0);
        model.fill(0, off, off + len);
      } else {
        assert.deepEqual(read(img, off, len), model.subarray(off, off + len), `step ${step}`);
      }
    }
    assert.deepEqual(read(img, 0, FILE_SIZE), model);
    img.close();
    assert.equal(sha256(file), before);
  });

  it('readonly: every change returns -EPERM and the file is unchanged', () => {
    const before = sha256(file);
    const img = openImage({ path: file, mode: 'readonly' });
    assert.equal(img.readOnly, true);
    assert.equal(img.pwrite(Buffer.alloc(512, 1), 0), EPERM);
    assert.equal(img.pwrite(Buffer.alloc(512, 1), FILE_SIZE * 2), EPERM);
    assert.equal(img.discard(0, 4096), EPERM);
    assert.equal(img.writeZeroes(512, 512, true), EPERM);
    assert.equal(img.flush(), 0);
    assert.deepEqual(read(img, 0, FILE_SIZE), original);
    img.close();
    assert.equal(sha256(file), before);
  });

  it('writethrough: exactly the written sectors change in the file; flush returns 0', () => {
    const img = openImage({ path: file, mode: 'writethrough' });
    assert.equal(img.readOnly, false);
    const data = patterned(3 * 512, 42);
    assert.equal(img.pwrite(data, 10 * 512), 0);
    assert.equal(img.flush(), 0);
    const onDisk = fs.readFileSync(file);
    assert.equal(onDisk.length, FILE_SIZE);
    assert.deepEqual(onDisk.subarray(10 * 512, 13 * 512), data);
    assert.deepEqual(onDisk.subarray(0, 10 * 512), original.subarray(0, 10 * 512));
    assert.deepEqual(onDisk.subarray(13 * 512), original.subarray(13 * 512));
    assert.deepEqual(read(img, 10 * 512, 3 * 512), data);
    img.close();
  });

  it('writethrough: discard and write-zeroes write zeroes into the file', () => {
    const img = openImage({ path: file, mode: 'writethrough' });
    assert.equal(img.discard(4 * 512, 2 * 512), 0);
    assert.equal(img.writeZeroes(20 * 512, 512, false), 0);
    assert.equal(img.writeZeroes(FILE_SIZE - 512, 512, true), 0);
    assert.deepEqual(read(img, 4 * 512, 1024), Buffer.alloc(1024));
    assert.deepEqual(read(img, 20 * 512, 512), Buffer.alloc(512));
    assert.equal(img.flush(), 0);
    img.close();
    const expected = Buffer.from(original);
    expected.fill(0, 4 * 512, 6 * 512);
    expected.fill(0, 20 * 512, 21 * 512);
    expected.fill(0, FILE_SIZE - 512);
    assert.deepEqual(fs.readFileSync(file), expected);
  });

  it('out of range: -EIO for the whole request, nothing written', () => {
    for (const mode of ['snapshot', 'writethrough'] as const) {
      const img = openImage({ path: file, mode });
      assert.equal(img.pread(Buffer.alloc(1024), FILE_SIZE - 512), EIO);
      assert.equal(img.pwrite(Buffer.alloc(1024, 5), FILE_SIZE - 512), EIO);
      assert.equal(img.discard(FILE_SIZE - 512, 1024), EIO);
      assert.equal(img.writeZeroes(FILE_SIZE, 1, false), EIO);
      assert.deepEqual(read(img, FILE_SIZE - 512, 512), original.subarray(FILE_SIZE - 512));
      img.close();
      assert.deepEqual(fs.readFileSync(file), original, mode);
    }
  });

  it('after close, requests fail and close is idempotent', () => {
    const img = openImage({ path: file });
    img.close();
    img.close();
    assert.ok(img.pread(Buffer.alloc(512), 0) < 0);
    assert.ok(img.pwrite(Buffer.alloc(512), 0) < 0);
    assert.ok(img.flush() < 0);
  });
});
