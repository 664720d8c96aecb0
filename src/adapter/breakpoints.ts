/**
 * One breakpoint, whatever placed it (a line, a function, an event filter):
 * its condition, hit condition and log message, evaluated with the same
 * expression language as `expect`, watches and the REPL.
 */
import { Expr, ExprEnv, ExprError, evaluate, interpolate, parseExpr, truthy } from '../machine/expr';

export interface BreakpointOptions {
  condition?: string;
  hitCondition?: string;
  logMessage?: string;
}

type HitTest = (hits: number) => boolean;

/** `5` or `==5`: the 5th hit; `>=5`, `>5`, `<5`, `<=5`; `%5`: every 5th. */
function parseHitCondition(text: string): HitTest {
  const m = /^\s*(==|>=|<=|>|<|%)?\s*(\d+)\s*$/.exec(text);
  if (!m) throw new ExprError(1, `hit condition '${text}': expected a number, or ==N, >=N, >N, <N, <=N, %N`);
  const n = Number(m[2]);
  switch (m[1] ?? '==') {
    case '==': return (h) => h === n;
    case '>=': return (h) => h >= n;
    case '<=': return (h) => h <= n;
    case '>': return (h) => h > n;
    case '<': return (h) => h < n;
    default: return (h) => n > 0 && h % n === 0;
  }
}

let nextId = 1;

export class Breakpoint {
  readonly id = nextId++;
  hits = 0;
  verified = true;
  message: string | undefined;
  private readonly cond: Expr | null = null;
  private readonly hit: HitTest | null = null;
  readonly logMessage: string | undefined;

  constructor(opts: BreakpointOptions) {
    try {
      if (opts.condition && opts.condition.trim() !== '') this.cond = parseExpr(opts.condition);
      if (opts.hitCondition && opts.hitCondition.trim() !== '') this.hit = parseHitCondition(opts.hitCondition);
    } catch (e) {
      this.verified = false;
      this.message = e instanceof Error ? e.message : String(e);
    }
    this.logMessage = opts.logMessage && opts.logMessage !== '' ? opts.logMessage : undefined;
  }

  /**
   * The event reached this breakpoint: does it stop? A logpoint never stops;
   * it returns its text through `log`. A condition that cannot be evaluated
   * stops, and says why, rather than silently never firing.
   */
  reached(env: () => ExprEnv, log: (text: string) => void, problem: (text: string) => void): boolean {
    if (!this.verified) return false;
    if (this.cond) {
      try {
        if (!truthy(evaluate(this.cond, env()))) return false;
      } catch (e) {
        problem(`breakpoint condition failed: ${(e as Error).message}`);
        return true;
      }
    }
    this.hits++;
    if (this.hit && !this.hit(this.hits)) return false;
    if (this.logMessage !== undefined) {
      try {
        log(interpolate(this.logMessage, env()));
      } catch (e) {
        log(`logpoint: ${(e as Error).message}`);
      }
      return false;
    }
    return true;
  }
}
