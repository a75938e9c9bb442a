/**
 * Parsing of the HTTP API's JSON bodies into typed values (bytes from base64url). Every parser
 * throws {@link MalformedResponse} on a shape the contract (`docs/http-api.md`) does not allow.
 * Isomorphic: no `node:` imports.
 * @module
 */
import type { Checkpoint, HeadSignature, LogHead } from '../proofs/checkpoint.js';
import type { SignerSet } from '../proofs/signer_set.js';
import type { SetChange } from '../proofs/set_changes.js';
import { fromBase64Url } from './bytes.js';
import { ProofKVClientError } from './errors.js';

/** A server body that does not have the shape the HTTP contract promises. */
export class MalformedResponse extends ProofKVClientError {
  constructor(message: string) {
    super(`malformed response: ${message}`);
    this.name = 'MalformedResponse';
  }
}

/** One record of a key: a value (`put`) or a tombstone (`delete`, empty value). */
export interface Entry {
  key: Uint8Array;
  version: number;
  seq: number;
  /** Commit time, ms since the epoch (docs/proofs.md §1.1); `new Date(time)` gives the instant. */
  time: number;
  kind: 'put' | 'delete';
  /** The value; empty for a tombstone. */
  value: Uint8Array;
}

/** Where a write landed. */
export interface WriteResult {
  /** The version the write got (or was given). */
  version: number;
  /** Its global sequence number. */
  seq: number;
  /** Its commit time, ms since the epoch. */
  time: number;
}

/** A checkpoint with the log head that ends with it and the head's signatures, as the server sends it. */
export interface SignedCheckpoint {
  checkpoint: Checkpoint;
  head: LogHead;
  signatures: HeadSignature[];
  /** The signer set the checkpoint commits to (v2 checkpoints; checked against its hash by the verifier). */
  signers?: SignerSet;
}

type Obj = Record<string, unknown>;

/** `v` as an object, or a {@link MalformedResponse}. */
export function obj(v: unknown, what: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new MalformedResponse(`${what} is not an object`);
  return v as Obj;
}

/** `o[k]` as a safe non-negative integer. */
export function uint(o: Obj, k: string, what: string): number {
  const v = o[k];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new MalformedResponse(`${what}.${k} is not a non-negative integer`);
  return v;
}

/** `o[k]` as bytes from base64url. */
export function b64(o: Obj, k: string, what: string): Uint8Array {
  const v = o[k];
  if (typeof v !== 'string') throw new MalformedResponse(`${what}.${k} is not a base64url string`);
  try {
    return fromBase64Url(v);
  } catch (err) {
    throw new MalformedResponse(`${what}.${k}: ${(err as Error).message}`);
  }
}

/** `o[k]` as a list of base64url byte strings. */
export function b64List(o: Obj, k: string, what: string): Uint8Array[] {
  const v = o[k];
  if (!Array.isArray(v)) throw new MalformedResponse(`${what}.${k} is not a list`);
  return v.map((x, i) => b64({ x }, 'x', `${what}.${k}[${i}]`));
}

/** A write result `{ version, seq }`. */
export function parseWrite(v: unknown, what = 'write result'): WriteResult {
  const o = obj(v, what);
  return { version: uint(o, 'version', what), seq: uint(o, 'seq', what), time: uint(o, 'time', what) };
}

/** An entry `{ key, version, seq, time, kind?, value? }`; `kind` defaults to `put`, a tombstone's value to empty. */
export function parseEntry(v: unknown, what = 'entry'): Entry {
  const o = obj(v, what);
  const kind = o.kind === undefined ? 'put' : o.kind;
  if (kind !== 'put' && kind !== 'delete') throw new MalformedResponse(`${what}.kind is ${String(o.kind)}`);
  const value = o.value === undefined && kind === 'delete' ? new Uint8Array(0) : b64(o, 'value', what);
  return { key: b64(o, 'key', what), version: uint(o, 'version', what), seq: uint(o, 'seq', what), time: uint(o, 'time', what), kind, value };
}

