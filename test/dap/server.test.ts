/**
 * DAP over TCP: `node dist/adapter.js --server=0` listens on 127.0.0.1 only
 * (the address it prints, and a connection to any other address of this
 * machine is refused), serves a whole session per connection (launch, a
 * breakpoint stop, the stack, variables, disconnect), and keeps serving
 * after a client disconnects.
 */
import { strict as assert } from 'node:assert';
import * as net from 'node:net';
import * as os from 'node:os';
import * as fs from 'node:fs';
import { DEFAULT_SCENARIO, fnName, sessionPerTest, sleep, tempScenario } from './helpers';

/** CPU seconds (user + system) a process has used, from /proc (Linux); null elsewhere. */
function cpuSeconds(pid: number): number | null {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
    // After "pid (comm) ": state is field 3, utime 14 and stime 15 (1-based) → indices 11 and 12 here.
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return null;
  }
}

/** An IPv4 address of this machine that is not loopback, if it has one. */
function externalIPv4(): string | null {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return null;
}

function tryConnect(host: string, port: number): Promise<'connected' | string> {
  return new Promise((resolve) => {
    const sock = net.connect({ host, port });
    const timer = setTimeout(() => {
      sock.destroy();
      resolve('timeout');
    }, 3_000);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.destroy();
      resolve('connected');
    });
    sock.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(e.code ?? e.message);
    });
  });
}

describe('dap: --server mode', function () {
  this.timeout(60_000);
  const sessions = sessionPerTest();

  it('prints its address: 127.0.0.1 and the port it was given (0: any free one)', async () => {
    const s = await sessions.server();
    assert.equal(s.listening?.host, '127.0.0.1');
    assert.ok(s.listening!.port > 0 && s.listening!.port < 65536);
  });

  it('binds 127.0.0.1 only: another address of this machine is refused', async () => {
    const s = await sessions.server();
    assert.equal(await tryConnect('127.0.0.1', s.listening!.port), 'connected');
    // A machine with no other IPv4 address has nothing else to try: loopback above is then the whole check.
    const ip = externalIPv4();
    if (ip !== null) assert.equal(await tryConnect(ip, s.listening!.port), 'ECONNREFUSED');
  });

  it('a session: launch, a breakpoint stop, the stack, variables, disconnect', async () => {
    const s = await sessions.server();
    const stop = await s.launchToStop({ scenario: DEFAULT_SCENARIO }, { filters: ['rw_complete'] });
    assert.equal(stop.body.reason, 'exception');
    assert.ok(stop.body.description?.startsWith('Paused on rw_complete'));
    const frames = await s.stack(stop.body.threadId!);
    assert.deepEqual(frames.slice(0, 5).map((f) => (f.presentationHint === 'label' ? 'label' : fnName(f))), ['virtio_blk_rw_complete', 'blk_aio_complete', 'blk_aio_read_entry', 'coroutine_trampoline', 'label']);
    assert.equal(fnName(frames[frames.length - 1]), 'main');
    const vq = await s.scope(frames[0].id, 'Virtqueue');
    const used = (await s.varAt(vq.variablesReference, ['used', 'idx'])).v;
    assert.equal(used.value, '0');
    assert.equal((await s.state()).queues[0].avail.idx, 1);
    await s.dc.disconnectRequest({});
  });

  it('stepping and a line breakpoint in the scenario over TCP', async () => {
    const s = await sessions.server();
    const stop = await s.launchToStop({ scenario: DEFAULT_SCENARIO }, { lines: [{ path: DEFAULT_SCENARIO, breakpoints: [{ line: 8 }] }] });
    assert.equal(stop.body.reason, 'breakpoint');
    await s.dc.stepInRequest({ threadId: stop.body.threadId! });
    const stepped = await s.nextStop();
    assert.equal(stepped.body.reason, 'step');
    const frames = await s.stack(stepped.body.threadId!);
    assert.equal(frames[frames.length - 1].line, 8);
  });

  it('a client that goes away without disconnect stops its machine (no run left burning the server)', async () => {
    const s = await sessions.server();
    const pid = s.serverPid!;
    assert.notEqual(cpuSeconds(pid), null, `cannot read the CPU time of the server process ${pid} from /proc`);
    // Long enough to run for many seconds (20,000 reads take about one).
    const file = tempScenario('long.virtio', Array.from({ length: 200_000 }, () => 'read 0 4096').join('\n') + '\n');
    await s.launch({ scenario: file });
    await sleep(200);
    s.dropConnection();
    await sleep(300);
    const a = cpuSeconds(pid)!;
    await sleep(1_000);
    const b = cpuSeconds(pid)!;
    assert.ok(b - a < 0.3, `the server used ${(b - a).toFixed(2)} s of CPU in 1 s after its client left`);
  });

  it('keeps serving after a client disconnects: a second session on the same server', async () => {
    const first = await sessions.server();
    await first.launchToStop({ scenario: DEFAULT_SCENARIO, stopOnEntry: true });
    await first.dc.disconnectRequest({});
    const port = first.listening!.port;
    // A second DebugClient on the same adapter process.
    const { DebugClient } = await import('@vscode/debugadapter-testsupport');
    const dc = new DebugClient('node', '', 'virtio');
    await dc.start(port);
    try {
      await dc.initializeRequest();
      const stopped = dc.waitForEvent('stopped', 20_000);
      const launched = dc.launchRequest({ scenario: DEFAULT_SCENARIO, stopOnEntry: true } as never);
      await dc.waitForEvent('initialized', 20_000);
      await dc.configurationDoneRequest();
      await launched;
      const e = await stopped;
      assert.equal(e.body.reason, 'entry');
    } finally {
      await dc.stop();
    }
  });
});
