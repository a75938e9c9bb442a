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
 * Checks one key's operations (all on the same key); `maxSteps` bounds the search.
 * Initial value is the empty string.
 */
export function checkKey(ops: KvOp[], maxSteps = 5_000_000): boolean | 'unknown' {
  // Indeterminate gets say nothing.
  const list = ops.filter((o) => !(o.kind === 'get' && (o.ret === Infinity || o.output === undefined)));
  if (list.length === 0) return true;
  const events: Node[] = [];
  list.forEach((o, i) => {
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

  const words = Math.ceil(list.length / 32);
  const linearized = new Uint32Array(words);
  const cache = new Set<string>();
  const stack: Array<{ entry: Node; state: string }> = [];
  let state = '';
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
      const next = stepModel(state, list[entry.op]);
      if (next !== undefined) {
        linearized[entry.op >> 5] |= 1 << (entry.op & 31);
        const key = linearized.join(',') + '|' + next;
        if (!cache.has(key)) {
          cache.add(key);
          stack.push({ entry, state });
          state = next;
          lift(entry);
          entry = head.next;
          continue;
        }
        linearized[entry.op >> 5] &= ~(1 << (entry.op & 31));
      }
      entry = entry.next;
    } else {
      // A return whose call is not linearized yet: undo the last choice.
      const top = stack.pop();
      if (!top) return false;
      state = top.state;
      linearized[top.entry.op >> 5] &= ~(1 << (top.entry.op & 31));
      unlift(top.entry);
      entry = top.entry.next;
    }
  }
  return true;
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
