/**
 * Headless Chromium around the inspector page, as VS Code hosts it: the
 * page from src/inspector/html.ts served at a fake origin (its CSP in
 * force), a stub acquireVsCodeApi that records what the page posts and
 * keeps its state (JSON, in sessionStorage so a reload finds it, as VS Code
 * keeps it across hide/show), and the theme's --vscode-* variables and body
 * class. Shared by the tests and the benchmark.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { inspectorHtml } from '../../src/inspector/html';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const ORIGIN = 'https://inspector.test';
export const NONCE = 'dGVzdC1ub25jZS0xMjM0NQ==';
/** The repository: from out/test/webview (tests) or dist (the bench bundle). */
function findRoot(): string {
  for (let d = __dirname; d !== path.dirname(d); d = path.dirname(d)) if (fs.existsSync(path.join(d, 'package.json')) && fs.existsSync(path.join(d, 'media'))) return d;
  throw new Error(`no repository above ${__dirname}`);
}
export const ROOT = findRoot();
export const ARTIFACTS = path.join(ROOT, 'test-artifacts', 'webview');

export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'];

export async function launch(extraArgs: string[] = []): Promise<Browser> {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`Chromium is not installed at ${CHROMIUM}: install it with 'apt-get install -y chromium' (the webview tests never download a browser)`);
  }
  const { chromium } = await import('playwright-core');
  return chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS, ...extraArgs] });
}


export type Theme = 'light' | 'dark' | 'high-contrast';

const COMMON: Record<string, string> = {
  'font-family': 'system-ui, "Ubuntu", "Droid Sans", sans-serif',
  'font-size': '13px',
  'editor-font-family': '"Droid Sans Mono", "monospace", monospace',
  'editor-font-size': '13px',
};

/** A subset of VS Code's default themes (Light+, Dark+, High Contrast): the variables the page uses. */
export const THEMES: Record<Theme, Record<string, string>> = {
  light: {
    foreground: '#616161', 'editor-background': '#ffffff', descriptionForeground: '#717171', disabledForeground: '#61616180',
    'badge-background': '#c4c4c4', 'badge-foreground': '#333333', 'button-background': '#007acc', 'button-foreground': '#ffffff',
    'button-hoverBackground': '#0062a3', 'button-secondaryBackground': '#5f6a79', 'button-secondaryForeground': '#ffffff',
    'charts-blue': '#1a85ff', 'charts-green': '#388a34', 'charts-orange': '#d18616', 'charts-purple': '#652d90', 'charts-red': '#e51400', 'charts-yellow': '#bf8803',
    'diffEditor-insertedTextBackground': '#9ccc2c40', 'editorLineNumber-foreground': '#237893', 'editorWidget-background': '#f3f3f3',
    errorForeground: '#a1260d', focusBorder: '#0090f1', 'icon-foreground': '#424242', 'inputValidation-errorBackground': '#f2dede', 'inputValidation-errorBorder': '#be1100',
    'list-activeSelectionBackground': '#0060c0', 'list-activeSelectionForeground': '#ffffff', 'list-hoverBackground': '#e8e8e8', 'list-inactiveSelectionBackground': '#e4e6f1',
    'panel-border': '#80808059', 'panelTitle-activeBorder': '#424242', 'textCodeBlock-background': '#dcdcdc66', 'textLink-activeForeground': '#006ab1',
    'toolbar-hoverBackground': '#b8b8b850', 'testing-iconPassed': '#388a34', 'widget-border': '#d4d4d4',
  },
  dark: {
    foreground: '#cccccc', 'editor-background': '#1e1e1e', descriptionForeground: '#9d9d9d', disabledForeground: '#cccccc80',
    'badge-background': '#4d4d4d', 'badge-foreground': '#ffffff', 'button-background': '#0e639c', 'button-foreground': '#ffffff',
    'button-hoverBackground': '#1177bb', 'button-secondaryBackground': '#3a3d41', 'button-secondaryForeground': '#ffffff',
    'charts-blue': '#3794ff', 'charts-green': '#89d185', 'charts-orange': '#d18616', 'charts-purple': '#b180d7', 'charts-red': '#f14c4c', 'charts-yellow': '#cca700',
    'diffEditor-insertedTextBackground': '#9ccc2c33', 'editorLineNumber-foreground': '#858585', 'editorWidget-background': '#252526',
    errorForeground: '#f48771', focusBorder: '#007fd4', 'icon-foreground': '#c5c5c5', 'inputValidation-errorBackground': '#5a1d1d', 'inputValidation-errorBorder': '#be1100',
    'list-activeSelectionBackground': '#04395e', 'list-activeSelectionForeground': '#ffffff', 'list-hoverBackground': '#2a2d2e', 'list-inactiveSelectionBackground': '#37373d',
    'panel-border': '#80808059', 'panelTitle-activeBorder': '#e7e7e7', 'textCodeBlock-background': '#0a0a0a66', 'textLink-activeForeground': '#3794ff',
    'toolbar-hoverBackground': '#5a5d5e50', 'testing-iconPassed': '#73c991', 'widget-border': '#303031',
  },
  'high-contrast': {
    foreground: '#ffffff', 'editor-background': '#000000', descriptionForeground: '#ffffffb3', disabledForeground: '#a5a5a5',
    'badge-background': '#000000', 'badge-foreground': '#ffffff', 'button-background': '#000000', 'button-foreground': '#ffffff', 'button-border': '#6fc3df',
    'button-secondaryBackground': '#000000', 'button-secondaryForeground': '#ffffff', contrastBorder: '#6fc3df', contrastActiveBorder: '#f38518',
    'charts-blue': '#3794ff', 'charts-green': '#89d185', 'charts-orange': '#d18616', 'charts-purple': '#b180d7', 'charts-red': '#f14c4c', 'charts-yellow': '#ffd700',
    'editorLineNumber-foreground': '#ffffff', 'editorWidget-background': '#0c141f', errorForeground: '#f48771', focusBorder: '#f38518', 'icon-foreground': '#ffffff',
    'inputValidation-errorBackground': '#000000', 'inputValidation-errorBorder': '#f48771', 'list-hoverBackground': '#000000', 'panel-border': '#6fc3df',
    'panelTitle-activeBorder': '#6fc3df', 'textLink-activeForeground': '#21a6ff', 'widget-border': '#6fc3df',
  },
};

