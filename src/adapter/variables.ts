/**
 * The Variables view: a tree of nodes built lazily for the current stop.
 * Scopes: the frame's arguments (the machine's own objects, expandable), the
 * Virtqueue decoded from guest memory (settable: a write goes to guest
 * memory, or to the device's or driver's own index), the request being
 * handled (VirtQueueElement, sg lists, virtio_blk_outhdr, status byte), and
 * the device. Everything that lives in guest memory carries a
 * memoryReference, so VS Code can open it in its memory view.
 */
import type { Machine } from '../machine/machine';
import type { Frame } from '../machine/sim/frames';
import type { VirtQueue } from '../machine/qemu/hw/virtio/virtio';
import type { VringVirtqueue } from '../machine/linux';
import * as V from '../machine/spec/virtio';
import { hex } from '../machine/sim/pointers';
import { formatArg } from '../machine/sim/frames';

export interface VarNode {
  name: string;
  value: string;
  type?: string;
  memoryReference?: string;
  evaluateName?: string;
  children?: () => VarNode[];
  /** Set from the text the user typed (already evaluated to a number); returns the new display value. */
  set?: (value: number) => string;
}

export const memRef = (addr: number): string => hex(addr);

const ADDRESS_NAME = /addr|ptr|^desc$|^avail$|^used$|^vring_|^in$|^data$|kaddr|queue_dma/;

/** A node for any value the machine holds (numbers, strings, its objects). */
export function valueNode(name: string, v: unknown, evaluateName?: string, depth = 0): VarNode {
  if (typeof v === 'number') {
    const big = Number.isInteger(v) && v >= 0x10000 && ADDRESS_NAME.test(name);
    return { name, value: big ? hex(v) : String(v), type: 'number', evaluateName };
  }
  if (typeof v === 'string') return { name, value: JSON.stringify(v), type: 'string', evaluateName };
  if (typeof v === 'boolean' || v === null || v === undefined) return { name, value: String(v), evaluateName };
  if (typeof v === 'function') return { name, value: `<function ${(v as { name?: string }).name ?? ''}>` };
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return { name, value: `<${v.length} bytes>` };
  if (ArrayBuffer.isView(v)) {
    const arr = Array.from(v as unknown as ArrayLike<number>);
    return { name, value: `[${arr.length}]`, children: () => arr.slice(0, 4096).map((x, i) => valueNode(`[${i}]`, x, evaluateName ? `${evaluateName}[${i}]` : undefined, depth + 1)) };
  }
  if (Array.isArray(v)) {
    return { name, value: `[${v.length}]`, evaluateName, children: () => v.slice(0, 4096).map((x, i) => valueNode(`[${i}]`, x, evaluateName ? `${evaluateName}[${i}]` : undefined, depth + 1)) };
  }
  if (v instanceof Map) {
    return { name, value: `Map(${v.size})`, children: () => [...v.entries()].slice(0, 1024).map(([k, x]) => valueNode(`[${String(k)}]`, x, undefined, depth + 1)) };
  }
  const o = v as Record<string, unknown> & { ptr?: number; kaddr?: number };
  const cls = (o.constructor as { name?: string } | undefined)?.name ?? 'object';
  const where = typeof o.ptr === 'number' || typeof o.kaddr === 'number' ? ` ${formatArg(o)}` : '';
  return {
    name,
    value: `${cls === 'Object' ? '{…}' : cls}${where}`,
    type: cls,
    evaluateName,
    children: () =>
      Object.keys(o)
        .filter((k) => !HIDDEN_FIELDS.has(k) && typeof o[k] !== 'function')
        .map((k) => valueNode(k, o[k], evaluateName ? `${evaluateName}.${k}` : undefined, depth + 1)),
  };
}

/** Fields that are plumbing, not state a person debugging virtio wants (or that would pull in all of RAM). */
const HIDDEN_FIELDS = new Set(['mem', 'ram', 'gen', 'sim', 'alloc', 'platform', 'bus', 'frames']);

