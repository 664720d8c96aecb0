/**
 * The samples workspace and the editor support for `.virtio` files.
 *
 * samples/.vscode/launch.json is what the walkthrough and the end-to-end
 * tests open: every configuration is run here, in-process, with its launch
 * attributes, and each sample must show what its header comment promises
 * (the AIO path, the MMIO exit, the iothread, indirect descriptors, EVENT_IDX
 * suppression, the -ENOSPC path of a full ring).
 *
 * The TextMate grammar is checked against the real parser: every regex must
 * compile as a JavaScript RegExp (VS Code's Oniguruma takes the same subset),
 * and a small tokenizer run over the grammar must colour every keyword the
 * parser accepts (taken from the parser's own error message), every flag,
 * desc key, typed value and expression built-in, and every line of every
 * sample, so the grammar cannot silently fall behind the language. The
 * snippets must expand to scenarios that parse, and the runnable ones run.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Machine } from '../../src/machine/machine';
import { validateOptions } from '../../src/machine/options';
import { EventRecord, loadScenario, runScenario } from '../../src/machine/run';
import type { RequestRecord } from '../../src/machine/scenario/interpreter';
import type { ExpectRecord } from '../../src/machine/scenario/raw-exec';
import { parseScenario } from '../../src/machine/scenario/parser';
import { ScenarioError } from '../../src/machine/scenario/errors';
import { RAW_STATEMENTS } from '../../src/machine/scenario/raw';
import { BUILTINS } from '../../src/machine/expr/ast';
import { formatArgs } from '../../src/machine/sim/frames';
import type { SimEvent } from '../../src/machine/sim/sim';
import type { StateSnapshot } from '../../src/machine/state/snapshot';
import { VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT } from '../../src/machine/spec/virtio';

const ROOT = path.resolve(__dirname, '../../..');
const SAMPLES = path.join(ROOT, 'samples');
const LAUNCH_JSON = path.join(SAMPLES, '.vscode', 'launch.json');
const GRAMMAR = path.join(ROOT, 'syntaxes', 'virtio.tmLanguage.json');
const LANGUAGE_CONFIGURATION = path.join(ROOT, 'language-configuration.json');
const SNIPPETS = path.join(ROOT, 'snippets', 'virtio.json');

/** virtio-mmio QueueNotify (VIRTIO 1.2 §4.2.2), as virtio_mmio_write's offset argument prints it. */
const QUEUE_NOTIFY = 0x050;

// ---------------------------------------------------------------- launch.json and runs

interface LaunchConfig {
  type: string;
  request: string;
  name: string;
  scenario: string;
  [attr: string]: unknown;
}

function readJson<T>(file: string): T {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
}

const launch = readJson<{ version: string; configurations: LaunchConfig[] }>(LAUNCH_JSON);

function scenarioPath(c: LaunchConfig): string {
  return c.scenario.replace('${workspaceFolder}', SAMPLES);
}

/** The configuration's machine attributes: everything but type, request and name (scenario included). */
function attributes(c: LaunchConfig): Record<string, unknown> {
  const { type: _type, request: _request, name: _name, ...attrs } = c;
  return { ...attrs, scenario: scenarioPath(c) };
}

interface Run {
  events: EventRecord[];
  /** How often each event point was reached, by `function@point`. */
  points: Map<string, number>;
  state: StateSnapshot;
  requests: RequestRecord[];
  expects: ExpectRecord[];
  /** What `atStop` returned at each stop, in order. */
  stops: unknown[];
}

/**
 * Runs a configuration's scenario with its attributes until every thread is
 * idle, logging every function entered and counting every event point. With
 * `stopAt`, the machine stops at each event it accepts and `atStop` looks at
 * the machine there (a mid-run stop, as the debugger would make).
 */
function runConfig(c: LaunchConfig, stopAt?: (ev: SimEvent) => boolean, atStop?: (m: Machine) => unknown): Run {
  const options = validateOptions(attributes(c), true);
  const events: EventRecord[] = [];
  const points = new Map<string, number>();
  const stops: unknown[] = [];
  const m = new Machine({
    options,
    scenario: loadScenario(options.scenario!),
    log: (thread, frame, seq, depth) =>
      events.push({ seq, thread: thread.name, fn: frame.desc.name, args: formatArgs(frame), depth, file: frame.desc.file, line: frame.desc.line }),
  });
  try {
    const watch = (ev: SimEvent): boolean => {
      if (ev.kind === 'point' && ev.point) {
        const key = `${ev.fn.name}@${ev.point.name}`;
        points.set(key, (points.get(key) ?? 0) + 1);
      }
      return stopAt !== undefined && stopAt(ev);
    };
    let outcome = m.runUntil(watch);
    for (let guard = 0; outcome !== 'idle'; guard++) {
      assert.ok(guard < 100_000, `${c.name}: the run does not settle`);
      assert.equal(outcome, 'stopped', `${c.name}: unexpected run outcome`);
      stops.push(atStop?.(m));
      outcome = m.runUntil(watch);
    }
    if (m.guest.error !== null) throw m.guest.error;
    return { events, points, state: m.snapshot(), requests: [...m.guest.requests], expects: [...m.guest.expects], stops };
  } finally {
    m.close();
  }
}

