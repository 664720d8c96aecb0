/**
 * Which ring descriptors belong to a chain, and to which: the heads are the
 * avail entries in the window used.idx..avail.idx, the used entries the driver
 * has not collected yet (driver.last_used_idx..used.idx), and the in-flight
 * elements' heads; every descriptor reachable from a head through NEXT is in
 * its chain. The others are free.
 */
import type { QueueView } from './types';

export interface ChainInfo {
  /** head of the chain each descriptor belongs to, or -1 when free. */
  headOf: Int32Array;
  /** position of the descriptor in its chain (0 = head). */
  posOf: Int32Array;
  /** chains by head, descriptor indices head first, in the order found. */
  chains: Map<number, number[]>;
}

/** Follow NEXT links from `head`, stopping at a loop, an index out of range or `num` hops. */
export function walkChain(q: QueueView, head: number): number[] {
  const n = q.desc.length;
  const out: number[] = [];
  if (head < 0 || head >= n) return out;
  const seen = new Set<number>();
  let i = head;
  while (i >= 0 && i < n && !seen.has(i) && out.length < n) {
    seen.add(i);
    out.push(i);
    const d = q.desc[i];
    if (!(d.flags & 1)) break;
    i = d.next;
  }
  return out;
}

export function computeChains(q: QueueView): ChainInfo {
  const n = q.desc.length;
  const headOf = new Int32Array(n).fill(-1);
  const posOf = new Int32Array(n).fill(-1);
  const chains = new Map<number, number[]>();
  const num = q.num || n;
  const add = (head: number, chain?: number[]): void => {
    if (head < 0 || head >= n || chains.has(head) || headOf[head] !== -1) return;
    const c = chain && chain.length > 0 && chain[0] === head ? chain.filter((i) => i >= 0 && i < n) : walkChain(q, head);
    chains.set(head, c);
    c.forEach((i, p) => {
      if (headOf[i] === -1) {
        headOf[i] = head;
        posOf[i] = p;
      }
    });
  };
  if (n === 0) return { headOf, posOf, chains };
  for (const e of q.inflight) add(e.index, e.chain);
  // Completed but not yet collected by the driver.
  const lastUsed = q.driver ? q.driver.last_used_idx : q.used.idx;
  const usedCount = Math.min((q.used.idx - lastUsed) & 0xffff, num);
  for (let k = 0; k < usedCount; k++) {
    const e = q.used.ring[(lastUsed + k) % num];
    if (e) add(e.id);
  }
  // Made available and not yet used.
  const availCount = Math.min((q.avail.idx - q.used.idx) & 0xffff, num);
  for (let k = 0; k < availCount; k++) {
    const h = q.avail.ring[(q.used.idx + k) % num];
    if (h !== undefined) add(h);
  }
  return { headOf, posOf, chains };
}
