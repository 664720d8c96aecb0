/**
 * The headless runner: `node dist/cli.js run SCENARIO [--json] [--ATTRIBUTE=VALUE ...]`.
 *
 * Without --json it prints the event log, one modelled function entered per
 * line, gdb-style (thread, function, arguments), indented by call depth,
 * with each request's outcome; with --json the object DESIGN.md fixes:
 * { events, state, bufs } (and `requests`, `expects`). A bad option or
 * scenario exits non-zero with a message naming the attribute or
 * file:line:col; so does a failed `expect` (exit 1, each failure on stderr,
 * after the log or the JSON). A spec violation is an outcome (exit 0,
 * device.broken).
 */
import { runScenarioFile, RunResult } from './machine/run';
import { OptionError, optionsFromArgs } from './machine/options';
import { ScenarioError } from './machine/scenario/errors';
import { ImageError } from './machine/image/image';

const USAGE = `usage: node dist/cli.js run SCENARIO [--json] [--ATTRIBUTE=VALUE ...]
  SCENARIO        a .virtio file (the bundled default: samples/default.virtio)
  --json          print { events, state, bufs, requests, expects } as one JSON object
  attributes      --queueSize=256 --numQueues=1 --indirectDesc=true --eventIdx=true
                  --ioeventfd=true --iothread=false --aio=io_uring|threads|native
                  --image=disk.img --imageMode=snapshot|readonly|writethrough --seed=0`;

function main(argv: string[]): number {
  const [cmd, ...rest] = argv;
  if (cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  if (cmd !== 'run') {
    process.stderr.write(`${cmd === undefined ? 'missing command' : `unknown command '${cmd}'`}\n${USAGE}\n`);
    return 2;
  }
  const json = rest.includes('--json');
  const positional = rest.filter((a) => !a.startsWith('--'));
  const attrs = rest.filter((a) => a.startsWith('--') && a !== '--json');
  if (positional.length !== 1) {
    process.stderr.write(`${positional.length === 0 ? 'missing SCENARIO' : `unexpected argument '${positional[1]}'`}\n${USAGE}\n`);
    return 2;
  }
  let result: RunResult;
  try {
    const options = optionsFromArgs(attrs);
    const out = json ? null : (line: string) => process.stdout.write(line + '\n');
    result = runScenarioFile(positional[0], options, { text: out, collectEvents: json });
  } catch (e) {
    if (e instanceof OptionError || e instanceof ScenarioError || e instanceof ImageError) {
      process.stderr.write(e.message + '\n');
      return 1;
    }
    throw e;
  }
  if (json) {
    const { events, state, bufs, requests, expects } = result;
    process.stdout.write(JSON.stringify({ events, state, bufs, requests, expects }) + '\n');
  }
  const failed = result.expects.filter((x) => !x.ok);
  for (const x of failed) process.stderr.write(x.message + '\n');
  return failed.length > 0 ? 1 : 0;
}

process.exitCode = main(process.argv.slice(2));
