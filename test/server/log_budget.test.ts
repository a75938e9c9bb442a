import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { LogBudget } from '../../server/log_budget.js';
import { startLocalNode } from './harness.js';
import { OP, encodeRequest, isClient, openStream, type StreamAnswer } from './stream_client.js';

describe('LogBudget', () => {
  it('lets a burst of perSecond lines through, then one per 1/perSecond s, and the next line carries the count it stood for', () => {
    let now = 0;
    const b = new LogBudget(10, () => now);
    const taken = Array.from({ length: 25 }, () => b.take());
    expect(taken.filter((t) => t !== undefined)).toEqual(Array(10).fill(0));
    now += 100; // one token back
    expect(b.take()).toBe(15);
    expect(b.take()).toBeUndefined();
    now += 10_000; // refills only to the burst
    expect(Array.from({ length: 12 }, () => b.take()).filter((t) => t !== undefined)).toEqual([1, ...Array(9).fill(0)]);
  });

  it('refuses a rate below one line a second', () => {
    expect(() => new LogBudget(0)).toThrow(RangeError);
    expect(() => new LogBudget(Number.NaN)).toThrow(RangeError);
  });
});

describe('refused requests and the log (attacker: 12-byte stream frames, each a ~200-byte log line)', () => {
  it('a flood of refused stream requests is counted whole but logged at most at the budget; a later line says how many it stood for', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'warn' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
    const node = await startLocalNode(undefined, undefined, { logger });
    try {
      const c = await openStream(node.url);
      if (!isClient(c)) throw new Error('handshake refused');
      const N = 2000;
      // An empty key is refused (400 BAD_REQUEST or INVALID_ARGUMENT) by the route's checks, before any read.
      const last = c.next((a: StreamAnswer) => a.id === N);
      c.write(Buffer.concat(Array.from({ length: N }, (_, i) => encodeRequest({ id: i + 1, op: OP.GET, key: '' }))));
      expect((await last).status).toBe(400);
      const refusedLines = () => lines.filter((l) => l.msg === 'refused request');
      const during = refusedLines().length;
      expect(during).toBeGreaterThan(0);
      expect(during).toBeLessThan(N);
      const metrics = await (await fetch(`${node.url}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
      const code = String(refusedLines()[0].code).toLowerCase();
      expect(Number(new RegExp(`^proofkv_refused_total\\{reason="${code}"\\} (\\d+)$`, 'm').exec(metrics)?.[1])).toBe(N);
      // After a second the budget has room again: the next refusal's line reports the ones left out.
      await new Promise((r) => setTimeout(r, 1100));
      expect((await c.request({ id: N + 1, op: OP.GET, key: '' })).status).toBe(400);
      const all = refusedLines();
      const suppressed = all.reduce((n, l) => n + (typeof l.suppressed === 'number' ? l.suppressed : 0), 0);
      expect(all.length + suppressed).toBe(N + 1);
      expect(suppressed).toBeGreaterThan(0);
      c.close();
    } finally {
      await node.shutdown('test');
    }
  }, 60_000);
});
