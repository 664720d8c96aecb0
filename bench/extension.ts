/**
 * Extension figures:
 *
 *   vsix_bytes                 size of the .vsix `npm run package` builds (scripts/package.mjs)
 *   extension_activation_ms    fresh Node process: require dist/extension.js and run activate()
 *
 * Activation is measured in Node 20 outside VS Code: `vscode` is replaced by
 * an inert object that accepts every registration, so the figure is the
 * extension's own cost (loading its bundle, building its providers), not the
 * editor's. The end-to-end tests activate it in a real code-server.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..');

/**
 * Runs in the child: an inert `vscode`, then require + activate, timed. The
 * bundle reads `vscode` through esbuild's ESM interop, which copies the
 * module's own property names; the inert object lists the API names the
 * bundle uses (argv[2]) as its own.
 */
const ACTIVATE = `
const Module = require('module');
const names = JSON.parse(process.argv[2]);
const inert = new Proxy(function () {}, {
  get: (_t, k) => (k === Symbol.toPrimitive ? () => '' : k === 'then' || k === '__esModule' ? undefined : inert),
  apply: () => inert,
  construct: () => inert,
  ownKeys: (t) => [...new Set([...Reflect.ownKeys(t), ...names])],
  getOwnPropertyDescriptor: (t, k) => Reflect.getOwnPropertyDescriptor(t, k) ?? (names.includes(k) ? { configurable: true, enumerable: true, value: inert } : undefined),
});
const load = Module._load;
Module._load = function (request, ...rest) { return request === 'vscode' ? inert : load.call(this, request, ...rest); };
const t0 = process.hrtime.bigint();
const ext = require(process.argv[1]);
const t1 = process.hrtime.bigint();
ext.activate({ subscriptions: [], extensionUri: inert, extensionPath: ${JSON.stringify(ROOT)} });
const t2 = process.hrtime.bigint();
process.stdout.write(JSON.stringify({ load: Number(t1 - t0) / 1e6, activate: Number(t2 - t1) / 1e6 }));
`;

/** The `vscode` API names the bundle uses: `vscode.window`, `vscode2.Uri`, ... as esbuild names the import. */
function apiNames(bundle: string): string[] {
  const names = new Set<string>();
  for (const m of fs.readFileSync(bundle, 'utf8').matchAll(/\bvscode\d*\.([A-Za-z_]\w*)/g)) names.add(m[1]);
  return [...names];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export async function extensionBench(emit: (o: Record<string, unknown>) => void): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'virtio-vsix-'));
  try {
    const out = path.join(dir, 'virtio-debug.vsix');
    execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'package.mjs'), out], { cwd: ROOT, stdio: 'pipe' });
    const bytes = fs.statSync(out).size;
    emit({ figure: 'vsix_bytes', value: bytes, megabytes: +(bytes / 1048576).toFixed(3), target: '<= 1.5 MB' });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }

  const bundle = path.join(ROOT, 'dist', 'extension.js');
  const names = JSON.stringify(apiNames(bundle));
  const runs: { load: number; activate: number }[] = [];
  for (let i = 0; i < 7; i++) {
    const r = execFileSync(process.execPath, ['-e', ACTIVATE, bundle, names], { encoding: 'utf8' });
    runs.push(JSON.parse(r) as { load: number; activate: number });
  }
  const total = runs.map((r) => r.load + r.activate);
  emit({ figure: 'extension_activation_ms', value: +median(total).toFixed(1), load_ms: +median(runs.map((r) => r.load)).toFixed(1), activate_ms: +median(runs.map((r) => r.activate)).toFixed(1), samples: runs.length, note: 'Node 20, inert vscode API' });
}
