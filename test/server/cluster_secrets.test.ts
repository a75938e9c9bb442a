/**
 * The secret file during a rotation (issue 10, item 3; docs/cluster.md § Rotating the cluster
 * secret): one line (the secret) or two (the one sent with, then the one also accepted).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { toHex } from '../../proofs/bytes.js';
import { parseClusterSecrets, readClusterSecret, readClusterSecrets } from '../../server/cluster_config.js';
import { thrownCode } from '../support/thrown_code.js';

const A = 'a'.repeat(64);
const B = 'B'.repeat(64);
const codeOf = thrownCode;

describe('parseClusterSecrets', () => {
  it('takes one secret, or the one sent with and the one also accepted', () => {
    const one = parseClusterSecrets(`  ${A}\n`);
    expect([toHex(one.secret), one.accept.length]).toEqual([A, 0]);
    const two = parseClusterSecrets(`${B}\n\n  ${A}  \n`);
    expect([toHex(two.secret), two.accept.map(toHex)]).toEqual([B.toLowerCase(), [A]]);
  });

  it('refuses none, three, a repeated secret and a malformed line', () => {
    for (const text of ['', '\n \n', `${A}\n${B}\n${'c'.repeat(64)}`, `${A}\n${A.toUpperCase()}`, `${A}\n${'g'.repeat(64)}`, `${A} ${B}`]) {
      expect(codeOf(() => parseClusterSecrets(text)), JSON.stringify(text)).toBe('CLUSTER_SECRET_INVALID');
    }
  });

  it('reads both from a 0600 file; readClusterSecret gives the one sent with', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'proofkv-secrets-'));
    try {
      const f = path.join(dir, 'cluster.secret');
      fs.writeFileSync(f, `${B}\n${A}\n`, { mode: 0o600 });
      expect(toHex(readClusterSecret(f))).toBe(B.toLowerCase());
      expect(readClusterSecrets(f).accept.map(toHex)).toEqual([A]);
      if (process.platform !== 'win32') {
        fs.chmodSync(f, 0o640);
        expect(codeOf(() => readClusterSecrets(f))).toBe('CLUSTER_SECRET_EXPOSED');
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