function count(events: readonly EventRecord[], fn: string, thread?: string): number {
  return events.filter((e) => e.fn === fn && (thread === undefined || e.thread === thread)).length;
}

function threadsOf(events: readonly EventRecord[], fn: string): Set<string> {
  return new Set(events.filter((e) => e.fn === fn).map((e) => e.thread));
}

function configFor(file: string, extra: (c: LaunchConfig) => boolean = () => true): LaunchConfig {
  const c = launch.configurations.find((x) => path.resolve(scenarioPath(x)) === path.join(SAMPLES, file) && extra(x));
  assert.ok(c, `launch.json has a configuration for ${file}`);
  return c;
}

/** The head the device is about to pop, at the read_head point of virtqueue_split_pop. */
function headBeingPopped(m: Machine): { head: number; len: number; flags: number } {
  const q = m.snapshot().queues[0];
  const head = q.avail.ring[q.last_avail_idx % q.num];
  return { head, len: q.desc[head].len, flags: q.desc[head].flags };
}

const atReadHead = (ev: SimEvent): boolean => ev.kind === 'point' && ev.fn.name === 'virtqueue_split_pop' && ev.point?.name === 'read_head';

describe('samples workspace', () => {
  describe('launch.json', () => {
    it('is plain JSON with virtio launch configurations, each naming a scenario that exists', () => {
      assert.equal(launch.version, '0.2.0');
      assert.ok(launch.configurations.length >= 10);
      const names = new Set<string>();
      for (const c of launch.configurations) {
        assert.equal(c.type, 'virtio', c.name);
        assert.equal(c.request, 'launch', c.name);
        assert.ok(typeof c.name === 'string' && c.name.length > 0);
        assert.ok(!names.has(c.name), `duplicate name ${c.name}`);
        names.add(c.name);
        assert.ok(c.scenario.startsWith('${workspaceFolder}/'), `${c.name}: scenario relative to the workspace`);
        assert.ok(fs.existsSync(scenarioPath(c)), `${c.name}: ${c.scenario} exists`);
        // Every attribute must be one the machine knows, with a valid value (strict: no typos).
        assert.doesNotThrow(() => validateOptions(attributes(c), true), c.name);
      }
      assert.ok(!('compounds' in launch), 'no compounds');
    });

    it('starts with "Default path": the default scenario, no other attributes', () => {
      const first = launch.configurations[0];
      assert.deepEqual(first, { type: 'virtio', request: 'launch', name: 'Default path', scenario: '${workspaceFolder}/default.virtio' });
    });

    it('has a configuration for every top-level sample, and the samples the walkthrough names exist', () => {
      const top = fs.readdirSync(SAMPLES).filter((f) => f.endsWith('.virtio')).sort();
      for (const f of ['default', 'ioeventfd-off', 'iothread', 'aio-threads', 'aio-io_uring', 'aio-native', 'indirect', 'event-idx', 'full-ring']) {
        assert.ok(top.includes(`${f}.virtio`), `samples/${f}.virtio`);
      }
      for (const f of top) configFor(f);
      assert.ok(launch.configurations.some((c) => c.scenario.includes('/errors/')), 'some spec-violation samples');
      assert.ok(launch.configurations.some((c) => c.scenario.includes('/raw/')), 'some raw samples');
    });

    it('every top-level sample starts with a header comment that names its launch attributes', () => {
      for (const f of fs.readdirSync(SAMPLES).filter((x) => x.endsWith('.virtio'))) {
        const text = fs.readFileSync(path.join(SAMPLES, f), 'utf8');
        assert.ok(text.startsWith('# '), `${f} starts with a comment`);
        for (const c of launch.configurations.filter((x) => path.basename(x.scenario) === f && !x.scenario.includes('/errors/') && !x.scenario.includes('/raw/'))) {
          for (const [k, v] of Object.entries(attributes(c))) {
            if (k === 'scenario') continue;
            assert.ok(text.includes(`"${k}": ${JSON.stringify(v)}`), `${f}: the header mentions "${k}": ${JSON.stringify(v)} (${c.name})`);
          }
        }
      }
    });
  });

  describe('every configuration runs', () => {
    for (const c of launch.configurations) {
      it(`${c.name} (${c.scenario.replace('${workspaceFolder}/', '')})`, () => {
        const r = runConfig(c);
        for (const e of r.expects) assert.ok(e.ok, e.message ?? '');
        const q = r.state.queues[0];
        if (c.scenario.includes('/errors/')) {
          // A spec violation is an outcome: one side saw it and said so.
          assert.ok(r.state.device.broken || q.driver?.broken, `${c.name}: the device or the driver reports the violation`);
          assert.ok(r.expects.length > 0, `${c.name}: the sample checks itself`);
        } else {
          assert.equal(r.state.device.broken, false, `${c.name}: ${r.state.device.errors.join('; ')}`);
          assert.equal(q.driver?.broken ?? false, false);
          for (const req of r.requests) assert.equal(req.status, 'BLK_STS_OK', `${c.name}: ${req.file}:${req.line}: ${req.statement}`);
          assert.equal(q.inuse, 0, 'nothing left in flight');
          assert.equal(q.used.idx, q.avail.idx, 'every published request came back');
        }
      });
    }
  });

  describe('each sample shows what its header says', () => {
    const aio: [string, string, string[], string[]][] = [
      // file, aio, functions that must appear, functions that must not
      ['aio-io_uring.virtio', 'io_uring', ['luring_co_submit', 'luring_do_submit', 'luring_io_unplug', 'luring_process_completions'], ['laio_co_submit', 'thread_pool_submit_co']],
      ['aio-threads.virtio', 'threads', ['raw_thread_pool_submit', 'thread_pool_submit_co', 'worker_thread', 'handle_aiocb_rw', 'thread_pool_completion_bh'], ['luring_co_submit', 'laio_co_submit']],
      ['aio-native.virtio', 'native', ['laio_co_submit', 'laio_do_submit', 'laio_io_unplug', 'qemu_laio_completion_cb'], ['luring_co_submit']],
    ];
    for (const [file, mode, present, absent] of aio) {
      it(`${file}: aio=${mode} goes through ${present[0]}`, () => {
        const c = configFor(file);
        assert.equal(c.aio, mode);
        const r = runConfig(c);
        for (const fn of present) assert.ok(count(r.events, fn) > 0, `${fn} in the events`);
        for (const fn of absent) assert.equal(count(r.events, fn), 0, `no ${fn}`);
        if (mode === 'threads') {
          assert.ok([...threadsOf(r.events, 'handle_aiocb_rw')].every((t) => t.startsWith('worker')), 'preadv/pwritev on worker threads');
          assert.ok(threadsOf(r.events, 'handle_aiocb_rw').size >= 2, 'the batch keeps two workers busy');
        }
        if (mode === 'native') {
          // Linux AIO has no fdatasync: the flush goes to the thread pool.
          assert.equal(count(r.events, 'handle_aiocb_flush'), 1);
          assert.equal(count(r.events, 'handle_aiocb_rw'), 0);
        }
        if (mode === 'io_uring') {
          // Every request goes through io_uring (the flush too, as IORING_OP_FSYNC), but the two
          // adjacent reads of the batch are merged by virtio_blk_submit_multireq into one SQE.
          assert.ok(count(r.events, 'virtio_blk_submit_multireq') > 0);
          assert.ok(count(r.events, 'luring_co_submit') < r.requests.length, 'a merged submission');
          assert.equal(count(r.events, 'handle_aiocb_flush'), 0, 'no thread pool at all');
        }
      });
    }

    it('ioeventfd-off.virtio: the kick is an MMIO exit handled on the vCPU thread, no ioeventfd', () => {
      const c = configFor('ioeventfd-off.virtio');
      assert.equal(c.ioeventfd, false);
      const r = runConfig(c);
      assert.equal(count(r.events, 'ioeventfd_write'), 0, 'no ioeventfd event');
      assert.equal(count(r.events, 'virtio_queue_host_notifier_read'), 0);
      const kicks = count(r.events, 'vm_notify');
      assert.ok(kicks > 0);
      const notifyWrites = r.events.filter((e) => e.fn === 'virtio_mmio_write' && new RegExp(`\\boffset=${QUEUE_NOTIFY}\\b`).test(e.args));
      assert.equal(notifyWrites.length, kicks, 'every kick is a virtio_mmio_write of QueueNotify');
      assert.ok(notifyWrites.every((e) => e.thread === 'vCPU 0'));
      assert.equal(count(r.events, 'virtio_queue_notify', 'vCPU 0'), kicks, 'virtio_queue_notify from the MMIO write');
      assert.deepEqual([...threadsOf(r.events, 'virtio_blk_handle_output')], ['vCPU 0'], 'handle_output runs in the vCPU thread');
      assert.equal(count(r.events, 'virtio_notify_irqfd'), 0, 'completions through virtio_notify, not the irqfd');
      assert.ok(count(r.events, 'virtio_notify') > 0);
      // The default path of the same requests does use the ioeventfd: the attribute is what changed.
      const dflt = runConfig({ ...c, ioeventfd: true });
      assert.equal(count(dflt.events, 'ioeventfd_write'), count(dflt.events, 'vm_notify'));
      assert.equal(count(dflt.events, 'virtio_queue_notify'), 0);
    });

    it('iothread.virtio: handle_output runs in iothread0, not the main loop', () => {
      const c = configFor('iothread.virtio');
      assert.equal(c.iothread, true);
      const r = runConfig(c);
      assert.ok(count(r.events, 'virtio_blk_handle_output') > 0);
      assert.deepEqual([...threadsOf(r.events, 'virtio_blk_handle_output')], ['iothread0']);
      assert.deepEqual([...threadsOf(r.events, 'virtqueue_pop')], ['iothread0']);
      assert.ok([...threadsOf(r.events, 'virtio_notify_irqfd')].every((t) => t === 'iothread0'));
      assert.ok(r.state.threads.some((t) => t.name === 'iothread0'));
      assert.equal(count(r.events, 'virtio_blk_handle_output', 'main-loop'), 0);
    });

    it('indirect.virtio: every request is one ring descriptor with INDIRECT; with indirectDesc off, none is', () => {
      const on = runConfig(configFor('indirect.virtio', (c) => c.indirectDesc === undefined), atReadHead, headBeingPopped);
      const heads = on.stops as ReturnType<typeof headBeingPopped>[];
      assert.equal(heads.length, on.requests.length, 'one pop per request');
      for (const h of heads) {
        assert.ok(h.flags & VRING_DESC_F_INDIRECT, `head ${h.head} has INDIRECT (flags ${h.flags})`);
        assert.ok(h.len >= 32 && h.len % 16 === 0, `a table of whole descriptors, len ${h.len}`);
      }
      assert.ok(heads.some((h) => h.len === 48), 'a read: outhdr, data, status');
      assert.ok(heads.some((h) => h.len === 32), 'a flush: outhdr, status');

      const off = runConfig(configFor('indirect.virtio', (c) => c.indirectDesc === false), atReadHead, headBeingPopped);
      const direct = off.stops as ReturnType<typeof headBeingPopped>[];
      assert.equal(direct.length, off.requests.length);
      for (const h of direct) {
        assert.equal(h.flags & VRING_DESC_F_INDIRECT, 0, `head ${h.head} is a direct chain`);
        assert.ok(h.flags & VRING_DESC_F_NEXT, 'the head continues the chain');
      }
    });

    it('event-idx.virtio: one kick for the batch, and far fewer interrupts than completions', () => {
      const c = configFor('event-idx.virtio', (x) => x.eventIdx === undefined);
      const r = runConfig(c);
      const requests = r.requests.length;
      assert.ok(requests >= 32);
      const kicks = count(r.events, 'vm_notify');
      const interrupts = r.points.get('virtio_notify_irqfd@irqfd') ?? 0;
      assert.ok(kicks < requests, `${kicks} kicks for ${requests} requests`);
      // EVENT_IDX: virtio_should_notify decides once per completion, and mostly says no.
      assert.equal(count(r.events, 'virtio_should_notify'), requests, 'virtio_should_notify for every completion');
      assert.ok(interrupts > 0 && interrupts * 4 < requests, `${interrupts} interrupts for ${requests} completions`);
      assert.equal(count(r.events, 'vring_interrupt'), interrupts, 'the guest takes each interrupt that went out');

      // With EVENT_IDX off the dataplane batches instead (notify_guest_bh): few decisions at all.
      const off = runConfig(configFor('event-idx.virtio', (x) => x.eventIdx === false));
      assert.ok(count(off.events, 'notify_guest_bh') > 0);
      assert.ok(count(off.events, 'virtio_should_notify') < requests);
    });

    it('full-ring.virtio: queueSize 16 without indirect hits -ENOSPC, stops the hw queue and restarts it', () => {
      const c = configFor('full-ring.virtio');
      assert.equal(c.queueSize, 16);
      assert.equal(c.indirectDesc, false);
      // Stop where virtio_queue_rq handles -ENOSPC (the only virtqueue_kick here) and look at the ring.
      const r = runConfig(c, (ev) => ev.kind === 'enter' && ev.fn.name === 'virtqueue_kick', (m) => m.snapshot().queues[0].driver!.num_free);
      const freeAtEnospc = r.stops as number[];
      assert.ok(freeAtEnospc.length > 0, 'the -ENOSPC path runs (virtio_queue_rq → virtqueue_kick)');
      for (const free of freeAtEnospc) assert.ok(free < 3, `a read needs 3 descriptors; ${free} free`);
      const kickFrames = r.events.filter((e) => e.fn === 'virtqueue_kick');
      for (const k of kickFrames) {
        const caller = [...r.events.slice(0, r.events.indexOf(k))].reverse().find((e) => e.thread === k.thread && e.depth < k.depth);
        assert.equal(caller?.fn, 'virtio_queue_rq', 'virtqueue_kick from virtio_queue_rq');
      }
      // Each -ENOSPC request is put back and dispatched again after the restart.
      assert.equal(count(r.events, 'virtio_queue_rq'), r.requests.length + freeAtEnospc.length);
      assert.ok(count(r.events, 'blk_mq_start_stopped_hw_queues') > 0);
      assert.equal(r.requests.length, 16);
      assert.ok(r.requests.every((q) => q.status === 'BLK_STS_OK'));
      assert.equal(r.state.queues[0].driver!.num_free, 16, 'every descriptor back on the free list');
      // With indirect descriptors (the default) the tags run out first: no -ENOSPC.
      const indirect = runConfig({ ...c, indirectDesc: true });
      assert.equal(count(indirect.events, 'virtqueue_kick'), 0);
    });
  });
});

