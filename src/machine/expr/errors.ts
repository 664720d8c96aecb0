/**
 * The one error an expression raises, when it is parsed or evaluated. The
 * column lets an editor underline the spot: a `.virtio` line adds the
 * expression's own column to it, the debugger shows it beside a condition.
 */
export class ExprError extends Error {
  override readonly name = 'ExprError';

  /**
   * `col` is the 1-based column in the expression text (0 for an evaluation
   * error that has no position); `reason` is the message without it.
   */
  constructor(readonly col: number, readonly reason: string) {
    super(reason);
  }
}
