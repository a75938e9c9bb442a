/**
 * The node's Ed25519 identity: a 32-byte private key in `NODE_KEY` (mode 0600), created on first
 * open. The public key is what clients trust.
 *
 * A node whose checkpoint log already holds checkpoints never starts silently with a new identity:
 * a missing `NODE_KEY` there is refused unless the caller asks to rotate the key. A rotation is a
 * signed statement appended (synced) to `KEY_ROTATIONS`, one JSON line each:
 *
 * ```
 * message = "proofkv-key-rotation-v1\n" || u64 BE logSize || oldPublicKey[32] || newPublicKey[32]
 * { "logSize", "oldPublicKey", "newPublicKey", "oldSignature"?, "newSignature", "time" }   (bytes: base64url)
 * ```
 * `logSize` is the checkpoint log size when the new key took over: the head of that size was the
 * last the old key signed, larger heads are signed by the new key. `newSignature` proves possession
 * of the new key; `oldSignature`, by the key clients trusted, is what lets them follow the rotation
 * — it is absent when the old key was lost, and then clients must get the new public key out of
 * band. The message and its verification are `proofs/rotation.ts`, shared with the client SDK,
 * which follows rotations (docs/client.md).
 * @module
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import { equalBytes } from '../../proofs/bytes.js';
import { generateKeyPair, publicKeyOf, type KeyPair } from '../../proofs/checkpoint.js';
import { keyRotationMessage, verifyKeyRotation, type KeyRotation } from '../../proofs/rotation.js';
import { CorruptionError, ErrorCode, InvalidArgumentError } from '../errors.js';
import { syncDir } from '../util/durable.js';

export { KEY_ROTATION_CONTEXT, keyRotationMessage, verifyKeyRotation, type KeyRotation } from '../../proofs/rotation.js';

/** File name of the node key. */
export const NODE_KEY_FILE = 'NODE_KEY';
/** File name of the key rotation statements. */
export const KEY_ROTATIONS_FILE = 'KEY_ROTATIONS';
const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64url');
const unb64 = (s: unknown, what: string): Uint8Array => {
  if (typeof s !== 'string') throw new CorruptionError(KEY_ROTATIONS_FILE, `${what} missing`);
  return new Uint8Array(Buffer.from(s, 'base64url'));
};

/** The rotations recorded in `dir`, oldest first. */
export function readKeyRotations(dir: string): KeyRotation[] {
  const file = path.join(dir, KEY_ROTATIONS_FILE);
  if (!fs.existsSync(file)) return [];
  const out: KeyRotation[] = [];
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    let o: Record<string, unknown>;
    try {
      o = JSON.parse(line) as Record<string, unknown>;
    } catch {
      // A torn last line (a crash mid-append) is dropped; the key file was not replaced yet.
      continue;
    }
    const r: KeyRotation = {
      logSize: Number(o.logSize),
      oldPublicKey: unb64(o.oldPublicKey, 'oldPublicKey'),
      newPublicKey: unb64(o.newPublicKey, 'newPublicKey'),
      newSignature: unb64(o.newSignature, 'newSignature'),
      time: String(o.time),
    };
    if (o.oldSignature !== undefined) r.oldSignature = unb64(o.oldSignature, 'oldSignature');
    if (!verifyKeyRotation(r)) throw new CorruptionError(KEY_ROTATIONS_FILE, 'a rotation statement does not verify');
    out.push(r);
  }
  return out;
}

function writeSynced(file: string, bytes: Uint8Array | string, flag: 'w' | 'a'): void {
  const fd = fs.openSync(file, flag, 0o600);
  try {
    fs.writeSync(fd, typeof bytes === 'string' ? Buffer.from(bytes) : bytes);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function readKey(file: string): KeyPair {
  const bytes = fs.readFileSync(file);
  if (bytes.length !== 32) throw new CorruptionError(path.basename(file), `node key is ${bytes.length} bytes, want 32`);
  const privateKey = new Uint8Array(bytes);
  return { privateKey, publicKey: publicKeyOf(privateKey) };
}

/** What the checkpoint log says about the identity that signed it. */
export interface LogIdentity {
  /** Checkpoints in the log. */
  logSize: number;
  /** Public key of the latest checkpoint's signature, if any. */
  lastSigner?: Uint8Array;
}

/** The node key and its rotation history. */
export interface NodeKeyState {
  key: KeyPair;
  rotations: KeyRotation[];
  /** The rotation this open made, if any. */
  rotated?: KeyRotation;
}

/**
 * Loads the node key of `dir`, creating it when the log is empty. With a non-empty log, a missing
 * key is refused (`INVALID_ARGUMENT`) unless `rotate`; with `rotate`, a new key replaces the old
 * one (or the lost one) after a signed statement is appended to `KEY_ROTATIONS`.
 */
export function openNodeKey(dir: string, log: LogIdentity, rotate = false): NodeKeyState {
  const file = path.join(dir, NODE_KEY_FILE);
  const tmp = `${file}.tmp`;
  const rotations = readKeyRotations(dir);
  const last = rotations[rotations.length - 1];
  // A crash after the statement was appended but before the new key was renamed into place.
  if (last && fs.existsSync(tmp)) {
    const pending = readKey(tmp);
    if (equalBytes(pending.publicKey, last.newPublicKey)) {
      fs.renameSync(tmp, file);
      syncDir(path.dirname(file));
    }
  }
  const exists = fs.existsSync(file);
  if (exists && !(rotate && log.logSize > 0)) return { key: readKey(file), rotations };
  if (!exists && log.logSize > 0 && !rotate) {
    const signer = log.lastSigner ? Buffer.from(log.lastSigner).toString('hex').slice(0, 16) : 'unknown';
    throw new InvalidArgumentError(
      ErrorCode.INVALID_ARGUMENT,
      `${NODE_KEY_FILE} is missing but the checkpoint log holds ${log.logSize} checkpoints signed by node ${signer}: ` +
        `restore the key, or rotate to a new one (serve --rotate-key), which clients must be told about`,
    );
  }
  const kp = generateKeyPair();
  writeSynced(tmp, kp.privateKey, 'w');
  let rotated: KeyRotation | undefined;
  if (log.logSize > 0) {
    const old = exists ? readKey(file) : undefined;
    const oldPublicKey = old?.publicKey ?? log.lastSigner ?? new Uint8Array(32);
    const body = { logSize: log.logSize, oldPublicKey, newPublicKey: kp.publicKey };
    const msg = keyRotationMessage(body);
    rotated = { ...body, newSignature: ed25519.sign(msg, kp.privateKey), time: new Date().toISOString() };
    if (old) rotated.oldSignature = ed25519.sign(msg, old.privateKey);
    const line = JSON.stringify({
      logSize: rotated.logSize,
      oldPublicKey: b64(rotated.oldPublicKey),
      newPublicKey: b64(rotated.newPublicKey),
      oldSignature: rotated.oldSignature ? b64(rotated.oldSignature) : undefined,
      newSignature: b64(rotated.newSignature),
      time: rotated.time,
    });
    const rfile = path.join(dir, KEY_ROTATIONS_FILE);
    const created = !fs.existsSync(rfile);
    writeSynced(rfile, `${line}\n`, 'a');
    if (created) syncDir(path.dirname(rfile));
    rotations.push(rotated);
  }
  fs.renameSync(tmp, file);
  syncDir(path.dirname(file));
  return { key: kp, rotations, rotated };
}
