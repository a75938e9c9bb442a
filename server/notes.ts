/**
 * Checkpoint notes: every certified head of the node's checkpoint log as a C2SP `tlog-checkpoint`
 * signed note, and the cosignatures of the witnesses the node pushes each new head to (C2SP
 * `tlog-witness` `add-checkpoint`).
 *
 * ```
 * <origin>                      the cluster's name: --origin, default proofkv/<hex of the first 8 bytes of the node key>
 * <size>                        the checkpoint log's size
 * <base64 root>                 its RFC 9162 root
 *
 * — <origin> <base64(keyHash || Ed25519 signature)>        the node's note signature (key name = origin)
 * — <witness> <base64(keyHash || time || signature)>      cosignatures the node collected for this head
 * ```
 * Ed25519 is deterministic, so the node signs a note on demand (with the node key, through
 * `ProofDB.signWithNodeKey`) for any head its log passed through, and gets the same bytes every time. Cosignatures are kept
 * in memory for the last {@link MAX_COSIGNED_HEADS} heads; after a restart the node pushes its
 * latest head again and the witnesses cosign it again (same size and root).
 * @module
 */
import { toHex } from '../proofs/bytes.js';
import type { LogHead } from '../proofs/checkpoint.js';
import {
  KEY_TYPE_COSIGNATURE,
  formatCheckpointNote,
  formatNote,
  isValidKeyName,
  signatureLine,
  signNoteWith,
  verifierKeyOf,
  verifyNote,
  type NoteSignature,
  type VerifierKey,
} from '../proofs/note.js';
import type { ProofDB } from '../src/index.js';
import { formatAddCheckpoint, parseCosignatures, parseTlogSize, readBounded, TLOG_SIZE_CONTENT_TYPE } from '../witness/protocol.js';

/** A witness the node pushes heads to. */
export interface WitnessTarget {
  /** Base URL; `add-checkpoint` is appended (`<url>/add-checkpoint`). */
  url: string;
  /** Its cosignature verifier key (type 0x04). */
  key: VerifierKey;
}

/** Checkpoint-note settings of a node. */
export interface NoteOptions {
  /** The origin line (and note key name); default {@link defaultOrigin} of the node key. */
  origin?: string;
  /** Witnesses to push each new head to. */
  witnesses?: WitnessTarget[];
  /** How often to look for a new head to push, ms (default 500; 0 disables the timer). */
  pushIntervalMs?: number;
  /** Per-request timeout of a push, ms (default 5000). */
  pushTimeoutMs?: number;
  /** Receives push failures (default: nothing). */
  warn?: (message: string, fields?: Record<string, unknown>) => void;
}

/** Heads whose cosignatures are kept in memory. */
export const MAX_COSIGNED_HEADS = 64;
/** Largest witness answer read, bytes. */
export const MAX_WITNESS_ANSWER_BYTES = 16 * 1024;

/** `proofkv/<hex of the first 8 bytes of the public key>`: the default origin. */
export function defaultOrigin(publicKey: Uint8Array): string {
  return `proofkv/${toHex(publicKey.subarray(0, 8))}`;
}

