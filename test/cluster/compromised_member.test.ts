/**
 * One compromised member of three (docs/cluster.md § Trusting the cluster): an attacker holds
 * member X's `NODE_KEY` and answers every request of a client in X's place (a rewriting proxy in
 * front of X's client URL, X being the only endpoint the client has). The client trusts the three
 * members' keys with quorum 2. A single node's client, whose trust is that node's one key, accepts
 * a forged checkpoint its node signs (`test/client/verified_write.test.ts`, "the same forged log
 * with correct links is accepted"); here the same forgery, signed by X, must be refused however
 * the signatures are dressed up — and is accepted once a second member's key signs it too, which
 * shows that the quorum is what protects the client. Every refusal leaves the trusted state as it
 * was, and the honest answers verify afterwards.
 */
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromBase64Url, MemoryStateStore, ProofKVClient, toBase64Url, VerificationError, type AnyReason } from '../../client-sdk/index.js';
import { parseCheckpoint } from '../../client-sdk/wire.js';
import { signHead, type Checkpoint, type KeyPair } from '../../proofs/checkpoint.js';
import { getProofCodec } from '../../proofs/lsm_encoding.js';
import { signerSetHash } from '../../proofs/signer_set.js';
import { nodeDirName } from '../../server/cli/cluster.js';
import { openNodeKey } from '../../src/proof/node_key.js';
import { rejection } from '../client/fake_node.js';
import { forgedSuccessor, RewritingProxy, servedLogHooks } from '../client/helpers.js';
import { ProcessCluster } from './harness.js';

type Body = Record<string, any>;
type Sig = { publicKey: string; signature: string };

