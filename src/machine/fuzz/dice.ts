/**
 * Dice for the fuzzer: the project's seeded generator (sim/random.ts) with
 * the few shapes of choice the case generator needs, and the mixing that
 * turns (run seed, case index) into one case's seed, so that any case can be
 * replayed alone without running the cases before it.
 */
import { Rng } from '../sim/random';

export class Dice {
  private readonly rng: Rng;

  constructor(seed: number) {
    this.rng = new Rng(seed);
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.rng.next();
  }

  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return this.rng.between(lo, hi);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.rng.next() < p;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.rng.next() * xs.length)];
  }

  /** An index into `w`, with probability proportional to its weight (no allocation: for the hot paths). */
  choose(w: Weights): number {
    const r = this.rng.next() * w.total;
    const cum = w.cum;
    for (let i = 0; i < cum.length; i++) if (r < cum[i]) return i;
    return cum.length - 1;
  }

  /** One of `choices`, with probability proportional to its weight. */
  weighted<T>(choices: readonly (readonly [number, T])[]): T {
    let total = 0;
    for (const [w] of choices) total += w;
    let r = this.rng.next() * total;
    for (const [w, v] of choices) {
      if (r < w) return v;
      r -= w;
    }
    return choices[choices.length - 1][1];
  }

  u16(): number {
    return this.int(0, 0xffff);
  }

  u32(): number {
    return this.int(0, 0xffffffff);
  }

  /** Small values much more often than large ones: lo + floor((hi - lo + 1) * r^3). */
  skewed(lo: number, hi: number): number {
    const r = this.rng.next();
    return lo + Math.floor((hi - lo + 1) * r * r * r);
  }

  /** Fisher–Yates, in place. */
  shuffle<T>(xs: T[]): T[] {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = Math.floor(this.rng.next() * (i + 1));
      const t = xs[i];
      xs[i] = xs[j];
      xs[j] = t;
    }
    return xs;
  }
}

/** Relative weights, summed once: `dice.choose(w)` picks an index. */
export class Weights {
  readonly cum: readonly number[];
  readonly total: number;

  constructor(...ws: number[]) {
    let t = 0;
    this.cum = ws.map((w) => (t += w));
    this.total = t;
  }
}

/** murmur3's finaliser: every input bit affects every output bit. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The seed of case `index` of a run started with `seed`: depends on nothing else. */
export function caseSeed(seed: number, index: number): number {
  return fmix32(fmix32(seed >>> 0) ^ Math.imul((index >>> 0) + 1, 0x9e3779b1));
}
