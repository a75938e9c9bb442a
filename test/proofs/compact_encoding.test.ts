/**
 * The compact proof encoding (format 2, `proofs/compact_encoding.ts`, docs/proofs.md §8.10):
 * honest proofs of a real engine round-trip and verify; every map of every proof, mutated at the
 * CBOR level — each field dropped, duplicated, retyped, an unknown key added, an integer written
 * non-canonically, a byte appended — is a `DecodeError` or a proof the verifier refuses, never an
 * accepted one; a derived field written explicitly is a `DecodeError`; tampered proof objects
 * (a forged root, set hash, signer, block index) survive encoding unchanged, so the verifier
 * refuses them for the same reason as before; format-1 proofs still decode.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { proofCbor } from '../../proofs/cbor_instance.js';
import { MAX_DERIVED_DESCRIPTORS, PROOF_FORMAT, PROOF_KEYS, proofFormatOf } from '../../proofs/compact_encoding.js';
import type { Codec } from '../../proofs/encoding.js';
import { DecodeError, Reason, type Verified } from '../../proofs/errors.js';
import { getProofCodec, getProofCodecV1, historyProofCodec, historyProofCodecV1, scanProofCodec, scanProofCodecV1 } from '../../proofs/lsm_encoding.js';
import { verifyGetProof, verifyHistoryProof, type GetProof } from '../../proofs/lsm_proof.js';
import { verifyScanProof, type ScanQuery } from '../../proofs/lsm_scan.js';
import { generateKeyPair } from '../../proofs/checkpoint.js';
import { ProofDB } from '../../src/index.js';
import { tempDir } from '../engine/harness.js';
import { CborWriter } from './cbor_writer.js';
import { buildScenario, clone, enc, norm, SCENARIO_OPTIONS, skey, type Scenario } from './lsm_helpers.js';

const REASONS = new Set<string>(Object.values(Reason));

interface Target {
  name: string;
  proof: object;
  bytes: Uint8Array;
  decode(b: Uint8Array): unknown;
  encode(p: unknown): Uint8Array;
  encodeTrusted(p: unknown): Uint8Array;
  textKeyed: (p: unknown) => Uint8Array;
  textKeyedTrusted: (p: unknown) => Uint8Array;
  verify(p: unknown): Verified;
}

let S: Scenario;
const targets: Target[] = [];

beforeAll(async () => {
  const { dir, cleanup } = tempDir('proofkv-compact-');
  S = await buildScenario((d) => ProofDB.open(d, SCENARIO_OPTIONS), dir, cleanup);
  const trust = { trust: S.trust };
  const target = <P extends object>(name: string, proof: P, codec: Codec<P>, textKeyed: Codec<P>, verify: (p: P) => Verified): Target => ({
    name,
    proof,
    bytes: codec.encode(proof),
    decode: (b) => codec.decode(b),
    encode: (p) => codec.encode(p as P),
    encodeTrusted: (p) => codec.encodeTrusted(p as P),
    textKeyed: (p) => textKeyed.encode(p as P),
    textKeyedTrusted: (p) => textKeyed.encodeTrusted(p as P),
    verify: (p) => verify(p as P),
  });
  const present = enc(skey(13));
  const absent = enc(`${skey(33)}5`);
  for (const [name, key] of [['get present', present], ['get absent', absent]] as const) {
    targets.push(target(name, (await S.db.getWithProof(key)).proof, getProofCodec, getProofCodecV1, (p) => verifyGetProof(p, { key }, trust)));
  }
  const hist = (await S.db.getVersionHistoryWithProof(present)).proof;
  targets.push(target('history', hist, historyProofCodec, historyProofCodecV1, (p) => verifyHistoryProof(p, { key: present }, trust)));
  const page: ScanQuery = { start: enc(skey(25)), end: enc(skey(75)), limit: 10 };
  const scan = (await S.db.scanWithProof(page)).proof;
  targets.push(target('scan', scan, scanProofCodec, scanProofCodecV1, (p) => verifyScanProof(p, page, trust)));
});
afterAll(async () => {
  await S?.cleanup();
});

/** A CBOR tree in which maps are lists of pairs, so a key may repeat; integers may be forced wide. */
type Tree = number | Uint8Array | string | { wide: number } | Tree[] | { pairs: Array<[Tree, Tree]> };

