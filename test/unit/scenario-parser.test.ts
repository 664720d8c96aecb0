/**
 * Tests of the `.virtio` scenario parser: the statement forms of DESIGN.md,
 * the byte-exact data a write carries, and the exact `file:line:col: reason`
 * of each error, since editors and the CLI rely on that position.
 */
import assert from 'node:assert/strict';
import { parseScenario } from '../../src/machine/scenario/parser';
import { ScenarioError } from '../../src/machine/scenario/errors';
import type { RequestStmt, Stmt } from '../../src/machine/scenario/ast';

const FILE = 't.virtio';

function parse(text: string): Stmt[] {
  return parseScenario(text, FILE).statements;
}

function one(text: string): Stmt {
  const s = parse(text);
  assert.equal(s.length, 1);
  return s[0];
}

function write(text: string): Extract<RequestStmt, { kind: 'write' }> {
  const s = one(text);
  assert.equal(s.kind, 'write');
  return s;
}

/** Asserts the whole message, then that the parts agree with it. */
function fails(text: string, message: string): void {
  assert.throws(() => parseScenario(text, FILE), (e: unknown) => {
    assert.ok(e instanceof ScenarioError, `not a ScenarioError: ${String(e)}`);
    assert.equal(e.message, message);
    assert.equal(`${e.file}:${e.line}:${e.col}: ${e.reason}`, message);
    return true;
  });
}

