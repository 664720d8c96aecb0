/**
 * The expression language of virtio-debug: one language for `expect` lines
 * in scenarios and, in the debugger, for breakpoint conditions, watch,
 * hover, evaluate and logpoints. Expressions are data, never code: parsing
 * builds plain objects, evaluation walks them against an environment
 * (machine-env.ts gives the machine's), and only the built-ins
 * u8/le16/le32/le64/len/hex can be called.
 */
export { ExprError } from './errors';
export type { Expr, Span } from './ast';
export { freeNames, references, BUILTINS } from './ast';
export { parseExpr, exprEnd } from './parse';
export { evaluate, truthy } from './evaluate';
export type { ExprEnv, Value } from './evaluate';
export { formatValue, interpolate } from './format';
export { lazyArray } from './lazy';
