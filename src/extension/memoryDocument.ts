/**
 * Guest memory as a read-only document: `virtio-memory:` URIs name a debug
 * session, a guest-physical address and a length; the content is a hex dump
 * of what DAP `readMemory` returns at that moment. The inspector opens one
 * when a descriptor's "open memory" is clicked; it needs no hex editor
 * extension (code-server has none).
 */
import * as vscode from 'vscode';
import { hexDump } from './hexdump';

export const MEMORY_SCHEME = 'virtio-memory';

export function memoryUri(sessionId: string, addr: number, len: number): vscode.Uri {
  const hex = '0x' + addr.toString(16);
  return vscode.Uri.from({ scheme: MEMORY_SCHEME, path: `/guest memory ${hex}+${len}.hexdump`, query: new URLSearchParams({ session: sessionId, addr: String(addr), len: String(len) }).toString() });
}

export class GuestMemoryProvider implements vscode.TextDocumentContentProvider {
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;

  constructor(private readonly sessions: (id: string) => vscode.DebugSession | undefined) {}

  async provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
    const q = new URLSearchParams(uri.query);
    const session = this.sessions(q.get('session') ?? '');
    const addr = Number(q.get('addr'));
    const len = Number(q.get('len'));
    if (!Number.isSafeInteger(addr) || !Number.isSafeInteger(len) || len < 1) return 'bad guest memory address\n';
    if (!session) return `the debug session that showed 0x${addr.toString(16)} has ended\n`;
    const r = (await session.customRequest('readMemory', { memoryReference: '0x' + addr.toString(16), offset: 0, count: len })) as { data?: string; unreadableBytes?: number };
    const data = Buffer.from(r.data ?? '', 'base64');
    return hexDump(addr, data, r.unreadableBytes ?? 0);
  }

  /** Re-read every open memory document of a session (after a stop: memory may have changed). */
  refresh(sessionId: string): void {
    for (const doc of vscode.workspace.textDocuments) {
      if (doc.uri.scheme === MEMORY_SCHEME && new URLSearchParams(doc.uri.query).get('session') === sessionId) this.changed.fire(doc.uri);
    }
  }
}
