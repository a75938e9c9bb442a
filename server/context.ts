/**
 * What routes see of the node: the database (for reads only), the write path (for every change),
 * identity, limits and metrics — plus the response shapes routes share.
 * @module
 */
import type { Membership } from '../src/replication/members.js';
import type { GroupStatus } from '../src/replication/index.js';
import type { Request } from 'express';
import type { ProofDB, SignedCheckpoint, VersionEntry } from '../src/index.js';
import { utf8OrUndefined, type Wire } from './codec.js';
import { HttpError } from './errors.js';
import type { Metrics } from './metrics.js';
import type { CheckpointNotes } from './notes.js';
import type { Session, WritePath } from './write_path.js';

/** Request and value size limits. */
export interface Limits {
  /** Largest key, bytes. */
  maxKeySize: number;
  /** Largest value, bytes (the database's `maxValueSize`). */
  maxValueSize: number;
  /** Largest `PUT /v1/kv/{key}` body: room for a base64url value in JSON plus 64 KiB. */
  maxValueBodyBytes: number;
  /** Largest `POST /v1/batch` body. */
  maxBatchBodyBytes: number;
  /** Largest page of a scan or history, by value bytes (at least one item is always returned). */
  maxPageBytes: number;
}

/** The limits for a database whose values are at most `maxValueSize` bytes. */
export function limitsFor(maxValueSize: number, maxKeySize = 65536): Limits {
  return {
    maxKeySize,
    maxValueSize,
    maxValueBodyBytes: Math.ceil((maxValueSize * 4) / 3) + 64 * 1024,
    maxBatchBodyBytes: 16 * 1024 * 1024,
    maxPageBytes: 4 * 1024 * 1024,
  };
}

/** Identity and role of the node. */
export interface NodeInfo {
  /** Hex prefix (16 chars) of the public key. */
  nodeId: string;
  /** Ed25519 public key clients trust. */
  publicKey: Uint8Array;
  /** Software version. */
  version: string;
}

/** Everything a route handler may use. */
export interface AppContext {
  /** Reads only; changes go through {@link writePath}. */
  db: ProofDB;
  writePath: WritePath;
  info: NodeInfo;
  limits: Limits;
  metrics: Metrics;
  /** Checkpoint notes and witness cosignatures (`GET /v1/checkpoints/…/note`); absent: no note routes. */
  notes?: CheckpointNotes;
  /** The cluster this node is a member of, and how it sees the group; absent: not a cluster member. */
  cluster?: ClusterInfo;
}

/** A cluster member's view for `/v1/status` and `proofkv cluster status`. */
export interface ClusterInfo {
  clusterId: string;
  /** The members of the cluster file (id, client URL, public key). */
  members: ReadonlyArray<{ id: number; clientUrl: string; publicKey: Uint8Array }>;
  /** The group as this member sees it now. */
  view(): GroupStatus;
  /** Runtime membership (`/v1/cluster/members`); absent: the routes answer 404. */
  membership?: Membership;
  /**
   * Why a change of the voters would be refused now (`MEMBERSHIP_PENDING`), as this member has
   * applied the log; undefined when one may go ahead (`RaftWritePath.setChangePending`).
   */
  setChangePending?(): string | undefined;
  /**
   * The client URL of the leader when this member is not the leader and knows it (undefined
   * otherwise): sent as `ProofKV-Leader` on every answer, so that clients send their requests
   * to the leader instead of having this member relay them (docs/cluster.md § Where clients send
   * requests). Called per answer: cheap.
   */
  leaderHint?(): string | undefined;
}

const CLIENT_ID = /^[\x21-\x7e]{1,64}$/;

/**
 * The idempotency session of a write from `ProofKV-Client-Id` (1–64 printable ASCII characters)
 * and `ProofKV-Request-Seq` (decimal integer in 0 .. 2^53-1): both or neither, else
 * `400 INVALID_ARGUMENT`.
 */
