/**
 * Deep copies of certificates and their comparison field by field, for the one-entry memos that
 * recognise a certificate seen just before: the verifier's (`lsm_proof.ts`, `verifyCertificate`)
 * and the encoder's (`compact_encoding.ts`, the wire form's derived fields). Every proof against
 * one head carries the same certificate, so a memo of the last one saves its hashing; a memo keeps
 * a copy the caller cannot reach, and a certificate that differs from it in any field — however it
 * was changed in place since — is not recognised. Isomorphic: no `node:` imports.
 * @module
 */
import { equalBytes } from './bytes.js';
import type { Checkpoint, HeadSignature, LogHead } from './checkpoint.js';
import { cloneSignerSet, type SignerSet } from './signer_set.js';

/**
 * The fields of a certificate these functions read: `CheckpointCertificate` of `lsm_proof.ts`,
 * spelt out here so that this module does not import the verifier that imports it.
 */
export interface CertificateFields {
  checkpoint: Checkpoint;
  head: LogHead;
  signatures: HeadSignature[];
  inclusion: Uint8Array[];
  signers?: SignerSet;
}

/** Largest list (signatures, members, hashes, trusted keys) of a certificate a memo keeps. */
export const CERTIFICATE_MEMO_MAX_ITEMS = 64;

const copyBytes = (b: Uint8Array): Uint8Array => b.slice();

/** True when `b` is a byte string equal to `a`, or both are absent. Never throws. */
export const sameBytes = (a: Uint8Array | undefined, b: unknown): boolean => (a === undefined ? b === undefined : b instanceof Uint8Array && equalBytes(a, b));

/** True when `b` is a list of byte strings equal to `a` item by item, or both are absent. Never throws. */
export function sameList(a: readonly Uint8Array[] | undefined, b: unknown): boolean {
  if (a === undefined) return b === undefined;
  if (!Array.isArray(b) || b.length !== a.length) return false;
  for (let i = 0; i < a.length; i++) if (!sameBytes(a[i], b[i])) return false;
  return true;
}

/**
 * A deep copy of `cert` (of a well-formed certificate: throws on a malformed one), or undefined when
 * one of its lists is longer than {@link CERTIFICATE_MEMO_MAX_ITEMS} (not worth keeping).
 */
export function copyCertificate(cert: CertificateFields): CertificateFields | undefined {
  const lists = [cert.signatures, cert.inclusion, cert.signers?.members ?? []];
  if (lists.some((l) => l.length > CERTIFICATE_MEMO_MAX_ITEMS)) return undefined;
  const c = cert.checkpoint;
  const checkpoint: Checkpoint = { index: c.index, seq: c.seq, masterRoot: copyBytes(c.masterRoot) };
  if (c.prevCheckpointHash !== undefined) checkpoint.prevCheckpointHash = copyBytes(c.prevCheckpointHash);
  if (c.time !== undefined) checkpoint.time = c.time;
  if (c.signerSetHash !== undefined) checkpoint.signerSetHash = copyBytes(c.signerSetHash);
  const copy: CertificateFields = {
    checkpoint,
    head: { size: cert.head.size, root: copyBytes(cert.head.root) },
    signatures: cert.signatures.map((s) => ({ publicKey: copyBytes(s.publicKey), signature: copyBytes(s.signature) })),
    inclusion: cert.inclusion.map(copyBytes),
  };
  if (cert.signers !== undefined) copy.signers = cloneSignerSet(cert.signers);
  return copy;
}

/** Whether `cert` equals the copy `a` field by field (checkpoint, head, signatures, inclusion, signer set). Never throws on malformed input. */
export function sameCertificate(a: CertificateFields, cert: CertificateFields): boolean {
  const c = cert.checkpoint;
  if (!c || typeof c !== 'object' || !cert.head || typeof cert.head !== 'object') return false;
  if (c.index !== a.checkpoint.index || c.seq !== a.checkpoint.seq || c.time !== a.checkpoint.time || cert.head.size !== a.head.size) return false;
  if (!sameBytes(a.checkpoint.masterRoot, c.masterRoot) || !sameBytes(a.checkpoint.prevCheckpointHash, c.prevCheckpointHash)) return false;
  if (!sameBytes(a.checkpoint.signerSetHash, c.signerSetHash) || !sameBytes(a.head.root, cert.head.root) || !sameList(a.inclusion, cert.inclusion)) return false;
  if (!Array.isArray(cert.signatures) || cert.signatures.length !== a.signatures.length) return false;
  for (let i = 0; i < a.signatures.length; i++) {
    const s = cert.signatures[i];
    if (!s || typeof s !== 'object' || !sameBytes(a.signatures[i].publicKey, s.publicKey) || !sameBytes(a.signatures[i].signature, s.signature)) return false;
  }
  const set = cert.signers;
  if (a.signers === undefined ? set !== undefined : !set || typeof set !== 'object' || set.quorum !== a.signers.quorum || !Array.isArray(set.members)) return false;
  if (a.signers && set) {
    if (set.members.length !== a.signers.members.length) return false;
    for (let i = 0; i < set.members.length; i++) {
      const x = set.members[i];
      if (!x || typeof x !== 'object' || x.id !== a.signers.members[i].id || !sameBytes(a.signers.members[i].publicKey, x.publicKey)) return false;
    }
  }
  return true;
}
