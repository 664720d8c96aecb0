// `npm run package` (after the build): the .vsix, with a tsconfig for the shipped model sources.
// The tsconfig lives in src/machine only while vsce runs: in the repository, the root tsconfig.json
// checks those files fully, and a nested one would take over the editor there.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, rmSync } from 'node:fs';

const root = new URL('..', import.meta.url).pathname;
const staged = root + 'src/machine/tsconfig.json';
if (existsSync(staged)) throw new Error(`${staged} exists: remove it (a package run that was interrupted?)`);
const out = process.argv[2] ?? 'virtio-debug.vsix';
copyFileSync(root + 'scripts/vsix-tsconfig.json', staged);
try {
  execFileSync(process.execPath, [root + 'node_modules/@vscode/vsce/vsce', 'package', '--no-dependencies', '-o', out], { cwd: root, stdio: 'inherit' });
} finally {
  rmSync(staged, { force: true });
}
