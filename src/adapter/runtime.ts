/**
 * The debugger's engine: owns one Machine, the breakpoints, and the run
 * loop. Knows nothing of DAP (the session translates), nothing of VS Code.
 *
 * The machine runs in slices of events so that requests (pause, a new
 * breakpoint) are served while it runs. Breakpoints arm only the functions
 * and event points they watch, so a run with breakpoints costs almost
 * nothing until one of them is reached; stepping checks every event.
 */
import { EventEmitter } from 'node:events';
import * as path from 'node:path';
import { Machine } from '../machine/machine';
import type { MachineOptions } from '../machine/options';
import type { Scenario } from '../machine/scenario/ast';
import type { SimEvent, SimThread } from '../machine/sim/sim';
import { FnDesc, PointDesc, formatArgs, functionsNamed, Frame, allFunctions } from '../machine/sim/frames';
import { machineEnv } from '../machine/expr/machine-env';
import type { ExprEnv } from '../machine/expr';
import { Breakpoint, BreakpointOptions } from './breakpoints';
import { EventFilter, filterById, filterFns, filterPoints } from './eventFilters';
import { modelFileOf, sitesNear } from './sourceMap';

/** Events per run slice: long enough to be cheap, short enough that a pause is served at once. */
const SLICE_EVENTS = 200_000;

export type StopReason = 'entry' | 'breakpoint' | 'function breakpoint' | 'exception' | 'step' | 'pause' | 'data breakpoint';

export interface StopInfo {
  reason: StopReason;
  description: string;
  text?: string;
  thread: SimThread;
  hitBreakpointIds: number[];
  event: SimEvent | null;
}

export interface LineBreakpointResult {
  id: number;
  verified: boolean;
  line: number;
  message?: string;
}

type StepKind = 'in' | 'over' | 'out';

interface Watch {
  bps: Breakpoint[];
  filters: { filter: EventFilter; bp: Breakpoint }[];
}

export class VirtioRuntime extends EventEmitter {
  machine!: Machine;
  /** The scenario file as given at launch (absolute): line breakpoints in it are scenario lines. */
  scenarioPath = '';
  private options!: MachineOptions;
  private scenario!: Scenario;
  private trace = false;
  private traceBuffer: string[] = [];

  private fnBps = new Map<number, Breakpoint[]>();
  private modelLineBps = new Map<string, { site: FnDesc | PointDesc; kind: 'entry' | 'point'; bp: Breakpoint }[]>();
  private scenarioBps = new Map<number, Breakpoint[]>();
  private filters: { filter: EventFilter; bp: Breakpoint }[] = [];
  /** Armed sites: FnDesc.id / PointDesc.id → what watches them. */
  private fnWatch = new Map<number, Watch>();
  private pointWatch = new Map<number, Watch>();

  private stepping: { thread: SimThread; kind: StepKind; depth: number } | null = null;
  private stopOnEntry = false;
  private pauseRequested = false;
  private running = false;
  /** The current run loop (resume starts one); slices of an older one stop at once. */
  private runLoop = 0;
  private ended = false;
  private pendingStop: Omit<StopInfo, 'thread' | 'event'> | null = null;
  lastStop: StopInfo | null = null;

  /** Build (or rebuild, for restart) the machine. Throws the machine's errors (options, image). */
  load(options: MachineOptions, scenario: Scenario, scenarioPath: string, trace: boolean): void {
    this.options = options;
    this.scenario = scenario;
    this.scenarioPath = scenarioPath;
    this.trace = trace;
    this.machine?.close();
    this.machine = new Machine({
      options,
      scenario,
      log: trace ? (t, f, seq, depth) => this.traceLine(t, f, seq, depth) : undefined,
    });
    this.machine.sim.hook = (ev) => this.onEvent(ev);
    this.ended = false;
    this.lastStop = null;
    this.rearm();
  }

  restart(): void {
    this.load(this.options, this.scenario, this.scenarioPath, this.trace);
  }

  // ---- breakpoints ----

