/**
 * The Virtqueue Inspector page: a pure function (no vscode import) so the
 * host and the headless-browser tests serve the same HTML. Everything is
 * loaded from the webview's own resource origin; the script runs only with
 * the nonce, and no inline style or script is allowed by the CSP.
 */
export interface InspectorHtmlOptions {
  /** webview.cspSource */
  cspSource: string;
  /** A fresh random nonce for the script tag (base64 or hex). */
  nonce: string;
  /** webview.asWebviewUri(dist/media/inspector.js) */
  scriptUri: string;
  /** webview.asWebviewUri(dist/media/inspector.css) */
  styleUri: string;
  /** webview.asWebviewUri(dist/media/codicon.css) */
  codiconUri: string;
}

function attr(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function inspectorCsp(cspSource: string, nonce: string): string {
  return `default-src 'none'; style-src ${cspSource}; font-src ${cspSource}; script-src 'nonce-${nonce}'; img-src ${cspSource} data:`;
}

export function inspectorHtml(o: InspectorHtmlOptions): string {
  if (!/^[A-Za-z0-9+/=_-]{8,}$/.test(o.nonce)) throw new Error('inspectorHtml: the nonce must be at least 8 base64 characters');
  // VS Code's own value, e.g. `'self' https://*.vscode-cdn.net` (quoted keywords are legal); a `;` or `"` would end the directive or the attribute.
  if (/[;"\n\r]/.test(o.cspSource)) throw new Error('inspectorHtml: cspSource must be a list of CSP source expressions');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${attr(inspectorCsp(o.cspSource, o.nonce))}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="${attr(o.codiconUri)}">
<link rel="stylesheet" href="${attr(o.styleUri)}">
<title>Virtqueue Inspector</title>
</head>
<body>
<main id="app" aria-label="Virtqueue Inspector"></main>
<script nonce="${attr(o.nonce)}" src="${attr(o.scriptUri)}"></script>
</body>
</html>
`;
}
