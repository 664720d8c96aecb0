/**
 * The one error a scenario can raise while it is read. Its message is the
 * `file:line:col: reason` form that editors and compilers use, so the CLI can
 * print it as is and a terminal or problem matcher can jump to the spot; the
 * parts are kept apart as well for callers that place diagnostics themselves.
 */
export class ScenarioError extends Error {
  override readonly name = 'ScenarioError';

  /** `line` and `col` are 1-based; `col` points at the offending token. */
  constructor(
    readonly file: string,
    readonly line: number,
    readonly col: number,
    readonly reason: string,
  ) {
    super(`${file}:${line}:${col}: ${reason}`);
  }
}
