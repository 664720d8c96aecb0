/**
 * The Debug Adapter Protocol side: translates requests into the runtime's
 * calls and the runtime's events into DAP events. Holds no machine logic.
 * Every handler answers, with an error message when it cannot serve the
 * request: the adapter never dies on a bad request.
 */
import {
  ExitedEvent, InitializedEvent, LoggingDebugSession, OutputEvent, Scope, StoppedEvent, TerminatedEvent, Thread,
} from '@vscode/debugadapter';
import type { DebugProtocol } from '@vscode/debugprotocol';
import * as path from 'node:path';
import { VirtioRuntime, StopInfo } from './runtime';
import { EVENT_FILTERS } from './eventFilters';
import { parseLaunchArgs, LaunchArgs } from './launchArgs';
import { coroutineStack, frameTitle, threadStack, StackEntry } from './stack';
import { VarNode, deviceNodes, elementNode, frameElement, frameQueue, valueNode, virtqueueNodes } from './variables';
import { absoluteModelPath } from './sourceMap';
import { loadScenario } from '../machine/run';
import type { SimThread, CoroutineLike } from '../machine/sim/sim';
import type { Frame } from '../machine/sim/frames';
import { hex } from '../machine/sim/pointers';
import { evaluate, formatValue, parseExpr, Value } from '../machine/expr';
import { machineEnv } from '../machine/expr/machine-env';
import type { StateSnapshot } from '../machine/state/snapshot';

/** What a breakpoint set in a noDebug run answers: it is kept, but the run ignores it. */
const NO_DEBUG = 'noDebug: this run ignores breakpoints';

/** DAP thread ids: machine threads are 1.., suspended coroutines from here on. */
const COROUTINE_THREAD_BASE = 1000;

interface FrameRef {
  thread: number;
  frame: Frame;
}

export class VirtioDebugSession extends LoggingDebugSession {
  private readonly rt = new VirtioRuntime();
  private launch: LaunchArgs | null = null;
  private configurationDone!: Promise<void>;
  private resolveConfigurationDone!: () => void;
  /** Breakpoint requests, kept so that a restart can apply them to the new machine. */
  private lineRequests = new Map<string, DebugProtocol.SourceBreakpoint[]>();
  private fnRequest: DebugProtocol.FunctionBreakpoint[] = [];
  private filterRequest: { id: string; condition?: string }[] = EVENT_FILTERS.filter((f) => f.default).map((f) => ({ id: f.id }));

  private frames = new Map<number, FrameRef>();
  private nodes = new Map<number, () => VarNode[]>();
  private coroutineIds = new Map<number, number>();
  private handleSeq = 1;

  constructor() {
    super();
    this.setDebuggerLinesStartAt1(true);
    this.setDebuggerColumnsStartAt1(true);
    this.configurationDone = new Promise((r) => (this.resolveConfigurationDone = r));
    this.rt.on('stopped', (s: StopInfo) => this.onStopped(s));
    this.rt.on('output', (text: string, category: string) => this.sendEvent(new OutputEvent(text, category)));
    this.rt.on('end', (state: StateSnapshot) => this.onEnd(state));
    this.rt.on('error', (e: Error) => {
      this.sendEvent(new OutputEvent(`internal error in the machine: ${e.stack ?? e.message}\n`, 'stderr'));
      this.sendEvent(new TerminatedEvent());
    });
  }

  protected override initializeRequest(response: DebugProtocol.InitializeResponse): void {
    const b: DebugProtocol.Capabilities = (response.body = response.body ?? {});
    b.supportsConfigurationDoneRequest = true; // breakpoints are set before the machine first runs
    b.supportsFunctionBreakpoints = true; // any modelled function: virtqueue_pop, virtio_blk_rw_complete, ...
    b.supportsConditionalBreakpoints = true; // conditions in the expression language of `expect`
    b.supportsHitConditionalBreakpoints = true; // N, >=N, %N ...
    b.supportsLogPoints = true; // {expression} interpolation, no stop
    b.supportsEvaluateForHovers = true; // hover a name in the model's source
    b.supportsSetVariable = true; // rewrite a ring field in guest memory, or a device index
    b.supportsSetExpression = false;
    b.supportsStepBack = false; // the machine is deterministic; restart replays exactly
    b.supportsRestartRequest = true; // a new machine from the same scenario and options
    b.supportsTerminateRequest = true;
    b.supportsReadMemoryRequest = true; // guest-physical memory
    b.supportsWriteMemoryRequest = true;
    b.supportsExceptionFilterOptions = true; // each event filter takes a condition
    b.supportsExceptionInfoRequest = true; // virtio_error's message
    b.supportsDelayedStackTraceLoading = true; // deep QEMU stacks page in
    b.supportsValueFormattingOptions = false;
    b.supportTerminateDebuggee = true;
    b.exceptionBreakpointFilters = EVENT_FILTERS.map((f) => ({
      filter: f.id,
      label: f.label,
      description: f.description,
      default: f.default,
      supportsCondition: true,
      conditionDescription: 'an expression, e.g. avail.idx == 3 or vq.last_avail_idx > 10',
    }));
    this.sendResponse(response);
  }

