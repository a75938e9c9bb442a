/**
 * A C2SP `tlog-witness`: for each log it follows (origin, verifier keys, quorum) it keeps the last
 * checkpoint it cosigned, and cosigns a new one only when it is signed by a quorum of the log's
 * keys and an RFC 6962 consistency proof shows it extends that checkpoint. It never cosigns two
 * roots for one size, nor a smaller size; a checkpoint that contradicts what it cosigned is
 * refused and filed as evidence (both signed notes). The new state is on disk before the answer.
 *
 * {@link decide} is the pure check; {@link Witness} runs it one request at a time (check and
 * persist are atomic, as the spec requires) against the durable {@link WitnessStore}.
 * @module
 */
import { equalBytes, toBase64 } from '../proofs/bytes.js';
import { publicKeyOf, type KeyPair } from '../proofs/checkpoint.js';
import { DecodeError } from '../proofs/errors.js';
import { verifyConsistency } from '../proofs/log.js';
import {
  KEY_TYPE_COSIGNATURE,
  KEY_TYPE_ED25519,
  isValidKeyName,
  parseCheckpointNote,
  parseNote,
  signCosignature,
  signatureLine,
  verifierKeyOf,
  verifyCheckpointNote,
  type CheckpointNote,
  type VerifierKey,
} from '../proofs/note.js';
import type { Verified } from '../proofs/errors.js';
import { auditNode } from './audit.js';
import { parseAddCheckpoint, TLOG_SIZE_CONTENT_TYPE } from './protocol.js';
import type { CosignedHead, WitnessStore } from './state.js';

/** A log the witness follows. */
export interface FollowedLog {
  /** The checkpoint origin line. */
  origin: string;
  /** The log's note verifier keys (type 0x01). */
  keys: VerifierKey[];
  /** Distinct log keys that must sign a checkpoint (1 <= quorum <= keys). */
  quorum: number;
  /**
   * An auditing witness: a node of the log whose table set (`GET /v1/checkpoints/latest/tables`)
   * must pass `auditTableSet` before a head is co-signed (witness/audit.ts).
   */
  auditUrl?: string;
}

/** Why a request was refused (stable codes). */
export type RefusalCode = 'MALFORMED' | 'UNKNOWN_LOG' | 'BAD_SIGNATURE' | 'OLD_SIZE_TOO_LARGE' | 'STALE_OLD_SIZE' | 'FORK' | 'INCONSISTENT' | 'AUDIT_FAILED';

/** The witness's answer. */
export type WitnessAnswer =
  | { status: 200; contentType: string; body: string; cosigned: CheckpointNote }
  | { status: 400 | 403 | 404 | 409 | 422; contentType: string; body: string; code: RefusalCode; evidence?: string };

/** What {@link decide} concludes. */
export type Decision =
  | { accept: true; checkpoint: CheckpointNote; note: string }
  | { accept: false; status: 400 | 403 | 404 | 409 | 422; code: RefusalCode; message: string; size?: number; fork?: boolean };

/**
 * The tlog-witness checks, in the spec's order: a well-formed request and note (400), a known
 * origin (404), a quorum of the log's keys (403), old size not above the checkpoint's (400), old
 * size equal to the last cosigned size (409 with that size), the same root when the sizes are
 * equal (409, a fork), a consistency proof from the last cosigned root (422; an empty proof from
 * size 0). `fork: true` marks refusals that contradict the cosigned state (evidence).
 */
export function decide(body: string, logs: ReadonlyMap<string, FollowedLog>, load: (origin: string) => CosignedHead | undefined): Decision {
  let req;
  let checkpoint: CheckpointNote;
  try {
    req = parseAddCheckpoint(body);
    checkpoint = parseCheckpointNote(parseNote(req.note).text);
  } catch (err) {
    const message = err instanceof DecodeError ? err.message : String(err);
    return { accept: false, status: 400, code: 'MALFORMED', message: `malformed request: ${message}` };
  }
  const log = logs.get(checkpoint.origin);
  if (!log) return { accept: false, status: 404, code: 'UNKNOWN_LOG', message: `unknown log origin ${JSON.stringify(checkpoint.origin)}` };
  const v = verifyCheckpointNote(req.note, { origin: log.origin, logKeys: log.keys, quorum: log.quorum });
  if (!v.ok) return { accept: false, status: 403, code: 'BAD_SIGNATURE', message: `checkpoint signatures: ${v.reason}: ${v.message}` };
  if (req.oldSize > checkpoint.size) {
    return { accept: false, status: 400, code: 'OLD_SIZE_TOO_LARGE', message: `old size ${req.oldSize} is above the checkpoint size ${checkpoint.size}` };
  }
  const last = load(log.origin);
  const lastSize = last?.size ?? 0;
  if (req.oldSize !== lastSize) {
    return { accept: false, status: 409, code: 'STALE_OLD_SIZE', message: `old size ${req.oldSize}, the last cosigned size is ${lastSize}`, size: lastSize };
  }
  if (!last || lastSize === 0) {
    if (req.proof.length !== 0) return { accept: false, status: 422, code: 'INCONSISTENT', message: 'a proof from size 0 must be empty' };
    return { accept: true, checkpoint, note: req.note };
  }
  if (checkpoint.size === last.size) {
    if (!equalBytes(checkpoint.root, last.root)) {
      return { accept: false, status: 409, code: 'FORK', message: `another root at the cosigned size ${last.size}`, size: last.size, fork: true };
    }
    if (req.proof.length !== 0) return { accept: false, status: 422, code: 'INCONSISTENT', message: 'a proof between equal sizes must be empty' };
    return { accept: true, checkpoint, note: req.note };
  }
  const c = verifyConsistency(last.size, checkpoint.size, req.proof, last.root, checkpoint.root);
  if (!c.ok) {
    return { accept: false, status: 422, code: 'INCONSISTENT', message: `no consistency from size ${last.size}: ${c.reason}: ${c.message}`, fork: c.reason === 'ROOT_MISMATCH' };
  }
  return { accept: true, checkpoint, note: req.note };
}

