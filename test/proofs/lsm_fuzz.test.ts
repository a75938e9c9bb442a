/**
 * Fuzzed encodings of get, history and scan proofs. Thousands of truncations, bit flips, byte
 * overwrites, insertions and deletions of the CBOR bytes of honest proofs: decoding either throws
 * `DecodeError` or yields a proof that fails verification with a stable reason; nothing verifies,
 * nothing throws anything else, and the verifier never reaches its catch-all (a decoded proof is
 * well-typed, so every rejection must come from an explicit check). Then random structural edits
 * of the decoded objects (numbers, byte strings, array lengths): never accepted, never thrown.
 *
 * Mutations come from a seeded PRNG; the seed is printed on failure (replay with PROOFKV_SEED).
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DecodeError, Reason, type Verified } from '../../proofs/errors.js';
import { getProofCodec, historyProofCodec, scanProofCodec } from '../../proofs/lsm_encoding.js';
import { verifyScanProof, type ScanProof, type ScanQuery } from '../../proofs/lsm_scan.js';
import { verifyGetProof, verifyHistoryProof, type GetProof, type HistoryProof } from '../../proofs/lsm_proof.js';
import { ProofDB } from '../../src/index.js';
import { tempDir } from '../engine/harness.js';
import { buildScenario, clone, enc, norm, SCENARIO_OPTIONS, skey, type Scenario } from './lsm_helpers.js';

const REASONS = new Set<string>(Object.values(Reason));
const SEED = process.env.PROOFKV_SEED !== undefined ? Number(process.env.PROOFKV_SEED) : Date.now() >>> 0;

let S: Scenario;
interface Target {
  name: string;
  bytes: Uint8Array;
  decode(b: Uint8Array): unknown;
  verify(p: unknown): Verified;
}
const targets: Target[] = [];

beforeAll(async () => {
  const { dir, cleanup } = tempDir('proofkv-fuzz-');
  S = await buildScenario((d) => ProofDB.open(d, SCENARIO_OPTIONS), dir, cleanup);
  const trust = { trust: S.trust };
  const getTarget = (name: string, proof: GetProof, key: Uint8Array, version?: number): Target => ({
    name,
    bytes: getProofCodec.encode(proof),
    decode: (b) => getProofCodec.decode(b),
    verify: (p) => verifyGetProof(p as GetProof, { key, version }, trust),
  });
  const histTarget = (name: string, proof: HistoryProof, key: Uint8Array, q: { minVersion?: number; maxVersion?: number; limit?: number }): Target => ({
    name,
    bytes: historyProofCodec.encode(proof),
    decode: (b) => historyProofCodec.decode(b),
    verify: (p) => verifyHistoryProof(p as HistoryProof, { key, ...q }, trust),
  });
  // A present key updated late (answer in level 0, several windows), a tombstone, an absent key.
  const present = enc(skey(13));
  const deleted = enc(skey(30));
  const absent = enc(`${skey(33)}5`);
  const explicit = enc(skey(44));
  targets.push(getTarget('get present', (await S.db.getWithProof(present)).proof, present));
  targets.push(getTarget('get tombstone', (await S.db.getWithProof(deleted)).proof, deleted));
  targets.push(getTarget('get absent', (await S.db.getWithProof(absent)).proof, absent));
  targets.push(getTarget('get at version 2', (await S.db.getWithProof(present, { version: 2 })).proof, present, 2));
  targets.push(histTarget('history all', (await S.db.getVersionHistoryWithProof(present)).proof, present, {}));
  targets.push(histTarget('history cut by limit', (await S.db.getVersionHistoryWithProof(explicit, { limit: 5 })).proof, explicit, { limit: 5 }));
  const scanTarget = (name: string, proof: ScanProof, q: ScanQuery): Target => ({
    name,
    bytes: scanProofCodec.encode(proof),
    decode: (b) => scanProofCodec.decode(b),
    verify: (p) => verifyScanProof(p as ScanProof, q, trust),
  });
  const page: ScanQuery = { start: enc(skey(25)), end: enc(skey(75)), limit: 10 };
  targets.push(scanTarget('scan page cut by limit', (await S.db.scanWithProof(page)).proof, page));
  const all: ScanQuery = { start: enc(skey(35)), end: enc(skey(45)), includeTombstones: true, edges: true };
  targets.push(scanTarget('scan with tombstones and edges', (await S.db.scanWithProof(all)).proof, all));
  targets.push(histTarget('history range', (await S.db.getVersionHistoryWithProof(explicit, { minVersion: 2, maxVersion: 1100 })).proof, explicit, { minVersion: 2, maxVersion: 1100 }));
});
afterAll(async () => {
  await S?.cleanup();
});

/** Paths (property names / indexes) to every number, byte string and array in a proof. */
function paths(x: unknown, prefix: string[] = [], out: string[][] = []): string[][] {
  if (x instanceof Uint8Array || typeof x === 'number') out.push(prefix);
  else if (Array.isArray(x)) {
    out.push(prefix);
    x.forEach((v, i) => paths(v, [...prefix, String(i)], out));
  } else if (x && typeof x === 'object') for (const [k, v] of Object.entries(x)) paths(v, [...prefix, k], out);
  return out;
}