function toTree(x: unknown): Tree {
  if (x instanceof Map) return { pairs: [...x.entries()].map(([k, v]) => [toTree(k), toTree(v)] as [Tree, Tree]) };
  if (Array.isArray(x)) return x.map(toTree);
  if (typeof x === 'bigint') return Number(x);
  return x as Tree;
}

function write(w: CborWriter, t: Tree): void {
  if (typeof t === 'number') w.head(0, t);
  else if (typeof t === 'string') w.text(t);
  else if (t instanceof Uint8Array) w.bytes(t);
  else if (Array.isArray(t)) {
    w.head(4, t.length);
    for (const x of t) write(w, x);
  } else if ('wide' in t) w.head(0, t.wide, wider(t.wide));
  else {
    w.head(5, t.pairs.length);
    for (const [k, v] of t.pairs) {
      write(w, k);
      write(w, v);
    }
  }
}

/** A head width one step longer than the shortest for `n` (n < 2^32: above, every width is the shortest). */
const wider = (n: number): 1 | 2 | 4 | 8 => (n < 24 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 4 : 8);

const encodeTree = (t: Tree): Uint8Array => {
  const w = new CborWriter();
  write(w, t);
  return w.done();
};

/** Every map of the tree, with a path for messages. */
function maps(t: Tree, path = '', out: Array<{ path: string; m: { pairs: Array<[Tree, Tree]> } }> = []): typeof out {
  if (Array.isArray(t)) t.forEach((x, i) => maps(x, `${path}[${i}]`, out));
  else if (t && typeof t === 'object' && 'pairs' in t) {
    out.push({ path, m: t });
    for (const [k, v] of t.pairs) maps(v, `${path}.${String(k)}`, out);
  }
  return out;
}

/** Decodes, then verifies: 'decode' for a DecodeError, 'reject' for a refused proof; throws on acceptance or any other exception. */
function outcome(t: Target, b: Uint8Array, what: string): 'decode' | 'reject' {
  let p: unknown;
  try {
    p = t.decode(b);
  } catch (e) {
    if (e instanceof DecodeError) return 'decode';
    throw new Error(`${t.name}, ${what}: decode threw ${String(e)}`);
  }
  const r = t.verify(p);
  if (r.ok) throw new Error(`${t.name}, ${what}: accepted`);
  if (!REASONS.has(r.reason)) throw new Error(`${t.name}, ${what}: unknown reason ${r.reason}`);
  return 'reject';
}

/** Applies `edit` to a fresh tree of the target's bytes and encodes the result. */
function mutant(t: Target, edit: (tree: Tree) => void): Uint8Array {
  const tree = toTree(proofCbor.decode(t.bytes));
  edit(tree);
  return encodeTree(tree);
}

