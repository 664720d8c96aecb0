/**
 * Raw statements and `expect` in `.virtio` scenarios: every sample under
 * samples/errors and samples/raw run through the CLI with its outcome; the
 * exact file:line:col of parse, validation and runtime errors; queue
 * ownership (a request after a raw statement on its queue is refused);
 * `bufs` and `expects` in --json; and the cases of issue #4 restated as
 * scenarios — ring indices, descriptor chains, indirect tables, wrap at
 * 65536, interrupt suppression, virtio-blk request formats — each checked
 * against what QEMU and Linux do (FIDELITY §3, §4).
 */
import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseScenario } from '../../src/machine/scenario/parser';
import { ScenarioError } from '../../src/machine/scenario/errors';
import type { Loc } from '../../src/machine/scenario/ast';
import { runScenario, RunResult, EventRecord } from '../../src/machine/run';
import { MachineOptions, validateOptions } from '../../src/machine/options';
import { boot, runToIdle } from '../helpers/machine';

const ROOT = path.resolve(__dirname, '../../..');
const CLI = path.join(ROOT, 'dist/cli.js');
const FILE = 'raw.virtio';

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: ROOT, encoding: 'utf8', maxBuffer: 256 << 20, timeout: 120_000 });
  if (r.error) throw r.error;
  return r;
}

/** Run scenario text in this process, as the CLI would. */
function run(text: string, options: Partial<MachineOptions> = {}): RunResult {
  return runScenario(parseScenario(text, FILE), validateOptions(options as Record<string, unknown>), { text: null, collectEvents: true });
}

/** Run and require every expect to hold; the result. */
function runOk(text: string, options: Partial<MachineOptions> = {}): RunResult {
  const r = run(text, options);
  assert.ok(r.expects.length > 0, 'the scenario checks itself');
  for (const x of r.expects) assert.ok(x.ok, x.message ?? '');
  return r;
}

function parseFails(text: string, message: string): void {
  assert.throws(() => parseScenario(text, FILE), (e: unknown) => {
    assert.ok(e instanceof ScenarioError, `not a ScenarioError: ${String(e)}`);
    assert.equal(e.message, message);
    return true;
  });
}

/** A hand-built request of `type` on queue 0: header, an optional data buffer, a status byte (descriptors 0, 1, 2). */
function chain(type: number, sector: number, data: number | null, dataFlags = 'NEXT|WRITE'): string {
  const lines = ['queue 0', 'buf hdr 16', 'buf status 1', `mem hdr le32:${type} le32:0 le64:${sector}`, 'mem status u8:0xff'];
  if (data !== null) {
    lines.push(`buf data ${data}`, 'desc 0 addr=hdr len=16 flags=NEXT next=1', `desc 1 addr=data len=${data} flags=${dataFlags} next=2`);
    lines.push('desc 2 addr=status len=1 flags=WRITE');
  } else {
    lines.push('desc 0 addr=hdr len=16 flags=NEXT next=1', 'desc 1 addr=status len=1 flags=WRITE');
  }
  return lines.join('\n') + '\n';
}

const GO = 'avail 0\nnotify\nwait\n';

/** Events from scenario line `from` up to scenario line `to` (exclusive), by position in the log. */
function between(events: EventRecord[], from: number, to: number): EventRecord[] {
  const at = (line: number) => events.findIndex((e) => e.file === FILE && e.line === line);
  const i = at(from);
  const j = at(to);
  assert.ok(i >= 0 && j > i, `lines ${from} and ${to} ran`);
  return events.slice(i, j);
}

const lineOf = (text: string, needle: string) => text.split('\n').findIndex((l) => l.includes(needle)) + 1;

