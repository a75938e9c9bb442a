/**
 * "Verifiers never throw" (docs/proofs.md §7), for every exported `verify*` and `rootFrom*` of
 * `proofs/`: starting from valid arguments, any argument or any nested field is replaced by
 * garbage — wrong types, null, undefined, NaN, bigints, short or sparse arrays, wrong-length byte
 * strings — and the call must return a failure result (a boolean for `verifyHeadSignature`), never
 * throw. Deterministic (seeded); the failing mutation is printed.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as P from '../../proofs/index.js';
import { _multiproof } from '../../proofs/multiproof.js';
import { _arraySource } from '../../proofs/tree.js';
import { ProofDB } from '../../src/index.js';
import { tempDir } from '../engine/harness.js';
import { leafHashesFor } from './helpers.js';

const H = P.nobleHasher;
let db: ProofDB;
let cleanup: () => void;
const args = new Map<string, () => unknown[]>();

beforeAll(async () => {
  const t = tempDir('proofkv-never-throw-');
  cleanup = t.cleanup;
  db = await ProofDB.open(t.dir, { compactionThread: 'inline' });
  for (let i = 0; i < 40; i++) await db.put(`k${i % 13}`, `v${i}`);
  await db.checkpoint();
  for (let i = 0; i < 10; i++) await db.put(`k${i}`, `w${i}`);
  const cp = await db.checkpoint();
  const trust = { publicKeys: [db.publicKey()], quorum: 1 };
  const get = (await db.getWithProof('k3')).proof;
  const hist = (await db.getVersionHistoryWithProof('k3')).proof;
  const scan = (await db.scanWithProof({ start: 'k1', end: 'k5', limit: 2, edges: true })).proof;
  const leaves = leafHashesFor(11, H);
  const log = P.LogTree.fromLeafHashes(leaves);
  const head = { size: 11, root: log.root() };
  const key = P.generateKeyPair(new Uint8Array(32).fill(3));
  const sig = P.signHead(key.privateKey, head);
  const c0: P.Checkpoint = { index: 0, seq: 5, masterRoot: new Uint8Array(32).fill(1) };
  const c1: P.Checkpoint = { index: 1, seq: 9, masterRoot: new Uint8Array(32).fill(2), prevCheckpointHash: P.checkpointHash(c0) };
  const clog = P.LogTree.fromLeafHashes([P.checkpointLeafHash(c0), P.checkpointLeafHash(c1)]);
  const chead = { size: 2, root: clog.root() };
  const D = P.Domain.ENTRY_NODE;
  const idx = [1, 4, 5];
  args.set('verifyInclusion', () => [leaves[3], 3, 11, log.inclusionProof(3, 11), head.root, H]);
  args.set('rootFromInclusionProof', () => [leaves[3], 3, 11, log.inclusionProof(3, 11), H]);
  args.set('verifyConsistency', () => [4, 11, log.consistencyProof(4, 11), log.root(4), head.root, H]);
  args.set('verifyTreeInclusion', () => [H, D, leaves[2], 2, 11, P.treeInclusionProof(D, leaves, 2), P.treeRoot(D, leaves)]);
  args.set('rootFromTreeInclusion', () => [H, D, leaves[2], 2, 11, P.treeInclusionProof(D, leaves, 2)]);
  args.set('verifyTreeAdjacent', () => [H, D, 11, P.treeRoot(D, leaves), { leaf: leaves[2], index: 2, path: P.treeInclusionProof(D, leaves, 2) }, { leaf: leaves[3], index: 3, path: P.treeInclusionProof(D, leaves, 3) }]);
  args.set('verifyTreeRange', () => [H, D, 2, 11, leaves.slice(2, 5), P.treeRangeProof(D, leaves, 2, 5), P.treeRoot(D, leaves)]);
  args.set('rootFromTreeRange', () => [H, D, 2, 11, leaves.slice(2, 5), P.treeRangeProof(D, leaves, 2, 5)]);
  args.set('rootFromMultiproof', () => [H, P.Domain.MASTER_NODE, 11, idx, idx.map((i) => leaves[i]), _multiproof(_arraySource(H, P.Domain.MASTER_NODE, leaves), idx, 11)]);
  args.set('verifyCheckpointLink', () => [c0, c1, H]);
  args.set('verifyCheckpointInclusion', () => [c1, clog.inclusionProof(1, 2), chead, H]);
  args.set('verifyHeadExtends', () => [{ size: 4, root: log.root(4) }, head, log.consistencyProof(4, 11), H]);
  args.set('verifyHeadSignature', () => [head, sig]);
  args.set('verifyCheckpoint', () => [head, [sig], { publicKeys: [key.publicKey], quorum: 1 }]);
  args.set('verifyCertificate', () => [structuredClone(get.certificate), { trust }]);
  args.set('verifySignerSet', () => [structuredClone(cp.signers), cp.checkpoint.signerSetHash, H]);
  args.set('verifyCertifiedHead', () => [cp.head, structuredClone(cp.signatures), trust, structuredClone(cp.signers), cp.checkpoint.signerSetHash, H]);
  args.set('verifyGetProof', () => [structuredClone(get), { key: new TextEncoder().encode('k3') }, { trust, trustedHead: cp.head }]);
  const noteText = P.formatCheckpointNote({ origin: 'o.example', size: 11, root: head.root, extensions: [] });
  const logKey = P.verifierKeyOf('o.example', key.publicKey);
  const wKey = P.verifierKeyOf('w.example', key.publicKey, P.KEY_TYPE_COSIGNATURE);
  const noteSigs = () => [P.signNote(noteText, 'o.example', key.privateKey), P.signCosignature(noteText, 'w.example', key.privateKey, 1700000000)];
  args.set('verifyNoteSignature', () => [noteText, noteSigs()[1], wKey]);
  args.set('verifyNote', () => [{ text: noteText, signatures: noteSigs() }, [logKey, wKey]]);
  args.set('verifyCheckpointNote', () => [{ text: noteText, signatures: noteSigs() }, { origin: 'o.example', logKeys: [logKey], quorum: 1, witnesses: [wKey], witnessQuorum: 1 }]);
  args.set('verifyHistoryProof', () => [structuredClone(hist), { key: new TextEncoder().encode('k3'), limit: 5 }, { trust }]);
  const newKey = P.generateKeyPair(new Uint8Array(32).fill(4));
  const rotation = { logSize: 2, oldPublicKey: key.publicKey, newPublicKey: newKey.publicKey, time: '2026-11-29T00:00:00Z' };
  const rmsg = P.keyRotationMessage(rotation);
  const rotationSigned = { ...rotation, oldSignature: ed25519.sign(rmsg, key.privateKey), newSignature: ed25519.sign(rmsg, newKey.privateKey) };
  args.set('verifyKeyRotation', () => [structuredClone(rotationSigned)]);
  args.set('verifyScanProof', () => [structuredClone(scan), { start: new TextEncoder().encode('k1'), end: new TextEncoder().encode('k5'), limit: 2, edges: true }, { trust }]);
  // Signer-set changes: checkpoint 0 (the node alone) and 2 (the node and `key`, quorum 1), the latter with a predecessor.
  const changed = await db.checkpoint({ signers: { quorum: 1, members: [{ id: 1, publicKey: db.publicKey() }, { id: 2, publicKey: key.publicKey }] } });
  const changes = db.signerSetChanges(0, changed.head.size, 64, 1 << 20).changes;
  const start = P.startSetChain(trust, undefined, 0);
  const first = P.verifySetChange(start, changes[0], changed.head, changed.checkpoint, H);
  if (!first.ok) throw new Error(first.message);
  args.set('verifySetChanges', () => [structuredClone(start), structuredClone(changes), changed.head, changed.checkpoint, H]);
  args.set('verifySetChange', () => [structuredClone(first.state), structuredClone(changes[1]), changed.head, changed.checkpoint, H]);
});
afterAll(async () => {
  await db?.close();
  cleanup?.();
});

/** A deep copy of valid arguments (byte arrays copied, hashers shared), so mutations never leak. */
function fresh(x: unknown): unknown {
  if (x instanceof Uint8Array) return x.slice();
  if (Array.isArray(x)) return x.map(fresh);
  if (x && typeof x === 'object' && !(x instanceof P.Hasher)) return Object.fromEntries(Object.entries(x).map(([k, v]) => [k, fresh(v)]));
  return x;
}

