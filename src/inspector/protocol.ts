/**
 * Messages between the extension host and the Virtqueue Inspector webview.
 * Shared by both sides (no vscode import here): the host posts HostMessage,
 * the webview posts WebviewMessage, and the host accepts nothing from the
 * webview before validateWebviewMessage has checked it — a webview is
 * untrusted input like any other.
 */
import type { StateSnapshot } from '../machine/state/snapshot';

export type NumberFormat = 'hex' | 'decimal';

/** Why the machine stopped, as the adapter's `stopped` event said it. */
export interface StopContext {
  reason: string;
  description?: string;
  threadId?: number;
}

export type HostMessage =
  /** A new stop (or a re-send after `ready`): draw `state`; highlight what differs from `previous` when given, else from the last state drawn. */
  | { type: 'state'; session: string; seq: number; stop: StopContext | null; state: StateSnapshot; previous?: StateSnapshot | null }
  /** The session ended: keep the last state visible, marked as ended. */
  | { type: 'ended'; session: string }
  /** Display settings (virtio.inspector.numberFormat). */
  | { type: 'config'; numberFormat: NumberFormat }
  /** Something the host could not do for the webview (e.g. `virtio/state` failed). */
  | { type: 'error'; message: string };

export type WebviewMessage =
  /** The page is loaded and listening: the host answers with config and the last state. */
  | { type: 'ready' }
  /** Ask for a fresh `virtio/state` from the active session. */
  | { type: 'refresh' }
  /** Open a model source at a line: `file` as in a snapshot frame (project-relative, `src/machine/...ts`). */
  | { type: 'revealSource'; file: string; line: number }
  /** Show guest memory at a guest-physical address. */
  | { type: 'openMemory'; addr: number; len: number };

export const MAX_MEMORY_VIEW = 65536;

const MODEL_FILE = /^src\/machine\/[A-Za-z0-9_\-/]+(\.[A-Za-z0-9_-]+)*\.ts$/;

function isObj(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function exactKeys(o: Record<string, unknown>, keys: string[]): boolean {
  const k = Object.keys(o);
  return k.length === keys.length && keys.every((n) => Object.prototype.hasOwnProperty.call(o, n));
}

/**
 * Check a message from the webview. Returns the typed message, or a string
 * saying what is wrong with it. Unknown types, extra keys, paths outside the
 * model sources, and out-of-range numbers are all refused.
 */
export function validateWebviewMessage(x: unknown): WebviewMessage | string {
  if (!isObj(x)) return 'message is not an object';
  switch (x.type) {
    case 'ready':
    case 'refresh':
      return exactKeys(x, ['type']) ? { type: x.type } : `unexpected fields in '${x.type}'`;
    case 'revealSource': {
      if (!exactKeys(x, ['type', 'file', 'line'])) return "revealSource needs exactly 'file' and 'line'";
      const { file, line } = x;
      if (typeof file !== 'string' || file.length > 200 || !MODEL_FILE.test(file) || file.includes('..')) return 'revealSource: file is not a model source path';
      if (typeof line !== 'number' || !Number.isInteger(line) || line < 1 || line > 1_000_000) return 'revealSource: line must be an integer from 1';
      return { type: 'revealSource', file, line };
    }
    case 'openMemory': {
      if (!exactKeys(x, ['type', 'addr', 'len'])) return "openMemory needs exactly 'addr' and 'len'";
      const { addr, len } = x;
      if (typeof addr !== 'number' || !Number.isSafeInteger(addr) || addr < 0) return 'openMemory: addr must be a non-negative integer';
      if (typeof len !== 'number' || !Number.isInteger(len) || len < 1 || len > MAX_MEMORY_VIEW) return `openMemory: len must be an integer from 1 to ${MAX_MEMORY_VIEW}`;
      return { type: 'openMemory', addr, len };
    }
    default:
      return `unknown message type ${JSON.stringify(typeof x.type === 'string' ? x.type.slice(0, 40) : typeof x.type)}`;
  }
}
