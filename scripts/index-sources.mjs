// Builds src/machine/sim/source-index.json: for every function defined under
// src/machine, the file and line where it is written, and the lines of the
// `// @point NAME` markers inside it. Frames use it to point at the model's
// own source, in the bundle and in the tests alike.
import { readdirSync, readFileSync, writeFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const machine = join(root, 'src', 'machine');
const out = join(machine, 'sim', 'source-index.json');

function* walk(dir) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* walk(p);
    else if (name.endsWith('.ts')) yield p;
  }
}

const fnRe = /^(?:export\s+)?function\*?\s+([A-Za-z_$][\w$]*)\s*[<(]/;
const pointRe = /\/\/\s*@point\s+([\w-]+)/;
const index = {};
for (const file of walk(machine)) {
  const rel = relative(root, file).split('\\').join('/');
  let current = null;
  readFileSync(file, 'utf8').split('\n').forEach((text, i) => {
    const m = fnRe.exec(text);
    if (m) {
      current = { file: rel, line: i + 1 };
      (index[m[1]] ??= []).push(current);
      return;
    }
    const p = pointRe.exec(text);
    if (p && current) (current.points ??= {})[p[1]] = i + 1;
  });
}
const text = JSON.stringify(index, null, 1) + '\n';
let old = '';
try { old = readFileSync(out, 'utf8'); } catch { /* first build */ }
if (old !== text) writeFileSync(out, text);
