/**
 * Test helpers: build a machine from scenario text, run it, stop it at a
 * function, and read what the guest and the device left in memory.
 */
import { Machine } from '../../src/machine/machine';
import { MachineOptions, validateOptions } from '../../src/machine/options';
import { parseScenario } from '../../src/machine/scenario/parser';
import type { SimEvent } from '../../src/machine/sim/sim';
import type { EventRecord } from '../../src/machine/run';
import { formatArgs } from '../../src/machine/sim/frames';

export interface Booted {
  m: Machine;
  /** Every modelled function entered so far, in order. */
  events: EventRecord[];
}

/** A machine running `text` as its scenario, with options given as launch attributes. */
export function boot(text: string, options: Partial<MachineOptions> = {}, file = 'test.virtio'): Booted {
  const events: EventRecord[] = [];
  const m = new Machine({
    options: validateOptions(options as Record<string, unknown>),
    scenario: parseScenario(text, file),
    log: (thread, frame, seq, depth) =>
      events.push({ seq, thread: thread.name, fn: frame.desc.name, args: formatArgs(frame), depth, file: frame.desc.file, line: frame.desc.line }),
  });
  return { m, events };
}

/** Run until every thread is idle. */
export function runToIdle(m: Machine): void {
  for (let i = 0; i < 1000 && m.run() !== 'idle'; i++) {
    // Only a stop from a hook would end a run early; none is set here.
  }
}

/** Run until the next entry of function `name` (optionally in thread `thread`); the event, or null if idle first. */
export function runToFunction(m: Machine, name: string, thread?: string): SimEvent | null {
  const r = m.runUntil((ev) => ev.kind === 'enter' && ev.fn.name === name && (thread === undefined || ev.thread.name === thread));
  return r === 'stopped' ? m.stopEvent : null;
}

export function fnNames(events: readonly EventRecord[], thread?: string): string[] {
  return events.filter((e) => thread === undefined || e.thread === thread).map((e) => e.fn);
}
