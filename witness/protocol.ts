/**
 * The C2SP `tlog-witness` wire format of `POST /add-checkpoint`, for both sides: the witness
 * parses requests, a log (a ProofKV node) formats them and reads the answers.
 *
 * ```
 * request  = "old " decimal(oldSize) "\n" *(base64(hash) "\n") "\n" signed-checkpoint-note
 * 200      = one or more note signature lines (cosignatures)
 * 409      = decimal(size) "\n"          Content-Type: text/x.tlog.size
 * ```
 * Isomorphic: no `node:` imports.
 * @module
 */
import { concatBytes, fromBase64, toBase64 } from '../proofs/bytes.js';
import { DecodeError } from '../proofs/errors.js';
import { HASH_LEN } from '../proofs/hash.js';
import { MAX_NOTE_BYTES, parseSignatureLines, type NoteSignature } from '../proofs/note.js';

/** Most consistency proof lines a request may carry (the spec's limit). */
export const MAX_PROOF_LINES = 63;
/** Largest add-checkpoint request body, bytes: a largest note plus the old line and 63 proof lines. */
export const MAX_ADD_CHECKPOINT_BYTES = MAX_NOTE_BYTES + 64 * (MAX_PROOF_LINES + 1);
/** Content type of a 409 answer's body. */
export const TLOG_SIZE_CONTENT_TYPE = 'text/x.tlog.size';

/** A parsed add-checkpoint request. */
export interface AddCheckpointRequest {
  /** The size of the checkpoint the client believes the witness last cosigned (0: none). */
  oldSize: number;
  /** RFC 6962 consistency proof from `oldSize` to the checkpoint's size. */
  proof: Uint8Array[];
  /** The signed checkpoint note, as sent. */
  note: string;
}

const DECIMAL = /^(0|[1-9][0-9]{0,15})$/;

/** The request body. Throws `RangeError` on a bad size or proof. */
export function formatAddCheckpoint(req: AddCheckpointRequest): string {
  if (!Number.isSafeInteger(req.oldSize) || req.oldSize < 0) throw new RangeError('old size must be a safe non-negative integer');
  if (req.proof.length > MAX_PROOF_LINES) throw new RangeError(`more than ${MAX_PROOF_LINES} proof lines`);
  let out = `old ${req.oldSize}\n`;
  for (const h of req.proof) {
    if (!(h instanceof Uint8Array) || h.length !== HASH_LEN) throw new RangeError(`proof hashes must be ${HASH_LEN} bytes`);
    out += `${toBase64(h)}\n`;
  }
  return `${out}\n${req.note}`;
}

/** Parses a request body (the note itself is left to the caller). Throws {@link DecodeError}. */
export function parseAddCheckpoint(body: string): AddCheckpointRequest {
  if (typeof body !== 'string') throw new DecodeError('', 'body must be text');
  const end = body.indexOf('\n\n');
  if (end < 0) throw new DecodeError('', 'no blank line between the old size and proof, and the checkpoint');
  const lines = body.slice(0, end).split('\n');
  const first = lines[0];
  if (!first.startsWith('old ') || !DECIMAL.test(first.slice(4)) || !Number.isSafeInteger(Number(first.slice(4)))) {
    throw new DecodeError('old', `first line ${JSON.stringify(first.slice(0, 40))} is not "old <size>"`);
  }
  const proofLines = lines.slice(1);
  if (proofLines.length > MAX_PROOF_LINES) throw new DecodeError('proof', `more than ${MAX_PROOF_LINES} lines`);
  const proof = proofLines.map((l, i) => {
    let h: Uint8Array;
    try {
      h = fromBase64(l);
    } catch (err) {
      throw new DecodeError(`proof[${i}]`, (err as Error).message);
    }
    if (h.length !== HASH_LEN) throw new DecodeError(`proof[${i}]`, `has ${h.length} bytes, want ${HASH_LEN}`);
    return h;
  });
  return { oldSize: Number(first.slice(4)), proof, note: body.slice(end + 2) };
}

/** Parses a 200 answer: note signature lines. Throws {@link DecodeError}. */
export function parseCosignatures(body: string): NoteSignature[] {
  return parseSignatureLines(body);
}

/** Parses a 409 answer body: `decimal size "\n"`. Throws {@link DecodeError}. */
export function parseTlogSize(body: string): number {
  const t = typeof body === 'string' && body.endsWith('\n') ? body.slice(0, -1) : '';
  if (!DECIMAL.test(t) || !Number.isSafeInteger(Number(t))) throw new DecodeError('', `${JSON.stringify(String(body).slice(0, 40))} is not a tree size`);
  return Number(t);
}

/** The body of `res` as text, at most `limit` bytes (the stream is cancelled past it). Throws `RangeError` beyond. */
export async function readBounded(res: Response, limit: number): Promise<string> {
  const parts: Uint8Array[] = [];
  let n = 0;
  if (res.body) {
    const reader = res.body.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      n += value.length;
      if (n > limit) {
        await reader.cancel().catch(() => undefined);
        throw new RangeError(`answer above ${limit} bytes`);
      }
      parts.push(value);
    }
  }
  return new TextDecoder().decode(concatBytes(...parts));
}
