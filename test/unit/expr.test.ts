/**
 * The expression language (src/machine/expr): C precedence and every
 * operator, 64-bit feature masks, errors with their columns, the rules that
 * keep an expression data (no prototype, constructor or functions), guest
 * memory reads, formatting and logpoint templates; then machineEnv on a
 * stopped machine (frame parameters, queue fields, device, queues, threads)
 * and that a hot condition reads only what it names.
 */
import { strict as assert } from 'node:assert';
import { ExprError, evaluate, formatValue, interpolate, parseExpr, truthy, type ExprEnv, type Value } from '../../src/machine/expr';
import { machineEnv } from '../../src/machine/expr/machine-env';
import { GuestMemory } from '../../src/machine/memory/guest-memory';
import { OPTIMIZED_OUT } from '../../src/machine/sim/frames';
import { boot, runToFunction, runToIdle } from '../helpers/machine';
import type { Machine } from '../../src/machine/machine';
import * as V from '../../src/machine/spec/virtio';

const mem = new GuestMemory(0x2000);

function env(names: Record<string, unknown> = {}): ExprEnv {
  return { lookup: (n) => (Object.prototype.hasOwnProperty.call(names, n) ? (names[n] as Value) : undefined), mem };
}

function ev(text: string, names: Record<string, unknown> = {}): Value {
  return evaluate(parseExpr(text), env(names));
}

/** The expression fails (to parse, or to evaluate) at `col` with `reason` (a substring, or a regexp). */
function fails(text: string, col: number, reason: string | RegExp, names: Record<string, unknown> = {}): void {
  assert.throws(() => ev(text, names), (e: unknown) => {
    assert.ok(e instanceof ExprError, `not an ExprError: ${String(e)}`);
    assert.equal(e.col, col, `column of '${text}': ${e.reason}`);
    if (typeof reason === 'string') assert.ok(e.reason.includes(reason), `'${e.reason}' lacks '${reason}'`);
    else assert.match(e.reason, reason);
    return true;
  });
}

