/**
 * The simulation core on its own: scheduling order, timers, stops that do
 * not change the run, frame bookkeeping, per-machine breakpoint arming, and
 * QEMU's coroutine semantics (enter sets the caller, yield returns to it).
 */
import assert from 'node:assert/strict';
import { Co, STOP, Sim, WaitQueue, activate, block, enter, leave, sleep } from '../../src/machine/sim/sim';
import { functionNamed } from '../../src/machine/sim/frames';
import { Coroutine, qemu_aio_coroutine_enter, qemu_coroutine_create, qemu_coroutine_yield } from '../../src/machine/qemu/util/qemu-coroutine';
import { AioContext, aio_co_wake } from '../../src/machine/qemu/util/async';
import { threadBacktrace } from '../../src/machine/state/backtrace';

describe('sim: scheduler', () => {
  it('test_earliest_virtual_time_runs_first_ties_by_thread_id', () => {
    const s = new Sim(0);
    activate(s);
    const order: string[] = [];
    const body = (name: string, delays: number[]) =>
      function* (): Co<void> {
        for (const d of delays) {
          order.push(`${name}@${s.now}`);
          yield* sleep(d);
        }
      };
    s.addThread('a', body('a', [30, 10]));
    s.addThread('b', body('b', [10, 30]));
    assert.equal(s.run(), 'idle');
    assert.deepEqual(order, ['a@0', 'b@0', 'b@10', 'a@30']);
  });

  it('test_wait_queue_and_timer_wake_a_blocked_thread', () => {
    const s = new Sim(0);
    activate(s);
    const wq = new WaitQueue('test');
    let wokeAt = -1;
    s.addThread('t', function* () {
      yield* block(wq);
      wokeAt = s.now;
    });
    s.at(500, () => wq.wake(20));
    assert.equal(s.run(), 'idle');
    assert.equal(wokeAt, 520);
  });
});

describe('sim: coroutines', () => {
  /** Run `body` as the only thread of a fresh machine with one AioContext. */
  function runThread(body: (ctx: AioContext) => Co<void>): Sim {
    const s = new Sim(0);
    activate(s);
    const ctx = new AioContext('test');
    const t = s.addThread('main-loop', () => body(ctx));
    ctx.thread = t;
    assert.equal(s.run(), 'idle');
    return s;
  }

  it('test_enter_sets_caller_and_yield_returns_to_it', () => {
    const log: string[] = [];
    let co: Coroutine | null = null;
    runThread(function* (ctx) {
      co = yield* qemu_coroutine_create(function* () {
        log.push('co: first half');
        yield* qemu_coroutine_yield();
        log.push('co: second half');
      }, 'entry', null);
      yield* qemu_aio_coroutine_enter(ctx, co);
      log.push(`caller after yield (co.caller ${co.caller === null ? 'null' : 'set'})`);
      yield* aio_co_wake(co);
      log.push(`caller after end (state ${co.state})`);
    });
    assert.deepEqual(log, ['co: first half', 'caller after yield (co.caller null)', 'co: second half', 'caller after end (state terminated)']);
  });

  it('test_qemu_bt_joins_coroutine_and_caller_stacks', () => {
    let sections: ReturnType<typeof threadBacktrace> = [];
    runThread(function* (ctx) {
      const co = yield* qemu_coroutine_create(function* () {
        sections = threadBacktrace(S().thread);
      }, 'entry', null);
      yield* qemu_aio_coroutine_enter(ctx, co);
    });
    assert.equal(sections.length, 2);
    assert.deepEqual(sections[0].frames.map((f) => f.name), ['coroutine_trampoline']);
    assert.deepEqual(sections[1].frames.map((f) => f.name), ['qemu_coroutine_switch', 'qemu_aio_coroutine_enter']);
    assert.match(sections[1].frames[0].args, /action=COROUTINE_ENTER/);
  });

  it('test_stop_inside_a_coroutine_resumes_in_place', () => {
    const log: string[] = [];
    const s = new Sim(0);
    activate(s);
    const ctx = new AioContext('test');
    ctx.thread = s.addThread('main-loop', function* () {
      const co = yield* qemu_coroutine_create(function* () {
        log.push('before');
        if (enter(functionNamed('qemu_coroutine_yield')!)) yield STOP; // an armed event inside the coroutine
        leave(functionNamed('qemu_coroutine_yield')!, undefined);
        log.push('after');
      }, 'entry', null);
      yield* qemu_aio_coroutine_enter(ctx, co);
      log.push('caller');
    });
    s.armFunction(functionNamed('qemu_coroutine_yield')!, true);
    s.hook = () => true;
    assert.equal(s.run(), 'stopped');
    assert.deepEqual(log, ['before']);
    assert.equal(s.stopEvent!.fn.name, 'qemu_coroutine_yield');
    s.hook = null;
    assert.equal(s.run(), 'idle');
    assert.deepEqual(log, ['before', 'after', 'caller']);
  });
});

describe('sim: frames and arming', () => {
  it('test_leave_with_the_wrong_frame_throws', () => {
    const s = new Sim(0);
    activate(s);
    const a = functionNamed('qemu_coroutine_yield')!;
    const b = functionNamed('qemu_coroutine_create')!;
    s.addThread('t', function* () {
      enter(a);
      leave(b, undefined);
    });
    assert.throws(() => s.run(), /frame imbalance: leaving qemu_coroutine_create but qemu_coroutine_yield is on top/);
  });

  it('test_arming_is_per_machine', () => {
    const d = functionNamed('qemu_coroutine_yield')!;
    const one = new Sim(0);
    const two = new Sim(0);
    one.armFunction(d, true);
    assert.equal(one.armedFns[d.id], 1);
    assert.equal(two.armedFns[d.id], 0);
  });
});

/** The machine whose code runs now (the sim module's live binding). */
function S(): Sim {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('../../src/machine/sim/sim').S as Sim;
}
