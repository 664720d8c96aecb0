/**
 * End to end, as a person would: the extension's .vsix installed into a fresh
 * code-server profile, the samples workspace opened in Chromium, F5 on the
 * default launch configuration, event breakpoints ticked in the BREAKPOINTS
 * view, CALL STACK read, the Virtqueue Inspector opened, stepping, Shift+F5.
 *
 * The ring indices the inspector draws are checked against `virtio/state`
 * from the standalone adapter (dist/adapter.js) driven through the same stops
 * with the same launch configuration: the machine is deterministic, so the
 * same stops give the same state. They are also checked against the
 * VARIABLES view, which VS Code fills from the session the page shows.
 *
 * Needs `npm run setup:e2e` (code-server in .vscode-test/, Debian's
 * Chromium). Screenshots: test-artifacts/e2e/<n>-<step>.png.
 */
import * as os from 'node:os';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser, FrameLocator, Page } from 'playwright-core';
import type { DebugProtocol } from '@vscode/debugprotocol';
import { EVENT_FILTERS } from '../../src/adapter/eventFilters';
import type { QueueSnapshot, StateSnapshot } from '../../src/machine/state/snapshot';
import { Session } from '../dap/helpers';
import {
  ARTIFACTS, CodeServer, ROOT, sharedVsix, checkPrerequisites, closeBrowser, freshProfile, installExtension,
  ROWS, launchBrowser, listRows, scrollToRow, sleep, waitFor, type Profile,
} from './harness';

const SUITE_TIMEOUT = 180_000;
const UI_TIMEOUT = 30_000;
const STEPS_OVER = 3;

const filterLabel = (id: string): string => {
  const f = EVENT_FILTERS.find((x) => x.id === id);
  if (!f) throw new Error(`no event filter '${id}' in src/adapter/eventFilters.ts`);
  return f.label;
};
const DEFAULT_FILTERS = EVENT_FILTERS.filter((f) => f.default).map((f) => f.id);

/** JSON with comments and trailing commas (launch.json) → value. */
export function parseJsonc(text: string): unknown {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      const start = i;
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === '\\') i++;
      out += text.slice(start, i + 1);
    } else if (c === '/' && text[i + 1] === '/') {
      while (i < text.length && text[i] !== '\n') i++;
      out += '\n';
    } else if (c === '/' && text[i + 1] === '*') {
      i = text.indexOf('*/', i + 2);
      if (i < 0) break;
      i++;
    } else out += c;
  }
  return JSON.parse(out.replace(/,(\s*[}\]])/g, '$1'));
}

