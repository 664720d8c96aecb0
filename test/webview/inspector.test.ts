/**
 * The Virtqueue Inspector page in headless Chromium: it draws recorded
 * `virtio/state` snapshots (test/webview/fixtures, from record-fixtures.ts)
 * and ones generated at queue sizes 1,024 and 32,768; the DOM must hold the
 * numbers of the snapshot. Screenshots go to test-artifacts/webview/.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser } from 'playwright-core';
import { Inspector, NONCE, ORIGIN, launch, openInspector, violations } from './harness';
import type { Fixture } from './record-fixtures';
import { FIXTURES, stateAt } from './states';
import { webviewBundle } from './bundle';
import { formatBacktrace, BtSection, FrameInfo } from '../../src/machine/state/backtrace';
import type { StateSnapshot } from '../../src/machine/state/snapshot';
import { MAX_MEMORY_VIEW } from '../../src/inspector/protocol';

function fixture(name: string): Fixture {
  return JSON.parse(fs.readFileSync(path.join(FIXTURES, `${name}.json`), 'utf8')) as Fixture;
}

let seq = 0;
function stateMsg(f: Fixture | StateSnapshot, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const state = 'state' in f ? f.state : f;
  const stop = 'state' in f ? f.stop : { reason: 'step' };
  return { type: 'state', session: 'sess-1', seq: ++seq, stop, state, ...extra };
}

/** The `qemu bt` sections of a thread's frames, as the CLI groups them: runs of one coroutine, the first without a header. */
function btSections(frames: FrameInfo[]): BtSection[] {
  const out: BtSection[] = [];
  for (const f of frames) {
    const last = out[out.length - 1];
    if (last && last.frames[0].coroutine === f.coroutine) last.frames.push(f);
    else out.push({ coroutine: out.length === 0 ? null : f.coroutine, frames: [f] });
  }
  return out;
}

