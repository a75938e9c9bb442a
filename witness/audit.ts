/**
 * The auditing witness's extra check (docs/witness.md): before co-signing a head, fetch the table
 * set behind the MasterRoot of the head's last checkpoint (`GET /v1/checkpoints/latest/tables` of
 * a node) and check what a verifier otherwise trusts the signers for:
 * 1. the checkpoint is leaf `size - 1` of the head (RFC 9162 inclusion);
 * 2. the descriptors hash to its MasterRoot — so their level counts and order are the committed ones;
 * 3. they come in read order (levels ascending, positions 0, 1, … within each level);
 * 4. every table's smallest key is at most its largest (engine order), and in each level ≥ 1 the
 *    tables are sorted and disjoint (each table's largest key before the next one's smallest).
 * Entry order inside new tables (the "full audit") is not checked.
 * @module
 */
import { verifyCheckpointInclusion, type Checkpoint, type LogHead } from '../proofs/checkpoint.js';
import { Reason, fail, OK, type Verified } from '../proofs/errors.js';
import { nobleHasher } from '../proofs/hash.js';
import { compareEntries, computeMasterRoot, NUM_LEVELS, parseInternalKey, type TableDescriptor } from '../proofs/lsm.js';
import { equalBytes, fromBase64Url, toHex } from '../proofs/bytes.js';
import type { CheckpointNote } from '../proofs/note.js';
import { readBounded } from './protocol.js';

/** What a node serves for auditors. */
export interface TableSet {
  checkpoint: Checkpoint;
  head: LogHead;
  inclusion: Uint8Array[];
  descriptors: TableDescriptor[];
}

/** Most descriptors an audit accepts (a table set is a few hundred tables at most). */
export const MAX_AUDIT_TABLES = 100_000;
/** Largest audit answer read, bytes. */
export const MAX_AUDIT_BYTES = 64 * 1024 * 1024;

function order(a: Uint8Array, b: Uint8Array): number | undefined {
  const x = parseInternalKey(a);
  const y = parseInternalKey(b);
  return x && y ? compareEntries(x, y) : undefined;
}

/** Checks `tables` against the checkpoint note's head (steps 1–4 above). Never throws. */
export function auditTableSet(note: CheckpointNote, tables: TableSet): Verified {
  try {
    const { checkpoint, head, inclusion, descriptors } = tables;
    if (head.size !== note.size || !equalBytes(head.root, note.root) || checkpoint.index !== note.size - 1) {
      return fail(Reason.CHECKPOINT_MISMATCH, `the node's tables are for checkpoint ${checkpoint.index} of head ${head.size}, not the last of head ${note.size}`);
    }
    const inc = verifyCheckpointInclusion(checkpoint, inclusion, { size: note.size, root: note.root });
    if (!inc.ok) return inc;
    if (descriptors.length > MAX_AUDIT_TABLES) return fail(Reason.MALFORMED_INPUT, `more than ${MAX_AUDIT_TABLES} tables`);
    const got = computeMasterRoot(nobleHasher, descriptors);
    if (!equalBytes(got, checkpoint.masterRoot)) return fail(Reason.ROOT_MISMATCH, `descriptors hash to MasterRoot ${toHex(got)}, the checkpoint holds ${toHex(checkpoint.masterRoot)}`);
    let level = 0;
    let position = 0;
    for (let i = 0; i < descriptors.length; i++) {
      const d = descriptors[i];
      if (!Number.isInteger(d.level) || d.level < level || d.level >= NUM_LEVELS) return fail(Reason.ENTRY_ORDER, `table ${i} at level ${d.level} after level ${level}`);
      if (d.level !== level) position = 0;
      level = d.level;
      if (d.position !== position++) return fail(Reason.ENTRY_ORDER, `table ${i} has position ${d.position} in level ${level}, want ${position - 1}`);
      const own = order(d.smallest, d.largest);
      if (own === undefined || own > 0) return fail(Reason.ENTRY_ORDER, `table ${i} (level ${level}) has its smallest key after its largest, or malformed keys`);
      const prev = descriptors[i - 1];
      if (level >= 1 && prev && prev.level === level) {
        const c = order(prev.largest, d.smallest);
        if (c === undefined || c >= 0) return fail(Reason.ENTRY_ORDER, `level ${level}: table ${d.position} does not start after table ${prev.position} ends (tables overlap or are out of order)`);
      }
    }
    return OK;
  } catch (err) {
    return fail(Reason.MALFORMED_INPUT, `table set could not be audited: ${(err as Error).message}`);
  }
}

