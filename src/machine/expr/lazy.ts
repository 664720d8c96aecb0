/**
 * Arrays whose elements are decoded from guest memory only when read. A
 * condition such as `desc[head].flags & 4` runs up to a million times a
 * second; decoding all 256 descriptors for it would be most of the cost.
 *
 * The array is a real (read-only) Array to every caller — Array.isArray,
 * `length`, indexing, Object.keys and JSON.stringify all work — so the
 * debugger's variables view and the expression evaluator need not know it
 * is lazy. Nothing is cached: each read sees guest memory as it is then.
 */

function indexOf(key: string | symbol, length: number): number {
  if (typeof key !== 'string') return -1;
  const n = Number(key);
  return Number.isInteger(n) && n >= 0 && n < length && String(n) === key ? n : -1;
}

export function lazyArray<T>(length: number, at: (i: number) => T): T[] {
  const target: T[] = new Array<T>(length);
  return new Proxy(target, {
    get(t, key, receiver) {
      const i = indexOf(key, length);
      return i >= 0 ? at(i) : Reflect.get(t, key, receiver);
    },
    getOwnPropertyDescriptor(t, key) {
      const i = indexOf(key, length);
      if (i < 0) return Reflect.getOwnPropertyDescriptor(t, key);
      // Configurable: the target has no such property, so the proxy may report one.
      return { value: at(i), writable: false, enumerable: true, configurable: true };
    },
    has(t, key) {
      return indexOf(key, length) >= 0 || Reflect.has(t, key);
    },
    ownKeys(t) {
      const keys: (string | symbol)[] = [];
      for (let i = 0; i < length; i++) keys.push(String(i));
      return keys.concat(Reflect.ownKeys(t));
    },
    set: () => false,
    defineProperty: () => false,
    deleteProperty: () => false,
  });
}