// ---------------------------------------------------------------- the grammar

type Captures = Record<string, { name?: string }>;
interface Rule {
  include?: string;
  match?: string;
  begin?: string;
  end?: string;
  name?: string;
  contentName?: string;
  captures?: Captures;
  beginCaptures?: Captures;
  endCaptures?: Captures;
  patterns?: Rule[];
  comment?: string;
}
interface Grammar {
  scopeName: string;
  patterns: Rule[];
  repository: Record<string, Rule>;
}

const grammar = readJson<Grammar>(GRAMMAR);

function* allRules(rules: readonly Rule[]): Generator<Rule> {
  for (const r of rules) {
    yield r;
    if (r.patterns) yield* allRules(r.patterns);
  }
}

function expand(rules: readonly Rule[]): Rule[] {
  return rules.flatMap((r) => {
    if (r.include !== undefined) {
      assert.ok(r.include.startsWith('#'), `include ${r.include}`);
      const target = grammar.repository[r.include.slice(1)];
      assert.ok(target, `repository entry ${r.include}`);
      return expand([target]);
    }
    if (r.match === undefined && r.begin === undefined) return expand(r.patterns ?? []);
    return [r];
  });
}

/**
 * A small TextMate tokenizer for one line: at each position the earliest
 * match wins (the open region's end first on a tie, then pattern order), as
 * in vscode-textmate. Returns the scopes of every character.
 */
