/**
 * Run a scenario to the end, headless: what `cli.js run` does. Parses the
 * scenario (errors name file:line:col), builds the machine, runs it until
 * every thread is idle, and returns the event log, the final snapshot, each
 * request's outcome, the final bytes of every raw `buf` and the outcome of
 * every `expect`. A runtime scenario error is thrown after the run, like a
 * parse error.
 */
import { readFileSync } from 'node:fs';
import { Machine } from './machine';
import type { MachineOptions } from './options';
import { parseScenario } from './scenario/parser';
import { ScenarioError } from './scenario/errors';
import type { StateSnapshot } from './state/snapshot';
import { formatArgs } from './sim/frames';
import { frameInfo } from './state/backtrace';
import type { RequestRecord } from './scenario/interpreter';
import type { ExpectRecord } from './scenario/raw-exec';

export interface EventRecord {
  seq: number;
  thread: string;
  fn: string;
  args: string;
  depth: number;
  file: string;
  line: number;
}

export interface RunResult {
  events: EventRecord[];
  state: StateSnapshot;
  bufs: Record<string, { addr: number; hex: string }>;
  requests: RequestRecord[];
  /** Every `expect` line run, in order; a failed one carries its `file:line:col: expect failed: ...` message. */
  expects: ExpectRecord[];
}

export interface RunOutput {
  /** Receives the gdb-style text log, a line at a time. */
  text: ((line: string) => void) | null;
  collectEvents: boolean;
}

export function loadScenario(path: string) {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message;
    throw new ScenarioError(path, 1, 1, `cannot read scenario: ${why}`);
  }
  return parseScenario(text, path);
}

export function runScenarioFile(path: string, options: MachineOptions, out: RunOutput): RunResult {
  return runScenario(loadScenario(path), options, out);
}

export function runScenario(scenario: ReturnType<typeof parseScenario>, options: MachineOptions, out: RunOutput): RunResult {
  const events: EventRecord[] = [];
  const text = out.text;
  const wantLog = text !== null || out.collectEvents;
  const m = new Machine({
    options,
    scenario,
    log: wantLog
      ? (thread, frame, seq, depth) => {
          if (frame.desc.side === 'scenario') {
            const fi = frameInfo(frame, null);
            text?.(`${String(seq).padStart(6)}  ${thread.name.padEnd(9)} ${fi.file}:${fi.line}: ${fi.name}`);
            if (out.collectEvents) events.push({ seq, thread: thread.name, fn: fi.name, args: '', depth, file: fi.file, line: fi.line });
            return;
          }
          const args = formatArgs(frame);
          text?.(`${String(seq).padStart(6)}  ${thread.name.padEnd(9)} ${'  '.repeat(depth)}${frame.desc.name} (${args})`);
          if (out.collectEvents) {
            events.push({ seq, thread: thread.name, fn: frame.desc.name, args, depth, file: frame.desc.file, line: frame.desc.line });
          }
        }
      : undefined,
  });
  if (text) {
    m.guest.onRequestDone = (r) => text(`        => ${r.file}:${r.line}: ${r.statement}: ${r.status} (virtio status ${r.virtio_status ?? '-'})${r.data_preview ? `  ${r.data_preview}` : ''}`);
    m.guest.onExpect = (r) => text(`        => ${r.message ?? `${r.file}:${r.line}:${r.col}: expect ok: ${r.expr}`}`);
  }
  try {
    while (m.run() !== 'idle') {
      // No hooks are set, so a run only ends idle; the loop keeps that true if one is added.
    }
    if (m.guest.error !== null) throw m.guest.error;
    const state = m.snapshot();
    const bufs: RunResult['bufs'] = {};
    for (const [name, b] of m.guest.rawBufs) bufs[name] = { addr: b.addr, hex: m.mem.readBytes(b.addr, b.size).toString('hex') };
    if (text) {
      const d = state.device;
      text(d.broken ? `device broken: ${d.errors.join('; ')}` : `done: ${m.guest.requests.length} requests, ${state.events} events, ${(state.time_ns / 1000).toFixed(1)} µs of virtual time`);
    }
    return { events, state, bufs, requests: m.guest.requests, expects: m.guest.expects };
  } finally {
    m.close();
  }
}
