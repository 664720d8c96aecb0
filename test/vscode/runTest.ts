/**
 * `npm run test:vscode`: the extension-host suite in a real VS Code, which
 * @vscode/test-electron downloads into .vscode-test/ (it needs network
 * access to update.code.visualstudio.com; where there is none, the
 * code-server end-to-end tests in test/e2e cover the same ground).
 */
import * as path from 'node:path';
import { runTests } from '@vscode/test-electron';

async function main(): Promise<void> {
  const root = path.resolve(__dirname, '..', '..', '..');
  try {
    await runTests({
      version: process.env.VSCODE_TEST_VERSION ?? '1.100.3',
      extensionDevelopmentPath: root,
      extensionTestsPath: path.join(__dirname, 'suite', 'index'),
      launchArgs: [path.join(root, 'samples'), '--disable-extensions', '--disable-workspace-trust', '--skip-welcome', '--skip-release-notes'],
    });
  } catch (e) {
    process.stderr.write(`extension-host tests failed: ${(e as Error).message}\n`);
    process.exit(1);
  }
}

void main();
