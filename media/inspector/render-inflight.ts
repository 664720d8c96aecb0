/**
 * The device's in-flight VirtQueueElements: head, the descriptors they came
 * from, out_sg/in_sg, and the virtio-blk request header and status.
 */
import type { InflightView, NumberFormat, QueueView } from './types';
import type { QueueDiff } from './diff';
import type { ChainInfo } from './chains';
import { chainClass, esc, hex, num } from './format';

function sgRows(e: InflightView, dir: 'out' | 'in', f: NumberFormat): string {
  const sg = dir === 'out' ? e.out_sg : e.in_sg;
  return sg
    .map(
      (s, k) => `<tr class="sg-row" data-sg="${dir}" data-sg-index="${k}" data-addr="${s.addr}" data-len="${s.len}">
<td>${dir === 'out' ? '<span class="codicon codicon-arrow-right" aria-hidden="true"></span>out (device reads)' : '<span class="codicon codicon-arrow-left" aria-hidden="true"></span>in (device writes)'}</td>
<td>${dir}_sg[${k}]</td><td class="num">${num(s.addr, f)}</td><td class="num">${num(s.len, f)}</td>
<td><button class="icon-button open-memory" data-addr="${s.addr}" data-len="${s.len}" aria-label="Open memory at ${hex(s.addr)}" title="Open memory at ${hex(s.addr)}"><span class="codicon codicon-file-binary" aria-hidden="true"></span></button></td></tr>`,
    )
    .join('');
}

function blkHtml(e: InflightView, f: NumberFormat): string {
  const b = e.blk;
  if (b) {
    return `<dl class="blk" aria-label="virtio-blk request" data-blk-type="${b.type}" data-blk-status="${b.status}">
<dt>type</dt><dd data-field="blk.type">${esc(b.type_name)} (${b.type})</dd>
<dt>ioprio</dt><dd>${b.ioprio}</dd>
<dt>sector</dt><dd data-field="blk.sector">${b.sector}</dd>
<dt>status</dt><dd data-field="blk.status">${esc(b.status_name)} (${b.status})</dd></dl>`;
  }
  const hdr = e.out_sg[0];
  return hdr ? `<p class="muted blk-missing">virtio_blk_outhdr at ${num(hdr.addr, f)} (not decoded by this host)</p>` : '';
}

export function renderInflight(q: QueueView, chains: ChainInfo, diff: QueueDiff, f: NumberFormat): string {
  if (q.inflight.length === 0) return `<h3 id="inflight-heading-${q.index}">In flight</h3><p class="muted">No element in flight (inuse ${q.inuse}).</p>`;
  const items = q.inflight
    .map((e) => {
      const chain = e.chain && e.chain.length ? e.chain : (chains.chains.get(e.index) ?? [e.index]);
      const chips = chain
        .map((i) => `<li><button class="chip ${chainClass(e.index)}" data-chain-desc="${i}" data-goto-desc="${i}" aria-label="Descriptor ${i}">${i}</button></li>`)
        .join('<li class="arrow" aria-hidden="true">→</li>');
      const ind = e.indirect_table !== undefined && e.indirect_table !== null ? `<p class="via-indirect" data-indirect-table="${e.indirect_table}">through the indirect table at ${hex(e.indirect_table)}</p>` : '';
      return `<li class="inflight ${chainClass(e.index)}${diff.inflight.has(e.index) ? ' changed' : ''}" data-head="${e.index}" data-chain="${chain.join(',')}" data-ndescs="${e.ndescs}" aria-labelledby="inflight-${q.index}-${e.index}">
<h4 id="inflight-${q.index}-${e.index}">Element head ${e.index} <span class="muted">ndescs ${e.ndescs}, out_num ${e.out_num}, in_num ${e.in_num}</span></h4>
<ol class="inflight-chain chain-chips" aria-label="Descriptors of head ${e.index}">${chips}</ol>${ind}
${blkHtml(e, f)}
<table class="sg-table" aria-label="Scatter-gather list of head ${e.index}"><thead><tr><th scope="col">direction</th><th scope="col">entry</th><th scope="col">guest address</th><th scope="col">length</th><th scope="col"><span class="visually-hidden">memory</span></th></tr></thead>
<tbody>${sgRows(e, 'out', f)}${sgRows(e, 'in', f)}</tbody></table></li>`;
    })
    .join('');
  return `<h3 id="inflight-heading-${q.index}">In flight (${q.inflight.length})</h3><ol class="inflight-list" aria-labelledby="inflight-heading-${q.index}">${items}</ol>`;
}
