/**
 * The descriptor table, virtualized: one row per ring descriptor, and under
 * each descriptor with INDIRECT the entries of its table (when the host sent
 * them), all rows the same height. Chains are coloured by their head; free
 * descriptors are marked free.
 */
import type { IndirectTable, NumberFormat, QueueView } from './types';
import type { QueueDiff } from './diff';
import type { ChainInfo } from './chains';
import { chainClass, descFlags, esc, hex, num } from './format';

export interface DescRows {
  count: number;
  /** Ring descriptor of each row. */
  desc: Int32Array;
  /** Entry of the indirect table of each row, -1 for the ring descriptor itself. */
  ind: Int32Array;
  /** First row of each ring descriptor. */
  rowOf: Int32Array;
  tables: Map<number, IndirectTable>;
}

export function descRows(q: QueueView): DescRows {
  const n = q.desc.length;
  const tables = new Map<number, IndirectTable>();
  let extra = 0;
  for (const t of q.indirect ?? []) {
    if (t.desc >= 0 && t.desc < n && !tables.has(t.desc)) {
      tables.set(t.desc, t);
      extra += t.entries.length + (t.truncated ? 1 : 0);
    }
  }
  const count = n + extra;
  const desc = new Int32Array(count);
  const ind = new Int32Array(count);
  const rowOf = new Int32Array(n);
  if (extra === 0) {
    for (let i = 0; i < n; i++) {
      desc[i] = i;
      ind[i] = -1;
      rowOf[i] = i;
    }
  } else {
    let r = 0;
    for (let i = 0; i < n; i++) {
      rowOf[i] = r;
      desc[r] = i;
      ind[r++] = -1;
      const t = tables.get(i);
      if (!t) continue;
      const m = t.entries.length + (t.truncated ? 1 : 0);
      for (let j = 0; j < m; j++) {
        desc[r] = i;
        ind[r++] = j;
      }
    }
  }
  return { count, desc, ind, rowOf, tables };
}

export interface Selection {
  queue: number;
  desc: number;
  /** Entry in the descriptor's indirect table, or -1. */
  ind: number;
}

export interface DescCtx {
  q: QueueView;
  rows: DescRows;
  chains: ChainInfo;
  diff: QueueDiff;
  fmt: NumberFormat;
  sel: Selection | null;
}

export function selectedHead(c: DescCtx): number {
  if (!c.sel || c.sel.queue !== c.q.index || c.sel.desc < 0 || c.sel.desc >= c.q.desc.length) return -1;
  return c.chains.headOf[c.sel.desc];
}

export function descRowHtml(c: DescCtx, r: number, selHead: number): string {
  const i = c.rows.desc[r];
  const j = c.rows.ind[r];
  const head = c.chains.headOf[i];
  const inChain = head >= 0;
  const selected = !!c.sel && c.sel.queue === c.q.index && c.sel.desc === i && c.sel.ind === j;
  let cls = inChain ? `in-chain ${chainClass(head)}` : 'free';
  if (selHead >= 0 && head === selHead) cls += ' in-selected-chain';
  if (selected) cls += ' selected';
  if (j < 0) {
    const d = c.q.desc[i];
    if (c.diff.desc[i]) cls += ' changed';
    const next = d.flags & 1 ? String(d.next) : `<span class="muted">${d.next}</span>`;
    const where = inChain
      ? `<span class="chain-tag">${c.chains.posOf[i] === 0 ? '<span class="codicon codicon-debug-start" aria-hidden="true"></span>head' : `← ${head} #${c.chains.posOf[i]}`}</span>`
      : '<span class="muted">free</span>';
    const chainAttr = inChain ? ` data-chain-head="${head}" data-chain-pos="${c.chains.posOf[i]}"` : ' data-free=""';
    return `<tr class="desc-row ${cls}" data-desc="${i}"${chainAttr} aria-selected="${selected}"><td class="idx">${i}</td><td class="num">${num(d.addr, c.fmt)}</td><td class="num">${num(d.len, c.fmt)}</td><td class="flags">${descFlags(d.flags)}</td><td class="num">${next}</td><td>${where}</td></tr>`;
  }
  const t = c.rows.tables.get(i)!;
  if (c.diff.indirect.has(i)) cls += ' changed';
  const e = t.entries[j];
  if (!e) return `<tr class="ind-row truncated ${cls}" data-indirect-of="${i}"><td class="idx">↳</td><td colspan="5" class="muted">… table truncated</td></tr>`;
  const next = e.flags & 1 ? String(e.next) : `<span class="muted">${e.next}</span>`;
  return `<tr class="ind-row ${cls}" data-indirect-of="${i}" data-ind="${j}"${inChain ? ` data-chain-head="${head}"` : ''} aria-selected="${selected}"><td class="idx">↳ ${i}[${j}]</td><td class="num">${num(e.addr, c.fmt)}</td><td class="num">${num(e.len, c.fmt)}</td><td class="flags">${descFlags(e.flags)}</td><td class="num">${next}</td><td><span class="muted">indirect @ ${hex(t.table)}</span></td></tr>`;
}

