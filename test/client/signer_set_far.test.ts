/**
 * A client configured with the initial keys follows signer-set changes more than 1024 checkpoints
 * back, through a real node and `GET /v1/checkpoints/set-changes` (docs/proofs.md §5.6).
 *
 * The node runs in process with the local write path; the test plays the other members: it takes
 * the checkpoints with the signer sets it chooses (`db.checkpoint({ signers })`) and adds the other
 * members' signatures as cosign commands, as a cluster's log would. The log:
 *
 *     0            S0 = {1: node, 2, 3} q2    certified by the node and member 2
 *     1            S1 = {1: node, 3, 4} q1    the node and member 3 (a quorum of S0 and of S1)
 *     2 .. 599     S1                         the node alone
 *     600          S2 = {1: node, 4, 5} q1    the node alone (a quorum of S1 and of S2)
 *     601 .. 1199  S2                         the node alone
 *     1200         S3 = {4, 5, 6} q2          the node, members 5 and 6
 *     1201 .. 1203 S3                         members 5 and 6 (the node is no member any more)
 *
 * A client trusting S0's keys (quorum 2) sees the head of size 1204, signed by members 5 and 6
 * only: it must follow the changes at 0, 1, 600 and 1200. A rewriting proxy then attacks the list
 * (a change left out, reordered, replayed from another log, certified only by the new set, a head
 * that is not a prefix, a predecessor rewritten); every attack is a `VerificationError` that
 * leaves the stored state as it was.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromBase64Url, MAX_SIGNER_SET_WALK, MemoryStateStore, ProofKVClient, toBase64Url, VerificationError, type AnyReason } from '../../client-sdk/index.js';
import { checkpointLeafHash, generateKeyPair, signHead, type Checkpoint, type KeyPair, type LogHead } from '../../proofs/checkpoint.js';
import { LogTree } from '../../proofs/log.js';
import { signerSetHash, type SignerSet } from '../../proofs/signer_set.js';
import type { ProofNode } from '../../server/node.js';
import { setChangeBytes } from '../../src/proof/checkpointer.js';
import { RewritingProxy, tmpDir, type ProxiedResponse } from './helpers.js';
import { startLocalNode } from '../server/harness.js';

type Body = Record<string, any>;

const keys: KeyPair[] = Array.from({ length: 7 }, (_, i) => generateKeyPair(new Uint8Array(32).fill(0x50 + i)));
const CHANGES = [0, 1, 600, 1200];
const SIZE = 1204;

let node: ProofNode;
let proxy: RewritingProxy;
let dir: string;
let S0: SignerSet;
let S1: SignerSet;
let S2: SignerSet;
let S3: SignerSet;
/** Requests the proxy forwarded, by path without the query. */
const requests: string[] = [];

function member(id: number, nodeKey: Uint8Array) {
  return { id, publicKey: id === 1 ? nodeKey : keys[id].publicKey };
}

/** Takes a checkpoint with `set` and adds the signatures of the test's members `by`. */
async function checkpoint(set: SignerSet, by: number[]): Promise<void> {
  const taken = await node.db.checkpoint({ signers: set });
  // The node's own signature goes through the log too, when one alone does not certify.
  if (taken.cosign) await node.db.cosign(taken.cosign);
  for (const id of by) {
    const s = signHead(keys[id].privateKey, taken.head);
    await node.db.cosign({ type: 'cosign', nodeId: id, size: taken.head.size, root: taken.head.root, signature: s.signature });
  }
  expect(node.db.latestCheckpoint().head.size, `checkpoint ${taken.checkpoint.index} is certified`).toBe(taken.head.size);
}

beforeAll(async () => {
  dir = tmpDir('proofkv-far-');
  node = await startLocalNode({ sync: false }, path.join(dir, 'data'), { localWritePath: true });
  const n = node.db.publicKey();
  S0 = { quorum: 2, members: [1, 2, 3].map((id) => member(id, n)) };
  S1 = { quorum: 1, members: [1, 3, 4].map((id) => member(id, n)) };
  S2 = { quorum: 1, members: [1, 4, 5].map((id) => member(id, n)) };
  S3 = { quorum: 2, members: [4, 5, 6].map((id) => member(id, n)) };
  await checkpoint(S0, [2]);
  await checkpoint(S1, [3]);
  for (let i = 2; i < 600; i++) await checkpoint(S1, []);
  await checkpoint(S2, []);
  for (let i = 601; i < 1200; i++) await checkpoint(S2, []);
  await checkpoint(S3, [5, 6]);
  for (let i = 1201; i < SIZE; i++) await checkpoint(S3, [5, 6]);
  proxy = await new RewritingProxy(node.url).start();
}, 120_000);