function num(name: string, value: number, opts: Partial<VarNode> = {}): VarNode {
  return { name, value: opts.memoryReference || ADDRESS_NAME.test(name) ? (value >= 0x10000 ? hex(value) : String(value)) : String(value), type: 'number', ...opts };
}

export function descFlagsText(flags: number): string {
  const names: string[] = [];
  if (flags & V.VRING_DESC_F_NEXT) names.push('NEXT');
  if (flags & V.VRING_DESC_F_WRITE) names.push('WRITE');
  if (flags & V.VRING_DESC_F_INDIRECT) names.push('INDIRECT');
  const rest = flags & ~7;
  if (rest) names.push(hex(rest));
  return names.length ? `${flags} (${names.join('|')})` : '0';
}

/** A u16/u32/u64 field in guest memory: shown with its address, settable. */
function memField(m: Machine, name: string, addr: number, size: 2 | 4 | 8, evaluateName?: string, show?: (v: number) => string): VarNode {
  const mem = m.mem;
  const read = (): number => (!mem.valid(addr, size) ? NaN : size === 2 ? mem.read16(addr) : size === 4 ? mem.read32(addr) : mem.read64(addr));
  const fmt = (v: number) => (Number.isNaN(v) ? '<outside guest RAM>' : show ? show(v) : size === 8 || ADDRESS_NAME.test(name) ? hex(v) : String(v));
  return {
    name,
    value: fmt(read()),
    type: `le${size * 8}`,
    memoryReference: memRef(addr),
    evaluateName,
    set: (v) => {
      if (!mem.valid(addr, size)) throw new Error(`${name} is outside guest RAM`);
      if (size === 2) mem.write16(addr, v);
      else if (size === 4) mem.write32(addr, v);
      else mem.write64(addr, v);
      return fmt(read());
    },
  };
}

/** A field of a device or driver structure (not guest memory): settable like gdb's `set var`. */
function structField(obj: Record<string, unknown>, name: string, field = name): VarNode {
  const v = obj[field];
  return {
    name,
    value: String(v),
    type: typeof v,
    set: (n) => {
      obj[field] = typeof v === 'boolean' ? n !== 0 : n;
      return String(obj[field]);
    },
  };
}

