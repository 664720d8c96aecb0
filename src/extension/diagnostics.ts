/**
 * Scenario errors in the Problems view while the file is edited: the same
 * parser and checks the adapter runs at launch, so what the editor flags is
 * what a launch would refuse, at the same line and column. Parsing only: a
 * scenario is data and nothing in it runs here.
 */
import * as vscode from 'vscode';
import { parseScenario } from '../machine/scenario/parser';
import { validateScenario } from '../machine/scenario/validate';
import { ScenarioError } from '../machine/scenario/errors';

const DEBOUNCE_MS = 200;

/** The diagnostic for a document's text, or none when it parses and validates. */
export function scenarioDiagnostics(text: string, file: string): vscode.Diagnostic[] {
  try {
    validateScenario(parseScenario(text, file));
    return [];
  } catch (e) {
    if (!(e instanceof ScenarioError)) throw e;
    const line = Math.max(0, e.line - 1);
    const col = Math.max(0, e.col - 1);
    const lineText = text.split(/\r?\n/)[line] ?? '';
    // Underline the offending token: up to the next blank, at least one character.
    const rest = lineText.slice(col).match(/^\S+/);
    const end = col + Math.max(1, rest ? rest[0].length : 1);
    const d = new vscode.Diagnostic(new vscode.Range(line, col, line, end), e.reason, vscode.DiagnosticSeverity.Error);
    d.source = 'virtio';
    return [d];
  }
}

export function registerScenarioDiagnostics(context: vscode.ExtensionContext): vscode.DiagnosticCollection {
  const collection = vscode.languages.createDiagnosticCollection('virtio');
  const timers = new Map<string, NodeJS.Timeout>();
  const check = (doc: vscode.TextDocument) => {
    if (doc.languageId !== 'virtio') return;
    collection.set(doc.uri, scenarioDiagnostics(doc.getText(), doc.uri.scheme === 'file' ? doc.uri.fsPath : doc.uri.toString()));
  };
  const later = (doc: vscode.TextDocument) => {
    const key = doc.uri.toString();
    clearTimeout(timers.get(key));
    timers.set(key, setTimeout(() => { timers.delete(key); check(doc); }, DEBOUNCE_MS));
  };
  context.subscriptions.push(
    collection,
    vscode.workspace.onDidOpenTextDocument(check),
    vscode.workspace.onDidChangeTextDocument((e) => later(e.document)),
    vscode.workspace.onDidCloseTextDocument((doc) => {
      clearTimeout(timers.get(doc.uri.toString()));
      collection.delete(doc.uri);
    }),
    { dispose: () => timers.forEach((t) => clearTimeout(t)) },
  );
  vscode.workspace.textDocuments.forEach(check);
  return collection;
}
