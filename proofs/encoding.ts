/**
 * CBOR encodings (RFC 8949) of ProofKV's proof objects, with strict schema-checked decoding.
 * Isomorphic: no `node:` imports.
 *
 * Every object is a CBOR map with text keys. Encoders emit the core deterministic encoding of
 * RFC 8949 §4.2.1 (shortest integer and length forms, definite lengths, map keys sorted by their
 * encoded bytes — for these short keys, shorter first, then bytewise). Decoders accept exactly that
 * encoding and nothing else: one linear pass over the bytes ({@link scanCbor}) rejects tags,
 * indefinite lengths, non-shortest heads, trailing bytes, duplicate or unsorted keys and nesting
 * or counts the schema cannot need before anything is decoded; the schema then rejects unknown
 * keys and wrong types. Hashes are byte strings of exactly 32 bytes; integers are unsigned and at
 * most 2^53 - 1. Decoders throw only {@link DecodeError}.
 *
 * ```
 * LogHead          { "root": bstr .size 32, "size": uint }
 * HeadSignature    { "publicKey": bstr .size 32, "signature": bstr .size 64 }
 * SignedHead       { "head": LogHead, "signatures": [* HeadSignature] }
 * Checkpoint       { "seq": uint, "index": uint, "masterRoot": bstr .size 32,
 *                    ? "prevCheckpointHash": bstr .size 32 }      present iff index > 0
 * InclusionProof   { "path": [* bstr .size 32], "index": uint, "treeSize": uint }
 * ConsistencyProof { "path": [* bstr .size 32], "size1": uint, "size2": uint }
 * RangeProof       { "path": [* bstr .size 32], "start": uint, "treeSize": uint }
 * ```
 * The schema helpers ({@link uint}, {@link bytes}, {@link arrayOf}, {@link struct},
 * {@link optional}, {@link refine}, {@link codec}) are exported for later proof types.
 * @module
 */
import { compareBytes } from './bytes.js';
import { proofCbor } from './cbor_instance.js';
import { writeCbor } from './cbor_write.js';
import { scanCbor, type CborLimits } from './cbor_scan.js';
import { HASH_LEN } from './hash.js';
import { DecodeError } from './errors.js';
import {
  PUBLIC_KEY_LEN,
  SIGNATURE_LEN,
  checkCheckpoint,
  type Checkpoint,
  type HeadSignature,
  type LogHead,
  type SignedHead,
} from './checkpoint.js';
import { checkSignerSet, MAX_SIGNERS, type SignerSet, type SignerSetMember } from './signer_set.js';

const cbor = proofCbor;

/**
 * A schema: validates a decoded CBOR value and maps a typed value back to the CBOR data model.
 */
export interface Schema<T> {
  /** Validates `input` (a value as decoded by cbor-x); throws {@link DecodeError} naming `path`. */
  parse(input: unknown, path: string): T;
  /** The CBOR data-model value for `value` (maps as `Map`s in canonical key order). */
  wire(value: T): unknown;
  /**
   * The largest shape a valid value can have, which bounds the linear pre-pass of a
   * {@link codec} ({@link scanCbor}). The helpers here fill it in; a hand-written schema without
   * it gets {@link DEFAULT_SHAPE}.
   */
  readonly shape?: SchemaShape;
}

/** Bounds on the CBOR shape of a schema's values: nesting depth, longest array, largest map. */
export interface SchemaShape {
  /** Most nested arrays and maps (0 for a scalar). */
  depth: number;
  maxArray: number;
  maxMap: number;
}

/** Shape bound assumed for a schema that declares none. */
export const DEFAULT_SHAPE: SchemaShape = { depth: 16, maxArray: 1 << 20, maxMap: 64 };
const SCALAR: SchemaShape = { depth: 0, maxArray: 0, maxMap: 0 };
const shapeOf = (s: Schema<unknown>): SchemaShape => s.shape ?? DEFAULT_SHAPE;

