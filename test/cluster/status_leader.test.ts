/**
 * `/v1/status` and `/readyz` tell whether a member can take a write now: a member that knows no
 * leader (two of three members killed) shows `writes.state` `no-leader` and `/readyz` 503 with
 * the reason `no leader known`, and refuses a write as retryable; once a majority is back and a
 * leader elected it shows `ok` again, and a write sent after `ok` is taken at the first attempt.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProofKVClient } from '../../client-sdk/index.js';
import { streamFetch } from '../../client-sdk/stream_fetch.js';
import { ProcessCluster } from './harness.js';

async function until<T>(f: () => Promise<T | undefined | false>, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function readyz(url: string): Promise<{ status: number; body: { ready: boolean; reasons?: string[] } }> {
  const r = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2000) });
  return { status: r.status, body: (await r.json()) as { ready: boolean; reasons?: string[] } };
}

async function put(url: string, key: string): Promise<Response> {
  return fetch(`${url}/v1/kv/${encodeURIComponent(key)}`, { method: 'PUT', body: 'v', headers: { 'content-type': 'application/octet-stream' }, signal: AbortSignal.timeout(5000) });
}

describe('status and readiness say whether a leader is known', () => {
  let cluster: ProcessCluster;

  beforeAll(async () => {
    cluster = await ProcessCluster.start(3, ['--checkpoint-interval', '200', '--checkpoint-writes', '0']);
  }, 120_000);
  afterAll(async () => {
    await cluster?.close();
  });

  it('a follower names the leader on every answer, over HTTP and over the stream; the SDK then sends its requests to the leader', async () => {
    const leader = await cluster.leader();
    for (const m of cluster.members) await until(async () => (await cluster.status(m.id))?.writes.state === 'ok');
    const leaderUrl = cluster.member(leader).url;
    const follower = cluster.members.find((m) => m.id !== leader)!;
    // HTTP: answers of every kind from the follower (a write it relays, a read, a 404) name the leader; the leader's name nobody.
    const fromFollower = [await put(follower.url, 'hint'), await fetch(`${follower.url}/v1/kv/hint`), await fetch(`${follower.url}/v1/kv/nothing-here`)];
    expect(fromFollower.map((r) => r.status)).toEqual([200, 200, 404]);
    for (const r of fromFollower) expect(r.headers.get('proofkv-leader')).toBe(leaderUrl);
    const fromLeader = await put(leaderUrl, 'hint');
    expect(fromLeader.status).toBe(200);
    expect(fromLeader.headers.get('proofkv-leader')).toBeNull();
    // The stream: the same header in the answer frame; the SDK over it starts on the follower and moves.
    const sf = streamFetch();
    try {
      const viaStream = await sf(`${follower.url}/v1/kv/hint`, { method: 'GET', headers: { accept: 'application/json' } });
      expect(viaStream.status).toBe(200);
      expect(viaStream.headers.get('proofkv-leader')).toBe(leaderUrl);
      const ids: string[] = [];
      const client = new ProofKVClient({ endpoints: [follower.url, ...cluster.members.filter((m) => m.id !== follower.id).map((m) => m.url)], fetch: sf, trust: { publicKeys: cluster.publicKeys, quorum: 2 }, onWarning: () => {} });
      for (let i = 0; i < 3; i++) ids.push((await client.transport.request({ method: 'PUT', path: `/v1/kv/sdk${i}`, body: { value: 'dg' } })).endpoint);
      expect(client.transport.preferred).toBe(leaderUrl);
      expect(ids).toEqual([follower.url, leaderUrl, leaderUrl]);
    } finally {
      sf.close();
    }
  }, 120_000);

  it('no-leader while a lone survivor elects in vain; ok, and writes taken, once a majority is back', async () => {
    const leader = await cluster.leader();
    for (const m of cluster.members) await until(async () => (await cluster.status(m.id))?.writes.state === 'ok');
    const survivor = cluster.members.find((m) => m.id !== leader)!.id;
    const other = cluster.members.find((m) => m.id !== leader && m.id !== survivor)!.id;
    const url = cluster.member(survivor).url;
    expect((await put(url, 'before')).status).toBe(200);

    await cluster.stopMember(leader);
    await cluster.stopMember(other);
    // The survivor's election timeout passes, it campaigns and can never win alone.
    const st = await until(async () => {
      const s = await cluster.status(survivor);
      return s?.writes.state === 'no-leader' ? s : undefined;
    });
    expect(st.cluster.leader).toBe(0);
    expect(st.writes).toEqual({ state: 'no-leader' });
    const rz = await readyz(url);
    expect(rz.status).toBe(503);
    expect(rz.body.reasons).toContain('no leader known');
    const refused = await put(url, 'during');
    expect(refused.status).toBe(503);

    await cluster.startMember(other);
    await until(async () => (await cluster.status(survivor))?.writes.state === 'ok');
    // `ok` means a leader is known: the write is taken now, not after a retry.
    expect((await put(url, 'after')).status).toBe(200);
    const got = await fetch(`${url}/v1/kv/after`);
    expect(got.status).toBe(200);
    expect((await readyz(url)).body.reasons ?? []).not.toContain('no leader known');
  }, 120_000);
});
