/**
 * The machine's options: the launch attributes of DESIGN.md, with their
 * defaults and their validation. The CLI and (later) the debug adapter both
 * validate through here, so a bad attribute gets the same message everywhere.
 */

export type ImageModeOpt = 'snapshot' | 'readonly' | 'writethrough';
export type AioOpt = 'threads' | 'io_uring' | 'native';

export interface MachineOptions {
  /** Path of the .virtio scenario; undefined: the bundled default. */
  scenario?: string;
  /** Raw image path; undefined: a generated 16 MiB image. */
  image?: string;
  imageMode: ImageModeOpt;
  queueSize: number;
  numQueues: number;
  indirectDesc: boolean;
  eventIdx: boolean;
  packed: boolean;
  ioeventfd: boolean;
  iothread: boolean;
  aio: AioOpt;
  stopOnEntry: boolean;
  seed: number;
}

export const DEFAULT_OPTIONS: MachineOptions = {
  imageMode: 'snapshot',
  queueSize: 256,
  numQueues: 1,
  indirectDesc: true,
  eventIdx: true,
  packed: false,
  ioeventfd: true,
  iothread: false,
  aio: 'io_uring',
  stopOnEntry: false,
  seed: 0,
};

type Kind = 'string' | 'boolean' | 'integer' | 'enum';
interface AttrSpec {
  kind: Kind;
  values?: readonly string[];
  min?: number;
  max?: number;
  check?: (v: number) => string | null;
}

const powerOfTwo = (v: number): string | null => ((v & (v - 1)) === 0 ? null : 'must be a power of 2');

/** One entry per launch attribute: its type and the values it accepts. */
export const ATTRIBUTES: Record<keyof MachineOptions, AttrSpec> = {
  scenario: { kind: 'string' },
  image: { kind: 'string' },
  imageMode: { kind: 'enum', values: ['snapshot', 'readonly', 'writethrough'] },
  // The spec allows up to 32768. QEMU's virtio-blk stops at 1024 (VIRTQUEUE_MAX_SIZE); the
  // machine goes to the spec's limit so that large rings can be studied too.
  queueSize: { kind: 'integer', min: 2, max: 32768, check: powerOfTwo },
  // The device offers this many queues (with VIRTIO_BLK_F_MQ when > 1); the one-vCPU guest uses
  // min(nr_cpus, num_queues) of them, as Linux does, so queues past the first stay unset.
  numQueues: { kind: 'integer', min: 1, max: 16 },
  indirectDesc: { kind: 'boolean' },
  eventIdx: { kind: 'boolean' },
  packed: { kind: 'boolean' },
  ioeventfd: { kind: 'boolean' },
  iothread: { kind: 'boolean' },
  aio: { kind: 'enum', values: ['threads', 'io_uring', 'native'] },
  stopOnEntry: { kind: 'boolean' },
  seed: { kind: 'integer', min: 0, max: 0xffffffff },
};

export class OptionError extends Error {
  constructor(readonly attribute: string, message: string) {
    super(message);
  }
}

function describe(spec: AttrSpec): string {
  switch (spec.kind) {
    case 'enum': return `one of ${spec.values!.map((v) => `"${v}"`).join(', ')}`;
    case 'integer': return `an integer from ${spec.min} to ${spec.max}`;
    default: return `a ${spec.kind}`;
  }
}

/**
 * Validate attributes given as JSON values (launch.json) and fill defaults.
 * Unknown attributes are the caller's business (the adapter has its own, like
 * `trace` and `noDebug`); pass `strict` to reject them.
 */
export function validateOptions(raw: Record<string, unknown>, strict = false): MachineOptions {
  const out: MachineOptions = { ...DEFAULT_OPTIONS };
  for (const [name, value] of Object.entries(raw)) {
    const spec = (ATTRIBUTES as Record<string, AttrSpec | undefined>)[name];
    if (!spec) {
      if (strict) throw new OptionError(name, `unknown attribute '${name}'`);
      continue;
    }
    if (value === undefined || value === null) continue;
    const bad = (): OptionError => new OptionError(name, `attribute '${name}' must be ${describe(spec)}, got ${JSON.stringify(value)}`);
    switch (spec.kind) {
      case 'string':
        if (typeof value !== 'string' || value === '') throw bad();
        break;
      case 'boolean':
        if (typeof value !== 'boolean') throw bad();
        break;
      case 'enum':
        if (typeof value !== 'string' || !spec.values!.includes(value)) throw bad();
        break;
      case 'integer': {
        if (typeof value !== 'number' || !Number.isInteger(value) || value < spec.min! || value > spec.max!) throw bad();
        const why = spec.check?.(value);
        if (why) throw new OptionError(name, `attribute '${name}' ${why}, got ${value}`);
        break;
      }
    }
    (out as unknown as Record<string, unknown>)[name] = value;
  }
  if (out.packed) throw new OptionError('packed', "attribute 'packed': packed virtqueues are not modelled yet; use the split ring (packed: false)");
  if (out.iothread && !out.ioeventfd) {
    // QEMU refuses this too: "ioeventfd is required for iothread".
    throw new OptionError('iothread', "attribute 'iothread' requires 'ioeventfd': true (QEMU: ioeventfd is required for iothread)");
  }
  return out;
}

/** Parse `--name=value` strings from a command line into JSON values, then validate. */
export function optionsFromArgs(args: string[]): MachineOptions {
  const raw: Record<string, unknown> = {};
  for (const a of args) {
    const m = /^--([A-Za-z]+)(?:=(.*))?$/.exec(a);
    if (!m) throw new OptionError(a, `bad option '${a}' (expected --name=value)`);
    const [, name, text] = m;
    const spec = (ATTRIBUTES as Record<string, AttrSpec | undefined>)[name];
    if (!spec) throw new OptionError(name, `unknown option '--${name}' (options: ${Object.keys(ATTRIBUTES).map((k) => '--' + k).join(' ')})`);
    let v: unknown = text;
    if (spec.kind === 'boolean') v = text === undefined || text === 'true' ? true : text === 'false' ? false : text;
    else if (spec.kind === 'integer') v = text !== undefined && /^(0x[0-9a-f]+|\d+)$/i.test(text) ? Number(text) : text;
    raw[name] = v;
  }
  return validateOptions(raw, true);
}
