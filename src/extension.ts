/**
 * Activation: the `virtio` debug type (configuration providers, the adapter
 * running inline in the extension host), the Virtqueue Inspector and what
 * feeds it, scenario diagnostics, guest memory documents and commands.
 */
import * as vscode from 'vscode';
import { VirtioDebugSession } from './adapter/debugSession';
import { registerCommands } from './extension/commands';
import { DEBUG_TYPE, VirtioConfigurationProvider, VirtioDynamicConfigurationProvider } from './extension/configurationProvider';
import { registerScenarioDiagnostics } from './extension/diagnostics';
import { GuestMemoryProvider, MEMORY_SCHEME, memoryUri } from './extension/memoryDocument';
import { INSPECTOR_VIEW_TYPE, InspectorPanel } from './inspector/panel';
import type { HostMessage } from './inspector/protocol';
import type { StateSnapshot } from './machine/state/snapshot';

/** What activate() returns: for the extension-host tests, and for other extensions. */
export interface VirtioDebugApi {
  inspector: { readonly visible: boolean; readonly lastState: StateSnapshot | undefined; onDidPost: vscode.Event<HostMessage> };
  diagnostics: vscode.DiagnosticCollection;
}

export function activate(context: vscode.ExtensionContext): VirtioDebugApi {
  const log = vscode.window.createOutputChannel('virtio-debug');
  const sessions = new Map<string, vscode.DebugSession>();

  const memory = new GuestMemoryProvider((id) => sessions.get(id));
  const inspector = new InspectorPanel({
    extensionUri: context.extensionUri,
    log: (line) => log.appendLine(line),
    openMemory: async (session, addr, len, viewColumn) => {
      // Not a preview: the dump stays open across steps and is re-read at every stop.
      const doc = await vscode.workspace.openTextDocument(memoryUri(session.id, addr, len));
      await vscode.window.showTextDocument(doc, { viewColumn, preview: false, preserveFocus: true });
    },
  });

  context.subscriptions.push(
    log,
    inspector,
    vscode.debug.registerDebugConfigurationProvider(DEBUG_TYPE, new VirtioConfigurationProvider()),
    vscode.debug.registerDebugConfigurationProvider(DEBUG_TYPE, new VirtioDynamicConfigurationProvider(), vscode.DebugConfigurationProviderTriggerKind.Dynamic),
    // The adapter runs in the extension host: no process to spawn, and the same code as dist/adapter.js.
    vscode.debug.registerDebugAdapterDescriptorFactory(DEBUG_TYPE, {
      createDebugAdapterDescriptor: () => new vscode.DebugAdapterInlineImplementation(new VirtioDebugSession()),
    }),
    // Watch what the adapter sends: a stop refreshes the inspector and open memory documents.
    // (The end of a session comes through onDidTerminateDebugSession below.)
    vscode.debug.registerDebugAdapterTrackerFactory(DEBUG_TYPE, {
      createDebugAdapterTracker: (session) => ({
        onDidSendMessage: (m: { type?: string; event?: string; body?: { reason?: string; description?: string; threadId?: number } }) => {
          if (m.type !== 'event' || m.event !== 'stopped') return;
          const b = m.body ?? {};
          inspector.onStopped(session, { reason: b.reason ?? 'unknown', description: b.description, threadId: b.threadId });
          memory.refresh(session.id);
        },
      }),
    }),
    vscode.debug.onDidStartDebugSession((session) => {
      if (session.type !== DEBUG_TYPE) return;
      sessions.set(session.id, session);
      const noDebug = (session.configuration as { noDebug?: boolean }).noDebug === true;
      if (!noDebug && vscode.workspace.getConfiguration('virtio.inspector').get<boolean>('openOnSessionStart', true)) void inspector.show(true);
    }),
    vscode.debug.onDidTerminateDebugSession((session) => {
      sessions.delete(session.id);
      inspector.onEnded(session);
    }),
    vscode.window.registerWebviewPanelSerializer(INSPECTOR_VIEW_TYPE, {
      deserializeWebviewPanel: async (panel) => inspector.adopt(panel),
    }),
    vscode.workspace.registerTextDocumentContentProvider(MEMORY_SCHEME, memory),
    vscode.commands.registerCommand('virtio.showInspector', () => inspector.show(false)),
  );
  registerCommands(context);
  const diagnostics = registerScenarioDiagnostics(context);

  return {
    inspector: {
      get visible() { return inspector.visible; },
      get lastState() { return inspector.lastState; },
      onDidPost: inspector.onDidPost,
    },
    diagnostics,
  };
}

export function deactivate(): void {
  // Everything is in context.subscriptions.
}
