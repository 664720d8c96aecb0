/**
 * Virtqueue Inspector — the webview page (bundled by scripts/build.mjs to
 * dist/media/inspector.js). It draws one StateSnapshot per `state` message
 * from the host (src/inspector/protocol.ts), keeps what it drew across
 * hide/show with the webview state API, and posts `ready`, `refresh`,
 * `revealSource` and `openMemory`. No eval, no inline handlers, no inline
 * style attributes: every listener is attached here, sizes are set via CSSOM.
 *
 * DOM contract — stable selectors the tests (and the end-to-end tests) query.
 * Numbers in data-* attributes are decimal.
 *
 *   body[data-drawn-seq]            seq of the last `state` drawn (in the DOM and laid out)
 *   body[data-painted-seq]          the same once the frame showing it has been painted
 *   body[data-session]              the session of that state; body.ended once it ended
 *   #stop[data-stop-reason]         the stop header (reason, description)
 *   [data-queue-tab="N"]            tab buttons (role=tab), one per queue
 *   section.queue[data-queue="N"]   one per queue (only the selected one has content), with
 *       data-num, data-avail-idx, data-used-idx, data-last-avail-idx,
 *       data-shadow-avail-idx, data-used-event, data-avail-event,
 *       data-signalled-used, data-last-used-idx (absent without a driver), data-inuse
 *   tr.desc-row[data-desc="I"]      descriptor table row (virtualized: rows near the view only);
 *       [data-chain-head="H"][data-chain-pos="P"] when in a chain, [data-free] when free,
 *       .selected / .in-selected-chain after a click
 *   tr.ind-row[data-indirect-of="I"][data-ind="J"]   entry J of descriptor I's indirect table
 *   ul.chains > li.chain[data-chain-head="H"][data-chain="a,b,c"]   every chain, head first
 *   .desc-detail button.open-memory[data-addr][data-len]   memory button of the selected descriptor
 *   tr.avail-row[data-avail-slot="S"], tr.used-row[data-used-slot="S"]   ring slots (virtualized)
 *   .avail-idx-marker, .last-avail-idx-marker, .shadow-avail-idx-marker, .used-event-marker,
 *   .used-idx-marker, .last-used-idx-marker, .signalled-used-marker, .avail-event-marker
 *       markers on the slot idx % num, [data-value] = the 16-bit index
 *   [data-field="avail.idx"] ...     index summaries (dl) per ring
 *   li.inflight[data-head="H"][data-chain="a,b,c"][data-ndescs]   in-flight elements, with
 *       [data-chain-desc="I"] chain chips, tr[data-sg="out"|"in"][data-sg-index][data-addr][data-len],
 *       dl.blk[data-blk-type][data-blk-status] (when the host decoded the request)
 *   section.thread[data-thread-id] .bt-section / .coroutine-section[data-coroutine="0x…"]
 *       .bt-line (text exactly as gdb's `bt` / the CLI prints it), .frame.link[data-file][data-line]
 *   section.coroutine[data-coroutine-addr="0x…"]
 *   #device [data-status-bit="DRIVER_OK"].on, [data-feature="VIRTIO_F_VERSION_1"].negotiated, [data-broken]
 *   .changed                        anything that differs from the previous state
 */
import type { HostMessageView, NumberFormat, QueueView, SnapshotView, StateMessage } from './types';
import { validateHostMessage } from './validate';
import { SnapshotDiff, diffSnapshots } from './diff';
import { ChainInfo, computeChains } from './chains';
import { DescCtx, DescRows, Selection, chainsListHtml, descRowHtml, descRows, detailHtml, selectedHead } from './render-desc';
import { availRowHtml, availSummary, usedRowHtml, usedSummary } from './render-rings';
import { renderInflight } from './render-inflight';
import { renderStacks } from './render-stacks';
import { renderDevice } from './render-device';
import { VirtualTable } from './virtual-list';
import { esc, hex } from './format';
import { MAX_MEMORY_VIEW } from '../../src/inspector/protocol';

interface VsCodeApi {
  postMessage(m: unknown): void;
  getState(): unknown;
  setState(s: unknown): void;
}
declare function acquireVsCodeApi(): VsCodeApi;


