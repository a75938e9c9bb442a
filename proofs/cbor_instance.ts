/**
 * The cbor-x instance behind the proof codecs (`encoding.ts`): plain byte strings, `Map`s for
 * maps, no records, no tags, definite lengths. Not part of the `proofkv/proofs` index; benchmarks
 * and tests that rebuild the former decode → re-encode → compare rule import it from here.
 * Isomorphic: no `node:` imports.
 * @module
 */
import { Encoder } from 'cbor-x';

// `useTag259ForMaps` is a runtime option that cbor-x's typings omit; without it Maps get tag 259.
const cborOptions = {
  mapsAsObjects: false,
  useRecords: false,
  structuredClone: false,
  tagUint8Array: false,
  useTag259ForMaps: false,
  variableMapSize: true,
  bundleStrings: false,
};

/** The codecs' cbor-x instance. */
export const proofCbor: Encoder = new Encoder(cborOptions as ConstructorParameters<typeof Encoder>[0]);