  protected override configurationDoneRequest(response: DebugProtocol.ConfigurationDoneResponse): void {
    this.sendResponse(response);
    this.resolveConfigurationDone();
  }

  protected override async launchRequest(response: DebugProtocol.LaunchResponse, args: DebugProtocol.LaunchRequestArguments): Promise<void> {
    try {
      // A client may send no arguments at all (DAP makes them optional): that is the default launch.
      this.launch = parseLaunchArgs((args ?? {}) as unknown as Record<string, unknown>);
      this.loadMachine();
    } catch (e) {
      this.launch = null; // no machine was built: requests must see "not launched", not a missing machine
      return this.fail(response, e);
    }
    this.sendEvent(new InitializedEvent());
    await this.configurationDone;
    this.sendResponse(response);
    this.rt.start(!this.launch.noDebug && this.launch.options.stopOnEntry);
  }

  private loadMachine(scenario = loadScenario(this.launch!.scenarioPath)): void {
    const l = this.launch!;
    this.rt.load(l.options, scenario, l.scenarioPath, l.trace);
    this.applyBreakpoints();
  }

  /** Give the (new) machine every breakpoint the client set; with noDebug, none. */
  private applyBreakpoints(): void {
    if (this.launch?.noDebug) {
      this.rt.setEventFilters([]);
      return;
    }
    this.rt.setEventFilters(this.filterRequest);
    this.rt.setFunctionBreakpoints(this.fnRequest);
    for (const [p, bps] of this.lineRequests) this.rt.setLineBreakpoints(p, bps);
  }

  protected override attachRequest(response: DebugProtocol.AttachResponse): void {
    this.fail(response, new Error('attach is not supported: the machine is simulated inside the adapter; use a launch configuration'));
  }

  protected override restartRequest(response: DebugProtocol.RestartResponse, args: DebugProtocol.RestartArguments): void {
    try {
      if (!this.launch) throw new Error('not launched');
      // VS Code sends the launch configuration again as it is now (launch.json may have been edited).
      // A bad attribute or scenario fails the restart and leaves the running session alone.
      const launch = args?.arguments ? parseLaunchArgs(args.arguments as unknown as Record<string, unknown>) : this.launch;
      const scenario = loadScenario(launch.scenarioPath);
      this.rt.dispose();
      this.resetHandles();
      this.launch = launch;
      this.loadMachine(scenario);
      this.sendResponse(response);
      this.rt.start(!this.launch!.noDebug && this.launch!.options.stopOnEntry);
    } catch (e) {
      this.fail(response, e);
    }
  }

  // ---- breakpoints ----

  protected override setBreakPointsRequest(response: DebugProtocol.SetBreakpointsResponse, args: DebugProtocol.SetBreakpointsArguments): void {
    this.guard(response, () => {
      const p = args.source.path ?? '';
      const bps = args.breakpoints ?? [];
      this.lineRequests.set(p, bps);
      const results = this.launch && !this.launch.noDebug
        ? this.rt.setLineBreakpoints(p, bps)
        : bps.map((b) => ({ id: 0, verified: false, line: b.line, message: this.launch ? NO_DEBUG : 'not launched yet' }));
      response.body = { breakpoints: results.map((r) => ({ id: r.id, verified: r.verified, line: r.line, message: r.message, source: args.source })) };
    });
  }

  protected override setFunctionBreakPointsRequest(response: DebugProtocol.SetFunctionBreakpointsResponse, args: DebugProtocol.SetFunctionBreakpointsArguments): void {
    this.guard(response, () => {
      this.fnRequest = args.breakpoints;
      response.body = {
        breakpoints: this.launch?.noDebug ? args.breakpoints.map(() => ({ verified: false, message: NO_DEBUG })) : this.rt.setFunctionBreakpoints(args.breakpoints),
      };
    });
  }