  setFunctionBreakpoints(specs: (BreakpointOptions & { name: string })[]): { id: number; verified: boolean; message?: string }[] {
    this.fnBps.clear();
    const out = specs.map((s) => {
      const bp = new Breakpoint(s);
      const descs = functionsNamed(s.name.trim());
      if (descs.length === 0) {
        bp.verified = false;
        bp.message = `no modelled function '${s.name}'`;
      }
      for (const d of descs) {
        const list = this.fnBps.get(d.id) ?? [];
        list.push(bp);
        this.fnBps.set(d.id, list);
      }
      return { id: bp.id, verified: bp.verified, message: bp.message };
    });
    this.rearm();
    return out;
  }

  setLineBreakpoints(sourcePath: string, specs: (BreakpointOptions & { line: number })[]): LineBreakpointResult[] {
    if (this.isScenario(sourcePath)) return this.setScenarioBreakpoints(specs);
    const file = modelFileOf(sourcePath);
    if (file) this.modelLineBps.set(file, []);
    const out = specs.map((s) => {
      const bp = new Breakpoint(s);
      const sites = file ? sitesNear(file, s.line) : [];
      if (sites.length === 0) {
        return { id: bp.id, verified: false, line: s.line, message: file ? 'no modelled function in this file' : 'not a scenario or a model source of this machine' };
      }
      for (const site of sites) {
        this.modelLineBps.get(file!)!.push(site.kind === 'entry' ? { site: site.fn, kind: 'entry', bp } : { site: site.point, kind: 'point', bp });
      }
      return { id: bp.id, verified: bp.verified, line: sites[0].line, message: bp.message };
    });
    this.rearm();
    return out;
  }

  private isScenario(p: string): boolean {
    return path.resolve(p) === path.resolve(this.scenarioPath);
  }

  /** Scenario statements are the stoppable lines: a line inside a batch moves to the batch line, one between statements to the next statement. */
  private setScenarioBreakpoints(specs: (BreakpointOptions & { line: number })[]): LineBreakpointResult[] {
    this.scenarioBps.clear();
    const lines = this.scenario.statements.map((st) => st.loc.line);
    // A line inside `batch { ... }` belongs to the batch: its requests are issued together, at the batch line.
    const batches = this.scenario.statements
      .filter((st) => st.kind === 'batch')
      .map((st) => ({ line: st.loc.line, last: Math.max(st.loc.line, ...(st as { body: { loc: { line: number } }[] }).body.map((b) => b.loc.line)) + 1 }));
    const out = specs.map((s) => {
      const bp = new Breakpoint(s);
      const inBatch = batches.find((b) => s.line > b.line && s.line <= b.last);
      const target = inBatch ? inBatch.line : lines.find((l) => l >= s.line) ?? [...lines].reverse().find((l) => l < s.line);
      if (target === undefined) return { id: bp.id, verified: false, line: s.line, message: 'the scenario has no statements' };
      const list = this.scenarioBps.get(target) ?? [];
      list.push(bp);
      this.scenarioBps.set(target, list);
      return { id: bp.id, verified: bp.verified, line: target, message: bp.message };
    });
    this.rearm();
    return out;
  }

  setEventFilters(filters: { id: string; condition?: string }[]): { id: string; verified: boolean; message?: string }[] {
    this.filters = [];
    const out = filters.map((f) => {
      const filter = filterById(f.id);
      if (!filter) return { id: f.id, verified: false, message: `unknown event filter '${f.id}'` };
      const bp = new Breakpoint({ condition: f.condition });
      this.filters.push({ filter, bp });
      return { id: f.id, verified: bp.verified, message: bp.message };
    });
    this.rearm();
    return out;
  }

