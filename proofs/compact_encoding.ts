/**
 * The compact encoding of get, history and scan proofs: proof format 2 (docs/proofs.md §8.10).
 * Isomorphic: no `node:` imports.
 *
 * The same data model and the same strictness as the text-keyed format 1 (`lsm_encoding.ts`):
 * canonical CBOR (RFC 8949 §4.2.1) checked by one linear pass before anything is decoded, then a
 * schema that refuses unknown keys, wrong types, missing fields. What differs:
 *
 * - **Integer map keys.** Every map is keyed by small unsigned integers (0..23, one byte), from a
 *   registry per structure ({@link PROOF_KEYS}), instead of field names.
 * - **A format version.** Key 0 of the top-level map is the format, 2. A format-1 proof's first
 *   key is text, so the two are told apart by the first key's CBOR type ({@link proofFormatOf}).
 * - **Derived fields are left out.** A field the decoder can recompute from the rest of the proof
 *   is written only when it differs from what the decoder would derive: the checkpoint's
 *   `masterRoot` (from the body's level counts, descriptors and multiproof), the signed head's
 *   root (from the checkpoint and its inclusion path), the checkpoint's `index` (`size − 1`), a v2
 *   checkpoint's `signerSetHash` (from the certificate's signer set), a signature's public key (a
 *   member of that set is written as its index in the set), an entry's `valueHash` (written as the
 *   index of a value of the proof that hashes to it), a window block's index (blocks after the
 *   first: the previous index + 1) and offset (0). So every proof object — honest or not — has
 *   exactly one encoding, decoding gives back exactly that object, and every check of the
 *   verifier still sees the fields it checks (a tampered root, hash or key travels explicitly and
 *   is refused where it was before). A field written although it equals the derived value is not
 *   the canonical encoding: `DecodeError`.
 * - **Internal keys split.** A descriptor's `smallest` / `largest` travel as
 *   `[key, version, seq, kind]` when they parse (about 9 bytes less than the 16-byte trailer).
 *
 * Deriving costs the decoder (and the encoder) the master layer of the body (descriptor hashes and
 * the multiproof), the checkpoint's leaf and inclusion path, the signer set's hash and one hash
 * per value, with the default hasher — the verifier recomputes them all, so nothing derived is
 * trusted.
 * @module
 */
import { equalBytes, toHex } from './bytes.js';
import { copyCertificate, sameCertificate } from './certificate_copy.js';
import { checkCheckpoint, checkpointLeafHash, PUBLIC_KEY_LEN, SIGNATURE_LEN, type Checkpoint, type HeadSignature } from './checkpoint.js';
import { arrayOf, bytes, hash, MAX_PROOF_PATH, MAX_SIGNATURES, numbered, optional, refine, uint, type Schema } from './encoding.js';
import { DecodeError } from './errors.js';
import { rootFromInclusionProof } from './log.js';
import { descriptorHash, internalKeyOf, levelOffsets, masterRootOf, NUM_LEVELS, parseInternalKey, type EntryLeaf, type TableDescriptor } from './lsm.js';
import { rootFromMultiproof } from './multiproof.js';
import { defaultHasher, Domain, HASH_LEN } from './hash.js';
import type { CheckpointCertificate, GetProof, HistoryProof, LsmProofBody, TableWindow, WindowBlock } from './lsm_proof.js';
import type { ScanProof } from './lsm_scan.js';
import { internalKeyField, kindField, MAX_PROOF_ITEMS, userKeyField, valueField } from './proof_fields.js';
import { checkSignerSet, MAX_SIGNERS, signerSetHash, type SignerSet, type SignerSetMember } from './signer_set.js';

/** The proof format this module encodes. Format 1 is the text-keyed encoding of `lsm_encoding.ts`. */
export const PROOF_FORMAT = 2;

/**
 * The key registry of format 2: for each structure, the integer key of each field. Frozen; keys
 * are never reused for another meaning — a later field gets a new key, and a decoder of this
 * format refuses keys it does not know.
 */
