/** The avail and used rings, virtualized, with the driver's and the device's indices marked on their slots. */
import type { NumberFormat, QueueView } from './types';
import type { QueueDiff } from './diff';
import { chainClass, idxDelta, num } from './format';

interface Marker {
  cls: string;
  label: string;
  value: number;
}

export function availMarkers(q: QueueView): Marker[] {
  return [
    { cls: 'avail-idx-marker', label: 'avail.idx', value: q.avail.idx },
    { cls: 'last-avail-idx-marker', label: 'last_avail_idx', value: q.last_avail_idx },
    { cls: 'shadow-avail-idx-marker', label: 'shadow_avail_idx', value: q.shadow_avail_idx },
    { cls: 'used-event-marker', label: 'used_event', value: q.avail.used_event },
  ];
}

export function usedMarkers(q: QueueView): Marker[] {
  const m: Marker[] = [{ cls: 'used-idx-marker', label: 'used.idx', value: q.used.idx }];
  if (q.driver) m.push({ cls: 'last-used-idx-marker', label: 'last_used_idx', value: q.driver.last_used_idx });
  m.push({ cls: 'signalled-used-marker', label: 'signalled_used', value: q.signalled_used });
  m.push({ cls: 'avail-event-marker', label: 'avail_event', value: q.used.avail_event });
  return m;
}

/** Is ring slot `slot` among the entries from index `from` up to (not including) `to`? */
function inWindow(slot: number, from: number, to: number, n: number): boolean {
  const k = (slot - (from % n) + n) % n;
  return k < Math.min(idxDelta(from, to), n);
}

function markersHtml(ms: Marker[], slot: number, n: number, fields: Set<string>): string {
  let out = '';
  for (const m of ms) {
    if (m.value % n !== slot) continue;
    const field = m.label === 'last_used_idx' ? 'driver.last_used_idx' : m.label === 'used_event' ? 'avail.used_event' : m.label === 'avail_event' ? 'used.avail_event' : m.label;
    out += `<span class="marker ${m.cls}${fields.has(field) ? ' changed' : ''}" data-value="${m.value}">${m.label} = ${m.value}</span>`;
  }
  return out;
}

export function availRowHtml(q: QueueView, d: QueueDiff, slot: number, headOf: Int32Array): string {
  const n = q.num || q.avail.ring.length;
  const h = q.avail.ring[slot];
  // Slots the device has not popped yet: last_avail_idx .. avail.idx.
  const pending = inWindow(slot, q.last_avail_idx, q.avail.idx, n);
  let cls = 'avail-row';
  if (pending) cls += ' pending';
  if (d.avail[slot]) cls += ' changed';
  // Entries the device has not put in the used ring yet: used.idx .. avail.idx.
  const live = inWindow(slot, q.used.idx, q.avail.idx, n) && h >= 0 && h < headOf.length && headOf[h] === h;
  return `<tr class="${cls}" data-avail-slot="${slot}"><td class="idx">${slot}</td><td class="num${live ? ' ' + chainClass(h) + ' in-chain' : ''}" data-avail-head="${h}">${h}</td><td class="markers">${markersHtml(availMarkers(q), slot, n, d.fields)}</td></tr>`;
}

export function usedRowHtml(q: QueueView, d: QueueDiff, slot: number, f: NumberFormat): string {
  const n = q.num || q.used.ring.length;
  const e = q.used.ring[slot];
  const last = q.driver ? q.driver.last_used_idx : q.used.idx;
  const uncollected = inWindow(slot, last, q.used.idx, n);
  let cls = 'used-row';
  if (uncollected) cls += ' uncollected';
  if (d.used[slot]) cls += ' changed';
  return `<tr class="${cls}" data-used-slot="${slot}"><td class="idx">${slot}</td><td class="num" data-used-id="${e.id}">${e.id}</td><td class="num">${num(e.len, f)}</td><td class="markers">${markersHtml(usedMarkers(q), slot, n, d.fields)}</td></tr>`;
}

function dd(label: string, field: string, value: string | number, d: QueueDiff, title = ''): string {
  return `<div class="kv${d.fields.has(field) ? ' changed' : ''}" data-field="${field}"${title ? ` title="${title}"` : ''}><dt>${label}</dt><dd>${value}</dd></div>`;
}

export function availSummary(q: QueueView, d: QueueDiff): string {
  return `<dl class="indices" aria-label="Available ring indices">${dd('avail.idx', 'avail.idx', q.avail.idx, d, 'written by the driver')}${dd('last_avail_idx', 'last_avail_idx', q.last_avail_idx, d, 'device: next entry to pop')}${dd('shadow_avail_idx', 'shadow_avail_idx', q.shadow_avail_idx, d, 'device: last avail.idx read')}${dd('used_event', 'avail.used_event', q.avail.used_event, d, 'driver: interrupt me when used.idx passes this')}${dd('flags', 'avail.flags', q.avail.flags, d)}</dl>`;
}

export function usedSummary(q: QueueView, d: QueueDiff): string {
  return `<dl class="indices" aria-label="Used ring indices">${dd('used.idx', 'used.idx', q.used.idx, d, 'written by the device')}${q.driver ? dd('last_used_idx', 'driver.last_used_idx', q.driver.last_used_idx, d, 'driver: next entry to collect') : dd('last_used_idx', 'driver.last_used_idx', '<span class="muted">no driver</span>', d)}${dd('signalled_used', 'signalled_used', q.signalled_used + (q.signalled_used_valid ? '' : ' (invalid)'), d, 'device: used.idx at the last interrupt')}${dd('avail_event', 'used.avail_event', q.used.avail_event, d, 'device: kick me when avail.idx passes this')}${dd('flags', 'used.flags', q.used.flags, d)}${dd('inuse', 'inuse', q.inuse, d)}</dl>`;
}