  /** Recompute which functions and points the machine must report (Sim.armFunction / armPoint). */
  private rearm(): void {
    if (!this.machine) return;
    const sim = this.machine.sim;
    sim.armedFns.fill(0);
    sim.armedPoints.fill(0);
    this.fnWatch.clear();
    this.pointWatch.clear();
    const watchFn = (d: FnDesc): Watch => {
      let w = this.fnWatch.get(d.id);
      if (!w) this.fnWatch.set(d.id, (w = { bps: [], filters: [] }));
      sim.armFunction(d, true);
      return w;
    };
    const watchPoint = (p: PointDesc): Watch => {
      let w = this.pointWatch.get(p.id);
      if (!w) this.pointWatch.set(p.id, (w = { bps: [], filters: [] }));
      sim.armPoint(p, true);
      return w;
    };
    for (const [id, bps] of this.fnBps) watchFn(allFnById(id)).bps.push(...bps);
    for (const list of this.modelLineBps.values()) {
      for (const e of list) (e.kind === 'entry' ? watchFn(e.site as FnDesc) : watchPoint(e.site as PointDesc)).bps.push(e.bp);
    }
    for (const f of this.filters) {
      for (const d of filterFns(f.filter)) watchFn(d).filters.push(f);
      for (const p of filterPoints(f.filter)) watchPoint(p).filters.push(f);
    }
    if (this.scenarioBps.size > 0 || this.stopOnEntry) watchFn(scenarioStatementFn());
  }

  // ---- the hook: every armed event, and every event while stepping ----

  private onEvent(ev: SimEvent): boolean {
    const env = (): ExprEnv => machineEnv(this.machine, { frame: ev.frame });
    const log = (text: string) => this.emit('output', text + '\n', 'console');
    const problem = (text: string) => this.emit('output', text + '\n', 'stderr');
    const hit: number[] = [];
    let stop: Omit<StopInfo, 'thread' | 'event'> | null = null;

    if (ev.kind === 'enter' && ev.fn === scenarioStatementFn()) {
      const line = (ev.frame.a0 as { line: number }).line;
      if (this.stopOnEntry) {
        this.stopOnEntry = false;
        stop = { reason: 'entry', description: `Paused on entry: ${(ev.frame.a0 as { text: string }).text}`, hitBreakpointIds: [] };
      }
      for (const bp of this.scenarioBps.get(line) ?? []) {
        if (bp.reached(env, log, problem)) {
          hit.push(bp.id);
          stop ??= { reason: 'breakpoint', description: `Paused on breakpoint at line ${line}: ${(ev.frame.a0 as { text: string }).text}`, hitBreakpointIds: hit };
        }
      }
    }
    const w = ev.kind === 'enter' ? this.fnWatch.get(ev.fn.id) : this.pointWatch.get(ev.point!.id);
    if (w) {
      for (const bp of w.bps) {
        if (bp.reached(env, log, problem)) {
          hit.push(bp.id);
          const isFn = ev.kind === 'enter' && (this.fnBps.get(ev.fn.id) ?? []).includes(bp);
          stop ??= {
            reason: isFn ? 'function breakpoint' : 'breakpoint',
            description: `Paused on ${isFn ? 'function breakpoint' : 'breakpoint'} at ${ev.fn.name}${ev.point ? ` (${ev.point.name})` : ''}`,
            hitBreakpointIds: hit,
          };
        }
      }
      for (const { filter, bp } of w.filters) {
        if (filter.test && !filter.test(ev)) continue;
        if (!bp.reached(env, log, problem)) continue;
        const facts = filter.describe(ev, this.machine);
        stop ??= {
          reason: 'exception',
          description: `Paused on ${filter.id}: ${ev.fn.name}${facts ? ` (${facts})` : ''}`,
          text: filter.id === 'virtio_error' ? String(ev.frame.a1).replace(/^"|"$/g, '') : undefined,
          hitBreakpointIds: hit,
        };
      }
    }
    if (!stop && this.stepping && ev.thread === this.stepping.thread) {
      const s = this.stepping;
      const done = s.kind === 'in' || (s.kind === 'over' ? ev.depth <= s.depth : ev.depth < s.depth);
      if (done) stop = { reason: 'step', description: `Paused after step ${s.kind}`, hitBreakpointIds: [] };
    }
    if (stop) this.pendingStop = stop;
    return stop !== null;
  }

  // ---- running ----