interface Ui {
  queue: number;
  sel: Selection | null;
  scroll: { desc: number; avail: number; used: number };
}

interface Persisted {
  v: 1;
  msg: StateMessage | null;
  prev: SnapshotView | null;
  ended: boolean;
  fmt: NumberFormat;
  ui: Ui;
}

const vscode = acquireVsCodeApi();

let msg: StateMessage | null = null;
let prev: SnapshotView | null = null;
let ended = false;
let fmt: NumberFormat = 'hex';
let hostError: string | null = null;
const ui: Ui = { queue: 0, sel: null, scroll: { desc: 0, avail: 0, used: 0 } };

// Derived from `msg`, computed once per state.
let diff: SnapshotDiff | null = null;
const chainCache = new Map<number, ChainInfo>();
const rowsCache = new Map<number, DescRows>();

// The selected queue's live tables.
let tables: { desc: VirtualTable; avail: VirtualTable; used: VirtualTable; ctx: DescCtx; refreshSel: () => void } | null = null;

const root = document.getElementById('app') ?? document.body;

function post(m: { type: 'ready' } | { type: 'refresh' } | { type: 'revealSource'; file: string; line: number } | { type: 'openMemory'; addr: number; len: number }): void {
  vscode.postMessage(m);
}

// ---- persistence ----

let persistTimer: ReturnType<typeof setTimeout> | undefined;
function persist(): void {
  if (persistTimer !== undefined) return;
  // Off the path from a stop to the drawn page: setState serializes the whole snapshot.
  persistTimer = setTimeout(() => {
    persistTimer = undefined;
    if (tables) ui.scroll = { desc: tables.desc.scrollTop, avail: tables.avail.scrollTop, used: tables.used.scrollTop };
    const s: Persisted = { v: 1, msg, prev, ended, fmt, ui };
    vscode.setState(s);
  }, 100);
}

function restore(): void {
  const s = vscode.getState() as Partial<Persisted> | null | undefined;
  if (!s || s.v !== 1) return;
  if (s.fmt === 'hex' || s.fmt === 'decimal') fmt = s.fmt;
  if (s.ui && typeof s.ui.queue === 'number') {
    ui.queue = s.ui.queue;
    const sel = s.ui.sel;
    ui.sel = sel && typeof sel.queue === 'number' && typeof sel.desc === 'number' && typeof sel.ind === 'number' ? sel : null;
    if (s.ui.scroll) ui.scroll = { desc: +s.ui.scroll.desc || 0, avail: +s.ui.scroll.avail || 0, used: +s.ui.scroll.used || 0 };
  }
  // Restored state is re-validated like anything the host sends.
  const m = s.msg ? validateHostMessage({ ...s.msg, previous: s.prev ?? null }) : null;
  if (m && m.type === 'state') {
    msg = { ...m, previous: undefined };
    prev = m.previous ?? null;
    ended = !!s.ended;
    setState(msg, prev);
    draw(true);
    markDrawn(msg.seq);
  }
}

// ---- drawing ----

function setState(m: StateMessage, p: SnapshotView | null): void {
  msg = m;
  prev = p;
  diff = diffSnapshots(p, m.state);
  chainCache.clear();
  rowsCache.clear();
  if (ui.queue >= m.state.queues.length) ui.queue = 0;
}

function chainsOf(q: QueueView): ChainInfo {
  let c = chainCache.get(q.index);
  if (!c) chainCache.set(q.index, (c = computeChains(q)));
  return c;
}
function rowsOf(q: QueueView): DescRows {
  let r = rowsCache.get(q.index);
  if (!r) rowsCache.set(q.index, (r = descRows(q)));
  return r;
}

