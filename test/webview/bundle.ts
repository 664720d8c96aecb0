/** media/inspector/main.ts bundled as scripts/build.mjs bundles it, in memory: the tests see the current source. */
import { build } from 'esbuild';
import { ROOT } from './harness';

let bundle: Promise<string> | null = null;

export function webviewBundle(): Promise<string> {
  bundle ??= build({
    absWorkingDir: ROOT,
    entryPoints: ['media/inspector/main.ts'],
    bundle: true,
    write: false,
    platform: 'browser',
    format: 'iife',
    target: 'es2022',
    minify: true,
    logLevel: 'silent',
  }).then((r) => r.outputFiles[0].text);
  return bundle;
}
