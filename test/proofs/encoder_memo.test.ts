/**
 * The compact encoder's memo of the last certificate it wrote (`proofs/compact_encoding.ts`,
 * `certificateWireParts`): it is used (a second proof against the same head hashes less), and it
 * never changes the bytes — every certificate that differs from the remembered one in any field,
 * and the remembered certificate itself changed in place after it was written, is encoded exactly
 * as by an encoder that has not seen it (the memo replaced by another certificate first).
 */
import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { toHex } from '../../proofs/bytes.js';
import { generateKeyPair } from '../../proofs/checkpoint.js';
import { installSha256 } from '../../proofs/hash.js';
import { getProofCodec } from '../../proofs/lsm_encoding.js';
import type { GetProof } from '../../proofs/lsm_proof.js';
import { ProofDB } from '../../src/index.js';
import { tempDir } from '../engine/harness.js';
import { buildScenario, clone, enc, SCENARIO_OPTIONS, skey, type Scenario } from './lsm_helpers.js';

let S: Scenario;
let proof: GetProof;

beforeAll(async () => {
  const { dir, cleanup } = tempDir('proofkv-encmemo-');
  S = await buildScenario((d) => ProofDB.open(d, SCENARIO_OPTIONS), dir, cleanup);
  proof = (await S.db.getWithProof(enc(skey(13)))).proof;
});
afterAll(async () => {
  await S?.cleanup();
});
afterEach(() => installSha256(undefined));

const flip = (b: Uint8Array) => {
  const c = b.slice();
  c[c.length - 1] ^= 1;
  return c;
};

/** A proof whose certificate differs from every other here (its seq), to replace the memo. */
const stranger = (): GetProof => {
  const p = clone(proof);
  p.certificate.checkpoint.seq += 1000;
  return p;
};

/** What an encoder that has not seen `p`'s certificate writes (or the error it throws), in hex. */
function fresh(p: GetProof, trusted: boolean): string {
  getProofCodec.encodeTrusted(stranger());
  return attempt(() => (trusted ? getProofCodec.encodeTrusted(p) : getProofCodec.encode(p)));
}

/** The same with the honest certificate written just before. */
function primed(p: GetProof, trusted: boolean): string {
  getProofCodec.encodeTrusted(proof);
  return attempt(() => (trusted ? getProofCodec.encodeTrusted(p) : getProofCodec.encode(p)));
}

function attempt(f: () => Uint8Array): string {
  try {
    return toHex(f());
  } catch (e) {
    return `throws ${e instanceof Error ? e.constructor.name : typeof e}`;
  }
}

describe("the compact encoder's certificate memo", () => {
  it('is used: encoding a proof against the same head again hashes less', () => {
    let calls = 0;
    installSha256((m) => {
      calls++;
      return nobleSha256(m);
    }, { jsBelow: 0 });
    getProofCodec.encodeTrusted(stranger());
    calls = 0;
    getProofCodec.encodeTrusted(clone(proof));
    const first = calls;
    calls = 0;
    getProofCodec.encodeTrusted(clone(proof));
    expect(first).toBeGreaterThan(0);
    expect(calls).toBeLessThan(first);
  });

  it('never changes the bytes: every field of the certificate changed', () => {
    const other = generateKeyPair(new Uint8Array(32).fill(3)).publicKey;
    const cert = (f: (c: GetProof['certificate']) => void) => (p: GetProof) => f(p.certificate);
    const edits: Array<[string, (p: GetProof) => void]> = [
      ['nothing', () => {}],
      ['checkpoint index', cert((c) => (c.checkpoint.index -= 1))],
      ['checkpoint seq', cert((c) => (c.checkpoint.seq += 1))],
      ['checkpoint time', cert((c) => (c.checkpoint.time! += 1))],
      ['checkpoint time dropped', cert((c) => delete c.checkpoint.time)],
      ['masterRoot', cert((c) => (c.checkpoint.masterRoot = flip(c.checkpoint.masterRoot)))],
      ['prevCheckpointHash', cert((c) => (c.checkpoint.prevCheckpointHash = flip(c.checkpoint.prevCheckpointHash!)))],
      ['signerSetHash', cert((c) => (c.checkpoint.signerSetHash = flip(c.checkpoint.signerSetHash!)))],
      ['head size', cert((c) => (c.head.size += 1))],
      ['head root', cert((c) => (c.head.root = flip(c.head.root)))],
      ['signature', cert((c) => (c.signatures[0].signature = flip(c.signatures[0].signature)))],
      ['signature key', cert((c) => (c.signatures[0].publicKey = other))],
      ['signatures dropped', cert((c) => (c.signatures = []))],
      ['signature repeated', cert((c) => c.signatures.push(clone(c.signatures[0])))],
      ['inclusion', cert((c) => (c.inclusion = c.inclusion.length ? [flip(c.inclusion[0]), ...c.inclusion.slice(1)] : [new Uint8Array(32)]))],
      ['inclusion dropped', cert((c) => (c.inclusion = []))],
      ['signer set dropped', cert((c) => delete c.signers)],
      ['signer set quorum', cert((c) => (c.signers!.quorum += 1))],
      ['signer set member id', cert((c) => (c.signers!.members[0].id += 1))],
      ['signer set member key', cert((c) => (c.signers!.members[0].publicKey = other))],
      ['signer set member added', cert((c) => c.signers!.members.push({ id: 99, publicKey: other }))],
      ['malformed head', cert((c) => (c.head = 'x' as unknown as GetProof['certificate']['head']))],
    ];
    const honest = fresh(clone(proof), true);
    let differ = 0;
    for (const [what, edit] of edits) {
      const p = clone(proof);
      edit(p);
      for (const trusted of [true, false]) expect(primed(p, trusted), `${what} (${trusted ? 'encodeTrusted' : 'encode'})`).toBe(fresh(p, trusted));
      if (fresh(p, true) !== honest) differ++;
    }
    // The edits are real: every one but "nothing" changes the bytes (or throws).
    expect(differ).toBe(edits.length - 1);
  });

  it('never changes the bytes: the remembered certificate changed in place after it was written', () => {
    const p = clone(proof);
    const c = p.certificate;
    const inPlace: Array<[string, () => void]> = [
      ['head root', () => (c.head.root[0] ^= 1)],
      ['inclusion hash', () => (c.inclusion[0][0] ^= 1)],
      ['signature', () => (c.signatures[0].signature[0] ^= 1)],
      ['signer key', () => (c.signers!.members[0].publicKey[0] ^= 1)],
      ['signerSetHash', () => (c.checkpoint.signerSetHash![0] ^= 1)],
      ['masterRoot', () => (c.checkpoint.masterRoot[0] ^= 1)],
    ];
    for (const [what, flipIt] of inPlace) {
      const before = attempt(() => getProofCodec.encodeTrusted(p)); // remembered now
      flipIt();
      const got = attempt(() => getProofCodec.encodeTrusted(p));
      const want = fresh(p, true);
      expect(got, what).toBe(want);
      expect(got, `${what}: the change shows`).not.toBe(before);
      flipIt(); // back
      expect(attempt(() => getProofCodec.encodeTrusted(p)), `${what} restored`).toBe(before);
      // Remembered from p, then p changed: an equal certificate held elsewhere still encodes as itself.
      flipIt();
      expect(attempt(() => getProofCodec.encodeTrusted(clone(proof))), `${what}: another holder's copy`).toBe(fresh(clone(proof), true));
      flipIt();
    }
  });
});