  protected override setExceptionBreakPointsRequest(response: DebugProtocol.SetExceptionBreakpointsResponse, args: DebugProtocol.SetExceptionBreakpointsArguments): void {
    this.guard(response, () => {
      const byId = new Map<string, { id: string; condition?: string }>();
      for (const id of args.filters ?? []) byId.set(id, { id });
      for (const o of args.filterOptions ?? []) byId.set(o.filterId, { id: o.filterId, condition: o.condition });
      this.filterRequest = [...byId.values()];
      const results = this.launch?.noDebug ? this.filterRequest.map(() => ({ verified: false, message: NO_DEBUG })) : this.rt.setEventFilters(this.filterRequest);
      response.body = { breakpoints: results.map((r) => ({ verified: r.verified, message: r.message })) };
    });
  }

  protected override exceptionInfoRequest(response: DebugProtocol.ExceptionInfoResponse): void {
    this.guard(response, () => {
      const s = this.rt.lastStop;
      response.body = {
        exceptionId: s?.description.match(/^Paused on (\w+)/)?.[1] ?? 'event',
        description: s?.text ?? s?.description ?? '',
        breakMode: 'always',
        details: { message: s?.description, stackTrace: s ? this.stackText(s.thread) : undefined },
      };
    });
  }

  // ---- threads and stacks ----

  private threadOf(id: number): SimThread | CoroutineLike {
    if (id >= COROUTINE_THREAD_BASE) {
      for (const [ptr, tid] of this.coroutineIds) {
        if (tid === id) {
          const co = [...this.rt.machine.sim.coroutines].find((c) => c.ptr === ptr);
          if (co) return co;
        }
      }
      throw new Error(`no coroutine thread ${id} (it has finished)`);
    }
    const t = this.rt.machine.sim.threads[id - 1];
    if (!t) throw new Error(`no thread ${id}`);
    return t;
  }

  private suspendedCoroutines(): CoroutineLike[] {
    return [...this.rt.machine.sim.coroutines].filter((c) => (c as CoroutineLike & { state: string }).state !== 'running');
  }

  protected override threadsRequest(response: DebugProtocol.ThreadsResponse): void {
    this.guard(response, () => {
      if (!this.launch) {
        response.body = { threads: [] };
        return;
      }
      const threads = this.rt.machine.sim.threads.map((t) => new Thread(t.id + 1, t.name));
      for (const co of this.suspendedCoroutines()) {
        let id = this.coroutineIds.get(co.ptr);
        if (id === undefined) this.coroutineIds.set(co.ptr, (id = COROUTINE_THREAD_BASE + this.coroutineIds.size));
        threads.push(new Thread(id, `coroutine ${hex(co.ptr)} (${(co as CoroutineLike & { entryName: string }).entryName})`));
      }
      response.body = { threads };
    });
  }

  private stackOf(threadId: number): StackEntry[] {
    const t = this.threadOf(threadId);
    return 'base' in t ? threadStack(t) : coroutineStack(t);
  }

  private stackText(t: SimThread): string {
    return threadStack(t).map((e) => (e.kind === 'label' ? e.text : frameTitle(e.frame))).join('\n');
  }

  protected override stackTraceRequest(response: DebugProtocol.StackTraceResponse, args: DebugProtocol.StackTraceArguments): void {
    this.guard(response, () => {
      if (this.rt.isRunning) throw new Error('the machine is running');
      const entries = this.stackOf(args.threadId);
      const start = args.startFrame ?? 0;
      const end = args.levels ? start + args.levels : entries.length;
      const stackFrames: DebugProtocol.StackFrame[] = entries.slice(start, end).map((e) => {
        const id = this.handleSeq++;
        if (e.kind === 'label') return { id, name: e.text, line: 0, column: 0, presentationHint: 'label' };
        this.frames.set(id, { thread: args.threadId, frame: e.frame });
        const f = e.frame;
        const scenario = f.desc.side === 'scenario';
        const file = scenario ? (f.a0 as { file: string }).file : absoluteModelPath(f.desc.file);
        const line = scenario ? (f.a0 as { line: number }).line : f.line;
        return {
          id,
          name: frameTitle(f),
          source: { name: path.basename(file), path: path.resolve(file), presentationHint: scenario ? 'emphasize' : undefined },
          line,
          column: 1,
          presentationHint: f.desc.side === 'guest' || scenario ? 'normal' : undefined,
        };
      });
      response.body = { stackFrames, totalFrames: entries.length };
    });
  }

  // ---- variables ----

  private ref(children: () => VarNode[]): number {
    const id = this.handleSeq++;
    this.nodes.set(id, children);
    return id;
  }