describe('scenario parser', () => {
  describe('statements', () => {
    it('parses read with its position and source text', () => {
      assert.deepEqual(one('  read 8 4096   # the second page'), {
        kind: 'read', sector: 8, bytes: 4096,
        loc: { file: FILE, line: 1, col: 3, text: 'read 8 4096' },
      });
    });

    it('parses flush, get-id and wait', () => {
      const s = parse('flush\nget-id\nwait\n');
      assert.deepEqual(s.map((x) => [x.kind, x.loc.line]), [['flush', 1], ['get-id', 2], ['wait', 3]]);
    });

    it('parses discard', () => {
      assert.deepEqual(one('discard 64 8'), {
        kind: 'discard', sector: 64, count: 8, loc: { file: FILE, line: 1, col: 1, text: 'discard 64 8' },
      });
    });

    it('parses write-zeroes with and without unmap', () => {
      const [a, b] = parse('write-zeroes 0 16\nwrite-zeroes 16 1 unmap');
      assert.equal(a.kind === 'write-zeroes' && a.unmap, false);
      assert.equal(b.kind === 'write-zeroes' && b.unmap, true);
      assert.deepEqual(b.kind === 'write-zeroes' && [b.sector, b.count], [16, 1]);
    });

    it('accepts 0x-hex numbers and the largest sector', () => {
      const s = one('read 0xfffffffffff 0x200');
      assert.deepEqual(s.kind === 'read' && [s.sector, s.bytes], [2 ** 44 - 1, 512]);
    });

    it('accepts 1 MiB reads', () => {
      const s = one('read 0 1048576');
      assert.equal(s.kind === 'read' && s.bytes, 1048576);
    });
  });

  describe('write data', () => {
    it('pads text to a whole sector and keeps the original length', () => {
      const w = write('write 8 "hello, virtio"');
      assert.equal(w.sector, 8);
      assert.equal(w.dataLen, 13);
      assert.equal(w.data.length, 512);
      assert.equal(w.data.subarray(0, 13).toString('latin1'), 'hello, virtio');
      assert.ok(w.data.subarray(13).every((b) => b === 0));
    });

    it('decodes every escape', () => {
      const w = write('write 0 "a\\n\\t\\r\\0\\\\\\"\\x41\\xfF"');
      assert.deepEqual([...w.data.subarray(0, w.dataLen)], [0x61, 0x0a, 0x09, 0x0d, 0x00, 0x5c, 0x22, 0x41, 0xff]);
    });

    it('encodes non-ASCII text as UTF-8', () => {
      const w = write('write 0 "é😀"');
      assert.deepEqual(w.data.subarray(0, w.dataLen), Buffer.from('é😀', 'utf8'));
      assert.equal(w.dataLen, 6);
    });

    it('decodes hex data in either case', () => {
      const w = write('write 1 hex:00fFa5');
      assert.deepEqual([...w.data.subarray(0, 4)], [0x00, 0xff, 0xa5, 0x00]);
      assert.equal(w.dataLen, 3);
      assert.equal(w.data.length, 512);
    });

    it('pads 513 bytes to two sectors and leaves 512 bytes alone', () => {
      assert.equal(write(`write 0 hex:${'ab'.repeat(513)}`).data.length, 1024);
      const w = write(`write 0 hex:${'ab'.repeat(512)}`);
      assert.deepEqual([w.data.length, w.dataLen], [512, 512]);
    });

    it('keeps # and braces inside a string', () => {
      const w = write('write 0 "a # {b}" # comment');
      assert.equal(w.data.subarray(0, w.dataLen).toString(), 'a # {b}');
      assert.equal(w.loc.text, 'write 0 "a # {b}"');
    });
  });

  describe('layout', () => {
    it('skips comments and blank lines and counts lines through them', () => {
      const s = parse('# header\n\n   \n\t# indented comment\nflush # why\r\n\nread 0 512#tight');
      assert.deepEqual(s.map((x) => [x.kind, x.loc.line, x.loc.col, x.loc.text]), [
        ['flush', 5, 1, 'flush'],
        ['read', 7, 1, 'read 0 512'],
      ]);
    });

    it('parses an empty file as no statements', () => {
      assert.deepEqual(parseScenario('# nothing\n', FILE), { file: FILE, statements: [] });
    });

    it('parses a batch with its body and its own position', () => {
      const s = parse('flush\nbatch {   # one kick\n  read 0 4096\n\n  write 8 hex:01\n}  # done\nwait');
      assert.deepEqual(s.map((x) => x.kind), ['flush', 'batch', 'wait']);
      const b = s[1];
      assert.ok(b.kind === 'batch');
      assert.deepEqual(b.loc, { file: FILE, line: 2, col: 1, text: 'batch {' });
      assert.deepEqual(b.body.map((x) => [x.kind, x.loc.line, x.loc.col]), [['read', 3, 3], ['write', 5, 3]]);
      assert.equal(s[2].loc.line, 7);
    });

    it('parses the DESIGN.md sample', () => {
      const s = parse([
        '# read the first sector, write a greeting, flush',
        'read 0 512',
        'write 8 "hello, virtio"',
        'flush',
        'get-id',
        'discard 64 8',
        'batch {            # several requests, one kick',
        '  read 0 4096',
        '  read 8 4096',
        '}',
        'wait               # until every request is back',
      ].join('\n'));
      assert.deepEqual(s.map((x) => x.kind), ['read', 'write', 'flush', 'get-id', 'discard', 'batch', 'wait']);
    });
  });

  describe('errors', () => {
    it('unknown statement', () => {
      fails('flush\n  frobnicate 1',
        "t.virtio:2:3: unknown statement 'frobnicate' (expected one of: read, write, flush, get-id, discard, write-zeroes, batch, wait, queue, buf, mem, desc, avail, avail-idx, avail-flags, used-event, notify, expect)");
    });

    it('unknown statement in upper case hints at lower case', () => {
      fails('READ 0 512', "t.virtio:1:1: unknown statement 'READ' (keywords are lower case: did you mean 'read'?)");
    });

    it('a line that starts with a string', () => {
      fails('"read"', 't.virtio:1:1: expected a statement, found a string "read"');
    });

    it('bad numbers', () => {
      const what = 'must be a non-negative integer (decimal or 0x hex)';
      fails('read 12abc 512', `t.virtio:1:6: read: SECTOR ${what}, found '12abc'`);
      fails('read -1 512', `t.virtio:1:6: read: SECTOR ${what}, found '-1'`);
      fails('read 0 1.5', `t.virtio:1:8: read: BYTES ${what}, found '1.5'`);
      fails('discard 0 0xg', `t.virtio:1:11: discard: COUNT ${what}, found '0xg'`);
      fails('read "0" 512', `t.virtio:1:6: read: SECTOR ${what}, found a string "0"`);
    });

    it('numbers out of range', () => {
      fails('read 0x100000000000 512',
        't.virtio:1:6: read: SECTOR 0x100000000000 is too large (SECTOR*512 must be below 2^53)');
      fails('read 99999999999999999999 512', 't.virtio:1:6: read: SECTOR 99999999999999999999 is too large');
      fails('discard 0 0', 't.virtio:1:11: discard: COUNT must be greater than 0');
      fails('write-zeroes 0 0x100000000',
        't.virtio:1:16: write-zeroes: COUNT must be at most 4294967295 (a 32-bit field), got 0x100000000');
    });

    it('missing argument, at the column after the last token', () => {
      fails('read 0', 't.virtio:1:7: read: missing BYTES (usage: read SECTOR BYTES)');
      fails('read   # no args', 't.virtio:1:5: read: missing SECTOR (usage: read SECTOR BYTES)');
      fails('write 8', 't.virtio:1:8: write: missing DATA (usage: write SECTOR "text" | write SECTOR hex:...)');
      fails('discard 1', 't.virtio:1:10: discard: missing COUNT (usage: discard SECTOR COUNT)');
      fails('batch', "t.virtio:1:6: batch: missing '{' (usage: batch {)");
    });

    it('extra token, at its column', () => {
      fails('read 0 512 7', "t.virtio:1:12: read: unexpected '7' after a complete statement (usage: read SECTOR BYTES)");
      fails('flush now', "t.virtio:1:7: flush: unexpected 'now' after a complete statement (usage: flush)");
      fails('wait "x"', 't.virtio:1:6: wait: unexpected a string "x" after a complete statement (usage: wait)');
      fails('write-zeroes 0 1 map',
        "t.virtio:1:18: write-zeroes: unexpected 'map' after a complete statement (usage: write-zeroes SECTOR COUNT [unmap])");
      fails('write-zeroes 0 1 unmap unmap',
        "t.virtio:1:24: write-zeroes: unexpected 'unmap' after a complete statement (usage: write-zeroes SECTOR COUNT [unmap])");
    });

    it('bytes not a multiple of 512, zero, or over 1 MiB', () => {
      fails('read 0 1000', 't.virtio:1:8: read: BYTES must be a multiple of 512, got 1000');
      fails('read 0 0', 't.virtio:1:8: read: BYTES must be greater than 0');
      fails('read 0 1049088', 't.virtio:1:8: read: BYTES must be at most 1048576, got 1049088');
    });

    it('write data over 1 MiB once padded', () => {
      fails(`write 0 hex:${'00'.repeat(1048577)}`,
        't.virtio:1:9: write: DATA is 1049088 bytes once padded to whole sectors; at most 1048576');
    });

    it('unterminated string, at its opening quote', () => {
      fails('flush\nwrite 0 "abc # not a comment', `t.virtio:2:9: unterminated string (missing closing '"')`);
      fails('write 0 "abc\\"', `t.virtio:1:9: unterminated string (missing closing '"')`);
    });

    it('bad escapes', () => {
      fails('write 0 "ab\\q"', 't.virtio:1:12: unknown escape \'\\q\' (known: \\n \\t \\r \\0 \\\\ \\" \\xNN)');
      fails('write 0 "\\x4"', "t.virtio:1:10: bad escape '\\x4\"': \\x takes exactly two hex digits");
    });

    it('bad write data', () => {
      fails('write 0 hex:abc', 't.virtio:1:9: write: hex: needs an even number of hex digits, found 3');
      fails('write 0 hex:00zz', "t.virtio:1:15: write: bad hex digit 'z' in DATA");
      fails('write 0 hex:', 't.virtio:1:9: write: hex: needs at least one byte (two hex digits)');
      fails('write 0 ""', 't.virtio:1:9: write: DATA must not be empty');
      fails('write 0 hello', `t.virtio:1:9: write: DATA must be a "quoted string" or hex:..., found 'hello'`);
    });

    it('nested batch', () => {
      fails('batch {\n  read 0 512\n  batch {\n  }\n}',
        't.virtio:3:3: batch: batches cannot be nested (the batch on line 1 is still open)');
    });

    it('wait inside a batch', () => {
      fails('batch {\n  read 0 512\n  wait\n}',
        "t.virtio:3:3: wait: not allowed inside a batch, which holds only requests (close the batch on line 1 with '}' first)");
    });

    it('errors inside a batch body point into the body', () => {
      fails('batch {\n  read 0 100\n}', 't.virtio:2:10: read: BYTES must be a multiple of 512, got 100');
      fails('batch {\n  nope\n}', "t.virtio:2:3: unknown statement 'nope' (expected one of: read, write, flush, get-id, discard, write-zeroes, batch, wait, queue, buf, mem, desc, avail, avail-idx, avail-flags, used-event, notify, expect)");
    });

    it('unclosed batch, at the batch keyword', () => {
      fails('flush\n  batch {\n  read 0 512\n  flush\n', "t.virtio:2:3: batch: unclosed batch (no '}' before the end of the file)");
    });

    it('stray }', () => {
      fails('flush\n}', "t.virtio:2:1: '}' without an open 'batch {'");
      fails('batch {\n  flush\n}\n}', "t.virtio:4:1: '}' without an open 'batch {'");
    });

    it('empty batch, at the batch keyword', () => {
      fails('batch {\n  # nothing yet\n}', "t.virtio:1:1: batch: empty batch (put at least one request between '{' and '}')");
    });

    it('batch braces out of place', () => {
      fails('batch (', "t.virtio:1:7: batch: expected '{', found '('");
      fails('batch { read 0 512', "t.virtio:1:9: batch: unexpected 'read' after '{' (the body goes on the lines below, '}' alone on its own line)");
      fails('batch {\n  flush\n} wait', "t.virtio:3:3: unexpected 'wait' after '}' (the '}' that closes a batch stands alone on its line)");
      fails('{', "t.virtio:1:1: expected a statement, found '{'");
      fails('read 0 512 }', "t.virtio:1:12: read: unexpected '}' after a complete statement (usage: read SECTOR BYTES)");
    });

    it('is a ScenarioError and an Error', () => {
      try {
        parseScenario('\n\nwait x', 'dir/a.virtio');
        assert.fail('expected a throw');
      } catch (e) {
        assert.ok(e instanceof ScenarioError && e instanceof Error);
        assert.deepEqual([e.file, e.line, e.col, e.name], ['dir/a.virtio', 3, 6, 'ScenarioError']);
      }
    });
  });

  it('does not mistake object properties for keywords', () => {
    const hint = '(expected one of: read, write, flush, get-id, discard, write-zeroes, batch, wait, queue, buf, mem, desc, avail, avail-idx, avail-flags, used-event, notify, expect)';
    fails('constructor', `t.virtio:1:1: unknown statement 'constructor' ${hint}`);
    fails('__proto__', `t.virtio:1:1: unknown statement '__proto__' ${hint}`);
  });
});
