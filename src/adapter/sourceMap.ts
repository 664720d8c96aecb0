/**
 * Where the model's sources are, and which of their lines can stop: the
 * first line of every modelled function (its entry) and every `// @point`
 * line. A line breakpoint anywhere else moves to the next stoppable line in
 * the same file (or the last one before it), as a compiled-code debugger
 * moves a breakpoint to the next line with code.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { allFunctions, allPoints, FnDesc, PointDesc } from '../machine/sim/frames';

/** The folder holding package.json and src/machine: frames' `file` paths are relative to it. */
export function projectRoot(): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(path.join(dir, 'src', 'machine'))) return dir;
    dir = path.dirname(dir);
  }
  return path.resolve(__dirname, '..');
}

export type StopSite = { kind: 'entry'; fn: FnDesc; line: number } | { kind: 'point'; point: PointDesc; line: number };

let sitesByFile: Map<string, StopSite[]> | null = null;

function sites(): Map<string, StopSite[]> {
  if (sitesByFile) return sitesByFile;
  const m = new Map<string, StopSite[]>();
  const add = (file: string, s: StopSite) => {
    let list = m.get(file);
    if (!list) m.set(file, (list = []));
    list.push(s);
  };
  for (const fn of allFunctions()) if (fn.side !== 'scenario') add(fn.file, { kind: 'entry', fn, line: callLine(fn.file, fn.line, 'enter(') });
  for (const p of allPoints()) add(p.fn.file, { kind: 'point', point: p, line: callLine(p.fn.file, p.line, 'point(') });
  for (const list of m.values()) list.sort((a, b) => a.line - b.line);
  sitesByFile = m;
  return m;
}

/**
 * The line a stop at a site shows in the CALL STACK: the `enter(` call just
 * after a function's header, the `point(` call just after a `// @point`
 * marker (the source index records the header and the marker). A moved
 * breakpoint is reported at that line, so its dot and the stop agree. If the
 * source cannot be read, the index's line.
 */
function callLine(file: string, from: number, call: string): number {
  let lines = sourceLines.get(file);
  if (lines === undefined) {
    try {
      lines = fs.readFileSync(absoluteModelPath(file), 'utf8').split('\n');
    } catch {
      lines = null;
    }
    sourceLines.set(file, lines);
  }
  if (lines === null) return from;
  for (let i = from - 1; i < Math.min(lines.length, from + 8); i++) if (lines[i].includes(call)) return i + 1;
  return from;
}

const sourceLines = new Map<string, string[] | null>();

/** The model file (relative, `src/machine/...`) an absolute or relative path names, if any. */
export function modelFileOf(p: string): string | null {
  const norm = p.split(path.sep).join('/');
  const i = norm.lastIndexOf('src/machine/');
  if (i < 0) return null;
  const rel = norm.slice(i);
  return sites().has(rel) ? rel : null;
}

/** The stop sites of `file` at the nearest stoppable line at or after `line` (else the last before it). */
export function sitesNear(file: string, line: number): StopSite[] {
  const list = sites().get(file) ?? [];
  if (list.length === 0) return [];
  const after = list.find((s) => s.line >= line);
  const target = after ? after.line : list[list.length - 1].line;
  return list.filter((s) => s.line === target);
}

export function absoluteModelPath(file: string): string {
  return path.join(projectRoot(), file);
}
