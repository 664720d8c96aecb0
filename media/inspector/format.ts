/** Number formatting and HTML escaping. Feature words reach 2^53: never 32-bit bit operations on them. */
import type { NumberFormat } from './types';

export function hex(n: number): string {
  return '0x' + n.toString(16);
}

/** An address or a length in the chosen format. */
export function num(n: number, f: NumberFormat): string {
  return f === 'hex' ? hex(n) : String(n);
}

/** Bit `n` of a feature word (a JSON number below 2^53). */
const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ESC[c]);
}

/** Distance from `from` to `to` on a 16-bit ring index. */
export function idxDelta(from: number, to: number): number {
  return (to - from) & 0xffff;
}

/** Descriptor flags as VRING_DESC_F_* names. */
export function descFlags(flags: number): string {
  const out: string[] = [];
  if (flags & 1) out.push('NEXT');
  if (flags & 2) out.push('WRITE');
  if (flags & 4) out.push('INDIRECT');
  const rest = flags & ~7;
  if (rest) out.push(hex(rest));
  return out.join('|');
}

/**
 * Chains are coloured by head with the theme's chart colours, so a chain keeps
 * its colour from stop to stop. The head is hashed (Fibonacci hashing) rather
 * than taken modulo: Linux allocates chains of equal length one after another,
 * so their heads share a stride (0, 3, 6, ...) that a plain modulo would fold
 * onto two colours.
 */
export const CHAIN_COLOURS = 6;
export function chainClass(head: number): string {
  return `chain-c${(Math.imul(head + 1, 0x9e3779b1) >>> 29) % CHAIN_COLOURS}`;
}
