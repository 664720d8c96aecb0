/**
 * Thread and coroutine stacks as gdb's `bt` (with QEMU's `qemu bt` sections)
 * prints them — the same text as src/machine/state/backtrace.ts
 * formatBacktrace, which a test checks.
 */
import type { SnapshotView } from './types';
import type { SnapshotDiff } from './diff';
import { esc, hex } from './format';
import { btLine } from '../../src/machine/state/gdb-text';

type Frame = SnapshotView['threads'][number]['frames'][number];

/** A thread's frames split into its `qemu bt` sections: runs of the same coroutine; the first has no header. */
export function sections(frames: Frame[]): { coroutine: number | null; frames: Frame[] }[] {
  const out: { coroutine: number | null; frames: Frame[] }[] = [];
  let cur: Frame[] = [];
  let co: number | null | undefined;
  for (const f of frames) {
    if (cur.length > 0 && f.coroutine !== co) {
      out.push({ coroutine: out.length === 0 ? null : (co ?? null), frames: cur });
      cur = [];
    }
    co = f.coroutine;
    cur.push(f);
  }
  if (cur.length > 0) out.push({ coroutine: out.length === 0 ? null : (co ?? null), frames: cur });
  return out;
}

const MODEL_FILE = /^src\/machine\/[A-Za-z0-9_\-/]+(\.[A-Za-z0-9_-]+)*\.ts$/;

function frameHtml(f: Frame, i: number): string {
  const text = esc(btLine(i, f));
  if (!MODEL_FILE.test(f.file) || !(f.line >= 1)) return `<div class="bt-line frame" role="listitem" data-frame="${i}">${text}</div>`;
  return `<div class="bt-line frame link" role="listitem" tabindex="0" data-frame="${i}" data-file="${esc(f.file)}" data-line="${f.line}" title="Open ${esc(f.file)}:${f.line}">${text}</div>`;
}

function btHtml(frames: Frame[]): string {
  return sections(frames)
    .map((s, k) => {
      const head = s.coroutine !== null ? `<div class="bt-line coroutine-header">Coroutine at ${hex(s.coroutine)}:</div>` : '';
      const cls = k === 0 ? 'bt-section' : 'bt-section coroutine-section';
      const attr = s.coroutine !== null ? ` data-coroutine="${hex(s.coroutine)}"` : '';
      return `<div class="${cls}"${attr} role="list">${head}${s.frames.map(frameHtml).join('')}</div>`;
    })
    .join('');
}

export function renderStacks(s: SnapshotView, diff: SnapshotDiff): string {
  const threads = s.threads
    .map((t) => {
      const wait = t.waiting_on ? ` — waiting on ${esc(t.waiting_on)}` : '';
      const icon = t.state === 'running' ? 'debug-stackframe' : t.state === 'blocked' ? 'debug-pause' : 'circle-small';
      return `<section class="thread${diff.threads.has(t.id) ? ' changed' : ''}" data-thread-id="${t.id}" data-thread-state="${esc(t.state)}" aria-labelledby="thread-${t.id}">
<h3 id="thread-${t.id}"><span class="codicon codicon-${icon}" aria-hidden="true"></span>Thread ${t.id} “${esc(t.name)}” <span class="muted">${esc(t.state)}${wait}</span></h3>
<div class="bt" aria-label="Backtrace of ${esc(t.name)}">${t.frames.length ? btHtml(t.frames) : '<div class="muted">no frames</div>'}</div></section>`;
    })
    .join('');
  const cos = s.coroutines
    .map(
      (c) => `<section class="coroutine${diff.coroutines.has(c.addr) ? ' changed' : ''}" data-coroutine-addr="${hex(c.addr)}" aria-label="Coroutine ${hex(c.addr)}">
<h4>Coroutine at ${hex(c.addr)} <span class="muted">${esc(c.entry)} — ${esc(c.state)}${c.caller !== null ? `, caller ${hex(c.caller)}` : ''}</span></h4>
<div class="bt" role="list">${c.frames.map(frameHtml).join('') || '<div class="muted">no frames</div>'}</div></section>`,
    )
    .join('');
  return `<h2 id="stacks-heading"><span class="codicon codicon-layers" aria-hidden="true"></span>Threads</h2>${threads}
<h2 id="coroutines-heading"><span class="codicon codicon-symbol-event" aria-hidden="true"></span>Coroutines (${s.coroutines.length})</h2>${cos || '<p class="muted">No coroutines.</p>'}`;
}
