/**
 * The checker that rides along with one fuzz machine. It watches five
 * device events through the simulator's hook (nothing else is armed and
 * nothing is logged, so the machine runs at full speed):
 *
 *   virtqueue_split_pop @read_head   the device is about to read avail->ring[last_avail_idx % num]
 *   virtqueue_split_pop @elem        it made a VirtQueueElement of that head
 *   virtqueue_fill (entry)           it is about to write a used element
 *   virtqueue_flush (entry)          ...and to publish it (used->idx)
 *   virtio_error (entry)             it is giving up on the ring
 *
 * At each pop it evaluates the reference rules (reference.ts) on guest
 * memory as it is at that instant, and then holds the device to them: the
 * error QEMU would report comes, with QEMU's message, at the stage QEMU
 * reports it, and nothing else does; a head QEMU accepts is completed once,
 * with its own id, every writable byte counted in the used len and the
 * status byte QEMU would store. After an error nothing more is popped or
 * published.
 *
 * The used ring is read from guest memory. The device's VirtQueueElement (a
 * local of virtqueue_split_pop, as the debugger sees it) is used only as an
 * opaque key, to tell apart two elements of the same head in flight at once;
 * its last_avail_idx, shadow_avail_idx, inuse and in-flight list are read to
 * check that its private state agrees with what memory says happened.
 */
import type { GuestMemory } from '../memory/guest-memory';
import type { SimEvent } from '../sim/sim';
import { FnDesc, PointDesc, allPoints, functionNamed } from '../sim/frames';
import type { VirtQueue, VirtQueueElement } from '../qemu/hw/virtio/virtio';
import * as V from '../spec/virtio';
import { Ring, overRings } from './layout';
import { Disk, predict } from './reference';
import { MOVED_INDEX } from './invariants';

/** An element QEMU accepts: what its used element and status byte must be. */
interface Expected {
  head: number;
  inBytes: number;
  status: number;
  statusAddr: number;
}

/** The events the monitor watches, looked up once (they exist once the device's module is loaded). */
export interface Watched {
  readHead: PointDesc;
  elem: PointDesc;
  fill: FnDesc;
  flush: FnDesc;
  error: FnDesc;
}
let watched: Watched | null = null;

export function watchedEvents(): Watched {
  if (watched !== null) return watched;
  const point = (fn: string, name: string): PointDesc | undefined => allPoints().find((p) => p.fn.name === fn && p.name === name);
  const w = {
    readHead: point('virtqueue_split_pop', 'read_head'),
    elem: point('virtqueue_split_pop', 'elem'),
    fill: functionNamed('virtqueue_fill'),
    flush: functionNamed('virtqueue_flush'),
    error: functionNamed('virtio_error'),
  };
  for (const [k, v] of Object.entries(w)) if (v === undefined) throw new Error(`fuzz monitor: the device has no event '${k}'`);
  return (watched = w as Watched);
}

export class Monitor {
  /** Invariant violations seen while running, in order. */
  readonly failures: string[] = [];
  /** A buffer the device may write lies over the avail or used ring: the ring checks are off for the case. */
  unchecked = false;
  /** Heads the device read from the avail ring (free-running). */
  pops = 0;
  /** used->idx at the device's virtio_error, or null while it is healthy. */
  usedAtError: number | null = null;
  errorMessage: string | null = null;
  /** What QEMU's rules say about the head read last, until the device acts on it. */
  private pending: { head: number; error: string | null; stage: 'pop' | 'blk' | null; exp: Expected | null } | null = null;
  /** Elements the device made and has not filled, by the device's own object. */
  private readonly elems = new Map<VirtQueueElement, Expected>();
  /** The element filled last, waiting for its flush. */
  private filled: { exp: Expected; slot: number } | null = null;
  /** used->idx as the device's flushes have moved it (free-running count and 16-bit value). */
  flushed = 0;
  private usedIdx = 0;
  private ring: Ring | null = null;

  constructor(
    private readonly mem: GuestMemory,
    private readonly vq: VirtQueue,
    private readonly disk: Disk,
  ) {
    watchedEvents();
  }

