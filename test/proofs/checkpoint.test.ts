/** Checkpoints, the checkpoint log, signed heads and quorum verification. */
import { describe, expect, it } from 'vitest';
import { toHex } from '../../proofs/bytes.js';
import { nobleHasher } from '../../proofs/hash.js';
import {
  type Checkpoint,
  type HeadSignature,
  type LogHead,
  checkpointBytes,
  checkpointHash,
  checkpointLeafHash,
  generateKeyPair,
  parseCheckpointBytes,
  publicKeyOf,
  signHead,
  verifyCheckpoint,
  verifyCheckpointInclusion,
  verifyCheckpointLink,
  verifyHeadExtends,
  verifyHeadSignature,
} from '../../proofs/checkpoint.js';
import { DecodeError } from '../../proofs/errors.js';
import { LogTree } from '../../proofs/log.js';
import { flipBit, nodeHasher, prng } from './helpers.js';

const rnd = prng(7);
const seed = (i: number) => new Uint8Array(32).fill(i + 1);
const keys = [0, 1, 2, 3].map((i) => generateKeyPair(seed(i)));
const trusted = keys.slice(0, 3).map((k) => k.publicKey);
const outsider = keys[3];

/** A chain of checkpoints and the log over them. */
function chain(n: number): { cps: Checkpoint[]; log: LogTree } {
  const cps: Checkpoint[] = [];
  const log = new LogTree();
  for (let i = 0; i < n; i++) {
    const c: Checkpoint = { index: i, seq: 10 * i, masterRoot: rnd(32) };
    if (i > 0) c.prevCheckpointHash = checkpointHash(cps[i - 1]);
    cps.push(c);
    log.append(checkpointLeafHash(c));
  }
  return { cps, log };
}
const { cps, log } = chain(20);
const head: LogHead = { size: log.size, root: log.root() };

describe('checkpoint message', () => {
  it('has the documented layout and parses back', () => {
    const b = checkpointBytes(cps[3]);
    expect(b.length).toBe(82);
    expect(b[0]).toBe(0x18);
    expect(toHex(b.subarray(1, 17))).toBe('0000000000000003' + '000000000000001e');
    expect(b[49]).toBe(1);
    expect(checkpointBytes(cps[0]).length).toBe(50);
    for (const c of cps) expect(parseCheckpointBytes(checkpointBytes(c))).toEqual(c);
  });
  it('prevCheckpointHash is present exactly when index > 0', () => {
    expect(() => checkpointBytes({ index: 0, seq: 0, masterRoot: rnd(32), prevCheckpointHash: rnd(32) })).toThrow(RangeError);
    expect(() => checkpointBytes({ index: 1, seq: 0, masterRoot: rnd(32) })).toThrow(RangeError);
    expect(() => checkpointBytes({ index: 1, seq: 0, masterRoot: rnd(31), prevCheckpointHash: rnd(32) })).toThrow(RangeError);
  });
  it('parse rejects every malformed message with DecodeError', () => {
    const good = checkpointBytes(cps[5]);
    const bad: Uint8Array[] = [good.subarray(0, 81), new Uint8Array([...good, 0]), new Uint8Array(0)];
    const wrongDomain = good.slice();
    wrongDomain[0] = 0x19;
    const badFlag = good.slice();
    badFlag[49] = 2;
    const noFlag = good.slice();
    noFlag[49] = 0;
    const bigIndex = good.slice();
    bigIndex[1] = 0xff;
    const first = checkpointBytes(cps[0]).slice();
    first[8] = 0; // index stays 0 but claims a predecessor
    first[49] = 1;
    bad.push(wrongDomain, badFlag, noFlag, bigIndex, first);
    for (const b of bad) expect(() => parseCheckpointBytes(b)).toThrow(DecodeError);
  });
  it('links verify; a broken chain is CHAIN_MISMATCH', () => {
    for (let i = 1; i < cps.length; i++) expect(verifyCheckpointLink(cps[i - 1], cps[i], nodeHasher)).toEqual({ ok: true });
    expect(verifyCheckpointLink(cps[1], cps[3])).toMatchObject({ reason: 'CHAIN_MISMATCH' });
    expect(verifyCheckpointLink(cps[2], { ...cps[3], seq: 1 })).toMatchObject({ reason: 'CHAIN_MISMATCH' });
    expect(verifyCheckpointLink(cps[2], { ...cps[3], prevCheckpointHash: flipBit(cps[3].prevCheckpointHash!, 0) })).toMatchObject({ reason: 'CHAIN_MISMATCH' });
    expect(verifyCheckpointLink(cps[2], { ...cps[3], prevCheckpointHash: undefined })).toMatchObject({ reason: 'MALFORMED_INPUT' });
  });
  it('every checkpoint is included in the log at its index; tampered ones are not', () => {
    for (const c of cps) {
      const proof = log.inclusionProof(c.index);
      expect(verifyCheckpointInclusion(c, proof, head)).toEqual({ ok: true });
      expect(verifyCheckpointInclusion({ ...c, seq: c.seq + 1 }, proof, head).ok).toBe(false);
      expect(verifyCheckpointInclusion({ ...c, masterRoot: flipBit(c.masterRoot, 200) }, proof, head).ok).toBe(false);
      expect(verifyCheckpointInclusion(c, proof, { size: head.size - 1, root: log.root(head.size - 1) }).ok).toBe(false);
    }
  });
});