const BODY_CLASS: Record<Theme, string> = { light: 'vscode-light', dark: 'vscode-dark', 'high-contrast': 'vscode-high-contrast' };

export interface OpenOptions {
  /** The page script (test/webview/bundle.ts builds it from source; the bench reads dist/media/inspector.js). */
  script: string;
  theme?: Theme;
  /** Keep the webview state in memory instead of sessionStorage (a 32,768-entry state does not fit in 5 MB). */
  memoryState?: boolean;
  viewport?: { width: number; height: number };
}

export interface Inspector {
  page: Page;
  /** Messages the page posted, oldest first. */
  posted(): Promise<{ type: string; [k: string]: unknown }[]>;
  /** CSP violations and page errors seen so far. */
  problems(): string[];
  /** Post a host message and, for `state`, wait until it is drawn. */
  send(m: unknown): Promise<void>;
  screenshot(name: string): Promise<void>;
}

export async function openInspector(browser: Browser, o: OpenOptions): Promise<Inspector> {
  const theme = o.theme ?? 'dark';
  const ctx = await browser.newContext({ viewport: o.viewport ?? { width: 1500, height: 1100 } });
  const page = await ctx.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  const js = o.script;
  const html = inspectorHtml({
    cspSource: ORIGIN,
    nonce: NONCE,
    scriptUri: `${ORIGIN}/media/inspector.js`,
    styleUri: `${ORIGIN}/media/inspector.css`,
    codiconUri: `${ORIGIN}/media/codicon.css`,
  });
  const files: Record<string, [string, string | Buffer]> = {
    '/index.html': ['text/html', html],
    '/media/inspector.js': ['text/javascript', js],
    '/media/inspector.css': ['text/css', fs.readFileSync(path.join(ROOT, 'media/inspector/inspector.css'))],
    '/media/codicon.css': ['text/css', fs.readFileSync(path.join(ROOT, 'node_modules/@vscode/codicons/dist/codicon.css'))],
    '/media/codicon.ttf': ['font/ttf', fs.readFileSync(path.join(ROOT, 'node_modules/@vscode/codicons/dist/codicon.ttf'))],
  };
  await page.route(`${ORIGIN}/**`, (route) => {
    const f = files[new URL(route.request().url()).pathname];
    return f ? route.fulfill({ status: 200, contentType: f[0], body: f[1] }) : route.fulfill({ status: 404, body: 'not found' });
  });
  const vars = { ...COMMON, ...THEMES[theme] };
  await page.addInitScript(
    ({ vars, bodyClass, memoryState }) => {
      const w = window as unknown as Record<string, unknown>;
      const posted: unknown[] = [];
      const violations: string[] = [];
      let mem: unknown = null;
      w.__posted = posted;
      w.__violations = violations;
      document.addEventListener('securitypolicyviolation', (e) => violations.push(`${e.violatedDirective} ${e.blockedURI}`));
      w.acquireVsCodeApi = () => ({
        postMessage: (m: unknown) => posted.push(JSON.parse(JSON.stringify(m))),
        getState: () => (memoryState ? mem : JSON.parse(sessionStorage.getItem('vscode-state') ?? 'null')),
        setState: (s: unknown) => {
          if (memoryState) mem = s;
          else sessionStorage.setItem('vscode-state', JSON.stringify(s));
        },
      });
      // As VS Code does: the theme's colours on <html>, its kind as a class on <body>.
      document.addEventListener('DOMContentLoaded', () => {
        for (const [k, v] of Object.entries(vars)) document.documentElement.style.setProperty(`--vscode-${k}`, v);
        document.body.classList.add(bodyClass);
      });
    },
    { vars, bodyClass: BODY_CLASS[theme], memoryState: !!o.memoryState },
  );
  await page.goto(`${ORIGIN}/index.html`);
  await page.waitForFunction(() => ((window as unknown as { __posted: { type: string }[] }).__posted ?? []).some((m) => m.type === 'ready'));
  return {
    page,
    posted: () => page.evaluate(() => (window as unknown as { __posted: { type: string }[] }).__posted),
    problems: () => problems,
    async send(m: unknown) {
      await page.evaluate((msg) => window.postMessage(msg, '*'), m as object);
      const seq = (m as { type?: string; seq?: number }).type === 'state' ? (m as { seq: number }).seq : null;
      if (seq !== null) await page.waitForSelector(`body[data-drawn-seq="${seq}"]`, { state: 'attached' });
    },
    async screenshot(name: string) {
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
    },
  };
}

/** CSP violations the page reported (read from the page). */
export function violations(page: Page): Promise<string[]> {
  return page.evaluate(() => (window as unknown as { __violations: string[] }).__violations);
}
