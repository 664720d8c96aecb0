/**
 * The shapes the inspector draws: the state snapshot of src/machine/state
 * (type-only imports; nothing of the machine is bundled), under the names
 * the page's modules use.
 */
import type {
  BlkRequestSnapshot, DescSnapshot, IndirectSnapshot, InflightSnapshot, QueueSnapshot, StateSnapshot,
} from '../../src/machine/state/snapshot';
import type { NumberFormat, StopContext } from '../../src/inspector/protocol';

export type { DescSnapshot, NumberFormat, StopContext };
export type IndirectTable = IndirectSnapshot;
export type BlkRequest = BlkRequestSnapshot;
export type InflightView = InflightSnapshot;
export type QueueView = QueueSnapshot;
export type SnapshotView = StateSnapshot;

/** A validated `state` message. */
export interface StateMessage {
  type: 'state';
  session: string;
  seq: number;
  stop: StopContext | null;
  state: SnapshotView;
  previous?: SnapshotView | null;
}

export type HostMessageView =
  | StateMessage
  | { type: 'ended'; session: string }
  | { type: 'config'; numberFormat: NumberFormat }
  | { type: 'error'; message: string };