describe('signed heads and quorum', () => {
  const sigs = keys.slice(0, 3).map((k) => signHead(k.privateKey, head));
  const policy = { publicKeys: trusted, quorum: 2 };

  it('keys are deterministic from a seed and random otherwise', () => {
    expect(toHex(generateKeyPair(seed(0)).publicKey)).toBe(toHex(keys[0].publicKey));
    expect(toHex(publicKeyOf(keys[0].privateKey))).toBe(toHex(keys[0].publicKey));
    expect(toHex(generateKeyPair().publicKey)).not.toBe(toHex(generateKeyPair().publicKey));
  });

  it('a quorum of distinct trusted valid signatures is accepted, with the signers proven', () => {
    const r = verifyCheckpoint(head, sigs.slice(0, 2), policy);
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.signers.map(toHex)).toEqual(trusted.slice(0, 2).map(toHex));
      expect(r.head.size).toBe(head.size);
    }
    expect(verifyCheckpoint(head, sigs, policy).ok).toBe(true);
    expect(verifyCheckpoint(head, [sigs[2], sigs[0]], policy).ok).toBe(true);
  });

  it('below quorum, missing, duplicated, untrusted, forged, tampered: each with its reason', () => {
    expect(verifyCheckpoint(head, sigs.slice(0, 1), policy)).toMatchObject({ reason: 'QUORUM_NOT_MET', message: '1 valid trusted signatures, want 2' });
    expect(verifyCheckpoint(head, [], policy)).toMatchObject({ reason: 'MISSING_SIGNATURE' });
    expect(verifyCheckpoint(head, [sigs[0], sigs[0]], policy)).toMatchObject({ reason: 'DUPLICATE_SIGNER' });
    // the same signer twice with two different (both valid-looking) signatures still counts once
    expect(verifyCheckpoint(head, [sigs[0], { ...sigs[0], signature: flipBit(sigs[0].signature, 1) }], policy)).toMatchObject({ reason: 'DUPLICATE_SIGNER' });
    const foreign = signHead(outsider.privateKey, head);
    expect(verifyCheckpoint(head, [sigs[0], foreign], policy)).toMatchObject({ reason: 'UNTRUSTED_KEY' });
    const forged: HeadSignature = { publicKey: trusted[1], signature: rnd(64) };
    expect(verifyCheckpoint(head, [sigs[0], forged], policy)).toMatchObject({ reason: 'BAD_SIGNATURE' });
    // an outsider's signature relabelled with a trusted key
    expect(verifyCheckpoint(head, [sigs[0], { publicKey: trusted[1], signature: foreign.signature }], policy)).toMatchObject({ reason: 'BAD_SIGNATURE' });
    for (let bit = 0; bit < 512; bit += 37) {
      expect(verifyCheckpoint(head, [sigs[0], { ...sigs[1], signature: flipBit(sigs[1].signature, bit) }], policy)).toMatchObject({ reason: 'BAD_SIGNATURE' });
    }
    expect(verifyCheckpoint(head, [sigs[0], { ...sigs[1], signature: sigs[1].signature.subarray(0, 63) }], policy)).toMatchObject({ reason: 'BAD_SIGNATURE' });
    // tampered head: the signatures no longer cover it
    for (const h2 of [{ size: head.size + 1, root: head.root }, { size: head.size, root: flipBit(head.root, 5) }, { size: head.size - 1, root: log.root(head.size - 1) }]) {
      expect(verifyCheckpoint(h2, sigs, policy)).toMatchObject({ reason: 'BAD_SIGNATURE' });
    }
  });

  it('allowUntrusted skips (never counts) untrusted signers', () => {
    const foreign = signHead(outsider.privateKey, head);
    const r = verifyCheckpoint(head, [foreign, sigs[0], sigs[1]], { ...policy, allowUntrusted: true });
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.skipped.map(toHex)).toEqual([toHex(outsider.publicKey)]);
    expect(verifyCheckpoint(head, [foreign, sigs[0]], { ...policy, allowUntrusted: true })).toMatchObject({ reason: 'QUORUM_NOT_MET' });
  });

  it('a malleated signature (S + L) is rejected: strict RFC 8032 verification', () => {
    const L = 2n ** 252n + 27742317777372353535851937790883648493n;
    const sig = sigs[0].signature;
    let s = 0n;
    for (let i = 31; i >= 0; i--) s = (s << 8n) | BigInt(sig[32 + i]);
    s += L;
    const mal = sig.slice();
    for (let i = 0; i < 32; i++) mal[32 + i] = Number((s >> BigInt(8 * i)) & 0xffn);
    expect(verifyHeadSignature(head, { publicKey: trusted[0], signature: mal })).toBe(false);
    expect(verifyHeadSignature(head, sigs[0])).toBe(true);
  });

  it('an unusable trust policy is INVALID_TRUST_POLICY', () => {
    for (const p of [
      { publicKeys: trusted, quorum: 0 },
      { publicKeys: trusted, quorum: 4 },
      { publicKeys: trusted, quorum: 1.5 },
      { publicKeys: [], quorum: 1 },
      { publicKeys: [trusted[0], trusted[0]], quorum: 1 },
      { publicKeys: [trusted[0].subarray(1)], quorum: 1 },
    ]) {
      expect(verifyCheckpoint(head, sigs, p)).toMatchObject({ reason: 'INVALID_TRUST_POLICY' });
    }
  });

  it('never throws on garbage', () => {
    const junk: unknown[] = [undefined, null, 1, 'x', {}, [], [null], [{}], [{ publicKey: 1 }], new Uint8Array(3)];
    for (const j of junk) {
      const f = verifyCheckpoint as (...a: unknown[]) => { ok: boolean };
      expect(f(j, sigs, policy).ok).toBe(false);
      expect(f(head, j, policy).ok).toBe(false);
      expect(f(head, sigs, j).ok).toBe(false);
      expect(f(head, [sigs[0], j], policy).ok).toBe(false);
      expect((verifyHeadSignature as (...a: unknown[]) => boolean)(head, j)).toBe(false);
    }
  });
});

