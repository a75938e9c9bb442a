/**
 * A linearizability checker for key-value histories (put / get / append), after Wing & Gong
 * (1993) with Lowe's memoization (2017) — the algorithm porcupine uses — written from the
 * papers. The history is partitioned by key (linearizability is compositional, Herlihy & Wing
 * 1990), and each key's sub-history is searched on its own.
 *
 * Operations that timed out are indeterminate: their return time is +∞ and, for a get, the
 * output is unknown, so such gets are dropped (they constrain nothing) while such puts and
 * appends may take effect at any point after their call, or never.
 */

/** One client operation. */
export interface KvOp {
  /** Client that issued it (for messages only). */
  readonly client: number;
  readonly kind: 'put' | 'get' | 'append';
  readonly key: string;
  /** Argument of put / append. */
  readonly value?: string;
  /** Invocation time. */
  readonly call: number;
  /** Response time; `Infinity` when the operation timed out (indeterminate). */
  readonly ret: number;
  /** A get's result (undefined when indeterminate). */
  readonly output?: string;
}

/** Result of a check. */
export interface CheckResult {
  /** True when linearizable; 'unknown' when the search gave up. */
  readonly ok: boolean | 'unknown';
  /** The first key whose history is not linearizable. */
  readonly badKey?: string;
  /** Its operations, for the failure message. */
  readonly badOps?: KvOp[];
}

interface Node {
  op: number; // index into ops
  isCall: boolean;
  time: number;
  match: Node | undefined; // call → its return
  prev: Node | undefined;
  next: Node | undefined;
}

function stepModel(state: string, op: KvOp): string | undefined {
  switch (op.kind) {
    case 'put': return op.value ?? '';
    case 'append': return state + (op.value ?? '');
    case 'get': return op.output === state ? state : undefined;
  }
}

/**
 * A sequential specification for {@link wgl}: the initial state, the step of one operation
 * (undefined when the operation cannot happen in that state), and a string that identifies a
 * state (two states with the same key must behave the same; it is part of the memo key).
 */
export interface Model<S, O> {
  readonly init: S;
  step(state: S, op: O): S | undefined;
  key(state: S): string;
}

/** An operation interval: invocation and response time (`Infinity`: never returned). */
export interface Interval {
  readonly call: number;
  readonly ret: number;
}

/** Where a search got furthest: the most operations linearized at once, and the last of them (an index into the operations; -1: none). */
export interface WglTrace {
  deepest: number;
  last: number;
}

/**
 * The Wing & Gong search with Lowe's memoization over `ops` (one key's operations, or any
 * history of one sequential object) against `model`. Returns true when some total order of the
 * operations that respects real time (an operation that returned before another was called comes
 * first) is accepted by the model, false when none is, and 'unknown' when the search passed
 * `maxSteps` (`trace`, when given, says how far it got: a failure is just after). Operations with `ret = Infinity` must be linearized somewhere after their call
 * (placing one last means it took effect after everything else, which a caller uses for "maybe
 * never"). The memo key is the set of linearized operations, as a 64-bit Zobrist hash kept
 * incrementally (a collision can only prune a branch, so it can only turn a true into a false
 * answer, with odds below 1e-6 at 5 million states), and the model's state key.
 */
