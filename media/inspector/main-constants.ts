/** protocol.ts MAX_MEMORY_VIEW, copied so the page bundles no host code (test/webview/agree.test.ts checks they agree). */
export const MAX_MEMORY_VIEW = 65536;