/** The first launch configuration of the workspace, with ${workspaceFolder} resolved, as the reference run's launch arguments. */
function firstLaunchConfig(workspace: string): Record<string, unknown> {
  const file = path.join(workspace, '.vscode', 'launch.json');
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: the samples workspace has no launch configuration for F5`);
  const json = parseJsonc(fs.readFileSync(file, 'utf8')) as { configurations?: Record<string, unknown>[] };
  const first = json.configurations?.[0];
  if (!first || first.type !== 'virtio') throw new Error(`${file}: the first configuration is not of type "virtio"`);
  const resolved = JSON.parse(JSON.stringify(first).split('${workspaceFolder}').join(workspace.replace(/\\/g, '/'))) as Record<string, unknown>;
  return resolved;
}

/** What the inspector claims about queue 0, from its data attributes (the DOM contract atop media/inspector/main.ts). */
interface InspectorQueue {
  drawnSeq: number;
  availIdx: number;
  usedIdx: number;
  lastAvailIdx: number;
  shadowAvailIdx: number;
  /** Absent without a driver. */
  lastUsedIdx: number | null;
  inflight: { head: number; chain: string; out: { addr: number; len: number }[]; in: { addr: number; len: number }[] }[];
  chainHeads: number[];
  descRows: number[];
  coroutineSection: boolean;
  text: string;
}

describe('e2e: code-server 4.100.3 + Chromium: debug a virtio-blk request', function () {
  this.timeout(SUITE_TIMEOUT);
  const suiteStarted = Date.now();
  const workspace = path.resolve(process.env.E2E_WORKSPACE ?? path.join(ROOT, 'samples'));

  let profile: Profile | undefined;
  let server: CodeServer | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let ref: Session | undefined;
  let refThread = 0;
  let failedStep: string | null = null;
  /** The steps build on each other: after a failed one, the next fail at once saying why (never skipped). */
  const notAfterFailure = (): void => {
    if (failedStep) throw new Error(`not run: step '${failedStep}' failed, and this step starts where it should have ended`);
  };
  let shot = 0;
  const timings: Record<string, number> = {};

  // ---------------------------------------------------------------- UI helpers

  const screenshot = async (name: string): Promise<string> => {
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    const file = path.join(ARTIFACTS, `${++shot}-${name}.png`);
    await page.screenshot({ path: file }).catch(() => undefined);
    return file;
  };

  /** Expands or collapses one section of the Run and Debug view (VARIABLES, WATCH, CALL STACK, BREAKPOINTS). */
  const setPane = async (title: string, expanded: boolean): Promise<void> => {
    const header = page.locator('.pane-header', { has: page.locator('.title', { hasText: new RegExp(`^\\s*${title}\\s*$`, 'i') }) }).first();
    if ((await header.count()) === 0) return;
    if (((await header.getAttribute('aria-expanded')) === 'true') !== expanded) {
      await header.click();
      await sleep(150);
    }
  };
  /** Gives the CALL STACK (or VARIABLES) the whole height of the view, so its list renders every row. */
  const showOnly = async (pane: 'Call Stack' | 'Variables'): Promise<void> => {
    for (const p of ['Variables', 'Watch', 'Breakpoints', 'Call Stack']) if (p !== pane) await setPane(p, false);
    await setPane(pane, true);
  };

  /** Every row of the CALL STACK, after "Load More Stack Frames" was clicked as often as it is offered. */
  const callStack = async (): Promise<string[]> => {
    await showOnly('Call Stack');
    const list = page.locator('.debug-call-stack .monaco-list').first();
    for (let i = 0; i < 10; i++) {
      const more = page.locator(`.debug-call-stack ${ROWS}`, { hasText: /^\s*Load More Stack Frames\s*$/i }).first();
      if (!(await scrollToRow(page, list, more))) break;
      await more.click({ timeout: 2000 }).catch(() => undefined);
      await sleep(300);
    }
    return listRows(list);
  };
  const variables = async (): Promise<string[]> => {
    await showOnly('Variables');
    return listRows(page.locator('.debug-variables .monaco-list').first());
  };
  const breakpointsView = async (): Promise<string[]> => {
    await setPane('Breakpoints', true);
    return listRows(page.locator('.debug-breakpoints .monaco-list').first());
  };
  const notifications = async (): Promise<string> =>
    (await page.locator('.notifications-toasts').allInnerTexts().catch(() => [])).join(' | ').replace(/\s+/g, ' ');
  const inspectorFrame = (): FrameLocator => page.frameLocator('iframe.webview.ready').first().frameLocator('#active-frame');
  const inspectorText = async (): Promise<string> =>
    (await inspectorFrame().locator('body').innerText({ timeout: 2000 }).catch(() => '(no inspector webview)')).replace(/\s+/g, ' ').slice(0, 3000);

  /**
   * Runs one step: a screenshot when it is done, and on failure an Error that
   * names the step and says what was on screen (CALL STACK, toolbar, notifications, …).
   */
  const step = async (name: string, fn: () => Promise<void>, extra?: () => Promise<string>): Promise<void> => {
    const t0 = Date.now();
    try {
      await fn();
      timings[name] = (Date.now() - t0) / 1000;
      await screenshot(name);
    } catch (e) {
      failedStep = name;
      const file = page ? await screenshot(`${name}-FAILED`) : '(no page)';
      const seen: string[] = [];
      if (page) {
        seen.push(`debug toolbar visible: ${await page.locator('.debug-toolbar').isVisible().catch(() => false)}`);
        seen.push(`CALL STACK:\n  ${(await callStack().catch(() => [])).join('\n  ') || '(empty)'}`);
        seen.push(`notifications: ${(await notifications()) || '(none)'}`);
        if (extra) seen.push(await extra().catch((x: unknown) => `(could not read: ${String(x)})`));
      }
      throw new Error(`e2e step '${name}' failed: ${(e as Error).message}\nscreenshot: ${file}\n${seen.join('\n')}`);
    }
  };

  const runCommand = async (title: string): Promise<void> => {
    await page.keyboard.press('F1');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
    await input.fill(`>${title}`);
    const row = page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first();
    await row.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
    await page.keyboard.press('Enter');
    await page.locator('.quick-input-widget').waitFor({ state: 'hidden', timeout: UI_TIMEOUT });
  };

  const openRunAndDebug = async (): Promise<void> => {
    if (!(await page.locator('.debug-breakpoints').isVisible().catch(() => false))) {
      await runCommand('View: Show Run and Debug');
    }
    // The BREAKPOINTS section may be collapsed: open it.
    const header = page.locator('.pane-header', { hasText: /^\s*Breakpoints/i }).first();
    await header.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
    if ((await header.getAttribute('aria-expanded')) === 'false') await header.click();
  };

  /** The checkbox of an event filter's row in the BREAKPOINTS view, if the view lists it. */
  const filterCheckbox = (id: string) =>
    page.locator('.debug-breakpoints .monaco-list-row', { hasText: filterLabel(id) }).locator('input[type="checkbox"]').first();

  const tickFilter = async (id: string): Promise<void> => {
    await setPane('Breakpoints', true);
    const box = filterCheckbox(id);
    await box.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
    if (!(await box.isChecked())) await box.click();
    await waitFor(`the '${filterLabel(id)}' checkbox to be ticked`, async () => ((await box.isChecked()) ? true : undefined), 5000);
  };

  const toolbarVisible = (): Promise<boolean> => page.locator('.debug-toolbar').isVisible().catch(() => false);

  /** Waits for the CALL STACK to show a stopped stack whose top frame is `fn`; returns all its rows. */
  const waitForStop = async (fn: string): Promise<string[]> => {
    let last: string[] = [];
    return waitFor(`a stop in ${fn} in the CALL STACK (last seen: ${JSON.stringify(last.slice(0, 8))})`, async () => {
      const rows = await page.locator('.debug-call-stack .monaco-list-row').allInnerTexts();
      last = rows.map((r) => r.replace(/\s+/g, ' ').trim());
      return last.some((r) => r.startsWith(`${fn} (`) || r.startsWith(`${fn}(`)) ? callStack() : undefined;
    }, UI_TIMEOUT, 250);
  };

  /** Clicks into the CALL STACK's top frame (as a person does before pressing keys) so the workbench has focus. */
  const focusWorkbench = async (): Promise<void> => {
    await page.locator('.part.statusbar').first().hover();
    await page.locator('.debug-call-stack .monaco-list-row.selected, .debug-call-stack .monaco-list-row.focused').first().click({ timeout: 2000 }).catch(() => undefined);
  };

  const readInspector = async (): Promise<InspectorQueue> => {
    const f = inspectorFrame();
    const q = f.locator('section.queue[data-queue="0"]');
    await q.waitFor({ state: 'attached', timeout: UI_TIMEOUT });
    const num = async (attr: string, optional = false): Promise<number | null> => {
      const v = await q.getAttribute(attr);
      if (v === null && optional) return null;
      if (v === null || !/^\d+$/.test(v.trim())) throw new Error(`section.queue[data-queue="0"] has ${attr}=${JSON.stringify(v)}`);
      return Number(v);
    };
    const seq = await f.locator('body').getAttribute('data-drawn-seq');
    const inflight = await q.locator('.inflight[data-head]').evaluateAll((els) =>
      els.map((e) => {
        const sg = (dir: string) =>
          Array.from(e.querySelectorAll(`[data-sg="${dir}"]`)).map((r) => ({ addr: Number(r.getAttribute('data-addr')), len: Number(r.getAttribute('data-len')) }));
        return { head: Number(e.getAttribute('data-head')), chain: e.getAttribute('data-chain') ?? '', out: sg('out'), in: sg('in') };
      }),
    );
    // Runs in the page: the attribute name goes in as the argument (a closure would not survive serialisation).
    const ints = (els: Element[], attr: string) => [...new Set(els.map((e) => Number(e.getAttribute(attr))))];
    return {
      drawnSeq: seq === null ? -1 : Number(seq),
      availIdx: (await num('data-avail-idx'))!,
      usedIdx: (await num('data-used-idx'))!,
      lastAvailIdx: (await num('data-last-avail-idx'))!,
      shadowAvailIdx: (await num('data-shadow-avail-idx'))!,
      lastUsedIdx: await num('data-last-used-idx', true),
      inflight,
      chainHeads: await q.locator('.chains .chain[data-chain-head]').evaluateAll(ints, 'data-chain-head'),
      descRows: await q.locator('[data-desc]').evaluateAll(ints, 'data-desc'),
      coroutineSection: (await f.locator('.coroutine-section').count()) > 0,
      text: await inspectorText(),
    };
  };

  /** Differences between what the inspector draws and `virtio/state` of the reference run, as sentences. */
  const compareInspector = (ui: InspectorQueue, q: QueueSnapshot): string[] => {
    const bad: string[] = [];
    const eq = (what: string, got: unknown, want: unknown): void => {
      if (JSON.stringify(got) !== JSON.stringify(want)) bad.push(`${what}: inspector ${JSON.stringify(got)}, virtio/state ${JSON.stringify(want)}`);
    };
    eq('avail.idx', ui.availIdx, q.avail.idx);
    eq('used.idx', ui.usedIdx, q.used.idx);
    eq('last_avail_idx', ui.lastAvailIdx, q.last_avail_idx);
    eq('shadow_avail_idx', ui.shadowAvailIdx, q.shadow_avail_idx);
    eq('driver last_used_idx', ui.lastUsedIdx, q.driver ? q.driver.last_used_idx : null);
    eq('in-flight heads', ui.inflight.map((x) => x.head).sort(), q.inflight.map((e) => e.index).sort());
    for (const el of q.inflight) {
      const drawn = ui.inflight.find((x) => x.head === el.index);
      if (!drawn) continue;
      eq(`head ${el.index}: chain`, drawn.chain, el.chain.join(','));
      eq(`head ${el.index}: out_sg`, drawn.out, el.out_sg.map((x) => ({ addr: x.addr, len: x.len })));
      eq(`head ${el.index}: in_sg`, drawn.in, el.in_sg.map((x) => ({ addr: x.addr, len: x.len })));
      if (!ui.chainHeads.includes(el.index)) bad.push(`no descriptor chain drawn for head ${el.index} (.chains .chain[data-chain-head="${el.index}"])`);
      if (!ui.descRows.includes(el.index)) bad.push(`descriptor ${el.index} (the head) is not drawn ([data-desc="${el.index}"])`);
    }
    return bad;
  };

  /** A `Name = value` row of the VARIABLES view, as a number. */
  const variableNumber = (rows: string[], name: string): number | undefined => {
    const re = new RegExp(`^${name}\\s*[:=]\\s*(\\d+)\\b`);
    for (const r of rows) {
      const m = re.exec(r);
      if (m) return Number(m[1]);
    }
    return undefined;
  };

  // ---------------------------------------------------------------- reference run

  const refLaunch = async (filters: string[]): Promise<void> => {
    ref = await Session.stdio();
    await ref.launch(firstLaunchConfig(workspace), { filters });
  };
  const refStop = async (): Promise<DebugProtocol.StoppedEvent> => {
    if (!ref) throw new Error('no reference session');
    const s = await ref.nextStop();
    refThread = s.body.threadId ?? refThread;
    return s;
  };
  const refState = async (): Promise<StateSnapshot> => {
    if (!ref) throw new Error('no reference session');
    return ref.state();
  };
  const refTopFrame = async (): Promise<DebugProtocol.StackFrame> => {
    if (!ref) throw new Error('no reference session');
    return (await ref.stack(refThread))[0];
  };

  // ---------------------------------------------------------------- lifecycle

  before(async function () {
    checkPrerequisites();
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    for (const f of fs.readdirSync(ARTIFACTS)) if (/^\d+-.*\.png$/.test(f)) fs.rmSync(path.join(ARTIFACTS, f), { force: true });
    let t = Date.now();
    profile = freshProfile();
    const vsix = await sharedVsix(os.tmpdir());
    timings.package = (Date.now() - t) / 1000;
    t = Date.now();
    await installExtension(profile, vsix);
    timings.install = (Date.now() - t) / 1000;
    t = Date.now();
    server = await CodeServer.start(profile, workspace);
    browser = await launchBrowser();
    const context = await browser.newContext({ viewport: { width: 1600, height: 1300 } });
    page = await context.newPage();
    await page.goto(server.url, { timeout: UI_TIMEOUT });
    await page.locator('.monaco-workbench').waitFor({ state: 'visible', timeout: 60_000 });
    // The folder is open when the explorer lists its files.
    await page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'default.virtio' }).first().waitFor({ state: 'visible', timeout: UI_TIMEOUT });
    timings.workbench = (Date.now() - t) / 1000;
    await screenshot('workbench');
  });

  after(async function () {
    this.timeout(60_000);
    await ref?.close().catch(() => undefined);
    await closeBrowser(browser);
    await server?.stop();
    if (profile) fs.rmSync(profile.root, { recursive: true, force: true });
    const seconds = Math.round((Date.now() - suiteStarted) / 100) / 10;
    console.log(JSON.stringify({ e2e_step_seconds: timings }));
    console.log(JSON.stringify({ figure: 'e2e_suite_seconds', value: seconds }));
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed' && server) console.log(`code-server log (end):\n${server.log(2000)}`);
  });

  // ---------------------------------------------------------------- the steps

  it('1. F5 with the handle_output event breakpoint stops in virtio_blk_handle_output, main-loop frames below', async function () {
    notAfterFailure();
    await step('f5-handle-output', async () => {
      await openRunAndDebug();
      // Event filters are listed once a session of the type has said which it has:
      // on a fresh profile, a person runs once (the default scenario runs to its end),
      // then ticks the filter and presses F5 again.
      if (!(await filterCheckbox('handle_output').isVisible().catch(() => false))) {
        await page.keyboard.press('F5');
        await waitFor(`'${filterLabel('handle_output')}' in the BREAKPOINTS view after a first F5`, async () =>
          ((await filterCheckbox('handle_output').isVisible().catch(() => false)) ? true : undefined), UI_TIMEOUT);
        await screenshot('first-run-filters');
      }
      await tickFilter('handle_output');
      // If that first session is still there (it stopped, or is still running), end it so the real run starts fresh.
      if (await toolbarVisible()) {
        await page.keyboard.press('Shift+F5');
        await page.locator('.debug-toolbar').waitFor({ state: 'hidden', timeout: UI_TIMEOUT });
      }
      await page.keyboard.press('F5');
      const rows = await waitForStop('virtio_blk_handle_output');
      for (const fn of ['virtio_blk_handle_output', 'main_loop_wait', 'qemu_main_loop']) {
        if (!rows.some((r) => r.startsWith(`${fn} (`))) throw new Error(`CALL STACK has no ${fn} frame`);
      }
      if (!(await toolbarVisible())) throw new Error('the debug toolbar is not shown at the stop');
      await refLaunch([...DEFAULT_FILTERS, 'handle_output']);
      const s = await refStop();
      if (!/handle_output/.test(s.body.description ?? s.body.text ?? '')) throw new Error(`the reference run stopped elsewhere: ${JSON.stringify(s.body)}`);
    }, async () => `BREAKPOINTS:\n  ${(await breakpointsView()).join('\n  ')}`);
  });

  it('2. continue to rw_complete: the coroutine stack, the "Coroutine at 0x…" label and the frames that entered it', async function () {
    notAfterFailure();
    await step('rw-complete-coroutine', async () => {
      await tickFilter('rw_complete');
      await focusWorkbench();
      await page.keyboard.press('F5');
      const rows = await waitForStop('virtio_blk_rw_complete');
      const label = rows.findIndex((r) => /^Coroutine at 0x[0-9a-f]+:?/.test(r));
      if (label < 0) throw new Error('CALL STACK has no "Coroutine at 0x…" row');
      const above = rows.slice(0, label);
      const below = rows.slice(label + 1);
      for (const fn of ['virtio_blk_rw_complete', 'blk_aio_complete', 'blk_aio_read_entry', 'coroutine_trampoline']) {
        if (!above.some((r) => r.startsWith(`${fn} (`))) throw new Error(`the coroutine's own stack has no ${fn} frame above the label`);
      }
      for (const fn of ['qemu_coroutine_switch', 'aio_co_enter', 'virtio_blk_handle_output', 'main_loop_wait']) {
        if (!below.some((r) => r.startsWith(`${fn} (`))) throw new Error(`no ${fn} frame below the "Coroutine at" label`);
      }
      if (!ref) throw new Error('no reference session');
      await ref.dc.setExceptionBreakpointsRequest({ filters: [...DEFAULT_FILTERS, 'handle_output', 'rw_complete'] });
      await ref.dc.continueRequest({ threadId: refThread });
      const s = await refStop();
      if (!/rw_complete/.test(s.body.description ?? s.body.text ?? '')) throw new Error(`the reference run stopped elsewhere: ${JSON.stringify(s.body)}`);
    });
  });

  let seqBefore = -1;

  it('3. the Virtqueue Inspector draws the in-flight chain, its sg lists, and the ring indices of virtio/state', async function () {
    notAfterFailure();
    let ui: InspectorQueue | undefined;
    let want: QueueSnapshot | undefined;
    await step('inspector', async () => {
      await runCommand('Show Virtqueue Inspector');
      await inspectorFrame().locator('section.queue[data-queue="0"]').waitFor({ state: 'attached', timeout: UI_TIMEOUT });
      want = (await refState()).queues[0];
      if (want.inflight.length === 0) throw new Error('the reference state has no in-flight element at rw_complete');
      // The page may draw an earlier state first: wait until it shows the one of this stop.
      ui = await waitFor('the inspector to agree with virtio/state', async () => {
        const got = await readInspector();
        return compareInspector(got, want!).length === 0 ? got : undefined;
      }, UI_TIMEOUT).catch(async (e: Error) => {
        const got = await readInspector();
        throw new Error(`${e.message}: ${compareInspector(got, want!).join('; ')}`);
      });
      if (!ui.coroutineSection) throw new Error('the inspector has no .coroutine-section');
      // The VARIABLES view shows the same session: its Virtqueue 0 scope must agree too.
      await showOnly('Variables');
      const scope = page.locator('.debug-variables .monaco-list-row', { hasText: /^\s*Virtqueue 0/ }).first();
      await scope.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
      if ((await scope.getAttribute('aria-expanded')) === 'false') await scope.click();
      const vars = await waitFor('last_avail_idx in the VARIABLES view', async () => {
        const rows = await variables();
        return variableNumber(rows, 'last_avail_idx') !== undefined ? rows : undefined;
      }, UI_TIMEOUT);
      const lastAvail = variableNumber(vars, 'last_avail_idx');
      const inuse = variableNumber(vars, 'inuse');
      if (lastAvail !== ui.lastAvailIdx) throw new Error(`VARIABLES shows last_avail_idx = ${lastAvail}, the inspector ${ui.lastAvailIdx}`);
      if (inuse !== undefined && inuse !== ui.inflight.length) throw new Error(`VARIABLES shows inuse = ${inuse}, the inspector draws ${ui.inflight.length} in-flight elements`);
      seqBefore = ui.drawnSeq;
      if (seqBefore < 0) throw new Error('the inspector has no body[data-drawn-seq]');
    }, async () => `webview frames: ${page.frames().map((fr) => fr.url().replace(/\?.*$/, '').slice(0, 120)).join(' , ')}\ninspector: ${await inspectorText()}\nvirtio/state queue 0: ${JSON.stringify(want && { avail: want.avail.idx, used: want.used.idx, last_avail_idx: want.last_avail_idx, shadow_avail_idx: want.shadow_avail_idx, driver: want.driver, inflight: want.inflight.map((e) => ({ index: e.index, chain: e.chain, out: e.out_sg, in: e.in_sg })) })}`);
  });

  it("3b. the inspector's links: a buffer opens guest memory as virtio/state's session reads it, a frame opens its model source", async function () {
    notAfterFailure();
    await step('inspector-links', async () => {
      const f = inspectorFrame();
      const sg = f.locator('li.inflight tr[data-sg="out"]').first();
      const addr = Number(await sg.getAttribute('data-addr'));
      const len = Number(await sg.getAttribute('data-len'));
      await sg.locator('button.open-memory').click();
      const title = `guest memory 0x${addr.toString(16)}+${len}`;
      await page.locator('.tabs-container .tab', { hasText: title }).first().waitFor({ timeout: UI_TIMEOUT });
      // The dump's first line: the address, then the bytes the reference session reads there, in pairs.
      if (!ref) throw new Error('no reference session');
      const bytes = await ref.readMemory(`0x${addr.toString(16)}`, Math.min(16, len));
      const pairs = (bytes.toString('hex').match(/.{1,4}/g) ?? []).join(' ');
      const want = `${addr.toString(16).padStart(12, '0')}: ${pairs}`;
      await waitFor(`the memory document to show "${want}"`, async () => {
        const lines = await page.locator('.monaco-editor .view-lines .view-line').allInnerTexts();
        return lines.some((l) => l.replace(/\u00a0/g, ' ').startsWith(want)) ? true : undefined;
      }, UI_TIMEOUT);

      // A frame of the coroutine section, in a file no stop has opened: its source opens at its line.
      const frame = f.locator('.frame.link[data-file$="io_uring.ts"]').first();
      const line = Number(await frame.getAttribute('data-line'));
      await frame.click();
      await page.locator('.tabs-container .tab.active', { hasText: 'io_uring.ts' }).first().waitFor({ timeout: UI_TIMEOUT });
      await waitFor(`the cursor at line ${line} of io_uring.ts`, async () =>
        (new RegExp(`Ln ${line}, Col 1\\b`).test(await page.locator('.part.statusbar').innerText()) ? true : undefined), UI_TIMEOUT);
      // Neither opened over the inspector: it is still the active tab of its group, and the dump is still open.
      if ((await page.locator('.tabs-container .tab.active', { hasText: 'Virtqueue Inspector' }).count()) === 0) {
        throw new Error('the inspector is no longer in view: a link opened its target in the inspector\'s own group');
      }
      if ((await page.locator('.tabs-container .tab', { hasText: title }).count()) === 0) throw new Error(`the tab "${title}" closed when the source opened`);
    }, async () => `inspector: ${await inspectorText()}\nstatus bar: ${(await page.locator('.part.statusbar').innerText().catch(() => '')).replace(/\s+/g, ' ')}`);
  });

  it(`4. step over ${STEPS_OVER} times: the frames follow, the inspector updates, VARIABLES shows the VirtQueueElement`, async function () {
    notAfterFailure();
    await step('step-over', async () => {
      for (let i = 1; i <= STEPS_OVER; i++) {
        if (!ref) throw new Error('no reference session');
        await ref.dc.nextRequest({ threadId: refThread });
        await refStop();
        const top = await refTopFrame();
        const fn = top.name.split(' ')[0];
        const line = top.line;
        await focusWorkbench();
        await page.keyboard.press('F10');
        await waitFor(`step ${i}: the top frame to be ${fn} at line ${line} (as the reference run)`, async () => {
          // callStack() opens the CALL STACK section (step 3 left VARIABLES open) and reads every row.
          const row = (await callStack()).find((r) => r.startsWith(`${fn} (`));
          return row && new RegExp(`\\b${line}(:\\d+)?\\s*$`).test(row) ? true : undefined;
        }, UI_TIMEOUT);
      }
      const want = (await refState()).queues[0];
      const ui = await waitFor('the inspector to show the state after the steps', async () => {
        const got = await readInspector();
        return compareInspector(got, want).length === 0 && got.drawnSeq > seqBefore ? got : undefined;
      }, UI_TIMEOUT).catch(async (e: Error) => {
        const got = await readInspector();
        const diff = compareInspector(got, want);
        throw new Error(`${e.message}: ${diff.length ? diff.join('; ') : `body[data-drawn-seq] stayed ${got.drawnSeq} (before the steps: ${seqBefore})`}`);
      });
      void ui;
      await waitFor('a VirtQueueElement in the VARIABLES view', async () =>
        ((await variables()).some((r) => /VirtQueueElement/.test(r)) ? true : undefined), UI_TIMEOUT);
    }, async () => `inspector: ${await inspectorText()}\nVARIABLES:\n  ${(await variables()).join('\n  ')}`);
  });

  it('5. Shift+F5 stops the session: the debug toolbar goes away', async function () {
    notAfterFailure();
    await step('stop', async () => {
      await focusWorkbench();
      await page.keyboard.press('Shift+F5');
      await page.locator('.debug-toolbar').waitFor({ state: 'hidden', timeout: UI_TIMEOUT });
      await waitFor('the CALL STACK to empty', async () =>
        ((await page.locator('.debug-call-stack .monaco-list-row').count()) === 0 ? true : undefined), UI_TIMEOUT);
      await sleep(200);
    });
  });
});