function tokenize(line: string): string[][] {
  const scopes: string[][] = Array.from({ length: line.length }, () => [grammar.scopeName]);
  const paint = (from: number, to: number, name: string | undefined): void => {
    if (!name) return;
    for (let i = from; i < to; i++) scopes[i].push(...name.split(' '));
  };
  const paintCaptures = (m: RegExpExecArray, caps: Captures | undefined): void => {
    for (const [k, c] of Object.entries(caps ?? {})) {
      const span = m.indices?.[Number(k)];
      if (span) paint(span[0], span[1], c.name);
    }
  };
  const exec = (src: string, at: number): RegExpExecArray | null => {
    const re = new RegExp(src, 'dg');
    re.lastIndex = at;
    return re.exec(line);
  };
  const stack: { rule: Rule; start: number; contentStart: number }[] = [];
  let pos = 0;
  for (let guard = 0; pos <= line.length; guard++) {
    assert.ok(guard < 10_000, `tokenizer loops on ${JSON.stringify(line)}`);
    const top = stack[stack.length - 1];
    let best: { m: RegExpExecArray; rule: Rule | null } | null = null;
    if (top) {
      const m = exec(top.rule.end!, pos);
      if (m) best = { m, rule: null };
    }
    for (const r of expand(top ? top.rule.patterns ?? [] : grammar.patterns)) {
      const m = exec((r.match ?? r.begin)!, pos);
      if (m && (best === null || m.index < best.m.index)) best = { m, rule: r };
    }
    if (best === null) break;
    const { m, rule } = best;
    const end = m.index + m[0].length;
    if (rule === null) {
      stack.pop();
      paint(top!.start, end, top!.rule.name);
      paint(top!.contentStart, m.index, top!.rule.contentName);
      paintCaptures(m, top!.rule.endCaptures);
      if (end === line.length) break;
      pos = end;
    } else if (rule.begin !== undefined) {
      paintCaptures(m, rule.beginCaptures ?? rule.captures);
      stack.push({ rule, start: m.index, contentStart: end });
      pos = end;
    } else {
      paint(m.index, end, rule.name);
      paintCaptures(m, rule.captures);
      pos = end > m.index ? end : end + 1;
    }
  }
  for (const open of stack) {
    paint(open.start, line.length, open.rule.name);
    paint(open.contentStart, line.length, open.rule.contentName);
  }
  return scopes;
}