/** The node's checkpoint notes and witness cosignatures. */
export class CheckpointNotes {
  readonly origin: string;
  private readonly witnesses: WitnessTarget[];
  /** `size:rootHex` → witness name → cosignature; insertion order = age. */
  private readonly cosigs = new Map<string, Map<string, NoteSignature>>();
  /** `size:rootHex` → the node's own note signature (Ed25519 costs ~1.6 ms a signature), last {@link MAX_COSIGNED_HEADS} heads. */
  private readonly ownSigs = new Map<string, NoteSignature>();
  /** What each witness last cosigned for us (its old size for the next push). */
  private readonly lastSize = new Map<string, number>();
  private pushedSize = 0;
  private pushing: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly db: ProofDB,
    private readonly options: NoteOptions = {},
  ) {
    this.origin = options.origin ?? defaultOrigin(db.publicKey());
    if (!isValidKeyName(this.origin)) throw new RangeError(`origin ${JSON.stringify(this.origin)} is empty or has white space or '+'`);
    this.witnesses = options.witnesses ?? [];
    for (const w of this.witnesses) {
      if (w.key.type !== KEY_TYPE_COSIGNATURE) throw new RangeError(`witness ${w.key.name}: key is not a cosignature/v1 key`);
    }
    const every = options.pushIntervalMs ?? 500;
    if (this.witnesses.length > 0 && every > 0) {
      this.timer = setInterval(() => void this.push(), every);
      this.timer.unref();
    }
  }

  /** The node's note verifier key (`origin+hash+key`, type 0x01). */
  verifierKey(): VerifierKey {
    return verifierKeyOf(this.origin, this.db.publicKey());
  }

  /** The head of `size` (default: the latest). Throws the engine's errors for a size the log never had. */
  head(size?: number): LogHead {
    return size === undefined ? this.db.latestCheckpoint().head : this.db.logHead(size);
  }

  /** The checkpoint text of `head`. */
  text(head: LogHead): string {
    return formatCheckpointNote({ origin: this.origin, size: head.size, root: head.root, extensions: [] });
  }

  /** The signed note of the head of `size` (default: the latest), with the cosignatures collected for it. */
  note(size?: number): string {
    const head = this.head(size);
    const text = this.text(head);
    const id = idOf(head);
    let own = this.ownSigs.get(id);
    if (!own) {
      own = signNoteWith(text, this.origin, this.db.publicKey(), (m) => this.db.signWithNodeKey(m));
      this.ownSigs.set(id, own);
      if (this.ownSigs.size > MAX_COSIGNED_HEADS) this.ownSigs.delete(this.ownSigs.keys().next().value as string);
    }
    const witnessSigs = [...(this.cosigs.get(id)?.values() ?? [])];
    return formatNote({ text, signatures: [own, ...witnessSigs] });
  }

  /**
   * The witness cosignatures the node holds for `head` as note signature lines (the tlog-witness
   * answer format), or undefined when it holds none: what proof and checkpoint responses carry
   * next to the head (`cosignatures`).
   */
  cosignatureLines(head: LogHead): string | undefined {
    const m = this.cosigs.get(idOf(head));
    return m && m.size > 0 ? [...m.values()].map(signatureLine).join('') : undefined;
  }

  /** The witnesses (names) whose cosignature the node holds for `head`. */
  cosigners(head: LogHead): string[] {
    return [...(this.cosigs.get(idOf(head))?.keys() ?? [])];
  }

  /** Pushes the latest head to every witness (once per head; concurrent calls share one run). */
  push(): Promise<void> {
    if (this.pushing) return this.pushing;
    this.pushing = this.pushLatest().finally(() => {
      this.pushing = null;
    });
    return this.pushing;
  }

  private async pushLatest(): Promise<void> {
    let head: LogHead;
    try {
      head = this.db.latestCheckpoint().head;
    } catch {
      return; // no checkpoint yet, or closed
    }
    const missing = this.witnesses.filter((w) => !this.cosigs.get(idOf(head))?.has(w.key.name));
    if (head.size === this.pushedSize && missing.length === 0) return;
    const note = this.note(head.size);
    await Promise.all(missing.map((w) => this.pushTo(w, head, note)));
    if (this.witnesses.every((w) => this.cosigs.get(idOf(head))?.has(w.key.name))) this.pushedSize = head.size;
  }

  /** One witness: add-checkpoint from its last size; on 409, once more from the size it names. */
  private async pushTo(w: WitnessTarget, head: LogHead, note: string): Promise<void> {
    const warn = this.options.warn ?? (() => undefined);
    let old = this.lastSize.get(w.key.name) ?? 0;
    for (let attempt = 0; attempt < 2; attempt++) {
      if (old > head.size) {
        warn('witness has cosigned a larger head than this node has', { witness: w.key.name, witnessSize: old, size: head.size });
        return;
      }
      let proof: Uint8Array[];
      try {
        proof = old > 0 && old < head.size ? this.db.consistencyProof(old, head.size) : [];
      } catch {
        return; // closed meanwhile
      }
      let res: Response;
      let body: string;
      try {
        res = await fetch(`${w.url.replace(/\/+$/, '')}/add-checkpoint`, {
          method: 'POST',
          body: formatAddCheckpoint({ oldSize: old, proof, note }),
          signal: AbortSignal.timeout(this.options.pushTimeoutMs ?? 5000),
        });
        body = await readBounded(res, MAX_WITNESS_ANSWER_BYTES);
      } catch (err) {
        warn('witness push failed', { witness: w.key.name, err: (err as Error).message });
        return;
      }
      if (res.status === 409 && (res.headers.get('content-type') ?? '').startsWith(TLOG_SIZE_CONTENT_TYPE)) {
        try {
          const size = parseTlogSize(body);
          if (size === old) {
            warn('witness refused: it holds another root at this size', { witness: w.key.name, size });
            return;
          }
          old = size;
          continue;
        } catch {
          warn('witness answered 409 without a size', { witness: w.key.name });
          return;
        }
      }
      if (res.status !== 200) {
        warn('witness refused the head', { witness: w.key.name, status: res.status, body: body.slice(0, 200) });
        return;
      }
      this.accept(w, head, body);
      return;
    }
  }

  private accept(w: WitnessTarget, head: LogHead, body: string): void {
    let sigs: NoteSignature[];
    try {
      sigs = parseCosignatures(body);
    } catch {
      this.options.warn?.('witness answer is not signature lines', { witness: w.key.name });
      return;
    }
    const text = this.text(head);
    const mine = sigs.filter((s) => s.name === w.key.name && s.keyHash === w.key.keyHash);
    const sig = mine.find((s) => verifyNote({ text, signatures: [s] }, [w.key]).ok);
    if (!sig) {
      this.options.warn?.('witness cosignature does not verify', { witness: w.key.name });
      return;
    }
    const id = idOf(head);
    let m = this.cosigs.get(id);
    if (!m) {
      m = new Map();
      this.cosigs.set(id, m);
      while (this.cosigs.size > MAX_COSIGNED_HEADS) this.cosigs.delete(this.cosigs.keys().next().value as string);
    }
    m.set(w.key.name, sig);
    this.lastSize.set(w.key.name, head.size);
  }

  /** Stops the push timer and waits for a push in flight. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.pushing;
  }
}

function idOf(head: LogHead): string {
  return `${head.size}:${toHex(head.root)}`;
}
