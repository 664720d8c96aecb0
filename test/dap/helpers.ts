/**
 * Helpers for the DAP tests: a `Session` wraps `@vscode/debugadapter-testsupport`'s
 * DebugClient talking to the built adapter (`dist/adapter.js`), on stdio or
 * through `--server=0`, and records every event from the first byte on, so a
 * `stopped` that arrives in the same chunk as the response before it is never
 * lost (DebugClient.waitForEvent only sees events after it is called).
 *
 * Nothing here knows the machine's internals: the tests see what any DAP
 * client sees, plus `virtio/state`.
 */
import { strict as assert } from 'node:assert';
import * as cp from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DebugClient } from '@vscode/debugadapter-testsupport';
import type { DebugProtocol } from '@vscode/debugprotocol';
import type { StateSnapshot } from '../../src/machine/state/snapshot';

/** The project root (this file runs from out/test/dap). */
export const ROOT = path.resolve(__dirname, '../../..');
export const ADAPTER = path.join(ROOT, 'dist', 'adapter.js');
export const DEFAULT_SCENARIO = path.join(ROOT, 'samples', 'default.virtio');
export const VIRTIO_TS = path.join(ROOT, 'src', 'machine', 'qemu', 'hw', 'virtio', 'virtio.ts');

/** How long to wait for an event before failing (the machine reaches any stop in well under a second). */
export const EVENT_TIMEOUT = 20_000;