describe('trusted-head updates', () => {
  const at = (n: number): LogHead => ({ size: n, root: log.root(n) });
  it('accepts an extension, refuses a rollback and forks', () => {
    for (let m = 1; m <= 20; m++) {
      for (let n = m; n <= 20; n += 3) {
        expect(verifyHeadExtends(at(m), at(n), log.consistencyProof(m, n), nobleHasher)).toEqual({ ok: true });
        if (n > m) expect(verifyHeadExtends(at(n), at(m), [])).toMatchObject({ reason: 'ROLLBACK' });
      }
    }
    // a forked log: same first 10 checkpoints, then different ones
    const fork = new LogTree();
    for (let i = 0; i < 20; i++) fork.append(i < 10 ? log.leafHash(i) : rnd(32));
    expect(verifyHeadExtends(at(15), { size: 15, root: fork.root(15) }, [])).toMatchObject({ reason: 'FORK' });
    expect(verifyHeadExtends(at(12), { size: 18, root: fork.root(18) }, fork.consistencyProof(12, 18))).toMatchObject({ reason: 'FORK' });
    expect(verifyHeadExtends(at(8), { size: 18, root: fork.root(18) }, fork.consistencyProof(8, 18))).toEqual({ ok: true });
    expect(verifyHeadExtends(at(12), at(18), log.consistencyProof(12, 18).slice(1))).toMatchObject({ reason: 'PROOF_SIZE' });
    expect(verifyHeadExtends(at(0), at(5), [])).toEqual({ ok: true });
    expect(verifyHeadExtends({ size: 0, root: rnd(32) }, at(5), [])).toMatchObject({ reason: 'ROOT_MISMATCH' });
  });
});