function stopHeader(): string {
  if (!msg) return '';
  const s = msg.stop;
  const t = msg.state;
  // The adapter's description says what stopped ("Paused on rw_complete: virtio_blk_rw_complete (head 0, ...)");
  // DAP's reason alone is generic (an event breakpoint is an "exception" to VS Code).
  const reason = s ? esc(s.description ?? `Paused on ${s.reason}`) : 'Machine state';
  const desc = s?.description ? `<span class="stop-description muted">(${esc(s.reason)})</span>` : '';
  const running = t.threads.find((x) => x.state === 'running');
  const thread = running ? `<span class="muted">in “${esc(running.name)}”</span>` : '';
  const endedBadge = ended ? '<span class="badge ended-badge"><span class="codicon codicon-debug-disconnect" aria-hidden="true"></span>Session ended</span>' : '';
  return `<div class="stop-line"><span class="codicon codicon-${ended ? 'debug-stop' : 'debug-pause'}" aria-hidden="true"></span><strong class="stop-reason">${reason}</strong>${desc}${thread}${endedBadge}</div>
<div class="stop-meta muted">time ${(t.time_ns / 1000).toFixed(3)} µs · ${t.events} events · stop #${msg.seq}${diff && diff.any ? ' · <span class="changed legend">changed since the last stop</span>' : ''}</div>`;
}

function queueAttrs(q: QueueView): string {
  const a: [string, number][] = [
    ['queue', q.index],
    ['num', q.num],
    ['avail-idx', q.avail.idx],
    ['used-idx', q.used.idx],
    ['last-avail-idx', q.last_avail_idx],
    ['shadow-avail-idx', q.shadow_avail_idx],
    ['used-event', q.avail.used_event],
    ['avail-event', q.used.avail_event],
    ['signalled-used', q.signalled_used],
    ['inuse', q.inuse],
  ];
  if (q.driver) a.push(['last-used-idx', q.driver.last_used_idx]);
  return a.map(([k, v]) => ` data-${k}="${v}"`).join('');
}

function queueHtml(q: QueueView, selected: boolean): string {
  const head = `<section class="queue" id="queue-${q.index}" role="tabpanel" aria-labelledby="queue-tab-${q.index}"${queueAttrs(q)}${selected ? '' : ' hidden'}>`;
  if (!selected || !diff) return head + '</section>';
  if (q.desc.length === 0) return `${head}<h2>Queue ${q.index}</h2><p class="muted">Not set up yet (num ${q.num}).</p></section>`;
  const ctx: DescCtx = { q, rows: rowsOf(q), chains: chainsOf(q), diff: diff.queues[q.index], fmt, sel: ui.sel };
  const d = diff.queues[q.index];
  return `${head}<h2 id="queue-heading-${q.index}">Queue ${q.index} <span class="muted">num ${q.num} · desc ${hex(q.vring_desc)} · avail ${hex(q.vring_avail)} · used ${hex(q.vring_used)}${q.driver ? ` · driver: num_free ${q.driver.num_free}, free_head ${q.driver.free_head}${q.driver.broken ? ', broken' : ''}` : ' · no driver'}</span></h2>
<div class="inflight-section">${renderInflight(q, ctx.chains, d, fmt)}</div>
<div class="rings">
<section class="desc-section" aria-labelledby="desc-heading-${q.index}"><h3 id="desc-heading-${q.index}"><span class="codicon codicon-list-ordered" aria-hidden="true"></span>Descriptor table <span class="muted">${ctx.chains.chains.size} chains, ${q.desc.length - countInChains(ctx.chains)} free</span></h3>
<div class="chains-box">${chainsListHtml(ctx)}</div>
<div class="desc-detail" aria-live="polite">${detailHtml(ctx)}</div>
<div class="scroller desc-scroller" tabindex="0" aria-label="Descriptor table of queue ${q.index}, scrollable; arrow keys move the selection"><table class="grid desc-table" aria-rowcount="${ctx.rows.count}"><thead><tr><th scope="col">#</th><th scope="col">addr</th><th scope="col">len</th><th scope="col">flags</th><th scope="col">next</th><th scope="col">chain</th></tr></thead><tbody></tbody></table></div></section>
<section class="avail-section" aria-labelledby="avail-heading-${q.index}"><h3 id="avail-heading-${q.index}"><span class="codicon codicon-arrow-right" aria-hidden="true"></span>Available ring <span class="muted">driver → device</span></h3>${availSummary(q, d)}
<div class="scroller avail-scroller" tabindex="0" aria-label="Available ring of queue ${q.index}, scrollable"><table class="grid avail-table"><thead><tr><th scope="col">slot</th><th scope="col">head</th><th scope="col">indices</th></tr></thead><tbody></tbody></table></div></section>
<section class="used-section" aria-labelledby="used-heading-${q.index}"><h3 id="used-heading-${q.index}"><span class="codicon codicon-arrow-left" aria-hidden="true"></span>Used ring <span class="muted">device → driver</span></h3>${usedSummary(q, d)}
<div class="scroller used-scroller" tabindex="0" aria-label="Used ring of queue ${q.index}, scrollable"><table class="grid used-table"><thead><tr><th scope="col">slot</th><th scope="col">id</th><th scope="col">len</th><th scope="col">indices</th></tr></thead><tbody></tbody></table></div></section>
</div></section>`;
}

