/** proofs/ bundles for browsers: no node: imports, noble via explicit .js subpaths, one public index. */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as api from '../../proofs/index.js';

const dir = new URL('../../proofs/', import.meta.url);
const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));

describe('proofs/ is isomorphic', () => {
  it('imports nothing from node:, src/ or server/, and noble only by .js subpath', () => {
    expect(files.length).toBeGreaterThanOrEqual(8);
    for (const f of files) {
      const text = readFileSync(new URL(f, dir), 'utf8');
      const specs = [...text.matchAll(/(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)].map((m) => m[1]);
      for (const s of specs) {
        expect(s.startsWith('node:'), `${f}: ${s}`).toBe(false);
        expect(/(^|\/)(src|server)\//.test(s), `${f}: ${s}`).toBe(false);
        if (s.startsWith('@noble/')) expect(s, `${f}`).toMatch(/^@noble\/(hashes|curves)\/[a-z0-9]+\.js$/);
        if (s.startsWith('.')) expect(s, `${f}`).toMatch(/\.js$/);
        expect(['@noble', 'cbor-x', '.'].some((p) => s.startsWith(p)), `${f}: ${s}`).toBe(true);
      }
    }
  });

  it('the index exports the public API and no internals', () => {
    for (const name of [
      'verifyInclusion', 'verifyConsistency', 'rootFromInclusionProof', 'logLeafHash', 'logRoot', 'inclusionProof',
      'consistencyProof', 'LogTree', 'treeInclusionProof', 'rootFromTreeInclusion', 'verifyTreeAdjacent', 'treeRangeProof',
      'verifyTreeRange', 'checkpointBytes', 'checkpointHash', 'signHead', 'verifyCheckpoint', 'generateKeyPair',
      'verifyHeadExtends', 'signedHeadCodec', 'inclusionProofCodec', 'struct', 'codec', 'VerificationError', 'DecodeError',
      'Reason', 'Hasher', 'nobleHasher', 'defaultHasher', 'installSha256', 'Domain', 'toHex', 'equalBytes',
    ]) {
      expect(api, name).toHaveProperty(name);
    }
    expect(Object.keys(api).filter((k) => k.startsWith('_'))).toEqual([]);
  });
});
