/** Guest memory as text, for the `virtio-memory:` documents (no vscode import: unit-tested). */

/** `xxd`-style lines: address, 16 bytes in hex, then printable ASCII. Unreadable bytes print as `??`. */
export function hexDump(addr: number, data: Uint8Array, unreadable: number): string {
  const lines: string[] = [];
  const total = data.length + unreadable;
  for (let off = 0; off < total; off += 16) {
    const cells: string[] = [];
    let ascii = '';
    for (let i = off; i < Math.min(off + 16, total); i++) {
      if (i < data.length) {
        cells.push(data[i].toString(16).padStart(2, '0'));
        ascii += data[i] >= 0x20 && data[i] < 0x7f ? String.fromCharCode(data[i]) : '.';
      } else {
        cells.push('??');
        ascii += ' ';
      }
    }
    const groups: string[] = [];
    for (let g = 0; g < cells.length; g += 2) groups.push(cells.slice(g, g + 2).join(''));
    lines.push(`${(addr + off).toString(16).padStart(12, '0')}: ${groups.join(' ').padEnd(39)}  ${ascii}`);
  }
  return lines.join('\n') + '\n';
}
