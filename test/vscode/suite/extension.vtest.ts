/**
 * The extension in a real VS Code: activation, F5 on a sample stopping at
 * virtio_blk_handle_output, the inspector receiving `virtio/state`, and
 * scenario diagnostics in the Problems view.
 */
import { strict as assert } from 'node:assert';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { VirtioDebugApi } from '../../../src/extension';
import type { HostMessage } from '../../../src/inspector/protocol';

const EXTENSION_ID = 'virtio-debug.virtio-debug';

function samples(): vscode.WorkspaceFolder {
  const f = vscode.workspace.workspaceFolders?.[0];
  assert.ok(f, 'the samples folder is open');
  return f;
}

/** Resolve with the first adapter event of `type` that `pred` accepts. */
function nextEvent(event: string, pred: (body: Record<string, unknown>, session: vscode.DebugSession) => boolean = () => true, ms = 30_000): Promise<{ body: Record<string, unknown>; session: vscode.DebugSession }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { sub.dispose(); reject(new Error(`no '${event}' event within ${ms} ms`)); }, ms);
    const sub = vscode.debug.registerDebugAdapterTrackerFactory('virtio', {
      createDebugAdapterTracker: (session) => ({
        onDidSendMessage: (m: { type?: string; event?: string; body?: Record<string, unknown> }) => {
          if (m.type === 'event' && m.event === event && pred(m.body ?? {}, session)) {
            clearTimeout(timer);
            sub.dispose();
            resolve({ body: m.body ?? {}, session });
          }
        },
      }),
    });
  });
}

describe('virtio-debug in VS Code', () => {
  let api: VirtioDebugApi;

  before(async () => {
    const ext = vscode.extensions.getExtension<VirtioDebugApi>(EXTENSION_ID);
    assert.ok(ext, `${EXTENSION_ID} is installed`);
    api = await ext.activate();
  });

  afterEach(async () => {
    await vscode.debug.stopDebugging();
    vscode.debug.removeBreakpoints(vscode.debug.breakpoints);
  });

  it('activates and registers its commands', async () => {
    const cmds = await vscode.commands.getCommands(true);
    for (const c of ['virtio.showInspector', 'virtio.runScenario', 'virtio.debugScenario', 'virtio.openDefaultScenario']) assert.ok(cmds.includes(c), c);
    assert.ok(api.inspector, 'the API exposes the inspector');
  });

  it('F5 on the default sample stops at virtio_blk_handle_output and the inspector gets the state', async () => {
    vscode.debug.addBreakpoints([new vscode.FunctionBreakpoint('virtio_blk_handle_output')]);
    const posted = new Promise<HostMessage & { type: 'state' }>((resolve) => {
      const sub = api.inspector.onDidPost((m) => {
        if (m.type === 'state') { sub.dispose(); resolve(m); }
      });
    });
    const stopped = nextEvent('stopped');
    const ok = await vscode.debug.startDebugging(samples(), { type: 'virtio', request: 'launch', name: 'default', scenario: path.join(samples().uri.fsPath, 'default.virtio') });
    assert.ok(ok, 'the session starts');
    const { body, session } = await stopped;
    const trace = (await session.customRequest('stackTrace', { threadId: body.threadId })) as { stackFrames: { name: string }[] };
    assert.match(trace.stackFrames[0].name, /^virtio_blk_handle_output \(vdev=0x[0-9a-f]+, vq=0x[0-9a-f]+\)$/);
    assert.ok(trace.stackFrames.some((f) => f.name.startsWith('main_loop_wait')), 'the main-loop frames are below it');

    const m = await posted;
    const state = (await session.customRequest('virtio/state')) as { queues: { avail: { idx: number }; last_avail_idx: number }[] };
    assert.equal(m.state.queues[0].avail.idx, state.queues[0].avail.idx);
    assert.equal(m.state.queues[0].last_avail_idx, state.queues[0].last_avail_idx);
    assert.ok(api.inspector.visible, 'the inspector opened on session start');
  });

  it('F5 with no launch configuration debugs the scenario in the editor', async () => {
    const doc = await vscode.workspace.openTextDocument(path.join(samples().uri.fsPath, 'default.virtio'));
    await vscode.window.showTextDocument(doc);
    vscode.debug.addBreakpoints([new vscode.FunctionBreakpoint('virtqueue_pop')]);
    const stopped = nextEvent('stopped');
    await vscode.commands.executeCommand('virtio.debugScenario');
    const { session } = await stopped;
    assert.equal(session.configuration.scenario, doc.uri.fsPath);
  });

  it('shows scenario errors in the Problems view at their line and column', async () => {
    const doc = await vscode.workspace.openTextDocument({ language: 'virtio', content: 'read 0 512\nread zero 512\n' });
    await vscode.window.showTextDocument(doc);
    const deadline = Date.now() + 5000;
    let diags = vscode.languages.getDiagnostics(doc.uri);
    while (diags.length === 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      diags = vscode.languages.getDiagnostics(doc.uri);
    }
    assert.equal(diags.length, 1);
    assert.equal(diags[0].range.start.line, 1);
    assert.equal(diags[0].range.start.character, 5);
  });
});
