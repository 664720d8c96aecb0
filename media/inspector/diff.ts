/** What changed between two snapshots: drawn highlighted (class `changed`). */
import type { DescSnapshot, QueueView, SnapshotView } from './types';

export interface QueueDiff {
  desc: Uint8Array;
  avail: Uint8Array;
  used: Uint8Array;
  /** Scalar fields by path: `avail.idx`, `last_avail_idx`, `driver.last_used_idx`, ... */
  fields: Set<string>;
  /** Heads of in-flight elements that were not in flight before. */
  inflight: Set<number>;
  /** Ring descriptors whose indirect table changed. */
  indirect: Set<number>;
}

export interface SnapshotDiff {
  /** False when there was nothing to compare with: nothing is highlighted. */
  any: boolean;
  device: Set<string>;
  queues: QueueDiff[];
  threads: Set<number>;
  coroutines: Set<number>;
}

function descEq(a: DescSnapshot | undefined, b: DescSnapshot | undefined): boolean {
  return !!a && !!b && a.addr === b.addr && a.len === b.len && a.flags === b.flags && a.next === b.next;
}

const QUEUE_FIELDS: [string, (q: QueueView) => unknown][] = [
  ['avail.idx', (q) => q.avail.idx],
  ['avail.flags', (q) => q.avail.flags],
  ['avail.used_event', (q) => q.avail.used_event],
  ['used.idx', (q) => q.used.idx],
  ['used.flags', (q) => q.used.flags],
  ['used.avail_event', (q) => q.used.avail_event],
  ['last_avail_idx', (q) => q.last_avail_idx],
  ['shadow_avail_idx', (q) => q.shadow_avail_idx],
  ['used_idx', (q) => q.used_idx],
  ['signalled_used', (q) => q.signalled_used],
  ['signalled_used_valid', (q) => q.signalled_used_valid],
  ['inuse', (q) => q.inuse],
  ['driver.avail_idx_shadow', (q) => q.driver?.avail_idx_shadow],
  ['driver.last_used_idx', (q) => q.driver?.last_used_idx],
  ['driver.num_free', (q) => q.driver?.num_free],
  ['driver.free_head', (q) => q.driver?.free_head],
  ['driver.num_added', (q) => q.driver?.num_added],
  ['driver.broken', (q) => q.driver?.broken],
];

function diffQueue(a: QueueView | undefined, b: QueueView): QueueDiff {
  const n = b.desc.length;
  const d: QueueDiff = {
    desc: new Uint8Array(n),
    avail: new Uint8Array(b.avail.ring.length),
    used: new Uint8Array(b.used.ring.length),
    fields: new Set(),
    inflight: new Set(),
    indirect: new Set(),
  };
  if (!a) return d;
  for (let i = 0; i < n; i++) if (!descEq(a.desc[i], b.desc[i])) d.desc[i] = 1;
  const ar = a.avail.ring;
  const br = b.avail.ring;
  for (let i = 0; i < br.length; i++) if (ar[i] !== br[i]) d.avail[i] = 1;
  const au = a.used.ring;
  const bu = b.used.ring;
  for (let i = 0; i < bu.length; i++) {
    const x = au[i];
    const y = bu[i];
    if (!x || x.id !== y.id || x.len !== y.len) d.used[i] = 1;
  }
  for (const [name, get] of QUEUE_FIELDS) if (get(a) !== get(b)) d.fields.add(name);
  const before = new Set(a.inflight.map((e) => e.index));
  for (const e of b.inflight) if (!before.has(e.index)) d.inflight.add(e.index);
  const oldInd = new Map((a.indirect ?? []).map((t) => [t.desc, t]));
  for (const t of b.indirect ?? []) {
    const o = oldInd.get(t.desc);
    if (!o || o.table !== t.table || o.entries.length !== t.entries.length || o.entries.some((e, i) => !descEq(e, t.entries[i]))) d.indirect.add(t.desc);
  }
  return d;
}

function framesKey(frames: { name: string; args: string; file: string; line: number }[]): string {
  return frames.map((f) => `${f.name}(${f.args})${f.file}:${f.line}`).join('\n');
}

export function diffSnapshots(prev: SnapshotView | null | undefined, cur: SnapshotView): SnapshotDiff {
  const out: SnapshotDiff = { any: !!prev, device: new Set(), queues: [], threads: new Set(), coroutines: new Set() };
  for (let i = 0; i < cur.queues.length; i++) out.queues.push(diffQueue(prev ? prev.queues[i] : undefined, cur.queues[i]));
  if (!prev) return out;
  const a = prev.device;
  const b = cur.device;
  for (const k of ['status', 'guest_features', 'host_features', 'broken', 'isr'] as const) if (a[k] !== b[k]) out.device.add(k);
  if (a.errors.join('\n') !== b.errors.join('\n')) out.device.add('errors');
  const oldThreads = new Map(prev.threads.map((t) => [t.id, t]));
  for (const t of cur.threads) {
    const o = oldThreads.get(t.id);
    if (!o || o.state !== t.state || framesKey(o.frames) !== framesKey(t.frames)) out.threads.add(t.id);
  }
  const oldCo = new Map(prev.coroutines.map((c) => [c.addr, c]));
  for (const c of cur.coroutines) {
    const o = oldCo.get(c.addr);
    if (!o || o.state !== c.state || framesKey(o.frames) !== framesKey(c.frames)) out.coroutines.add(c.addr);
  }
  return out;
}
