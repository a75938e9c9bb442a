/**
 * The native Ed25519 of co-signing (src/proof/ed25519_node.ts) gives exactly the verdicts and
 * signatures of the isomorphic strict code (proofs/checkpoint.ts): every replica, of this version
 * or an earlier one, must judge every co-signature alike. Attacks the cases where OpenSSL's
 * cofactorless check and the strict cofactored check could part: a signature whose R carries a
 * small-order component, a public key of small order, non-canonical S and point encodings.
 */
import { createHash, createPublicKey, randomBytes, verify as nodeVerify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ED25519_TORSION_SUBGROUP, ed25519 } from '@noble/curves/ed25519.js';
import { generateKeyPair, logHeadMessage, signHead, verifyHeadSignature, type HeadSignature, type LogHead } from '../../proofs/checkpoint.js';
import { signHeadNative, verifyHeadSignatureNative } from '../../src/proof/ed25519_node.js';

const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const P = 2n ** 255n - 19n;
const leToBig = (b: Uint8Array): bigint => BigInt(`0x${Buffer.from(b).reverse().toString('hex') || '0'}`);
const bigToLe = (n: bigint, len = 32): Uint8Array => new Uint8Array(Buffer.from(n.toString(16).padStart(len * 2, '0'), 'hex').reverse());
const sha512 = (...parts: Uint8Array[]): Uint8Array => {
  const h = createHash('sha512');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};

function head(seed: number): LogHead {
  return { size: seed * 7 + 1, root: new Uint8Array(createHash('sha256').update(`root ${seed}`).digest()) };
}

/** Both implementations' verdicts, asserted equal; returns the verdict. */
function verdict(h: LogHead, sig: HeadSignature): boolean {
  const strict = verifyHeadSignature(h, sig);
  expect(verifyHeadSignatureNative(h, sig)).toBe(strict);
  return strict;
}

/** A signature of `h` under the private key `seed` whose R is r·B plus a point of order 8. */
function torsionSignature(seed: Uint8Array, h: LogHead): Uint8Array {
  const d = sha512(seed).slice(0, 32);
  d[0] &= 248;
  d[31] &= 127;
  d[31] |= 64;
  const a = leToBig(d) % L;
  const A = ed25519.getPublicKey(seed);
  const r = (leToBig(randomBytes(32)) % (L - 1n)) + 1n;
  const R = ed25519.Point.BASE.multiply(r).add(ed25519.Point.fromHex(ED25519_TORSION_SUBGROUP[1])).toBytes();
  const k = leToBig(sha512(R, A, logHeadMessage(h))) % L;
  const S = (r + k * a) % L;
  const sig = new Uint8Array(64);
  sig.set(R, 0);
  sig.set(bigToLe(S), 32);
  return sig;
}

describe('native Ed25519 of heads', () => {
  it('signs byte for byte as the isomorphic code, with the same public key', () => {
    for (let i = 0; i < 20; i++) {
      const kp = generateKeyPair();
      const h = head(i);
      const a = signHead(kp.privateKey, h);
      const b = signHeadNative(kp.privateKey, h);
      expect(Buffer.from(b.signature).toString('hex')).toBe(Buffer.from(a.signature).toString('hex'));
      expect(Buffer.from(b.publicKey).toString('hex')).toBe(Buffer.from(kp.publicKey).toString('hex'));
      expect(verdict(h, b)).toBe(true);
    }
    expect(() => signHeadNative(new Uint8Array(31), head(0))).toThrow(RangeError);
  });

  it('refuses what the strict check refuses: another head, another key, a flipped bit, S + L, a malformed head', () => {
    const kp = generateKeyPair();
    const other = generateKeyPair();
    const h = head(3);
    const sig = signHead(kp.privateKey, h);
    expect(verdict(head(4), sig)).toBe(false);
    expect(verdict(h, { publicKey: other.publicKey, signature: sig.signature })).toBe(false);
    for (const bit of [0, 77, 255, 256, 300, 511]) {
      const s = sig.signature.slice();
      s[bit >> 3] ^= 1 << (bit & 7);
      expect(verdict(h, { publicKey: kp.publicKey, signature: s })).toBe(false);
    }
    // S + L: the same point equation, a non-canonical scalar (RFC 8032 refuses it).
    const sPlusL = sig.signature.slice();
    sPlusL.set(bigToLe(leToBig(sig.signature.subarray(32)) + L), 32);
    expect(verdict(h, { publicKey: kp.publicKey, signature: sPlusL })).toBe(false);
    expect(verdict({ size: -1, root: h.root }, sig)).toBe(false);
    expect(verdict({ size: h.size, root: new Uint8Array(31) }, sig)).toBe(false);
    expect(verdict(h, { publicKey: kp.publicKey.subarray(1), signature: sig.signature })).toBe(false);
    expect(verdict(h, { publicKey: kp.publicKey, signature: sig.signature.subarray(1) })).toBe(false);
  });

  it('refuses small-order and non-canonical public keys, as the strict check does', () => {
    const h = head(5);
    for (const t of ED25519_TORSION_SUBGROUP) {
      const A = ed25519.Point.fromHex(t).toBytes();
      // Any R, S: with a small-order key the cofactorless equation can hold for S = 0, R = -k·A.
      const sig = new Uint8Array(64);
      sig.set(A, 0);
      expect(verdict(h, { publicKey: A, signature: sig })).toBe(false);
    }
    // y ≥ p: the identity's y = 1 encoded as 1 + p.
    const nonCanonical = bigToLe(1n + P);
    expect(verdict(h, { publicKey: nonCanonical, signature: new Uint8Array(64) })).toBe(false);
  });

  it('accepts, as the strict check does, a signature whose R has a small-order component (which OpenSSL alone refuses)', () => {
    const seed = randomBytes(32);
    const publicKey = ed25519.getPublicKey(seed);
    for (let i = 0; i < 5; i++) {
      const h = head(10 + i);
      const signature = torsionSignature(seed, h);
      // OpenSSL's cofactorless check refuses it: the fallback is what accepts it.
      const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') }, format: 'jwk' });
      expect(nodeVerify(null, logHeadMessage(h), key, signature)).toBe(false);
      expect(verdict(h, { publicKey, signature })).toBe(true);
    }
  });

  it('refuses random signatures under a real key', () => {
    const kp = generateKeyPair();
    for (let i = 0; i < 50; i++) expect(verdict(head(i), { publicKey: kp.publicKey, signature: new Uint8Array(randomBytes(64)) })).toBe(false);
  });
});
