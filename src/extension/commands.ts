/**
 * Commands: run or debug the scenario in the editor (editor title's run
 * menu), open the bundled default scenario (the walkthrough's first step).
 */
import * as vscode from 'vscode';
import { activeScenario, scenarioConfiguration } from './configurationProvider';

async function startScenario(uri: vscode.Uri | undefined, noDebug: boolean): Promise<boolean> {
  const target = uri instanceof vscode.Uri ? uri : activeScenario();
  if (target) {
    const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === target.toString());
    if (doc?.isDirty) await doc.save();
  }
  const folder = target ? vscode.workspace.getWorkspaceFolder(target) : vscode.workspace.workspaceFolders?.[0];
  return vscode.debug.startDebugging(folder, scenarioConfiguration(target, noDebug), { noDebug });
}

export function registerCommands(context: vscode.ExtensionContext): void {
  context.subscriptions.push(
    vscode.commands.registerCommand('virtio.debugScenario', (uri?: vscode.Uri) => startScenario(uri, false)),
    vscode.commands.registerCommand('virtio.runScenario', (uri?: vscode.Uri) => startScenario(uri, true)),
    // The walkthrough's "where to stop": event filters appear in BREAKPOINTS only once a virtio
    // session has told VS Code about them, so a newcomer's first stop comes from a function breakpoint.
    vscode.commands.registerCommand('virtio.breakInHandleOutput', () => {
      const fn = 'virtio_blk_handle_output';
      const have = vscode.debug.breakpoints.some((b) => b instanceof vscode.FunctionBreakpoint && b.functionName === fn);
      if (!have) vscode.debug.addBreakpoints([new vscode.FunctionBreakpoint(fn)]);
      void vscode.window.showInformationMessage(`The debugger will stop in ${fn} (a function breakpoint, in the BREAKPOINTS view).`);
    }),
    vscode.commands.registerCommand('virtio.openDefaultScenario', async () => {
      // The workspace's own default.virtio (the samples folder) if there is one, else the bundled copy.
      const found = await vscode.workspace.findFiles('**/default.virtio', '**/node_modules/**', 1);
      const uri = found[0] ?? vscode.Uri.joinPath(context.extensionUri, 'samples', 'default.virtio');
      await vscode.window.showTextDocument(uri);
    }),
  );
}
