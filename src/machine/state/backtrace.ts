/**
 * Backtraces as `qemu bt` prints them (scripts/qemugdb/coroutine.py): the
 * running stack first; then, for each coroutine caller in turn, a
 * `Coroutine at 0x...:` section with that caller's stack, whose top frame is
 * qemu_coroutine_switch. Tail calls gdb cannot see are left out.
 */
import type { ExecContext, Frame } from '../sim/frames';
import { formatArgs } from '../sim/frames';
import type { CoroutineLike, SimThread } from '../sim/sim';
import { hex } from '../sim/pointers';
import type { Loc } from '../scenario/ast';
import { btLine } from './gdb-text';

export interface FrameInfo {
  name: string;
  args: string;
  file: string;
  line: number;
  /** The program the frame belongs to: the guest kernel, QEMU, the host kernel (KVM), or the scenario. */
  side: 'guest' | 'qemu' | 'kvm' | 'scenario';
  /** The coroutine (or thread leader) whose stack holds this frame. */
  coroutine: number | null;
}

export interface BtSection {
  /** null for the running stack; the caller coroutine's address for the sections below it. */
  coroutine: number | null;
  frames: FrameInfo[];
}

export function frameInfo(f: Frame, coroutine: number | null): FrameInfo {
  if (f.desc.side === 'scenario') {
    const loc = f.a0 as Loc;
    return { name: loc.text, args: '', file: loc.file, line: loc.line, side: 'scenario', coroutine };
  }
  return { name: f.desc.name, args: formatArgs(f), file: f.desc.file, line: f.line, side: f.desc.side, coroutine };
}

export function contextFrames(ctx: ExecContext, coroutine: number | null): FrameInfo[] {
  return ctx.visibleFrames().map((f) => frameInfo(f, coroutine));
}

/** The `qemu bt` of a thread, section by section. */
export function threadBacktrace(t: SimThread): BtSection[] {
  const sections: BtSection[] = [];
  let co: CoroutineLike | null = t.currentCo;
  if (co === null || co === t.leader) return [{ coroutine: null, frames: contextFrames(t.base, null) }];
  sections.push({ coroutine: null, frames: contextFrames(co.ctx, co.ptr) });
  co = co.caller;
  while (co !== null) {
    sections.push({ coroutine: co.ptr, frames: contextFrames(co.ctx, co.ptr) });
    co = co.caller;
  }
  return sections;
}

/** gdb's text for a backtrace: `#0  fn (args) at file:line`, with `Coroutine at` headers. */
export function formatBacktrace(sections: BtSection[]): string {
  const out: string[] = [];
  for (const s of sections) {
    if (s.coroutine !== null) out.push(`Coroutine at ${hex(s.coroutine)}:`);
    s.frames.forEach((f, i) => out.push(btLine(i, f)));
  }
  return out.join('\n');
}
