/**
 * The SDK over `streamFetch` against a node whose stream answer budget is full (docs/stream-protocol.md
 * § Bounds, "the node-wide budgets"): six raw connections that send 100 reads of a 256 KiB value each
 * and never read fill the node's 20 MiB; an SDK client's read then waits its turn on the node — no
 * error, no retry (retries 0), no change in the SDK — and is answered in its turn among the
 * connections, not after the 500 reads the others queued first (the first version of the budget
 * served those first: the SDK's read failed with ANSWER_TIMEOUT after 30 s).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryStateStore, ProofKVClient } from '../../client-sdk/index.js';
import { streamFetch, type StreamFetch } from '../../client-sdk/stream_fetch.js';
import type { ProofNode } from '../../server/node.js';
import { startLocalNode } from '../server/harness.js';
import { nonReaders, type StreamClient } from '../server/stream_client.js';

let node: ProofNode;
let sf: StreamFetch;
const attackers: StreamClient[] = [];

beforeAll(async () => {
  node = await startLocalNode(undefined, undefined, { edge: { maxStreamAnswerBytes: 20 * 1024 * 1024, maxStreamBufferedBytes: 64 * 1024 * 1024 }, drainTimeoutMs: 500 });
  sf = streamFetch();
});

afterAll(async () => {
  for (const c of attackers) c.close();
  sf?.close();
  await node?.shutdown('test');
});

describe('the SDK over streamFetch when the node stream budget is full', () => {
  it('a read waits its turn among the connections and is answered; the SDK sees no error', async () => {
    const c = new ProofKVClient({ endpoints: [node.url], trust: { tofu: true }, onWarning: () => {}, stateStore: new MemoryStateStore(), retries: 0, timeoutMs: 60_000, fetch: sf });
    await c.put('big', new Uint8Array(256 * 1024).fill(0x61));
    await c.put('small', 'hello');
    attackers.push(...(await nonReaders(node.url, 6, 100, 'big')));
    const budget = node.stream.budgets.answers;
    // A bound on the wait (until reads wait for the node's bytes), not a timing assertion.
    const end = Date.now() + 20_000;
    while (budget.waiting === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    expect(budget.waiting).toBeGreaterThan(0);
    const before = sf.stats().streamed;
    const e = await c.get('small');
    expect(new TextDecoder().decode(e!.value)).toBe('hello');
    expect(sf.stats().streamed).toBe(before + 1);
    expect(budget.stats.peak).toBeLessThanOrEqual(20 * 1024 * 1024);
    // Its connection was not cut (any cut ones are the stalled non-readers'), and the others still wait.
    expect(sf.stats().open).toBe(1);
    expect(sf.stats().opened).toBe(1);
  }, 90_000);
});