  start(stopOnEntry: boolean): void {
    this.stopOnEntry = stopOnEntry;
    this.rearm();
    this.resume();
  }

  continue(): void {
    this.stepping = null;
    this.resume();
  }

  step(thread: SimThread, kind: StepKind): void {
    const ev = this.lastStop?.event;
    const depth = ev && ev.thread === thread ? ev.depth : this.threadDepth(thread);
    this.stepping = { thread, kind, depth };
    this.resume();
  }

  pause(): void {
    if (this.running) this.pauseRequested = true;
  }

  get isRunning(): boolean {
    return this.running;
  }

  get hasEnded(): boolean {
    return this.ended;
  }

  private threadDepth(t: SimThread): number {
    return t.cur.baseDepth + t.cur.depth;
  }

  private resume(): void {
    if (this.running || this.ended) return;
    this.running = true;
    this.lastStop = null;
    const loop = ++this.runLoop;
    setImmediate(() => this.slice(loop));
  }

  /**
   * Run one slice; schedule the next, or report the stop or the end. A slice
   * of a run loop that was superseded (dispose, restart) does nothing: one
   * machine, one loop.
   */
  private slice(loop: number): void {
    if (loop !== this.runLoop || !this.running) return;
    const sim = this.machine.sim;
    sim.sliceEnd = sim.seq + SLICE_EVENTS;
    sim.trapSeq = this.stepping ? 0 : sim.sliceEnd;
    let r;
    try {
      r = this.machine.run();
    } catch (e) {
      this.running = false;
      this.ended = true;
      this.flushTrace();
      this.emit('error', e as Error);
      return;
    }
    this.flushTrace();
    if (r === 'slice' || r === 'limit') {
      if (this.pauseRequested) {
        this.pauseRequested = false;
        this.reportStop({ reason: 'pause', description: 'Paused', hitBreakpointIds: [] }, sim.thread, null);
      } else {
        setImmediate(() => this.slice(loop));
      }
      return;
    }
    if (r === 'stopped') {
      const stop = this.pendingStop ?? { reason: 'breakpoint' as const, description: 'Paused', hitBreakpointIds: [] };
      this.pendingStop = null;
      this.reportStop(stop, sim.stopEvent!.thread, sim.stopEvent);
      return;
    }
    // idle: every thread waits for something that will not come; the run is over.
    this.running = false;
    this.ended = true;
    this.emit('end', this.machine.snapshot());
  }

  private reportStop(stop: Omit<StopInfo, 'thread' | 'event'>, thread: SimThread, event: SimEvent | null): void {
    this.running = false;
    this.stepping = null;
    this.lastStop = { ...stop, thread, event };
    this.emit('stopped', this.lastStop);
  }

  // ---- trace output ----

  private traceLine(t: SimThread, f: Frame, seq: number, depth: number): void {
    const name = f.desc.side === 'scenario' ? `${(f.a0 as { text: string }).text}` : `${f.desc.name} (${formatArgs(f)})`;
    this.traceBuffer.push(`${String(seq).padStart(6)}  ${t.name.padEnd(9)} ${'  '.repeat(depth)}${name}`);
    if (this.traceBuffer.length >= 2000) this.flushTrace();
  }

  private flushTrace(): void {
    if (this.traceBuffer.length === 0) return;
    this.emit('output', this.traceBuffer.join('\n') + '\n', 'stdout');
    this.traceBuffer = [];
  }

  dispose(): void {
    this.ended = true;
    this.running = false;
    this.runLoop++;
    this.machine?.close();
  }
}

function allFnById(id: number): FnDesc {
  const d = allFunctions()[id];
  if (!d || d.id !== id) throw new Error(`no function with id ${id}`);
  return d;
}

let scenarioFn: FnDesc | null = null;

/** The FnDesc of scenario line frames. */
export function scenarioStatementFn(): FnDesc {
  if (!scenarioFn) {
    scenarioFn = functionsNamed('scenario_statement')[0];
    if (!scenarioFn) throw new Error('scenario_statement is not modelled');
  }
  return scenarioFn;
}