/** Settings of a {@link Witness}. */
export interface WitnessOptions {
  /** The witness's key name (a schema-less URL is recommended). */
  name: string;
  /** Its Ed25519 key. */
  key: KeyPair;
  /** The logs it follows. */
  logs: FollowedLog[];
  /** Its clock, Unix seconds (default: the system clock). */
  now?: () => number;
  /** Receives refusals and evidence (default: nothing). */
  onRefusal?: (code: RefusalCode, message: string, evidence?: string) => void;
  /** The audit of logs with an `auditUrl` (default {@link auditNode}). */
  audit?: (url: string, checkpoint: CheckpointNote) => Promise<Verified>;
}

/** A witness over a durable store. */
export class Witness {
  readonly name: string;
  private readonly key: KeyPair;
  private readonly logs: Map<string, FollowedLog>;
  private readonly now: () => number;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    readonly store: WitnessStore,
    private readonly options: WitnessOptions,
  ) {
    if (!isValidKeyName(options.name)) throw new RangeError(`witness name ${JSON.stringify(options.name)} is empty or has white space or '+'`);
    this.name = options.name;
    this.key = { privateKey: options.key.privateKey, publicKey: publicKeyOf(options.key.privateKey) };
    this.logs = new Map();
    for (const log of options.logs) {
      if (this.logs.has(log.origin)) throw new RangeError(`log ${JSON.stringify(log.origin)} is configured twice`);
      if (log.keys.length === 0 || log.keys.some((k) => k.type !== KEY_TYPE_ED25519)) throw new RangeError(`log ${JSON.stringify(log.origin)} needs Ed25519 note keys`);
      if (!Number.isInteger(log.quorum) || log.quorum < 1 || log.quorum > log.keys.length) throw new RangeError(`log ${JSON.stringify(log.origin)}: quorum out of range`);
      this.logs.set(log.origin, log);
    }
    this.now = options.now ?? (() => Math.floor(Date.now() / 1000));
    for (const origin of this.logs.keys()) store.load(origin); // a corrupt state file stops the start
  }

  /** The witness's cosignature verifier key (type 0x04), what logs and clients configure. */
  verifierKey(): VerifierKey {
    return verifierKeyOf(this.name, this.key.publicKey, KEY_TYPE_COSIGNATURE);
  }

  /** Handles one `add-checkpoint` body, one request at a time. */
  addCheckpoint(body: string): Promise<WitnessAnswer> {
    const run = this.queue.then(() => this.handle(body));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async handle(body: string): Promise<WitnessAnswer> {
    let d = decide(body, this.logs, (o) => this.store.load(o));
    const url = d.accept ? this.logs.get(d.checkpoint.origin)?.auditUrl : undefined;
    if (d.accept && url !== undefined) {
      const r = await (this.options.audit ?? auditNode)(url, d.checkpoint);
      if (!r.ok) d = { accept: false, status: 422, code: 'AUDIT_FAILED', message: `audit of the table set behind head ${d.checkpoint.size}: ${r.reason}: ${r.message}` };
    }
    if (!d.accept) {
      let evidence: string | undefined;
      if (d.fork) {
        const origin = safeOrigin(body);
        const last = origin === undefined ? undefined : this.store.load(origin);
        if (last) evidence = this.store.recordEvidence(last.origin, d.code, last.note, parseAddCheckpoint(body).note);
      }
      this.options.onRefusal?.(d.code, d.message, evidence);
      if (d.status === 409 && d.size !== undefined) return { status: 409, contentType: TLOG_SIZE_CONTENT_TYPE, body: `${d.size}\n`, code: d.code, evidence };
      return { status: d.status, contentType: 'text/plain; charset=utf-8', body: `${d.message}\n`, code: d.code, evidence };
    }
    const text = parseNote(d.note).text;
    const sig = signCosignature(text, this.name, this.key.privateKey, this.now());
    // Durable before the answer: a witness that crashes after answering still remembers.
    this.store.save({ origin: d.checkpoint.origin, size: d.checkpoint.size, root: d.checkpoint.root, note: d.note });
    return { status: 200, contentType: 'text/plain; charset=utf-8', body: signatureLine(sig), cosigned: d.checkpoint };
  }

  /** The last cosigned head of `origin` (for status pages and tests). */
  cosigned(origin: string): { size: number; root: string } | undefined {
    const h = this.store.load(origin);
    return h ? { size: h.size, root: toBase64(h.root) } : undefined;
  }
}

function safeOrigin(body: string): string | undefined {
  try {
    return parseCheckpointNote(parseNote(parseAddCheckpoint(body).note).text).origin;
  } catch {
    return undefined;
  }
}
