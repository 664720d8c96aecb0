/** What the page takes from the machine's own modules (spec names, gdb's text) and the page's CSP guard. */
import * as assert from 'node:assert/strict';
import * as V from '../../src/machine/spec/virtio';
import { inspectorHtml } from '../../src/inspector/html';
import { btLine, gdbPath } from '../../src/machine/state/gdb-text';
import { featureNames } from '../../media/inspector/render-device';

describe('webview: names and text shared with the machine', () => {
  it('status and feature bits', () => {
    const spec = V as unknown as Record<string, unknown>;
    for (const [v, name] of V.VIRTIO_CONFIG_S_NAMES) assert.equal(spec[`VIRTIO_CONFIG_S_${name}`], v, name);
    for (const [bit, name] of Object.entries(V.VIRTIO_BLK_FEATURE_NAMES)) assert.equal(spec[name], Number(bit), name);
    assert.deepEqual(featureNames(2 ** 32 + 2 ** 29 + 2 ** 2), ['VIRTIO_BLK_F_SEG_MAX', 'VIRTIO_RING_F_EVENT_IDX', 'VIRTIO_F_VERSION_1']);
    assert.deepEqual(featureNames(2 ** 40), ['bit 40']);
  });
  it('gdbPath and btLine: paths as gdb shows QEMU and kernel sources', () => {
    assert.equal(gdbPath('src/machine/qemu/hw/block/virtio-blk.ts'), '../hw/block/virtio-blk.ts');
    assert.equal(gdbPath('src/machine/linux/drivers/block/virtio_blk.ts'), 'drivers/block/virtio_blk.ts');
    assert.equal(gdbPath('src/machine/kvm/virt/kvm/eventfd.ts'), 'virt/kvm/eventfd.ts');
    assert.equal(gdbPath('test.virtio'), 'test.virtio');
    assert.equal(btLine(3, { name: 'virtqueue_pop', args: 'vq=0x1, sz=0x98', file: 'src/machine/qemu/hw/virtio/virtio.ts', line: 9 }), '#3  virtqueue_pop (vq=0x1, sz=0x98) at ../hw/virtio/virtio.ts:9');
  });
  it('inspectorHtml refuses a nonce or a source that would break the CSP', () => {
    const o = { cspSource: 'https://x', nonce: 'abcdefgh12345678', scriptUri: 'a.js', styleUri: 'a.css', codiconUri: 'c.css' };
    assert.match(inspectorHtml(o), /script-src 'nonce-abcdefgh12345678'/);
    assert.throws(() => inspectorHtml({ ...o, nonce: "x' 'unsafe-inline" }));
    assert.throws(() => inspectorHtml({ ...o, cspSource: "https://x; script-src 'unsafe-eval'" }));
  });
});
