/**
 * The host side of the Virtqueue Inspector: one webview panel, fed from
 * `virtio/state` on every stop of a `virtio` session. The webview is
 * untrusted: every message it posts goes through validateWebviewMessage, its
 * scripts run only with this page's nonce, and it loads files from
 * dist/media alone.
 */
import { randomBytes } from 'node:crypto';
import * as vscode from 'vscode';
import type { StateSnapshot } from '../machine/state/snapshot';
import { inspectorHtml } from './html';
import { HostMessage, NumberFormat, StopContext, validateWebviewMessage } from './protocol';

export const INSPECTOR_VIEW_TYPE = 'virtio.inspector';

/** What the panel needs from the rest of the extension. */
export interface InspectorHost {
  extensionUri: vscode.Uri;
  openMemory(session: vscode.DebugSession, addr: number, len: number, column: vscode.ViewColumn): Promise<void>;
  log(line: string): void;
}

interface Shown {
  session: vscode.DebugSession;
  stop: StopContext | null;
  state: StateSnapshot;
  previous: StateSnapshot | null;
  seq: number;
}

export class InspectorPanel implements vscode.Disposable {
  private panel: vscode.WebviewPanel | undefined;
  private shown: Shown | undefined;
  /** A stop that came while the panel was hidden: fetched when it shows again. */
  private pending: { session: vscode.DebugSession; stop: StopContext | null } | undefined;
  private seq = 0;
  private readonly disposables: vscode.Disposable[] = [];
  private readonly postedEmitter = new vscode.EventEmitter<HostMessage>();
  /** Every message posted to the webview (the extension's test API listens). */
  readonly onDidPost = this.postedEmitter.event;

