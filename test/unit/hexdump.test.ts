import { strict as assert } from 'node:assert';
import { hexDump } from '../../src/extension/hexdump';

describe('guest memory hex dump', () => {
  it('prints address, 16 bytes in pairs, and printable ASCII', () => {
    const data = Buffer.from('virtio-debug sector 0!', 'latin1');
    const lines = hexDump(0x1000, data, 0).trimEnd().split('\n');
    assert.equal(lines.length, 2);
    assert.equal(lines[0], '000000001000: 7669 7274 696f 2d64 6562 7567 2073 6563  virtio-debug sec');
    assert.ok(lines[1].startsWith('000000001010: 746f 7220 3021'), lines[1]);
    assert.ok(lines[1].endsWith('tor 0!'), lines[1]);
  });

  it('marks unreadable bytes and dots non-printable ones', () => {
    const out = hexDump(0xfff8, Uint8Array.from([0, 0x41, 0xff]), 2);
    assert.equal(out, `00000000fff8: ${'0041 ff?? ??'.padEnd(39)}  .A.  \n`);
  });
});