  /** The guest has probed and taken the queue: from now on every pop is checked. */
  attach(ring: Ring): void {
    this.ring = ring;
    this.usedIdx = this.mem.read16(ring.used + V.USED_IDX);
  }

  /** Elements accepted and not yet completed. */
  get inflight(): number {
    return this.elems.size;
  }

  private fail(what: string): void {
    if (this.failures.length < 20) this.failures.push(what);
  }

  /** Sim hook: look, never stop. */
  onEvent(ev: SimEvent): boolean {
    const w = watched!;
    const ring = this.ring;
    if (ring === null) return false;
    if (ev.point === w.readHead) this.onPop(ring);
    else if (ev.point === w.elem) this.onElem(ev.frame.locals?.elem as VirtQueueElement | undefined);
    else if (ev.kind !== 'enter') return false;
    else if (ev.fn === w.fill) this.onFill(ring, ev.frame.a1 as VirtQueueElement, ev.frame.a2 as number, ev.frame.a3 as number);
    else if (ev.fn === w.flush) this.onFlush(ring, ev.frame.a1 as number);
    else if (ev.fn === w.error) this.onError(ring, JSON.parse(ev.frame.a1 as string) as string);
    return false;
  }

  private onPop(ring: Ring): void {
    if (this.usedAtError !== null) this.fail(`the device popped a head after virtio_error("${this.errorMessage}")`);
    this.settlePending();
    const vq = this.vq;
    if (vq.last_avail_idx !== (this.pops & 0xffff)) {
      this.fail(`the device's last_avail_idx ${vq.last_avail_idx} is not the number of heads it read (${this.pops & 0xffff})`);
    }
    // The device's own view of avail->idx (its shadow, read when the ring last looked empty) bounds what it may pop.
    const ahead = (vq.shadow_avail_idx - this.pops) & 0xffff;
    if (ahead === 0 || ahead > ring.num) {
      this.fail(`the device reads a head with avail->idx ${vq.shadow_avail_idx} and ${this.pops & 0xffff} heads read: QEMU says ${ahead === 0 ? 'the ring is empty' : '"Guest moved used index"'}`);
    }
    // What the inspector lists as in flight (VirtQueue.inflight) must be every element popped and not pushed.
    if (vq.inflight.size !== vq.inuse) this.fail(`the device lists ${vq.inflight.size} elements in flight, inuse is ${vq.inuse}`);
    if (this.inflight >= ring.num) this.fail(`${this.inflight} elements in flight, num ${ring.num}: QEMU says "Virtqueue size exceeded" before reading a head`);
    if (vq.inuse !== this.inflight) this.fail(`the device's inuse ${vq.inuse} differs from the elements in flight (${this.inflight})`);
    const head = this.mem.read16(ring.avail + V.availRingOff(this.pops % ring.num));
    this.pops++;
    const v = predict(this.mem, ring, head, this.disk);
    if (v.error !== null) {
      this.pending = { head, error: v.error, stage: v.stage, exp: null };
      return;
    }
    // The checker reads the rings; a device write into them (a table made of device-written data can
    // point anywhere) would make those reads meaningless, not the device wrong.
    if (v.in.some((r) => overRings(ring, r.addr, r.len))) this.unchecked = true;
    this.pending = { head, error: null, stage: null, exp: { head, inBytes: v.inBytes, status: v.status, statusAddr: v.statusAddr } };
  }

  /** The device made an element (`elem`, a local of the frame) of the head it read last. */
  private onElem(elem: VirtQueueElement | undefined): void {
    const p = this.pending;
    if (p === null) {
      this.fail('the device made an element without reading a head');
      return;
    }
    if (p.stage === 'pop') {
      this.fail(`head ${p.head}: QEMU says "${p.error}" while popping it; the device made an element`);
      this.pending = null;
      return;
    }
    if (elem === undefined || elem.index !== p.head) {
      this.fail(`head ${p.head}: the device made an element of head ${elem?.index ?? '?'}`);
    } else if (p.exp !== null) {
      this.elems.set(elem, p.exp);
    }
    // A virtio-blk error is still to come for this element; an accepted one is done with.
    if (p.stage !== 'blk') this.pending = null;
  }

