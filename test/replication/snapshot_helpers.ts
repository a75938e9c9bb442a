/**
 * Helpers of the snapshot tests (test/replication/snapshot.test.ts, snapshot_shape.test.ts):
 * temporary directories removed after each test, and member data directories as `cluster init`
 * lays them out.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach } from 'vitest';
import { generateKeyPair } from '../../proofs/checkpoint.js';
import { tempDir } from '../engine/harness.js';

/** A function making a temporary directory (prefix `prefix`) that is removed after the test; registers the `afterEach`. */
export function scratchDirs(prefix: string): () => string {
  const cleanups: Array<() => void> = [];
  afterEach(() => {
    for (const c of cleanups.splice(0)) c();
  });
  return () => {
    const t = tempDir(prefix);
    cleanups.push(t.cleanup);
    return t.dir;
  };
}

/** A data directory holding only a node key, as `proofkv cluster init` leaves a new member's. */
export function memberDir(root: string, name: string): string {
  const dir = path.join(root, name);
  fs.mkdirSync(dir, { mode: 0o700 });
  fs.writeFileSync(path.join(dir, 'NODE_KEY'), generateKeyPair().privateKey, { mode: 0o600 });
  return dir;
}