/** Decodes the JSON of `GET /v1/checkpoints/latest/tables`. Throws `TypeError` on a bad shape. */
export function parseTableSet(json: unknown): TableSet {
  const o = json as Record<string, any>;
  const b = (v: unknown, what: string): Uint8Array => {
    if (typeof v !== 'string') throw new TypeError(`${what} is not base64url`);
    return fromBase64Url(v);
  };
  const n = (v: unknown, what: string): number => {
    if (!Number.isSafeInteger(v) || (v as number) < 0) throw new TypeError(`${what} is not a count`);
    return v as number;
  };
  if (typeof o !== 'object' || o === null || typeof o.checkpoint !== 'object' || typeof o.head !== 'object' || !Array.isArray(o.inclusion) || !Array.isArray(o.descriptors)) {
    throw new TypeError('not a table set');
  }
  if (o.descriptors.length > MAX_AUDIT_TABLES) throw new TypeError(`more than ${MAX_AUDIT_TABLES} tables`);
  const c = o.checkpoint;
  const checkpoint: Checkpoint = { index: n(c.index, 'checkpoint.index'), seq: n(c.seq, 'checkpoint.seq'), masterRoot: b(c.masterRoot, 'checkpoint.masterRoot') };
  if (c.prevCheckpointHash !== undefined) checkpoint.prevCheckpointHash = b(c.prevCheckpointHash, 'checkpoint.prevCheckpointHash');
  // v2 checkpoints (docs/proofs.md §5.1): without these the leaf would be that of another message.
  if (c.time !== undefined) checkpoint.time = n(c.time, 'checkpoint.time');
  if (c.signerSetHash !== undefined) checkpoint.signerSetHash = b(c.signerSetHash, 'checkpoint.signerSetHash');
  return {
    checkpoint,
    head: { size: n(o.head.size, 'head.size'), root: b(o.head.root, 'head.root') },
    inclusion: o.inclusion.map((h: unknown, i: number) => b(h, `inclusion[${i}]`)),
    descriptors: o.descriptors.map((d: Record<string, unknown>, i: number) => ({
      level: n(d.level, `descriptors[${i}].level`),
      position: n(d.position, `descriptors[${i}].position`),
      smallest: b(d.smallest, `descriptors[${i}].smallest`),
      largest: b(d.largest, `descriptors[${i}].largest`),
      entryCount: n(d.entryCount, `descriptors[${i}].entryCount`),
      tableRoot: b(d.tableRoot, `descriptors[${i}].tableRoot`),
    })),
  };
}

/** Fetches and audits the table set of `url` (a node's base URL) for `note`. Never throws. */
export async function auditNode(url: string, note: CheckpointNote, timeoutMs = 10_000): Promise<Verified> {
  let tables: TableSet;
  try {
    const res = await fetch(`${url.replace(/\/+$/, '')}/v1/checkpoints/latest/tables`, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(timeoutMs) });
    const text = await readBounded(res, MAX_AUDIT_BYTES);
    if (res.status !== 200) return fail(Reason.CHECKPOINT_MISMATCH, `node answered ${res.status} for its table set`);
    tables = parseTableSet(JSON.parse(text));
  } catch (err) {
    return fail(Reason.MALFORMED_INPUT, `table set unavailable: ${(err as Error).message}`);
  }
  return auditTableSet(note, tables);
}
