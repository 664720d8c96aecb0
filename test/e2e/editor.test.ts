/**
 * End to end, the editor side of a scenario, in code-server + Chromium as a
 * person sees it: a `.virtio` file is coloured by the grammar, a mistake is
 * in the Problems view at its line and column as it is typed, and "Run
 * Scenario" runs the file without stopping. Screenshots:
 * test-artifacts/e2e/editor-<step>.png.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import {
  ARTIFACTS, CodeServer, ROOT, checkPrerequisites, closeBrowser, freshProfile, installExtension, launchBrowser, sharedVsix, waitFor, type Profile,
} from './harness';

const UI_TIMEOUT = 30_000;

describe('e2e: code-server 4.100.3 + Chromium: editing a scenario', function () {
  this.timeout(180_000);
  let profile: Profile | undefined;
  let server: CodeServer | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let workspace: string;

  const shot = async (name: string): Promise<string> => {
    const file = path.join(ARTIFACTS, `editor-${name}.png`);
    await page.screenshot({ path: file }).catch(() => undefined);
    return file;
  };

  /** Runs a step; a failure names it, points at its screenshot and says what the Problems view and status bar held. */
  const step = async (name: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
      await shot(name);
    } catch (e) {
      const file = await shot(`${name}-FAILED`);
      const problems = await page.locator('.markers-panel').innerText({ timeout: 1000 }).catch(() => '(Problems view not open)');
      const status = await page.locator('.part.statusbar').innerText({ timeout: 1000 }).catch(() => '');
      throw new Error(`e2e step '${name}' failed: ${(e as Error).message}\nscreenshot: ${file}\nProblems: ${problems.replace(/\s+/g, ' ')}\nstatus bar: ${status.replace(/\s+/g, ' ')}`);
    }
  };

  /** Opens a file of the workspace from the Explorer, as a click does. */
  const openFile = async (name: string): Promise<void> => {
    await page.keyboard.press('Control+Shift+E');
    await page.locator('.explorer-folders-view .monaco-list-row', { hasText: name }).first().click();
    await page.locator('.tabs-container .tab.active', { hasText: name }).waitFor({ timeout: UI_TIMEOUT });
  };

  const runCommand = async (title: string): Promise<void> => {
    await page.keyboard.press('F1');
    const input = page.locator('.quick-input-widget input');
    await input.waitFor({ state: 'visible', timeout: UI_TIMEOUT });
    await input.fill(`>${title}`);
    await page.locator('.quick-input-list .monaco-list-row', { hasText: title }).first().waitFor({ timeout: UI_TIMEOUT });
    await page.keyboard.press('Enter');
  };

  before(async () => {
    checkPrerequisites();
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    // A folder of its own: the test types into a scenario, and the repository's samples stay as they are.
    workspace = fs.mkdtempSync(path.join(os.tmpdir(), 'virtio-e2e-ws-'));
    fs.copyFileSync(path.join(ROOT, 'samples', 'default.virtio'), path.join(workspace, 'default.virtio'));
    fs.writeFileSync(path.join(workspace, 'typo.virtio'), '# typed by the end-to-end test\nread 0 512\n');
    profile = freshProfile();
    await installExtension(profile, await sharedVsix(os.tmpdir()));
    server = await CodeServer.start(profile, workspace);
    browser = await launchBrowser();
    page = await (await browser.newContext({ viewport: { width: 1400, height: 1000 } })).newPage();
    await page.goto(server.url, { timeout: UI_TIMEOUT });
    await page.locator('.monaco-workbench').waitFor({ state: 'visible', timeout: 60_000 });
    await page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'typo.virtio' }).first().waitFor({ timeout: UI_TIMEOUT });
  });

  after(async function () {
    this.timeout(60_000);
    await closeBrowser(browser);
    await server?.stop();
    if (profile) fs.rmSync(profile.root, { recursive: true, force: true });
    if (workspace) fs.rmSync(workspace, { recursive: true, force: true });
  });

  it('colours a scenario with the virtio grammar, and shows a typed mistake in the Problems view at its line and column', async () => {
    await step('diagnostics', async () => {
      await openFile('typo.virtio');
      // The language mode comes from the extension's `virtio` language.
      await waitFor('the status bar to say the language is virtio', async () =>
        (/\bvirtio\b/i.test(await page.locator('.part.statusbar').innerText()) ? true : undefined), UI_TIMEOUT);
      // Type a mistake on line 3, as a person would.
      await page.locator('.monaco-editor .view-lines').first().click();
      await page.keyboard.press('Control+End');
      await page.keyboard.type('read zero 512');
      await page.keyboard.press('Control+Shift+M');
      const problem = await waitFor('the Problems view to list the mistake', async () => {
        const rows = await page.locator('.markers-panel .monaco-list-row').allInnerTexts();
        return rows.map((r) => r.replace(/\s+/g, ' ')).find((r) => /SECTOR must be a non-negative integer/.test(r));
      }, UI_TIMEOUT);
      if (!/\[Ln 3, Col 6\]/.test(problem)) throw new Error(`the problem is not at Ln 3, Col 6: ${problem}`);
      if (!/virtio/.test(problem)) throw new Error(`the problem does not name its source 'virtio': ${problem}`);
      // Keywords, numbers and comments get tokens of their own (three or more distinct token classes on screen).
      const classes = await page.locator('.monaco-editor .view-lines span[class^="mtk"]').evaluateAll((els) => [...new Set(els.map((e) => e.className))]);
      if (classes.length < 3) throw new Error(`the scenario is not coloured: token classes ${JSON.stringify(classes)}`);
      // Fixing the line clears the problem.
      await page.keyboard.press('Control+Shift+M');
      await page.locator('.monaco-editor .view-lines').first().click();
      await page.keyboard.press('Control+End');
      await page.keyboard.press('Shift+Home');
      await page.keyboard.type('read 8 512');
      await waitFor('the Problems view to be empty again', async () =>
        ((await page.locator('.markers-panel .monaco-list-row', { hasText: 'SECTOR must be' }).count()) === 0 ? true : undefined), UI_TIMEOUT);
    });
  });

  it('"virtio: Run Scenario" runs the file in the editor to its end, without stopping', async () => {
    await step('run-scenario', async () => {
      await openFile('default.virtio');
      await runCommand('virtio: Run Scenario');
      await page.keyboard.press('Control+Shift+Y'); // the Debug Console
      const line = await waitFor('the Debug Console to report the end of the run', async () => {
        const text = (await page.locator('.repl').innerText().catch(() => '')).replace(/\s+/g, ' ');
        return /The scenario ran to its end: (\d+) requests/.exec(text)?.[0];
      }, UI_TIMEOUT);
      if (!/: 7 requests/.test(line)) throw new Error(`default.virtio has 7 requests, the run said: ${line}`);
      await waitFor('the session to end (no debug toolbar)', async () =>
        ((await page.locator('.debug-toolbar').isVisible()) ? undefined : true), UI_TIMEOUT);
    });
  });

  it('F5 with no launch.json debugs the scenario in the editor (the configuration provider fills it in)', async () => {
    await step('f5-no-launch-json', async () => {
      if (fs.existsSync(path.join(workspace, '.vscode', 'launch.json'))) throw new Error('the workspace has a launch.json: this step needs none');
      // typo.virtio holds two reads now (the first step fixed its second line; F5 saves it first).
      await openFile('typo.virtio');
      await page.keyboard.press('F5');
      await page.keyboard.press('Control+Shift+Y');
      await waitFor('the Debug Console to report a two-request run of typo.virtio', async () => {
        const text = (await page.locator('.repl').innerText().catch(() => '')).replace(/\s+/g, ' ');
        return /The scenario ran to its end: 2 requests/.test(text) ? true : undefined;
      }, UI_TIMEOUT);
    });
  });

  it("the walkthrough's path: Stop in virtio_blk_handle_output, Debug Scenario → a stop there, and the inspector opens by itself", async () => {
    await step('walkthrough-first-stop', async () => {
      await openFile('default.virtio');
      await runCommand('virtio: Stop in virtio_blk_handle_output');
      await runCommand('virtio: Debug Scenario');
      await page.keyboard.press('Control+Shift+D'); // the Run and Debug view, where CALL STACK is
      await waitFor('a stop in virtio_blk_handle_output in the CALL STACK', async () => {
        const rows = await page.locator('.debug-call-stack .monaco-list-row').allInnerTexts();
        return rows.some((r) => r.trim().startsWith('virtio_blk_handle_output (')) ? true : undefined;
      }, UI_TIMEOUT);
      // virtio.inspector.openOnSessionStart (default true): the panel opened at session start and drew the stop.
      const queue = page.frameLocator('iframe.webview.ready').first().frameLocator('#active-frame').locator('section.queue[data-queue="0"]');
      await waitFor('the inspector to draw queue 0 with one request offered', async () =>
        ((await queue.getAttribute('data-avail-idx', { timeout: 1000 }).catch(() => null)) === '1' ? true : undefined), UI_TIMEOUT);
      await page.keyboard.press('Shift+F5');
      await waitFor('the session to end (no debug toolbar)', async () =>
        ((await page.locator('.debug-toolbar').isVisible()) ? undefined : true), UI_TIMEOUT);
    });
  });
});
