/** The device: status bits, features by name, ISR, broken and its errors, the config space. */
import type { SnapshotView } from './types';
import type { SnapshotDiff } from './diff';
import { esc, hasBit, hex } from './format';

/** Values from src/machine/spec/virtio.ts (the webview bundles no machine code; a unit test checks they agree). */
export const STATUS_BITS: [number, string][] = [
  [1, 'ACKNOWLEDGE'],
  [2, 'DRIVER'],
  [4, 'DRIVER_OK'],
  [8, 'FEATURES_OK'],
  [0x40, 'NEEDS_RESET'],
  [0x80, 'FAILED'],
];

export const FEATURE_BITS: [number, string][] = [
  [1, 'VIRTIO_BLK_F_SIZE_MAX'],
  [2, 'VIRTIO_BLK_F_SEG_MAX'],
  [4, 'VIRTIO_BLK_F_GEOMETRY'],
  [5, 'VIRTIO_BLK_F_RO'],
  [6, 'VIRTIO_BLK_F_BLK_SIZE'],
  [9, 'VIRTIO_BLK_F_FLUSH'],
  [10, 'VIRTIO_BLK_F_TOPOLOGY'],
  [11, 'VIRTIO_BLK_F_CONFIG_WCE'],
  [12, 'VIRTIO_BLK_F_MQ'],
  [13, 'VIRTIO_BLK_F_DISCARD'],
  [14, 'VIRTIO_BLK_F_WRITE_ZEROES'],
  [28, 'VIRTIO_RING_F_INDIRECT_DESC'],
  [29, 'VIRTIO_RING_F_EVENT_IDX'],
  [32, 'VIRTIO_F_VERSION_1'],
  [33, 'VIRTIO_F_ACCESS_PLATFORM'],
  [34, 'VIRTIO_F_RING_PACKED'],
  [35, 'VIRTIO_F_IN_ORDER'],
  [38, 'VIRTIO_F_NOTIFICATION_DATA'],
];

/** The names of the bits set in a feature word; unnamed bits as `bit N`. */
export function featureNames(word: number): string[] {
  const out: string[] = [];
  for (let b = 0; b < 53; b++) {
    if (!hasBit(word, b)) continue;
    const named = FEATURE_BITS.find(([n]) => n === b);
    out.push(named ? named[1] : `bit ${b}`);
  }
  return out;
}

function ch(diff: SnapshotDiff, k: string): string {
  return diff.device.has(k) ? ' changed' : '';
}

export function renderDevice(s: SnapshotView, diff: SnapshotDiff): string {
  const d = s.device;
  const status = STATUS_BITS.map(
    ([v, name]) =>
      `<li class="status-bit${d.status & v ? ' on' : ''}" data-status-bit="${name}" aria-checked="${d.status & v ? 'true' : 'false'}" role="checkbox" aria-readonly="true"><span class="codicon codicon-${d.status & v ? 'pass-filled' : 'circle-large-outline'}" aria-hidden="true"></span>${name}</li>`,
  ).join('');
  const guest = new Set(featureNames(d.guest_features));
  const features = featureNames(d.host_features)
    .concat([...guest].filter((n) => !featureNames(d.host_features).includes(n)))
    .map((n) => `<li class="feature${guest.has(n) ? ' negotiated' : ' offered'}" data-feature="${esc(n)}">${esc(n)}${guest.has(n) ? '' : ' <span class="muted">(offered only)</span>'}</li>`)
    .join('');
  const isr: string[] = [];
  if (d.isr & 1) isr.push('VRING');
  if (d.isr & 2) isr.push('CONFIG');
  const errors = d.errors.length
    ? `<ul class="device-errors" aria-label="Device errors">${d.errors.map((e) => `<li><span class="codicon codicon-error" aria-hidden="true"></span>${esc(e)}</li>`).join('')}</ul>`
    : '';
  const cfg = Object.entries(d.config as unknown as Record<string, unknown>)
    .filter(([, v]) => typeof v === 'number')
    .map(([k, v]) => `<tr><th scope="row">${esc(k)}</th><td>${v as number}</td></tr>`)
    .join('');
  return `<h2 id="device-heading"><span class="codicon codicon-server" aria-hidden="true"></span>Device ${esc(d.name)}</h2>
<div class="device-grid">
<div><h3>Status <span class="value${ch(diff, 'status')}" data-field="status">${hex(d.status)}</span></h3><ul class="status-bits" aria-label="Device status bits">${status}</ul>
<p class="isr${ch(diff, 'isr')}" data-field="isr">ISR ${hex(d.isr)}${isr.length ? ' (' + isr.join(', ') + ')' : ''}</p>
<p class="broken${d.broken ? ' is-broken' : ''}${ch(diff, 'broken')}" data-field="broken" data-broken="${d.broken}">${d.broken ? '<span class="codicon codicon-warning" aria-hidden="true"></span>Broken (virtio_error)' : 'Not broken'}</p>${errors}</div>
<div><h3>Features <span class="value${ch(diff, 'guest_features')}" data-field="guest_features" title="guest_features">${hex(d.guest_features)}</span></h3><ul class="features" aria-label="Negotiated features">${features}</ul></div>
<div><h3>Config</h3><table class="config-table" aria-label="virtio_blk_config"><tbody>${cfg}</tbody></table></div>
</div>`;
}
