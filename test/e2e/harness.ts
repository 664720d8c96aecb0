/**
 * The end-to-end harness: code-server (VS Code 1.100 for the browser, set up
 * by scripts/setup-e2e.sh into .vscode-test/) in Debian's Chromium, driven by
 * playwright-core. See shared/E2E.md.
 *
 * Everything here binds 127.0.0.1 on a free port, lives in a fresh temporary
 * profile, and is stopped by whoever started it: code-server runs in a process
 * group of its own, killed whole (extension host and debug adapter with it).
 *
 * Environment:
 *   E2E_VSIX=path      install this .vsix instead of building one
 *   E2E_WORKSPACE=dir  open this folder instead of samples/
 *   E2E_HEADED=1       show the browser (needs a display)
 */
import * as cp from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';

/** The project root (this file runs from out/test/e2e). */
export const ROOT = path.resolve(__dirname, '../../..');
export const CODE_SERVER_VERSION = '4.100.3';
export const CACHE = path.join(ROOT, '.vscode-test', `code-server-${CODE_SERVER_VERSION}`);
export const CODE_SERVER_ENTRY = path.join(CACHE, 'node_modules', 'code-server', 'out', 'node', 'entry.js');
export const CHROMIUM = '/usr/bin/chromium';
export const ARTIFACTS = path.join(ROOT, 'test-artifacts', 'e2e');

const SETUP_HINT = 'run `npm run setup:e2e` (scripts/setup-e2e.sh) first';

/** Fails with what is missing and how to get it, before anything is started. */
export function checkPrerequisites(): void {
  const marker = path.join(CACHE, '.setup-complete');
  if (!fs.existsSync(marker) || !fs.existsSync(CODE_SERVER_ENTRY)) {
    throw new Error(`code-server ${CODE_SERVER_VERSION} is not set up in ${CACHE}: ${SETUP_HINT}`);
  }
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: ${SETUP_HINT}`);
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** Runs a command to its end; rejects with its output if it fails or takes longer than `timeoutMs`. */
export function run(cmd: string, args: string[], opts: { cwd?: string; timeoutMs: number; env?: NodeJS.ProcessEnv }): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = cp.spawn(cmd, args, { cwd: opts.cwd ?? ROOT, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => {
      killGroup(child, 'SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} took longer than ${opts.timeoutMs / 1000} s:\n${out.slice(-4000)}`));
    }, opts.timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} ${args.join(' ')} failed (${signal ?? `exit ${code}`}):\n${out.slice(-4000)}`));
    });
  });
}

function killGroup(child: cp.ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // the group is gone already
  }
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * The extension as a person gets it: `npm run package` (virtio-debug.vsix at
 * the root) when package.json has that script, else `vsce package
 * --no-dependencies` into a temporary folder. E2E_VSIX skips the build.
 */
let built: Promise<string> | undefined;

/** buildVsix once per test run: every suite installs the same package. */
export function sharedVsix(tmp: string): Promise<string> {
  built ??= buildVsix(tmp);
  return built;
}

export async function buildVsix(tmp: string): Promise<string> {
  if (process.env.E2E_VSIX) {
    const given = path.resolve(process.env.E2E_VSIX);
    if (!fs.existsSync(given)) throw new Error(`E2E_VSIX=${given} does not exist`);
    return given;
  }
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
    scripts?: Record<string, string>;
    contributes?: { debuggers?: { type: string }[] };
  };
  if (!pkg.contributes?.debuggers?.some((d) => d.type === 'virtio')) {
    throw new Error('package.json contributes no debugger of type "virtio": the extension cannot be packaged for the end-to-end test yet');
  }
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  if (pkg.scripts?.package) {
    const vsix = path.join(ROOT, 'virtio-debug.vsix');
    fs.rmSync(vsix, { force: true });
    await run(npm, ['run', 'package', '--silent'], { timeoutMs: 240_000 });
    if (!fs.existsSync(vsix)) throw new Error(`npm run package did not produce ${vsix}`);
    return vsix;
  }
  const vsix = path.join(tmp, 'virtio-debug.vsix');
  const vsce = path.join(ROOT, 'node_modules', '@vscode', 'vsce', 'vsce');
  await run(process.execPath, [vsce, 'package', '--no-dependencies', '-o', vsix], { timeoutMs: 240_000 });
  return vsix;
}

export interface Profile {
  root: string;
  userDataDir: string;
  extensionsDir: string;
  config: string;
}

/** A fresh code-server profile: user data, extensions, config, and the settings E2E.md asks for. */
export function freshProfile(): Profile {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'virtio-e2e-'));
  const userDataDir = path.join(root, 'user-data');
  const extensionsDir = path.join(root, 'extensions');
  fs.mkdirSync(path.join(userDataDir, 'User'), { recursive: true });
  fs.mkdirSync(extensionsDir, { recursive: true });
  fs.writeFileSync(
    path.join(userDataDir, 'User', 'settings.json'),
    JSON.stringify({
      'security.workspace.trust.enabled': false,
      'workbench.startupEditor': 'none',
      // The samples folder sits in the project's git repository: no prompt about opening it.
      'git.openRepositoryInParentFolders': 'never',
    }, null, 2),
  );
  // code-server writes a default config (with a password) wherever --config points if nothing is there.
  const config = path.join(root, 'config.yaml');
  fs.writeFileSync(config, 'auth: none\ncert: false\n');
  return { root, userDataDir, extensionsDir, config };
}

function codeServerArgs(p: Profile): string[] {
  return [CODE_SERVER_ENTRY, '--config', p.config, '--user-data-dir', p.userDataDir, '--extensions-dir', p.extensionsDir];
}

/** `code-server --install-extension VSIX` into the profile; returns what it printed. */
export async function installExtension(p: Profile, vsix: string): Promise<string> {
  const out = await run(process.execPath, [...codeServerArgs(p), '--install-extension', vsix], { timeoutMs: 120_000 });
  if (!/was successfully installed/i.test(out)) throw new Error(`installing ${vsix} printed no success:\n${out}`);
  return out;
}

export class CodeServer {
  private output = '';
  private exited = false;

  private constructor(readonly child: cp.ChildProcess, readonly url: string) {
    child.stdout?.on('data', (d: Buffer) => (this.output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (this.output += d.toString()));
    child.on('exit', () => (this.exited = true));
  }

  /** What code-server printed so far (the end of it). */
  log(max = 4000): string {
    return this.output.slice(-max);
  }

  /** Starts code-server on 127.0.0.1:PORT opening `folder`, and waits until it listens. */
  static async start(p: Profile, folder: string, timeoutMs = 60_000): Promise<CodeServer> {
    const port = await freePort();
    const child = cp.spawn(
      process.execPath,
      [
        ...codeServerArgs(p),
        '--auth', 'none',
        '--bind-addr', `127.0.0.1:${port}`,
        '--disable-telemetry',
        '--disable-update-check',
        '--disable-workspace-trust',
        '--disable-getting-started-override',
        folder,
      ],
      { cwd: p.root, stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: { ...process.env, VSCODE_PROXY_URI: '' } },
    );
    const cs = new CodeServer(child, `http://127.0.0.1:${port}/`);
    const started = Date.now();
    while (!/HTTP server listening on/.test(cs.output)) {
      if (cs.exited) throw new Error(`code-server exited before listening:\n${cs.log()}`);
      if (Date.now() - started > timeoutMs) {
        await cs.stop();
        throw new Error(`code-server did not listen within ${timeoutMs / 1000} s:\n${cs.log()}`);
      }
      await sleep(100);
    }
    return cs;
  }

  /** SIGTERM to the whole process group, SIGKILL to whatever is left after 5 s. */
  async stop(): Promise<void> {
    const pid = this.child.pid;
    if (pid === undefined) return;
    killGroup(this.child, 'SIGTERM');
    const until = Date.now() + 5000;
    while (groupAlive(pid) && Date.now() < until) await sleep(100);
    if (groupAlive(pid)) killGroup(this.child, 'SIGKILL');
  }
}

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: process.env.E2E_HEADED !== '1',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
      '--disable-dev-shm-usage',
    ],
  });
}