/** Deterministic xorshift. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

// eslint-disable-next-line no-sparse-arrays
const sparse = (): unknown[] => [, , ,];
const GARBAGE: Array<() => unknown> = [
  () => undefined, () => null, () => 0, () => -1, () => 1.5, () => NaN, () => Infinity, () => 2 ** 53, () => -0,
  () => '', () => 'abc', () => true, () => ({}), () => [], () => [null], () => [undefined], sparse, () => [1, 2],
  () => new Uint8Array(0), () => new Uint8Array(31), () => new Uint8Array(33), () => new Uint8Array(64), () => 10n,
  () => Symbol('s'), () => () => 1, () => new Map(), () => Object.create(null), () => new Uint16Array(16), () => [new Uint8Array(32)],
];

/** Every (container, key) pair reachable in `root`, byte arrays excluded. */
function slots(root: unknown, out: Array<[Record<string | number, unknown>, string | number]> = [], seen = new Set<unknown>()): typeof out {
  if (root === null || typeof root !== 'object' || ArrayBuffer.isView(root) || seen.has(root)) return out;
  seen.add(root);
  if (root instanceof P.Hasher) return out;
  for (const k of Object.keys(root)) {
    out.push([root as Record<string, unknown>, Array.isArray(root) ? Number(k) : k]);
    slots((root as Record<string, unknown>)[k], out, seen);
  }
  return out;
}

