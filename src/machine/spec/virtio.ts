/**
 * Facts of the VIRTIO 1.2 specification that both sides of the machine use:
 * feature bits, status bits, split-ring layout, virtio-mmio registers and the
 * virtio-blk request and config formats. Numbers only; no behaviour.
 */

// §2.1 Device status field
export const VIRTIO_CONFIG_S_ACKNOWLEDGE = 1;
export const VIRTIO_CONFIG_S_DRIVER = 2;
export const VIRTIO_CONFIG_S_DRIVER_OK = 4;
export const VIRTIO_CONFIG_S_FEATURES_OK = 8;
export const VIRTIO_CONFIG_S_NEEDS_RESET = 0x40;
export const VIRTIO_CONFIG_S_FAILED = 0x80;

// §6 Reserved feature bits
export const VIRTIO_RING_F_INDIRECT_DESC = 28;
export const VIRTIO_RING_F_EVENT_IDX = 29;
export const VIRTIO_F_VERSION_1 = 32;
export const VIRTIO_F_ACCESS_PLATFORM = 33;
export const VIRTIO_F_RING_PACKED = 34;
export const VIRTIO_F_IN_ORDER = 35;
export const VIRTIO_F_NOTIFICATION_DATA = 38;

// §5.2.3 virtio-blk feature bits
export const VIRTIO_BLK_F_SIZE_MAX = 1;
export const VIRTIO_BLK_F_SEG_MAX = 2;
export const VIRTIO_BLK_F_GEOMETRY = 4;
export const VIRTIO_BLK_F_RO = 5;
export const VIRTIO_BLK_F_BLK_SIZE = 6;
export const VIRTIO_BLK_F_FLUSH = 9;
export const VIRTIO_BLK_F_TOPOLOGY = 10;
export const VIRTIO_BLK_F_CONFIG_WCE = 11;
export const VIRTIO_BLK_F_MQ = 12;
export const VIRTIO_BLK_F_DISCARD = 13;
export const VIRTIO_BLK_F_WRITE_ZEROES = 14;

/** Feature bits are numbered up to 63; a double holds them exactly as a sum of powers of two. */
export function bit(n: number): number {
  return 2 ** n;
}
export function hasFeature(features: number, n: number): boolean {
  return Math.floor(features / 2 ** n) % 2 === 1;
}

/** Device status bits by name (without the VIRTIO_CONFIG_S_ prefix), for the Variables view and the inspector. */
export const VIRTIO_CONFIG_S_NAMES: readonly (readonly [number, string])[] = [
  [VIRTIO_CONFIG_S_ACKNOWLEDGE, 'ACKNOWLEDGE'],
  [VIRTIO_CONFIG_S_DRIVER, 'DRIVER'],
  [VIRTIO_CONFIG_S_DRIVER_OK, 'DRIVER_OK'],
  [VIRTIO_CONFIG_S_FEATURES_OK, 'FEATURES_OK'],
  [VIRTIO_CONFIG_S_NEEDS_RESET, 'NEEDS_RESET'],
  [VIRTIO_CONFIG_S_FAILED, 'FAILED'],
];

/** The feature bits a virtio-blk device and its transport can offer, by bit, as the headers name them. */
export const VIRTIO_BLK_FEATURE_NAMES: Readonly<Record<number, string>> = {
  [VIRTIO_BLK_F_SIZE_MAX]: 'VIRTIO_BLK_F_SIZE_MAX',
  [VIRTIO_BLK_F_SEG_MAX]: 'VIRTIO_BLK_F_SEG_MAX',
  [VIRTIO_BLK_F_GEOMETRY]: 'VIRTIO_BLK_F_GEOMETRY',
  [VIRTIO_BLK_F_RO]: 'VIRTIO_BLK_F_RO',
  [VIRTIO_BLK_F_BLK_SIZE]: 'VIRTIO_BLK_F_BLK_SIZE',
  [VIRTIO_BLK_F_FLUSH]: 'VIRTIO_BLK_F_FLUSH',
  [VIRTIO_BLK_F_TOPOLOGY]: 'VIRTIO_BLK_F_TOPOLOGY',
  [VIRTIO_BLK_F_CONFIG_WCE]: 'VIRTIO_BLK_F_CONFIG_WCE',
  [VIRTIO_BLK_F_MQ]: 'VIRTIO_BLK_F_MQ',
  [VIRTIO_BLK_F_DISCARD]: 'VIRTIO_BLK_F_DISCARD',
  [VIRTIO_BLK_F_WRITE_ZEROES]: 'VIRTIO_BLK_F_WRITE_ZEROES',
  [VIRTIO_RING_F_INDIRECT_DESC]: 'VIRTIO_RING_F_INDIRECT_DESC',
  [VIRTIO_RING_F_EVENT_IDX]: 'VIRTIO_RING_F_EVENT_IDX',
  [VIRTIO_F_VERSION_1]: 'VIRTIO_F_VERSION_1',
  [VIRTIO_F_ACCESS_PLATFORM]: 'VIRTIO_F_ACCESS_PLATFORM',
  [VIRTIO_F_RING_PACKED]: 'VIRTIO_F_RING_PACKED',
  [VIRTIO_F_IN_ORDER]: 'VIRTIO_F_IN_ORDER',
  [VIRTIO_F_NOTIFICATION_DATA]: 'VIRTIO_F_NOTIFICATION_DATA',
};