  protected override scopesRequest(response: DebugProtocol.ScopesResponse, args: DebugProtocol.ScopesArguments): void {
    this.guard(response, () => {
      const fr = this.frames.get(args.frameId);
      if (!fr) throw new Error(`no frame ${args.frameId}`);
      const f = fr.frame;
      const m = this.rt.machine;
      const scopes: DebugProtocol.Scope[] = [];
      const params = f.desc.params;
      const args4 = [f.a0, f.a1, f.a2, f.a3];
      scopes.push(new Scope('Arguments', this.ref(() => params.slice(0, 4).map((p, i) => valueNode(p, args4[i], p))), false));
      if (f.locals) {
        const locals = f.locals;
        scopes.push(new Scope('Locals', this.ref(() => Object.keys(locals).map((k) => valueNode(k, locals[k], k))), false));
      }
      const q = frameQueue(f);
      scopes.push(new Scope(`Virtqueue ${q}`, this.ref(() => virtqueueNodes(m, q)), false));
      const e = frameElement(f);
      if (e) scopes.push(new Scope('VirtQueueElement', this.ref(() => elementNode(m, 'elem', e).children!()), false));
      scopes.push(new Scope('Device', this.ref(() => deviceNodes(m)), false));
      response.body = { scopes };
    });
  }

  private toVariable(n: VarNode): DebugProtocol.Variable {
    const v: DebugProtocol.Variable = {
      name: n.name,
      value: n.value,
      type: n.type,
      variablesReference: n.children ? this.ref(n.children) : 0,
      memoryReference: n.memoryReference,
      evaluateName: n.evaluateName,
    };
    if (!n.set) v.presentationHint = { attributes: ['readOnly'] };
    return v;
  }

  protected override variablesRequest(response: DebugProtocol.VariablesResponse, args: DebugProtocol.VariablesArguments): void {
    this.guard(response, () => {
      const kids = this.nodes.get(args.variablesReference);
      if (!kids) {
        // A reference handed out before the last resume (VS Code may still ask while the next stop
        // arrives) has no variables now: not an error worth a toast. One never handed out is an error.
        if (args.variablesReference > 0 && args.variablesReference < this.handleSeq) {
          response.body = { variables: [] };
          return;
        }
        throw new Error(`no variables for reference ${args.variablesReference}`);
      }
      let list = kids();
      if (args.start !== undefined || args.count !== undefined) list = list.slice(args.start ?? 0, (args.start ?? 0) + (args.count ?? list.length));
      response.body = { variables: list.map((n) => this.toVariable(n)) };
    });
  }