describe('webview: Virtqueue Inspector page', function () {
  this.timeout(120_000);
  let browser: Browser;
  const open: Inspector[] = [];

  before(async () => {
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
  });
  afterEach(async () => {
    for (const i of open.splice(0)) {
      const v = await violations(i.page);
      assert.deepEqual(v, [], 'no CSP violations');
      assert.deepEqual(i.problems(), [], 'no page errors');
      await i.page.context().close();
    }
  });
  async function inspector(o: Partial<Parameters<typeof openInspector>[1]> = {}): Promise<Inspector> {
    const i = await openInspector(browser, { script: await webviewBundle(), ...o });
    open.push(i);
    return i;
  }

  it('serves a strict CSP whose script nonce matches, and posts ready', async () => {
    const i = await inspector();
    const csp = await i.page.getAttribute('meta[http-equiv="Content-Security-Policy"]', 'content');
    assert.equal(csp, `default-src 'none'; style-src ${ORIGIN}; font-src ${ORIGIN}; script-src 'nonce-${NONCE}'; img-src ${ORIGIN} data:`);
    const nonce = await i.page.evaluate(() => document.querySelector('script')!.nonce);
    assert.equal(nonce, NONCE);
    assert.deepEqual(await i.posted(), [{ type: 'ready' }]);
    assert.equal(await i.page.locator('body [style]').count(), 0, 'no style attributes in the markup');
    await i.screenshot('empty');
  });

  it('draws chains, ring indices, in-flight sg lists and the blk request of a batch', async () => {
    const f = fixture('direct-batch');
    const q = f.state.queues[0];
    const i = await inspector();
    await i.send(stateMsg(f));
    const sec = i.page.locator('section.queue[data-queue="0"]');
    const attrs = await sec.evaluate((e) => ({ ...(e as HTMLElement).dataset }));
    assert.equal(attrs.availIdx, String(q.avail.idx));
    assert.equal(attrs.usedIdx, String(q.used.idx));
    assert.equal(attrs.lastAvailIdx, String(q.last_avail_idx));
    assert.equal(attrs.shadowAvailIdx, String(q.shadow_avail_idx));
    assert.equal(attrs.lastUsedIdx, String(q.driver!.last_used_idx));
    assert.ok(q.inflight.length >= 2);
    for (const e of q.inflight) {
      const el = i.page.locator(`.inflight[data-head="${e.index}"]`);
      assert.equal(await el.getAttribute('data-chain'), e.chain.join(','));
      const chips = await el.locator('[data-chain-desc]').evaluateAll((xs) => xs.map((x) => Number((x as HTMLElement).dataset.chainDesc)));
      assert.deepEqual(chips, e.chain);
      for (const dir of ['out', 'in'] as const) {
        const rows = await el.locator(`[data-sg="${dir}"]`).evaluateAll((xs) => xs.map((x) => ({ addr: Number((x as HTMLElement).dataset.addr), len: Number((x as HTMLElement).dataset.len) })));
        assert.deepEqual(rows, dir === 'out' ? e.out_sg : e.in_sg);
      }
      assert.equal(await el.locator('dl.blk').getAttribute('data-blk-type'), String(e.blk!.type));
      assert.match(await el.locator('dl.blk').innerText(), new RegExp(e.blk!.type_name));
      // Every descriptor of the chain is drawn in the chain's colour, with its head.
      for (const [pos, d] of e.chain.entries()) {
        const row = i.page.locator(`tr.desc-row[data-desc="${d}"]`);
        assert.equal(await row.getAttribute('data-chain-head'), String(e.index));
        assert.equal(await row.getAttribute('data-chain-pos'), String(pos));
      }
      assert.equal(await i.page.locator(`li.chain[data-chain-head="${e.index}"]`).getAttribute('data-chain'), e.chain.join(','));
    }
    // A descriptor in no chain is free (the batch used the first few only).
    assert.equal(await i.page.locator('tr.desc-row[data-desc="20"]').getAttribute('data-free'), '');
    assert.equal(await i.page.locator('tr.desc-row[data-desc="20"]').getAttribute('data-chain-head'), null);
    // The indices sit on their slots.
    const n = q.num;
    const marker = async (cls: string): Promise<{ slot: string | null; value: string | null }> => {
      const m = i.page.locator(`.${cls}`);
      return { slot: await m.evaluate((x) => x.closest('tr')!.getAttribute('data-avail-slot') ?? x.closest('tr')!.getAttribute('data-used-slot')), value: await m.getAttribute('data-value') };
    };
    assert.deepEqual(await marker('avail-idx-marker'), { slot: String(q.avail.idx % n), value: String(q.avail.idx) });
    assert.deepEqual(await marker('last-avail-idx-marker'), { slot: String(q.last_avail_idx % n), value: String(q.last_avail_idx) });
    assert.deepEqual(await marker('shadow-avail-idx-marker'), { slot: String(q.shadow_avail_idx % n), value: String(q.shadow_avail_idx) });
    assert.deepEqual(await marker('used-event-marker'), { slot: String(q.avail.used_event % n), value: String(q.avail.used_event) });
    assert.deepEqual(await marker('used-idx-marker'), { slot: String(q.used.idx % n), value: String(q.used.idx) });
    assert.deepEqual(await marker('last-used-idx-marker'), { slot: String(q.driver!.last_used_idx % n), value: String(q.driver!.last_used_idx) });
    assert.deepEqual(await marker('signalled-used-marker'), { slot: String(q.signalled_used % n), value: String(q.signalled_used) });
    assert.deepEqual(await marker('avail-event-marker'), { slot: String(q.used.avail_event % n), value: String(q.used.avail_event) });
    assert.match(await i.page.locator('#stop').innerText(), /virtio_blk_rw_complete/);
    await i.screenshot('batch');
  });

  it('prints every stack as the CLI prints it, coroutine sections included, and a click reveals the source', async () => {
    const f = fixture('direct-rw-complete');
    const i = await inspector();
    await i.send(stateMsg(f));
    let sawCoroutine = false;
    for (const t of f.state.threads) {
      const lines = await i.page.locator(`section.thread[data-thread-id="${t.id}"] .bt-line`).allTextContents();
      const expected = formatBacktrace(btSections(t.frames));
      assert.equal(lines.join('\n'), expected, `thread ${t.name}`);
      const sections = btSections(t.frames).filter((s) => s.coroutine !== null);
      assert.equal(await i.page.locator(`section.thread[data-thread-id="${t.id}"] .coroutine-section`).count(), sections.length);
      if (sections.length) sawCoroutine = true;
    }
    assert.ok(sawCoroutine, 'the fixture stops inside a coroutine');
    for (const c of f.state.coroutines) assert.equal(await i.page.locator(`section.coroutine[data-coroutine-addr="0x${c.addr.toString(16)}"]`).count(), 1);
    const running = f.state.threads.find((t) => t.state === 'running')!;
    const top = running.frames[0];
    await i.page.locator(`section.thread[data-thread-id="${running.id}"] .frame.link`).first().click();
    assert.deepEqual((await i.posted()).at(-1), { type: 'revealSource', file: top.file, line: top.line });
    await i.screenshot('rw-complete');
  });

  it('clicking a descriptor highlights its chain; its memory button posts openMemory', async () => {
    const f = fixture('direct-rw-complete');
    const e = f.state.queues[0].inflight[0];
    const i = await inspector();
    await i.send(stateMsg(f));
    const mid = e.chain[1];
    await i.page.locator(`tr.desc-row[data-desc="${mid}"]`).click();
    const hl = await i.page.locator('tr.desc-row.in-selected-chain').evaluateAll((xs) => xs.map((x) => Number((x as HTMLElement).dataset.desc)));
    assert.deepEqual(hl, e.chain);
    assert.equal(await i.page.locator('tr.desc-row.selected').getAttribute('data-desc'), String(mid));
    const d = f.state.queues[0].desc[mid];
    await i.page.locator('.desc-detail button.open-memory').click();
    assert.deepEqual((await i.posted()).at(-1), { type: 'openMemory', addr: d.addr, len: Math.min(MAX_MEMORY_VIEW, Math.max(1, d.len)) });
    // A chip of the in-flight element selects its descriptor too.
    await i.page.locator(`.inflight [data-chain-desc="${e.chain[0]}"]`).click();
    assert.equal(await i.page.locator('tr.desc-row.selected').getAttribute('data-desc'), String(e.chain[0]));
    await i.screenshot('selected-chain');
  });

  it('clamps openMemory to 1..MAX_MEMORY_VIEW', async () => {
    const f = fixture('direct-rw-complete');
    const s = structuredClone(f.state);
    s.queues[0].desc[10] = { addr: 0x10000, len: 1 << 20, flags: 0, next: 0 };
    s.queues[0].desc[11] = { addr: 0x20000, len: 0, flags: 0, next: 0 };
    const i = await inspector();
    await i.send(stateMsg(s));
    await i.page.locator('tr.desc-row[data-desc="10"]').click();
    await i.page.locator('.desc-detail button.open-memory').click();
    await i.page.locator('tr.desc-row[data-desc="11"]').click();
    await i.page.locator('.desc-detail button.open-memory').click();
    const p = await i.posted();
    assert.deepEqual(p.slice(-2), [
      { type: 'openMemory', addr: 0x10000, len: MAX_MEMORY_VIEW },
      { type: 'openMemory', addr: 0x20000, len: 1 },
    ]);
  });

  it('highlights what changed since the previous stop', async () => {
    const a = fixture('direct-handle-output');
    const b = fixture('direct-rw-complete');
    const i = await inspector();
    await i.send(stateMsg(a));
    assert.equal(await i.page.locator('.changed').count(), 0, 'nothing to compare the first state with');
    await i.send(stateMsg(b));
    assert.notEqual(a.state.queues[0].last_avail_idx, b.state.queues[0].last_avail_idx);
    assert.equal(await i.page.locator('[data-field="last_avail_idx"].changed').count(), 1);
    assert.equal(await i.page.locator(`.inflight[data-head="${b.state.queues[0].inflight[0].index}"].changed`).count(), 1);
    assert.ok((await i.page.locator('section.thread.changed').count()) >= 1);
    await i.screenshot('changed');
    // An explicit `previous` wins over the last state drawn.
    await i.send(stateMsg(b, { previous: b.state }));
    assert.equal(await i.page.locator('[data-field="last_avail_idx"].changed').count(), 0);
  });

  it('keeps the drawn state and the selection across a reload (webview state), then posts ready', async () => {
    const f = fixture('direct-batch');
    const i = await inspector();
    await i.send(stateMsg(f, { seq: 4242 }));
    await i.page.locator('tr.desc-row[data-desc="4"]').click();
    await i.send({ type: 'config', numberFormat: 'decimal' });
    // Both the selection and the number format saved (the click and the config message each save, 100 ms later).
    await i.page.waitForFunction(() => {
      const saved = sessionStorage.getItem('vscode-state') ?? '';
      return saved.includes('"desc":4') && saved.includes('"fmt":"decimal"');
    });
    await i.page.reload();
    await i.page.waitForSelector('body[data-drawn-seq="4242"]', { state: 'attached' });
    assert.equal(await i.page.locator('section.queue[data-queue="0"]').getAttribute('data-avail-idx'), String(f.state.queues[0].avail.idx));
    assert.equal(await i.page.locator('tr.desc-row.selected').getAttribute('data-desc'), '4');
    const addr = f.state.queues[0].inflight[0].out_sg[0].addr;
    assert.match(await i.page.locator(`.inflight [data-sg="out"][data-sg-index="0"]`).first().innerText(), new RegExp(`\\b${addr}\\b`));
    assert.deepEqual((await i.posted()).map((m) => m.type), ['ready']);
  });

  it('switches addresses and lengths between hex and decimal', async () => {
    const f = fixture('direct-rw-complete');
    const sg = f.state.queues[0].inflight[0].out_sg[0];
    const i = await inspector();
    await i.send(stateMsg(f));
    const row = i.page.locator('.inflight [data-sg="out"][data-sg-index="0"]');
    assert.match(await row.innerText(), new RegExp(`0x${sg.addr.toString(16)}`));
    await i.send({ type: 'config', numberFormat: 'decimal' });
    await i.page.waitForFunction((a) => document.querySelector('.inflight [data-sg="out"]')!.textContent!.includes(String(a)), sg.addr);
    assert.doesNotMatch(await row.innerText(), /0x/);
  });

  it('expands indirect tables under their descriptor', async () => {
    const f = fixture('raw-indirect');
    const q = f.state.queues[0];
    const t = q.indirect[0];
    const i = await inspector();
    await i.send(stateMsg(f));
    const rows = await i.page.locator(`tr.ind-row[data-indirect-of="${t.desc}"]`).count();
    assert.equal(rows, t.entries.length);
    // Right under the ring descriptor.
    const next = await i.page.locator(`tr.desc-row[data-desc="${t.desc}"] + tr`).getAttribute('data-ind');
    assert.equal(next, '0');
    const e = q.inflight[0];
    assert.equal(await i.page.locator(`.inflight[data-head="${e.index}"] [data-indirect-table]`).getAttribute('data-indirect-table'), String(t.table));
    assert.equal(await i.page.locator(`.inflight[data-head="${e.index}"] [data-sg="out"]`).count(), e.out_sg.length);
    await i.page.locator(`tr.ind-row[data-indirect-of="${t.desc}"][data-ind="1"]`).click();
    await i.page.locator('.desc-detail button.open-memory').click();
    assert.deepEqual((await i.posted()).at(-1), { type: 'openMemory', addr: t.entries[1].addr, len: t.entries[1].len });
    await i.screenshot('indirect');
  });

  it('shows a broken device and its errors', async () => {
    const f = fixture('error-looped');
    const i = await inspector();
    await i.send(stateMsg(f));
    assert.equal(await i.page.locator('#device [data-broken="true"]').count(), 1);
    assert.match(await i.page.locator('.broken-banner').innerText(), /Looped descriptor/);
    assert.match(await i.page.locator('#device .device-errors').innerText(), /Looped descriptor/);
    const status = f.state.device.status;
    assert.equal(await i.page.locator('[data-status-bit="DRIVER_OK"]').evaluate((e) => e.classList.contains('on')), (status & 4) !== 0);
    assert.equal(await i.page.locator('[data-feature="VIRTIO_F_VERSION_1"].negotiated').count(), 1);
    await i.send({ type: 'ended', session: 'sess-1' });
    assert.match(await i.page.locator('#stop').innerText(), /Session ended/);
    await i.screenshot('error-looped');
  });

  it('ignores messages that are not HostMessages', async () => {
    const f = fixture('direct-rw-complete');
    const i = await inspector();
    await i.send(stateMsg(f, { seq: 7 }));
    const bad = [null, 42, 'state', { type: 'state' }, { type: 'state', session: 's', seq: 8, stop: null, state: { device: {} } }, { type: 'nope' }, { type: 'config', numberFormat: 'octal' }];
    const broken = structuredClone(f.state) as unknown as { queues: { desc: unknown[] }[] };
    broken.queues[0].desc[3] = { addr: '<img src=x>', len: 1, flags: 0, next: 0 };
    bad.push({ type: 'state', session: 'sess-1', seq: 9, stop: null, state: broken } as never);
    for (const m of bad) await i.page.evaluate((x) => window.postMessage(x, '*'), m as never);
    await i.page.waitForTimeout(100);
    assert.equal(await i.page.getAttribute('body', 'data-drawn-seq'), '7');
    // Text from the host is text, never markup.
    await i.send({ type: 'error', message: '<img src=x onerror=alert(1)>' });
    assert.equal(await i.page.locator('.host-error img').count(), 0);
    assert.match(await i.page.locator('.host-error').innerText(), /<img src=x/);
  });

  for (const theme of ['light', 'dark', 'high-contrast'] as const) {
    it(`renders in the ${theme} theme`, async () => {
      const i = await inspector({ theme });
      await i.send(stateMsg(fixture('direct-batch')));
      const bg = await i.page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      const expected = { light: 'rgb(255, 255, 255)', dark: 'rgb(30, 30, 30)', 'high-contrast': 'rgb(0, 0, 0)' }[theme];
      assert.equal(bg, expected);
      assert.ok(await i.page.evaluate((c) => document.body.classList.contains(c), `vscode-${theme}`));
      // The codicon font loaded through the CSP.
      await i.page.evaluate(() => document.fonts.ready);
      assert.ok(await i.page.evaluate(() => document.fonts.check('16px codicon')));
      await i.screenshot(`theme-${theme}`);
    });
  }

  for (const queueSize of [1024, 32768]) {
    it(`stays virtualized at queue size ${queueSize}`, async () => {
      const state = stateAt('virtio_blk_rw_complete', { queueSize, indirectDesc: false });
      const q = state.queues[0];
      assert.equal(q.num, queueSize);
      const i = await inspector({ memoryState: true });
      const t0 = Date.now();
      await i.send(stateMsg(state));
      const ms = Date.now() - t0;
      assert.ok(ms < 5000, `drawn in ${ms} ms`);
      const rows = await i.page.locator('tr.desc-row').count();
      assert.ok(rows > 10 && rows < 200, `${rows} descriptor rows in the DOM`);
      assert.ok((await i.page.locator('tr.avail-row').count()) < 200);
      assert.equal(await i.page.locator('section.queue[data-queue="0"]').getAttribute('data-num'), String(queueSize));
      const e = q.inflight[0];
      assert.equal(await i.page.locator(`.inflight[data-head="${e.index}"]`).getAttribute('data-chain'), e.chain.join(','));
      // The spacer gives the full scroll height: the last descriptor can be scrolled to.
      await i.page.locator('.desc-scroller').evaluate((s) => (s.scrollTop = s.scrollHeight));
      await i.page.waitForSelector(`tr.desc-row[data-desc="${queueSize - 1}"]`, { state: 'attached' });
      await i.page.locator('.desc-scroller').evaluate((s) => (s.scrollTop = 0));
      await i.page.waitForSelector('tr.desc-row[data-desc="0"]', { state: 'attached' });
      await i.screenshot(`queue-${queueSize}`);
    });
  }

  it('selects among several queues with tabs', async () => {
    const s = stateAt('virtio_blk_rw_complete', { numQueues: 2 });
    assert.equal(s.queues.length, 2);
    const i = await inspector();
    await i.send(stateMsg(s));
    assert.equal(await i.page.locator('[role="tab"]').count(), 2);
    await i.page.locator('[data-queue-tab="1"]').click();
    assert.equal(await i.page.locator('section.queue[data-queue="1"]').isVisible(), true);
    assert.equal(await i.page.locator('section.queue[data-queue="0"]').isVisible(), false);
    assert.equal(await i.page.locator('[data-queue-tab="1"]').getAttribute('aria-selected'), 'true');
  });
});