/** The Virtqueue scope: the rings decoded from guest memory, the device's and the driver's indices. */
export function virtqueueNodes(m: Machine, index: number): VarNode[] {
  const vq = m.vdev.vq[index];
  if (!vq) return [];
  const out: VarNode[] = [num('index', index), num('num', vq.num)];
  if (!vq.ready) return [...out, { name: 'state', value: 'not set up by the guest' }];
  const n = vq.num;
  out.push(num('vring_desc', vq.desc, { memoryReference: memRef(vq.desc) }));
  out.push(num('vring_avail', vq.avail, { memoryReference: memRef(vq.avail) }));
  out.push(num('vring_used', vq.used, { memoryReference: memRef(vq.used) }));
  out.push({
    name: 'desc',
    value: `[${n}]`,
    memoryReference: memRef(vq.desc),
    evaluateName: 'desc',
    children: () =>
      Array.from({ length: n }, (_, i) => {
        const a = vq.desc + i * V.VRING_DESC_SIZE;
        const fields = (): VarNode[] => [
          memField(m, 'addr', a + V.DESC_ADDR, 8, `desc[${i}].addr`),
          memField(m, 'len', a + V.DESC_LEN, 4, `desc[${i}].len`),
          memField(m, 'flags', a + V.DESC_FLAGS, 2, `desc[${i}].flags`, descFlagsText),
          memField(m, 'next', a + V.DESC_NEXT, 2, `desc[${i}].next`),
        ];
        const f = fields();
        return { name: `[${i}]`, value: `{addr=${f[0].value}, len=${f[1].value}, flags=${f[2].value}, next=${f[3].value}}`, memoryReference: memRef(a), children: fields };
      }),
  });
  out.push({
    name: 'avail',
    value: `{flags, idx=${m.mem.read16(vq.avail + V.AVAIL_IDX)}, ring[${n}], used_event}`,
    memoryReference: memRef(vq.avail),
    children: () => [
      memField(m, 'flags', vq.avail + V.AVAIL_FLAGS, 2, 'avail.flags'),
      memField(m, 'idx', vq.avail + V.AVAIL_IDX, 2, 'avail.idx'),
      {
        name: 'ring',
        value: `[${n}]`,
        memoryReference: memRef(vq.avail + V.availRingOff(0)),
        children: () => Array.from({ length: n }, (_, i) => memField(m, `[${i}]`, vq.avail + V.availRingOff(i), 2, `avail.ring[${i}]`)),
      },
      memField(m, 'used_event', vq.avail + V.usedEventOff(n), 2, 'avail.used_event'),
    ],
  });
  out.push({
    name: 'used',
    value: `{flags, idx=${m.mem.read16(vq.used + V.USED_IDX)}, ring[${n}], avail_event}`,
    memoryReference: memRef(vq.used),
    children: () => [
      memField(m, 'flags', vq.used + V.USED_FLAGS, 2, 'used.flags'),
      memField(m, 'idx', vq.used + V.USED_IDX, 2, 'used.idx'),
      {
        name: 'ring',
        value: `[${n}]`,
        memoryReference: memRef(vq.used + V.usedRingOff(0)),
        children: () =>
          Array.from({ length: n }, (_, i) => {
            const a = vq.used + V.usedRingOff(i);
            const kids = (): VarNode[] => [memField(m, 'id', a, 4, `used.ring[${i}].id`), memField(m, 'len', a + 4, 4, `used.ring[${i}].len`)];
            const k = kids();
            return { name: `[${i}]`, value: `{id=${k[0].value}, len=${k[1].value}}`, memoryReference: memRef(a), children: kids };
          }),
      },
      memField(m, 'avail_event', vq.used + V.availEventOff(n), 2, 'used.avail_event'),
    ],
  });
  const dev = vq as unknown as Record<string, unknown>;
  for (const f of ['last_avail_idx', 'shadow_avail_idx', 'used_idx', 'signalled_used', 'signalled_used_valid', 'inuse']) out.push(structField(dev, f));
  const drv = m.guest.virtqueue(index) as (VringVirtqueue & Record<string, unknown>) | null;
  if (drv) {
    out.push({
      name: 'driver',
      value: `{avail_idx_shadow=${drv.avail_idx_shadow}, last_used_idx=${drv.last_used_idx}, num_free=${drv.num_free}}`,
      children: () => ['avail_idx_shadow', 'last_used_idx', 'num_free', 'free_head', 'num_added', 'broken'].map((f) => structField(drv, f)),
    });
  }
  out.push({ name: 'inflight', value: `[${vq.inflight.size}]`, children: () => [...vq.inflight.values()].map((e) => elementNode(m, `[${e.index}]`, e)) });
  return out;
}

interface ElementLike { index: number; ndescs: number; out_num: number; in_num: number; out_sg: { addr: number; len: number }[]; in_sg: { addr: number; len: number }[]; len: number }

function sgNodes(name: string, sg: { addr: number; len: number }[]): VarNode {
  return {
    name,
    value: `[${sg.length}]`,
    children: () =>
      sg.map((s, i) => ({
        name: `[${i}]`,
        value: `{iov_base=${hex(s.addr)}, iov_len=${s.len}}`,
        memoryReference: memRef(s.addr),
        children: () => [num('iov_base', s.addr, { memoryReference: memRef(s.addr) }), num('iov_len', s.len)],
      })),
  };
}

