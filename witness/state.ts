/**
 * The witness's durable state: per log, the last checkpoint it cosigned (size, root and the note
 * as it was submitted), one small file per log written by write-to-temporary, fsync, rename and
 * directory fsync, so a crash leaves either the old or the new state; and evidence files (two
 * signed notes that contradict each other), one per refusal that shows a fork.
 *
 * ```
 * <dir>/logs/<hex SHA-256(origin)>.json    { "origin", "size", "root" (base64), "note" }
 * <dir>/evidence/<unix ms>-<n>.txt         a header line, the cosigned note, the refused note
 * ```
 * @module
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sha256 } from '@noble/hashes/sha2.js';
import { fromBase64, toBase64, toBytes, toHex } from '../proofs/bytes.js';
import { HASH_LEN } from '../proofs/hash.js';
import { MAX_NOTE_BYTES } from '../proofs/note.js';
import { writeFileDurably } from '../src/util/durable.js';

/** The last checkpoint a witness cosigned for one log. */
export interface CosignedHead {
  origin: string;
  size: number;
  root: Uint8Array;
  /** The signed note that was cosigned (as submitted, without the witness's cosignature). */
  note: string;
}

/** Most evidence files kept; further forks are refused all the same, and logged, but not filed. */
export const MAX_EVIDENCE_FILES = 1000;

/** A malformed state file: the witness refuses to start rather than forget what it cosigned. */
export class WitnessStateError extends Error {
  readonly code = 'WITNESS_STATE_CORRUPT';
  constructor(message: string) {
    super(message);
    this.name = 'WitnessStateError';
  }
}

/** The witness's store in `dir`. */
export class WitnessStore {
  private readonly logsDir: string;
  private readonly evidenceDir: string;
  private evidenceCount: number;
  private evidenceSeq = 0;

  constructor(readonly dir: string) {
    this.logsDir = path.join(dir, 'logs');
    this.evidenceDir = path.join(dir, 'evidence');
    fs.mkdirSync(this.logsDir, { recursive: true, mode: 0o700 });
    fs.mkdirSync(this.evidenceDir, { recursive: true, mode: 0o700 });
    this.evidenceCount = fs.readdirSync(this.evidenceDir).filter((f) => f.endsWith('.txt')).length;
  }

  /** The state file of `origin`. */
  fileOf(origin: string): string {
    return path.join(this.logsDir, `${toHex(sha256(toBytes(origin)))}.json`);
  }

  /** The last cosigned head of `origin`, or undefined. Throws {@link WitnessStateError} on a malformed file. */
  load(origin: string): CosignedHead | undefined {
    const file = this.fileOf(origin);
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    if (text.length > 2 * MAX_NOTE_BYTES) throw new WitnessStateError(`${file} is too large`);
    let o: { origin?: unknown; size?: unknown; root?: unknown; note?: unknown };
    try {
      o = JSON.parse(text) as typeof o;
    } catch {
      throw new WitnessStateError(`${file} is not JSON`);
    }
    let root: Uint8Array | undefined;
    try {
      root = typeof o.root === 'string' ? fromBase64(o.root) : undefined;
    } catch {
      root = undefined;
    }
    if (o.origin !== origin || !Number.isSafeInteger(o.size) || (o.size as number) < 0 || !root || root.length !== HASH_LEN || typeof o.note !== 'string') {
      throw new WitnessStateError(`${file} is malformed`);
    }
    return { origin, size: o.size as number, root, note: o.note };
  }

  /** Persists the cosigned head of its origin (durably, before the witness answers). */
  save(head: CosignedHead): void {
    const json = JSON.stringify({ origin: head.origin, size: head.size, root: toBase64(head.root), note: head.note }, null, 1);
    writeFileDurably(this.fileOf(head.origin), `${json}\n`);
  }

  /** Files evidence of a fork: the note the witness cosigned and the contradicting one. Returns the file, or undefined past the cap. */
  recordEvidence(origin: string, reason: string, cosigned: string, refused: string): string | undefined {
    if (this.evidenceCount >= MAX_EVIDENCE_FILES) return undefined;
    const file = path.join(this.evidenceDir, `${Date.now()}-${this.evidenceSeq++}.txt`);
    const header = `proofkv witness evidence\norigin ${JSON.stringify(origin)}\nreason ${reason}\n`;
    writeFileDurably(file, `${header}\n--- cosigned ---\n${cosigned}--- refused ---\n${refused}`);
    this.evidenceCount++;
    return file;
  }

  /** Evidence files, oldest first. */
  evidence(): string[] {
    return fs
      .readdirSync(this.evidenceDir)
      .filter((f) => f.endsWith('.txt'))
      .sort()
      .map((f) => path.join(this.evidenceDir, f));
  }
}
