// Build: refresh the source index, type-check, and bundle the entry points with esbuild.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const root = new URL('..', import.meta.url).pathname;
execFileSync(process.execPath, [root + 'scripts/index-sources.mjs'], { stdio: 'inherit' });
execFileSync(process.execPath, [root + 'node_modules/typescript/bin/tsc', '-p', root, '--noEmit'], { stdio: 'inherit' });

const entries = [
  { in: 'src/cli.ts', out: 'cli' },
  { in: 'src/adapter/main.ts', out: 'adapter' },
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
  sourcemap: true,
  sourcesContent: false,
  logLevel: 'warning',
});
