/**
 * `--checkpoint-writes N` with N above `CHECKPOINT_WRITES_COUNT_STEPS`: the node counts the pending
 * writes once per N / 64 applied operations (server/node.ts), so the count must still start a
 * checkpoint when the N-th write is applied (N a multiple of the step) and never before.
 */
import { describe, expect, it } from 'vitest';
import { CHECKPOINT_WRITES_COUNT_STEPS } from '../../server/node.js';
import { call, json, startServer } from './harness.js';

const N = 2 * CHECKPOINT_WRITES_COUNT_STEPS; // counted every 2 operations

describe('checkpoint after N writes, counted in steps', () => {
  it(`takes no checkpoint before the ${N}th write and one right after it, twice`, async () => {
    const n = await startServer({ args: ['--checkpoint-interval', '0', '--checkpoint-writes', String(N)] });
    try {
      let seq = 0;
      for (let round = 1; round <= 2; round++) {
        for (let i = 0; i < N - 1; i++) seq = (await call(n.url, 'PUT', `/v1/kv/r${round}-${i}`, json({ valueUtf8: 'x' }))).body.seq;
        // N − 1 writes since the last checkpoint: below the threshold whenever it was counted.
        const before = (await call(n.url, 'GET', '/v1/status')).body;
        expect(before.lastSeq).toBe(seq);
        expect(before.lastCheckpoint?.checkpoint.seq ?? 0).toBe(round === 1 ? 0 : seq - (N - 1));
        seq = (await call(n.url, 'PUT', `/v1/kv/r${round}-last`, json({ valueUtf8: 'x' }))).body.seq;
        let covered = 0;
        for (let i = 0; i < 400 && covered < seq; i++) {
          covered = (await call(n.url, 'GET', '/v1/status')).body.lastCheckpoint?.checkpoint.seq ?? 0;
          if (covered < seq) await new Promise((r) => setTimeout(r, 25));
        }
        expect(covered).toBe(seq);
      }
    } finally {
      expect(await n.stop()).toBe(0);
    }
  });
});