/** The events the adapter sends; each is queued from the start of the session. */
const EVENT_TYPES = ['initialized', 'stopped', 'continued', 'output', 'terminated', 'exited', 'thread', 'breakpoint'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export type LaunchArgs = Record<string, unknown>;

/** Breakpoints to set between `initialized` and `configurationDone`, as VS Code does. */
export interface Setup {
  /** Event filters (exception breakpoints); default: the adapter's defaults are left alone. */
  filters?: string[];
  filterOptions?: DebugProtocol.ExceptionFilterOptions[];
  functions?: DebugProtocol.FunctionBreakpoint[];
  /** Line breakpoints, by source path. */
  lines?: { path: string; breakpoints: DebugProtocol.SourceBreakpoint[] }[];
}

export interface SetupResult {
  filters?: DebugProtocol.Breakpoint[];
  functions?: DebugProtocol.Breakpoint[];
  lines: DebugProtocol.Breakpoint[][];
}

export class Session {
  /** Events received and not yet taken, in arrival order. */
  private readonly received: DebugProtocol.Event[] = [];
  private readonly waiters: { types: string[]; resolve: (e: DebugProtocol.Event) => void }[] = [];
  /** Every output event's text, in order, with its category. */
  readonly output: { category: string; text: string }[] = [];
  /** The adapter process in server mode, and the address it printed. */
  private server: cp.ChildProcess | null = null;
  listening: { host: string; port: number } | null = null;
  capabilities: DebugProtocol.Capabilities = {};

  private constructor(readonly dc: DebugClient) {
    dc.defaultTimeout = EVENT_TIMEOUT;
    for (const type of EVENT_TYPES) dc.on(type, (e: DebugProtocol.Event) => this.push(type, e));
  }

  /** A session with `node dist/adapter.js` on stdio, initialized. */
  static async stdio(): Promise<Session> {
    assert.ok(fs.existsSync(ADAPTER), `${ADAPTER} is missing: run npm run build`);
    const s = new Session(new DebugClient('node', ADAPTER, 'virtio'));
    await s.dc.start();
    await s.initialize();
    return s;
  }

  /** A session through `node dist/adapter.js --server=0`: the port is read from what the adapter prints. */
  static async server(): Promise<Session> {
    assert.ok(fs.existsSync(ADAPTER), `${ADAPTER} is missing: run npm run build`);
    const child = cp.spawn(process.execPath, [ADAPTER, '--server=0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let listening: { host: string; port: number };
    try {
      listening = await new Promise((resolve, reject) => {
        let out = '';
        let err = '';
        const timer = setTimeout(() => reject(new Error(`the adapter printed no address in 10 s: ${JSON.stringify(out + err)}`)), 10_000);
        child.stdout!.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /listening on ([\d.]+|\[[^\]]+\]|[\w.-]+):(\d+)/.exec(out);
          if (m) {
            clearTimeout(timer);
            resolve({ host: m[1], port: Number(m[2]) });
          }
        });
        child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
        child.on('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`the adapter exited (${code}) before listening: ${err}`));
        });
      });
    } catch (e) {
      child.kill();
      throw e;
    }
    const s = new Session(new DebugClient('node', ADAPTER, 'virtio'));
    s.server = child;
    s.listening = listening;
    await s.dc.start(listening.port);
    await s.initialize();
    return s;
  }

  private async initialize(): Promise<void> {
    const r = await this.dc.initializeRequest();
    this.capabilities = r.body ?? {};
  }

  /**
   * Disconnect (DebugClient.stop) and end the adapter; safe to call twice. An
   * adapter that no longer answers is killed after a few seconds rather than
   * hanging the suite.
   */
  async close(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = new Promise<void>((r) => (timer = setTimeout(r, 5_000)));
    await Promise.race([this.dc.stop(), gaveUp]);
    clearTimeout(timer);
    this.adapterProcess?.kill();
    if (this.server) {
      const child = this.server;
      this.server = null;
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill();
        await exited;
      }
    }
  }

  /** The adapter process of a server-mode session. */
  get serverPid(): number | undefined {
    return this.server?.pid;
  }

  /** Close the TCP connection abruptly, as a client that crashed would (server mode). */
  dropConnection(): void {
    (this.dc as unknown as { _socket: { destroy(): void } | null })._socket?.destroy();
  }

  /** The stdio adapter's process (DebugClient keeps it private). */
  get adapterProcess(): cp.ChildProcess | null {
    return (this.dc as unknown as { _adapterProcess: cp.ChildProcess | null })._adapterProcess;
  }

  // ---- events ----

  private push(type: string, e: DebugProtocol.Event): void {
    if (type === 'output') {
      const b = (e as DebugProtocol.OutputEvent).body;
      this.output.push({ category: b.category ?? 'console', text: b.output });
    }
    const i = this.waiters.findIndex((w) => w.types.includes(type));
    if (i >= 0) {
      this.waiters.splice(i, 1)[0].resolve(e);
      return;
    }
    this.received.push(e);
  }

  /** The next event of `type` (already received and not yet taken, or the next to come). */
  next<T extends DebugProtocol.Event = DebugProtocol.Event>(type: EventType, timeout = EVENT_TIMEOUT): Promise<T> {
    return this.nextOf([type], timeout) as Promise<T>;
  }

  /** The next event of any of `types`, whichever comes (came) first. */
  nextOf(types: EventType[], timeout = EVENT_TIMEOUT): Promise<DebugProtocol.Event> {
    const i = this.received.findIndex((e) => (types as string[]).includes(e.event));
    if (i >= 0) return Promise.resolve(this.received.splice(i, 1)[0]);
    return new Promise((resolve, reject) => {
      const waiter = {
        types: types as string[],
        resolve: (e: DebugProtocol.Event) => {
          clearTimeout(timer);
          resolve(e);
        },
      };
      const timer = setTimeout(() => {
        const k = this.waiters.indexOf(waiter);
        if (k >= 0) this.waiters.splice(k, 1);
        reject(new Error(`no ${types.map((t) => `'${t}'`).join(' or ')} event within ${timeout} ms`));
      }, timeout);
      timer.unref();
      this.waiters.push(waiter);
    });
  }

  /** Events of `type` received and not yet taken. */
  pending(type: EventType): DebugProtocol.Event[] {
    return this.received.filter((e) => e.event === type);
  }

  /** Forget events of `type` received so far. */
  drop(type: EventType): void {
    for (let i = this.received.length - 1; i >= 0; i--) if (this.received[i].event === type) this.received.splice(i, 1);
  }

  /** The next stop, or null when the session terminates first. */
  async nextStopOrEnd(timeout = EVENT_TIMEOUT): Promise<DebugProtocol.StoppedEvent | null> {
    const e = await this.nextOf(['stopped', 'terminated'], timeout);
    return e.event === 'stopped' ? (e as DebugProtocol.StoppedEvent) : null;
  }

  nextStop(timeout = EVENT_TIMEOUT): Promise<DebugProtocol.StoppedEvent> {
    return this.next<DebugProtocol.StoppedEvent>('stopped', timeout);
  }

  /** Wait until some output event's text matches. */
  async outputMatching(re: RegExp, timeout = EVENT_TIMEOUT): Promise<string> {
    const end = Date.now() + timeout;
    for (;;) {
      const hit = this.output.find((o) => re.test(o.text));
      if (hit) return hit.text;
      const left = end - Date.now();
      if (left <= 0) throw new Error(`no output matching ${re} within ${timeout} ms; got: ${JSON.stringify(this.output.map((o) => o.text).join('').slice(-2000))}`);
      await this.next('output', left).catch(() => undefined);
    }
  }

  // ---- launching ----

  /**
   * launch → initialized → breakpoints → configurationDone → the launch response,
   * in the order VS Code sends them. Returns what the breakpoint requests answered.
   */
  async launch(args: LaunchArgs, setup: Setup = {}): Promise<SetupResult> {
    const launched = this.dc.launchRequest(args as DebugProtocol.LaunchRequestArguments);
    await Promise.race([this.next('initialized'), launched.then(() => assert.fail('launch answered before the initialized event'))]);
    const result: SetupResult = { lines: [] };
    for (const l of setup.lines ?? []) {
      const r = await this.dc.setBreakpointsRequest({ source: { path: l.path }, breakpoints: l.breakpoints });
      result.lines.push(r.body.breakpoints);
    }
    if (setup.functions) result.functions = (await this.dc.setFunctionBreakpointsRequest({ breakpoints: setup.functions })).body.breakpoints;
    if (setup.filters || setup.filterOptions) {
      const r = await this.dc.setExceptionBreakpointsRequest({ filters: setup.filters ?? [], filterOptions: setup.filterOptions });
      result.filters = r.body?.breakpoints;
    }
    await this.dc.configurationDoneRequest();
    await launched;
    return result;
  }

  /** A launch that must fail: its error message. */
  async launchError(args: LaunchArgs): Promise<string> {
    try {
      await this.dc.launchRequest(args as DebugProtocol.LaunchRequestArguments);
    } catch (e) {
      return (e as Error).message;
    }
    return assert.fail(`launch ${JSON.stringify(args)} succeeded`);
  }

  /** Launch and wait for the first stop. */
  async launchToStop(args: LaunchArgs, setup: Setup = {}): Promise<DebugProtocol.StoppedEvent> {
    await this.launch(args, setup);
    return this.nextStop();
  }

  // ---- threads, stacks, variables ----

  async threads(): Promise<DebugProtocol.Thread[]> {
    return (await this.dc.threadsRequest()).body.threads;
  }

  async threadId(name: string): Promise<number> {
    const t = (await this.threads()).find((x) => x.name === name);
    assert.ok(t, `no thread '${name}'`);
    return t.id;
  }

  async stack(threadId: number): Promise<DebugProtocol.StackFrame[]> {
    return (await this.dc.stackTraceRequest({ threadId })).body.stackFrames;
  }

  async scopes(frameId: number): Promise<DebugProtocol.Scope[]> {
    return (await this.dc.scopesRequest({ frameId })).body.scopes;
  }

  /** The scope whose name starts with `prefix` (e.g. 'Virtqueue'). */
  async scope(frameId: number, prefix: string): Promise<DebugProtocol.Scope> {
    const all = await this.scopes(frameId);
    const s = all.find((x) => x.name.startsWith(prefix));
    assert.ok(s, `no scope '${prefix}…' in ${all.map((x) => x.name).join(', ')}`);
    return s;
  }

  async vars(ref: number): Promise<DebugProtocol.Variable[]> {
    assert.ok(ref > 0, 'not expandable');
    return (await this.dc.variablesRequest({ variablesReference: ref })).body.variables;
  }

  /**
   * A variable by path from a container: `['avail', 'idx']`, `['desc', '[0]', 'next']`.
   * Returns the variable and the reference of the container holding it (for setVariable).
   */
  async varAt(ref: number, names: string[]): Promise<{ v: DebugProtocol.Variable; container: number }> {
    let container = ref;
    let v: DebugProtocol.Variable | undefined;
    for (const n of names) {
      const list = await this.vars(container);
      v = list.find((x) => x.name === n);
      assert.ok(v, `no variable '${n}' among ${list.map((x) => x.name).join(', ')}`);
      if (n !== names[names.length - 1]) container = v.variablesReference;
    }
    return { v: v!, container };
  }

  async evaluate(expression: string, frameId?: number, context = 'watch'): Promise<DebugProtocol.EvaluateResponse['body']> {
    return (await this.dc.evaluateRequest({ expression, frameId, context })).body;
  }

  async state(): Promise<VirtioState> {
    return (await this.dc.customRequest('virtio/state')).body as VirtioState;
  }

  async readMemory(memoryReference: string, count: number, offset = 0): Promise<Buffer> {
    const r = await this.dc.send('readMemory', { memoryReference, count, offset } as DebugProtocol.ReadMemoryArguments) as DebugProtocol.ReadMemoryResponse;
    return Buffer.from(r.body?.data ?? '', 'base64');
  }

  async writeMemory(memoryReference: string, data: Buffer, offset = 0): Promise<DebugProtocol.WriteMemoryResponse> {
    return await this.dc.send('writeMemory', { memoryReference, data: data.toString('base64'), offset } as DebugProtocol.WriteMemoryArguments) as DebugProtocol.WriteMemoryResponse;
  }

  /** Continue and wait for the next stop. */
  async continueToStop(threadId: number): Promise<DebugProtocol.StoppedEvent> {
    await this.dc.continueRequest({ threadId });
    return this.nextStop();
  }
}