export const PROOF_KEYS = Object.freeze({
  getProof: { format: 0, certificate: 1, body: 2, value: 3 },
  historyProof: { format: 0, certificate: 1, body: 2, bound: 3, values: 4 },
  scanProof: { format: 0, certificate: 1, body: 2, bound: 3, values: 4 },
  certificate: { checkpoint: 0, size: 1, root: 2, signatures: 3, inclusion: 4, signers: 5 },
  checkpoint: { index: 0, seq: 1, masterRoot: 2, time: 3, signerSetHash: 4, prevCheckpointHash: 5 },
  signature: { signer: 0, signature: 1 },
  signerSet: { quorum: 0, members: 1 },
  signerSetMember: { id: 0, publicKey: 1 },
  body: { levelCounts: 0, descriptors: 1, masterProof: 2, windows: 3 },
  descriptor: { level: 0, position: 1, smallest: 2, largest: 3, entryCount: 4, tableRoot: 5 },
  window: { table: 0, blockCount: 1, blocks: 2, blockProof: 3 },
  windowBlock: { index: 0, entryCount: 1, offset: 2, entries: 3, proof: 4 },
  entryLeaf: { key: 0, version: 1, seq: 2, time: 3, kind: 4, valueHash: 5, value: 6 },
} as const);

/** A schema over an intermediate wire shape `W`, mapped to and from the in-memory type `T`. */
function mapped<W, T>(inner: Schema<W>, toValue: (w: W, path: string) => T, toWire: (v: T) => W): Schema<T> {
  return { parse: (input, path) => toValue(inner.parse(input, path), path), wire: (v) => inner.wire(toWire(v)), shape: inner.shape };
}

const at = (path: string, field: string): string => (path === '' ? field : `${path}.${field}`);
/** A uint that is written only when it is not its default, 0: an explicit 0 is not canonical. */
const nonZero = refine(uint, (v) => (v > 0 ? undefined : 'explicit 0: the canonical encoding leaves the field out'));
const kind = kindField;
const userKey = userKeyField;
const internalKey = internalKeyField;
const value = valueField;
const formatField = refine(uint, (f) => (f === PROOF_FORMAT ? undefined : `format ${f}, want ${PROOF_FORMAT}`));

/**
 * An entry leaf on the wire: its `valueHash`, or — when a value the proof carries hashes to it —
 * that value's index (`value`), resolved by the proof's schema ({@link proofSchema}).
 */
interface EntryWire extends Omit<EntryLeaf, 'valueHash'> {
  valueHash?: Uint8Array;
  value?: number;
}
// Typed as EntryLeaf for the body and window schemas; proofSchema resolves `value` to `valueHash`.
const entryLeafSchema = numbered<EntryWire>(
  { key: userKey, version: uint, seq: uint, time: uint, kind, valueHash: optional(hash), value: optional(uint) },
  PROOF_KEYS.entryLeaf,
) as unknown as Schema<EntryLeaf>;

const byte = refine(uint, (v) => (v <= 0xff ? undefined : `${v} is not a byte`));
const internalKeyParts: Schema<[Uint8Array, number, number, number]> = {
  parse(input, path) {
    if (!Array.isArray(input) || input.length !== 4) throw new DecodeError(path, 'want an internal key: [key, version, seq, kind] or a byte string');
    return [userKey.parse(input[0], `${path}[0]`), uint.parse(input[1], `${path}[1]`), uint.parse(input[2], `${path}[2]`), byte.parse(input[3], `${path}[3]`)];
  },
  wire: (v) => [v[0], uint.wire(v[1]), uint.wire(v[2]), v[3]],
  shape: { depth: 1, maxArray: 4, maxMap: 0 },
};
/**
 * An internal key (§8.1): split into `[key, version, seq, kind]` (about 9 bytes shorter than the
 * 16-byte trailer as a byte string) whenever it parses, else whole as a byte string — a whole
 * key that parses is not the canonical encoding.
 */