afterAll(async () => {
  await proxy?.close();
  await node?.shutdown('test');
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function client(store = new MemoryStateStore()): ProofKVClient {
  return new ProofKVClient({ endpoints: [proxy.url], trust: { publicKeys: S0.members.map((m) => m.publicKey), quorum: 2 }, stateStore: store, retries: 0 });
}

const isList = (p: string) => p === '/v1/checkpoints/set-changes';

/** Runs `op` with `rewrite` on the list's answers; expects a VerificationError with one of `reasons` and nothing stored. */
async function refused(rewrite: (body: Body) => void | Body, reasons: AnyReason[]): Promise<void> {
  const store = new MemoryStateStore();
  const c = client(store);
  proxy.hooks = {
    response: (_m: string, p: string, res: ProxiedResponse) => {
      if (res.status === 200 && isList(new URL(p, 'http://x').pathname)) {
        const out = rewrite(res.body as Body);
        if (out) res.body = out;
      }
    },
  };
  const err = await c.checkpoint().then(
    () => undefined,
    (e: unknown) => e,
  );
  proxy.hooks = {};
  expect(err).toBeInstanceOf(VerificationError);
  expect(reasons, (err as Error).message).toContain((err as VerificationError<string>).reason);
  expect(await store.load(c.trust.id)).toBeUndefined();
  expect(await c.trust.trustedSignerSet()).toBeUndefined();
}

/** Re-signs a listed change's head with `ids`' keys (the attacker holds those). */
function resign(change: Body, ids: number[]): void {
  const head = { size: change.head.size, root: fromBase64Url(change.head.root) };
  change.signatures = ids.map((id) => {
    const s = signHead(keys[id].privateKey, head);
    return { publicKey: toBase64Url(s.publicKey), signature: toBase64Url(s.signature) };
  });
}

describe('a client configured with the initial keys, more than 1024 checkpoints and three set changes behind', () => {
  it('the node lists exactly the four changes, each with its certificate and predecessor', async () => {
    const r = await fetch(`${node.url}/v1/checkpoints/set-changes?from=0`, { signal: AbortSignal.timeout(10_000) });
    expect(r.status).toBe(200);
    const body = (await r.json()) as Body;
    expect(body.size).toBe(SIZE);
    expect(body.next).toBeUndefined();
    expect(body.changes.map((c: Body) => c.checkpoint.index)).toEqual(CHANGES);
    expect(body.changes[0].previous).toBeUndefined();
    expect(body.changes[3].previous.checkpoint.index).toBe(1199);
    expect(body.changes[3].signatures.length).toBe(3);
    // Paged: limit 1 from checkpoint 2 gives the change at 600 and says where the next page starts.
    const page = (await (await fetch(`${node.url}/v1/checkpoints/set-changes?from=2&limit=1&size=1000`)).json()) as Body;
    expect(page.changes.map((c: Body) => c.checkpoint.index)).toEqual([600]);
    expect(page.next).toBeUndefined();
    const first = (await (await fetch(`${node.url}/v1/checkpoints/set-changes?limit=2`)).json()) as Body;
    expect(first.changes.map((c: Body) => c.checkpoint.index)).toEqual([0, 1]);
    expect(first.next).toBe(2);
    // The byte bound: a page always holds its first change, then stops before the bound.
    const one = node.db.signerSetChanges(0, SIZE, 64, 1);
    expect(one.changes.map((c) => c.checkpoint.index)).toEqual([0]);
    expect(one.next).toBe(1);
    const two = setChangeBytes(one.changes[0]) + setChangeBytes(node.db.signerSetChanges(1, SIZE, 1, 1).changes[0]);
    expect(node.db.signerSetChanges(0, SIZE, 64, two).changes.map((c) => c.checkpoint.index)).toEqual([0, 1]);
    expect(node.db.signerSetChanges(0, SIZE, 64, two - 1).changes.map((c) => c.checkpoint.index)).toEqual([0]);
    expect((await fetch(`${node.url}/v1/checkpoints/set-changes?size=${SIZE + 1}`)).status).toBe(404);
    expect((await fetch(`${node.url}/v1/checkpoints/set-changes?limit=65`)).status).toBe(400);
  });

  it('follows the changes in one request of the list and adopts the newest set', async () => {
    const store = new MemoryStateStore();
    const c = client(store);
    requests.length = 0;
    proxy.hooks = { request: (_m, p) => void requests.push(new URL(p, 'http://x').pathname) };
    const cp = await c.checkpoint();
    proxy.hooks = {};
    expect(cp.head.size).toBe(SIZE);
    expect(cp.signerSet?.members.map((m) => m.id)).toEqual([4, 5, 6]);
    expect((await c.trust.trustedSignerSet())?.quorum).toBe(2);
    expect(requests.filter(isList)).toHaveLength(1);
    // The latest checkpoint, its inclusion, and the newest link: no walk over the 1203 checkpoints.
    expect(requests.length).toBeLessThanOrEqual(4);
  });

  it('without the list (an older server answers 404), the walk back stops after 1024 checkpoints', async () => {
    const c = client();
    proxy.hooks = { response: (_m, p, res) => (isList(new URL(p, 'http://x').pathname) ? { status: 404, headers: { 'content-type': 'application/problem+json' }, body: { code: 'NOT_FOUND', status: 404, title: 'Not Found' } } : undefined) };
    const err = await c.checkpoint().then(
      () => undefined,
      (e: unknown) => e,
    );
    proxy.hooks = {};
    expect(err).toBeInstanceOf(VerificationError);
    expect((err as VerificationError<string>).reason).toBe('QUORUM_NOT_MET');
    expect((err as Error).message).toContain(String(MAX_SIGNER_SET_WALK));
  }, 60_000);

  it('refuses a change left out (in the middle, or the last), with nothing stored', async () => {
    await refused((b) => void b.changes.splice(2, 1), ['SIGNER_SET_MISMATCH']);
    await refused((b) => void b.changes.splice(3, 1), ['SIGNER_SET_MISMATCH']);
    // Every change after the first left out.
    await refused((b) => void b.changes.splice(1), ['SIGNER_SET_MISMATCH']);
  });

  it('refuses changes out of order', async () => {
    // Swapped: the change at 600 comes first, and its predecessor commits to S1, not to S0 (so a
    // swap shows as a change left out before it shows as disorder).
    await refused((b) => void ([b.changes[1], b.changes[2]] = [b.changes[2], b.changes[1]]), ['SIGNER_SET_MISMATCH']);
    await refused((b) => void b.changes.splice(2, 0, b.changes[1]), ['CHAIN_MISMATCH']);
  });

  it('refuses a change certified only by the new set', async () => {
    // 0 → 1 (S0 → S1) signed by member 4 alone: in S1, not in S0.
    await refused((b) => resign(b.changes[1], [4]), ['UNTRUSTED_KEY', 'QUORUM_NOT_MET']);
  });

  it('refuses a change replayed from another log, and a change whose head is not a prefix of the head', async () => {
    // Another log with the same sets at the same places, whose change at 600 member 4 certified
    // (a quorum of S1 and of S2): its certificate and proofs are valid in that log only.
    const other = new LogTree();
    const cps: Checkpoint[] = [];
    for (let i = 0; i < SIZE; i++) {
      const set = i === 0 ? S0 : i < 600 ? S1 : i < 1200 ? S2 : S3;
      const c: Checkpoint = { index: i, seq: i, masterRoot: new Uint8Array(32).fill(7), time: 1, signerSetHash: signerSetHash(set) };
      if (i > 0) c.prevCheckpointHash = new Uint8Array(32).fill(i % 251);
      cps.push(c);
      other.append(checkpointLeafHash(c));
    }
    const head: LogHead = { size: 601, root: other.root(601) };
    const wire = (c: Checkpoint) => ({ ...c, masterRoot: toBase64Url(c.masterRoot), signerSetHash: toBase64Url(c.signerSetHash!), prevCheckpointHash: c.prevCheckpointHash && toBase64Url(c.prevCheckpointHash) });
    await refused((b) => {
      const ch = b.changes[2];
      ch.checkpoint = wire(cps[600]);
      ch.head = { size: 601, root: toBase64Url(head.root) };
      ch.inclusion = other.inclusionProof(600, 601).map(toBase64Url);
      ch.consistency = other.consistencyProof(601, SIZE).map(toBase64Url);
      resign(ch, [4]);
    }, ['FORK']);
    // The honest change with one hash of its consistency proof changed.
    await refused((b) => {
      const p = b.changes[2].consistency;
      p[0] = toBase64Url(new Uint8Array(32).fill(9));
    }, ['FORK', 'ROOT_MISMATCH']);
  });

  it('refuses a predecessor rewritten to commit to the trusted set, or left out', async () => {
    // The change at 600 left out, and the predecessor of the change at 1200 shown as committing to S1.
    await refused((b) => {
      b.changes.splice(2, 1);
      b.changes[2].previous.checkpoint.signerSetHash = b.changes[1].checkpoint.signerSetHash;
    }, ['CHAIN_MISMATCH']);
    await refused((b) => void delete b.changes[3].previous, ['MALFORMED_INPUT']);
  });

  it('refuses a page that says more changes follow but does not advance', async () => {
    await refused((b) => {
      b.changes = [];
      b.next = 0;
    }, ['RESPONSE_MISMATCH']);
  });

  it('after the attacks, the same configuration accepts the honest list; a later head of S3 under the adopted set', async () => {
    proxy.hooks = {};
    const c = client();
    expect((await c.checkpoint()).signerSet?.members.map((m) => m.id)).toEqual([4, 5, 6]);
    await checkpoint(S3, [4, 6]);
    expect((await c.checkpoint()).head.size).toBe(SIZE + 1);
  });
});
