/**
 * Source lines for free at a stop (DESIGN.md, "Techniques"): inside the
 * innermost generator of a `yield*` chain, the JavaScript stack lists every
 * delegating generator with its position. Taken only when the machine stops,
 * it tells each frame of the stopped thread the exact line it is executing
 * (the call it is in), at no cost while running.
 *
 * Positions are mapped back to the model's TypeScript with the source map
 * the build wrote next to the JavaScript (esbuild's bundle, or tsc's output).
 */
import * as fs from 'node:fs';
import { SourceMap } from 'node:module';
import type { Frame } from './frames';

interface CallSiteLike {
  getFunctionName(): string | null;
  getFileName(): string | undefined | null;
  getLineNumber(): number | null;
  getColumnNumber(): number | null;
}

export interface JsCallSite {
  fn: string;
  file: string;
  line: number;
  column: number;
}

/** The current JavaScript stack, innermost first, as raw positions. */
export function captureCallSites(): JsCallSite[] {
  const prepare = Error.prepareStackTrace;
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 400;
  Error.prepareStackTrace = (_e, sites) => sites;
  const holder: { stack?: unknown } = {};
  Error.captureStackTrace(holder, captureCallSites);
  const sites = holder.stack as unknown as CallSiteLike[];
  Error.prepareStackTrace = prepare;
  Error.stackTraceLimit = limit;
  return (Array.isArray(sites) ? sites : []).map((s) => ({
    fn: s.getFunctionName() ?? '',
    file: s.getFileName() ?? '',
    line: s.getLineNumber() ?? 0,
    column: s.getColumnNumber() ?? 0,
  }));
}

const maps = new Map<string, SourceMap | null>();

function mapFor(jsFile: string): SourceMap | null {
  if (maps.has(jsFile)) return maps.get(jsFile)!;
  let sm: SourceMap | null = null;
  try {
    const path = jsFile.startsWith('file://') ? new URL(jsFile).pathname : jsFile;
    sm = new SourceMap(JSON.parse(fs.readFileSync(path + '.map', 'utf8')));
  } catch {
    sm = null; // no map: positions stay unmapped and frames keep their entry lines
  }
  maps.set(jsFile, sm);
  return sm;
}

/** The TypeScript file (ending, as written in the map) and 1-based line of a JavaScript position. */
export function originalPosition(site: JsCallSite): { source: string; line: number } | null {
  if (site.file.endsWith('.ts')) return { source: site.file, line: site.line };
  const sm = mapFor(site.file);
  if (!sm) return null;
  const e = sm.findEntry(site.line - 1, site.column - 1) as { originalSource?: string; originalLine?: number };
  if (e.originalSource === undefined || e.originalLine === undefined) return null;
  return { source: e.originalSource, line: e.originalLine + 1 };
}

/**
 * Give each of `frames` (innermost first: the stopped thread's running
 * chain) the line it is executing, from the JavaScript stack `sites`.
 * Frames are matched in order by function name and file.
 */
export function assignExecLines(frames: readonly Frame[], sites: readonly JsCallSite[]): void {
  let i = 0;
  for (const f of frames) {
    const want = f.desc.name;
    const file = f.desc.file;
    for (let j = i; j < sites.length; j++) {
      if (sites[j].fn !== want) continue;
      const pos = originalPosition(sites[j]);
      if (pos && pos.source.replace(/\\/g, '/').endsWith(file)) {
        f.execLine = pos.line;
        i = j + 1;
        break;
      }
    }
  }
}
