/**
 * The .vsix ships the model sources (frames open them) with
 * src/machine/tsconfig.json from scripts/vsix-tsconfig.json. Opened from the
 * installed extension, with no @types/node beside them, the editor's
 * TypeScript must report nothing: these are sources to read, not a project
 * to fix. Checked with the TypeScript API the editor's language service uses.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ts from 'typescript';

const root = path.resolve(__dirname, '..', '..', '..');

function machineSources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? machineSources(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

describe('the tsconfig shipped with the model sources', () => {
  const file = path.join(root, 'scripts', 'vsix-tsconfig.json');
  const json = ts.parseConfigFileTextToJson(file, fs.readFileSync(file, 'utf8'));
  const parsed = ts.parseJsonConfigFileContent(json.config, ts.sys, path.join(root, 'src', 'machine'));

  it('is a valid config that skips type checking and loads no @types', () => {
    assert.equal(json.error, undefined);
    assert.deepEqual(parsed.errors, []);
    assert.equal(parsed.options.noCheck, true);
    assert.deepEqual(parsed.options.types, []);
    assert.ok(parsed.fileNames.some((f) => f.endsWith('qemu/hw/block/virtio-blk.ts')), 'covers src/machine');
  });

  it('gives no diagnostic on any model source, as the editor asks for them', () => {
    // typeRoots nowhere: as in the installed extension, which ships no node_modules.
    const program = ts.createProgram(machineSources(path.join(root, 'src', 'machine')), { ...parsed.options, typeRoots: [] });
    const diags = [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics(), ...program.getSyntacticDiagnostics(), ...program.getSemanticDiagnostics()];
    assert.deepEqual(diags.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')), []);
  });

  it('is staged into the .vsix by the package script and let through .vscodeignore', () => {
    assert.match(fs.readFileSync(path.join(root, 'scripts', 'package.mjs'), 'utf8'), /vsix-tsconfig\.json/);
    assert.match(fs.readFileSync(path.join(root, '.vscodeignore'), 'utf8'), /^!src\/machine\/tsconfig\.json$/m);
    assert.match(JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).scripts.package, /scripts\/package\.mjs/);
  });
});