const splitInternalKey: Schema<Uint8Array> = {
  parse(input, path) {
    if (input instanceof Uint8Array) {
      const whole = internalKey.parse(input, path);
      if (parseInternalKey(whole)) throw new DecodeError(path, 'an internal key that parses, written whole: the canonical encoding splits it');
      return whole;
    }
    const [key, version, seq, kind] = internalKeyParts.parse(input, path);
    if (seq >= 2 ** 56) throw new DecodeError(path, `seq ${seq} does not fit 56 bits`);
    return internalKeyOf({ key, version, seq, kind });
  },
  wire(v) {
    const p = v instanceof Uint8Array ? parseInternalKey(v) : undefined;
    return p ? internalKeyParts.wire([p.key, p.version, p.seq, p.kind]) : v;
  },
  shape: internalKeyParts.shape,
};

const descriptorSchema: Schema<TableDescriptor> = refine(
  numbered<TableDescriptor>(
    { level: uint, position: uint, smallest: splitInternalKey, largest: splitInternalKey, entryCount: uint, tableRoot: hash },
    PROOF_KEYS.descriptor,
  ),
  (d) => (d.level < NUM_LEVELS ? undefined : `level ${d.level}, want < ${NUM_LEVELS}`),
);

interface BlockWire {
  index?: number;
  entryCount: number;
  offset?: number;
  entries: EntryLeaf[];
  proof: Uint8Array[];
}
const blockWireSchema = numbered<BlockWire>(
  { index: optional(uint), entryCount: uint, offset: optional(nonZero), entries: arrayOf(entryLeafSchema, MAX_PROOF_ITEMS), proof: arrayOf(hash, MAX_PROOF_PATH) },
  PROOF_KEYS.windowBlock,
);
interface WindowWire {
  table: number;
  blockCount: number;
  blocks: BlockWire[];
  blockProof: Uint8Array[];
}

/** The index a block's position implies: 0 for the first, the previous block's index + 1 after. */
const impliedIndex = (blocks: readonly { index: number }[], k: number): number => (k === 0 ? 0 : blocks[k - 1].index + 1);

const windowSchema: Schema<TableWindow> = mapped(
  numbered<WindowWire>({ table: uint, blockCount: uint, blocks: arrayOf(blockWireSchema, MAX_PROOF_ITEMS), blockProof: arrayOf(hash, MAX_PROOF_PATH) }, PROOF_KEYS.window),
  (w, path) => {
    const blocks: WindowBlock[] = [];
    for (let k = 0; k < w.blocks.length; k++) {
      const b = w.blocks[k];
      const implied = impliedIndex(blocks, k);
      if (b.index === implied) throw new DecodeError(at(path, `blocks[${k}].index`), `explicit ${implied}, the index the block's position implies: the canonical encoding leaves it out`);
      blocks.push({ index: b.index ?? implied, entryCount: b.entryCount, offset: b.offset ?? 0, entries: b.entries, proof: b.proof });
    }
    return { table: w.table, blockCount: w.blockCount, blocks, blockProof: w.blockProof };
  },
  (w) => ({
    table: w.table,
    blockCount: w.blockCount,
    blocks: w.blocks.map((b, k) => ({
      index: b.index === impliedIndex(w.blocks, k) ? undefined : b.index,
      entryCount: b.entryCount,
      offset: b.offset === 0 ? undefined : b.offset,
      entries: b.entries,
      proof: b.proof,
    })),
    blockProof: w.blockProof,
  }),
);

const bodySchema: Schema<LsmProofBody> = refine(
  numbered<LsmProofBody>(
    {
      levelCounts: arrayOf(uint, NUM_LEVELS),
      descriptors: arrayOf(descriptorSchema, MAX_PROOF_ITEMS),
      masterProof: arrayOf(hash, MAX_PROOF_ITEMS),
      windows: arrayOf(windowSchema, MAX_PROOF_ITEMS),
    },
    PROOF_KEYS.body,
  ),
  (b) => (b.levelCounts.length === NUM_LEVELS ? undefined : `levelCounts has ${b.levelCounts.length} items, want ${NUM_LEVELS}`),
);

const signerSetSchema: Schema<SignerSet> = refine(
  numbered<SignerSet>(
    { quorum: uint, members: arrayOf(numbered<SignerSetMember>({ id: uint, publicKey: bytes(PUBLIC_KEY_LEN) }, PROOF_KEYS.signerSetMember), MAX_SIGNERS) },
    PROOF_KEYS.signerSet,
  ),
  (s) => checkSignerSet(s)?.message,
);

