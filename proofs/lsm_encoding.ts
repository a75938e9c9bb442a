/**
 * CBOR encodings of get, history and scan proofs, with strict schemas: decoding accepts only the
 * canonical encoding of a well-formed proof and throws only `DecodeError`. The schemas here are
 * those of the text-keyed format 1, whose shapes mirror the TypeScript types field by field; the
 * codecs `getProofCodec`, `historyProofCodec`, `scanProofCodec` encode the compact format 2
 * (`compact_encoding.ts`) and decode both. `docs/proofs.md` §8.10 lists them.
 * @module
 */
import { checkpointSchema, headSignatureSchema, logHeadSchema, MAX_PROOF_PATH, MAX_SIGNATURES, signerSetSchema } from './encoding.js';
import { arrayOf, bytes, codec, hash, optional, refine, struct, uint, type Codec, type Schema } from './encoding.js';
import { internalKeyField, kindField, MAX_PROOF_BYTES, MAX_PROOF_ITEMS, userKeyField, valueField } from './proof_fields.js';
import { NUM_LEVELS, type EntryLeaf, type TableDescriptor } from './lsm.js';
import type { CheckpointCertificate, GetProof, HistoryProof, LsmProofBody, TableWindow, WindowBlock } from './lsm_proof.js';
import type { ScanProof } from './lsm_scan.js';
import { compactGetProofSchema, compactHistoryProofSchema, compactScanProofSchema, proofFormatOf } from './compact_encoding.js';

export { MAX_KEY_LEN, MAX_PROOF_BYTES, MAX_PROOF_ITEMS, MAX_VALUE_LEN } from './proof_fields.js';

const kind = kindField;
const userKey = userKeyField;
const internalKey = internalKeyField;
const value = valueField;

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

/** Text-keyed (format 1) codec of {@link GetProof}: what servers sent before format 2, and send on request. */
export const getProofCodecV1: Codec<GetProof> = codec(getProofSchema, MAX_PROOF_BYTES);
/** Text-keyed (format 1) codec of {@link HistoryProof}. */
export const historyProofCodecV1: Codec<HistoryProof> = codec(historyProofSchema, MAX_PROOF_BYTES);
/** Text-keyed (format 1) codec of {@link ScanProof}. */
export const scanProofCodecV1: Codec<ScanProof> = codec(scanProofSchema, MAX_PROOF_BYTES);

/**
 * A proof codec that encodes the compact format 2 and decodes either format: format 2 strictly
 * by its schema, format 1 (a proof whose first map key is text) strictly by the text-keyed one.
 * So a client reads proofs from servers of either version and proof bundles saved before format 2.
 */
function eitherFormat<T>(compact: Codec<T>, textKeyed: Codec<T>): Codec<T> {
  return {
    encode: (v) => compact.encode(v),
    encodeTrusted: (v) => compact.encodeTrusted(v),
    decode: (b) => (proofFormatOf(b) === 1 ? textKeyed.decode(b) : compact.decode(b)),
  };
}

/** CBOR codec of {@link GetProof}: encodes format 2 (`compact_encoding.ts`), decodes formats 2 and 1. */
export const getProofCodec: Codec<GetProof> = eitherFormat(codec(compactGetProofSchema, MAX_PROOF_BYTES, 'uint'), getProofCodecV1);
/** CBOR codec of {@link HistoryProof}: encodes format 2, decodes formats 2 and 1. */
export const historyProofCodec: Codec<HistoryProof> = eitherFormat(codec(compactHistoryProofSchema, MAX_PROOF_BYTES, 'uint'), historyProofCodecV1);
/** CBOR codec of {@link ScanProof}: encodes format 2, decodes formats 2 and 1. */
export const scanProofCodec: Codec<ScanProof> = eitherFormat(codec(compactScanProofSchema, MAX_PROOF_BYTES, 'uint'), scanProofCodecV1);

/** The codecs of one proof format: format 1 encodes text-keyed proofs, format 2 compact ones. */
export function proofCodecs(format: 1 | 2): { get: Codec<GetProof>; history: Codec<HistoryProof>; scan: Codec<ScanProof> } {
  return format === 1
    ? { get: getProofCodecV1, history: historyProofCodecV1, scan: scanProofCodecV1 }
    : { get: getProofCodec, history: historyProofCodec, scan: scanProofCodec };
}
/** CBOR codec of {@link CheckpointCertificate}. */
export const certificateCodec: Codec<CheckpointCertificate> = codec(certificateSchema);