/** The descriptor (or indirect entry) a selection points at. */
export function selectedDesc(c: DescCtx): { addr: number; len: number; flags: number; next: number } | null {
  const s = c.sel;
  if (!s || s.queue !== c.q.index) return null;
  const d = c.q.desc[s.desc];
  if (!d) return null;
  if (s.ind < 0) return d;
  return c.rows.tables.get(s.desc)?.entries[s.ind] ?? null;
}

export function detailHtml(c: DescCtx): string {
  const d = selectedDesc(c);
  const s = c.sel;
  if (!d || !s) return '<p class="muted">Select a descriptor to see its chain and open its buffer in the memory view.</p>';
  const head = c.chains.headOf[s.desc];
  const chain = head >= 0 ? c.chains.chains.get(head) ?? [] : [];
  const label = s.ind < 0 ? `Descriptor ${s.desc}` : `Descriptor ${s.desc}, indirect entry ${s.ind}`;
  const chips = chain.map((i) => `<li><button class="chip ${chainClass(head)}" data-goto-desc="${i}">${i}</button></li>`).join('<li class="arrow" aria-hidden="true">→</li>');
  return `<h4 class="detail-title" data-selected-desc="${s.desc}" data-selected-ind="${s.ind}">${label}</h4>
<p>addr ${num(d.addr, c.fmt)}, len ${num(d.len, c.fmt)}, flags ${esc(descFlags(d.flags) || '0')}, next ${d.next}</p>
${head >= 0 ? `<p>Chain of head ${head}:</p><ol class="chain-chips selected-chain" aria-label="Chain of head ${head}">${chips}</ol>` : '<p class="muted">Free: not part of any chain.</p>'}
<button class="button open-memory" data-addr="${d.addr}" data-len="${d.len}"><span class="codicon codicon-file-binary" aria-hidden="true"></span>Open memory at ${hex(d.addr)}</button>`;
}

export function chainsListHtml(c: DescCtx): string {
  const LIMIT = 128;
  const all = [...c.chains.chains.entries()];
  if (all.length === 0) return '<p class="muted chains-empty">No chains: every descriptor is free.</p>';
  const items = all
    .slice(0, LIMIT)
    .map(([head, chain]) => {
      const chips = chain
        .slice(0, 16)
        .map((i) => `<li><button class="chip ${chainClass(head)}" data-goto-desc="${i}" aria-label="Descriptor ${i}">${i}</button></li>`)
        .join('<li class="arrow" aria-hidden="true">→</li>');
      const more = chain.length > 16 ? `<li class="muted">… ${chain.length - 16} more</li>` : '';
      const ind = c.rows.tables.has(head) ? ` <span class="muted">(indirect, ${c.rows.tables.get(head)!.entries.length} entries)</span>` : '';
      return `<li class="chain ${chainClass(head)}" data-chain-head="${head}" data-chain="${chain.join(',')}"><ol class="chain-chips" aria-label="Chain of head ${head}">${chips}${more}</ol>${ind}</li>`;
    })
    .join('');
  const rest = all.length > LIMIT ? `<li class="muted">… ${all.length - LIMIT} more chains</li>` : '';
  return `<ul class="chains" aria-label="Descriptor chains">${items}${rest}</ul>`;
}
