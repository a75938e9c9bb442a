/**
 * CBOR encodings of get, history and scan proofs, with strict schemas: decoding accepts only the
 * canonical encoding of a well-formed proof and throws only `DecodeError`. Shapes mirror the
 * TypeScript types field by field (maps with text keys); `docs/proofs.md` lists them.
 * @module
 */
import { checkpointSchema, headSignatureSchema, logHeadSchema, MAX_PROOF_PATH, MAX_SIGNATURES, signerSetSchema } from './encoding.js';
import { arrayOf, bytes, codec, hash, optional, refine, struct, uint, type Codec, type Schema } from './encoding.js';
import { Kind } from './hash.js';
import { NUM_LEVELS, type EntryLeaf, type TableDescriptor } from './lsm.js';
import type { CheckpointCertificate, GetProof, HistoryProof, LsmProofBody, TableWindow, WindowBlock } from './lsm_proof.js';
import type { ScanProof } from './lsm_scan.js';

/** Largest user key. */
export const MAX_KEY_LEN = 65536;
/** Largest value a proof may carry. */
export const MAX_VALUE_LEN = 64 * 1024 * 1024;
/** Largest encoded proof accepted. */
export const MAX_PROOF_BYTES = 80 * 1024 * 1024;
/** Most entries, blocks, windows or descriptors in one proof list. */
export const MAX_PROOF_ITEMS = 1 << 20;

const kind: Schema<Kind> = refine(uint, (k) => (k === Kind.PUT || k === Kind.DELETE ? undefined : `kind ${k}, want 0 or 1`)) as Schema<Kind>;
const userKey = bytes({ min: 1, max: MAX_KEY_LEN });
const internalKey = bytes({ min: 17, max: MAX_KEY_LEN + 16 });
const value = bytes({ min: 0, max: MAX_VALUE_LEN });

/** Schema of {@link EntryLeaf}. */
export const entryLeafSchema: Schema<EntryLeaf> = struct<EntryLeaf>({ key: userKey, version: uint, seq: uint, time: uint, kind, valueHash: hash });
/** Schema of {@link TableDescriptor}. */
export const descriptorSchema: Schema<TableDescriptor> = refine(
  struct<TableDescriptor>({
    level: uint,
    position: uint,
    smallest: internalKey,
    largest: internalKey,
    entryCount: uint,
    tableRoot: hash,
  }),
  (d) => (d.level < NUM_LEVELS ? undefined : `level ${d.level}, want < ${NUM_LEVELS}`),
);
/** Schema of {@link WindowBlock}. */
export const windowBlockSchema: Schema<WindowBlock> = struct<WindowBlock>({
  index: uint,
  entryCount: uint,
  offset: uint,
  entries: arrayOf(entryLeafSchema, MAX_PROOF_ITEMS),
  proof: arrayOf(hash, MAX_PROOF_PATH),
});
/** Schema of {@link TableWindow}. */
export const tableWindowSchema: Schema<TableWindow> = struct<TableWindow>({
  table: uint,
  blockCount: uint,
  blocks: arrayOf(windowBlockSchema, MAX_PROOF_ITEMS),
  blockProof: arrayOf(hash, MAX_PROOF_PATH),
});
/** Schema of {@link LsmProofBody}. */
export const lsmBodySchema: Schema<LsmProofBody> = refine(
  struct<LsmProofBody>({
    levelCounts: arrayOf(uint, NUM_LEVELS),
    descriptors: arrayOf(descriptorSchema, MAX_PROOF_ITEMS),
    masterProof: arrayOf(hash, MAX_PROOF_ITEMS),
    windows: arrayOf(tableWindowSchema, MAX_PROOF_ITEMS),
  }),
  (b) => (b.levelCounts.length === NUM_LEVELS ? undefined : `levelCounts has ${b.levelCounts.length} items, want ${NUM_LEVELS}`),
);
/** Schema of {@link CheckpointCertificate}. */
export const certificateSchema: Schema<CheckpointCertificate> = struct<CheckpointCertificate>({
  checkpoint: checkpointSchema,
  head: logHeadSchema,
  signatures: arrayOf(headSignatureSchema, MAX_SIGNATURES),
  inclusion: arrayOf(hash, MAX_PROOF_PATH),
  signers: optional(signerSetSchema),
});
/** Schema of {@link GetProof}. */
export const getProofSchema: Schema<GetProof> = struct<GetProof>({
  certificate: certificateSchema,
  body: lsmBodySchema,
  value: optional(value),
});
/** Schema of {@link HistoryProof}. */
export const historyProofSchema: Schema<HistoryProof> = struct<HistoryProof>({
  certificate: certificateSchema,
  body: lsmBodySchema,
  bound: uint,
  values: arrayOf(value, MAX_PROOF_ITEMS),
});

/** Schema of {@link ScanProof}. */
export const scanProofSchema: Schema<ScanProof> = struct<ScanProof>({
  certificate: certificateSchema,
  body: lsmBodySchema,
  bound: optional(userKey),
  values: arrayOf(value, MAX_PROOF_ITEMS),
});

/** CBOR codec of {@link GetProof}. */
export const getProofCodec: Codec<GetProof> = codec(getProofSchema, MAX_PROOF_BYTES);
/** CBOR codec of {@link HistoryProof}. */
export const historyProofCodec: Codec<HistoryProof> = codec(historyProofSchema, MAX_PROOF_BYTES);
/** CBOR codec of {@link ScanProof}. */
export const scanProofCodec: Codec<ScanProof> = codec(scanProofSchema, MAX_PROOF_BYTES);
/** CBOR codec of {@link CheckpointCertificate}. */
export const certificateCodec: Codec<CheckpointCertificate> = codec(certificateSchema);
