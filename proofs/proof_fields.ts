/**
 * Bounds and scalar field schemas shared by both proof encodings: the text-keyed format 1
 * (`lsm_encoding.ts`) and the compact format 2 (`compact_encoding.ts`). Isomorphic: no `node:`
 * imports.
 * @module
 */
import { bytes, refine, uint, type Schema } from './encoding.js';
import { Kind } from './hash.js';

/** Largest user key. */
export const MAX_KEY_LEN = 65536;
/** Largest value a proof may carry. */
export const MAX_VALUE_LEN = 64 * 1024 * 1024;
/** Largest encoded proof accepted. */
export const MAX_PROOF_BYTES = 80 * 1024 * 1024;
/** Most entries, blocks, windows or descriptors in one proof list. */
export const MAX_PROOF_ITEMS = 1 << 20;

/** An entry kind: 0 (DELETE) or 1 (PUT). */
export const kindField: Schema<Kind> = refine(uint, (k) => (k === Kind.PUT || k === Kind.DELETE ? undefined : `kind ${k}, want 0 or 1`)) as Schema<Kind>;
/** A user key, 1..65536 bytes. */
export const userKeyField = bytes({ min: 1, max: MAX_KEY_LEN });
/** An internal key (§8.1): a user key and its 16-byte trailer. */
export const internalKeyField = bytes({ min: 17, max: MAX_KEY_LEN + 16 });
/** A value, 0..64 MiB. */
export const valueField = bytes({ min: 0, max: MAX_VALUE_LEN });
