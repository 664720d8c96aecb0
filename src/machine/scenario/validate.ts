/**
 * Checks that need the whole scenario, made once it is parsed and before
 * anything runs: names (a `buf` is declared on an earlier line, an `expect`
 * names only what a scenario line can see) and queue ownership (once a raw
 * statement has taken a queue from the guest driver, no request may use it).
 *
 * A scenario has no control flow, so these checks are exact: every name a
 * line uses, and every queue it touches, is known from the lines above it.
 */
import { AddrRef, Loc, RING_BASES, Scenario, Stmt, takesQueue } from './ast';
import { ScenarioError } from './errors';
import { BUILTINS, freeNames } from '../expr/ast';
import { SCENARIO_NAMES } from '../expr/names';

/** The guest has one vCPU, so blk-mq maps every request to hardware queue 0, virtqueue 0. */
const REQUEST_QUEUE = 0;

/** Names a buf may not take: expressions and addresses already mean something else by them. */
const RESERVED: ReadonlySet<string> = new Set([...SCENARIO_NAMES, ...RING_BASES, ...BUILTINS, 'true', 'false', 'null']);

function fail(loc: Loc, col: number, reason: string): never {
  throw new ScenarioError(loc.file, loc.line, col, reason);
}

export function validateScenario(sc: Scenario): void {
  const bufs = new Map<string, number>();
  const taken = new Map<number, Loc>();
  let queue = 0;

  const addr = (st: Stmt, ref: AddrRef | null): void => {
    if (ref === null || ref.name === null) return;
    if (bufs.has(ref.name) || RING_BASES.includes(ref.name)) return;
    fail(st.loc, ref.col, `${st.kind}: unknown name '${ref.name}' (a buf declared above, or ${RING_BASES.join(', ')})`);
  };

  const request = (st: Stmt, what: string): void => {
    const by = taken.get(REQUEST_QUEUE);
    if (by === undefined) return;
    fail(st.loc, st.loc.col, `${what}: queue ${REQUEST_QUEUE} is driven by raw statements since line ${by.line} ('${by.text}'); ` +
      `the guest driver, which requests go through, has left it`);
  };

  for (const st of sc.statements) {
    if (st.kind === 'queue') queue = st.index;
    if (takesQueue(st) && !taken.has(queue)) taken.set(queue, st.loc);
    switch (st.kind) {
      case 'buf':
        if (RESERVED.has(st.name)) fail(st.loc, st.nameCol, `buf: '${st.name}' already means something in expressions and addresses; choose another name`);
        if (bufs.has(st.name)) fail(st.loc, st.nameCol, `buf: '${st.name}' is already declared on line ${bufs.get(st.name)}`);
        bufs.set(st.name, st.loc.line);
        break;
      case 'mem':
        addr(st, st.addr);
        break;
      case 'desc':
        addr(st, st.addr);
        addr(st, st.table);
        break;
      case 'expect':
        for (const n of freeNames(st.expr)) {
          if (!bufs.has(n.name) && !SCENARIO_NAMES.has(n.name)) {
            fail(st.loc, st.col + n.start, `expect: unknown name '${n.name}' (a buf declared above, a queue field such as used.idx, device, queues, threads or dmesg)`);
          }
        }
        break;
      case 'batch':
        request(st, 'batch');
        break;
      case 'read': case 'write': case 'flush': case 'get-id': case 'discard': case 'write-zeroes':
        request(st, st.kind);
        break;
      default:
        break;
    }
  }
}