/** An optional struct field: absent in CBOR when `undefined`. */
export interface Optional<T> {
  readonly optional: Schema<T>;
}

/** Encodes and strictly decodes one type. */
export interface Codec<T> {
  /** The canonical CBOR encoding; throws `RangeError` if `value` does not fit the schema. */
  encode(value: T): Uint8Array;
  /** Decodes and validates; throws only {@link DecodeError}. */
  decode(bytes: Uint8Array): T;
  /**
   * {@link Codec.encode} without its check: `encode` also parses the wire form it built, as the
   * decoder would, and throws `RangeError` on what fails; this one trusts `value` to fit the
   * schema (a server encoding the proofs its own engine made: `server/routes/proofs.ts`). For a
   * value that fits, the bytes are the same; for one that does not, what comes out is unspecified
   * (a verifier refuses it).
   */
  encodeTrusted(value: T): Uint8Array;
}

function typeName(v: unknown): string {
  if (v instanceof Uint8Array) return `bytes(${v.length})`;
  if (v instanceof Map) return 'map';
  if (Array.isArray(v)) return 'array';
  if (v === null) return 'null';
  return typeof v;
}

/** An unsigned integer up to 2^53 - 1 (CBOR major type 0), decoded as a `number`. */
export const uint: Schema<number> = {
  parse(input, path) {
    if (typeof input === 'bigint') {
      if (input < 0n || input > BigInt(Number.MAX_SAFE_INTEGER)) throw new DecodeError(path, `integer ${input} out of range [0, 2^53 - 1]`);
      return Number(input);
    }
    if (typeof input !== 'number' || !Number.isSafeInteger(input) || input < 0 || Object.is(input, -0)) {
      throw new DecodeError(path, `want unsigned integer, got ${typeName(input)} ${typeof input === 'number' ? input : ''}`.trimEnd());
    }
    return input;
  },
  // cbor-x writes numbers above 2^32 - 1 as floats; a bigint gets the 8-byte integer form.
  wire: (v) => (typeof v === 'number' && v > 0xffffffff ? BigInt(v) : v),
  shape: SCALAR,
};

/** A byte string of exactly `len` bytes, or of `min..max` bytes; decoded as a fresh `Uint8Array`. */
export function bytes(len: number | { min: number; max: number }): Schema<Uint8Array> {
  const min = typeof len === 'number' ? len : len.min;
  const max = typeof len === 'number' ? len : len.max;
  return {
    parse(input, path) {
      if (!(input instanceof Uint8Array)) throw new DecodeError(path, `want byte string, got ${typeName(input)}`);
      if (input.length < min || input.length > max) {
        throw new DecodeError(path, `byte string has length ${input.length}, want ${min === max ? min : `${min}..${max}`}`);
      }
      return new Uint8Array(input);
    },
    wire: (v) => v,
    shape: SCALAR,
  };
}

/** A 32-byte hash. */
export const hash: Schema<Uint8Array> = bytes(HASH_LEN);

/** An array of at most `max` items. */
export function arrayOf<T>(item: Schema<T>, max: number): Schema<T[]> {
  return {
    parse(input, path) {
      if (!Array.isArray(input)) throw new DecodeError(path, `want array, got ${typeName(input)}`);
      if (input.length > max) throw new DecodeError(path, `array has ${input.length} items, want at most ${max}`);
      return input.map((x, i) => item.parse(x, `${path}[${i}]`));
    },
    wire: (v) => (Array.isArray(v) ? v.map((x) => item.wire(x)) : v),
    shape: { depth: 1 + shapeOf(item).depth, maxArray: Math.max(max, shapeOf(item).maxArray), maxMap: shapeOf(item).maxMap },
  };
}

/** Marks a struct field optional (omitted when `undefined`). */
export function optional<T>(schema: Schema<T>): Optional<T> {
  return { optional: schema };
}

