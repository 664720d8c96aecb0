/**
 * Stacks as the CALL STACK view shows them: a thread's frames innermost
 * first; where a coroutine was entered, a label frame `Coroutine at 0x…`
 * and then the frames of the stack that entered it (`qemu bt`); on vCPU 0,
 * a label where the guest's MMIO access leaves the guest for QEMU (or for
 * KVM's ioeventfd). Suspended coroutines are threads of their own.
 */
import type { SimThread, CoroutineLike } from '../machine/sim/sim';
import type { ExecContext, Frame } from '../machine/sim/frames';
import { formatArgs } from '../machine/sim/frames';
import { hex } from '../machine/sim/pointers';

export type StackEntry =
  | { kind: 'frame'; frame: Frame; coroutine: number | null }
  | { kind: 'label'; text: string };

function framesOf(ctx: ExecContext): Frame[] {
  return ctx.visibleFrames();
}

/** Insert the guest → host label between a guest frame and the host frame above it. */
function withSideLabels(frames: Frame[], coroutine: number | null): StackEntry[] {
  const out: StackEntry[] = [];
  for (let i = 0; i < frames.length; i++) {
    const f = frames[i];
    const below = frames[i + 1];
    out.push({ kind: 'frame', frame: f, coroutine });
    if (below && below.desc.side === 'guest' && f.desc.side !== 'guest') {
      out.push({
        kind: 'label',
        text: f.desc.side === 'kvm'
          ? '── guest store caught by KVM (ioeventfd): the vCPU does not exit ──'
          : '── guest MMIO access exits to QEMU (KVM_EXIT_MMIO) ──',
      });
    }
  }
  return out;
}

/** The whole stack of a thread, coroutine sections joined as `qemu bt` does. */
export function threadStack(t: SimThread): StackEntry[] {
  const co = t.currentCo;
  if (co === null || co === t.leader) return withSideLabels(framesOf(t.base), null);
  const out: StackEntry[] = withSideLabels(framesOf(co.ctx), co.ptr);
  let caller: CoroutineLike | null = co.caller;
  while (caller !== null) {
    out.push({ kind: 'label', text: `Coroutine at ${hex(caller.ptr)}:` });
    out.push(...withSideLabels(framesOf(caller.ctx), caller.ptr));
    caller = caller.caller;
  }
  return out;
}

/** A suspended coroutine's own stack (where it yielded). */
export function coroutineStack(co: CoroutineLike): StackEntry[] {
  return withSideLabels(framesOf(co.ctx), co.ptr);
}

/** `fn (args)`, as the frame's name. */
export function frameTitle(f: Frame): string {
  if (f.desc.side === 'scenario') return (f.a0 as { text: string }).text;
  return `${f.desc.name} (${formatArgs(f)})`;
}