/** The names of the feature bits set in a feature word (unnamed ones as `bit N`), lowest first. */
export function featureNames(features: number): string[] {
  const out: string[] = [];
  for (let b = 0; b < 64; b++) if (hasFeature(features, b)) out.push(VIRTIO_BLK_FEATURE_NAMES[b] ?? `bit ${b}`);
  return out;
}

// §2.7.5 The virtqueue descriptor table: { le64 addr; le32 len; le16 flags; le16 next; }
export const VRING_DESC_SIZE = 16;
export const VRING_DESC_F_NEXT = 1;
export const VRING_DESC_F_WRITE = 2;
export const VRING_DESC_F_INDIRECT = 4;
export const DESC_ADDR = 0;
export const DESC_LEN = 8;
export const DESC_FLAGS = 12;
export const DESC_NEXT = 14;

// §2.7.6 The virtqueue available ring: { le16 flags; le16 idx; le16 ring[N]; le16 used_event; }
export const VRING_AVAIL_F_NO_INTERRUPT = 1;
export const AVAIL_FLAGS = 0;
export const AVAIL_IDX = 2;
export const availRingOff = (i: number): number => 4 + 2 * i;
export const usedEventOff = (num: number): number => 4 + 2 * num;

// §2.7.8 The virtqueue used ring: { le16 flags; le16 idx; { le32 id; le32 len; } ring[N]; le16 avail_event; }
export const VRING_USED_F_NO_NOTIFY = 1;
export const USED_FLAGS = 0;
export const USED_IDX = 2;
export const usedRingOff = (i: number): number => 4 + 8 * i;
export const availEventOff = (num: number): number => 4 + 8 * num;
export const VRING_USED_ELEM_SIZE = 8;

// §2.7 sizes and alignment: desc 16/16·N, avail 2/6+2·N, used 4/6+8·N
export const vringDescSize = (num: number): number => VRING_DESC_SIZE * num;
export const vringAvailSize = (num: number): number => 6 + 2 * num;
export const vringUsedSize = (num: number): number => 6 + 8 * num;
export const VIRTQUEUE_MAX_SIZE = 1024; // QEMU's cap on a queue's size
export const VRING_SPLIT_MAX_SIZE = 32768; // §2.7: a split queue's size is a power of 2 up to 32768

/**
 * §2.7.7.2 / §2.7.10: should the side that moved an index from `old` to
 * `new_idx` notify, given the other side asked to be told at `event_idx`?
 * Arithmetic is mod 2^16, so the test holds across the wrap.
 */
export function vring_need_event(event_idx: number, new_idx: number, old: number): boolean {
  return ((new_idx - event_idx - 1) & 0xffff) < ((new_idx - old) & 0xffff);
}

// §4.2.2 virtio-mmio register layout (version 2)
export const VIRTIO_MMIO_MAGIC_VALUE = 0x000;
export const VIRTIO_MMIO_VERSION = 0x004;
export const VIRTIO_MMIO_DEVICE_ID = 0x008;
export const VIRTIO_MMIO_VENDOR_ID = 0x00c;
export const VIRTIO_MMIO_DEVICE_FEATURES = 0x010;
export const VIRTIO_MMIO_DEVICE_FEATURES_SEL = 0x014;
export const VIRTIO_MMIO_DRIVER_FEATURES = 0x020;
export const VIRTIO_MMIO_DRIVER_FEATURES_SEL = 0x024;
export const VIRTIO_MMIO_QUEUE_SEL = 0x030;
export const VIRTIO_MMIO_QUEUE_NUM_MAX = 0x034;
export const VIRTIO_MMIO_QUEUE_NUM = 0x038;
export const VIRTIO_MMIO_QUEUE_READY = 0x044;
export const VIRTIO_MMIO_QUEUE_NOTIFY = 0x050;
export const VIRTIO_MMIO_INTERRUPT_STATUS = 0x060;
export const VIRTIO_MMIO_INTERRUPT_ACK = 0x064;
export const VIRTIO_MMIO_STATUS = 0x070;
export const VIRTIO_MMIO_QUEUE_DESC_LOW = 0x080;
export const VIRTIO_MMIO_QUEUE_DESC_HIGH = 0x084;
export const VIRTIO_MMIO_QUEUE_AVAIL_LOW = 0x090; // "QueueDriver"
export const VIRTIO_MMIO_QUEUE_AVAIL_HIGH = 0x094;
export const VIRTIO_MMIO_QUEUE_USED_LOW = 0x0a0; // "QueueDevice"
export const VIRTIO_MMIO_QUEUE_USED_HIGH = 0x0a4;
export const VIRTIO_MMIO_CONFIG_GENERATION = 0x0fc;
export const VIRTIO_MMIO_CONFIG = 0x100;
export const VIRTIO_MMIO_MAGIC = 0x74726976; // "virt", little-endian
export const VIRTIO_MMIO_INT_VRING = 1;
export const VIRTIO_MMIO_INT_CONFIG = 2;
export const VIRTIO_ID_BLOCK = 2;

