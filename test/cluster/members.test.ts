/**
 * Runtime membership with real processes: three `proofkv serve` members, then
 * 1. a 4th member laid out by `proofkv cluster add`, started with `serve --join`, added through
 *    `POST /v1/cluster/members` (learner), caught up from the log and promoted: it serves proofs
 *    byte-identical to the others' at the same checkpoint, the certified signer set has 4
 *    members and quorum 3, its signature counts (a checkpoint is certified with one original
 *    member down), and an SDK that trusted only the 3 original keys follows the set change;
 * 2. a member removed: demoted to learner first (202), then removed once that signer-set change
 *    is certified (the set shrinks; the removed node stops serving writes);
 * 3. a member replaced (add + remove), followed again by an SDK trusting the original keys; the
 *    new member is laid out from a cluster.json that no longer lists the member removed in 2, and
 *    still agrees with the others (it learns the initial members' keys from the log).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProofKVClient, type VerifiedCheckpoint } from '../../client-sdk/index.js';
import { addMemberRemote, adminRequest, clusterStatus, removeMemberRemote } from '../../server/cli/cluster.js';
import { freePortRange } from '../../scripts/local_cluster.js';
import { ProcessCluster } from './harness.js';

const te = new TextEncoder();
const td = new TextDecoder();
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('runtime membership: add, remove, replace', () => {
  let cluster: ProcessCluster;
  let originalKeys: Uint8Array[];
  /** One client that trusted the three original keys (quorum 2) and follows every set change. */
  let follower: ProofKVClient;

  beforeAll(async () => {
    // Checkpoints only when the test asks (see certify): each set change is then certified by itself.
    cluster = await ProcessCluster.start(3, ['--checkpoint-interval', '0', '--checkpoint-writes', '0']);
    originalKeys = cluster.publicKeys;
    follower = new ProofKVClient({ endpoints: cluster.members.map((m) => m.url), trust: { publicKeys: originalKeys, quorum: 2 }, retries: 40, retryDelayMs: 100, timeoutMs: 8000, onWarning: () => {} });
  }, 120_000);
  afterAll(async () => {
    await cluster?.close();
  });

  /** A new client over the given members that trusts `keys` (default: the three original keys), quorum 2. */
  const clientOf = (ids: number[], keys = originalKeys) =>
    new ProofKVClient({ endpoints: ids.map((id) => cluster.member(id).url), trust: { publicKeys: keys, quorum: 2 }, retries: 40, retryDelayMs: 100, timeoutMs: 8000, onWarning: () => {} });

  /**
   * Asks for a checkpoint until one is certified and accepted (bounded). A head after a signer-set
   * change can be certified while the change's own certificate is still gathering the old set's
   * signatures (cosign entries that follow in the log): the walk then fails with QUORUM_NOT_MET
   * and changes nothing; asking again once the signatures are in succeeds.
   */
  async function certify(client: ProofKVClient): Promise<VerifiedCheckpoint> {
    const until = Date.now() + 40_000;
    for (;;) {
      try {
        return await client.createCheckpoint();
      } catch (err) {
        const e = err as { code?: string; reason?: string };
        const again = e.code === 'CHECKPOINT_UNAVAILABLE' || e.code === 'UNAVAILABLE' || e.reason === 'QUORUM_NOT_MET';
        if (!again || Date.now() > until) throw err;
        await sleep(200);
      }
    }
  }

  /** Retries an admin request while it answers 503 or 409 (leader changes, catch-up), bounded. */
  async function admin(endpointId: number, method: string, route: string, body?: unknown): Promise<any> {
    const until = Date.now() + 30_000;
    for (;;) {
      try {
        return await adminRequest(cluster.member(endpointId).url, method, route, undefined, body);
      } catch (err) {
        const code = (err as { code?: string }).code;
        if ((code !== 'UNAVAILABLE' && code !== 'MEMBERSHIP_CONFLICT' && code !== 'MEMBERSHIP_PENDING') || Date.now() > until) throw err;
        await sleep(250);
      }
    }
  }

  /** Waits (bounded) until member `id` serves a certified head of at least `size` checkpoints. */
  async function servesHead(id: number, size: number): Promise<void> {
    const until = Date.now() + 30_000;
    let seen = 0;
    while (Date.now() < until) {
      const r = await fetch(`${cluster.member(id).url}/v1/checkpoints/latest`, { headers: { Accept: 'application/json' } }).catch(() => undefined);
      seen = r?.ok ? ((await r.json()) as { head: { size: number } }).head.size : 0;
      if (seen >= size) return;
      await sleep(100);
    }
    throw new Error(`member ${id} serves a head of ${seen} checkpoints, not ${size}, after 30 s; member: ${JSON.stringify((await cluster.status(id))?.cluster)}`);
  }

  const members = async (via: number) => (await admin(via, 'GET', '/v1/cluster/members')).members as Array<{ id: number; role: string; publicKey: string }>;

  /** The raw proof of `key` from every member in `ids`, once they all serve the same certified head (bounded). */
  async function sameProofs(ids: number[], key: string): Promise<string[]> {
    const until = Date.now() + 30_000;
    let proofs: string[] = [];
    while (Date.now() < until) {
      proofs = await Promise.all(
        ids.map(async (id) => {
          const r = await fetch(`${cluster.member(id).url}/v1/kv/${encodeURIComponent(key)}/proof`, { headers: { Accept: 'application/json' } });
          return r.ok ? ((await r.json()) as { proof: string }).proof : `status ${r.status}`;
        }),
      );
      if (new Set(proofs).size === 1) break;
      await sleep(200);
    }
    return proofs;
  }

  it('adds a 4th member: learner, caught up, promoted; identical proofs; its signature counts; the SDK follows', async () => {
    const client = follower;
    for (let i = 0; i < 50; i++) await client.put(te.encode(`a/${i}`), te.encode(`v${i}`));
    const first = await certify(client);
    expect(first.signerSet?.members).toHaveLength(3);

    const base = await freePortRange(2);
    const m4 = await cluster.joinMember(4, base, base + 1);
    const leader = await cluster.leader();
    // A member not in the file yet is refused and nothing changes.
    await expect(adminRequest(cluster.member(leader).url, 'POST', '/v1/cluster/members', undefined, { id: 4, clientUrl: m4.clientUrl, peerUrl: m4.clientUrl, publicKey: hex(m4.publicKey) })).rejects.toMatchObject({ code: 'MEMBERSHIP_CONFLICT' });
    // Malformed requests are refused and change nothing.
    const url = cluster.member(leader).url;
    const good = { id: 4, clientUrl: m4.clientUrl, peerUrl: m4.peerUrl, publicKey: hex(m4.publicKey) };
    for (const bad of [{ ...good, publicKey: 'zz' }, { ...good, id: 0 }, { ...good, clientUrl: 'ftp://x:1' }, { ...good, extra: 1 }]) {
      await expect(adminRequest(url, 'POST', '/v1/cluster/members', undefined, bad)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    }
    await expect(adminRequest(url, 'POST', '/v1/cluster/members/4/promote', undefined)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(adminRequest(url, 'DELETE', '/v1/cluster/members/x1', undefined)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect((await members(leader)).map((m) => m.id)).toEqual([1, 2, 3]);
    // Learner, catch-up, promotion (the CLI's add-member).
    const v = await addMemberRemote(cluster.member(leader).url, m4, undefined, 60_000);
    expect(v.role).toBe('voter');
    const after = await members(leader);
    expect(after.map((m) => [m.id, m.role])).toEqual([[1, 'voter'], [2, 'voter'], [3, 'voter'], [4, 'voter']]);
    expect(after.find((m) => m.id === 4)!.publicKey).toBe(hex(m4.publicKey));

    for (let i = 50; i < 80; i++) await client.put(te.encode(`a/${i}`), te.encode(`v${i}`));
    const cp = await certify(client);
    // The client followed the set change from the three keys it trusted.
    expect(cp.signerSet?.quorum).toBe(3);
    expect(cp.signerSet?.members.map((m) => m.id)).toEqual([1, 2, 3, 4]);
    expect(hex(cp.signerSet!.members[3].publicKey)).toBe(hex(m4.publicKey));

    // The new member serves proofs byte-identical to the others' at the same checkpoint.
    const proofs = await sameProofs([1, 2, 3, 4], 'a%2F7');
    expect(proofs[0]).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(new Set(proofs).size).toBe(1);
    // A client that knows only the new member and the original keys verifies its proofs.
    await servesHead(4, cp.head.size);
    const only4 = clientOf([4]);
    const got = await only4.verifiedGet(te.encode('a/77'));
    expect(got.value && td.decode(got.value)).toBe('v77');
    expect((await only4.checkpoint()).signerSet?.members).toHaveLength(4);

    // Its signature counts: with one original follower down, 3 of 4 signatures need member 4's.
    const down = [1, 2, 3].find((id) => id !== leader)!;
    await cluster.stopMember(down, 'SIGKILL');
    const survivors = [1, 2, 3, 4].filter((id) => id !== down);
    const c2 = clientOf(survivors);
    await c2.put(te.encode('a/while-down'), te.encode('x'));
    const cp2 = await certify(c2);
    expect(cp2.signers.map(hex)).toContain(hex(m4.publicKey));
    expect(cp2.signers.map(hex)).not.toContain(hex(originalKeys[down - 1]));
    expect(cp2.signers.length).toBeGreaterThanOrEqual(3);
    await cluster.startMember(down);
  }, 240_000);

  it('removes a member: the signer set shrinks and the removed node serves no writes', async () => {
    const leader = await cluster.leader();
    // Remove an original member other than the leader, asking another member.
    const gone = [1, 2, 3].find((id) => id !== leader)!;
    const via = [1, 2, 3, 4].find((id) => id !== gone && id !== leader)!;
    // A member cannot remove itself.
    await expect(adminRequest(cluster.member(gone).url, 'DELETE', `/v1/cluster/members/${gone}`, undefined)).rejects.toMatchObject({ code: 'MEMBERSHIP_CONFLICT' });
    // A voter leaves in two steps: demoted to learner (202: out of the signer set from the next
    // checkpoint, which it still applies and signs), then removed by a request once that change is
    // certified (204; 409 MEMBERSHIP_PENDING before, which `admin` asks again after).
    const demoted = await admin(via, 'DELETE', `/v1/cluster/members/${gone}`);
    expect(demoted).toMatchObject({ id: gone, role: 'learner' });
    expect((await members(via)).find((m) => m.id === gone)?.role).toBe('learner');
    expect(await admin(via, 'DELETE', `/v1/cluster/members/${gone}`)).toBeUndefined();
    expect((await members(via)).map((m) => m.id)).toEqual([1, 2, 3, 4].filter((id) => id !== gone));
    expect((await admin(via, 'GET', '/v1/cluster/members')) as { removed: number[] }).toMatchObject({ removed: [gone] });
    // A removed member's id is never used again, even with new URLs and a new key (etcd's rule).
    const again = { id: gone, clientUrl: 'http://127.0.0.1:1', peerUrl: 'http://127.0.0.1:2', publicKey: hex(new Uint8Array(32).fill(77)) };
    await expect(adminRequest(cluster.member(via).url, 'POST', '/v1/cluster/members', undefined, again)).rejects.toMatchObject({ code: 'MEMBERSHIP_CONFLICT', message: expect.stringContaining('never used again') });

    const rest = [1, 2, 3, 4].filter((id) => id !== gone);
    await follower.put(te.encode('b/1'), te.encode('after-remove'));
    const cp = await certify(follower);
    expect(cp.signerSet?.members.map((m) => m.id)).toEqual(rest);
    expect(cp.signerSet?.quorum).toBe(2);

    // The removed node no longer takes writes (it is out of the group: 503).
    const until = Date.now() + 30_000;
    let status = 0;
    while (Date.now() < until) {
      const r = await fetch(`${cluster.member(gone).url}/v1/kv/b%2Fremoved`, { method: 'PUT', body: 'x', headers: { 'Content-Type': 'application/octet-stream' }, signal: AbortSignal.timeout(10_000) }).catch(() => undefined);
      status = r?.status ?? 0;
      if (status === 503) break;
      await sleep(200);
    }
    expect(status).toBe(503);
    const check = clientOf(rest);
    expect(await check.get(te.encode('b/removed'))).toBeUndefined();
    await cluster.stopMember(gone, 'SIGTERM');
  }, 180_000);

  it('replaces a member (add 5, remove another) and an SDK trusting the original keys follows', async () => {
    const live = (await members((await cluster.leader()))).map((m) => m.id);
    const leader = await cluster.leader();
    // The operator deletes the original member removed above from cluster.json before laying out
    // member 5: the joiner must learn that member's key from the log (the bootstrap registry
    // entries), or its checkpoints' signer sets differ from the others' and it diverges.
    const removed = [1, 2, 3].filter((id) => !live.includes(id));
    expect(removed).toHaveLength(1);
    const file = path.join(cluster.dir, 'cluster.json');
    const json = JSON.parse(fs.readFileSync(file, 'utf8')) as { members: Array<{ id: number }> };
    fs.writeFileSync(file, JSON.stringify({ ...json, members: json.members.filter((m) => m.id !== removed[0]) }, null, 2));
    const base = await freePortRange(2);
    const m5 = await cluster.joinMember(5, base, base + 1);
    await addMemberRemote(cluster.member(leader).url, m5, undefined, 60_000);
    const old = live.find((id) => id !== leader && id !== 4)!;
    const via = live.find((id) => id !== old)!;
    // Asked right after the promotion, the removal may wait for that change's certificate
    // (MEMBERSHIP_PENDING); the CLI's remove-member asks again, through the demotion, until it is done.
    await removeMemberRemote(cluster.member(via).url, old, undefined, 60_000);
    const now = live.filter((id) => id !== old).concat(5).sort((a, b) => a - b);
    expect((await members(via)).map((m) => [m.id, m.role])).toEqual(now.map((id) => [id, 'voter']));
    await cluster.stopMember(old, 'SIGTERM');

    await follower.put(te.encode('c/1'), te.encode('replaced'));
    const cp = await certify(follower);
    // The client that started from the three original keys followed every change.
    expect(cp.signerSet?.members.map((m) => m.id)).toEqual(now);
    expect(cp.signerSet?.members.filter((m) => originalKeys.some((k) => hex(k) === hex(m.publicKey)))).toHaveLength(1);
    // A new client is given the current members' keys.
    const only5 = clientOf([5], cp.signerSet!.members.map((m) => m.publicKey));
    await servesHead(5, cp.head.size);
    const got = await only5.verifiedGet(te.encode('c/1')).catch(async (err: unknown) => {
      // What the member says of itself, to tell a lagging member from a stuck one.
      const put = await fetch(`${cluster.member(5).url}/v1/kv/probe`, { method: 'PUT', body: 'x', headers: { 'Content-Type': 'application/octet-stream' } });
      throw new Error(`${(err as Error).message}; member 5: ${JSON.stringify((await cluster.status(5))?.cluster)}; PUT: ${put.status} ${await put.text()}`);
    });
    expect(got.value && td.decode(got.value)).toBe('replaced');
    const old1 = await only5.verifiedGet(te.encode('a/3'));
    expect(old1.value && td.decode(old1.value)).toBe('v3');
    const proofs = await sameProofs(now, 'c%2F1');
    expect(new Set(proofs).size).toBe(1);
    // `proofkv cluster status`: every member's role, term, leader, indexes and certified head.
    const lines = await clusterStatus(now.map((id) => cluster.member(id).url), undefined);
    expect(lines.map((l) => l.id)).toEqual(now);
    const lead = await cluster.leader();
    for (const l of lines) {
      expect(l.error).toBeUndefined();
      expect(l.role).toBe(l.id === lead ? 'leader' : 'follower');
      expect(l.leader).toBe(lead);
      expect(l.applied).toBeGreaterThan(0);
      expect(l.checkpointSize).toBeGreaterThanOrEqual(cp.head.size);
      expect(l.checkpointRoot).toMatch(/^[0-9a-f]{16}$/);
      expect(l.divergence).toBeUndefined();
      // Every change is certified: nothing would make a membership change wait.
      expect(l.setChangePending).toBeUndefined();
    }
  }, 240_000);
});