/** A checkpoint `{ index, seq, masterRoot, prevCheckpointHash?, time?, signerSetHash? }` (the last two: v2). */
export function parseCheckpoint(v: unknown, what = 'checkpoint'): Checkpoint {
  const o = obj(v, what);
  const c: Checkpoint = { index: uint(o, 'index', what), seq: uint(o, 'seq', what), masterRoot: b64(o, 'masterRoot', what) };
  if (o.prevCheckpointHash !== undefined && o.prevCheckpointHash !== null) c.prevCheckpointHash = b64(o, 'prevCheckpointHash', what);
  if (o.time !== undefined && o.time !== null) c.time = uint(o, 'time', what);
  if (o.signerSetHash !== undefined && o.signerSetHash !== null) c.signerSetHash = b64(o, 'signerSetHash', what);
  return c;
}

/** A signer set `{ quorum, members: [{ id, publicKey }] }` (its validity and hash are the verifier's to check). */
export function parseSignerSet(v: unknown, what = 'signers'): SignerSet {
  const o = obj(v, what);
  if (!Array.isArray(o.members)) throw new MalformedResponse(`${what}.members is not a list`);
  const members = o.members.map((m, i) => {
    const mo = obj(m, `${what}.members[${i}]`);
    return { id: uint(mo, 'id', `${what}.members[${i}]`), publicKey: b64(mo, 'publicKey', `${what}.members[${i}]`) };
  });
  return { quorum: uint(o, 'quorum', what), members };
}

/** A log head `{ size, root }`. */
export function parseHead(v: unknown, what = 'head'): LogHead {
  const o = obj(v, what);
  return { size: uint(o, 'size', what), root: b64(o, 'root', what) };
}

/** A signed checkpoint `{ checkpoint, head, signatures: [{ publicKey, signature }] }`. */
export function parseSignedCheckpoint(v: unknown, what = 'signed checkpoint'): SignedCheckpoint {
  const o = obj(v, what);
  if (!Array.isArray(o.signatures)) throw new MalformedResponse(`${what}.signatures is not a list`);
  const signatures = o.signatures.map((s, i) => {
    const so = obj(s, `${what}.signatures[${i}]`);
    return { publicKey: b64(so, 'publicKey', `${what}.signatures[${i}]`), signature: b64(so, 'signature', `${what}.signatures[${i}]`) };
  });
  const out: SignedCheckpoint = { checkpoint: parseCheckpoint(o.checkpoint, `${what}.checkpoint`), head: parseHead(o.head, `${what}.head`), signatures };
  if (o.signers !== undefined && o.signers !== null) out.signers = parseSignerSet(o.signers, `${what}.signers`);
  return out;
}

/**
 * One listed signer-set change of `GET /v1/checkpoints/set-changes`: the certificate (as
 * `setChange` of `GET /v1/checkpoints/{index}`), `consistency` and `previous` (unverified).
 */
export function parseSetChange(v: unknown, what = 'set change'): SetChange {
  const o = obj(v, what);
  const cert = parseSignedCheckpoint(o, what);
  if (!cert.signers) throw new MalformedResponse(`${what}.signers is missing`);
  const out: SetChange = { ...cert, signers: cert.signers, inclusion: b64List(o, 'inclusion', what), consistency: b64List(o, 'consistency', what) };
  if (o.previous !== undefined && o.previous !== null) {
    const p = obj(o.previous, `${what}.previous`);
    out.previous = { checkpoint: parseCheckpoint(p.checkpoint, `${what}.previous.checkpoint`), inclusion: b64List(p, 'inclusion', `${what}.previous`) };
    if (p.signers !== undefined && p.signers !== null) out.previous.signers = parseSignerSet(p.signers, `${what}.previous.signers`);
  }
  return out;
}