/** A signature's signer: the index of a member of the certificate's signer set, or a public key outside it. */
const signerRef: Schema<number | Uint8Array> = {
  parse: (input, path) => (input instanceof Uint8Array ? bytes(PUBLIC_KEY_LEN).parse(input, path) : uint.parse(input, path)),
  wire: (v) => (v instanceof Uint8Array ? v : uint.wire(v)),
  shape: { depth: 0, maxArray: 0, maxMap: 0 },
};
interface SignatureWire {
  signer: number | Uint8Array;
  signature: Uint8Array;
}
/** A checkpoint whose `index` is left out when it is the head's last (`size − 1`). */
type CheckpointWire = Omit<Checkpoint, 'index' | 'masterRoot'> & { index?: number; masterRoot?: Uint8Array };
interface CertificateWire {
  checkpoint: CheckpointWire;
  size: number;
  root?: Uint8Array;
  signatures: SignatureWire[];
  inclusion: Uint8Array[];
  signers?: SignerSet;
}

/** The head root the checkpoint's inclusion path gives in a log of `size`, or undefined when it gives none. */
function impliedRoot(checkpoint: Checkpoint, size: number, inclusion: Uint8Array[]): Uint8Array | undefined {
  if (checkCheckpoint(checkpoint) !== undefined) return undefined;
  const r = rootFromInclusionProof(checkpointLeafHash(checkpoint), checkpoint.index, size, inclusion);
  return r.ok ? r.root : undefined;
}

/** The signer set hash a v2 checkpoint's certificate implies: that of its signer set, when it has one. */
const impliedSetHash = (checkpoint: Checkpoint, signers: SignerSet | undefined): Uint8Array | undefined =>
  checkpoint.time !== undefined && signers !== undefined ? signerSetHash(signers) : undefined;

const memberIndex = (signers: SignerSet | undefined, key: Uint8Array): number => (signers ? signers.members.findIndex((m) => equalBytes(m.publicKey, key)) : -1);

const certificateWireSchema = numbered<CertificateWire>(
  {
    checkpoint: numbered<CheckpointWire>(
      { index: optional(uint), seq: uint, masterRoot: optional(hash), time: optional(uint), signerSetHash: optional(hash), prevCheckpointHash: optional(hash) },
      PROOF_KEYS.checkpoint,
    ),
    size: uint,
    root: optional(hash),
    signatures: arrayOf(numbered<SignatureWire>({ signer: signerRef, signature: bytes(SIGNATURE_LEN) }, PROOF_KEYS.signature), MAX_SIGNATURES),
    inclusion: arrayOf(hash, MAX_PROOF_PATH),
    signers: optional(signerSetSchema),
  },
  PROOF_KEYS.certificate,
);

/** `field` derived as `implied` unless written: written, it must differ from `implied`; absent, `implied` must exist. */
function derived(written: Uint8Array | undefined, implied: Uint8Array | undefined, path: string, what: string): Uint8Array {
  if (written === undefined) {
    if (implied === undefined) throw new DecodeError(path, `absent, and ${what} implies none`);
    return implied;
  }
  if (implied !== undefined && equalBytes(written, implied)) throw new DecodeError(path, `explicit, and equal to what ${what} implies: the canonical encoding leaves it out`);
  return written;
}

