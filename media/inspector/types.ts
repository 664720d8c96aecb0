/**
 * The shapes the inspector draws: the state snapshot of src/machine/state
 * (type-only imports; nothing of the machine is bundled) plus the fields the
 * host side is adding, optional until every host sends them.
 */
import type { DescSnapshot, QueueSnapshot, StateSnapshot } from '../../src/machine/state/snapshot';
import type { NumberFormat, StopContext } from '../../src/inspector/protocol';

export type { DescSnapshot, NumberFormat, StopContext };

export interface IndirectTable {
  /** The ring descriptor with VRING_DESC_F_INDIRECT. */
  desc: number;
  /** Guest-physical address of the table. */
  table: number;
  entries: DescSnapshot[];
  truncated: boolean;
}

export interface BlkRequest {
  type: number;
  type_name: string;
  ioprio: number;
  sector: number;
  status: number;
  status_name: string;
}

export type InflightView = QueueSnapshot['inflight'][number] & {
  chain?: number[];
  indirect_table?: number | null;
  blk?: BlkRequest | null;
};

export type QueueView = Omit<QueueSnapshot, 'inflight' | 'indirect'> & {
  inflight: InflightView[];
  indirect?: IndirectTable[];
};

export type SnapshotView = Omit<StateSnapshot, 'queues'> & { queues: QueueView[] };

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
