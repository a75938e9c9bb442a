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
 *   is written only when it differs from what the decoder would derive: the signed head's root
 *   (from the checkpoint and its inclusion path), a v2 checkpoint's `signerSetHash` (from the
 *   certificate's signer set), a signature's public key (a member of that set is written as its
 *   index in the set), a window block's index (blocks after the first: the previous index + 1) and
 *   offset (0). So every proof object — honest or not — has exactly one encoding, decoding gives
 *   back exactly that object, and every check of the verifier still sees the fields it checks (a
 *   tampered root, hash or key travels explicitly and is refused where it was before). A field
 *   written although it equals the derived value is not the canonical encoding: `DecodeError`.
 *
 * Deriving costs the decoder the hashes of the checkpoint's inclusion (about 2 + log2(log size)
 * SHA-256 compressions) and of the signer set (one per 1.8 members), with the default hasher.
 * @module
 */
import { equalBytes } from './bytes.js';
import { checkCheckpoint, checkpointLeafHash, PUBLIC_KEY_LEN, SIGNATURE_LEN, type Checkpoint, type HeadSignature } from './checkpoint.js';
import { arrayOf, bytes, hash, MAX_PROOF_PATH, MAX_SIGNATURES, numbered, optional, refine, uint, type Schema } from './encoding.js';
import { DecodeError } from './errors.js';
import { rootFromInclusionProof } from './log.js';
import { NUM_LEVELS, type EntryLeaf, type TableDescriptor } from './lsm.js';
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
  entryLeaf: { key: 0, version: 1, seq: 2, time: 3, kind: 4, valueHash: 5 },
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

const entryLeafSchema: Schema<EntryLeaf> = numbered<EntryLeaf>({ key: userKey, version: uint, seq: uint, time: uint, kind, valueHash: hash }, PROOF_KEYS.entryLeaf);

const descriptorSchema: Schema<TableDescriptor> = refine(
  numbered<TableDescriptor>({ level: uint, position: uint, smallest: internalKey, largest: internalKey, entryCount: uint, tableRoot: hash }, PROOF_KEYS.descriptor),
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
type CheckpointWire = Checkpoint;
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

const certificateSchema: Schema<CheckpointCertificate> = mapped(
  numbered<CertificateWire>(
    {
      checkpoint: numbered<CheckpointWire>(
        { index: uint, seq: uint, masterRoot: hash, time: optional(uint), signerSetHash: optional(hash), prevCheckpointHash: optional(hash) },
        PROOF_KEYS.checkpoint,
      ),
      size: uint,
      root: optional(hash),
      signatures: arrayOf(numbered<SignatureWire>({ signer: signerRef, signature: bytes(SIGNATURE_LEN) }, PROOF_KEYS.signature), MAX_SIGNATURES),
      inclusion: arrayOf(hash, MAX_PROOF_PATH),
      signers: optional(signerSetSchema),
    },
    PROOF_KEYS.certificate,
  ),
  (w, path) => {
    const checkpoint: Checkpoint = { ...w.checkpoint };
    const setHash = impliedSetHash(checkpoint, w.signers);
    if (setHash !== undefined) {
      if (checkpoint.signerSetHash === undefined) checkpoint.signerSetHash = setHash;
      else if (equalBytes(checkpoint.signerSetHash, setHash)) {
        throw new DecodeError(at(path, 'checkpoint.signerSetHash'), "explicit, and equal to the hash of the certificate's signer set: the canonical encoding leaves it out");
      }
    }
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
    const implied = impliedRoot(checkpoint, w.size, w.inclusion);
    let root = w.root;
    if (root === undefined) {
      if (implied === undefined) throw new DecodeError(at(path, 'root'), 'absent, and the inclusion path implies no root');
      root = implied;
    } else if (implied !== undefined && equalBytes(root, implied)) {
      throw new DecodeError(at(path, 'root'), 'explicit, and equal to the root the inclusion path implies: the canonical encoding leaves it out');
    }
    const cert: CheckpointCertificate = { checkpoint, head: { size: w.size, root }, signatures, inclusion: w.inclusion };
    if (w.signers !== undefined) cert.signers = w.signers;
    return cert;
  },
  (c) => {
    const setHash = impliedSetHash(c.checkpoint, c.signers);
    const checkpoint: CheckpointWire = { ...c.checkpoint };
    if (setHash !== undefined && checkpoint.signerSetHash !== undefined && equalBytes(setHash, checkpoint.signerSetHash)) delete checkpoint.signerSetHash;
    const implied = impliedRoot(c.checkpoint, c.head.size, c.inclusion);
    return {
      checkpoint,
      size: c.head.size,
      root: implied !== undefined && equalBytes(implied, c.head.root) ? undefined : c.head.root,
      signatures: c.signatures.map((s) => {
        const i = memberIndex(c.signers, s.publicKey);
        return { signer: i >= 0 ? i : s.publicKey, signature: s.signature };
      }),
      inclusion: c.inclusion,
      signers: c.signers,
    };
  },
);

/** A top-level proof: the format number at key 0, then the proof's fields. */
function versioned<T extends object>(inner: Schema<T & { format: number }>): Schema<T> {
  return mapped(
    inner,
    (w) => {
      const { format: _format, ...rest } = w;
      return rest as unknown as T;
    },
    (v) => ({ ...v, format: PROOF_FORMAT }),
  );
}

/** Format-2 schema of {@link GetProof}. */
export const compactGetProofSchema: Schema<GetProof> = versioned(
  numbered<GetProof & { format: number }>({ format: formatField, certificate: certificateSchema, body: bodySchema, value: optional(value) }, PROOF_KEYS.getProof),
);
/** Format-2 schema of {@link HistoryProof}. */
export const compactHistoryProofSchema: Schema<HistoryProof> = versioned(
  numbered<HistoryProof & { format: number }>(
    { format: formatField, certificate: certificateSchema, body: bodySchema, bound: uint, values: arrayOf(value, MAX_PROOF_ITEMS) },
    PROOF_KEYS.historyProof,
  ),
);
/** Format-2 schema of {@link ScanProof}. */
export const compactScanProofSchema: Schema<ScanProof> = versioned(
  numbered<ScanProof & { format: number }>(
    { format: formatField, certificate: certificateSchema, body: bodySchema, bound: optional(userKey), values: arrayOf(value, MAX_PROOF_ITEMS) },
    PROOF_KEYS.scanProof,
  ),
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