/** The certificate, its derived fields filled in; `masterRoot` is what the proof's body implies. */
function certificateFromWire(w: CertificateWire, masterRoot: Uint8Array | undefined, path: string): CheckpointCertificate {
  if (w.checkpoint.index === w.size - 1) throw new DecodeError(at(path, 'checkpoint.index'), `explicit ${w.size - 1}, the head's last checkpoint: the canonical encoding leaves it out`);
  if (w.checkpoint.index === undefined && w.size === 0) throw new DecodeError(at(path, 'checkpoint.index'), 'absent, and a head of size 0 has no last checkpoint');
  const checkpoint: Checkpoint = {
    ...w.checkpoint,
    index: w.checkpoint.index ?? w.size - 1,
    masterRoot: derived(w.checkpoint.masterRoot, masterRoot, at(path, 'checkpoint.masterRoot'), 'the body (levelCounts, descriptors, masterProof)'),
  };
  const setHash = impliedSetHash(checkpoint, w.signers);
  if (setHash !== undefined) checkpoint.signerSetHash = derived(w.checkpoint.signerSetHash, setHash, at(path, 'checkpoint.signerSetHash'), "the certificate's signer set");
  const bad = checkCheckpoint(checkpoint);
  if (bad) throw new DecodeError(at(path, 'checkpoint'), bad.message);
  const signatures: HeadSignature[] = w.signatures.map((s, i) => {
    const sub = at(path, `signatures[${i}].signer`);
    if (s.signer instanceof Uint8Array) {
      if (memberIndex(w.signers, s.signer) >= 0) throw new DecodeError(sub, 'a member of the signer set written as a key: the canonical encoding writes its index');
      return { publicKey: s.signer, signature: s.signature };
    }
    const member = w.signers?.members[s.signer];
    if (!member) throw new DecodeError(sub, `signer index ${s.signer}, the certificate's signer set has ${w.signers?.members.length ?? 0} members`);
    return { publicKey: new Uint8Array(member.publicKey), signature: s.signature };
  });
  const root = derived(w.root, impliedRoot(checkpoint, w.size, w.inclusion), at(path, 'root'), 'the inclusion path');
  const cert: CheckpointCertificate = { checkpoint, head: { size: w.size, root }, signatures, inclusion: w.inclusion };
  if (w.signers !== undefined) cert.signers = w.signers;
  return cert;
}

/** A certificate's wire form apart from the masterRoot's (which depends on the proof's body). */
interface CertificateWireParts {
  /** The checkpoint's wire form with its masterRoot. */
  checkpoint: CheckpointWire;
  root: Uint8Array | undefined;
  signatures: SignatureWire[];
}

/**
 * The encoder's memo of the last certificate it wrote: a copy, and its wire form's parts. Every
 * proof served against one head carries the same certificate; deriving its root from the
 * inclusion path and its signer set's hash (to leave them out) was most of the certificate's
 * share of an encode (bench/README.md § "Serving a proof"). A certificate equal to the copy field
 * by field (`sameCertificate`) has the same wire form, so the parts are reused (never mutated:
 * the writer only reads them); any other certificate is derived afresh and remembered instead.
 */
let lastWire: { cert: CheckpointCertificate; parts: CertificateWireParts } | undefined;

function certificateWireParts(c: CheckpointCertificate): CertificateWireParts {
  if (lastWire !== undefined && sameCertificate(lastWire.cert, c)) return lastWire.parts;
  let copy: CheckpointCertificate | undefined;
  try {
    copy = copyCertificate(c);
  } catch {
    copy = undefined; // a malformed certificate (encode() refuses it next): not remembered
  }
  // Remembered parts are derived from the copy, so nothing the caller holds is in them.
  const parts = deriveWireParts(copy ?? c);
  lastWire = copy ? { cert: copy, parts } : undefined;
  return parts;
}

function deriveWireParts(c: CheckpointCertificate): CertificateWireParts {
  const same = (a: Uint8Array | undefined, b: Uint8Array | undefined) => a !== undefined && b !== undefined && equalBytes(a, b);
  const checkpoint: CheckpointWire = { ...c.checkpoint };
  if (c.checkpoint.index === c.head.size - 1) delete checkpoint.index;
  if (same(c.checkpoint.signerSetHash, impliedSetHash(c.checkpoint, c.signers))) delete checkpoint.signerSetHash;
  return {
    checkpoint,
    root: same(c.head.root, impliedRoot(c.checkpoint, c.head.size, c.inclusion)) ? undefined : c.head.root,
    signatures: c.signatures.map((s) => {
      const i = memberIndex(c.signers, s.publicKey);
      return { signer: i >= 0 ? i : s.publicKey, signature: s.signature };
    }),
  };
}

