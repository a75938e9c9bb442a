/**
 * Signer sets against a real node (docs/proofs.md §5.6): its checkpoints are v2 and commit to its
 * one-member set; a rewriting proxy changes the `signers` an answer carries, the v2 fields of the
 * checkpoint, or the signatures, in checkpoint answers and inside proofs. Every rewrite must end in
 * a VerificationError with a fitting reason and leave the trusted state as it was; the same call
 * through the untouched proxy must then verify and adopt the node's set.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromBase64Url, MemoryStateStore, ProofKVClient, toBase64Url, VerificationError, type AnyReason } from '../../client-sdk/index.js';
import { generateKeyPair, signHead } from '../../proofs/checkpoint.js';
import { getProofCodec } from '../../proofs/lsm_encoding.js';
import type { GetProof } from '../../proofs/lsm_proof.js';
import { signerSetHash } from '../../proofs/signer_set.js';
import { RewritingProxy, startServer, type ProxiedResponse, type ServerProc } from './helpers.js';

let server: ServerProc;
let proxy: RewritingProxy;
let publicKey: Uint8Array;
const attacker = generateKeyPair(new Uint8Array(32).fill(0xa7));

type Body = Record<string, any>;

beforeAll(async () => {
  server = await startServer({ args: ['--checkpoint-interval', '0'] });
  proxy = await new RewritingProxy(server.url).start();
  const direct = new ProofKVClient({ endpoints: [server.url], trust: { tofu: true }, onWarning: () => {} });
  publicKey = fromBase64Url((await direct.status()).publicKey as string);
  await direct.put('sk', 'v1');
  await direct.createCheckpoint();
  await direct.put('sk', 'v2');
  await direct.createCheckpoint();
});

afterAll(async () => {
  await proxy?.close();
  await server?.stop();
});

function client(store = new MemoryStateStore()): ProofKVClient {
  return new ProofKVClient({ endpoints: [proxy.url], trust: { publicKeys: [publicKey], quorum: 1 }, stateStore: store, retries: 0 });
}

function editGet(body: Body, f: (p: GetProof) => void): void {
  const p = getProofCodec.decode(fromBase64Url(body.proof));
  f(p);
  body.proof = toBase64Url(getProofCodec.encode(p));
}

const madeUp = () => ({ quorum: 1, members: [{ id: 1, publicKey: toBase64Url(attacker.publicKey) }] });
const isLatest = (p: string) => p === '/v1/checkpoints/latest';
const isCheckpointAt = (p: string) => /^\/v1\/checkpoints\/\d+$/.test(p);
const isGet = (p: string) => p.startsWith('/v1/kv/sk/proof');

interface Case {
  name: string;
  op: (c: ProofKVClient) => Promise<unknown>;
  rewrite: (path: string, body: Body) => void;
  reasons: AnyReason[];
}

const checkpointOp = (c: ProofKVClient) => c.checkpoint();
const getOp = (c: ProofKVClient) => c.verifiedGet('sk');

const cases: Case[] = [
  { name: 'checkpoint: signers replaced by a made-up set', op: checkpointOp, rewrite: (p, b) => isLatest(p) && (b.signers = madeUp()), reasons: ['SIGNER_SET_MISMATCH'] },
  { name: 'checkpoint: signers left out', op: checkpointOp, rewrite: (p, b) => isLatest(p) && delete b.signers, reasons: ['SIGNER_SET_MISMATCH'] },
  {
    name: 'checkpoint: signers with a changed quorum',
    op: checkpointOp,
    rewrite: (p, b) => isLatest(p) && (b.signers = { ...b.signers, quorum: 2 }),
    reasons: ['INVALID_SIGNER_SET'],
  },
  {
    name: "checkpoint: the attacker's signature and set, with a signerSetHash rewritten to match",
    op: checkpointOp,
    rewrite: (p, b) => {
      if (!isLatest(p) && !isCheckpointAt(p)) return;
      b.signers = madeUp();
      b.checkpoint.signerSetHash = toBase64Url(signerSetHash({ quorum: 1, members: [{ id: 1, publicKey: attacker.publicKey }] }));
      const head = { size: b.head.size, root: fromBase64Url(b.head.root) };
      const s = signHead(attacker.privateKey, head);
      b.signatures = [{ publicKey: toBase64Url(s.publicKey), signature: toBase64Url(s.signature) }];
    },
    // The trusted key did not sign, so the client walks back for a set change: the rewritten
    // predecessor no longer links (CHAIN_MISMATCH), or no change is certified by the trusted key.
    reasons: ['UNTRUSTED_KEY', 'QUORUM_NOT_MET', 'CHAIN_MISMATCH'],
  },
  {
    name: 'checkpoint: shown as v1 (time and signerSetHash dropped, no signers) on every route',
    op: checkpointOp,
    rewrite: (p, b) => {
      if (!isLatest(p) && !isCheckpointAt(p)) return;
      delete b.checkpoint.time;
      delete b.checkpoint.signerSetHash;
      delete b.signers;
    },
    reasons: ['ROOT_MISMATCH'],
  },
  {
    name: 'checkpoint: time dropped but signerSetHash kept',
    op: checkpointOp,
    rewrite: (p, b) => isLatest(p) && delete b.checkpoint.time,
    reasons: ['MALFORMED_INPUT', 'RESPONSE_MISMATCH'],
  },
  {
    name: 'get: the certificate carries another set',
    op: getOp,
    rewrite: (p, b) => isGet(p) && editGet(b, (g) => (g.certificate.signers = { quorum: 1, members: [{ id: 1, publicKey: attacker.publicKey }] })),
    reasons: ['SIGNER_SET_MISMATCH'],
  },
  { name: 'get: the certificate carries no set', op: getOp, rewrite: (p, b) => isGet(p) && editGet(b, (g) => delete g.certificate.signers), reasons: ['SIGNER_SET_MISMATCH'] },
  {
    name: 'get: the certificate shows its checkpoint as v1',
    op: getOp,
    rewrite: (p, b) =>
      isGet(p) &&
      editGet(b, (g) => {
        delete g.certificate.checkpoint.time;
        delete g.certificate.checkpoint.signerSetHash;
        delete g.certificate.signers;
      }),
    reasons: ['ROOT_MISMATCH'],
  },
  {
    name: 'get: another set with the checkpoint hash rewritten to match it',
    op: getOp,
    rewrite: (p, b) =>
      isGet(p) &&
      editGet(b, (g) => {
        const set = { quorum: 1, members: [{ id: 7, publicKey: g.certificate.signers!.members[0].publicKey }] };
        g.certificate.signers = set;
        g.certificate.checkpoint.signerSetHash = signerSetHash(set);
      }),
    reasons: ['ROOT_MISMATCH'],
  },
];

describe('signer sets against a real node, through a tampering proxy', () => {
  it('an honest checkpoint is v2 and its one-member set is adopted', async () => {
    proxy.hooks = {};
    const c = client();
    const cp = await c.checkpoint();
    expect(cp.checkpoint.signerSetHash).toBeInstanceOf(Uint8Array);
    expect(cp.signerSet?.quorum).toBe(1);
    expect(cp.signerSet?.members.map((m) => toBase64Url(m.publicKey))).toEqual([toBase64Url(publicKey)]);
    expect((await c.trust.trustedSignerSet())?.members[0].id).toBe(1);
  });

  for (const tc of cases) {
    it(tc.name, async () => {
      const store = new MemoryStateStore();
      const c = client(store);
      proxy.hooks = {
        response: (_m: string, p: string, res: ProxiedResponse) => {
          if (res.status === 200 && typeof res.body === 'object' && res.body !== null) tc.rewrite(new URL(p, 'http://x').pathname, res.body as Body);
        },
      };
      const err = await tc.op(c).then(
        () => undefined,
        (e: unknown) => e,
      );
      proxy.hooks = {};
      expect(err).toBeInstanceOf(VerificationError);
      expect(tc.reasons, (err as Error).message).toContain((err as VerificationError<string>).reason);
      expect(await c.trust.trustedHead()).toBeUndefined();
      expect(await c.trust.trustedSignerSet()).toBeUndefined();
      await expect(tc.op(c)).resolves.toBeDefined();
      expect(await c.trust.trustedSignerSet()).toBeDefined();
    });
  }
});
