/**
 * The guest program on vCPU 0: boot (probe the virtio-mmio device with the
 * virtio-blk driver), then run the scenario one statement at a time. Each
 * statement is a frame at the bottom of the vCPU's stack, so a line
 * breakpoint stops before that request is issued. Requests go through the
 * guest block layer (blk-mq) to the driver, as an application's I/O would.
 *
 * Between statements the vCPU idles (interruptibly): the device's interrupt
 * is taken whenever the line is up, as on a real CPU with interrupts enabled.
 *
 * Raw statements and `expect` run here too, one frame each like any line
 * (raw-exec.ts does the work). A runtime scenario error (an address outside
 * RAM, say) ends the scenario: it is kept in GuestProgram.error and the vCPU
 * halts, so the machine stays consistent for whoever drives it.
 */
import { Co, S, STOP, WaitQueue, block, enter, leave } from '../sim/sim';
import { do_idle } from '../linux/kernel/sched/idle';
import { defineFn } from '../sim/frames';
import type { GuestPlatform, BlkOp, BlkStatus } from '../linux/platform';
import {
  Request, VirtioMmioDevice, VringVirtqueue, blk_mq_alloc_request, blk_mq_queue_inflight, blk_mq_submit_requests,
  blk_mq_work_pending, guest_interrupt, guest_probe, kblockd_run_pending, virtio_blk_of,
} from '../linux';
import type { RequestStmt, Scenario, Stmt } from './ast';
import { ScenarioError } from './errors';
import { ExpectRecord, raw_statement, run_expect } from './raw-exec';
import type { ExprEnv } from '../expr/evaluate';

/** Virtual time between two statements: an application issuing I/O, not a tight loop. */
const THINK_NS = 50_000;
const PAGE = 4096;

export interface RequestRecord {
  file: string;
  line: number;
  statement: string;
  op: BlkOp;
  sector: number;
  bytes: number;
  status: BlkStatus | null;
  virtio_status: number | null;
  /** Guest address of the data buffer, and for reads and GET_ID the bytes that came back (hex). */
  data_addr: number | null;
  data_hex: string | null;
  data_preview: string | null;
  submitted_ns: number;
  completed_ns: number | null;
}

export class GuestProgram {
  vm_dev: VirtioMmioDevice | null = null;
  readonly requests: RequestRecord[] = [];
  onRequestDone: ((r: RequestRecord) => void) | null = null;
  /** Keep the bytes each read returned (the CLI shows them); off for benchmarks. */
  recordData = true;
  /** The queue raw statements act on (`queue N`; 0 until one says otherwise). */
  rawQueue = 0;
  /** The scenario's raw bufs in the order they were allocated: name → guest address and size. */
  readonly rawBufs = new Map<string, { addr: number; size: number }>();
  /** Every `expect` run so far, in order. */
  readonly expects: ExpectRecord[] = [];
  onExpect: ((r: ExpectRecord) => void) | null = null;
  /** Set by the machine: the names an `expect` on this queue can see (expr/machine-env.ts). */
  exprEnv: ((queue: number) => ExprEnv) | null = null;
  /** A runtime scenario error: the scenario stopped at that line. */
  error: ScenarioError | null = null;

  constructor(
    readonly scenario: Scenario,
    readonly platform: GuestPlatform,
    readonly irq: { readonly level: boolean },
    readonly wake: WaitQueue,
  ) {}

  virtqueue(i: number): VringVirtqueue | null {
    return this.vm_dev?.vqs[i] ?? null;
  }

  service_irq(): Co<void> {
    return service_irq(this);
  }

  /** True once a raw statement has taken any queue from the driver. */
  get rawOwned(): boolean {
    return this.vm_dev?.vqs.some((vq) => vq.raw_owned) ?? false;
  }

  /** Requests issued and not yet ended. */
  get inflight(): number {
    const q = this.vm_dev && virtio_blk_of(this.vm_dev)?.q;
    return q ? blk_mq_queue_inflight(q) : 0;
  }
}

/** Up to this many interrupts back to back; more means the line is stuck (never the case with a sane device). */
const MAX_IRQ_BURST = 64;

/** Take the device interrupt while the line is up and the driver's lock allows it. */
function* service_irq(g: GuestProgram): Co<void> {
  const vm_dev = g.vm_dev;
  if (!vm_dev) return;
  const vblk = virtio_blk_of(vm_dev);
  for (let n = 0; g.irq.level && n < MAX_IRQ_BURST; n++) {
    if (vblk?.irqs_disabled()) return;
    yield* guest_interrupt(vm_dev);
  }
  if (vblk?.q && blk_mq_work_pending(vblk.q)) yield* kblockd_run_pending(vblk.q);
}

/**
 * Halt until an interrupt, or until nothing else in the machine can run
 * (Sim.quiescent); true in the second case. The vCPU waits on both queues at
 * once and leaves the one that did not fire.
 */
