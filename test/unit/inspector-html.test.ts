import { strict as assert } from 'node:assert';
import { inspectorHtml } from '../../src/inspector/html';

const base = { nonce: 'bm9uY2Utbm9uY2U=', scriptUri: 'https://x/inspector.js', styleUri: 'https://x/inspector.css', codiconUri: 'https://x/codicon.css' };

describe('inspector page HTML', () => {
  it("accepts VS Code's cspSource with quoted keywords (code-server: 'self' https://*.vscode-cdn.net)", () => {
    const html = inspectorHtml({ ...base, cspSource: "'self' https://*.vscode-cdn.net" });
    assert.match(html, /script-src 'nonce-bm9uY2Utbm9uY2U='/);
    assert.match(html, /style-src 'self' https:\/\/\*\.vscode-cdn\.net;/);
    assert.match(html, /<script nonce="bm9uY2Utbm9uY2U=" src="https:\/\/x\/inspector.js">/);
    assert.doesNotMatch(html, /unsafe-inline|unsafe-eval/);
  });

  it('refuses a cspSource that would add a directive, and a short nonce', () => {
    assert.throws(() => inspectorHtml({ ...base, cspSource: "https://a; script-src 'unsafe-inline'" }), /cspSource/);
    assert.throws(() => inspectorHtml({ ...base, nonce: 'abc', cspSource: 'https://a' }), /nonce/);
  });
});