/** The scopes of the first character of `part` in `line` (the `nth` occurrence). */
function scopesOf(line: string, part: string, nth = 0): string[] {
  let at = -1;
  for (let i = 0; i <= nth; i++) at = line.indexOf(part, at + 1);
  assert.ok(at >= 0, `${JSON.stringify(part)} in ${JSON.stringify(line)}`);
  return tokenize(line)[at];
}

/** Does every character of `part` carry a scope starting with `prefix`? */
function hasScope(line: string, part: string, prefix: string): boolean {
  const at = line.indexOf(part);
  assert.ok(at >= 0, `${JSON.stringify(part)} in ${JSON.stringify(line)}`);
  const all = tokenize(line);
  for (let i = at; i < at + part.length; i++) if (!all[i].some((s) => s === prefix || s.startsWith(prefix + '.'))) return false;
  return true;
}

/** The parser's own list of statement keywords, from its "unknown statement" error. */
function parserKeywords(): string[] {
  try {
    parseScenario('no-such-statement\n', 'k.virtio');
  } catch (e) {
    assert.ok(e instanceof ScenarioError, String(e));
    const m = /expected one of: ([^)]*)\)/.exec(e.reason);
    assert.ok(m, e.reason);
    return m[1].split(', ');
  }
  return assert.fail('an unknown statement must not parse');
}