/** Adds a semantic check to a schema: `check` returns an error message, or `undefined` if fine. */
export function refine<T>(schema: Schema<T>, check: (value: T) => string | undefined): Schema<T> {
  return {
    parse(input, path) {
      const v = schema.parse(input, path);
      const msg = check(v);
      if (msg !== undefined) throw new DecodeError(path, msg);
      return v;
    },
    wire: (v) => schema.wire(v),
    shape: schema.shape,
  };
}

type Fields<T> = { [K in keyof T]-?: undefined extends T[K] ? Optional<Exclude<T[K], undefined>> : Schema<T[K]> };

const keyBytes = (k: string): Uint8Array => cbor.encode(k);

/**
 * A CBOR map of `fields`, each under its wire key `keyOf(field)`, emitted in the order of `names`
 * (the canonical key order); optional fields may be absent; keys of another type than `keyType`,
 * unknown keys and missing required fields are refused. The shared body of {@link struct} and
 * {@link numbered}.
 */
function keyedMap<T extends object, K extends string | number>(
  fields: Fields<T>,
  names: (keyof T & string)[],
  keyOf: (field: keyof T & string) => K,
  keyType: 'string' | 'number',
): Schema<T> {
  // Per field, in wire order: its name, wire key, schema and whether it may be absent (computed once).
  const specs = names.map((name) => {
    const f = fields[name] as Schema<unknown> | Optional<unknown>;
    return 'optional' in f ? { name, key: keyOf(name), schema: f.optional, optional: true } : { name, key: keyOf(name), schema: f, optional: false };
  });
  const known = new Set<unknown>(names.map(keyOf));
  const inner = specs.map((x) => shapeOf(x.schema));
  const shape: SchemaShape = {
    depth: 1 + Math.max(0, ...inner.map((x) => x.depth)),
    maxArray: Math.max(0, ...inner.map((x) => x.maxArray)),
    maxMap: Math.max(names.length, ...inner.map((x) => x.maxMap)),
  };
  const describeKey = (k: unknown) => (typeof k === 'string' ? `"${k}"` : String(k));
  return {
    shape,
    parse(input, path) {
      if (!(input instanceof Map)) throw new DecodeError(path, `want map, got ${typeName(input)}`);
      for (const k of input.keys()) {
        if (typeof k !== keyType) throw new DecodeError(path, `map key of type ${typeName(k)}, want ${keyType === 'string' ? 'text' : 'unsigned integer'}`);
        if (!known.has(k)) throw new DecodeError(path, `unknown field ${describeKey(k)}`);
      }
      const out: Record<string, unknown> = {};
      for (const { name, key, schema, optional: opt } of specs) {
        const sub = path === '' ? name : `${path}.${name}`;
        if (!input.has(key)) {
          if (opt) continue;
          throw new DecodeError(sub, keyType === 'string' ? 'missing field' : `missing field (key ${key})`);
        }
        out[name] = schema.parse(input.get(key), sub);
      }
      return out as T;
    },
    wire(v) {
      const m = new Map<K, unknown>();
      for (const { name, key, schema, optional: opt } of specs) {
        const x = (v as Record<string, unknown>)[name];
        if (x === undefined && opt) continue;
        m.set(key, schema.wire(x));
      }
      return m;
    },
  };
}

/**
 * A CBOR map with exactly the given text keys (optional ones may be absent), emitted in RFC 8949
 * §4.2.1 key order. Unknown keys and non-text keys are rejected.
 */
export function struct<T extends object>(fields: Fields<T>): Schema<T> {
  const names = Object.keys(fields).sort((a, b) => compareBytes(keyBytes(a), keyBytes(b))) as (keyof T & string)[];
  return keyedMap(fields, names, (k) => k, 'string');
}

/** The one-byte map keys of a {@link numbered} struct: a small integer (0..23) per field. */
export type FieldIds<T> = { [K in keyof T]-?: number };