/** Closes the browser; gives up after 10 s (Playwright kills its browser when this process exits). */
export async function closeBrowser(b: Browser | undefined): Promise<void> {
  if (!b) return;
  await Promise.race([b.close().catch(() => undefined), sleep(10_000)]);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a value that is not undefined, or fails after `timeoutMs` with `what`. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 20_000, everyMs = 200): Promise<T> {
  const until = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < until) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      lastError = e;
    }
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${lastError ? ` (last error: ${String(lastError)})` : ''}`);
}

/** A list's own rows: not the copies a tree's sticky scroll pins above them. */
export const ROWS = '.monaco-list-rows > .monaco-list-row';

/**
 * The text of the rows of a monaco list, top to bottom. The list is
 * virtualised: only rows in view are in the DOM, so callers make the view
 * tall enough (collapse the other panes) for what they read.
 */
export async function listRows(list: Locator): Promise<string[]> {
  if ((await list.count()) === 0) return [];
  const got = await list.locator(ROWS).evaluateAll((els) =>
    els.map((e) => [Number(e.getAttribute('data-index')), (e as HTMLElement).innerText.replace(/\s+/g, ' ').trim()] as [number, string]),
  );
  return got.sort((a, b) => a[0] - b[0]).map(([, t]) => t);
}

/** Scrolls a (virtualised) monaco list down until `row` is rendered; false if it never is. */
export async function scrollToRow(page: Page, list: Locator, row: Locator): Promise<boolean> {
  const box = await list.boundingBox();
  if (!box) return false;
  await page.mouse.move(box.x + box.width / 2, box.y + Math.min(box.height / 2, 40));
  for (let i = 0; i < 12; i++) {
    if ((await row.count()) > 0) return true;
    await page.mouse.wheel(0, Math.max(100, box.height - 40));
    await sleep(60);
  }
  return (await row.count()) > 0;
}