function flip(b: Uint8Array, bit: number): Uint8Array {
  const c = b.slice();
  c[bit >> 3] ^= 1 << (bit & 7);
  return c;
}

/** xorshift32: a deterministic stream from the seed. */
function rng(seed: number): (n: number) => number {
  let s = seed >>> 0 || 0x9e3779b9;
  return (n) => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s % n;
  };
}

/** What happened to one mutated encoding; throws (with the replay seed) on anything not allowed. */
function check(t: Target, bytes: Uint8Array, what: string): 'decode' | 'reject' {
  let decoded: unknown;
  try {
    decoded = t.decode(bytes);
  } catch (e) {
    if (e instanceof DecodeError) return 'decode';
    throw new Error(`${t.name}, ${what}: decode threw ${(e as Error)?.name}: ${(e as Error)?.message} (seed ${SEED})`);
  }
  let r: Verified;
  try {
    r = t.verify(decoded);
  } catch (e) {
    throw new Error(`${t.name}, ${what}: the verifier threw ${(e as Error)?.message} (seed ${SEED})`);
  }
  if (r.ok) throw new Error(`${t.name}, ${what}: a mutated encoding verified (seed ${SEED})`);
  if (!REASONS.has(r.reason)) throw new Error(`${t.name}, ${what}: unknown reason ${r.reason} (seed ${SEED})`);
  if (r.message.startsWith('malformed proof:')) {
    throw new Error(`${t.name}, ${what}: the verifier hit its catch-all: ${r.message} (seed ${SEED})`);
  }
  return 'reject';
}