/**
 * A CBOR map with small unsigned integer keys (0..23, one byte each on the wire) instead of field
 * names — the compact proof format 2 (docs/proofs.md §8.10). `ids` is the structure's registry:
 * each field's key. Otherwise exactly {@link struct}: optional fields may be absent, keys are
 * emitted in increasing order, unknown keys, text keys and missing required fields are refused.
 * Decode it with a codec whose `mapKeys` is `'uint'`.
 */
export function numbered<T extends object>(fields: Fields<T>, ids: FieldIds<T>): Schema<T> {
  const names = (Object.keys(fields) as (keyof T & string)[]).sort((a, b) => ids[a] - ids[b]);
  const seen = new Set<number>();
  for (const k of names) {
    const id = ids[k];
    if (!Number.isInteger(id) || id < 0 || id > 23 || seen.has(id)) throw new TypeError(`field ${k}: key ${id} is not a distinct integer 0..23`);
    seen.add(id);
  }
  return keyedMap(fields, names, (k) => ids[k], 'number');
}

/**
 * A codec for `schema`: canonical encoding, and decoding that accepts only the canonical encoding
 * of a valid value, of at most `maxBytes` bytes, whose maps are keyed by `mapKeys` (text field names,
 * or the small integers of {@link numbered}).
 *
 * Decoding first runs {@link scanCbor} in canonical mode, bounded by the schema's
 * {@link SchemaShape}: one linear pass that rejects tags, indefinite lengths, non-shortest heads,
 * out-of-order or duplicate map keys, anything outside the proof data model, and nesting or
 * counts the schema cannot need — before cbor-x builds a single object. Because that pass proves
 * the bytes are the core deterministic encoding of some data-model value, and every schema maps
 * each accepted data-model value to exactly one wire value, no re-encoding is needed to check
 * canonical form: what the scan and the schema accept re-encodes to the same bytes
 * (`test/proofs/cbor_scan.test.ts` checks this against the re-encoding rule).
 */