describe('exported verifiers never throw', () => {
  it('covers every exported verify* and rootFrom* of proofs/', () => {
    const exported = Object.keys(P).filter((n) => /^(verify|rootFrom)/.test(n) && typeof (P as Record<string, unknown>)[n] === 'function');
    expect(exported.sort()).toEqual([...args.keys()].sort());
  });

  it('valid arguments verify (so mutations start from a real proof)', () => {
    for (const [name, make] of args) {
      const r = ((P as Record<string, unknown>)[name] as (...a: unknown[]) => unknown)(...make());
      expect(r === true || (r as { ok?: boolean }).ok === true, name).toBe(true);
    }
  });

  it('garbage anywhere in the arguments gives a failure result, not an exception', () => {
    const next = rng(20261128);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)];
    const thrown: string[] = [];
    for (const [name, make] of args) {
      const f = (P as Record<string, unknown>)[name] as (...a: unknown[]) => unknown;
      for (let i = 0; i < 600; i++) {
        const a = fresh(make()) as unknown[];
        const mutations = 1 + Math.floor(next() * 3);
        const what: string[] = [];
        for (let m = 0; m < mutations; m++) {
          if (next() < 0.3) {
            const at = Math.floor(next() * (a.length + 1));
            a[at] = pick(GARBAGE)();
            what.push(`arg ${at}`);
          } else {
            const s = slots(a);
            if (s.length === 0) continue;
            const [obj, k] = pick(s);
            obj[k] = pick(GARBAGE)();
            what.push(`field ${String(k)}`);
          }
        }
        try {
          const r = f(...a);
          const okShape = typeof r === 'boolean' || (r !== null && typeof r === 'object' && typeof (r as { ok: unknown }).ok === 'boolean');
          if (!okShape) thrown.push(`${name}: returned ${String(r)} after ${what.join(', ')}`);
          if (r && typeof r === 'object' && (r as { ok: boolean }).ok === false && typeof (r as { reason: unknown }).reason !== 'string') {
            thrown.push(`${name}: failure without a reason after ${what.join(', ')}`);
          }
        } catch (e) {
          thrown.push(`${name}: ${(e as Error)?.name}: ${(e as Error)?.message} after ${what.join(', ')}`);
        }
      }
    }
    expect([...new Set(thrown)].slice(0, 20)).toEqual([]);
  });
});