function countInChains(c: ChainInfo): number {
  let n = 0;
  for (const ch of c.chains.values()) n += ch.length;
  return n;
}

function mountTables(q: QueueView, keepScroll: boolean): void {
  tables?.desc.dispose();
  tables?.avail.dispose();
  tables?.used.dispose();
  tables = null;
  const sec = root.querySelector<HTMLElement>(`section.queue[data-queue="${q.index}"]`);
  if (!sec || !diff || q.desc.length === 0) return;
  const ctx: DescCtx = { q, rows: rowsOf(q), chains: chainsOf(q), diff: diff.queues[q.index], fmt, sel: ui.sel };
  const d = ctx.diff;
  const n = q.desc.length;
  const scroller = (cls: string): HTMLElement => sec.querySelector<HTMLElement>(`.${cls}`)!;
  const body = (cls: string): HTMLTableSectionElement => sec.querySelector<HTMLTableSectionElement>(`.${cls} tbody`)!;
  let selHead = selectedHead(ctx);
  const desc = new VirtualTable({ scroller: scroller('desc-scroller'), tbody: body('desc-table'), columns: 6, count: ctx.rows.count, row: (r) => descRowHtml(ctx, r, selHead) });
  const headOf = ctx.chains.headOf;
  const avail = new VirtualTable({ scroller: scroller('avail-scroller'), tbody: body('avail-table'), columns: 3, count: n, row: (i) => availRowHtml(q, d, i, headOf) });
  const used = new VirtualTable({ scroller: scroller('used-scroller'), tbody: body('used-table'), columns: 4, count: n, row: (i) => usedRowHtml(q, d, i, fmt) });
  // refreshSel keeps the selection highlight in sync without rebuilding the tables.
  tables = { desc, avail, used, ctx, refreshSel: () => (selHead = selectedHead(ctx)) };
  // Draw first, then scroll: no layout is read while the tables are built.
  const tops = keepScroll
    ? ui.scroll
    : { desc: 0, avail: VirtualTable.topFor(q.avail.idx % n), used: VirtualTable.topFor(q.used.idx % n) };
  desc.render(tops.desc);
  avail.render(tops.avail);
  used.render(tops.used);
  if (tops.desc) scroller('desc-scroller').scrollTop = tops.desc;
  if (tops.avail) scroller('avail-scroller').scrollTop = tops.avail;
  if (tops.used) scroller('used-scroller').scrollTop = tops.used;
  for (const s of [desc, avail, used]) s.onScrolled = persist;
}

function draw(keepScroll: boolean): void {
  document.body.classList.toggle('ended', ended);
  if (!msg || !diff) {
    delete root.dataset.layout;
    root.innerHTML = `<header id="stop" class="stop">${toolbar()}</header>${errorHtml()}<p class="empty"><span class="codicon codicon-debug" aria-hidden="true"></span>Start a virtio debug session: the inspector shows the virtqueues whenever the machine stops.</p>`;
    return;
  }
  const s = msg.state;
  const tabs = s.queues
    .map(
      (q) =>
        `<button role="tab" class="tab${q.index === ui.queue ? ' active' : ''}${diff!.queues[q.index] && (diff!.queues[q.index].fields.size || diff!.queues[q.index].inflight.size) ? ' changed' : ''}" id="queue-tab-${q.index}" data-queue-tab="${q.index}" aria-selected="${q.index === ui.queue}" aria-controls="queue-${q.index}" tabindex="${q.index === ui.queue ? 0 : -1}">Queue ${q.index}${q.desc.length ? '' : ' <span class="muted">(unset)</span>'}</button>`,
    )
    .join('');
  const parts: [string, string][] = [
    ['header', `<header id="stop" class="stop" data-stop-reason="${esc(msg.stop?.reason ?? '')}">${toolbar()}${stopHeader()}</header>${errorHtml()}`],
    ['banner', s.device.broken ? `<div class="broken-banner" role="alert"><span class="codicon codicon-error" aria-hidden="true"></span>The device is broken: ${esc(s.device.errors.join('; ') || 'virtio_error')}</div>` : ''],
    ['tabs', `<nav class="tabs" role="tablist" aria-label="Virtqueues">${tabs}</nav>`],
    ['queues', `<div class="queues">${s.queues.map((q) => queueHtml(q, q.index === ui.queue)).join('')}</div>`],
    ['device', `<section id="device" class="device" aria-labelledby="device-heading">${renderDevice(s, diff)}</section>`],
    ['stacks', `<section id="stacks" class="stacks" aria-labelledby="stacks-heading">${renderStacks(s, diff)}</section>`],
  ];
  updateParts(parts);
  document.body.dataset.session = msg.session;
  const q = s.queues[ui.queue];
  if (q) mountTables(q, keepScroll);
}