/** The wire form of a certificate: every derived field that equals what the decoder derives is left out. */
function certificateToWire(c: CheckpointCertificate, masterRoot: Uint8Array | undefined): CertificateWire {
  const parts = certificateWireParts(c);
  const checkpoint: CheckpointWire = { ...parts.checkpoint };
  if (masterRoot !== undefined && c.checkpoint.masterRoot !== undefined && equalBytes(c.checkpoint.masterRoot, masterRoot)) delete checkpoint.masterRoot;
  return { checkpoint, size: c.head.size, root: parts.root, signatures: parts.signatures, inclusion: c.inclusion, signers: c.signers };
}

/**
 * Most descriptors whose master layer the decoder hashes to derive the masterRoot. A get or history
 * proof reveals at most every level-0 table and two per deeper level, a scan one run per level.
 */
export const MAX_DERIVED_DESCRIPTORS = 1024;

/**
 * The MasterRoot the body implies (§8.3–§8.4: descriptors at their master indexes, the
 * multiproof, the level counts), or undefined when the body implies none (bad counts, positions,
 * order, or proof length — the verifier then refuses the proof, which must carry its masterRoot).
 */
function impliedMasterRoot(body: LsmProofBody): Uint8Array | undefined {
  // Hashing before the verifier's structural limits (§8.8 S): bounded, so an oversized body costs
  // the decoder no more than reading it; beyond the bound the masterRoot travels explicitly.
  if (body.descriptors.length > MAX_DERIVED_DESCRIPTORS) return undefined;
  try {
    const hasher = defaultHasher();
    const counts = body.levelCounts;
    if (counts.length !== NUM_LEVELS || !counts.every((c) => c <= 0xffffffff)) return undefined;
    const total = counts.reduce((a, b) => a + b, 0);
    if (total === 0) return body.descriptors.length === 0 && body.masterProof.length === 0 ? masterRootOf(hasher, counts, new Uint8Array(HASH_LEN)) : undefined;
    const offsets = levelOffsets(counts);
    const indexes: number[] = [];
    const leaves: Uint8Array[] = [];
    for (const d of body.descriptors) {
      if (d.level >= NUM_LEVELS || d.position >= counts[d.level]) return undefined;
      indexes.push(offsets[d.level] + d.position);
      leaves.push(descriptorHash(hasher, d));
    }
    if (indexes.length === 0) return undefined;
    const r = rootFromMultiproof(hasher, Domain.MASTER_NODE, total, indexes, leaves, body.masterProof);
    return r.ok ? masterRootOf(hasher, counts, r.root) : undefined;
  } catch {
    return undefined;
  }
}

/** Every entry leaf of a body, in order. */
const entriesOf = (body: LsmProofBody): EntryLeaf[] => body.windows.flatMap((w) => w.blocks.flatMap((b) => b.entries));

/**
 * Value hashes the proof implies: the hash of each value it carries (first index of each distinct
 * hash, by hex). An entry whose `valueHash` is one of them is written as that value's index.
 */
function valueIndex(values: readonly Uint8Array[]): { hashes: Uint8Array[]; index: Map<string, number> } {
  const hasher = defaultHasher();
  const hashes = values.map((v) => hasher.valueHash(v));
  const index = new Map<string, number>();
  hashes.forEach((h, i) => {
    const hex = toHex(h);
    if (!index.has(hex)) index.set(hex, i);
  });
  return { hashes, index };
}

/** What the three proof types share on the wire. */
interface ProofWire {
  format: number;
  certificate: CertificateWire;
  body: LsmProofBody;
}

/**
 * A top-level proof: the format number at key 0, then the proof's fields; the derivations that
 * need more than one part of the proof — the checkpoint's masterRoot from the body, entries'
 * value hashes from the proof's values — are made here. `valuesOf` lists the proof's values.
 */
