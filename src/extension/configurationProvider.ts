/**
 * F5 without a launch.json: debug the `.virtio` file in the editor, or the
 * bundled default scenario. With a launch.json, fill what VS Code leaves out.
 * The adapter validates every attribute itself (and names the wrong one);
 * this only decides *what* to debug.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';

export const DEBUG_TYPE = 'virtio';

export function scenarioConfiguration(file: vscode.Uri | undefined, noDebug = false): vscode.DebugConfiguration {
  const verb = noDebug ? 'Run' : 'Debug';
  const config: vscode.DebugConfiguration = file
    ? { type: DEBUG_TYPE, request: 'launch', name: `${verb} ${path.basename(file.fsPath)}`, scenario: file.fsPath }
    : { type: DEBUG_TYPE, request: 'launch', name: `${verb} the bundled default scenario` };
  if (noDebug) config.noDebug = true;
  return config;
}

/** The `.virtio` document in the active editor, if there is one. */
export function activeScenario(): vscode.Uri | undefined {
  const doc = vscode.window.activeTextEditor?.document;
  return doc && doc.languageId === 'virtio' && doc.uri.scheme === 'file' ? doc.uri : undefined;
}

export class VirtioConfigurationProvider implements vscode.DebugConfigurationProvider {
  /** The configuration a new launch.json starts with: the folder's default.virtio, else the bundled default. */
  async provideDebugConfigurations(folder: vscode.WorkspaceFolder | undefined): Promise<vscode.DebugConfiguration[]> {
    if (folder) {
      const local = vscode.Uri.joinPath(folder.uri, 'default.virtio');
      const exists = await vscode.workspace.fs.stat(local).then(() => true, () => false);
      if (exists) return [{ type: DEBUG_TYPE, request: 'launch', name: 'Debug default scenario', scenario: '${workspaceFolder}/default.virtio' }];
    }
    return [scenarioConfiguration(undefined)];
  }

  resolveDebugConfiguration(_folder: vscode.WorkspaceFolder | undefined, config: vscode.DebugConfiguration): vscode.DebugConfiguration {
    // An empty configuration is F5 with no launch.json (or "Run Without Debugging").
    if (!config.type && !config.request && !config.name) {
      const noDebug = config.noDebug === true;
      return scenarioConfiguration(activeScenario(), noDebug);
    }
    if (!config.request) config.request = 'launch';
    if (!config.name) config.name = 'virtio';
    return config;
  }
}

/** "Debug <file>" for each scenario in the workspace, offered in the Run and Debug view's dropdown. */
export class VirtioDynamicConfigurationProvider implements vscode.DebugConfigurationProvider {
  async provideDebugConfigurations(folder: vscode.WorkspaceFolder | undefined): Promise<vscode.DebugConfiguration[]> {
    const pattern = folder ? new vscode.RelativePattern(folder, '**/*.virtio') : '**/*.virtio';
    const files = await vscode.workspace.findFiles(pattern, '**/node_modules/**', 100);
    return files
      .sort((a, b) => a.fsPath.localeCompare(b.fsPath))
      .map((f) => ({ ...scenarioConfiguration(f), name: `Debug ${vscode.workspace.asRelativePath(f)}` }));
  }
}
