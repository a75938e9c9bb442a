/**
 * The node-wide byte budget of the stream (`server/stream/budget.ts`): bytes are granted while
 * they fit, in arrival order (a large request at the head is not passed by later small ones),
 * one request larger than the whole budget runs when nothing is held, a closed holder's waiters
 * are failed and leave the queue, and a holder whose unsent answers stalled is evicted only while
 * someone has waited `stallMs` (a clock passed in: no timing in the test).
 */
import { describe, expect, it } from 'vitest';
import { BudgetCancelled, ByteBudget, type BudgetHolder } from '../../server/stream/budget.js';

const holder = (stalled?: number): BudgetHolder & { evicted: number } => {
  const h = { evicted: 0, stalledSince: () => stalled, evict: () => void h.evicted++ };
  return h;
};

describe('ByteBudget', () => {
  it('grants while the bytes fit, then in arrival order; a large head is not passed by later small ones', async () => {
    const b = new ByteBudget(100, 1000);
    const h = holder();
    expect(b.take(60, h)).toBeUndefined();
    const order: string[] = [];
    const big = b.take(80, h)!;
    const small = b.take(10, h)!;
    expect(big).toBeInstanceOf(Promise);
    // 10 would fit (60 + 10), but the 80 before it waits: it waits too.
    expect(small).toBeInstanceOf(Promise);
    expect(b.tryTake(10)).toBe(false);
    void big.then(() => order.push('big'));
    void small.then(() => order.push('small'));
    b.release(60);
    await Promise.resolve();
    expect(order).toEqual(['big', 'small']);
    expect([b.used, b.waiting, b.stats.waits, b.stats.peak]).toEqual([90, 0, 2, 90]);
    b.release(90);
    expect(b.used).toBe(0);
    expect(() => b.release(1)).toThrow(/released more than it held/);
  });

  it('one request larger than the budget is granted when nothing is held, and only then', () => {
    const b = new ByteBudget(100, 1000);
    const h = holder();
    expect(b.take(500, h)).toBeUndefined();
    expect(b.tryTake(1)).toBe(false);
    b.release(500);
    expect(b.tryTake(1)).toBe(true);
    expect(b.tryTake(500)).toBe(false);
  });

  it('force counts bytes that exist already, past the capacity; later requests wait until they go', () => {
    const b = new ByteBudget(100, 1000);
    b.force(150);
    expect(b.used).toBe(150);
    expect(b.tryTake(1)).toBe(false);
    b.release(150);
    expect(b.tryTake(100)).toBe(true);
  });

  it('the waiters of an unregistered holder are failed and leave the queue; the next waiter is served', async () => {
    const b = new ByteBudget(100, 1000);
    const a = holder();
    const c = holder();
    b.register(a);
    b.register(c);
    expect(b.take(100, a)).toBeUndefined();
    const gone = b.take(50, c)!;
    const next = b.take(50, a)!;
    b.unregister(c);
    await expect(gone).rejects.toBeInstanceOf(BudgetCancelled);
    expect(b.waiting).toBe(1);
    b.release(50);
    await next;
    expect(b.used).toBe(100);
  });

  it('evicts a holder whose unsent answers stalled only once the queue head waited stallMs, and only stalled ones', () => {
    let now = 0;
    const b = new ByteBudget(100, 1000, () => now);
    const stalled = holder(0);
    const moving = holder(5500);
    const idle = holder(undefined);
    for (const h of [stalled, moving, idle]) b.register(h);
    expect(b.take(100, idle)).toBeUndefined();
    // Nobody waits: nothing is evicted however old the stall.
    now = 5000;
    b.evictStalled();
    expect(stalled.evicted).toBe(0);
    void b.take(10, idle);
    now = 5500;
    b.evictStalled();
    expect(stalled.evicted).toBe(0);
    now = 6000;
    b.evictStalled();
    expect([stalled.evicted, moving.evicted, idle.evicted, b.stats.evictions]).toEqual([1, 0, 0, 1]);
  });

  it('refuses a capacity or stall time under 1', () => {
    expect(() => new ByteBudget(0, 1)).toThrow(RangeError);
    expect(() => new ByteBudget(1, 0)).toThrow(RangeError);
  });
});
