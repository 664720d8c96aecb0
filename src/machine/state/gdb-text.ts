/**
 * gdb's backtrace text, shared by the CLI, the adapter and the inspector page
 * (which bundles this file alone: no imports here).
 */

/**
 * Where gdb would say a frame is: relative to the program's own source tree,
 * as QEMU's build directory shows it (`../hw/block/virtio-blk.ts`), or the
 * kernel's (`drivers/block/virtio_blk.ts`).
 */
export function gdbPath(file: string): string {
  const m = /^src\/machine\/(qemu|linux|kvm)\/(.*)$/.exec(file);
  if (!m) return file;
  return m[1] === 'qemu' ? `../${m[2]}` : m[2];
}

/** One line of `bt`: `#0  fn (args) at file:line`. */
export function btLine(i: number, f: { name: string; args: string; file: string; line: number }): string {
  return `${`#${i}`.padEnd(4)}${f.name} (${f.args}) at ${gdbPath(f.file)}:${f.line}`;
}
