/**
 * What one fuzz case runs on, drawn from the case's own seed: the machine's
 * launch attributes (features, queue size, ioeventfd, IOThread, AIO engine,
 * image and its mode, the machine's own scheduling seed). The ring contents
 * are drawn later, by the vCPU program, from the same dice.
 */
import { MachineOptions, validateOptions } from '../options';
import type { Dice } from './dice';

/** Guest RAM of every fuzz machine: big enough for a 1024-entry ring, tables and data, small enough to zero fast. */
export const FUZZ_RAM_SIZE = 1024 * 1024;

/** Queue sizes, biased small: small rings wrap, fill and overflow with few requests, and cost little to set up. */
const QUEUE_SIZES: readonly (readonly [number, number])[] = [
  [10, 2], [15, 4], [20, 8], [18, 16], [12, 32], [8, 64], [6, 128], [5, 256], [3, 512], [3, 1024],
];

export interface CaseParams {
  seed: number;
  index: number;
  options: MachineOptions;
  /** True: the run's image file (snapshot or readonly mode); false: the generated image. */
  imageFile: boolean;
}

/**
 * Draw a case's machine. `imagePath` is the run's temporary image file (a
 * fraction of the cases use it, so that "snapshot never writes the file" is
 * checked against device writes of every kind).
 */
export function drawParams(d: Dice, seed: number, index: number, imagePath: string | null): CaseParams {
  const ioeventfd = d.chance(0.6);
  const imageFile = imagePath !== null && d.chance(0.3);
  const raw: Record<string, unknown> = {
    queueSize: d.weighted(QUEUE_SIZES),
    // More queues than the one-vCPU guest sets up: kicks for the others must be ignored.
    numQueues: d.chance(0.8) ? 1 : d.int(2, 4),
    indirectDesc: d.chance(0.6),
    eventIdx: d.chance(0.6),
    ioeventfd,
    // QEMU refuses an IOThread without ioeventfd (options.ts checks it too).
    iothread: ioeventfd && d.chance(0.3),
    aio: d.pick(['threads', 'io_uring', 'native'] as const),
    seed: d.u32(),
    imageMode: d.chance(imageFile ? 0.25 : 0.1) ? 'readonly' : 'snapshot',
  };
  if (imageFile) raw.image = imagePath;
  return { seed, index, options: validateOptions(raw), imageFile };
}
