/**
 * Checkpoint v2 (time, signer-set hash) and signer sets (docs/proofs.md §5.1, §5.6): layouts
 * recomputed byte by byte from the spec, both versions parsed and told apart, no downgrade along a
 * chain, and certificates counted against the trusted set and the checkpoint's own set, with real
 * Ed25519 keys.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  checkpointBytes,
  checkpointHash,
  checkpointLeafHash,
  generateKeyPair,
  parseCheckpointBytes,
  signHead,
  verifyCheckpointLink,
  type Checkpoint,
  type LogHead,
} from '../../proofs/checkpoint.js';
import { DecodeError, Reason } from '../../proofs/errors.js';
import { certificateCodec } from '../../proofs/lsm_encoding.js';
import { verifyCertificate } from '../../proofs/lsm_proof.js';
import { LogTree } from '../../proofs/log.js';
import {
  checkSignerSet,
  parseSignerSetBytes,
  signerSetBytes,
  signerSetHash,
  verifyCertifiedHead,
  verifySignerSet,
  type SignerSet,
} from '../../proofs/signer_set.js';

const keys = Array.from({ length: 8 }, (_, i) => generateKeyPair(new Uint8Array(32).fill(i + 1)));
const set = (quorum: number, ids: number[]): SignerSet => ({ quorum, members: ids.map((id) => ({ id, publicKey: keys[id].publicKey })) });
const policy = (quorum: number, ids: number[]) => ({ publicKeys: ids.map((id) => keys[id].publicKey), quorum });
const sha = (b: Uint8Array) => new Uint8Array(createHash('sha256').update(b).digest());
const u32 = (n: number) => Buffer.from([n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
const u64 = (n: number) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
};
const head: LogHead = { size: 5, root: new Uint8Array(32).fill(9) };
const sign = (ids: number[], h: LogHead = head) => ids.map((id) => signHead(keys[id].privateKey, h));

describe('signer sets', () => {
  it('hash H(0x1A || u32 quorum || u32 n || n × (u32 id || key)), recomputed from the spec', () => {
    const s = set(2, [1, 2, 5]);
    const want = sha(Buffer.concat([Buffer.from([0x1a]), u32(2), u32(3), ...s.members.flatMap((m) => [u32(m.id), Buffer.from(m.publicKey)])]));
    expect(Buffer.from(signerSetHash(s)).toString('hex')).toBe(Buffer.from(want).toString('hex'));
    expect(parseSignerSetBytes(signerSetBytes(s))).toEqual(s);
    // Every field is committed: quorum, an id, a key.
    expect(signerSetHash(set(3, [1, 2, 5]))).not.toEqual(signerSetHash(s));
    expect(signerSetHash({ quorum: 2, members: [{ id: 1, publicKey: keys[1].publicKey }, { id: 2, publicKey: keys[2].publicKey }, { id: 6, publicKey: keys[5].publicKey }] })).not.toEqual(signerSetHash(s));
    expect(signerSetHash(set(2, [1, 2, 6]))).not.toEqual(signerSetHash(s));
  });

  it('refuses invalid sets with INVALID_SIGNER_SET', () => {
    const bad: unknown[] = [
      null,
      { quorum: 1, members: [] },
      { quorum: 0, members: set(1, [1]).members },
      { quorum: 3, members: set(1, [1, 2]).members },
      { quorum: 1, members: [{ id: 0, publicKey: keys[1].publicKey }] },
      { quorum: 1, members: [{ id: 2 ** 32, publicKey: keys[1].publicKey }] },
      { quorum: 1, members: [...set(1, [2]).members, ...set(1, [1]).members] }, // not sorted
      { quorum: 1, members: [{ id: 1, publicKey: keys[1].publicKey }, { id: 2, publicKey: keys[1].publicKey }] }, // same key twice
      { quorum: 1, members: [{ id: 1, publicKey: new Uint8Array(31) }] },
      { quorum: 1.5, members: set(1, [1, 2]).members },
    ];
    for (const b of bad) expect(checkSignerSet(b)?.reason, JSON.stringify(b, (_k, v) => (v instanceof Uint8Array ? v.length : v))).toBe(Reason.INVALID_SIGNER_SET);
    expect(() => parseSignerSetBytes(new Uint8Array([0x1a, 0, 0, 0, 1, 0, 0, 0, 2]))).toThrow(DecodeError);
    expect(verifySignerSet(set(1, [1]), signerSetHash(set(1, [2]))).ok).toBe(false);
    expect(verifySignerSet(set(1, [1]), signerSetHash(set(1, [1]))).ok).toBe(true);
  });
});

describe('checkpoint v2 message', () => {
  const s = set(2, [1, 2, 3]);
  const c0: Checkpoint = { index: 0, seq: 7, masterRoot: new Uint8Array(32).fill(1), time: 1_700_000_000_123, signerSetHash: signerSetHash(s) };
  const c1: Checkpoint = { index: 1, seq: 9, masterRoot: new Uint8Array(32).fill(2), time: 1_700_000_000_456, signerSetHash: signerSetHash(s), prevCheckpointHash: checkpointHash(c0) };

  it('is 0x18 || u64 index || u64 seq || masterRoot || u64 time || signerSetHash || hasPrev || prev, and parses back', () => {
    const want1 = Buffer.concat([Buffer.from([0x18]), u64(1), u64(9), c1.masterRoot, u64(c1.time!), c1.signerSetHash!, Buffer.from([1]), c1.prevCheckpointHash!]);
    expect(Buffer.from(checkpointBytes(c1)).equals(want1)).toBe(true);
    expect(checkpointBytes(c0).length).toBe(90);
    expect(checkpointBytes(c1).length).toBe(122);
    expect(parseCheckpointBytes(checkpointBytes(c0))).toEqual(c0);
    expect(parseCheckpointBytes(checkpointBytes(c1))).toEqual(c1);
    expect(checkpointLeafHash(c1)).toEqual(sha(Buffer.concat([Buffer.from([0]), want1])));
  });

  it('v1 messages (50 and 82 bytes) still parse as v1; the versions never read as each other', () => {
    const v1: Checkpoint = { index: 1, seq: 9, masterRoot: c1.masterRoot, prevCheckpointHash: c1.prevCheckpointHash };
    expect(checkpointBytes(v1).length).toBe(82);
    expect(parseCheckpointBytes(checkpointBytes(v1))).toEqual(v1);
    // Dropping the v2 fields changes the message, so the leaf: a v2 leaf does not verify as v1.
    expect(checkpointLeafHash(v1)).not.toEqual(checkpointLeafHash(c1));
    // Truncating or extending a message to the other version's length is refused.
    for (const len of [50, 82, 89, 91, 121, 123]) {
      const b = new Uint8Array(len);
      b.set(checkpointBytes(c1).subarray(0, Math.min(len, 122)));
      expect(() => parseCheckpointBytes(b), `length ${len}`).toThrow(DecodeError);
    }
    // One of time / signerSetHash alone is neither version.
    expect(() => checkpointBytes({ ...v1, time: 5 })).toThrow(RangeError);
    expect(() => checkpointBytes({ ...v1, signerSetHash: c1.signerSetHash })).toThrow(RangeError);
  });

  it('a v2 chain refuses a v1 successor and a time that goes back; v1 may continue as v2', () => {
    expect(verifyCheckpointLink(c0, c1).ok).toBe(true);
    const v1next: Checkpoint = { index: 1, seq: 9, masterRoot: c1.masterRoot, prevCheckpointHash: checkpointHash(c0) };
    expect(verifyCheckpointLink(c0, v1next)).toMatchObject({ ok: false, reason: Reason.CHAIN_MISMATCH });
    const back = { ...c1, time: c0.time! - 1 };
    expect(verifyCheckpointLink(c0, back)).toMatchObject({ ok: false, reason: Reason.CHAIN_MISMATCH });
    const v1first: Checkpoint = { index: 0, seq: 7, masterRoot: c0.masterRoot };
    expect(verifyCheckpointLink(v1first, { ...c1, prevCheckpointHash: checkpointHash(v1first) }).ok).toBe(true);
  });
});

describe('verifyCertifiedHead: the trusted quorum and the checkpoint set quorum', () => {
  const A = set(2, [1, 2, 3]);
  const trustA = policy(2, [1, 2, 3]);
  const cases: Array<{ name: string; signers: SignerSet; by: number[]; want: string | true }> = [
    { name: 'the trusted set itself', signers: A, by: [1, 3], want: true },
    { name: 'adding member 4 (quorum 3 of 4), signed by both quorums', signers: set(3, [1, 2, 3, 4]), by: [1, 2, 4], want: true },
    { name: 'adding member 4, without the new quorum', signers: set(3, [1, 2, 3, 4]), by: [1, 2], want: Reason.QUORUM_NOT_MET },
    { name: 'removing member 3', signers: set(2, [1, 2]), by: [1, 2], want: true },
    { name: 'replacing 3 by 4, old member 3 still signing', signers: set(2, [1, 2, 4]), by: [3, 2, 4], want: true },
    { name: 'a quorum of the new set but not of the old one', signers: set(2, [1, 4, 5]), by: [1, 4, 5], want: Reason.UNTRUSTED_KEY },
    { name: "an attacker's made-up set", signers: set(1, [6, 7]), by: [6, 7], want: Reason.UNTRUSTED_KEY },
    { name: 'a made-up set with one trusted member', signers: set(1, [1, 6]), by: [1, 6], want: Reason.UNTRUSTED_KEY },
    { name: 'a signer in neither set', signers: A, by: [1, 2, 7], want: Reason.UNTRUSTED_KEY },
  ];
  for (const tc of cases) {
    it(tc.name, () => {
      const r = verifyCertifiedHead(head, sign(tc.by), trustA, tc.signers, signerSetHash(tc.signers));
      if (tc.want === true) expect(r).toMatchObject({ ok: true, signerSet: tc.signers });
      else expect(r).toMatchObject({ ok: false, reason: tc.want });
    });
  }

  it('a set that does not hash to the checkpoint, a missing set, a set for a v1 checkpoint', () => {
    const sigs = sign([1, 2]);
    const other = set(2, [1, 2]);
    expect(verifyCertifiedHead(head, sigs, trustA, A, signerSetHash(other))).toMatchObject({ ok: false, reason: Reason.SIGNER_SET_MISMATCH });
    const swapped = { quorum: 2, members: A.members.map((m) => (m.id === 3 ? { id: 3, publicKey: keys[6].publicKey } : m)) };
    expect(verifyCertifiedHead(head, sigs, trustA, swapped, signerSetHash(A))).toMatchObject({ ok: false, reason: Reason.SIGNER_SET_MISMATCH });
    expect(verifyCertifiedHead(head, sigs, trustA, undefined, signerSetHash(A))).toMatchObject({ ok: false, reason: Reason.SIGNER_SET_MISMATCH });
    expect(verifyCertifiedHead(head, sigs, trustA, A, undefined)).toMatchObject({ ok: false, reason: Reason.SIGNER_SET_MISMATCH });
    expect(verifyCertifiedHead(head, sigs, trustA, undefined, undefined)).toMatchObject({ ok: true });
    expect(verifyCertifiedHead(head, sigs, trustA, { quorum: 0, members: A.members }, signerSetHash(A))).toMatchObject({ ok: false, reason: Reason.INVALID_SIGNER_SET });
  });

  it('a bad signature by a member of the new set fails the certificate', () => {
    const s4 = set(3, [1, 2, 3, 4]);
    const sigs = sign([1, 2, 4]);
    sigs[2] = { ...sigs[2], signature: sigs[2].signature.map((b, i) => (i === 0 ? b ^ 1 : b)) };
    expect(verifyCertifiedHead(head, sigs, trustA, s4, signerSetHash(s4))).toMatchObject({ ok: false, reason: Reason.BAD_SIGNATURE });
  });
});

describe('verifyCertificate with signers', () => {
  const A = set(2, [1, 2, 3]);
  const B = set(3, [1, 2, 3, 4]);
  const c0: Checkpoint = { index: 0, seq: 1, masterRoot: new Uint8Array(32).fill(3), time: 10, signerSetHash: signerSetHash(A) };
  const c1: Checkpoint = { index: 1, seq: 2, masterRoot: new Uint8Array(32).fill(4), time: 11, signerSetHash: signerSetHash(B), prevCheckpointHash: checkpointHash(c0) };
  const tree = new LogTree();
  tree.append(checkpointLeafHash(c0));
  tree.append(checkpointLeafHash(c1));
  const h: LogHead = { size: 2, root: tree.root() };
  const cert = { checkpoint: c1, head: h, signatures: sign([1, 2, 3, 4], h), inclusion: tree.inclusionProof(1, 2), signers: B };

  it('verifies the last checkpoint against both quorums, and round-trips through CBOR', () => {
    expect(verifyCertificate(cert, { trust: policy(2, [1, 2, 3]) })).toMatchObject({ ok: true, signerSet: B });
    expect(verifyCertificate(certificateCodec.decode(certificateCodec.encode(cert)), { trust: policy(2, [1, 2, 3]) }).ok).toBe(true);
    expect(verifyCertificate({ ...cert, signers: A }, { trust: policy(2, [1, 2, 3]) })).toMatchObject({ ok: false, reason: Reason.SIGNER_SET_MISMATCH });
    expect(verifyCertificate({ ...cert, signatures: sign([1, 2], h) }, { trust: policy(2, [1, 2, 3]) })).toMatchObject({ ok: false, reason: Reason.QUORUM_NOT_MET });
  });

  it('an older checkpoint of the head: the trusted quorum, and signers must match that checkpoint', () => {
    const old = { checkpoint: c0, head: h, signatures: sign([1, 2], h), inclusion: tree.inclusionProof(0, 2) };
    expect(verifyCertificate(old, { trust: policy(2, [1, 2, 3]), checkpointIndex: 0 }).ok).toBe(true);
    expect(verifyCertificate({ ...old, signers: A }, { trust: policy(2, [1, 2, 3]), checkpointIndex: 0 }).ok).toBe(true);
    expect(verifyCertificate({ ...old, signers: B }, { trust: policy(2, [1, 2, 3]), checkpointIndex: 0 })).toMatchObject({ ok: false, reason: Reason.SIGNER_SET_MISMATCH });
  });

  it('a v2 checkpoint presented as v1 (fields dropped) fails inclusion; a v1 one with signers is refused', () => {
    const asV1: Checkpoint = { index: 1, seq: 2, masterRoot: c1.masterRoot, prevCheckpointHash: c1.prevCheckpointHash };
    expect(verifyCertificate({ ...cert, checkpoint: asV1, signatures: sign([1, 2], h), signers: undefined }, { trust: policy(2, [1, 2, 3]) })).toMatchObject({ ok: false, reason: Reason.ROOT_MISMATCH });
    expect(verifyCertificate({ ...cert, checkpoint: asV1 }, { trust: policy(2, [1, 2, 3]) })).toMatchObject({ ok: false, reason: Reason.SIGNER_SET_MISMATCH });
  });
});

describe('the node stamps v2 checkpoints (db.checkpoint({ time, signers }))', () => {
  it('defaults to its one-member set, keeps times monotonic, records set changes and keeps them across a reopen', async () => {
    const { ProofDB } = await import('../../src/index.js');
    const { tempDir } = await import('../engine/harness.js');
    const t = tempDir('proofkv-cpv2-');
    try {
      const hexSet = (x: SignerSet | undefined) => x && { quorum: x.quorum, members: x.members.map((m) => `${m.id}:${Buffer.from(m.publicKey).toString('hex')}`) };
      let db = await ProofDB.open(t.dir, { compactionThread: 'inline' });
      const own = { quorum: 1, members: [{ id: 1, publicKey: db.publicKey() }] };
      await db.put('a', 'x');
      const c0 = await db.checkpoint({ time: 5000 });
      expect(c0.checkpoint.time).toBe(5000);
      expect(hexSet(c0.signers)).toEqual(hexSet(own));
      expect(Buffer.from(c0.checkpoint.signerSetHash!).equals(signerSetHash(own))).toBe(true);
      // A lower time is raised to the previous one; a larger set is recorded as a change.
      const bigger = { quorum: 2, members: [{ id: 1, publicKey: db.publicKey() }, { id: 2, publicKey: keys[2].publicKey }] };
      const c1 = await db.checkpoint({ time: 4000, signers: bigger });
      expect(c1.checkpoint.time).toBe(5000);
      const c2 = await db.checkpoint({ time: 6000, signers: bigger });
      expect(c2.checkpoint.time).toBe(6000);
      // Bad options change nothing.
      await expect(db.checkpoint({ signers: { quorum: 3, members: bigger.members } })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      await expect(db.checkpoint({ time: -1 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      // Quorum 2: the node's own signature leaves the new heads pending (co-signing); member 2's
      // signature on the newest head, applied as a cosign, certifies it.
      expect(db.latestCheckpoint().head.size).toBe(1);
      // (The node's own signature counts once its own cosign entry is applied, as in a group.)
      expect((await db.cosign(db.ownCosign()!)).verdict).toBe('accepted');
      expect(db.latestCheckpoint().head.size).toBe(1);
      const r = await db.cosign({ type: 'cosign', nodeId: 2, size: 3, root: c2.head.root, signature: signHead(keys[2].privateKey, c2.head).signature });
      expect(r.verdict).toBe('accepted');
      expect(db.latestCheckpoint().head.size).toBe(3);
      const check = () => {
        expect(hexSet(db.checkpointAt(0).setChange?.signers)).toEqual(hexSet(own));
        expect(hexSet(db.checkpointAt(1).setChange?.signers)).toEqual(hexSet(bigger));
        expect(db.checkpointAt(1).setChange?.head.size).toBe(2);
        expect(db.checkpointAt(2).setChange).toBeUndefined();
        expect(hexSet(db.latestCheckpoint().signers)).toEqual(hexSet(bigger));
        // The change's own certificate is what a client checks: its head, signed, with the checkpoint as last leaf.
        const ch = db.checkpointAt(1).setChange!;
        expect(verifyCertificate(ch, { trust: { publicKeys: [db.publicKey()], quorum: 1 } })).toMatchObject({ ok: false, reason: Reason.QUORUM_NOT_MET });
        expect(verifyCertificate({ ...ch, signers: undefined }, { trust: { publicKeys: [db.publicKey()], quorum: 1 } })).toMatchObject({ ok: false, reason: Reason.SIGNER_SET_MISMATCH });
      };
      check();
      await db.close();
      db = await ProofDB.open(t.dir, { compactionThread: 'inline' });
      check();
      const proof = (await db.getWithProof('a')).proof;
      expect(hexSet(proof.certificate.signers)).toEqual(hexSet(bigger));
      // Checkpoint 1 changed the set but was overtaken by 2 before member 2 signed it: member 2's
      // late signature still joins the change's certificate (a client trusting the old set walks
      // it), persisted, so the change verifies with both quorums — also after a reopen.
      const c1Head = db.checkpointAt(1).setChange!.head;
      const late = await db.cosign({ type: 'cosign', nodeId: 2, size: 2, root: c1Head.root, signature: signHead(keys[2].privateKey, c1Head).signature });
      expect(late.verdict).toBe('accepted');
      expect(db.latestCheckpoint().head.size).toBe(3);
      const walk = () => verifyCertificate(db.checkpointAt(1).setChange!, { trust: { publicKeys: [db.publicKey()], quorum: 1 } });
      expect(walk()).toMatchObject({ ok: true });
      expect((await db.cosign({ type: 'cosign', nodeId: 2, size: 2, root: c1Head.root, signature: signHead(keys[2].privateKey, c1Head).signature })).verdict).toBe('stale');
      await db.close();
      db = await ProofDB.open(t.dir, { compactionThread: 'inline' });
      expect(walk()).toMatchObject({ ok: true });
      await db.close();
    } finally {
      t.cleanup();
    }
  });
});
