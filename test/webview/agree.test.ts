/** The webview bundles no machine code: its copies of the spec's numbers and of gdbPath must agree with the originals. */
import * as assert from 'node:assert/strict';
import * as V from '../../src/machine/spec/virtio';
import { MAX_MEMORY_VIEW } from '../../src/inspector/protocol';
import { inspectorHtml } from '../../src/inspector/html';
import { gdbPath } from '../../src/machine/state/backtrace';
import { FEATURE_BITS, STATUS_BITS, featureNames } from '../../media/inspector/render-device';
import { gdbPath as webGdbPath } from '../../media/inspector/render-stacks';
import * as W from '../../media/inspector/main-constants';

describe('webview: constants agree with the machine', () => {
  it('status and feature bits', () => {
    const spec = V as unknown as Record<string, unknown>;
    for (const [v, name] of STATUS_BITS) assert.equal(spec[`VIRTIO_CONFIG_S_${name}`], v, name);
    for (const [bit, name] of FEATURE_BITS) if (spec[name] !== undefined) assert.equal(spec[name], bit, name);
    assert.deepEqual(featureNames(2 ** 32 + 2 ** 29 + 2 ** 2), ['VIRTIO_BLK_F_SEG_MAX', 'VIRTIO_RING_F_EVENT_IDX', 'VIRTIO_F_VERSION_1']);
  });
  it('MAX_MEMORY_VIEW', () => {
    assert.equal(W.MAX_MEMORY_VIEW, MAX_MEMORY_VIEW);
  });
  it('gdbPath', () => {
    for (const file of ['src/machine/qemu/hw/block/virtio-blk.ts', 'src/machine/linux/drivers/block/virtio_blk.ts', 'src/machine/kvm/virt/kvm/eventfd.ts', 'test.virtio']) {
      assert.equal(webGdbPath(file), gdbPath({ name: 'f', args: '', file, line: 1, side: 'qemu', coroutine: null }));
    }
  });
  it('inspectorHtml refuses a nonce or a source that would break the CSP', () => {
    const o = { cspSource: 'https://x', nonce: 'abcdefgh12345678', scriptUri: 'a.js', styleUri: 'a.css', codiconUri: 'c.css' };
    assert.match(inspectorHtml(o), /script-src 'nonce-abcdefgh12345678'/);
    assert.throws(() => inspectorHtml({ ...o, nonce: "x' 'unsafe-inline" }));
    assert.throws(() => inspectorHtml({ ...o, cspSource: "https://x; script-src 'unsafe-eval'" }));
  });
});
