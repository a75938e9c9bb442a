/**
 * Node key rotation statements (docs/storage.md `KEY_ROTATIONS`): the signed message and its
 * verification, shared by the node (which writes them) and the client SDK (which follows them).
 * Pure and isomorphic.
 *
 * ```
 * message = "proofkv-key-rotation-v1\n" || u64 BE logSize || oldPublicKey[32] || newPublicKey[32]
 * ```
 * `logSize` is the checkpoint log size when the new key took over: the head of that size was the
 * last one the old key signed, larger heads are signed by the new key.
 * @module
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { concatBytes, writeU64BE } from './bytes.js';

/** Domain separation of a rotation statement's signed message. */
export const KEY_ROTATION_CONTEXT = 'proofkv-key-rotation-v1\n';

/** A signed key rotation. */
export interface KeyRotation {
  /** Checkpoint log size when the new key took over. */
  logSize: number;
  oldPublicKey: Uint8Array;
  newPublicKey: Uint8Array;
  /** By the old key; absent when the old key was lost. */
  oldSignature?: Uint8Array;
  /** By the new key. */
  newSignature: Uint8Array;
  /** When the rotation happened (ISO 8601). */
  time: string;
}

/** The message both keys sign. */
export function keyRotationMessage(r: Pick<KeyRotation, 'logSize' | 'oldPublicKey' | 'newPublicKey'>): Uint8Array {
  const size = new Uint8Array(8);
  writeU64BE(size, 0, r.logSize);
  return concatBytes(new TextEncoder().encode(KEY_ROTATION_CONTEXT), size, r.oldPublicKey, r.newPublicKey);
}

/** True when the statement's signatures verify (the old one only when present). Never throws. */
export function verifyKeyRotation(r: KeyRotation): boolean {
  try {
    const msg = keyRotationMessage(r);
    if (!ed25519.verify(r.newSignature, msg, r.newPublicKey, { zip215: false })) return false;
    return r.oldSignature === undefined || ed25519.verify(r.oldSignature, msg, r.oldPublicKey, { zip215: false });
  } catch {
    return false;
  }
}