describe('compact proof encoding (format 2)', () => {
  it('honest proofs: format 2 on the wire, round-trip to the same object, verify; the tree writer reproduces the bytes', () => {
    expect(targets.length).toBe(4);
    for (const t of targets) {
      expect(proofFormatOf(t.bytes), t.name).toBe(2);
      const p = t.decode(t.bytes);
      expect(norm(p), t.name).toEqual(norm(t.proof));
      expect(t.verify(p), t.name).toMatchObject({ ok: true });
      expect(norm(t.encode(p))).toEqual(norm(t.bytes));
      expect(norm(encodeTree(toTree(proofCbor.decode(t.bytes)))), t.name).toEqual(norm(t.bytes));
      const top = proofCbor.decode(t.bytes) as Map<number, unknown>;
      expect(top.get(PROOF_KEYS.getProof.format)).toBe(PROOF_FORMAT);
    }
  });

  it('encodeTrusted (the server\'s, without the self-check) writes the same bytes as encode, in both formats', () => {
    for (const t of targets) {
      expect(Buffer.from(t.encodeTrusted(t.proof)).equals(Buffer.from(t.bytes)), t.name).toBe(true);
      expect(Buffer.from(t.textKeyedTrusted(t.proof)).equals(Buffer.from(t.textKeyed(t.proof))), t.name).toBe(true);
      const decoded = t.decode(t.bytes);
      expect(Buffer.from(t.encodeTrusted(decoded)).equals(Buffer.from(t.bytes)), t.name).toBe(true);
    }
  });

  it('is smaller than the text-keyed format 1, and format-1 bytes still decode to the same proof', () => {
    for (const t of targets) {
      const v1 = t.textKeyed(t.proof);
      expect(proofFormatOf(v1)).toBe(1);
      expect(t.bytes.length, t.name).toBeLessThan(v1.length * 0.85);
      expect(norm(t.decode(v1)), t.name).toEqual(norm(t.proof));
    }
  });

  it('every field of every map dropped, duplicated, retyped; an unknown key in every map: never accepted', () => {
    const tally = { decode: 0, reject: 0, fields: 0 };
    for (const t of targets) {
      const n = maps(toTree(proofCbor.decode(t.bytes))).length;
      for (let mi = 0; mi < n; mi++) {
        const pick = (tree: Tree) => maps(tree)[mi];
        const { path, m } = pick(toTree(proofCbor.decode(t.bytes)));
        // An unknown key (23 sorts after every registered one) and a text key are DecodeErrors.
        expect(outcome(t, mutant(t, (tr) => pick(tr).m.pairs.push([23, 0])), `${path}: unknown key`), `${t.name} ${path}`).toBe('decode');
        expect(outcome(t, mutant(t, (tr) => pick(tr).m.pairs.push(['x', 0])), `${path}: text key`), `${t.name} ${path}`).toBe('decode');
        for (let ki = 0; ki < m.pairs.length; ki++) {
          tally.fields++;
          const what = `${path}.${String(m.pairs[ki][0])}`;
          // Duplicated (the copy right after the original) and retyped (text: no format-2 field is text).
          expect(outcome(t, mutant(t, (tr) => pick(tr).m.pairs.splice(ki + 1, 0, pick(tr).m.pairs[ki])), `${what} duplicated`), `${t.name} ${what}`).toBe('decode');
          expect(outcome(t, mutant(t, (tr) => (pick(tr).m.pairs[ki][1] = 'text')), `${what} retyped`), `${t.name} ${what}`).toBe('decode');
          // Dropped: required fields are DecodeErrors; an optional one gives another proof, which must not verify.
          tally[outcome(t, mutant(t, (tr) => pick(tr).m.pairs.splice(ki, 1)), `${what} dropped`)]++;
          // An integer value written with a longer head than needed.
          const v = m.pairs[ki][1];
          if (typeof v === 'number' && v < 2 ** 32) {
            expect(outcome(t, mutant(t, (tr) => (pick(tr).m.pairs[ki][1] = { wide: v })), `${what} non-canonical`), `${t.name} ${what}`).toBe('decode');
          }
        }
      }
    }
    expect(tally.fields).toBeGreaterThan(100);
    expect(tally.decode).toBeGreaterThan(tally.fields * 0.8);
  });

  it('a trailing byte, a wrong format number, a non-canonical key: DecodeError', () => {
    for (const t of targets) {
      expect(outcome(t, new Uint8Array([...t.bytes, 0]), 'trailing byte')).toBe('decode');
      expect(outcome(t, mutant(t, (tr) => ((tr as { pairs: Array<[Tree, Tree]> }).pairs[0][1] = 1)), 'format 1 with integer keys')).toBe('decode');
      expect(outcome(t, mutant(t, (tr) => ((tr as { pairs: Array<[Tree, Tree]> }).pairs[0][1] = 3)), 'format 3')).toBe('decode');
      expect(outcome(t, mutant(t, (tr) => ((tr as { pairs: Array<[Tree, Tree]> }).pairs[1][0] = { wide: 1 })), 'key 1 written wide')).toBe('decode');
      expect(outcome(t, mutant(t, (tr) => ((tr as { pairs: Array<[Tree, Tree]> }).pairs[0][1] = { wide: PROOF_FORMAT })), 'format written wide')).toBe('decode');
    }
  });

  it('a derived field written explicitly, equal to what the decoder derives, is not canonical: DecodeError', () => {
    const t = targets[0];
    const p = t.proof as GetProof;
    const K = PROOF_KEYS;
    const cert = (tr: Tree) => (tr as { pairs: Array<[Tree, Tree]> }).pairs.find(([k]) => k === K.getProof.certificate)![1] as { pairs: Array<[Tree, Tree]> };
    const field = (m: { pairs: Array<[Tree, Tree]> }, k: number) => m.pairs.find(([x]) => x === k)![1];
    const sorted = (m: { pairs: Array<[Tree, Tree]> }) => m.pairs.sort((a, b) => (a[0] as number) - (b[0] as number));
    const entries = (tr: Tree) =>
      (field(field(tr as { pairs: Array<[Tree, Tree]> }, K.getProof.body) as { pairs: Array<[Tree, Tree]> }, K.body.windows) as Tree[]).flatMap((w) =>
        (field(w as { pairs: Array<[Tree, Tree]> }, K.window.blocks) as Tree[]).flatMap((b) => field(b as { pairs: Array<[Tree, Tree]> }, K.windowBlock.entries) as Tree[]),
      ) as Array<{ pairs: Array<[Tree, Tree]> }>;
    const entryWithValue = (tr: Tree) => entries(tr).find((e) => e.pairs.some(([k]) => k === K.entryLeaf.value))!;
    const answer = p.body.windows.flatMap((w) => w.blocks.flatMap((b) => b.entries)).find((e) => e.kind === 1 && norm(e.key) === norm(enc(skey(13))))!;
    expect(answer).toBeDefined();
    expect(entries(toTree(proofCbor.decode(t.bytes))).filter((e) => e.pairs.some(([k]) => k === K.entryLeaf.value)).length).toBe(1);
    const explicit: Array<[string, (tr: Tree) => void]> = [
      ['head root', (tr) => sorted(Object.assign(cert(tr), { pairs: [...cert(tr).pairs, [K.certificate.root, p.certificate.head.root]] }))],
      [
        'signer set hash',
        (tr) => {
          const cp = field(cert(tr), K.certificate.checkpoint) as { pairs: Array<[Tree, Tree]> };
          cp.pairs.push([K.checkpoint.signerSetHash, p.certificate.checkpoint.signerSetHash!]);
          sorted(cp);
        },
      ],
      [
        'signer as a key of the set',
        (tr) => {
          const sig = (field(cert(tr), K.certificate.signatures) as Tree[])[0] as { pairs: Array<[Tree, Tree]> };
          sig.pairs[0][1] = p.certificate.signatures[0].publicKey;
        },
      ],
      [
        'checkpoint index of the head\'s last checkpoint',
        (tr) => {
          const cp = field(cert(tr), K.certificate.checkpoint) as { pairs: Array<[Tree, Tree]> };
          cp.pairs.push([K.checkpoint.index, p.certificate.checkpoint.index]);
          sorted(cp);
        },
      ],
      [
        'masterRoot',
        (tr) => {
          const cp = field(cert(tr), K.certificate.checkpoint) as { pairs: Array<[Tree, Tree]> };
          cp.pairs.push([K.checkpoint.masterRoot, p.certificate.checkpoint.masterRoot]);
          sorted(cp);
        },
      ],
      [
        "the answer's valueHash, which the value gives",
        (tr) => {
          const e = entryWithValue(tr);
          e.pairs = e.pairs.filter(([k]) => k !== K.entryLeaf.value);
          e.pairs.push([K.entryLeaf.valueHash, answer.valueHash]);
          sorted(e);
        },
      ],
      [
        "the answer's valueHash and its value index both",
        (tr) => {
          const e = entryWithValue(tr);
          e.pairs.push([K.entryLeaf.valueHash, answer.valueHash]);
          sorted(e);
        },
      ],
      [
        'a value index past the values',
        (tr) => {
          const e = entryWithValue(tr);
          e.pairs.find(([k]) => k === K.entryLeaf.value)![1] = 1;
        },
      ],
      [
        'a descriptor key that parses, written whole',
        (tr) => {
          const body = field(tr as { pairs: Array<[Tree, Tree]> }, K.getProof.body) as { pairs: Array<[Tree, Tree]> };
          const d0 = (field(body, K.body.descriptors) as Tree[])[0] as { pairs: Array<[Tree, Tree]> };
          d0.pairs.find(([k]) => k === K.descriptor.smallest)![1] = p.body.descriptors[0].smallest;
        },
      ],
    ];
    expect(p.certificate.signers).toBeDefined();
    expect(p.certificate.checkpoint.index).toBe(p.certificate.head.size - 1);
    for (const [what, edit] of explicit) expect(outcome(t, mutant(t, edit), what), what).toBe('decode');
    // Window blocks: an explicit 0 offset, an explicit index where the position implies it.
    const windowsOf = (tr: Tree) => field(field(tr as { pairs: Array<[Tree, Tree]> }, K.getProof.body) as { pairs: Array<[Tree, Tree]> }, K.body.windows) as Tree[];
    const block0 = (tr: Tree) => (field(windowsOf(tr)[0] as { pairs: Array<[Tree, Tree]> }, K.window.blocks) as Tree[])[0] as { pairs: Array<[Tree, Tree]> };
    const w0 = p.body.windows[0].blocks[0];
    const b0 = (tr: Tree, k: number, v: number) => sorted(Object.assign(block0(tr), { pairs: [...block0(tr).pairs.filter(([x]) => x !== k), [k, v]] }));
    if (w0.offset !== 0) expect(outcome(t, mutant(t, (tr) => b0(tr, K.windowBlock.offset, 0)), 'offset 0 explicit')).toBe('decode');
    if (w0.index !== 0) expect(outcome(t, mutant(t, (tr) => b0(tr, K.windowBlock.index, 0)), 'index 0 explicit')).toBe('decode');
    expect(outcome(t, mutant(t, (tr) => b0(tr, K.windowBlock.offset, 0)), 'offset 0 explicit')).toBe('decode');
  });

  it('beyond MAX_DERIVED_DESCRIPTORS descriptors the masterRoot is written, not derived', () => {
    const t = targets[0];
    const q = clone(t.proof as GetProof);
    const checkpointOf = (b: Uint8Array) => {
      const top = proofCbor.decode(b) as Map<number, Map<number, Map<number, unknown>>>;
      return top.get(PROOF_KEYS.getProof.certificate)!.get(PROOF_KEYS.certificate.checkpoint)!;
    };
    expect(checkpointOf(t.bytes).has(PROOF_KEYS.checkpoint.masterRoot)).toBe(false);
    q.body.descriptors = Array.from({ length: MAX_DERIVED_DESCRIPTORS + 1 }, () => clone(q.body.descriptors[0]));
    const b = t.encode(q);
    expect(checkpointOf(b).has(PROOF_KEYS.checkpoint.masterRoot)).toBe(true);
    expect(norm(t.decode(b))).toEqual(norm(q));
    expect(t.verify(t.decode(b))).toMatchObject({ ok: false, reason: 'UNEXPECTED_ELEMENT' });
  });

  it('tampered proof objects keep their tampering through the encoding: the verifier refuses them for the same reason', () => {
    const t = targets[0];
    const p = t.proof as GetProof;
    const other = generateKeyPair(new Uint8Array(32).fill(9)).publicKey;
    const flip = (b: Uint8Array) => {
      const c = b.slice();
      c[0] ^= 1;
      return c;
    };
    const edits: Array<[string, (q: GetProof) => void]> = [
      ['head root forged', (q) => (q.certificate.head.root = flip(q.certificate.head.root))],
      ['inclusion path altered', (q) => (q.certificate.inclusion = q.certificate.inclusion.length ? [flip(q.certificate.inclusion[0]), ...q.certificate.inclusion.slice(1)] : [new Uint8Array(32)])],
      ['signer set hash altered', (q) => (q.certificate.checkpoint.signerSetHash = flip(q.certificate.checkpoint.signerSetHash!))],
      ['signer set dropped', (q) => delete q.certificate.signers],
      ['signature by a key outside the set', (q) => (q.certificate.signatures[0].publicKey = other)],
      ['masterRoot altered', (q) => (q.certificate.checkpoint.masterRoot = flip(q.certificate.checkpoint.masterRoot))],
      ['an older checkpoint index', (q) => (q.certificate.checkpoint.index -= 1)],
      ['a descriptor entry count changed', (q) => (q.body.descriptors[0].entryCount += 1)],
      ['the value changed', (q) => (q.value = new Uint8Array([...q.value!, 1]))],
      ['a descriptor key whose version does not fit 2^53', (q) => q.body.descriptors[0].smallest.fill(0xff, q.body.descriptors[0].smallest.length - 16, q.body.descriptors[0].smallest.length - 8)],
      ['a descriptor key of another seq', (q) => (q.body.descriptors[0].largest[q.body.descriptors[0].largest.length - 2] ^= 1)],
      ['first block index moved', (q) => (q.body.windows[0].blocks[0].index += 1)],
      ['block offset set', (q) => (q.body.windows[0].blocks[0].offset += 1)],
      ['a second block at a gap', (q) => q.body.windows[0].blocks.push({ ...clone(q.body.windows[0].blocks[0]), index: q.body.windows[0].blocks[0].index + 2 })],
    ];
    for (const [what, edit] of edits) {
      const q = clone(p);
      edit(q);
      const direct = t.verify(q);
      expect(direct.ok, what).toBe(false);
      const through = t.decode(t.encode(q));
      expect(norm(through), what).toEqual(norm(q));
      const r = t.verify(through);
      expect(r.ok, what).toBe(false);
      expect((r as { reason: string }).reason, what).toBe((direct as { reason: string }).reason);
    }
  });
});