/**
 * The page is a row of parts, each replaced only when its HTML changed: a stop
 * usually leaves the device (and often the stacks of idle threads) as they
 * were, and re-parsing and laying them out again is most of a redraw. The
 * queues part always goes back in: its tables are mounted into it afterwards.
 */
const shown = new Map<string, string>();
function updateParts(parts: [string, string][]): void {
  if (root.dataset.layout !== 'parts') {
    root.innerHTML = parts.map(([k]) => `<div class="part" data-part="${k}"></div>`).join('');
    root.dataset.layout = 'parts';
    shown.clear();
  }
  for (const [k, html] of parts) {
    if (k !== 'queues' && shown.get(k) === html) continue;
    const el = root.querySelector<HTMLElement>(`[data-part="${k}"]`)!;
    el.innerHTML = html;
    shown.set(k, html);
  }
}

function toolbar(): string {
  return `<div class="toolbar"><span class="format muted" title="virtio.inspector.numberFormat">${fmt === 'hex' ? 'hex' : 'decimal'}</span><button class="icon-button" id="refresh" aria-label="Refresh" title="Refresh"><span class="codicon codicon-refresh" aria-hidden="true"></span></button></div>`;
}

function errorHtml(): string {
  return hostError ? `<div class="host-error" role="alert"><span class="codicon codicon-warning" aria-hidden="true"></span>${esc(hostError)}</div>` : '';
}

let paintToken = 0;
/**
 * body[data-drawn-seq]: set as soon as the new state is in the DOM and laid
 * out (the layout is forced here, so style and layout are included);
 * body[data-painted-seq]: after the next frame is painted as well (that one
 * waits for the display's frame tick, up to 16.7 ms at 60 Hz).
 */
function markDrawn(seq: number): void {
  void document.body.offsetHeight;
  document.body.dataset.drawnSeq = String(seq);
  const token = ++paintToken;
  requestAnimationFrame(() =>
    setTimeout(() => {
      if (token === paintToken) document.body.dataset.paintedSeq = String(seq);
    }, 0),
  );
}

// ---- selection ----

function select(sel: Selection | null, scroll: boolean): void {
  ui.sel = sel;
  if (tables) {
    tables.ctx.sel = sel;
    tables.refreshSel();
    if (scroll && sel) tables.desc.scrollTo(sel.ind < 0 ? tables.ctx.rows.rowOf[sel.desc] : tables.ctx.rows.rowOf[sel.desc] + 1 + sel.ind);
    else tables.desc.redraw();
    const detail = root.querySelector('.desc-detail');
    if (detail) detail.innerHTML = detailHtml(tables.ctx);
  }
  persist();
}

// ---- messages ----