export function codec<T>(schema: Schema<T>, maxBytes = 1 << 20, mapKeys: 'text' | 'uint' = 'text'): Codec<T> {
  const encodeWire = writeCbor;
  const shape = shapeOf(schema);
  const limits: CborLimits = { canonical: true, maxDepth: shape.depth, maxArray: shape.maxArray, maxMap: shape.maxMap, mapKeys };
  return {
    encode(value) {
      let w: unknown;
      try {
        w = schema.wire(value);
        schema.parse(w, '');
      } catch (e) {
        throw new RangeError(`cannot encode: ${e instanceof Error ? e.message : String(e)}`);
      }
      return encodeWire(w);
    },
    encodeTrusted(value) {
      return encodeWire(schema.wire(value));
    },
    decode(input) {
      if (!(input instanceof Uint8Array)) throw new DecodeError('', `want Uint8Array, got ${typeName(input)}`);
      if (input.length > maxBytes) throw new DecodeError('', `encoding has ${input.length} bytes, want at most ${maxBytes}`);
      scanCbor(input, limits);
      let raw: unknown;
      try {
        raw = cbor.decode(input);
      } catch (e) {
        throw new DecodeError('', `invalid CBOR: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
      }
      try {
        return schema.parse(raw, '');
      } catch (e) {
        if (e instanceof DecodeError) throw e;
        throw new DecodeError('', `invalid value: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// ProofKV types

/** A Merkle inclusion proof (RFC 9162 §2.1.3): leaf `index` in a tree of `treeSize` leaves. */
export interface InclusionProof {
  index: number;
  treeSize: number;
  /** Leaf to root. */
  path: Uint8Array[];
}

/** A log consistency proof (RFC 9162 §2.1.4) from `size1` to `size2`. */
export interface ConsistencyProof {
  size1: number;
  size2: number;
  path: Uint8Array[];
}

/** A range proof for leaves `[start, start + count)` of a tree of `treeSize` leaves (see `tree.ts`). */
export interface RangeProof {
  start: number;
  treeSize: number;
  /** Roots of the maximal subtrees outside the range, left to right. */
  path: Uint8Array[];
}

/** Longest proof path accepted (a tree of 2^53 leaves needs at most 2 * 53). */
export const MAX_PROOF_PATH = 128;
/** Most signatures accepted on one head. */
export const MAX_SIGNATURES = 1024;

/** Schema of {@link LogHead}. */
export const logHeadSchema: Schema<LogHead> = struct<LogHead>({ size: uint, root: hash });
/** Schema of {@link HeadSignature}. */
export const headSignatureSchema: Schema<HeadSignature> = struct<HeadSignature>({
  publicKey: bytes(PUBLIC_KEY_LEN),
  signature: bytes(SIGNATURE_LEN),
});
/** Schema of {@link SignedHead}. */
export const signedHeadSchema: Schema<SignedHead> = struct<SignedHead>({
  head: logHeadSchema,
  signatures: arrayOf(headSignatureSchema, MAX_SIGNATURES),
});
/** Schema of {@link Checkpoint} (prevCheckpointHash present exactly when index > 0). */
export const checkpointSchema: Schema<Checkpoint> = refine(
  struct<Checkpoint>({ index: uint, seq: uint, masterRoot: hash, prevCheckpointHash: optional(hash), time: optional(uint), signerSetHash: optional(hash) }),
  (c) => checkCheckpoint(c)?.message,
);
/** Schema of {@link SignerSet} (members by increasing id, distinct keys, 1 <= quorum <= n). */
export const signerSetSchema: Schema<SignerSet> = refine(
  struct<SignerSet>({
    quorum: uint,
    members: arrayOf(struct<SignerSetMember>({ id: uint, publicKey: bytes(PUBLIC_KEY_LEN) }), MAX_SIGNERS),
  }),
  (s) => checkSignerSet(s)?.message,
);
/** Schema of {@link InclusionProof}. */
export const inclusionProofSchema: Schema<InclusionProof> = refine(
  struct<InclusionProof>({ index: uint, treeSize: uint, path: arrayOf(hash, MAX_PROOF_PATH) }),
  (p) => (p.index < p.treeSize ? undefined : `index ${p.index} out of range for tree size ${p.treeSize}`),
);
/** Schema of {@link ConsistencyProof}. */
export const consistencyProofSchema: Schema<ConsistencyProof> = refine(
  struct<ConsistencyProof>({ size1: uint, size2: uint, path: arrayOf(hash, MAX_PROOF_PATH) }),
  (p) => (p.size1 > 0 && p.size1 <= p.size2 ? undefined : `sizes ${p.size1}, ${p.size2}: want 0 < size1 <= size2`),
);
/** Schema of {@link RangeProof}. */
export const rangeProofSchema: Schema<RangeProof> = refine(
  struct<RangeProof>({ start: uint, treeSize: uint, path: arrayOf(hash, MAX_PROOF_PATH) }),
  (p) => (p.start < p.treeSize ? undefined : `start ${p.start} out of range for tree size ${p.treeSize}`),
);

/** CBOR codec of {@link LogHead}. */
export const logHeadCodec: Codec<LogHead> = codec(logHeadSchema);
/** CBOR codec of {@link SignedHead} (a checkpoint certificate). */
export const signedHeadCodec: Codec<SignedHead> = codec(signedHeadSchema);
/** CBOR codec of {@link Checkpoint}. */
export const checkpointCodec: Codec<Checkpoint> = codec(checkpointSchema);
/** CBOR codec of {@link InclusionProof}. */
export const inclusionProofCodec: Codec<InclusionProof> = codec(inclusionProofSchema);
/** CBOR codec of {@link ConsistencyProof}. */
export const consistencyProofCodec: Codec<ConsistencyProof> = codec(consistencyProofSchema);
/** CBOR codec of {@link RangeProof}. */
export const rangeProofCodec: Codec<RangeProof> = codec(rangeProofSchema);
