/**
 * The launch.json schema in package.json (what VS Code's IntelliSense and
 * validation use) and the adapter's own launch validation must agree: same
 * attributes, types, ranges, enums and defaults; every value the schema
 * calls wrong is refused by the adapter with a message naming the attribute.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ATTRIBUTES, DEFAULT_OPTIONS, OptionError } from '../../src/machine/options';
import { parseLaunchArgs } from '../../src/adapter/launchArgs';

interface SchemaProp { type: string; enum?: string[]; minimum?: number; maximum?: number; default?: unknown; description?: string }

const root = path.resolve(__dirname, '..', '..', '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const debuggerContribution = pkg.contributes.debuggers.find((d: { type: string }) => d.type === 'virtio');
const schema: Record<string, SchemaProp> = debuggerContribution.configurationAttributes.launch.properties;
const specs = ATTRIBUTES as Record<string, { kind: string; values?: readonly string[]; min?: number; max?: number }>;
/** The adapter's own attributes besides the machine's (noDebug is VS Code's, set by "Run Without Debugging"). */
const ADAPTER_ONLY = ['trace'];

function refused(raw: Record<string, unknown>, attribute: string): void {
  assert.throws(() => parseLaunchArgs(raw), (e: unknown) => {
    assert.ok(e instanceof OptionError, `expected an OptionError, got ${String(e)}`);
    assert.equal(e.attribute, attribute);
    assert.match(e.message, new RegExp(`'${attribute}'`));
    return true;
  });
}

describe('launch.json schema vs. the adapter', () => {
  it('has exactly the attributes the adapter accepts', () => {
    assert.deepEqual(Object.keys(schema).sort(), [...Object.keys(ATTRIBUTES), ...ADAPTER_ONLY].sort());
  });

  for (const [name, spec] of Object.entries(specs)) {
    it(`'${name}': type, range, enum and default match`, () => {
      const p = schema[name];
      assert.ok(p.description && p.description.length > 10, 'has a description');
      const type = spec.kind === 'enum' ? 'string' : spec.kind;
      assert.equal(p.type, type);
      if (spec.kind === 'enum') assert.deepEqual(p.enum, [...spec.values!]);
      if (spec.kind === 'integer') {
        assert.equal(p.minimum, spec.min);
        assert.equal(p.maximum, spec.max);
      }
      const def = (DEFAULT_OPTIONS as unknown as Record<string, unknown>)[name];
      assert.equal(p.default, def, 'schema default is the machine default');
    });

    it(`'${name}': what the schema refuses, the adapter refuses by name`, () => {
      const p = schema[name];
      const wrongType = p.type === 'string' ? 12 : p.type === 'boolean' ? 'yes' : 'many';
      refused({ [name]: wrongType }, name);
      if (p.enum) refused({ [name]: 'no-such-' + name }, name);
      if (p.type === 'integer') {
        refused({ [name]: p.minimum! - 1 }, name);
        refused({ [name]: p.maximum! + 1 }, name);
        refused({ [name]: p.minimum! + 0.5 }, name);
      }
    });

    it(`'${name}': the schema's default and enum values launch`, () => {
      const p = schema[name];
      const values = p.enum ?? (p.default !== undefined ? [p.default] : []);
      for (const v of values) {
        if (name === 'packed' && v === true) continue;
        const a = parseLaunchArgs({ [name]: v });
        assert.equal((a.options as unknown as Record<string, unknown>)[name], v);
      }
    });
  }

  it("'trace' is a boolean in both", () => {
    assert.equal(schema.trace.type, 'boolean');
    refused({ trace: 'on' }, 'trace');
    assert.equal(parseLaunchArgs({ trace: true }).trace, true);
  });

  it('initial configurations and snippets use only known attributes', () => {
    const known = new Set([...Object.keys(schema), 'type', 'request', 'name']);
    const configs = [...debuggerContribution.initialConfigurations, ...debuggerContribution.configurationSnippets.map((s: { body: object }) => s.body)];
    for (const c of configs) for (const k of Object.keys(c)) assert.ok(known.has(k), `unknown attribute '${k}'`);
  });
});
