// Build: refresh the source index, type-check, and bundle the entry points with esbuild.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';

const root = new URL('..', import.meta.url).pathname;
execFileSync(process.execPath, [root + 'scripts/index-sources.mjs'], { stdio: 'inherit' });
execFileSync(process.execPath, [root + 'node_modules/typescript/bin/tsc', '-p', root, '--noEmit'], { stdio: 'inherit' });
// The webview script has its own tsconfig (DOM lib).
if (existsSync(root + 'media/tsconfig.json')) {
  execFileSync(process.execPath, [root + 'node_modules/typescript/bin/tsc', '-p', root + 'media'], { stdio: 'inherit' });
}

const entries = [
  { in: 'src/cli.ts', out: 'cli' },
  { in: 'src/adapter/main.ts', out: 'adapter' },
  { in: 'src/extension.ts', out: 'extension' },
  { in: 'bench/bench.ts', out: 'bench' },
  { in: 'bench/fuzz.ts', out: 'fuzz' },
].filter((e) => existsSync(root + e.in));

await build({
  absWorkingDir: root,
  entryPoints: entries,
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  // vscode is the host's; playwright-core stays a runtime require of the bench.
  external: ['vscode', 'playwright-core'],
  sourcemap: true,
  sourcesContent: false,
  logLevel: 'warning',
});

// The Virtqueue Inspector webview: its script, its styles and the codicon font.
if (existsSync(root + 'media/inspector/main.ts')) {
  await build({
    absWorkingDir: root,
    entryPoints: ['media/inspector/main.ts'],
    outfile: 'dist/media/inspector.js',
    bundle: true,
    platform: 'browser',
    format: 'iife',
    target: 'es2022',
    minify: true,
    sourcemap: true,
    sourcesContent: false,
    logLevel: 'warning',
  });
  mkdirSync(root + 'dist/media', { recursive: true });
  copyFileSync(root + 'media/inspector/inspector.css', root + 'dist/media/inspector.css');
  for (const f of ['codicon.css', 'codicon.ttf']) copyFileSync(root + 'node_modules/@vscode/codicons/dist/' + f, root + 'dist/media/' + f);
}