// §5.2.6 virtio-blk requests
export const VIRTIO_BLK_T_IN = 0;
export const VIRTIO_BLK_T_OUT = 1;
export const VIRTIO_BLK_T_FLUSH = 4;
export const VIRTIO_BLK_T_GET_ID = 8;
export const VIRTIO_BLK_T_DISCARD = 11;
export const VIRTIO_BLK_T_WRITE_ZEROES = 13;
export const VIRTIO_BLK_T_BARRIER = 0x80000000; // legacy
export const VIRTIO_BLK_S_OK = 0;
export const VIRTIO_BLK_S_IOERR = 1;
export const VIRTIO_BLK_S_UNSUPP = 2;
export const VIRTIO_BLK_ID_BYTES = 20;
/** Request type names as virtio_blk.h spells them, for frames, variables and the inspector. */
export const VIRTIO_BLK_T_NAMES: Readonly<Record<number, string>> = {
  [VIRTIO_BLK_T_IN]: 'VIRTIO_BLK_T_IN',
  [VIRTIO_BLK_T_OUT]: 'VIRTIO_BLK_T_OUT',
  [VIRTIO_BLK_T_FLUSH]: 'VIRTIO_BLK_T_FLUSH',
  [VIRTIO_BLK_T_GET_ID]: 'VIRTIO_BLK_T_GET_ID',
  [VIRTIO_BLK_T_DISCARD]: 'VIRTIO_BLK_T_DISCARD',
  [VIRTIO_BLK_T_WRITE_ZEROES]: 'VIRTIO_BLK_T_WRITE_ZEROES',
};
export const VIRTIO_BLK_S_NAMES: readonly string[] = ['VIRTIO_BLK_S_OK', 'VIRTIO_BLK_S_IOERR', 'VIRTIO_BLK_S_UNSUPP'];
export const VIRTIO_BLK_OUTHDR_SIZE = 16; // { le32 type; le32 ioprio; le64 sector; }
export const VIRTIO_BLK_DISCARD_WZ_SEG_SIZE = 16; // { le64 sector; le32 num_sectors; le32 flags; }
export const VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP = 1;
export const SECTOR_SIZE = 512;

// §5.2.4 struct virtio_blk_config offsets
export const BLK_CFG_CAPACITY = 0;
export const BLK_CFG_SIZE_MAX = 8;
export const BLK_CFG_SEG_MAX = 12;
export const BLK_CFG_GEOMETRY = 16;
export const BLK_CFG_BLK_SIZE = 20;
export const BLK_CFG_TOPOLOGY = 24;
export const BLK_CFG_PHYSICAL_BLOCK_EXP = 24; // topology: u8 physical_block_exp
export const BLK_CFG_ALIGNMENT_OFFSET = 25; // u8 alignment_offset
export const BLK_CFG_MIN_IO_SIZE = 26; // le16 min_io_size
export const BLK_CFG_OPT_IO_SIZE = 28; // le32 opt_io_size
export const BLK_CFG_WRITEBACK = 32;
export const BLK_CFG_NUM_QUEUES = 34;
export const BLK_CFG_MAX_DISCARD_SECTORS = 36;
export const BLK_CFG_MAX_DISCARD_SEG = 40;
export const BLK_CFG_DISCARD_SECTOR_ALIGNMENT = 44;
export const BLK_CFG_MAX_WRITE_ZEROES_SECTORS = 48;
export const BLK_CFG_MAX_WRITE_ZEROES_SEG = 52;
export const BLK_CFG_WRITE_ZEROES_MAY_UNMAP = 56;
export const BLK_CFG_SIZE = 60;