/** `virtio/state` answers the one snapshot type of DESIGN.md, as JSON. */
export type VirtioState = StateSnapshot;

/** The function name of a frame named `fn (args)`; label frames keep their text. */
export function fnName(f: DebugProtocol.StackFrame): string {
  return f.presentationHint === 'label' ? f.name : f.name.replace(/ \(.*$/s, '');
}

/** A file in a fresh temp folder (a scenario, an image); removed by `cleanupTemp` after each test. */
export function tempFile(name: string, data: string | Buffer): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'virtio-dap-'));
  const file = path.join(dir, name);
  fs.writeFileSync(file, data);
  tempDirs.push(dir);
  return file;
}

export const tempScenario = (name: string, text: string): string => tempFile(name, text);

const tempDirs: string[] = [];

export function cleanupTemp(): void {
  for (const d of tempDirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

/** The 1-based line of the first line of `file` whose text matches `re` (after `from`). */
export function lineOf(file: string, re: RegExp, from = 1): number {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  for (let i = from - 1; i < lines.length; i++) if (re.test(lines[i])) return i + 1;
  throw new Error(`no line matching ${re} in ${file}`);
}

/**
 * Sessions opened by a test, closed after it (pass or fail): call once per
 * `describe`, then `await sessions.stdio()` in each test.
 */
export function sessionPerTest(): { stdio(): Promise<Session>; server(): Promise<Session> } {
  const open: Session[] = [];
  afterEach(async () => {
    for (const s of open.splice(0)) await s.close();
    cleanupTemp();
  });
  return {
    async stdio() {
      const s = await Session.stdio();
      open.push(s);
      return s;
    },
    async server() {
      const s = await Session.server();
      open.push(s);
      return s;
    },
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