  constructor(private readonly host: InspectorHost) {
    this.disposables.push(
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration('virtio.inspector.numberFormat')) this.post(this.configMessage());
      }),
    );
  }

  get visible(): boolean {
    return this.panel?.visible ?? false;
  }

  /** The last state drawn (or being drawn). */
  get lastState(): StateSnapshot | undefined {
    return this.shown?.state;
  }

  /** Open the panel, or bring it forward; then draw the active virtio session's state. */
  async show(preserveFocus = false): Promise<void> {
    if (this.panel) {
      this.panel.reveal(undefined, preserveFocus);
    } else {
      const viewColumn = vscode.window.activeTextEditor ? vscode.ViewColumn.Beside : vscode.ViewColumn.Two;
      const panel = vscode.window.createWebviewPanel(INSPECTOR_VIEW_TYPE, 'Virtqueue Inspector', { viewColumn, preserveFocus: false }, this.webviewOptions());
      this.adopt(panel);
      // The debugger opens each stop's source in the active editor group; were that the
      // inspector's, the source would cover it. A locked group takes no new editors, so the
      // inspector stays in view beside the sources (as a locked terminal editor does).
      if (panel.active) await vscode.commands.executeCommand('workbench.action.lockEditorGroup');
      if (preserveFocus && vscode.window.tabGroups.all.length > 1) await vscode.commands.executeCommand('workbench.action.focusPreviousGroup');
    }
    const active = vscode.debug.activeDebugSession;
    if (!this.shown && active?.type === 'virtio' && !this.pending) this.pending = { session: active, stop: null };
  }

  /** Take over a panel: a new one, or one VS Code restored after a reload. */
  adopt(panel: vscode.WebviewPanel): void {
    this.panel = panel;
    panel.webview.options = this.webviewOptions();
    panel.webview.html = this.html(panel.webview);
    const subs = [
      panel.webview.onDidReceiveMessage((m: unknown) => this.receive(m)),
      panel.onDidChangeViewState(() => {
        if (panel.visible && this.pending) void this.fetch(this.pending.session, this.pending.stop);
      }),
    ];
    panel.onDidDispose(() => {
      subs.forEach((s) => s.dispose());
      if (this.panel === panel) this.panel = undefined;
    });
  }

  /** A virtio session stopped: fetch its state and draw it. */
  onStopped(session: vscode.DebugSession, stop: StopContext): void {
    if (!this.panel || !this.panel.visible) {
      this.pending = { session, stop };
      return;
    }
    void this.fetch(session, stop);
  }

  onEnded(session: vscode.DebugSession): void {
    if (this.pending?.session.id === session.id) this.pending = undefined;
    if (this.shown?.session.id === session.id) this.post({ type: 'ended', session: session.name });
  }

  private async fetch(session: vscode.DebugSession, stop: StopContext | null): Promise<void> {
    this.pending = undefined;
    const seq = ++this.seq;
    let state: StateSnapshot;
    try {
      state = (await session.customRequest('virtio/state')) as StateSnapshot;
    } catch (e) {
      if (seq === this.seq) this.post({ type: 'error', message: `virtio/state failed: ${(e as Error).message}` });
      return;
    }
    if (seq !== this.seq) return; // a later stop overtook this one
    const previous = this.shown?.session.id === session.id ? this.shown.state : null;
    this.shown = { session, stop, state, previous, seq };
    // The page diffs against the state it drew last, which is `previous`: no need to send it twice
    // (at 32,768 descriptors a snapshot is megabytes). A re-send after `ready` includes it.
    this.post({ type: 'state', session: session.name, seq, stop, state });
  }

  private receive(raw: unknown): void {
    const m = validateWebviewMessage(raw);
    if (typeof m === 'string') {
      this.host.log(`inspector: refused a message from the webview: ${m}`);
      return;
    }
    switch (m.type) {
      case 'ready':
        this.post(this.configMessage());
        if (this.shown) {
          const s = this.shown;
          this.post({ type: 'state', session: s.session.name, seq: s.seq, stop: s.stop, state: s.state, previous: s.previous });
        }
        if (this.pending && this.panel?.visible) void this.fetch(this.pending.session, this.pending.stop);
        return;
      case 'refresh': {
        const session = this.shown?.session ?? (vscode.debug.activeDebugSession?.type === 'virtio' ? vscode.debug.activeDebugSession : undefined);
        if (session) void this.fetch(session, this.shown?.stop ?? null);
        return;
      }
      case 'revealSource':
        void this.reveal(m.file, m.line);
        return;
      case 'openMemory': {
        const session = this.shown?.session;
        if (session) void this.host.openMemory(session, m.addr, m.len, this.editorColumn());
        return;
      }
    }
  }

  private async reveal(file: string, line: number): Promise<void> {
    const uri = vscode.Uri.joinPath(this.host.extensionUri, ...file.split('/'));
    try {
      const doc = await vscode.workspace.openTextDocument(uri);
      const pos = new vscode.Position(Math.min(line, doc.lineCount) - 1, 0);
      await vscode.window.showTextDocument(doc, { viewColumn: this.editorColumn(), selection: new vscode.Range(pos, pos), preview: true });
    } catch (e) {
      this.host.log(`inspector: cannot open ${file}: ${(e as Error).message}`);
    }
  }

  /**
   * Where a source or memory document the inspector asks for opens: an editor
   * group other than the inspector's own (it is locked, and covering the
   * inspector with what it points at would defeat the click). The active
   * group if it is another, else the first other one, else a new one beside.
   */
  editorColumn(): vscode.ViewColumn {
    const mine = this.panel?.viewColumn;
    const active = vscode.window.tabGroups.activeTabGroup;
    if (active.viewColumn !== mine) return active.viewColumn;
    const other = vscode.window.tabGroups.all.find((g) => g.viewColumn !== mine);
    return other ? other.viewColumn : vscode.ViewColumn.Beside;
  }

  private configMessage(): HostMessage {
    const fmt = vscode.workspace.getConfiguration('virtio.inspector').get<NumberFormat>('numberFormat');
    return { type: 'config', numberFormat: fmt === 'decimal' ? 'decimal' : 'hex' };
  }

  private post(m: HostMessage): void {
    if (!this.panel) return;
    void this.panel.webview.postMessage(m);
    this.postedEmitter.fire(m);
  }

  private mediaRoot(): vscode.Uri {
    return vscode.Uri.joinPath(this.host.extensionUri, 'dist', 'media');
  }

  private webviewOptions(): vscode.WebviewOptions & vscode.WebviewPanelOptions {
    // Scripts on (the page is ours, nonce-gated); files from dist/media only; no command links.
    return { enableScripts: true, enableCommandUris: false, localResourceRoots: [this.mediaRoot()] };
  }

  private html(webview: vscode.Webview): string {
    const media = (f: string) => webview.asWebviewUri(vscode.Uri.joinPath(this.mediaRoot(), f)).toString();
    return inspectorHtml({
      cspSource: webview.cspSource,
      nonce: randomBytes(18).toString('base64'),
      scriptUri: media('inspector.js'),
      styleUri: media('inspector.css'),
      codiconUri: media('codicon.css'),
    });
  }

  dispose(): void {
    this.panel?.dispose();
    this.disposables.forEach((d) => d.dispose());
    this.postedEmitter.dispose();
  }
}
