/**
 * Three `proofkv serve` processes; an SDK client with every endpoint and quorum trust, over
 * streamFetch, writes and does verified reads while the member it talks to (the leader it started
 * with) is killed with SIGKILL and restarted. The killed member's stream connection fails its
 * requests like a network error, the SDK fails over to the next endpoint (over a stream connection
 * to that member) with the same `(clientId, seq)`, and afterwards: nothing acknowledged is lost,
 * every verified read verified, no retry applied twice (each key has one version), and the
 * key-value requests went over the stream.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProofKVClient, type VerifiedGetResult } from '../../client-sdk/index.js';
import { streamFetch, type StreamFetch } from '../../client-sdk/stream_fetch.js';
import { firstCheckpoint, ProcessCluster } from '../cluster/harness.js';

const te = new TextEncoder();
const td = new TextDecoder();

describe('three processes over the stream: the member the client talks to (the leader) is killed and restarted', () => {
  let cluster: ProcessCluster;
  let sf: StreamFetch;

  beforeAll(async () => {
    cluster = await ProcessCluster.start(3, ['--checkpoint-interval', '300', '--checkpoint-writes', '0']);
    sf = streamFetch();
  }, 120_000);
  afterAll(async () => {
    sf?.close();
    await cluster?.close();
  });

  it('fails over through streamFetch: no acknowledged write lost, none applied twice, every verified read verifies', async () => {
    // The leader first: the client's stream is to the member that is killed.
    const first = await cluster.leader();
    const urlOf = (id: number) => cluster.member(id).url;
    const client = new ProofKVClient({
      endpoints: [urlOf(first), ...cluster.members.filter((m) => m.id !== first).map((m) => m.url)],
      trust: { publicKeys: cluster.publicKeys, quorum: 2 },
      retries: 40,
      retryDelayMs: 50,
      timeoutMs: 5000,
      fetch: sf,
      onWarning: () => {},
    });
    await client.put('first', 'write');
    await firstCheckpoint(client);
    const acked = new Map<string, string>();
    const verified: VerifiedGetResult[] = [];
    let stop = false;
    let n = 0;
    const writer = (async () => {
      while (!stop && n < 2000) {
        const key = `sk/${String(n).padStart(5, '0')}`;
        n++;
        await client.put(te.encode(key), te.encode(`v-${key}`));
        acked.set(key, `v-${key}`);
      }
    })();
    const reader = (async () => {
      while (!stop) {
        const keys = [...acked.keys()];
        if (keys.length > 0) {
          const key = keys[Math.floor(Math.random() * keys.length)];
          const r = await client.verifiedGet(te.encode(key));
          verified.push(r);
          if (r.entry) expect(td.decode(r.entry.value)).toBe(acked.get(key));
        }
        await new Promise((res) => setTimeout(res, 20));
      }
    })();

    await new Promise((res) => setTimeout(res, 1500));
    // The member the client is talking to right now is killed (the leader it started with, unless
    // it moved meanwhile): its stream connection fails under the client's requests.
    const victim = cluster.members.find((m) => m.url === client.transport.preferred)!.id;
    const before = acked.size;
    await cluster.stopMember(victim, 'SIGKILL');
    expect(await cluster.leader()).not.toBe(victim);
    const until = Date.now() + 30_000;
    while (acked.size < before + 20 && Date.now() < until) await new Promise((res) => setTimeout(res, 50));
    expect(acked.size).toBeGreaterThanOrEqual(before + 20);
    await cluster.startMember(victim);
    await new Promise((res) => setTimeout(res, 1000));
    stop = true;
    await Promise.all([writer, reader]);

    expect(verified.length).toBeGreaterThan(10);
    const stats = sf.stats();
    // The client moved off the killed member.
    expect(client.transport.preferred).not.toBe(urlOf(victim));
    // Writes and proofs went over the stream, to more than one member (the killed one's connection
    // failed and its requests moved on).
    expect(stats.streamed).toBeGreaterThanOrEqual(acked.size + verified.length);
    expect(stats.opened).toBeGreaterThanOrEqual(2);

    // Every member has every acknowledged write (read over HTTP), and each key one version.
    for (const m of cluster.members) {
      const c = new ProofKVClient({ endpoints: [m.url], trust: { publicKeys: cluster.publicKeys, quorum: 2 }, retries: 20, retryDelayMs: 100, onWarning: () => {} });
      let i = 0;
      for (const [key, value] of acked) {
        if (i++ % 5 !== 0) continue;
        const e = await c.get(te.encode(key));
        expect(e && td.decode(e.value), `member ${m.id} key ${key}`).toBe(value);
      }
    }
    for (const [key] of acked) {
      const h = await client.history(te.encode(key));
      expect(h.entries.map((e) => e.version), key).toEqual([1]);
    }
  }, 300_000);
});