export function wgl<O extends Interval, S>(ops: readonly O[], model: Model<S, O>, maxSteps = 5_000_000, trace?: WglTrace): boolean | 'unknown' {
  if (ops.length === 0) return true;
  const events: Node[] = [];
  ops.forEach((o, i) => {
    const ret: Node = { op: i, isCall: false, time: o.ret, match: undefined, prev: undefined, next: undefined };
    const call: Node = { op: i, isCall: true, time: o.call, match: ret, prev: undefined, next: undefined };
    events.push(call, ret);
  });
  // By time; at equal times calls first (they may be concurrent with returns at that instant).
  events.sort((a, b) => a.time - b.time || (a.isCall === b.isCall ? a.op - b.op : a.isCall ? -1 : 1));
  const head: Node = { op: -1, isCall: false, time: -Infinity, match: undefined, prev: undefined, next: undefined };
  let prev = head;
  for (const e of events) {
    prev.next = e;
    e.prev = prev;
    prev = e;
  }

  // Zobrist words of each operation (a fixed xorshift stream: the search is deterministic).
  const zob = new Uint32Array(2 * ops.length);
  let x = 0x9e3779b9;
  for (let i = 0; i < zob.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    zob[i] = x >>> 0;
  }
  let h0 = 0;
  let h1 = 0;
  const cache = new Set<string>();
  const stack: Array<{ entry: Node; state: S }> = [];
  let state = model.init;
  let entry = head.next;
  let steps = 0;

  const lift = (e: Node): void => {
    e.prev!.next = e.next;
    e.next!.prev = e.prev;
    const m = e.match!;
    m.prev!.next = m.next;
    if (m.next) m.next.prev = m.prev;
  };
  const unlift = (e: Node): void => {
    const m = e.match!;
    m.prev!.next = m;
    if (m.next) m.next.prev = m;
    e.prev!.next = e;
    e.next!.prev = e;
  };

  while (head.next !== undefined) {
    if (++steps > maxSteps) return 'unknown';
    if (entry === undefined) return false;
    if (entry.isCall) {
      const next = model.step(state, ops[entry.op]);
      if (next !== undefined) {
        const i = entry.op;
        const k = `${(h0 ^ zob[2 * i]) >>> 0}.${(h1 ^ zob[2 * i + 1]) >>> 0}|${model.key(next)}`;
        if (!cache.has(k)) {
          cache.add(k);
          h0 ^= zob[2 * i];
          h1 ^= zob[2 * i + 1];
          stack.push({ entry, state });
          if (trace && stack.length > trace.deepest) {
            trace.deepest = stack.length;
            trace.last = i;
          }
          state = next;
          lift(entry);
          entry = head.next;
          continue;
        }
      }
      entry = entry.next;
    } else {
      // A return whose call is not linearized yet: undo the last choice.
      const top = stack.pop();
      if (!top) return false;
      state = top.state;
      const i = top.entry.op;
      h0 ^= zob[2 * i];
      h1 ^= zob[2 * i + 1];
      unlift(top.entry);
      entry = top.entry.next;
    }
  }
  return true;
}

const stringKv: Model<string, KvOp> = { init: '', step: stepModel, key: (s) => s };

/**
 * Checks one key's operations (all on the same key); `maxSteps` bounds the search.
 * Initial value is the empty string.
 */
export function checkKey(ops: KvOp[], maxSteps = 5_000_000): boolean | 'unknown' {
  // Indeterminate gets say nothing.
  const list = ops.filter((o) => !(o.kind === 'get' && (o.ret === Infinity || o.output === undefined)));
  return wgl(list, stringKv, maxSteps);
}

/** Checks a whole history, partitioned by key. */
export function checkHistory(history: KvOp[], maxStepsPerKey?: number): CheckResult {
  const byKey = new Map<string, KvOp[]>();
  for (const op of history) {
    if (!(op.call <= op.ret)) throw new RangeError(`operation returns (${op.ret}) before its call (${op.call})`);
    const l = byKey.get(op.key);
    if (l) l.push(op);
    else byKey.set(op.key, [op]);
  }
  let unknown = false;
  for (const [key, ops] of [...byKey].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const r = checkKey(ops, maxStepsPerKey);
    if (r === false) return { ok: false, badKey: key, badOps: ops };
    if (r === 'unknown') unknown = true;
  }
  return { ok: unknown ? 'unknown' : true };
}

/** A readable rendering of operations for failure messages. */
export function formatOps(ops: KvOp[]): string {
  return ops
    .slice()
    .sort((a, b) => a.call - b.call)
    .map((o) => `  c${o.client} [${o.call}, ${o.ret === Infinity ? '∞' : o.ret}] ${o.kind}(${o.key}${o.value !== undefined ? ', ' + JSON.stringify(o.value) : ''})${o.kind === 'get' ? ' -> ' + JSON.stringify(o.output) : ''}`)
    .join('\n');
}