function onHost(m: HostMessageView): void {
  switch (m.type) {
    case 'state': {
      const same = msg && msg.session === m.session && msg.seq === m.seq;
      const p = m.previous !== undefined ? m.previous : same ? prev : msg && msg.session === m.session ? msg.state : null;
      if (!msg || msg.session !== m.session) {
        ui.sel = null;
        ended = false;
      }
      if (!same) ended = false;
      hostError = null;
      setState({ ...m, previous: undefined }, p);
      draw(!!same);
      markDrawn(m.seq);
      persist();
      break;
    }
    case 'ended':
      if (msg && msg.session === m.session) {
        ended = true;
        draw(true);
        persist();
      }
      break;
    case 'config':
      if (m.numberFormat !== fmt) {
        fmt = m.numberFormat;
        if (tables) ui.scroll = { desc: tables.desc.scrollTop, avail: tables.avail.scrollTop, used: tables.used.scrollTop };
        draw(true);
        persist();
      }
      break;
    case 'error':
      hostError = m.message;
      draw(true);
      break;
  }
}

window.addEventListener('message', (ev: MessageEvent) => {
  const m = validateHostMessage(ev.data);
  if (m) onHost(m);
});

// ---- user input (delegated; no inline handlers) ----

function clampLen(len: number): number {
  return Math.min(MAX_MEMORY_VIEW, Math.max(1, Math.floor(len)));
}

function activate(target: HTMLElement): boolean {
  const mem = target.closest<HTMLElement>('.open-memory');
  if (mem) {
    const addr = Number(mem.dataset.addr);
    const len = Number(mem.dataset.len);
    if (Number.isSafeInteger(addr) && addr >= 0 && Number.isFinite(len)) post({ type: 'openMemory', addr, len: clampLen(len) });
    return true;
  }
  const frame = target.closest<HTMLElement>('.frame.link');
  if (frame) {
    const line = Number(frame.dataset.line);
    if (frame.dataset.file && Number.isInteger(line) && line >= 1) post({ type: 'revealSource', file: frame.dataset.file, line });
    return true;
  }
  const tab = target.closest<HTMLElement>('[data-queue-tab]');
  if (tab) {
    const i = Number(tab.dataset.queueTab);
    if (i !== ui.queue) {
      ui.queue = i;
      ui.scroll = { desc: 0, avail: 0, used: 0 };
      draw(false);
      root.querySelector<HTMLElement>(`[data-queue-tab="${i}"]`)?.focus();
      persist();
    }
    return true;
  }
  if (target.closest('#refresh')) {
    post({ type: 'refresh' });
    return true;
  }
  const go = target.closest<HTMLElement>('[data-goto-desc]');
  if (go) {
    select({ queue: ui.queue, desc: Number(go.dataset.gotoDesc), ind: -1 }, true);
    return true;
  }
  const row = target.closest<HTMLElement>('tr.desc-row, tr.ind-row[data-ind]');
  if (row) {
    const desc = Number(row.dataset.desc ?? row.dataset.indirectOf);
    const ind = row.dataset.ind !== undefined ? Number(row.dataset.ind) : -1;
    select({ queue: ui.queue, desc, ind }, false);
    return true;
  }
  return false;
}

document.addEventListener('click', (ev) => {
  if (ev.target instanceof HTMLElement) activate(ev.target);
});

document.addEventListener('keydown', (ev) => {
  const t = ev.target;
  if (!(t instanceof HTMLElement)) return;
  if ((ev.key === 'Enter' || ev.key === ' ') && t.matches('.frame.link')) {
    ev.preventDefault();
    activate(t);
    return;
  }
  if ((ev.key === 'ArrowDown' || ev.key === 'ArrowUp') && t.matches('.desc-scroller') && tables) {
    ev.preventDefault();
    const n = tables.ctx.q.desc.length;
    const cur = ui.sel && ui.sel.queue === ui.queue ? ui.sel.desc : -1;
    const next = Math.max(0, Math.min(n - 1, cur + (ev.key === 'ArrowDown' ? 1 : -1)));
    select({ queue: ui.queue, desc: next, ind: -1 }, true);
    return;
  }
  if ((ev.key === 'ArrowRight' || ev.key === 'ArrowLeft') && t.matches('[role="tab"]') && msg) {
    const n = msg.state.queues.length;
    const i = (ui.queue + (ev.key === 'ArrowRight' ? 1 : n - 1)) % n;
    root.querySelector<HTMLElement>(`[data-queue-tab="${i}"]`)?.click();
  }
});

// ---- start ----

restore();
if (!msg) draw(false);
post({ type: 'ready' });