describe('expr: the expression language', () => {
  describe('operators and precedence (C)', () => {
    const cases: [string, Value][] = [
      ['1 + 2 * 3', 7], ['(1 + 2) * 3', 9], ['10 - 4 - 3', 3], ['2 * 3 % 4', 2], ['100 / 10 / 5', 2],
      ['7 / 2', 3], ['-7 / 2', -3], ['-7 % 3', -1], ['7 % -3', 1],
      ['1 << 4 + 1', 32], ['256 >> 2 - 1', 128], ['-8 >> 1', -4],
      ['1 < 2 == 1', true], ['3 > 2 > 1', false], ['2 <= 2', true], ['2 >= 3', false], ['1 != 2', true],
      ['6 & 3 == 3', 0], ['(6 & 3) == 2', true], ['1 | 2 ^ 3 & 4', 3], ['5 ^ 1', 4], ['12 & 10', 8], ['12 | 3', 15],
      ['true || false && false', true], ['(true || false) && false', false], ['0 && 1 / 0', false], ['1 || 1 / 0', true],
      ['1 ? 2 : 3 ? 4 : 5', 2], ['0 ? 2 : 0 ? 4 : 5', 5], ['0 ? 1 / 0 : 9', 9],
      ['!0', true], ['!5', false], ['!!"x"', true], ['!""', true], ['-(3)', -3], ['- -1', 1], ['~0', -1], ['~5', -6],
      ['0x10 + 0X0a', 26], ['true + true', 2], ['true == 1', true], ['null == null', true], ['null == 0', false],
      ['"ab" + "cd" == "abcd"', true], ['"a" < "b"', true], ['"b" >= "ab"', true], ['"x" == "y"', false],
      ['"\\x41\\n\\t\\"\\\\" == "A\\n\\t\\"\\\\"', true], ['len("abc")', 3], ['"abc"[1]', 'b'], ['"abc".length', 3],
      ['hex(255)', '0xff'], ['hex(0)', '0x0'], ['hex(-16)', '-0x10'], ['hex(1 << 40)', '0x10000000000'],
    ];
    for (const [text, want] of cases) {
      it(`${text}  →  ${JSON.stringify(want)}`, () => assert.deepEqual(ev(text), want));
    }

    it('truthy follows C: 0, "", null, undefined and false are false; everything else, objects too, is true', () => {
      for (const v of [0, '', null, undefined, false, NaN]) assert.equal(truthy(v as Value), false, String(v));
      for (const v of [1, -1, 'x', true, {}, []]) assert.equal(truthy(v as Value), true, JSON.stringify(v));
    });

    it('division and remainder by zero, shifts out of range, non-integers in bit operations are errors', () => {
      fails('1 / 0', 3, 'division by zero');
      fails('1 % 0', 3, 'remainder by zero');
      fails('1 << 64', 6, 'shift count 64 is out of range');
      fails('1 >> -1', 6, 'out of range');
      fails('"a" - 1', 5, "'-' needs numbers, got a string");
      fails('"a" + 1', 5, "'+' needs numbers, got a string");
      fails('x & 1', 3, "'&' needs integers, got 0.5", { x: 0.5 });
      fails('~x', 1, "'~' needs numbers, got a string", { x: 'a' });
      fails('~x', 1, "'~' needs integers, got 1.5", { x: 1.5 });
      fails('x < 1', 3, "'<' needs numbers, got an object", { x: {} });
    });
  });

  describe('64-bit feature masks', () => {
    // VERSION_1 (32) | EVENT_IDX (29) | INDIRECT_DESC (28) | FLUSH (9) | bit 0, and a bit far up (62).
    const f = 2 ** 32 + 2 ** 29 + 2 ** 28 + 2 ** 9 + 1;
    const big = 2 ** 62 + 2 ** 32;
    const names = { f, big };
    const cases: [string, Value][] = [
      ['1 << 32', 2 ** 32], ['1 << 63', 2 ** 63], ['(1 << 63) >> 63', 1],
      ['f & (1 << 32)', 2 ** 32], ['(f & (1 << 32)) != 0', true], ['f & (1 << 33)', 0], ['f & (1 << 29)', 2 ** 29],
      ['f & 0xffffffff', 2 ** 29 + 2 ** 28 + 2 ** 9 + 1], ['f >> 32', 1], ['(f >> 28) & 3', 3],
      ['f | (1 << 34)', f + 2 ** 34], ['f ^ (1 << 32)', f - 2 ** 32], ['f & ~(1 << 32)', f - 2 ** 32],
      ['~f & 0xffffffff', 0xffffffff - (2 ** 29 + 2 ** 28 + 2 ** 9 + 1)],
      ['big & (1 << 62)', 2 ** 62], ['big & (1 << 32)', 2 ** 32], ['big >> 62', 1], ['(big | (1 << 40)) & (1 << 40)', 2 ** 40],
      ['0x80000000 & 0x80000000', 0x80000000], ['0xffffffff | 0', 0xffffffff], ['0xffffffff ^ 0xffffffff', 0],
    ];
    for (const [text, want] of cases) {
      it(`${text}  →  ${want}`, () => assert.equal(ev(text, names), want));
    }
  });

  describe('errors name the column', () => {
    it('incomplete expressions point past their end', () => {
      fails('a +', 4, "expected an expression after '+'");
      fails('1 ==', 5, "expected an expression after '=='");
      fails('(1 + 2', 7, "expected ')' to close '('");
      fails('a[1', 4, "expected ']' to close the index");
      fails('1 ? 2', 6, "expected ':' after the '?' branch");
      fails('', 1, 'empty expression');
      fails('   ', 1, 'empty expression');
    });

    it('stray tokens, bad literals and unknown characters', () => {
      fails('a b', 3, "unexpected 'b' after a complete expression");
      fails('1 = 2', 3, "use '=='");
      fails('"abc', 1, 'unterminated string');
      fails('"a\\q"', 3, "unknown escape '\\q'");
      fails('0x', 1, "bad number '0x'");
      fails('12ab', 1, "bad number '12ab'");
      fails('012', 1, 'a leading 0 means octal in C');
      fails('9007199254740993', 1, 'too large');
      fails('1 @ 2', 3, "unexpected character '@'");
      fails('a.1', 3, "expected a member name after '.'");
      fails('*', 1, "expected an expression, found '*'");
    });

    it('an unknown name is an evaluation error at its column', () => {
      fails('foo', 1, "unknown name 'foo'");
      fails('1 + foo', 5, "unknown name 'foo'");
      fails('x.y + nope.z', 7, "unknown name 'nope'", { x: { y: 1 } });
    });

    it('__proto__, constructor and prototype are refused when parsed and when computed', () => {
      fails('x.__proto__', 3, "member '__proto__' is not data");
      fails('x.constructor', 3, "member 'constructor' is not data");
      fails('x.y.prototype', 5, "member 'prototype' is not data");
      fails('x["constructor"]', 3, "member 'constructor' is not data", { x: {} });
      fails('x["__proto__"]', 3, "member '__proto__' is not data", { x: {} });
    });

    it('only the built-ins can be called, with one argument', () => {
      fails('foo(1)', 1, "'foo' is not a built-in function (the built-ins: u8, le16, le32, le64, len, hex)");
      fails('x.y(1)', 4, 'only the built-in functions');
      fails('(1)(2)', 4, 'only the built-in functions');
      fails('u8(1, 2)', 1, 'u8 takes 1 argument, got 2');
      fails('len()', 1, 'len takes 1 argument, got 0');
      fails('len(5)', 1, 'len() needs an array or a string, got a number');
    });

    it('nesting deeper than 200 levels is refused, not a stack overflow', () => {
      fails('('.repeat(300) + '1' + ')'.repeat(300), 101, 'nested too deeply');
      fails('-'.repeat(300) + '1', 201, 'nested too deeply');
    });
  });

  describe('member access and indexing', () => {
    class Thing {
      own = 7;
      fn = () => 1;
      get viaPrototype(): number { return 1; }
      method(): number { return 2; }
    }
    const obj = { a: { b: [10, 20, { c: 'x' }] }, get lazy() { return 42; }, fn() { return 1; }, n: 5n };
    const names = { obj, thing: new Thing(), arr: [1, 2, 3], u16: Uint16Array.of(5, 6), map: new Map<unknown, unknown>([[3, 'three'], ['k', { v: 1 }]]) };

    it('reads own data properties and own getters of objects, arrays, typed arrays and class instances', () => {
      assert.equal(ev('obj.a.b[1]', names), 20);
      assert.equal(ev('obj.a.b[2].c', names), 'x');
      assert.equal(ev('obj["a"]["b"][0]', names), 10);
      assert.equal(ev('obj.lazy', names), 42);
      assert.equal(ev('obj.n', names), 5, 'a bigint reads as a number');
      assert.equal(ev('len(arr) == 3 && arr.length == 3', names), true);
      assert.equal(ev('u16[1] + len(u16)', names), 8);
      assert.equal(ev('thing.own', names), 7);
      assert.equal(ev('map[3]', names), 'three');
      assert.equal(ev('map["k"].v + len(map)', names), 3);
    });

    it('never reads functions, prototype members or missing members', () => {
      fails('obj.fn', 5, "'fn' is a function; only data can be read", names);
      fails('thing.fn', 7, "'fn' is a function", names);
      fails('thing.method', 7, "Thing has no member 'method'", names);
      fails('thing.viaPrototype', 7, "Thing has no member 'viaPrototype'", names);
      fails('obj.toString', 5, "the object has no member 'toString'", names);
      fails('arr.map', 5, "the array has no member 'map'", names);
      fails('obj.a.nope', 7, "has no member 'nope'", names);
      fails('arr[3]', 5, 'index 3 out of range (length 3)', names);
      fails('arr[-1]', 5, 'index -1 out of range', names);
      fails('arr["x"]', 5, "'[]' needs numbers, got a string", names);
      fails('map[4]', 5, 'no entry 4 in the map', names);
      fails('obj.a.b[0].c', 12, "cannot read member 'c' of a number", names);
      fails('x.y', 3, "cannot read member 'y' of null", { x: null });
      fails('x[0]', 1, 'cannot index a number', { x: 5 });
      fails('x.y', 3, 'the value is <optimized out>', { x: OPTIMIZED_OUT });
    });
  });

  describe('guest memory', () => {
    before(() => {
      mem.writeBytes(0x100, Buffer.from('0102030405060708', 'hex'));
      mem.write64(0x200, 2 ** 40 + 5);
    });

    it('u8, le16, le32, le64 read little-endian', () => {
      assert.equal(ev('u8(0x100)'), 1);
      assert.equal(ev('le16(0x100)'), 0x0201);
      assert.equal(ev('le32(0x100 + 4)'), 0x08070605);
      assert.equal(ev('le64(0x200)'), 2 ** 40 + 5);
      assert.equal(ev('le64(0x200) & (1 << 40)'), 2 ** 40);
    });

    it('an address outside RAM is an error naming it', () => {
      fails('u8(0x2000)', 1, 'u8(0x2000): address outside guest RAM (0x0 to 0x2000)');
      fails('1 + le32(0x1ffe)', 5, 'le32(0x1ffe): address outside guest RAM');
      fails('le16(-1)', 1, 'le16(-0x1): address outside guest RAM');
      assert.throws(() => evaluate(parseExpr('u8(0)'), { lookup: () => undefined }), /no guest memory/);
    });
  });

  describe('formatValue and interpolate', () => {
    it('formats numbers in decimal below 0x10000 and in hex from there, strings quoted, the rest short', () => {
      assert.equal(formatValue(65535), '65535');
      assert.equal(formatValue(0x10000), '0x10000');
      assert.equal(formatValue(2 ** 32 + 2 ** 29), '0x120000000');
      assert.equal(formatValue(2 ** 63), '0x8000000000000000');
      assert.equal(formatValue(-5), '-5');
      assert.equal(formatValue('a"b'), '"a\\"b"');
      assert.equal(formatValue(true), 'true');
      assert.equal(formatValue(null), 'null');
      assert.equal(formatValue(undefined), 'undefined');
      assert.equal(formatValue(OPTIMIZED_OUT), '<optimized out>');
      assert.equal(formatValue([1, 2, 3]), '[1, 2, 3]');
      assert.equal(formatValue(Array.from({ length: 20 }, (_, i) => i)), '[0, 1, 2, 3, 4, 5, 6, 7, … 12 more]');
      assert.equal(formatValue({ addr: 0x400000, len: 16, flags: 1, next: 1 }), '{addr: 0x400000, len: 16, flags: 1, next: 1}');
      assert.equal(formatValue({ a: { b: { c: 1 } } }), '{a: {b: {…}}}');
      assert.equal(formatValue(new Map([[1, 'x']])), 'Map(1) {1 => "x"}');
      class VirtQueue { ptr = 0x7ffff4000000; }
      class VringVirtqueue { kaddr = 0x400900; }
      assert.equal(formatValue(new VirtQueue()), '(VirtQueue *) 0x7ffff4000000');
      assert.equal(formatValue(new VringVirtqueue()), '(VringVirtqueue *) 0xffff888000400900');
    });

    it('replaces {expr} with its value; {{ and }} are literal braces', () => {
      const e = env({ idx: 3, addr: 0x400000, s: 'x}y' });
      assert.equal(interpolate('idx={idx} next={idx + 1} at {addr}', e), 'idx=3 next=4 at 0x400000');
      assert.equal(interpolate('{{literal}} {s} {"}"}', e), '{literal} "x}y" "}"');
      assert.equal(interpolate('no expressions', e), 'no expressions');
      assert.equal(interpolate('{nope} after', e), "<error: unknown name 'nope'> after", 'an evaluation error prints in place');
    });

    it('a template that does not parse throws with the column in the template', () => {
      const e = env({ a: 1 });
      assert.throws(() => interpolate('x {a +}', e), (x: unknown) => x instanceof ExprError && x.col === 7 && /after '\+'/.test(x.reason));
      assert.throws(() => interpolate('x {a', e), (x: unknown) => x instanceof ExprError && x.col === 3 && /unclosed '\{'/.test(x.reason));
      assert.throws(() => interpolate('x } y', e), (x: unknown) => x instanceof ExprError && x.col === 3 && /unmatched '\}'/.test(x.reason));
    });
  });
});

