/**
 * The linearizability checker on its own: hand-made histories that are and are not
 * linearizable, indeterminate operations, and properties against histories generated from a
 * sequential model (linearizable by construction) and their mutations (not linearizable).
 */

import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { checkHistory, checkKey, type KvOp } from './linearizability.js';

const put = (client: number, key: string, value: string, call: number, ret: number): KvOp => ({ client, kind: 'put', key, value, call, ret });
const app = (client: number, key: string, value: string, call: number, ret: number): KvOp => ({ client, kind: 'append', key, value, call, ret });
const get = (client: number, key: string, output: string | undefined, call: number, ret: number): KvOp => ({ client, kind: 'get', key, output, call, ret });

describe('known histories', () => {
  test('sequential put then get', () => {
    expect(checkKey([put(0, 'x', 'a', 0, 1), get(1, 'x', 'a', 2, 3)])).toBe(true);
  });

  test('stale read after a completed write is a violation', () => {
    expect(checkKey([put(0, 'x', 'a', 0, 1), put(0, 'x', 'b', 2, 3), get(1, 'x', 'a', 4, 5)])).toBe(false);
  });

  test('a read concurrent with a write may see either value', () => {
    expect(checkKey([put(0, 'x', 'a', 0, 1), put(0, 'x', 'b', 2, 10), get(1, 'x', 'a', 3, 4)])).toBe(true);
    expect(checkKey([put(0, 'x', 'a', 0, 1), put(0, 'x', 'b', 2, 10), get(1, 'x', 'b', 3, 4)])).toBe(true);
  });

  test('two reads that disagree on order of concurrent writes (new-old inversion) are a violation', () => {
    // Reader 1 sees b then a; reader 2's reads are after... both writes overlap everything,
    // but reader 1 sees 'b' and later 'a' while reader 2 — strictly after reader 1's second
    // read — sees 'b' again: a and b cannot be ordered consistently.
    const h = [
      put(0, 'x', 'a', 0, 100), put(1, 'x', 'b', 0, 100),
      get(2, 'x', 'b', 10, 11), get(2, 'x', 'a', 12, 13), get(3, 'x', 'b', 14, 15),
    ];
    expect(checkKey(h)).toBe(false);
  });

  test('appends must appear in one order to every reader', () => {
    const base = [app(0, 'x', '1', 0, 50), app(1, 'x', '2', 0, 50)];
    expect(checkKey([...base, get(2, 'x', '12', 60, 61), get(3, 'x', '12', 62, 63)])).toBe(true);
    expect(checkKey([...base, get(2, 'x', '12', 60, 61), get(3, 'x', '21', 62, 63)])).toBe(false);
    expect(checkKey([...base, get(2, 'x', '1', 10, 11), get(3, 'x', '2', 12, 13)])).toBe(false);
  });

  test('a lost acknowledged write is a violation', () => {
    expect(checkKey([app(0, 'x', 'a', 0, 1), app(0, 'x', 'b', 2, 3), get(1, 'x', 'b', 4, 5)])).toBe(false);
  });

  test('a read of a value never written is a violation', () => {
    expect(checkKey([put(0, 'x', 'a', 0, 1), get(1, 'x', 'zzz', 0, 5)])).toBe(false);
  });

  test('the initial value is the empty string', () => {
    expect(checkKey([get(0, 'x', '', 0, 1)])).toBe(true);
    expect(checkKey([get(0, 'x', '', 5, 6), put(1, 'x', 'a', 0, 2)])).toBe(false);
  });

  test('a timed-out write may take effect late or never', () => {
    const timedOut = put(0, 'x', 'a', 0, Infinity);
    expect(checkKey([timedOut, get(1, 'x', '', 10, 11)])).toBe(true);
    expect(checkKey([timedOut, get(1, 'x', 'a', 10, 11)])).toBe(true);
    // ... but once seen, it cannot be unseen.
    expect(checkKey([timedOut, get(1, 'x', 'a', 10, 11), get(1, 'x', '', 12, 13)])).toBe(false);
  });

  test('a timed-out write cannot take effect before its call', () => {
    expect(checkKey([get(1, 'x', 'a', 0, 1), put(0, 'x', 'a', 5, Infinity)])).toBe(false);
  });

  test('a timed-out read constrains nothing', () => {
    expect(checkKey([put(0, 'x', 'a', 0, 1), get(1, 'x', undefined, 2, Infinity)])).toBe(true);
  });

  test('histories are partitioned by key', () => {
    const h = [put(0, 'x', 'a', 0, 1), put(0, 'y', 'b', 0, 1), get(1, 'x', 'a', 2, 3), get(1, 'y', 'a', 2, 3)];
    const r = checkHistory(h);
    expect(r.ok).toBe(false);
    expect(r.badKey).toBe('y');
    expect(checkHistory(h.slice(0, 3)).ok).toBe(true);
  });

  test('a call may not follow its own return', () => {
    expect(() => checkHistory([put(0, 'x', 'a', 5, 1)])).toThrow(RangeError);
  });

  test('the search gives up rather than running forever', () => {
    // Many fully concurrent appends with one read that matches no order.
    const h: KvOp[] = [];
    for (let i = 0; i < 8; i++) h.push(app(i, 'x', String.fromCharCode(97 + i), 0, 100));
    h.push(get(99, 'x', 'nope', 101, 102));
    expect(checkKey(h, 100)).toBe('unknown');
    expect(checkKey(h)).toBe(false);
  });
});

/** A random sequential execution, stretched into overlapping intervals that keep its order valid. */
const arbHistory = fc
  .array(
    fc.record({
      kind: fc.constantFrom('put', 'get', 'append'),
      key: fc.constantFrom('a', 'b'),
      value: fc.constantFrom('1', '2', '3'),
      widenBefore: fc.nat(30),
      widenAfter: fc.nat(30),
      timeout: fc.boolean(),
    }),
    { minLength: 1, maxLength: 24 },
  )
  .map((steps) => {
    const state = new Map<string, string>();
    const ops: KvOp[] = [];
    steps.forEach((s, i) => {
      // The operation takes effect at instant 100*i; its interval contains that instant.
      const at = 100 * i;
      const call = at - s.widenBefore;
      const ret = s.timeout && s.kind !== 'get' ? Infinity : at + s.widenAfter;
      const cur = state.get(s.key) ?? '';
      if (s.kind === 'put') state.set(s.key, s.value);
      if (s.kind === 'append') state.set(s.key, cur + s.value);
      ops.push({ client: i, kind: s.kind as KvOp['kind'], key: s.key, value: s.kind === 'get' ? undefined : s.value, call, ret, output: s.kind === 'get' ? cur : undefined });
    });
    return ops;
  });

describe('properties', () => {
  test('histories generated from a sequential execution are linearizable', () => {
    fc.assert(fc.property(arbHistory, (h) => checkHistory(h).ok === true), { numRuns: 300, seed: 42 });
  });

  test('a get that returns a value no operation could have produced is caught', () => {
    fc.assert(
      fc.property(arbHistory, fc.nat(), (h, pick) => {
        const gets = h.map((o, i) => [o, i] as const).filter(([o]) => o.kind === 'get');
        fc.pre(gets.length > 0);
        const [o, i] = gets[pick % gets.length];
        const bad = h.slice();
        bad[i] = { ...o, output: (o.output ?? '') + 'X' }; // 'X' is never written
        return checkHistory(bad).ok === false;
      }),
      { numRuns: 300, seed: 43 },
    );
  });
});
