/** The device: status bits, features by name, ISR, broken and its errors, the config space. */
import type { SnapshotView } from './types';
import type { SnapshotDiff } from './diff';
import * as V from '../../src/machine/spec/virtio';
import { esc, hex } from './format';

// The spec's tables (src/machine/spec/virtio.ts holds plain constants: the bundle takes just these).
const STATUS_BITS = V.VIRTIO_CONFIG_S_NAMES;
export const featureNames = V.featureNames;

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