describe('fuzzed encodings of get and history proofs', () => {
  it('the honest encodings round-trip and verify', () => {
    expect(targets.length).toBe(9);
    for (const t of targets) {
      const p = t.decode(t.bytes);
      expect(t.verify(p), t.name).toMatchObject({ ok: true });
      expect(t.decode(t.bytes.slice())).toEqual(p);
    }
    // The tombstone and the absent key really are what they claim (the fuzz starts from real cases).
    expect((targets[1].verify(targets[1].decode(targets[1].bytes)) as unknown as { entry: { kind: string } }).entry.kind).toBe('delete');
    expect((targets[2].verify(targets[2].decode(targets[2].bytes)) as unknown as { entry?: unknown }).entry).toBeUndefined();
  });

  it('every truncation and every appended byte is a DecodeError', () => {
    for (const t of targets) {
      for (let n = 0; n < t.bytes.length; n++) expect(check(t, t.bytes.subarray(0, n), `truncated to ${n}`)).toBe('decode');
      for (const extra of [0x00, 0xff, 0xa0]) {
        const b = new Uint8Array(t.bytes.length + 1);
        b.set(t.bytes);
        b[t.bytes.length] = extra;
        expect(check(t, b, `byte ${extra} appended`)).toBe('decode');
      }
    }
  });

  it('bit flips, byte overwrites, insertions and deletions never verify and never throw', () => {
    const next = rng(SEED);
    const tally = { decode: 0, reject: 0 };
    const per = 700;
    for (const t of targets) {
      const len = t.bytes.length;
      for (let i = 0; i < per; i++) {
        const kind = i % 6;
        let b: Uint8Array;
        let what: string;
        if (kind <= 2) {
          // Single bit flip (half of all mutations).
          const bit = next(len * 8);
          b = t.bytes.slice();
          b[bit >> 3] ^= 1 << (bit & 7);
          what = `bit ${bit} flipped`;
        } else if (kind === 3) {
          const at = next(len);
          b = t.bytes.slice();
          b[at] = (b[at] + 1 + next(255)) & 0xff;
          what = `byte ${at} overwritten with ${b[at]}`;
        } else if (kind === 4) {
          const at = next(len + 1);
          const v = next(256);
          b = new Uint8Array(len + 1);
          b.set(t.bytes.subarray(0, at));
          b[at] = v;
          b.set(t.bytes.subarray(at), at + 1);
          what = `byte ${v} inserted at ${at}`;
        } else {
          const at = next(len);
          const n = 1 + next(Math.min(8, len - at));
          b = new Uint8Array(len - n);
          b.set(t.bytes.subarray(0, at));
          b.set(t.bytes.subarray(at + n), at);
          what = `${n} bytes deleted at ${at}`;
        }
        tally[check(t, b, what)]++;
      }
    }
    // Both paths were exercised: many mutations decode and are then refused by the verifier.
    expect(tally.decode + tally.reject).toBe(per * targets.length);
    expect(tally.reject).toBeGreaterThan(per * targets.length * 0.3);
    expect(tally.decode).toBeGreaterThan(100);
  });

  it('every number edited by ±1, +2 and every byte string with a bit flipped is rejected (exhaustive over fields)', () => {
    let n = 0;
    for (const t of targets) {
      const honest = t.decode(t.bytes);
      for (const p of paths(honest)) {
        const at = (o: unknown) => p.slice(0, -1).reduce<Record<string, unknown>>((x, k) => x[k] as Record<string, unknown>, o as Record<string, unknown>);
        const k = p[p.length - 1];
        const v = at(honest)[k];
        const edits: unknown[] = typeof v === 'number' ? [v + 1, v - 1, v + 2] : v instanceof Uint8Array && v.length > 0 ? [flip(v, 0), flip(v, v.length * 8 - 1)] : [];
        for (const e of edits) {
          const proof = clone(honest);
          at(proof)[k] = e;
          const r = t.verify(proof);
          n++;
          if (r.ok) throw new Error(`${t.name}: ${p.join('.')} = ${String(typeof e === 'number' ? e : 'flipped bytes')} verified`);
          expect(REASONS.has(r.reason)).toBe(true);
        }
      }
    }
    expect(n).toBeGreaterThan(1000);
  });

  it('random structural edits of decoded proofs are never accepted and never thrown', () => {
    const edit = fc.record({ target: fc.nat(), path: fc.nat(), how: fc.nat({ max: 6 }), n: fc.integer({ min: -3, max: 3 }), byte: fc.nat({ max: 4095 }) });
    fc.assert(
      fc.property(edit, ({ target, path, how, n, byte }) => {
        const t = targets[target % targets.length];
        const proof = clone(t.decode(t.bytes)) as Record<string, unknown>;
        const all = paths(proof);
        const p = all[path % all.length];
        const parent = p.slice(0, -1).reduce<Record<string, unknown>>((o, k) => o[k] as Record<string, unknown>, proof);
        const k = p[p.length - 1];
        const v = parent[k];
        const before = JSON.stringify(norm(proof));
        if (typeof v === 'number') parent[k] = [v + (n === 0 ? 1 : n), 0, 2 ** 32, 2 ** 53, -1, v * 2 + 1, NaN][how];
        else if (v instanceof Uint8Array) {
          if (how === 0) parent[k] = v.subarray(0, Math.max(0, v.length - 1));
          else if (how === 1) parent[k] = new Uint8Array([...v, 0]);
          else if (v.length === 0) parent[k] = new Uint8Array([1]);
          else {
            const c = v.slice();
            c[byte % c.length] ^= 1 << how % 8;
            parent[k] = c;
          }
        } else if (Array.isArray(v)) {
          if (how <= 2 && v.length > 0) v.splice(byte % v.length, 1);
          else if (how <= 4 && v.length > 0) v.splice(byte % v.length, 0, clone(v[byte % v.length]));
          else if (v.length >= 2) v.reverse();
          else v.push(clone(v[0] ?? new Uint8Array(32)));
        }
        if (JSON.stringify(norm(proof)) === before) return; // the edit was a no-op (e.g. a palindrome reversed)
        let r: Verified;
        try {
          r = t.verify(proof);
        } catch (e) {
          throw new Error(`${t.name} ${p.join('.')}: the verifier threw ${(e as Error).message}`);
        }
        if (r.ok) throw new Error(`${t.name} ${p.join('.')}: an edited proof verified`);
        expect(REASONS.has(r.reason)).toBe(true);
      }),
      { seed: SEED, numRuns: 600 },
    );
  });
});