function proofSchema<T extends { certificate: CheckpointCertificate; body: LsmProofBody }, W extends ProofWire>(
  inner: Schema<W>,
  valuesOf: (p: { value?: Uint8Array; values?: Uint8Array[] }) => Uint8Array[],
): Schema<T> {
  return mapped(
    inner,
    (w, path) => {
      const { format: _format, certificate, body, ...rest } = w;
      const values = valuesOf(w as unknown as { value?: Uint8Array; values?: Uint8Array[] });
      let implied: ReturnType<typeof valueIndex> | undefined;
      for (const e of entriesOf(body) as EntryWire[]) {
        if (e.value === undefined) {
          if (e.valueHash === undefined) throw new DecodeError(at(path, 'body'), 'an entry with neither valueHash nor value');
          implied ??= valueIndex(values);
          if (implied.index.has(toHex(e.valueHash))) throw new DecodeError(at(path, 'body'), "an entry's valueHash written whole, though a value of the proof hashes to it: the canonical encoding writes the value's index");
          continue;
        }
        if (e.valueHash !== undefined) throw new DecodeError(at(path, 'body'), 'an entry with both valueHash and value');
        if (e.value >= values.length) throw new DecodeError(at(path, 'body'), `an entry's value ${e.value}, the proof carries ${values.length}`);
        implied ??= valueIndex(values);
        e.valueHash = implied.hashes[e.value];
        delete e.value;
      }
      return { ...rest, certificate: certificateFromWire(certificate, impliedMasterRoot(body), at(path, 'certificate')), body } as unknown as T;
    },
    (p) => {
      const { index } = valueIndex(valuesOf(p as unknown as { value?: Uint8Array; values?: Uint8Array[] }));
      const entry = (e: EntryLeaf): EntryWire => {
        const i = e.valueHash instanceof Uint8Array ? index.get(toHex(e.valueHash)) : undefined;
        return i === undefined ? e : { key: e.key, version: e.version, seq: e.seq, time: e.time, kind: e.kind, value: i };
      };
      const body: LsmProofBody = {
        ...p.body,
        windows: p.body.windows.map((w) => ({ ...w, blocks: w.blocks.map((b) => ({ ...b, entries: b.entries.map(entry) as EntryLeaf[] })) })),
      };
      return { ...p, format: PROOF_FORMAT, certificate: certificateToWire(p.certificate, impliedMasterRoot(p.body)), body } as unknown as W;
    },
  );
}

const getValues = (p: { value?: Uint8Array }): Uint8Array[] => (p.value instanceof Uint8Array ? [p.value] : []);
const listValues = (p: { values?: Uint8Array[] }): Uint8Array[] => (Array.isArray(p.values) ? p.values : []);

/** Format-2 schema of {@link GetProof}. */
export const compactGetProofSchema: Schema<GetProof> = proofSchema(
  numbered<ProofWire & { value?: Uint8Array }>({ format: formatField, certificate: certificateWireSchema, body: bodySchema, value: optional(value) }, PROOF_KEYS.getProof),
  getValues,
);
/** Format-2 schema of {@link HistoryProof}. */
export const compactHistoryProofSchema: Schema<HistoryProof> = proofSchema(
  numbered<ProofWire & { bound: number; values: Uint8Array[] }>(
    { format: formatField, certificate: certificateWireSchema, body: bodySchema, bound: uint, values: arrayOf(value, MAX_PROOF_ITEMS) },
    PROOF_KEYS.historyProof,
  ),
  listValues,
);
/** Format-2 schema of {@link ScanProof}. */
export const compactScanProofSchema: Schema<ScanProof> = proofSchema(
  numbered<ProofWire & { bound?: Uint8Array; values: Uint8Array[] }>(
    { format: formatField, certificate: certificateWireSchema, body: bodySchema, bound: optional(userKey), values: arrayOf(value, MAX_PROOF_ITEMS) },
    PROOF_KEYS.scanProof,
  ),
  listValues,
);

/**
 * The format of an encoded proof, from its first map key's CBOR type: 2 (an unsigned integer key:
 * this module) or 1 (a text key: the text-keyed format). Anything else — not a map, empty — is
 * reported as 2, whose decoder then refuses it. Reads at most the first 10 bytes.
 */
export function proofFormatOf(bytes: Uint8Array): 1 | 2 {
  if (!(bytes instanceof Uint8Array) || bytes.length < 2 || bytes[0] >> 5 !== 5) return 2;
  const ai = bytes[0] & 31;
  const keyAt = ai < 24 ? 1 : ai < 28 ? 1 + (1 << (ai - 24)) : 1;
  return keyAt < bytes.length && bytes[keyAt] >> 5 === 3 ? 1 : 2;
}
