/**
 * The launch request's attributes (DESIGN.md): the machine's options, plus
 * the adapter's own (`trace`, `noDebug`). Every attribute is checked; a
 * wrong one gets a message naming it, a missing file names the path.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { MachineOptions, OptionError, validateOptions } from '../machine/options';
import { projectRoot } from './sourceMap';

export interface LaunchArgs {
  options: MachineOptions;
  /** Absolute path of the scenario to run (the bundled default when none was given). */
  scenarioPath: string;
  trace: boolean;
  noDebug: boolean;
}

/** Attributes VS Code itself adds to every launch configuration. */
const CLIENT_ATTRIBUTES = new Set(['type', 'request', 'name', '__sessionId', '__configurationTarget', 'presentation', 'internalConsoleOptions', 'preLaunchTask', 'postDebugTask', 'debugServer', 'cwd', 'env', '__restart', 'console']);

export function defaultScenarioPath(): string {
  return path.join(projectRoot(), 'samples', 'default.virtio');
}

export function parseLaunchArgs(raw: Record<string, unknown>): LaunchArgs {
  const machineRaw: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (k === 'trace' || k === 'noDebug' || CLIENT_ATTRIBUTES.has(k)) continue;
    machineRaw[k] = v;
  }
  const options = validateOptions(machineRaw, true);
  for (const k of ['trace', 'noDebug'] as const) {
    if (raw[k] !== undefined && typeof raw[k] !== 'boolean') {
      throw new OptionError(k, `attribute '${k}' must be a boolean, got ${JSON.stringify(raw[k])}`);
    }
  }
  const scenarioPath = options.scenario ? path.resolve(options.scenario) : defaultScenarioPath();
  if (!fs.existsSync(scenarioPath)) throw new OptionError('scenario', `attribute 'scenario': no such file ${scenarioPath}`);
  if (options.image !== undefined) {
    const img = path.resolve(options.image);
    if (!fs.existsSync(img)) throw new OptionError('image', `attribute 'image': no such file ${img}`);
    options.image = img;
  }
  return { options, scenarioPath, trace: raw.trace === true, noDebug: raw.noDebug === true };
}