function* halt_or_settle(g: GuestProgram): Co<boolean> {
  const t = S.thread;
  const settled = S.quiescent;
  settled.waiters.push(t);
  yield* block(g.wake);
  const i = settled.waiters.indexOf(t);
  if (i >= 0) {
    settled.waiters.splice(i, 1);
    return false;
  }
  const j = g.wake.waiters.indexOf(t);
  if (j >= 0) g.wake.waiters.splice(j, 1);
  return true;
}

/**
 * `wait`: halt until every request issued so far has ended and, once raw
 * statements drive a queue, until the machine has settled (no request
 * completion will say when the device is done with a raw buffer). When the
 * machine settles with requests still in flight, nothing can end them any
 * more (a broken device, a broken queue, a lost interrupt): the wait is over
 * and they stay in flight, so the lines below — an `expect`, say — still run.
 */
function* wait_all(g: GuestProgram): Co<void> {
  const raw = g.rawOwned;
  for (;;) {
    yield* service_irq(g);
    if (g.inflight === 0 && !raw) return;
    if (g.irq.level) continue;
    if (yield* halt_or_settle(g)) {
      yield* service_irq(g);
      return;
    }
  }
}

function bufferBytes(st: RequestStmt): number {
  switch (st.kind) {
    case 'read': return st.bytes;
    case 'write': return st.data.length;
    default: return 0;
  }
}

function makeRequest(g: GuestProgram, st: RequestStmt): Request {
  const vblk = virtio_blk_of(g.vm_dev!)!;
  const mem = g.platform.mem;
  const len = bufferBytes(st);
  // The bio's pages: page-aligned guest memory, freed when the request ends.
  const data = len > 0 ? g.platform.alloc.alloc(len, PAGE) : null;
  if (st.kind === 'write' && data !== null) mem.writeBytes(data, st.data);
  const sector = 'sector' in st ? st.sector : 0;
  const nr_bytes = st.kind === 'discard' || st.kind === 'write-zeroes' ? st.count * 512 : len;
  const rq = blk_mq_alloc_request(vblk.q!, st.kind, sector, data, nr_bytes, st.kind === 'write-zeroes' && st.unmap);
  const rec: RequestRecord = {
    file: st.loc.file,
    line: st.loc.line,
    statement: st.loc.text,
    op: st.kind,
    sector,
    bytes: nr_bytes,
    status: null,
    virtio_status: null,
    data_addr: data,
    data_hex: null,
    data_preview: null,
    submitted_ns: S.now,
    completed_ns: null,
  };
  g.requests.push(rec);
  rq.onDone = (r) => {
    rec.status = r.status;
    rec.virtio_status = r.virtioStatus;
    rec.completed_ns = S.now;
    rec.data_addr = r.data;
    if (g.recordData && (st.kind === 'read' || st.kind === 'get-id') && r.data !== null) {
      const bytes = mem.readBytes(r.data, st.kind === 'read' ? len : 20);
      rec.data_hex = bytes.toString('hex');
      // GET_ID is NUL-terminated when the serial is shorter than 20 bytes; what follows is not the serial.
      const nul = st.kind === 'get-id' ? bytes.indexOf(0) : -1;
      const shown = bytes.subarray(0, nul >= 0 ? nul : 48);
      rec.data_preview = JSON.stringify(shown.toString('latin1'));
    }
    if (data !== null) g.platform.alloc.release(data);
    g.onRequestDone?.(rec);
  };
  return rq;
}

const F_statement = defineFn('scenario_statement', ['loc']);
/** One scenario line: its frame is named after the line's text and sits at the bottom of vCPU 0. */
function* scenario_statement(g: GuestProgram, st: Stmt): Co<void> {
  if (enter(F_statement, st.loc)) yield STOP;
  const q = virtio_blk_of(g.vm_dev!)!.q!;
  switch (st.kind) {
    case 'wait':
      yield* wait_all(g);
      break;
    case 'batch':
      yield* blk_mq_submit_requests(q, st.body.map((r) => makeRequest(g, r)));
      break;
    case 'read': case 'write': case 'flush': case 'get-id': case 'discard': case 'write-zeroes':
      yield* blk_mq_submit_requests(q, [makeRequest(g, st)]);
      break;
    case 'expect': {
      const r = run_expect(g, st);
      g.expects.push(r);
      g.onExpect?.(r);
      break;
    }
    default:
      try {
        yield* raw_statement(g, st);
      } catch (e) {
        if (!(e instanceof ScenarioError)) throw e;
        g.error = e;
      }
  }
  return leave(F_statement, undefined);
}

/** vCPU 0's program: boot, the scenario, then wait for what is still in flight. */
export function* guest_main(g: GuestProgram): Co<void> {
  g.vm_dev = yield* guest_probe(g.platform);
  if (!virtio_blk_of(g.vm_dev)) return; // the driver did not bind: dmesg says why
  for (const st of g.scenario.statements) {
    yield* service_irq(g);
    yield* scenario_statement(g, st);
    if (g.error !== null) break;
    yield* do_idle(g, S.now + THINK_NS);
  }
  if (g.error === null) yield* wait_all(g);
  // The scenario is over: the vCPU halts for good, still taking interrupts.
  yield* do_idle(g, Infinity);
}