describe('raw statements', function () {
  this.timeout(120_000);

  describe('the samples, through the CLI', () => {
    before(() => {
      if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`);
    });

    // Each sample: the device's virtio_error (or null), and whether the guest driver marked the queue broken.
    const samples: [string, string | null, string | null][] = [
      ['errors/avail-index-too-far.virtio', 'Guest moved used index from 0 to 257', null],
      ['errors/size-exceeded.virtio', 'Virtqueue size exceeded', null],
      ['errors/head-out-of-range.virtio', 'Guest says index 256 is available', null],
      ['errors/indirect-table-size.virtio', 'Invalid size for indirect buffer table', null],
      ['errors/indirect-table-unmappable.virtio', 'Cannot map indirect buffer', null],
      ['errors/descriptor-order.virtio', 'Incorrect order for descriptors', null],
      ['errors/zero-sized-buffer.virtio', 'virtio: zero sized buffers are not allowed', null],
      ['errors/bogus-descriptor.virtio', 'virtio: bogus descriptor or out of resources', null],
      ['errors/looped-descriptor.virtio', 'Looped descriptor', null],
      ['errors/next-out-of-range.virtio', 'Desc next is 256', null],
      ['errors/blk-missing-headers.virtio', 'virtio-blk missing headers', null],
      ['errors/blk-outhdr-too-short.virtio', 'virtio-blk request outhdr too short', null],
      ['errors/blk-discard-segment-too-short.virtio', 'virtio-blk discard/write_zeroes header too short', null],
      ['errors/driver-id-out-of-range.virtio', null, 'id 300 out of range'],
      ['errors/driver-id-not-a-head.virtio', null, 'id 5 is not a head!'],
      ['raw/read.virtio', null, null],
      ['raw/indirect-write.virtio', null, null],
    ];

    it('every sample under samples/errors and samples/raw is in this table', () => {
      const found = ['errors', 'raw'].flatMap((d) => fs.readdirSync(path.join(ROOT, 'samples', d)).map((f) => `${d}/${f}`)).sort();
      assert.deepEqual(found, samples.map((s) => s[0]).sort());
    });

    for (const [file, deviceError, driverError] of samples) {
      it(`${file}: ${deviceError ?? driverError ?? 'completes'}`, () => {
        const r = cli('run', `samples/${file}`, '--json');
        assert.equal(r.status, 0, r.stderr);
        assert.equal(r.stderr, '');
        const out = JSON.parse(r.stdout);
        assert.ok(out.expects.length > 0, 'the sample checks itself');
        for (const x of out.expects) assert.equal(x.ok, true, x.message);
        const dev = out.state.device;
        assert.deepEqual(dev.errors, deviceError === null ? [] : [deviceError]);
        assert.equal(dev.broken, deviceError !== null);
        // With VERSION_1 a virtio_error asks the driver for a reset.
        assert.equal((dev.status & 0x40) !== 0, deviceError !== null, 'NEEDS_RESET');
        assert.equal(out.state.queues[0].driver.broken, driverError !== null, 'the driver marked the queue broken');
        const header = fs.readFileSync(path.join(ROOT, 'samples', file), 'utf8').split('\n')[0];
        assert.match(header, /^# /, 'a comment header says what the sample breaks');
      });
    }

    it('raw/read.virtio: the used element, the status byte and every buf in --json', () => {
      const out = JSON.parse(cli('run', 'samples/raw/read.virtio', '--json').stdout);
      assert.deepEqual(out.state.queues[0].used.ring[0], { id: 0, len: 513 });
      assert.deepEqual(Object.keys(out.bufs), ['hdr', 'data', 'status']);
      assert.equal(out.bufs.hdr.hex, '00'.repeat(16));
      assert.equal(out.bufs.status.hex, '00');
      assert.equal(out.bufs.data.hex.length, 1024);
      assert.equal(Buffer.from(out.bufs.data.hex, 'hex').toString('latin1', 0, 22), 'virtio-debug sector 0\n');
      for (const b of Object.values(out.bufs) as { addr: number }[]) assert.ok(Number.isSafeInteger(b.addr) && b.addr > 0);
      assert.equal(out.requests.length, 0, 'no request went through the driver');
      assert.equal(out.state.queues[0].driver.avail_idx_shadow, 0, "the driver's own index never moved");
    });

    it('a request scenario has no bufs', () => {
      const out = JSON.parse(cli('run', 'samples/default.virtio', '--json').stdout);
      assert.deepEqual(out.bufs, {});
      assert.deepEqual(out.expects, []);
    });
  });

  describe('expect', () => {
    let tmp: string;
    before(() => {
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'virtio-raw-'));
    });
    after(() => fs.rmSync(tmp, { recursive: true, force: true }));

    it('a failed expect exits 1 with file:line:col and the values of the names, after the JSON', () => {
      const f = path.join(tmp, 'x.virtio');
      fs.writeFileSync(f, `${chain(0, 0, 512)}${GO}expect used.idx == 1\n  expect u8(status) == 7 && used.ring[0].len == 513   # no\n`);
      const r = cli('run', f, '--json');
      assert.equal(r.status, 1);
      assert.equal(r.stderr, `${f}:14:10: expect failed: u8(status) == 7 && used.ring[0].len == 513 (u8(status) = 0, status = ` +
        `0x${JSON.parse(r.stdout).bufs.status.addr.toString(16)}, used.ring[0].len = 513)\n`);
      const out = JSON.parse(r.stdout);
      assert.deepEqual(out.expects.map((x: { line: number; ok: boolean }) => [x.line, x.ok]), [[13, true], [14, false]]);
      assert.equal(out.expects[1].col, 10);
      assert.equal(out.expects[1].expr, 'u8(status) == 7 && used.ring[0].len == 513');
      assert.equal(out.expects[0].message, null);
      // Without --json the log says the same, and stderr too.
      const t = cli('run', f);
      assert.equal(t.status, 1);
      assert.match(t.stdout, /=> .*x\.virtio:13:8: expect ok: used\.idx == 1/);
      assert.match(t.stdout, /=> .*x\.virtio:14:10: expect failed: /);
      assert.equal(t.stderr, r.stderr);
    });

    it('an expression that fails to evaluate is a failed expect that says why', () => {
      const r = run('expect device.errors[0] == "x"\nexpect u8(0x7fffffff) == 0\n');
      assert.deepEqual(r.expects.map((x) => x.message), [
        `${FILE}:1:8: expect failed: device.errors[0] == "x" (error: index 0 out of range (length 0), device.errors[0] = <error: index 0 out of range (length 0)>)`,
        `${FILE}:2:8: expect failed: u8(0x7fffffff) == 0 (error: u8(0x7fffffff): address outside guest RAM (0x0 to 0x4000000), ` +
          'u8(0x7fffffff) = <error: u8(0x7fffffff): address outside guest RAM (0x0 to 0x4000000)>)',
      ]);
    });

    it('parse errors in EXPR are reported at their column in the line', () => {
      parseFails('expect used.idx ==', `${FILE}:1:19: expect: expected an expression after '=='`);
      parseFails('  expect   (1 +) # c', `${FILE}:1:16: expect: expected an expression after '+', found ')'`);
      parseFails('expect x.constructor', `${FILE}:1:10: expect: member 'constructor' is not data and cannot be read`);
      parseFails('expect frob(1)', `${FILE}:1:8: expect: 'frob' is not a built-in function (the built-ins: u8, le16, le32, le64, len, hex)`);
      parseFails('expect', `${FILE}:1:7: expect: missing EXPR (usage: expect EXPR)`);
      parseFails('expect  # only a comment', `${FILE}:1:7: expect: missing EXPR (usage: expect EXPR)`);
      parseFails('expect "a#b" == 1 +', `${FILE}:1:20: expect: expected an expression after '+'`);
    });

    it('names are checked before the run: bufs declared above, queue fields, device, queues, threads, dmesg', () => {
      parseFails('expect used.idx == foo', `${FILE}:1:20: expect: unknown name 'foo' (a buf declared above, a queue field such as used.idx, device, queues, threads or dmesg)`);
      parseFails('expect u8(st) == 0\nbuf st 1', `${FILE}:1:11: expect: unknown name 'st' (a buf declared above, a queue field such as used.idx, device, queues, threads or dmesg)`);
      const ok = parseScenario('buf st 1\nexpect u8(st) == 0 && num && device.isr >= 0 && len(queues) && len(threads) && len(dmesg) >= 0 && inflight && driver', FILE);
      assert.equal(ok.statements.length, 2);
    });
  });

  describe('parse errors name file:line:col', () => {
    const cases: [string, string][] = [
      ['desc 0 adr=hdr', '1:8: desc: unknown key \'adr\' (known: addr, len, flags, next, table)'],
      ['desc 0 flags=NEXT|WRTE', "1:19: desc: unknown flag 'WRTE' (NEXT, WRITE, INDIRECT or a number)"],
      ['desc 0 flags=next', "1:14: desc: unknown flag 'next' (flag names are upper case: NEXT)"],
      ['desc 0 flags=NEXT|0x10000', '1:19: desc: flags 0x10000 is too large (it is a 16-bit field)'],
      ['desc 0 len=', '1:12: desc: missing value for len'],
      ['desc 0 len=0x100000000', '1:12: desc: len 0x100000000 is too large (it is a 32-bit field)'],
      ['desc 0 next=65536', '1:13: desc: next 65536 is too large (it is a 16-bit field)'],
      ['desc 0 len=1 len=2', '1:14: desc: len= given twice'],
      ['desc 0 len 16', "1:8: desc: expected KEY=VALUE (addr=, len=, flags=, next=, table=), found 'len'"],
      ['desc 0 addr=a+', '1:15: desc: missing value for the offset of addr'],
      ['desc 0 addr=-4', "1:13: desc: addr must be a number, a buf name or NAME+OFFSET, found '-4'"],
      ['desc', '1:5: desc: missing I (usage: desc I addr=A len=L flags=F next=N [table=ADDR])'],
      ['mem 0x1000', '1:11: mem: missing VALUE (usage: mem ADDR VALUE... (u8:N le16:N le32:N le64:N "text" hex:...))'],
      ['mem 0x1000 le16:70000', '1:17: mem: le16 value 70000 is too large (it is a 16-bit field)'],
      ['mem 0x1000 u8:', '1:15: mem: missing value for u8 value'],
      ['mem 0x1000 le24:1', "1:12: mem: VALUE must be u8:N, le16:N, le32:N, le64:N, \"text\" or hex:..., found 'le24:1'"],
      ['mem 0x1000 hex:0g', "1:17: mem: bad hex digit 'g' in VALUE"],
      ['mem 0x1000 ""', '1:12: mem: an empty string writes nothing'],
      ['mem 0x10000000000000000 u8:1', '1:5: mem: ADDR 0x10000000000000000 is too large (it is a 64-bit field)'],
      ['mem nope le32:1', "1:5: mem: unknown name 'nope' (a buf declared above, or vring_desc, vring_avail, vring_used)"],
      ['desc 0 addr=x table=tbl', "1:13: desc: unknown name 'x' (a buf declared above, or vring_desc, vring_avail, vring_used)"],
      ['buf 1x 16', "1:5: buf: NAME must be a name (letters, digits, _), found '1x'"],
      ['buf used 16', "1:5: buf: 'used' already means something in expressions and addresses; choose another name"],
      ['buf vring_desc 16', "1:5: buf: 'vring_desc' already means something in expressions and addresses; choose another name"],
      ['buf x 16\nbuf x 8', "2:5: buf: 'x' is already declared on line 1"],
      ['buf x 0', '1:7: buf: SIZE must be greater than 0'],
      ['avail 65536', '1:7: avail: HEAD 65536 is too large (it is a 16-bit field)'],
      ['avail-idx', '1:10: avail-idx: missing N (usage: avail-idx N)'],
      ['used-event x', "1:12: used-event: N must be a non-negative integer (decimal or 0x hex), found 'x'"],
      ['notify 0', "1:8: notify: unexpected '0' after a complete statement (usage: notify)"],
      ['queue 1024', '1:7: queue: N 1024 is too large (at most 1023)'],
      ['batch {\n  avail 0\n}', '2:3: avail: not allowed inside a batch, which holds only requests (close the batch on line 1 with \'}\' first)'],
    ];
    for (const [text, message] of cases) {
      it(`${text.replace(/\n/g, ' ⏎ ')}`, () => parseFails(text, `${FILE}:${message}`));
    }

    it('accepts every form of DESIGN.md', () => {
      const sc = parseScenario([
        'queue 0', 'buf hdr 16', 'buf data 512', 'buf status 1', 'buf tbl 64',
        'mem hdr le32:0 le32:0 le64:0', 'mem data "text" hex:00ff u8:1 le16:2 le32:3 le64:0xffffffffffffffff',
        'desc 0 addr=hdr len=16 flags=NEXT next=1', 'desc 1 addr=data len=512 flags=NEXT|WRITE next=2',
        'desc 2 addr=status len=1 flags=WRITE', 'desc 0 addr=data len=16 flags=0 table=tbl', 'desc 3 addr=tbl+16 flags=INDIRECT|0x8',
        'mem vring_used+4 le32:300', 'avail 0', 'avail-idx 7', 'avail-flags 1', 'used-event 3', 'notify',
      ].join('\n'), FILE);
      const d = sc.statements.filter((s) => s.kind === 'desc');
      assert.deepEqual(d.map((s) => s.kind === 'desc' && [s.index, s.flags, s.len, s.next, s.table?.name ?? null]), [
        [0, 1, 16, 1, null], [1, 3, 512, 2, null], [2, 2, 1, 0, null], [0, 0, 16, 0, 'tbl'], [3, 12, 0, 0, null],
      ]);
      const last = d[4];
      assert.ok(last.kind === 'desc' && last.addr.name === 'tbl' && last.addr.offset === 16n);
    });
  });

  describe('queue ownership', () => {
    it('a request after a raw statement took its queue is refused, naming both lines', () => {
      parseFails('buf b 16\nqueue 0\nmem b u8:1\n  read 0 512\n',
        `${FILE}:4:3: read: queue 0 is driven by raw statements since line 2 ('queue 0'); the guest driver, which requests go through, has left it`);
      parseFails('avail 0\nbatch {\n  flush\n}\n',
        `${FILE}:2:1: batch: queue 0 is driven by raw statements since line 1 ('avail 0'); the guest driver, which requests go through, has left it`);
      parseFails('desc 0 len=1\nget-id', `${FILE}:2:1: get-id: queue 0 is driven by raw statements since line 1 ('desc 0 len=1'); the guest driver, which requests go through, has left it`);
    });

    it('mem, buf and desc ... table= leave the queue to the driver; requests before a raw statement are fine', () => {
      const r = run('buf t 32\nmem vring_used+0 le16:0\ndesc 0 addr=t len=1 table=t\nread 0 512\nwait\nexpect driver.last_used_idx == 1 && !driver.broken\n');
      assert.equal(r.requests[0].status, 'BLK_STS_OK');
      assert.ok(r.expects[0].ok);
      parseScenario('read 0 512\nwait\nqueue 0\nnotify\n', FILE);
    });

    it('a raw-driven queue is left alone by the driver: its interrupts are not the driver\'s', () => {
      const r = runOk(`${chain(0, 0, 512)}${GO}expect driver.last_used_idx == 0 && driver.num_free == 256 && used.idx == 1\n`);
      assert.ok(r.events.some((e) => e.fn === 'vring_interrupt'), 'the interrupt came');
      assert.ok(!r.events.some((e) => e.fn === 'virtqueue_get_buf'), 'the driver did not look at the used ring');
    });
  });

  describe('runtime errors stop the scenario with file:line:col', () => {
    it('an address outside RAM, a descriptor past the table, a queue the guest does not have', () => {
      const cases: [string, string | RegExp][] = [
        ['mem 0x7fff00000000 u8:1', '1:5: mem: 1 byte at 0x7fff00000000 is outside guest RAM (0x0 to 0x4000000)'],
        ['buf b 16\nmem b+0x4000000 le64:1', /^2:5: mem: 8 bytes at 0x[0-9a-f]+ \(b\+0x4000000\) are outside guest RAM \(0x0 to 0x4000000\)$/],
        ['desc 300 len=1', '1:6: desc: queue 0 has 256 descriptors (0 to 255); use mem to write past the table'],
        ['desc 2 len=1 table=0x3fffff0', '1:20: desc: 16 bytes at 0x4000010 are outside guest RAM (0x0 to 0x4000000)'],
        ['queue 1', '1:1: queue: the guest driver set up 1 queue, so there is no queue 1 to drive'],
      ];
      for (const [text, message] of cases) {
        let after = 0;
        assert.throws(() => run(text + '\nexpect 0\n'), (e: unknown) => {
          assert.ok(e instanceof ScenarioError, String(e));
          const rest = e.message.slice(FILE.length + 1);
          if (typeof message === 'string') assert.equal(rest, message);
          else assert.match(rest, message);
          after++;
          return true;
        });
        assert.equal(after, 1);
      }
    });

    it('the scenario stops there: the lines below do not run', () => {
      const { m } = boot('expect 1\nmem 0x7fff00000000 u8:1\nexpect 0\n', {}, FILE);
      try {
        runToIdle(m);
        assert.equal(m.guest.error?.line, 2);
        assert.deepEqual(m.guest.expects.map((x) => x.line), [1]);
      } finally {
        m.close();
      }
    });

    it('the CLI exits 1 with the message and prints no JSON', () => {
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'virtio-raw-'));
      try {
        const f = path.join(tmp, 'bad.virtio');
        fs.writeFileSync(f, 'buf b 4\nmem 0x7fff00000000 u8:1\n');
        const r = cli('run', f, '--json');
        assert.equal(r.status, 1);
        assert.equal(r.stdout, '');
        assert.equal(r.stderr, `${f}:2:5: mem: 1 byte at 0x7fff00000000 is outside guest RAM (0x0 to 0x4000000)\n`);
      } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
      }
    });
  });

  describe('the avail ring and the descriptor chain (virtqueue_split_pop)', () => {
    const broken = (text: string, message: string, options: Partial<MachineOptions> = {}) => {
      const r = runOk(`${text}expect device.broken && device.errors[0] == ${JSON.stringify(message)} && len(device.errors) == 1\n`, options);
      assert.deepEqual(r.state.device.errors, [message]);
      return r;
    };

    it('avail.idx more than num ahead, both ways round the wrap', () => {
      broken(`${chain(0, 0, 512)}avail-idx 257\nnotify\nwait\n`, 'Guest moved used index from 0 to 257');
      broken(`${chain(0, 0, 512)}avail-idx 65535\nnotify\nwait\n`, 'Guest moved used index from 0 to 65535');
      // Exactly num ahead is allowed: 256 heads, all descriptor 0, all completing.
      runOk(`${chain(0, 0, 512)}avail-idx 256\nnotify\nwait\nexpect !device.broken && used.idx == 256 && last_avail_idx == 256\n`);
    });

    it('a head >= num; the largest head that is not', () => {
      broken(`${chain(0, 0, 512)}avail 256\nnotify\nwait\n`, 'Guest says index 256 is available', {});
      broken(`${chain(0, 0, 512)}avail 16\nnotify\nwait\n`, 'Guest says index 16 is available', { queueSize: 16 });
      runOk(`${chain(0, 0, 512).replace(/desc (\d)/g, (_, d) => `desc ${Number(d) + 13}`).replace(/next=(\d)/g, (_, d) => `next=${Number(d) + 13}`)}` +
        'avail 13\nnotify\nwait\nexpect u8(status) == 0 && used.ring[0].id == 13\n', { queueSize: 16 });
    });

    it('next out of range, in the ring and in an indirect table (where the table size is the limit)', () => {
      broken(`${chain(0, 0, 512)}desc 1 addr=data len=512 flags=NEXT|WRITE next=256\n${GO}`, 'Desc next is 256');
      broken('queue 0\nbuf hdr 16\nbuf t 48\nbuf s 1\ndesc 0 addr=hdr len=16 flags=NEXT next=3 table=t\ndesc 0 addr=t len=48 flags=INDIRECT\n' + GO, 'Desc next is 3');
    });

    it('a chain longer than the queue (a loop), in the ring and in a table', () => {
      broken(`${chain(0, 0, 512)}desc 2 addr=status len=1 flags=NEXT|WRITE next=1\n${GO}`, 'Looped descriptor');
      broken('queue 0\nbuf hdr 16\nbuf t 48\nbuf s 1\ndesc 0 addr=hdr len=16 flags=NEXT next=1 table=t\n' +
        'desc 1 addr=s len=1 flags=NEXT|WRITE next=2 table=t\ndesc 2 addr=s len=1 flags=NEXT|WRITE next=1 table=t\ndesc 0 addr=t len=48 flags=INDIRECT\n' + GO, 'Looped descriptor');
    });

    it('INDIRECT on a non-head descriptor is ignored, not followed: the request completes', () => {
      const r = runOk(`${chain(0, 8, 512, 'NEXT|WRITE|INDIRECT')}${GO}expect u8(status) == 0 && used.ring[0].len == 513 && u8(data) == 0x76\n`);
      assert.equal(Buffer.from(r.bufs.data.hex, 'hex').toString('latin1', 0, 22), 'virtio-debug sector 8\n');
    });

    it('an indirect table of length 0, or not a multiple of 16', () => {
      for (const len of [0, 40, 17]) {
        broken(`queue 0\nbuf t 48\ndesc 0 addr=t len=${len} flags=INDIRECT\n${GO}`, 'Invalid size for indirect buffer table');
      }
    });

    it('INDIRECT inside an indirect table is not followed (one level only): the request completes', () => {
      runOk('queue 0\nbuf hdr 16\nbuf data 512\nbuf s 1\nbuf t 48\nmem hdr le32:0 le32:0 le64:16\n' +
        'desc 0 addr=hdr len=16 flags=NEXT next=1 table=t\ndesc 1 addr=data len=512 flags=NEXT|WRITE|INDIRECT next=2 table=t\n' +
        'desc 2 addr=s len=1 flags=WRITE table=t\ndesc 0 addr=t len=48 flags=INDIRECT\n' + GO +
        'expect u8(s) == 0 && used.ring[0].len == 513 && u8(data + 20) == 0x31   # "...sector 16": the data buffer was data\n');
    });

    it('a readable descriptor after a writable one', () => {
      broken(`${chain(0, 0, 512)}desc 2 addr=status len=1 flags=0\n${GO}`, 'Incorrect order for descriptors');
    });

    it('a zero-length buffer; a descriptor beyond guest memory; one that runs off its end', () => {
      broken(`${chain(0, 0, 512)}desc 1 addr=data len=0 flags=NEXT|WRITE next=2\n${GO}`, 'virtio: zero sized buffers are not allowed');
      broken(`${chain(0, 0, 512)}desc 1 addr=0xffffffffffff0000 len=8192 flags=NEXT|WRITE next=2\n${GO}`, 'virtio: bogus descriptor or out of resources');
      broken(`${chain(0, 0, 512)}desc 1 addr=0x3ffff00 len=512 flags=NEXT|WRITE next=2\n${GO}`, 'virtio: bogus descriptor or out of resources');
    });

    it('more than 1024 sg entries in one indirect table', () => {
      const n = 1030;
      const lines = ['queue 0', 'buf hdr 16', 'buf b 64', `buf t ${n * 16}`, 'desc 0 addr=hdr len=16 flags=NEXT next=1 table=t'];
      for (let i = 1; i < n; i++) lines.push(`desc ${i} addr=b len=1 flags=${i < n - 1 ? 'NEXT|WRITE' : 'WRITE'} next=${i + 1} table=t`);
      lines.push(`desc 0 addr=t len=${n * 16} flags=INDIRECT`);
      broken(lines.join('\n') + '\n' + GO, 'virtio: too many write descriptors in indirect table');
    });

    it('Virtqueue size exceeded needs num elements in flight: slow discards do it on a 16-entry queue too', () => {
      const text = fs.readFileSync(path.join(ROOT, 'samples/errors/size-exceeded.virtio'), 'utf8')
        .replace('avail-idx 256', 'avail-idx 16').replace(/== 256/g, '== 16');
      broken(text, 'Virtqueue size exceeded', { queueSize: 16 });
    });
  });

  describe('indices wrap at 65536', () => {
    it('avail-idx 65535 then avail: the entry goes in slot 65535 % num and avail.idx wraps to 0', () => {
      runOk('avail-idx 65535\navail 7\nexpect avail.idx == 0 && avail.ring[255] == 7 && avail.ring[0] == 0\n');
    });

    it('the device follows avail.idx and used.idx round the wrap: 65536 requests, then one more read', () => {
      // 32768 entries (the spec's largest split ring) so that two kicks make the full circle; the requests are of an
      // unknown type, which virtio-blk completes at once with S_UNSUPP.
      const r = runOk(`${chain(0x99, 0, null)}avail-idx 32768\nnotify\nwait\nexpect used.idx == 32768 && !device.broken\n` +
        'avail-idx 0\nnotify\nwait\nexpect used.idx == 0 && used_idx == 0 && last_avail_idx == 0 && inuse == 0 && u8(status) == 2\n' +
        'buf h2 16\nbuf d2 512\nbuf s2 1\nmem h2 le32:0 le32:0 le64:4\ndesc 5 addr=h2 len=16 flags=NEXT next=6\n' +
        'desc 6 addr=d2 len=512 flags=NEXT|WRITE next=7\ndesc 7 addr=s2 len=1 flags=WRITE\navail 5\nnotify\nwait\n' +
        'expect avail.idx == 1 && used.idx == 1 && used.ring[0].id == 5 && used.ring[0].len == 513 && u8(s2) == 0 && !device.broken\n',
      { queueSize: 32768 });
      assert.equal(r.state.queues[0].last_avail_idx, 1);
    });
  });

  describe('notifications', () => {
    it('NO_INTERRUPT is honoured without EVENT_IDX, and ignored with it', () => {
      const text = `${chain(0, 0, 512)}avail-flags 1\navail 0\nnotify\nwait\nexpect used.idx == 1\n` +
        'avail-flags 0\navail 0\nnotify\nwait\nexpect used.idx == 2\n';
      const first = lineOf(text, 'avail-flags 1');
      const second = lineOf(text, 'avail-flags 0');
      const end = lineOf(text, 'expect used.idx == 2');
      const off = runOk(text, { eventIdx: false });
      assert.equal(between(off.events, first, second).filter((e) => e.fn === 'vm_interrupt').length, 0, 'NO_INTERRUPT: no interrupt');
      assert.equal(between(off.events, second, end).filter((e) => e.fn === 'vm_interrupt').length, 1);
      const on = runOk(text, { eventIdx: true });
      assert.equal(between(on.events, first, second).filter((e) => e.fn === 'vm_interrupt').length, 1, 'EVENT_IDX: the flag means nothing');
    });

    it('used_event at the boundary of vring_need_event: an interrupt when used.idx passes it, not when it reaches it', () => {
      // Each request moves used.idx from old = n - 1 to new = n; vring_need_event(e, new, old) is (u16)(new - e - 1) < 1, i.e. e == new - 1.
      const steps: [string, boolean][] = [
        ['', true], // the first notification is always sent (signalled_used_valid is false)
        ['used-event 0\n', false], // new 2: e = 0 is behind
        ['used-event 2\n', true], // new 3: e = new - 1 = 2: the boundary, interrupt
        ['used-event 4\n', false], // new 4: e = new = 4: not yet
        ['', true], // new 5: e = 4 = new - 1: now
        ['used-event 65535\n', false], // new 6
      ];
      let text = chain(0, 0, 512);
      const marks: number[] = [];
      for (const [pre, _] of steps) {
        marks.push(text.split('\n').length);
        text += `${pre}avail 0\nnotify\nwait\n`;
      }
      marks.push(text.split('\n').length);
      text += 'expect used.idx == 6 && signalled_used == 6 && signalled_used_valid\n';
      const r = runOk(text);
      steps.forEach(([pre, irq], i) => {
        const n = between(r.events, marks[i], marks[i + 1]).filter((e) => e.fn === 'vm_interrupt').length;
        assert.equal(n, irq ? 1 : 0, `request ${i + 1} (${pre.trim() || 'used_event unchanged'})`);
      });
    });

    it('notify takes the ioeventfd with ioeventfd=on, the MMIO exit to QEMU with ioeventfd=off', () => {
      const text = `${chain(0, 0, 512)}${GO}expect u8(status) == 0\n`;
      const at = lineOf(text, 'notify');
      const on = between(runOk(text, { ioeventfd: true }).events, at, at + 1);
      assert.ok(on.some((e) => e.fn === 'ioeventfd_write' && e.thread === 'vCPU 0'));
      assert.ok(!on.some((e) => e.fn === 'virtio_mmio_write' && /offset=80/.test(e.args)), 'no MMIO exit for QueueNotify');
      const off = runOk(text, { ioeventfd: false }).events;
      const mmio = between(off, at, at + 1);
      assert.ok(mmio.some((e) => e.fn === 'virtio_mmio_write' && e.thread === 'vCPU 0' && /offset=80/.test(e.args)));
      assert.ok(mmio.some((e) => e.fn === 'virtio_blk_handle_output' && e.thread === 'vCPU 0'), 'handled on the vCPU thread');
    });
  });

  describe('virtio-blk requests built by hand (virtio_blk_handle_request)', () => {
    const status = (text: string, options: Partial<MachineOptions> = {}) => run(text, options);
    const expectStatus = (text: string, st: number, usedLen: number) =>
      runOk(`${text}${GO}expect !device.broken && u8(status) == ${st} && used.idx == 1 && used.ring[0].len == ${usedLen}\n`);

    it('no status descriptor (the header alone); a read-only status descriptor; a header shorter than 16 bytes', () => {
      const hdrOnly = 'queue 0\nbuf hdr 16\nmem hdr le32:0 le32:0 le64:0\ndesc 0 addr=hdr len=16 flags=0\n' + GO;
      assert.deepEqual(status(hdrOnly).state.device.errors, ['virtio-blk missing headers']);
      assert.deepEqual(status(`${chain(1, 0, 512, 'NEXT')}desc 2 addr=status len=1 flags=0\n${GO}`).state.device.errors, ['virtio-blk missing headers']);
      assert.deepEqual(status(`${chain(0, 0, 512)}desc 0 addr=hdr len=15 flags=NEXT next=1\n${GO}`).state.device.errors, ['virtio-blk request outhdr too short']);
      // The header may be split over several readable descriptors: QEMU copies 16 bytes across them.
      expectStatus(`${chain(0, 0, 512)}buf h2 8\nmem h2 le64:0\ndesc 0 addr=hdr len=8 flags=NEXT next=3\ndesc 3 addr=h2 len=8 flags=NEXT next=1\n`, 0, 513);
    });

    it('a sector past the capacity is S_IOERR; so is a read that runs past it', () => {
      expectStatus(chain(0, 32768, 512), 1, 513);
      expectStatus(chain(0, 32767, 1024), 1, 1025);
      expectStatus(chain(0, 32767, 512), 0, 513);
      expectStatus(chain(1, 32768, 512, 'NEXT'), 1, 1);
    });

    it('an unknown type is S_UNSUPP', () => {
      expectStatus(chain(0x99, 0, 512), 2, 513);
      expectStatus(chain(0x99, 0, null), 2, 1);
    });

    it('GET_ID into a buffer shorter than 20 bytes gets as much of the serial as fits', () => {
      const r = expectStatus(chain(8, 0, 8), 0, 9);
      assert.equal(Buffer.from(r.bufs.data.hex, 'hex').toString('latin1'), 'VIRTIO-D');
      const full = expectStatus(chain(8, 0, 20), 0, 21);
      assert.equal(Buffer.from(full.bufs.data.hex, 'hex').toString('latin1'), 'VIRTIO-DEBUG-0001\0\0\0');
    });

    it('DISCARD and WRITE_ZEROES segments: the range reads back as zeros; bad flags, types and sizes are S_UNSUPP or S_IOERR', () => {
      const seg = (type: number, sector: number, count: number, flags: number, segLen = 16) =>
        'queue 0\nbuf hdr 16\nbuf seg 32\nbuf status 1\nbuf data 512\nbuf h2 16\nbuf s2 1\n' +
        `mem hdr le32:${type} le32:0 le64:0\nmem seg le64:${sector} le32:${count} le32:${flags} le64:${sector} le32:1 le32:0\n` +
        `desc 0 addr=hdr len=16 flags=NEXT next=1\ndesc 1 addr=seg len=${segLen} flags=NEXT next=2\ndesc 2 addr=status len=1 flags=WRITE\n${GO}` +
        // then read the first sector of the range back
        `mem h2 le32:0 le32:0 le64:${sector}\ndesc 3 addr=h2 len=16 flags=NEXT next=4\ndesc 4 addr=data len=512 flags=NEXT|WRITE next=5\n` +
        'desc 5 addr=s2 len=1 flags=WRITE\navail 3\nnotify\nwait\n';
      const check = (text: string, st: number, zeroed: boolean) =>
        runOk(`${text}expect !device.broken && u8(status) == ${st} && used.ring[0].len == 1 && u8(s2) == 0 && (u8(data) == 0) == ${zeroed}\n`);
      check(seg(11, 64, 8, 0), 0, true); // DISCARD
      check(seg(13, 80, 8, 1), 0, true); // WRITE_ZEROES with UNMAP
      check(seg(13, 96, 8, 0), 0, true); // WRITE_ZEROES
      check(seg(11, 64, 8, 1), 2, false); // DISCARD has no flags
      check(seg(13, 96, 8, 2), 2, false); // an unknown WRITE_ZEROES flag
      check(seg(10, 64, 8, 0), 2, false); // DISCARD without the OUT bit
      check(seg(11, 64, 8, 0, 32), 2, false); // two segments: the device offers max_discard_seg 1
      check(seg(11, 32760, 16, 0), 1, false); // past the capacity
    });
  });

  describe('a raw statement is a scenario line', () => {
    it('a line breakpoint stops before it: the memory is untouched until the line runs', () => {
      const text = 'buf b 4\nmem b le32:0xdeadbeef\nexpect le32(b) == 0xdeadbeef\n';
      const { m } = boot(text, {}, FILE);
      try {
        const r = m.runUntil((ev) => ev.fn.side === 'scenario' && (ev.frame.a0 as Loc).line === 2);
        assert.equal(r, 'stopped');
        const b = m.guest.rawBufs.get('b')!;
        assert.equal(m.mem.read32(b.addr), 0);
        assert.equal(m.stopEvent?.thread.name, 'vCPU 0');
        runToIdle(m);
        assert.equal(m.mem.read32(b.addr), 0xdeadbeef);
        assert.deepEqual(m.guest.expects.map((x) => x.ok), [true]);
      } finally {
        m.close();
      }
    });
  });
});
