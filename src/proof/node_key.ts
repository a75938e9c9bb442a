/**
 * The node's Ed25519 identity: a 32-byte private key in `NODE_KEY` (mode 0600), created on first
 * open. The public key is what clients trust.
 * @module
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { generateKeyPair, publicKeyOf, type KeyPair } from '../../proofs/checkpoint.js';
import { CorruptionError } from '../errors.js';

/** File name of the node key. */
export const NODE_KEY_FILE = 'NODE_KEY';

/** Loads the node key of `dir`, creating it if missing. */
export function loadOrCreateNodeKey(dir: string): KeyPair {
  const file = path.join(dir, NODE_KEY_FILE);
  if (fs.existsSync(file)) {
    const bytes = fs.readFileSync(file);
    if (bytes.length !== 32) throw new CorruptionError(NODE_KEY_FILE, `node key is ${bytes.length} bytes, want 32`);
    const privateKey = new Uint8Array(bytes);
    return { privateKey, publicKey: publicKeyOf(privateKey) };
  }
  const kp = generateKeyPair();
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, kp.privateKey, { mode: 0o600 });
  const fd = fs.openSync(tmp, 'r+');
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
  return kp;
}