/** A VirtQueueElement with its sg lists, and for virtio-blk its outhdr and status byte. */
export function elementNode(m: Machine, name: string, e: ElementLike): VarNode {
  return {
    name,
    value: `{index=${e.index}, out_num=${e.out_num}, in_num=${e.in_num}}`,
    type: 'VirtQueueElement',
    children: () => {
      const kids: VarNode[] = [num('index', e.index), num('len', e.len), num('ndescs', e.ndescs), num('out_num', e.out_num), num('in_num', e.in_num), sgNodes('out_sg', e.out_sg), sgNodes('in_sg', e.in_sg)];
      const hdr = e.out_sg[0];
      if (hdr && hdr.len >= V.VIRTIO_BLK_OUTHDR_SIZE && m.mem.valid(hdr.addr, V.VIRTIO_BLK_OUTHDR_SIZE)) {
        const t = m.mem.read32(hdr.addr);
        kids.push({
          name: 'virtio_blk_outhdr',
          value: `{type=${V.VIRTIO_BLK_T_NAMES[t] ?? t}, sector=${m.mem.read64(hdr.addr + 8)}}`,
          memoryReference: memRef(hdr.addr),
          children: () => [
            memField(m, 'type', hdr.addr, 4, undefined, (v) => `${v}${V.VIRTIO_BLK_T_NAMES[v] ? ` (${V.VIRTIO_BLK_T_NAMES[v]})` : ''}`),
            memField(m, 'ioprio', hdr.addr + 4, 4),
            memField(m, 'sector', hdr.addr + 8, 8, undefined, String),
          ],
        });
      }
      const last = e.in_sg[e.in_sg.length - 1];
      if (last && last.len >= 1 && m.mem.valid(last.addr + last.len - 1, 1)) {
        const a = last.addr + last.len - 1;
        const s = m.mem.read8(a);
        kids.push({ name: 'status', value: `${s} (${V.VIRTIO_BLK_S_NAMES[s] ?? 'not written yet?'})`, type: 'u8', memoryReference: memRef(a) });
      }
      return kids;
    },
  };
}

/** The element a frame is working on, if one of its arguments is (or holds) a VirtQueueElement. */
export function frameElement(f: Frame): ElementLike | null {
  for (const a of [f.a0, f.a1, f.a2, f.a3]) {
    const o = a as { out_sg?: unknown; in_sg?: unknown; elem?: ElementLike } | null | undefined;
    if (!o || typeof o !== 'object') continue;
    if (Array.isArray(o.out_sg) && Array.isArray(o.in_sg)) return o as unknown as ElementLike;
    if (o.elem && Array.isArray(o.elem.out_sg)) return o.elem;
  }
  return null;
}

/** The queue a frame is about: the index of a VirtQueue or vring_virtqueue argument, else 0. */
export function frameQueue(f: Frame | null): number {
  if (f) {
    for (const a of [f.a0, f.a1, f.a2, f.a3]) {
      const o = a as Partial<VirtQueue> & Partial<VringVirtqueue> | null | undefined;
      if (!o || typeof o !== 'object') continue;
      if (typeof o.queue_index === 'number' && 'last_avail_idx' in o) return o.queue_index;
      if (typeof o.index === 'number' && 'avail_idx_shadow' in o) return o.index;
    }
  }
  return 0;
}

/** Feature names as the Variables view prints them: the spec's, without the VIRTIO_(BLK_)F_ prefix. */
export function featureNames(f: number): string {
  return V.featureNames(f).map((n) => n.replace(/^VIRTIO_RING_F_/, 'RING_').replace(/^VIRTIO_(BLK_)?F_/, '')).join(' ');
}

export function deviceNodes(m: Machine): VarNode[] {
  const d = m.vdev;
  const status = V.VIRTIO_CONFIG_S_NAMES.filter(([b]) => d.status & b).map(([, n]) => n).join('|') || '0';
  return [
    { name: 'status', value: `${d.status} (${status})` },
    { name: 'host_features', value: `${hex(d.host_features)} (${featureNames(d.host_features)})` },
    { name: 'guest_features', value: `${hex(d.guest_features)} (${featureNames(d.guest_features)})` },
    { name: 'isr', value: String(d.isr) },
    { name: 'broken', value: String(d.broken) },
    valueNode('errors', [...d.errors]),
  ];
}
