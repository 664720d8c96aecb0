/**
 * The Virtqueue Inspector's figure, in headless Chromium (/usr/bin/chromium):
 *
 *   inspector_stop_to_drawn_ms   a `state` message posted (the host's answer to a
 *                                stopped event) → the new state in the DOM and laid
 *                                out (body[data-drawn-seq]; p50/p95, the target);
 *                                painted_p50/painted_p95: until the frame showing it
 *                                is painted too (body[data-painted-seq]), which adds
 *                                the wait for the 60 Hz frame tick (0-16.7 ms)
 *
 * at queue sizes 256, 1,024 and 32,768, alternating two stops of one run so
 * every draw also highlights what changed. Timed inside the page with
 * performance.now(). The page is dist/media/inspector.js as built.
 *
 * Headless Chromium ticks frames at 60 Hz whatever the flags, so the paint
 * figure includes a wait no page can shorten; the target applies to drawn.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ROOT, launch, openInspector } from '../test/webview/harness';
import { boot, runToFunction } from '../test/helpers/machine';
import { sample } from '../test/webview/states';
import type { StateSnapshot } from '../src/machine/state/snapshot';

const TARGETS: Record<number, number> = { 256: 16, 1024: 50, 32768: 200 };

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

/** Two consecutive stops of the default scenario at this queue size (handle_output, then rw_complete). */
function twoStops(queueSize: number): [StateSnapshot, StateSnapshot] {
  const { m } = boot(sample('default.virtio'), { queueSize, indirectDesc: false });
  try {
    runToFunction(m, 'virtio_blk_handle_output');
    const a = m.snapshot();
    runToFunction(m, 'virtio_blk_rw_complete');
    return [a, m.snapshot()];
  } finally {
    m.close();
  }
}

export async function inspectorBench(emit: (o: Record<string, unknown>) => void, samples = 40): Promise<void> {
  const script = fs.readFileSync(path.join(ROOT, 'dist', 'media', 'inspector.js'), 'utf8');
  const browser = await launch();
  try {
    for (const queueSize of [256, 1024, 32768]) {
      const states = twoStops(queueSize);
      const ins = await openInspector(browser, { script, memoryState: true, theme: 'dark' });
      await ins.page.evaluate((s) => ((window as unknown as { __states: unknown[] }).__states = s), states);
      const times: number[] = [];
      const painted: number[] = [];
      const warmup = 5;
      for (let i = 0; i < samples + warmup; i++) {
        const ms = await ins.page.evaluate(
          (seq) =>
            new Promise<[number, number]>((resolve) => {
              const states = (window as unknown as { __states: unknown[] }).__states;
              const body = document.body;
              let drawn = -1;
              const obs = new MutationObserver(() => {
                if (drawn < 0 && body.dataset.drawnSeq === String(seq)) drawn = performance.now() - t0;
                if (body.dataset.paintedSeq === String(seq)) {
                  obs.disconnect();
                  resolve([drawn, performance.now() - t0]);
                }
              });
              obs.observe(body, { attributes: true, attributeFilter: ['data-drawn-seq', 'data-painted-seq'] });
              const t0 = performance.now();
              window.postMessage({ type: 'state', session: 'bench', seq, stop: { reason: 'breakpoint' }, state: states[seq % 2] }, '*');
            }),
          i + 1,
        );
        if (i >= warmup) {
          times.push(ms[0]);
          painted.push(ms[1]);
        }
      }
      if (ins.problems().length) throw new Error(`inspector page errors: ${ins.problems().join('; ')}`);
      await ins.page.context().close();
      emit({
        figure: 'inspector_stop_to_drawn_ms',
        queue_size: queueSize,
        p50: +percentile(times, 50).toFixed(1),
        p95: +percentile(times, 95).toFixed(1),
        painted_p50: +percentile(painted, 50).toFixed(1),
        painted_p95: +percentile(painted, 95).toFixed(1),
        samples: times.length,
        unit: 'ms',
        target: `< ${TARGETS[queueSize]}`,
      });
    }
  } finally {
    await browser.close();
  }
}
