/**
 * The webview checks what the host posts, too: anything not shaped like a
 * HostMessage (src/inspector/protocol.ts) is ignored, and a snapshot is
 * drawn only if every field the page reads has the right type.
 */
import type { HostMessageView, SnapshotView, StopContext } from './types';

type Obj = Record<string, unknown>;

function isObj(x: unknown): x is Obj {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}
const isNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
const isInt = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x);
const isStr = (x: unknown): x is string => typeof x === 'string';

function descOk(d: unknown): boolean {
  return isObj(d) && isInt(d.addr) && isInt(d.len) && isInt(d.flags) && isInt(d.next);
}
function sgOk(s: unknown): boolean {
  return isObj(s) && isInt(s.addr) && isInt(s.len);
}
function framesOk(fs: unknown): boolean {
  return (
    Array.isArray(fs) &&
    fs.every((f) => isObj(f) && isStr(f.name) && isStr(f.args) && isStr(f.file) && isNum(f.line) && (f.coroutine === null || f.coroutine === undefined || isNum(f.coroutine)))
  );
}
function intArray(a: unknown): boolean {
  if (!Array.isArray(a)) return false;
  for (let i = 0; i < a.length; i++) if (!isInt(a[i])) return false;
  return true;
}

function inflightOk(e: unknown): boolean {
  if (!isObj(e) || !isInt(e.index) || !isInt(e.ndescs) || !isInt(e.out_num) || !isInt(e.in_num)) return false;
  if (!Array.isArray(e.out_sg) || !e.out_sg.every(sgOk) || !Array.isArray(e.in_sg) || !e.in_sg.every(sgOk)) return false;
  if (e.chain !== undefined && !intArray(e.chain)) return false;
  if (e.indirect_table !== undefined && e.indirect_table !== null && !isInt(e.indirect_table)) return false;
  if (e.blk !== undefined && e.blk !== null) {
    const b = e.blk;
    if (!isObj(b) || !isInt(b.type) || !isStr(b.type_name) || !isInt(b.ioprio) || !isInt(b.sector) || !isInt(b.status) || !isStr(b.status_name)) return false;
  }
  return true;
}

function queueOk(q: unknown): boolean {
  if (!isObj(q)) return false;
  if (![q.index, q.num, q.vring_desc, q.vring_avail, q.vring_used, q.last_avail_idx, q.shadow_avail_idx, q.used_idx, q.signalled_used, q.inuse].every(isInt)) return false;
  if (typeof q.signalled_used_valid !== 'boolean') return false;
  const { desc, avail, used, driver, inflight, indirect } = q;
  if (!Array.isArray(desc)) return false;
  for (let i = 0; i < desc.length; i++) if (!descOk(desc[i])) return false;
  if (!isObj(avail) || !isInt(avail.flags) || !isInt(avail.idx) || !isInt(avail.used_event) || !intArray(avail.ring)) return false;
  if (!isObj(used) || !isInt(used.flags) || !isInt(used.idx) || !isInt(used.avail_event) || !Array.isArray(used.ring)) return false;
  const ur = used.ring;
  for (let i = 0; i < ur.length; i++) {
    const e = ur[i];
    if (!isObj(e) || !isInt(e.id) || !isInt(e.len)) return false;
  }
  const n = desc.length;
  if ((avail.ring as number[]).length !== n || ur.length !== n) return false;
  if (driver !== null) {
    if (!isObj(driver) || ![driver.avail_idx_shadow, driver.last_used_idx, driver.num_free, driver.free_head, driver.num_added].every(isInt)) return false;
  }
  if (!Array.isArray(inflight) || !inflight.every(inflightOk)) return false;
  if (indirect !== undefined) {
    if (!Array.isArray(indirect)) return false;
    for (const t of indirect) {
      if (!isObj(t) || !isInt(t.desc) || !isInt(t.table) || typeof t.truncated !== 'boolean' || !Array.isArray(t.entries) || !t.entries.every(descOk)) return false;
    }
  }
  return true;
}

export function validateSnapshot(s: unknown): SnapshotView | null {
  if (!isObj(s)) return null;
  const d = s.device;
  if (!isObj(d) || !isStr(d.name) || !isInt(d.status) || !isNum(d.guest_features) || !isNum(d.host_features) || typeof d.broken !== 'boolean' || !isInt(d.isr)) return null;
  if (!Array.isArray(d.errors) || !d.errors.every(isStr) || !isObj(d.config)) return null;
  if (!Array.isArray(s.queues) || !s.queues.every(queueOk)) return null;
  if (!Array.isArray(s.threads) || !s.threads.every((t) => isObj(t) && isInt(t.id) && isStr(t.name) && isStr(t.state) && (t.waiting_on === null || isStr(t.waiting_on)) && framesOk(t.frames))) return null;
  if (!Array.isArray(s.coroutines) || !s.coroutines.every((c) => isObj(c) && isNum(c.addr) && isStr(c.entry) && isStr(c.state) && (c.caller === null || isNum(c.caller)) && framesOk(c.frames))) return null;
  if (!isNum(s.time_ns) || !isNum(s.events)) return null;
  return s as unknown as SnapshotView;
}

function stopOk(x: unknown): x is StopContext | null {
  if (x === null) return true;
  return isObj(x) && isStr(x.reason) && (x.description === undefined || isStr(x.description)) && (x.threadId === undefined || isInt(x.threadId));
}

/** A HostMessage, or null for anything else (which the page ignores). */
export function validateHostMessage(x: unknown): HostMessageView | null {
  if (!isObj(x)) return null;
  switch (x.type) {
    case 'state': {
      if (!isStr(x.session) || !isInt(x.seq) || !stopOk(x.stop)) return null;
      const state = validateSnapshot(x.state);
      if (!state) return null;
      const previous = x.previous === undefined || x.previous === null ? x.previous : validateSnapshot(x.previous);
      if (previous === null && x.previous !== null && x.previous !== undefined) return null;
      return { type: 'state', session: x.session, seq: x.seq, stop: x.stop, state, previous };
    }
    case 'ended':
      return isStr(x.session) ? { type: 'ended', session: x.session } : null;
    case 'config':
      return x.numberFormat === 'hex' || x.numberFormat === 'decimal' ? { type: 'config', numberFormat: x.numberFormat } : null;
    case 'error':
      return isStr(x.message) ? { type: 'error', message: x.message.slice(0, 2000) } : null;
    default:
      return null;
  }
}