  /** The head read last should have failed, and the device went on (or stopped) without saying so. */
  settlePending(): void {
    const p = this.pending;
    this.pending = null;
    if (p === null || p.error === null) return;
    this.fail(`head ${p.head}: QEMU says "${p.error}", the device said nothing`);
  }

  private onFill(ring: Ring, elem: VirtQueueElement, len: number, idx: number): void {
    const exp = this.elems.get(elem);
    this.elems.delete(elem);
    if (this.usedAtError !== null) return; // a broken device writes nothing (checked at the end)
    if (exp === undefined) {
      this.fail(`the device completes an element (index ${elem.index}) that it never popped, or completes it twice`);
      return;
    }
    if (len !== exp.inBytes) {
      this.fail(`head ${exp.head}: used len ${len}, ${len < exp.inBytes ? 'short of' : 'more than'} the chain's ${exp.inBytes} writable bytes`);
    }
    // virtio_blk_req_complete stored the status byte just before pushing.
    if (this.mem.read8(exp.statusAddr) !== exp.status) {
      this.fail(`head ${exp.head}: status byte ${this.mem.read8(exp.statusAddr)}, QEMU stores ${exp.status}`);
    }
    this.filled = { exp, slot: (this.mem.read16(ring.used + V.USED_IDX) + idx) & 0xffff };
  }

  private onFlush(ring: Ring, count: number): void {
    if (this.usedAtError !== null) return;
    const f = this.filled;
    this.filled = null;
    if (this.unchecked) return;
    const now = this.mem.read16(ring.used + V.USED_IDX);
    if (now !== this.usedIdx) this.fail(`used->idx is ${now} before a flush; the device's flushes put it at ${this.usedIdx}`);
    if (f === null || count !== 1) {
      this.fail(`virtqueue_flush(count=${count}) without a single fill before it`);
    } else {
      // What the guest will read: the element written at used->ring[used->idx % num].
      const at = ring.used + V.usedRingOff(f.slot % ring.num);
      const id = this.mem.read32(at);
      const len = this.mem.read32(at + 4);
      if (id !== f.exp.head || len !== f.exp.inBytes) {
        this.fail(`used element ${f.slot}: {id ${id}, len ${len}}, expected {id ${f.exp.head}, len ${f.exp.inBytes}}`);
      }
    }
    this.usedIdx = (this.usedIdx + count) & 0xffff;
    this.flushed += count;
  }

  private onError(ring: Ring, message: string): void {
    if (this.usedAtError !== null) {
      this.fail(`a second virtio_error("${message}") after "${this.errorMessage}"`);
      return;
    }
    this.usedAtError = this.mem.read16(ring.used + V.USED_IDX);
    this.errorMessage = message;
    const moved = MOVED_INDEX.exec(message);
    const p = this.pending;
    if (moved || message === 'Virtqueue size exceeded') {
      // Both come before a head is read: the head read before (if any) was fully dealt with.
      this.settlePending();
      if (moved) {
        const from = Number(moved[1]);
        const to = Number(moved[2]);
        if (from !== (this.pops & 0xffff) || to !== this.vq.shadow_avail_idx || ((to - from) & 0xffff) <= ring.num) {
          this.fail(`"${message}": the device had read ${this.pops & 0xffff} heads, its avail->idx is ${this.vq.shadow_avail_idx}, num ${ring.num}`);
        }
      } else if (this.inflight < ring.num) {
        this.fail(`"${message}" with ${this.inflight} elements in flight and num ${ring.num}`);
      }
      return;
    }
    this.pending = null;
    if (p === null || p.error === null) {
      this.fail(`virtio_error("${message}"), but QEMU's rules accept the last head read (${p?.head ?? 'none'})`);
    } else if (message !== p.error) {
      this.fail(`virtio_error("${message}"), QEMU says "${p.error}" for head ${p.head}`);
    }
  }

  /** used->idx as the device's flushes have left it. */
  get usedIndex(): number {
    return this.usedIdx;
  }
}
