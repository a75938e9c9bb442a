/**
 * Commit times end to end: the node stamps each write, the HTTP answers show `time` and
 * `timeIso`, and `verifiedHistory` / `history` / `verifiedScan` filter by `since` / `until`
 * (ms, Date or ISO 8601), the verified ones proven complete for the window.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromBase64Url, ProofKVClient } from '../../client-sdk/index.js';
import { startServer, type ServerProc } from './helpers.js';

let server: ServerProc;
let publicKey: Uint8Array;

beforeAll(async () => {
  server = await startServer({ env: { PROOFKV_TOKENS: 'adm:admin' }, args: ['--checkpoint-interval', '200'] });
  const status = await new ProofKVClient({ endpoints: [server.url], token: 'adm', trust: { tofu: true } }).status();
  publicKey = fromBase64Url(status.publicKey as string);
});
afterAll(async () => {
  await server?.stop();
});

const client = () => new ProofKVClient({ endpoints: [server.url], token: 'adm', trust: { publicKeys: [publicKey], quorum: 1 }, retryDelayMs: 10 });
const pause = () => new Promise((r) => setTimeout(r, 3));

describe('commit times through the node and the SDK', () => {
  it('writes get increasing times; history windows (ms, Date, ISO) are verified and filtered', async () => {
    const c = client();
    const times: number[] = [];
    for (let v = 1; v <= 8; v++) {
      const w = await c.put('t/audit', `v${v}`);
      expect(w.version).toBe(v);
      times.push(w.time);
      await pause();
    }
    for (let i = 1; i < times.length; i++) expect(times[i]).toBeGreaterThanOrEqual(times[i - 1]);
    await c.createCheckpoint();
    const all = await c.verifiedHistory('t/audit');
    expect(all.entries.map((e) => e.time)).toEqual(times);
    // The window [time of v3, time of v6]: exactly the versions whose times fall in it.
    const since = times[2];
    const until = times[5];
    const want = times.map((t, i) => (t >= since && t <= until ? i + 1 : 0)).filter((v) => v > 0);
    for (const w of [{ since, until }, { since: new Date(since), until: new Date(until) }, { since: new Date(since).toISOString(), until: new Date(until).toISOString() }]) {
      const h = await c.verifiedHistory('t/audit', w);
      expect(h.entries.map((e) => e.version)).toEqual(want);
      const plain = await c.history('t/audit', w);
      expect(plain.entries.map((e) => e.version)).toEqual(want);
    }
    // Only the lower end, only the upper end.
    expect((await c.verifiedHistory('t/audit', { since: times[6] })).entries.map((e) => e.time).every((t) => t >= times[6])).toBe(true);
    expect((await c.verifiedHistory('t/audit', { until: times[0] })).entries.map((e) => e.version)).toEqual(times.filter((t) => t <= times[0]).map((_, i) => i + 1));
    // A window after every write: nothing, proven.
    expect((await c.verifiedHistory('t/audit', { since: times[7] + 1 })).entries).toEqual([]);
    await expect(c.verifiedHistory('t/audit', { since: 'yesterday' })).rejects.toThrow(RangeError);
    await expect(c.verifiedHistory('t/audit', { since: 10, until: 9 })).rejects.toThrow(RangeError);
  });

  it('scans keep the keys whose newest version was committed in the window', async () => {
    const c = client();
    const a = await c.put('s/a', '1');
    await pause();
    const b = await c.put('s/b', '1');
    await pause();
    const d = await c.put('s/c', '1');
    await c.createCheckpoint();
    const keys: string[] = [];
    for await (const page of c.verifiedScan({ prefix: 's/' }, { since: b.time, until: d.time })) keys.push(...page.entries.map((e) => new TextDecoder().decode(e.key)));
    const want = [['s/a', a.time], ['s/b', b.time], ['s/c', d.time]].filter(([, t]) => (t as number) >= b.time && (t as number) <= d.time).map(([k]) => k);
    expect(keys).toEqual(want);
  });
});