describe('expr: machineEnv on a stopped machine', () => {
  let m: Machine;
  afterEach(() => m?.close());

  function stopAt(fn: string, text = 'read 0 512\n', options = {}) {
    m = boot(text, options).m;
    const e = runToFunction(m, fn);
    assert.ok(e, `reached ${fn}`);
    return e;
  }

  it('at virtqueue_pop: the frame parameters are the machine objects, queue names come from the frame queue', () => {
    const e = stopAt('virtqueue_pop');
    const env = machineEnv(m, { frame: e.frame });
    const x = (s: string) => evaluate(parseExpr(s), env);
    assert.equal(x('vq.last_avail_idx'), 0);
    assert.equal(x('vq.num'), 256);
    assert.equal(x('sz'), 0x180);
    assert.equal(x('avail.idx - last_avail_idx'), 1);
    assert.equal(x('num == 256 && vring_desc == vq.desc && vring_used == vq.used'), true);
    assert.equal(x('desc[avail.ring[0]].flags'), V.VRING_DESC_F_INDIRECT);
    assert.equal(x('desc[0].len'), 48, 'an indirect table of three descriptors');
    assert.equal(x('le16(vring_avail + 2)'), 1);
    assert.equal(x('driver.avail_idx_shadow == 1 && driver.num_free == 255 && !driver.broken'), true);
    assert.equal(x('used.idx == 0 && inuse == 0 && len(inflight) == 0'), true);
    assert.equal(x('(device.guest_features & (1 << 32)) != 0'), true, 'VERSION_1');
    assert.equal(x('(device.host_features >> 28) & 3'), 3, 'INDIRECT_DESC and EVENT_IDX offered');
    assert.equal(x('device.config.capacity'), 32768);
    assert.equal(x('device.broken || len(device.errors) != 0'), false);
    assert.equal(x('queues[0].avail.idx == avail.idx && len(queues) == 1'), true);
    assert.equal(x('threads[0].name'), 'main-loop');
    assert.ok((x('threads') as unknown[]).some((t) => (t as { name: string }).name === 'vCPU 0'));
    assert.equal(formatValue(x('vq')), `(VirtQueue *) 0x${m.vdev.vq[0].ptr.toString(16)}`);
    assert.throws(() => x('vq.ready'), /VirtQueue has no member 'ready'/, 'a prototype getter is not data');
    assert.throws(() => x('nope'), (err: unknown) => err instanceof ExprError && err.reason === "unknown name 'nope'" && err.col === 1);
  });

  it('at virtqueue_fill and virtio_blk_req_complete: elem and req', () => {
    let e = stopAt('virtqueue_fill');
    let x = (s: string) => evaluate(parseExpr(s), machineEnv(m, { frame: e.frame }));
    assert.equal(x('elem.out_num == 1 && elem.in_num == 2'), true);
    assert.equal(x('elem.out_sg[0].len + elem.in_sg[0].len + elem.in_sg[1].len'), 16 + 512 + 1);
    assert.equal(x('len'), 513, "virtqueue_fill's own len parameter");
    assert.equal(x('len(elem.in_sg)'), 2, 'the built-in, whatever a name says');
    assert.equal(x('inflight[0].index == elem.index'), true);
    m.close();
    e = stopAt('virtio_blk_req_complete', 'read 8 512\n');
    x = (s: string) => evaluate(parseExpr(s), machineEnv(m, { frame: e.frame }));
    assert.equal(x('req.sector_num'), 8);
    assert.equal(x('status'), V.VIRTIO_BLK_S_OK);
    assert.equal(x('req.elem.index'), 0);
  });

  it('on the guest side, a VringVirtqueue argument selects the queue; an explicit queue overrides it', () => {
    const e = stopAt('virtqueue_kick_prepare_split');
    const env = machineEnv(m, { frame: e.frame });
    const x = (s: string) => evaluate(parseExpr(s), env);
    assert.equal(x('_vq.num_added'), 1);
    assert.equal(x('_vq.avail_idx_shadow == avail.idx'), true);
    assert.equal(x('_vq.index == index'), true);
    assert.throws(() => evaluate(parseExpr('1 + num'), machineEnv(m, { queue: 3 })),
      (err: unknown) => err instanceof ExprError && err.col === 5 && /no queue 3/.test(err.reason));
  });

  it('scenario bufs are names for their guest addresses', () => {
    const text = 'buf hdr 16\nbuf status 1\nmem status u8:0xab\nmem hdr le32:0x11223344\nexpect 1\n';
    m = boot(text).m;
    runToIdle(m);
    assert.deepEqual(m.guest.expects.map((r) => r.ok), [true]);
    const x = (s: string) => evaluate(parseExpr(s), machineEnv(m));
    assert.equal(x('u8(status)'), 0xab);
    assert.equal(x('le32(hdr)'), 0x11223344);
    assert.equal(x('u8(hdr + 3)'), 0x11);
    assert.equal(x('hdr'), m.guest.rawBufs.get('hdr')!.addr);
  });

  it('a condition reads only what it names: avail.idx is one 16-bit read, desc[i] one descriptor', () => {
    stopAt('virtqueue_pop');
    const env = machineEnv(m);
    const counts = { r16: 0, r32: 0, r64: 0 };
    const mm = m.mem as unknown as Record<string, (a: number) => number>;
    const orig = { read16: mm.read16, read32: mm.read32, read64: mm.read64 };
    mm.read16 = (a) => (counts.r16++, orig.read16.call(m.mem, a));
    mm.read32 = (a) => (counts.r32++, orig.read32.call(m.mem, a));
    mm.read64 = (a) => (counts.r64++, orig.read64.call(m.mem, a));
    try {
      const cond = parseExpr('avail.idx == 40000');
      assert.equal(evaluate(cond, env), false);
      assert.deepEqual(counts, { r16: 1, r32: 0, r64: 0 }, 'one read of avail.idx, nothing of the ring');
      Object.assign(counts, { r16: 0, r32: 0, r64: 0 });
      assert.equal(evaluate(parseExpr('desc[3].flags'), env), 0);
      assert.deepEqual(counts, { r16: 2, r32: 1, r64: 1 }, 'descriptor 3 alone');
      Object.assign(counts, { r16: 0, r32: 0, r64: 0 });
      assert.equal(evaluate(parseExpr('used.ring[5].len + avail.ring[7]'), env), 0);
      assert.deepEqual(counts, { r16: 1, r32: 2, r64: 0 }, 'one used element, one avail entry');
      // A breakpoint condition is evaluated on every hit: 100 000 times here, and it stays a word read each time.
      Object.assign(counts, { r16: 0, r32: 0, r64: 0 });
      for (let i = 0; i < 100_000; i++) evaluate(cond, env);
      assert.deepEqual(counts, { r16: 100_000, r32: 0, r64: 0 });
    } finally {
      Object.assign(mm, orig);
    }
  });
});