export function sessionOf(req: Request): Session | undefined {
  return sessionOfHeaders((name) => req.headers[name]);
}

/** A request header by lower-case name, as node's `req.headers` holds it. */
export type HeaderGetter = (name: string) => string | string[] | undefined;

/** {@link sessionOf} of the headers `header` gives (the stream's requests carry them too). */
export function sessionOfHeaders(header: HeaderGetter): Session | undefined {
  const id = header('proofkv-client-id');
  const seq = header('proofkv-request-seq');
  if (id === undefined && seq === undefined) return undefined;
  if (typeof id !== 'string' || !CLIENT_ID.test(id)) {
    throw new HttpError('INVALID_ARGUMENT', 'ProofKV-Client-Id must be 1-64 printable ASCII characters (and sent with ProofKV-Request-Seq)');
  }
  if (typeof seq !== 'string' || !/^[0-9]{1,16}$/.test(seq) || !Number.isSafeInteger(Number(seq))) {
    throw new HttpError('INVALID_ARGUMENT', 'ProofKV-Request-Seq must be a decimal integer in 0 .. 2^53-1 (and sent with ProofKV-Client-Id)');
  }
  return { clientId: id, seq: Number(seq) };
}

/** `{ key, version, seq, kind, value, valueUtf8? }` of an entry. */
export function entryWire(e: VersionEntry, withKey = true): { [k: string]: Wire } {
  const out: { [k: string]: Wire } = {};
  if (withKey) out.key = e.key;
  out.version = e.version;
  out.seq = e.seq;
  Object.assign(out, timeWire(e.time));
  out.kind = e.kind;
  out.value = e.value;
  const text = e.kind === 'put' ? utf8OrUndefined(e.value) : undefined;
  if (text !== undefined) out.valueUtf8 = text;
  return out;
}

/**
 * A commit time on the wire (docs/http-api.md § Commit times): `time` in ms since the epoch and
 * `timeIso`, the same instant in ISO 8601 UTC with milliseconds.
 */
export function timeWire(ms: number): { time: number; timeIso?: string } {
  // JavaScript dates end at 8.64e15 ms (year 275760); later times (u64 allows them) have no ISO form.
  return ms <= 8.64e15 ? { time: ms, timeIso: new Date(ms).toISOString() } : { time: ms };
}

/**
 * The wire form of a signed checkpoint: v2 checkpoints carry `time` and `signerSetHash`, and the
 * answer carries `signers` (the set the head's last checkpoint commits to, docs/proofs.md §5.6).
 */
export function checkpointWire(s: SignedCheckpoint): { [k: string]: Wire } {
  const c = s.checkpoint;
  const out: { [k: string]: Wire } = {
    checkpoint: { index: c.index, seq: c.seq, masterRoot: c.masterRoot, prevCheckpointHash: c.prevCheckpointHash, time: c.time, signerSetHash: c.signerSetHash },
    head: { size: s.head.size, root: s.head.root },
    signatures: s.signatures.map((g) => ({ publicKey: g.publicKey, signature: g.signature })),
  };
  if (s.signers) out.signers = { quorum: s.signers.quorum, members: s.signers.members.map((m) => ({ id: m.id, publicKey: m.publicKey })) };
  return out;
}

/** The size of `db`'s latest certified checkpoint-log head (0 before the first). */
export function certifiedSize(db: ProofDB): number {
  try {
    return db.latestCheckpoint().head.size;
  } catch {
    return 0;
  }
}

/**
 * Resolves true once `db`'s certified head has at least `size` checkpoints (a cluster member
 * certifies a checkpoint when a quorum's signatures arrive through the log), false after `ms`.
 * Polls every 10 ms: a head is certified within a few log round trips.
 */
export async function waitForCertified(db: ProofDB, size: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (certifiedSize(db) < size) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 10).unref());
  }
  return true;
}