  protected override setVariableRequest(response: DebugProtocol.SetVariableResponse, args: DebugProtocol.SetVariableArguments): void {
    this.guard(response, () => {
      const kids = this.nodes.get(args.variablesReference);
      const node = kids?.().find((n) => n.name === args.name);
      if (!node) throw new Error(`no variable '${args.name}' here`);
      if (!node.set) throw new Error(`'${args.name}' cannot be set`);
      const v = evaluate(parseExpr(args.value), machineEnv(this.rt.machine));
      const n = typeof v === 'boolean' ? (v ? 1 : 0) : v;
      if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) throw new Error(`'${args.value}' is not a non-negative number`);
      response.body = { value: node.set(n) };
    });
  }

  protected override evaluateRequest(response: DebugProtocol.EvaluateResponse, args: DebugProtocol.EvaluateArguments): void {
    this.guard(response, () => {
      if (!this.launch) throw new Error('not launched');
      const fr = args.frameId !== undefined ? this.frames.get(args.frameId) : undefined;
      const env = machineEnv(this.rt.machine, { frame: fr?.frame, queue: fr ? frameQueue(fr.frame) : undefined });
      const value: Value = evaluate(parseExpr(args.expression), env);
      const node = valueNode(args.expression, value, args.expression);
      response.body = {
        result: typeof value === 'object' && value !== null ? node.value : formatValue(value),
        type: node.type,
        variablesReference: node.children ? this.ref(node.children) : 0,
      };
    });
  }

  // ---- memory ----

  protected override readMemoryRequest(response: DebugProtocol.ReadMemoryResponse, args: DebugProtocol.ReadMemoryArguments): void {
    this.guard(response, () => {
      const mem = this.rt.machine.mem;
      const start = Number(args.memoryReference) + (args.offset ?? 0);
      if (!Number.isFinite(start)) throw new Error(`bad memory reference '${args.memoryReference}'`);
      let readable = 0;
      while (readable < args.count && mem.valid(start + readable, 1)) readable++;
      const skip = readable === 0 ? args.count : 0;
      response.body = {
        address: hex(start),
        data: readable > 0 ? mem.readBytes(start, readable).toString('base64') : '',
        unreadableBytes: skip > 0 ? skip : args.count - readable,
      };
    });
  }

  protected override writeMemoryRequest(response: DebugProtocol.WriteMemoryResponse, args: DebugProtocol.WriteMemoryArguments): void {
    this.guard(response, () => {
      const mem = this.rt.machine.mem;
      const start = Number(args.memoryReference) + (args.offset ?? 0);
      const data = Buffer.from(args.data, 'base64');
      if (!mem.valid(start, data.length)) throw new Error(`${hex(start)}+${data.length} is outside guest RAM`);
      mem.writeBytes(start, data);
      response.body = { bytesWritten: data.length };
    });
  }

  // ---- execution ----

  private resetHandles(): void {
    this.frames.clear();
    this.nodes.clear();
  }

  private simThread(id: number): SimThread {
    const t = this.threadOf(id);
    if (!('base' in t)) throw new Error('a suspended coroutine cannot be stepped on its own: step the thread that will enter it');
    return t;
  }

  protected override continueRequest(response: DebugProtocol.ContinueResponse): void {
    this.guard(response, () => {
      this.resetHandles();
      response.body = { allThreadsContinued: true };
    });
    this.rt.continue();
  }

  private stepRequest(response: DebugProtocol.Response, threadId: number, kind: 'in' | 'over' | 'out'): void {
    let t: SimThread;
    try {
      t = this.simThread(threadId);
    } catch (e) {
      return this.fail(response, e);
    }
    this.resetHandles();
    this.sendResponse(response);
    this.rt.step(t, kind);
  }

  protected override nextRequest(response: DebugProtocol.NextResponse, args: DebugProtocol.NextArguments): void {
    this.stepRequest(response, args.threadId, 'over');
  }

  protected override stepInRequest(response: DebugProtocol.StepInResponse, args: DebugProtocol.StepInArguments): void {
    this.stepRequest(response, args.threadId, 'in');
  }

  protected override stepOutRequest(response: DebugProtocol.StepOutResponse, args: DebugProtocol.StepOutArguments): void {
    this.stepRequest(response, args.threadId, 'out');
  }

  protected override pauseRequest(response: DebugProtocol.PauseResponse): void {
    this.sendResponse(response);
    this.rt.pause();
  }

  protected override terminateRequest(response: DebugProtocol.TerminateResponse): void {
    this.rt.dispose();
    this.sendResponse(response);
    this.sendEvent(new TerminatedEvent());
  }

  /**
   * The client asked to end, or went away (its stream closed, SIGTERM): stop
   * the machine, then DebugSession's shutdown (stdio: the process exits). In
   * server mode nothing else would stop a machine whose client vanished.
   */
  override shutdown(): void {
    this.rt.dispose();
    super.shutdown();
  }

  protected override disconnectRequest(response: DebugProtocol.DisconnectResponse): void {
    this.rt.dispose();
    this.sendResponse(response);
    this.shutdown(); // stdio: the process exits; server and inline: nothing (DebugSession.shutdown)
  }

  protected override customRequest(command: string, response: DebugProtocol.Response): void {
    if (command !== 'virtio/state') return this.fail(response, new Error(`unknown request '${command}'`));
    this.guard(response, () => {
      if (!this.launch) throw new Error('not launched');
      response.body = this.rt.machine.snapshot();
    });
  }

  // ---- runtime events ----

  private onStopped(s: StopInfo): void {
    const ev = new StoppedEvent(s.reason, s.thread.id + 1, s.text) as DebugProtocol.StoppedEvent;
    ev.body.description = s.description;
    ev.body.allThreadsStopped = true;
    if (s.hitBreakpointIds.length > 0) ev.body.hitBreakpointIds = s.hitBreakpointIds;
    this.sendEvent(ev);
  }

  private onEnd(state: StateSnapshot): void {
    const d = state.device;
    const summary = d.broken
      ? `The device is broken: ${d.errors.join('; ')}\n`
      : `The scenario ran to its end: ${this.rt.machine.guest.requests.length} requests, ${state.events} events.\n`;
    this.sendEvent(new OutputEvent(summary, 'console'));
    this.sendEvent(new ExitedEvent(0));
    this.sendEvent(new TerminatedEvent());
  }

  // ---- errors ----

  /** Run a handler; any error becomes an error response and the session goes on. */
  private guard(response: DebugProtocol.Response, body: () => void): void {
    try {
      body();
      this.sendResponse(response);
    } catch (e) {
      this.fail(response, e);
    }
  }

  private fail(response: DebugProtocol.Response, e: unknown): void {
    const message = e instanceof Error ? e.message : String(e);
    this.sendErrorResponse(response, { id: 1001, format: message.replace(/\{/g, '(').replace(/\}/g, ')'), showUser: true });
  }
}