describe('one compromised member of three cannot make a quorum-2 client believe a forgery', () => {
  let cluster: ProcessCluster;
  let proxy: RewritingProxy;
  /** The compromised member and another one (whose key the control case also steals). */
  let x: number;
  let y: number;
  const keys = new Map<number, KeyPair>();
  let real: Checkpoint[];
  let honestSigners: Body;

  beforeAll(async () => {
    // No automatic checkpoints: the log the test forges on stays the one it read.
    cluster = await ProcessCluster.start(3, ['--checkpoint-interval', '0', '--checkpoint-writes', '0']);
    const direct = new ProofKVClient({ endpoints: cluster.members.map((m) => m.url), trust: { publicKeys: cluster.publicKeys, quorum: 2 }, retries: 20, retryDelayMs: 100, onWarning: () => {} });
    await direct.put('seed', 'honest');
    await direct.createCheckpoint();
    await direct.put('seed', 'honest-2');
    await direct.createCheckpoint();
    const leader = await cluster.leader();
    [x, y] = [1, 2, 3].filter((id) => id !== leader);
    // X serves the certified head the leader serves (the two checkpoints made here).
    const headSize = async (id: number) => {
      const r = await fetch(`${cluster.member(id).url}/v1/checkpoints/latest`);
      return r.ok ? (((await r.json()) as Body).head.size as number) : 0;
    };
    const want = await headSize(leader);
    expect(want).toBe(2);
    for (const until = Date.now() + 30_000; (await headSize(x)) < want; ) {
      if (Date.now() > until) throw new Error(`member ${x} did not serve the certified head of size ${want}`);
      await new Promise((res) => setTimeout(res, 100));
    }
    for (const id of [x, y]) keys.set(id, openNodeKey(path.join(cluster.dir, nodeDirName(id)), { logSize: 0 }).key);
    proxy = await new RewritingProxy(cluster.member(x).url).start();
    const latest = (await (await fetch(`${cluster.member(x).url}/v1/checkpoints/latest`)).json()) as Body;
    honestSigners = latest.signers;
    expect(honestSigners.quorum).toBe(2);
    expect(honestSigners.members).toHaveLength(3);
    real = [];
    for (let i = 0; i < latest.head.size; i++) real.push(parseCheckpoint(((await (await fetch(`${cluster.member(x).url}/v1/checkpoints/${i}`)).json()) as Body).checkpoint));
  }, 120_000);
  afterAll(async () => {
    await proxy?.close();
    await cluster?.close();
  });

  const client = () => new ProofKVClient({ endpoints: [proxy.url], trust: { publicKeys: cluster.publicKeys, quorum: 2 }, stateStore: new MemoryStateStore(), retries: 0, onWarning: () => {} });
  const sign = (id: number, head: { size: number; root: Uint8Array }): Sig => {
    const s = signHead(keys.get(id)!.privateKey, head);
    return { publicKey: toBase64Url(s.publicKey), signature: toBase64Url(s.signature) };
  };
  const forged = forgedSuccessor;

  /**
   * Serves the log `cps` on the checkpoint routes, with the signatures `sigs` gives for its head
   * and the signer set `signers` (default: the cluster's honest set, which the checkpoints commit to).
   */
  function serveLog(cps: Checkpoint[], sigs: (head: { size: number; root: Uint8Array }) => Sig[], signers: Body = honestSigners): void {
    proxy.hooks = servedLogHooks(cps, (head) => ({ signatures: sigs(head), signers }));
  }

  /** The real latest head's honest signatures (of members other than X), as served. */
  async function honestSignatures(): Promise<Sig[]> {
    const latest = (await (await fetch(`${cluster.member(x).url}/v1/checkpoints/latest`)).json()) as Body;
    return (latest.signatures as Sig[]).filter((s) => s.publicKey !== toBase64Url(keys.get(x)!.publicKey));
  }

  const madeUpSet = () => ({ quorum: 1, members: [{ id: x, publicKey: keys.get(x)!.publicKey }] });

  const cases: { name: string; reasons: AnyReason[]; serve: () => Promise<void> | void }[] = [
    { name: "a forged successor with X's signature alone", reasons: ['QUORUM_NOT_MET'], serve: () => serveLog([...real, forged(real.at(-1)!)], (h) => [sign(x, h)]) },
    { name: "X's signature twice", reasons: ['DUPLICATE_SIGNER'], serve: () => serveLog([...real, forged(real.at(-1)!)], (h) => [sign(x, h), sign(x, h)]) },
    {
      name: "X's signature beside the others' honest signatures of the real head",
      reasons: ['BAD_SIGNATURE'],
      serve: async () => {
        const others = await honestSignatures();
        expect(others.length).toBeGreaterThan(0);
        serveLog([...real, forged(real.at(-1)!)], (h) => [sign(x, h), ...others]);
      },
    },
    {
      name: "X's signature also presented under another member's key",
      reasons: ['BAD_SIGNATURE'],
      serve: () => serveLog([...real, forged(real.at(-1)!)], (h) => [sign(x, h), { ...sign(x, h), publicKey: toBase64Url(keys.get(y)!.publicKey) }]),
    },
    {
      name: 'a made-up signer set of X alone (quorum 1), committed to by the forged checkpoint',
      // The trusted quorum did not sign: the client looks for a set change certified by it and finds none.
      reasons: ['UNTRUSTED_KEY', 'QUORUM_NOT_MET', 'CHAIN_MISMATCH', 'SIGNER_SET_MISMATCH'],
      serve: () => {
        const set = madeUpSet();
        const cp = forged(real.at(-1)!, { signerSetHash: signerSetHash(set) });
        serveLog([...real, cp], (h) => [sign(x, h)], { quorum: 1, members: set.members.map((m) => ({ id: m.id, publicKey: toBase64Url(m.publicKey) })) });
      },
    },
  ];

  for (const tc of cases) {
    it(`refuses ${tc.name}`, async () => {
      const c = client();
      await c.checkpoint();
      const before = await c.trust.trustedHead();
      await tc.serve();
      const err = await rejection(c.checkpoint());
      proxy.hooks = {};
      expect(err).toBeInstanceOf(VerificationError);
      expect(tc.reasons, (err as Error).message).toContain((err as VerificationError<string>).reason);
      expect(await c.trust.trustedHead()).toEqual(before);
      // A fresh client is not taken in either (first contact).
      const fresh = client();
      await tc.serve();
      const err2 = await rejection(fresh.checkpoint());
      proxy.hooks = {};
      expect(err2).toBeInstanceOf(VerificationError);
      expect(await fresh.trust.trustedHead()).toBeUndefined();
      // The honest answers verify.
      await expect(c.checkpoint()).resolves.toBeDefined();
      expect(new TextDecoder().decode((await c.verifiedGet('seed'))?.value)).toBe('honest-2');
    });
  }

  it("refuses a get proof whose certificate carries X's signature alone, or the honest ones with X's made twice", async () => {
    const c = client();
    const editGet = (f: (sigs: Array<{ publicKey: Uint8Array; signature: Uint8Array }>, head: { size: number; root: Uint8Array }) => Array<{ publicKey: Uint8Array; signature: Uint8Array }>) => {
      proxy.hooks = {
        response: (_m, p, res) => {
          if (!new URL(p, 'http://x').pathname.startsWith('/v1/kv/seed/proof') || res.status !== 200) return undefined;
          const body = res.body as Body;
          const g = getProofCodec.decode(fromBase64Url(body.proof));
          g.certificate.signatures = f(g.certificate.signatures, g.certificate.head);
          body.proof = toBase64Url(getProofCodec.encode(g));
          return undefined;
        },
      };
    };
    const xSig = (head: { size: number; root: Uint8Array }) => signHead(keys.get(x)!.privateKey, head);
    for (const [f, reason] of [
      [(_s: any, h: any) => [xSig(h)], 'QUORUM_NOT_MET'],
      [(_s: any, h: any) => [xSig(h), xSig(h)], 'DUPLICATE_SIGNER'],
    ] as const) {
      editGet(f);
      const err = await rejection(c.verifiedGet('seed'));
      proxy.hooks = {};
      expect(err).toBeInstanceOf(VerificationError);
      expect((err as VerificationError<string>).reason, (err as Error).message).toBe(reason);
      expect(await c.trust.trustedHead()).toBeUndefined();
    }
    expect(new TextDecoder().decode((await c.verifiedGet('seed'))?.value)).toBe('honest-2');
  });

  it('control: the same forgery signed by X and a second member is accepted (two keys are a quorum)', async () => {
    const c = client();
    await c.checkpoint();
    const before = (await c.trust.trustedHead())!.size;
    serveLog([...real, forged(real.at(-1)!)], (h) => [sign(x, h), sign(y, h)]);
    const cp = await c.checkpoint();
    proxy.hooks = {};
    expect(cp.head.size).toBe(before + 1);
  });
});