/** The message of the ScenarioError that parsing `text` throws. */
function parseError(text: string): string {
  try {
    parseScenario(text, 'k.virtio');
  } catch (e) {
    assert.ok(e instanceof ScenarioError, String(e));
    return e.reason;
  }
  return assert.fail(`${JSON.stringify(text)} must not parse`);
}

/** Constructs of Oniguruma that JavaScript lacks or reads differently. */
const ONIGURUMA_ONLY = [
  /\\[hHAzZGK]/, // \h hex digit, \A \z \Z anchors, \G, \K
  /[*+?}]\+/, // possessive quantifiers
  /\(\?>/, // atomic groups
  /\(\?[imx-]+[):]/, // inline options
  /\\[pP]\{/, // Unicode properties spelled differently
  /\\x\{/, // \x{HHHH}
  /\(\?~/, // absent operator
];

function regexSources(): { where: string; src: string }[] {
  const out: { where: string; src: string }[] = [];
  const groups: [string, Rule[]][] = [['patterns', grammar.patterns], ...Object.entries(grammar.repository).map(([k, r]): [string, Rule[]] => [k, [r]])];
  for (const [where, rules] of groups) {
    for (const r of allRules(rules)) {
      for (const key of ['match', 'begin', 'end'] as const) {
        const src = r[key];
        if (src !== undefined) out.push({ where: `${where}.${key}`, src });
      }
    }
  }
  return out;
}

describe('virtio TextMate grammar', () => {
  it('parses, is source.virtio, and every regex compiles as a JavaScript RegExp without Oniguruma-only syntax', () => {
    assert.equal(grammar.scopeName, 'source.virtio');
    const sources = regexSources();
    assert.ok(sources.length > 20);
    for (const { where, src } of sources) {
      assert.doesNotThrow(() => new RegExp(src, 'dg'), `${where}: ${src}`);
      for (const bad of ONIGURUMA_ONLY) assert.ok(!bad.test(src), `${where}: ${src} uses ${bad}`);
    }
    for (const r of allRules(grammar.patterns)) {
      if (r.include) assert.ok(grammar.repository[r.include.slice(1)], `include ${r.include}`);
    }
    for (const r of Object.values(grammar.repository).flatMap((x) => [...allRules([x])])) {
      if (r.include) assert.ok(grammar.repository[r.include.slice(1)], `include ${r.include}`);
      if (r.begin !== undefined) assert.ok(r.end !== undefined, `begin ${r.begin} has an end`);
    }
  });

  it('colours every statement keyword the parser accepts, and only as a whole word at the start of a line', () => {
    const keywords = parserKeywords();
    for (const k of ['read', 'write', 'flush', 'get-id', 'discard', 'write-zeroes', 'batch', 'wait', ...RAW_STATEMENTS.keys()]) {
      assert.ok(keywords.includes(k), `the parser's list has ${k}`);
    }
    for (const k of keywords) {
      for (const line of [`${k} 1`, `  ${k}`, `\t${k} # c`, `${k}{`]) {
        assert.ok(hasScope(line, k, 'keyword.control'), `${JSON.stringify(line)}: ${k} is keyword.control`);
        const after = line.indexOf(k) + k.length;
        if (after < line.length) assert.ok(!tokenize(line)[after].some((s) => s.startsWith('keyword.control')), `${JSON.stringify(line)}: only ${k}`);
      }
      assert.ok(!hasScope(`${k}x 1`, `${k}x`, 'keyword.control'), `${k}x is not a keyword`);
      assert.ok(!hasScope(`x ${k} 1`, k, 'keyword.control'), `${k} after the first word is not a keyword`);
    }
  });

  it('colours flags, desc keys, typed values, hex bytes, strings, numbers and comments as the raw parser reads them', () => {
    const flagHint = parseError('desc 0 flags=bogus\n');
    const flags = /\(([A-Z, ]+) or a number\)/.exec(flagHint)![1].split(', ');
    assert.deepEqual(flags.sort(), ['INDIRECT', 'NEXT', 'WRITE']);
    const keys = /\(known: ([a-z, ]+)\)/.exec(parseError('desc 0 bogus=1\n'))![1].split(', ');
    assert.ok(keys.includes('addr') && keys.includes('table'));
    const typed = [...parseError('mem 0 bogus\n').matchAll(/\b(\w+):N\b/g)].map((m) => m[1]);
    assert.deepEqual(typed, ['u8', 'le16', 'le32', 'le64']);

    const desc = `desc 0 ${keys.map((k) => `${k}=${k === 'flags' ? flags.join('|') : k === 'addr' || k === 'table' ? 'tbl+16' : '0x10'}`).join(' ')}   # a comment`;
    for (const k of keys) assert.ok(hasScope(desc, `${k}=`.slice(0, k.length), 'variable.parameter'), `${k}= in ${desc}`);
    for (const f of flags) assert.ok(hasScope(desc, f, 'constant.language'), f);
    assert.ok(hasScope(desc, '|', 'keyword.operator'));
    assert.ok(hasScope(desc, '+', 'keyword.operator'));
    assert.ok(hasScope(desc, '0x10', 'constant.numeric'));
    assert.ok(hasScope(desc, '# a comment', 'comment.line.number-sign'));

    const mem = `mem hdr+4 ${typed.map((t, i) => `${t}:${i === 3 ? '0xff' : i}`).join(' ')} "a\\x41\\n\\"#" hex:00ff`;
    for (const t of typed) assert.ok(hasScope(mem, t, 'storage.type'), t);
    assert.ok(hasScope(mem, '0xff', 'constant.numeric'));
    assert.ok(hasScope(mem, '"a\\x41\\n\\"#"', 'string.quoted.double'), 'the string, with a # inside it');
    assert.ok(hasScope(mem, '\\x41', 'constant.character.escape'));
    assert.ok(hasScope(mem, '\\"', 'constant.character.escape'));
    assert.ok(!scopesOf(mem, '#').some((s) => s.startsWith('comment')), 'a # in a string is no comment');
    assert.ok(hasScope(mem, 'hex', 'storage.type'));
    assert.ok(hasScope(mem, '00ff', 'constant.numeric'));
    assert.ok(hasScope('write 0 "bad \\q"', '\\q', 'invalid.illegal'), 'an escape the lexer refuses');
    assert.ok(hasScope('write 0 hex:0g', 'g', 'invalid.illegal'));
    assert.ok(hasScope('read 0x10 4096', '0x10', 'constant.numeric'));
    assert.ok(hasScope('read 0 4096#c', '4096', 'constant.numeric'));
    assert.ok(hasScope('read 0 4096#c', '#c', 'comment.line.number-sign'));
    assert.ok(hasScope('buf data 512', 'data', 'entity.name'));
    assert.ok(hasScope('mem vring_avail+4 le16:1', 'vring_avail', 'variable.language'));
    assert.ok(hasScope('write-zeroes 0 8 unmap', 'unmap', 'keyword.other'));
    assert.ok(hasScope('batch {', '{', 'punctuation.section.block'));
    assert.ok(hasScope('}', '}', 'punctuation.section.block'));
  });

  it('colours an expect expression: built-ins, names, operators, constants, strings, the comment after it', () => {
    const line = `expect ${BUILTINS.map((b) => `${b}(x)`).join(' + ')} == 0x1 && !device.broken || a[1] != "s\\"#" ? true : null # why`;
    assert.ok(hasScope(line, 'expect', 'keyword.control'));
    for (const b of BUILTINS) assert.ok(hasScope(line, `${b}(`.slice(0, b.length), 'entity.name.function'), b);
    for (const op of ['&&', '||', '==', '!=', '!', '+', '?', ':']) assert.ok(hasScope(line, op, 'keyword.operator'), op);
    assert.ok(hasScope(line, 'device', 'variable'));
    assert.ok(hasScope(line, 'broken', 'variable.other.property'));
    assert.ok(hasScope(line, 'true', 'constant.language'));
    assert.ok(hasScope(line, 'null', 'constant.language'));
    assert.ok(hasScope(line, '0x1', 'constant.numeric'));
    assert.ok(hasScope(line, '"s\\"#"', 'string.quoted.double'));
    assert.ok(hasScope(line, '# why', 'comment.line.number-sign'));
    assert.ok(!hasScope(line, '"s\\"#"', 'comment'), 'a # in the string is no comment');
    assert.ok(hasScope('expect a = 1', '=', 'invalid.illegal'), "'=' is refused by the expression parser");
  });

  it('colours every line of every sample: keywords first, no invalid token', () => {
    const files: string[] = [];
    const walk = (dir: string): void => {
      for (const f of fs.readdirSync(dir, { withFileTypes: true })) {
        if (f.isDirectory()) walk(path.join(dir, f.name));
        else if (f.name.endsWith('.virtio')) files.push(path.join(dir, f.name));
      }
    };
    walk(SAMPLES);
    assert.ok(files.length > 20);
    for (const file of files) {
      const text = fs.readFileSync(file, 'utf8');
      // Which lines hold a statement, and what the parser says they start with.
      const statements = new Map<number, string>();
      const visit = (st: { loc: { line: number }; kind: string; body?: { loc: { line: number }; kind: string }[] }): void => {
        statements.set(st.loc.line, st.kind === 'batch' ? 'batch' : st.kind);
        for (const b of st.body ?? []) visit(b);
      };
      for (const st of parseScenario(text, file).statements) visit(st);
      text.split(/\r?\n/).forEach((line, i) => {
        const where = `${path.relative(ROOT, file)}:${i + 1}`;
        const scopes = tokenize(line);
        scopes.forEach((s, col) => assert.ok(!s.some((x) => x.startsWith('invalid')), `${where}:${col + 1}: invalid in ${JSON.stringify(line)}`));
        const kind = statements.get(i + 1);
        if (kind !== undefined) {
          const col = line.search(/\S/);
          assert.ok(scopes[col].some((s) => s.startsWith('keyword.control')), `${where}: ${kind} is a keyword`);
        } else if (line.trim().startsWith('#')) {
          assert.ok(scopes[line.indexOf('#')].includes('comment.line.number-sign.virtio'), `${where}: comment`);
        }
      });
    }
  });
});

// ---------------------------------------------------------------- language configuration and snippets

describe('virtio language configuration', () => {
  const conf = readJson<{
    comments: { lineComment: string };
    brackets: [string, string][];
    autoClosingPairs: { open: string; close: string }[];
    surroundingPairs: [string, string][];
    indentationRules: { increaseIndentPattern: string; decreaseIndentPattern: string };
    wordPattern: string;
  }>(LANGUAGE_CONFIGURATION);

  it('has # comments, the brackets, and indents the body of a batch', () => {
    assert.equal(conf.comments.lineComment, '#');
    assert.deepEqual(conf.brackets, [['{', '}'], ['[', ']'], ['(', ')']]);
    for (const [open, close] of conf.brackets) {
      assert.ok(conf.autoClosingPairs.some((p) => p.open === open && p.close === close), `auto-closes ${open}`);
      assert.ok(conf.surroundingPairs.some((p) => p[0] === open && p[1] === close), `surrounds with ${open}`);
    }
    assert.ok(conf.autoClosingPairs.some((p) => p.open === '"'));
    const inc = new RegExp(conf.indentationRules.increaseIndentPattern);
    const dec = new RegExp(conf.indentationRules.decreaseIndentPattern);
    for (const l of ['batch {', '  batch {   # three reads']) assert.ok(inc.test(l), l);
    for (const l of ['read 0 512', 'batch', '# batch {']) assert.ok(!inc.test(l), l);
    assert.ok(dec.test('  }'));
    assert.ok(!dec.test('read 0 512'));
    const word = new RegExp(`^(?:${conf.wordPattern})$`);
    for (const w of ['get-id', 'write-zeroes', 'avail-idx', 'vring_used', '0x1f', '4096']) assert.ok(word.test(w), w);
  });
});

describe('virtio snippets', () => {
  const snippets = readJson<Record<string, { prefix: string; body: string[]; description: string }>>(SNIPPETS);

  /** Every way to fill the snippet's choices (one choice varied at a time), placeholders at their defaults. */
  function expansions(body: string): string[] {
    const choice = /\$\{(\d+)\|((?:[^|\\]|\\.)*)\|\}/g;
    const options = [...body.matchAll(choice)].map((m) => m[2].split(/(?<!\\),/).map((o) => o.replace(/\\(.)/g, '$1')));
    const fill = (pick: number[]): string => {
      let n = 0;
      let text = body.replace(choice, () => options[n][pick[n++]]);
      for (let i = 0; i < 5; i++) text = text.replace(/\$\{\d+:([^{}]*)\}/g, '$1');
      return text.replace(/\$\{\d+\}|\$\d+/g, '');
    };
    const out = [fill(options.map(() => 0))];
    options.forEach((opts, i) => opts.forEach((_, j) => out.push(fill(options.map((__, k) => (k === i ? j : 0))))));
    return out;
  }

  it('has the useful ones, each with a prefix and a description', () => {
    const prefixes = Object.values(snippets).map((s) => s.prefix);
    for (const p of ['read', 'write', 'batch', 'raw', 'expect']) assert.ok(prefixes.includes(p), p);
    for (const [name, s] of Object.entries(snippets)) {
      assert.ok(s.description.length > 0 && s.body.length > 0, name);
    }
  });

  it('expands to scenarios that parse, and the complete ones run cleanly', () => {
    for (const [name, s] of Object.entries(snippets)) {
      for (const text of expansions(s.body.join('\n'))) {
        // A lone `desc` line refers to a buf the surrounding scenario defines.
        const prelude = /\baddr=hdr\b/.test(text) && !/\bbuf hdr\b/.test(text) ? 'buf hdr 16\n' : '';
        const scenario = prelude + text + '\n';
        let parsed;
        try {
          parsed = parseScenario(scenario, `${name}.virtio`);
        } catch (e) {
          assert.fail(`snippet "${name}" expands to a scenario that does not parse:\n${scenario}\n${String(e)}`);
        }
        for (const line of text.split('\n')) {
          tokenize(line).forEach((sc) => assert.ok(!sc.some((x) => x.startsWith('invalid')), `${name}: ${line}`));
        }
        if (prelude || !/\bwait\b/.test(text)) continue;
        const r = runScenario(parsed, validateOptions({}), { text: null, collectEvents: false });
        for (const e of r.expects) assert.ok(e.ok, `${name}: ${e.message}`);
        assert.equal(r.state.device.broken, false, `${name}: ${r.state.device.errors.join('; ')}`);
        assert.ok(r.requests.every((q) => q.status === 'BLK_STS_OK'), name);
      }
    }
  });
});
