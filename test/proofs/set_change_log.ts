/**
 * A hand-made checkpoint log whose checkpoints commit to signer sets, with real Ed25519 keys:
 * the set changes a server would list (`GET /v1/checkpoints/set-changes`), for the tests of
 * `verifySetChanges` (test/proofs/set_changes.test.ts) and of a joiner's snapshot trust
 * (test/replication/snapshot_trust_chain.test.ts).
 */
import { checkpointHash, checkpointLeafHash, generateKeyPair, signHead, type Checkpoint, type HeadSignature, type LogHead } from '../../proofs/checkpoint.js';
import { LogTree } from '../../proofs/log.js';
import type { SetChange } from '../../proofs/set_changes.js';
import { signerSetHash, type SignerSet } from '../../proofs/signer_set.js';

export const keys = Array.from({ length: 10 }, (_, i) => generateKeyPair(new Uint8Array(32).fill(i + 101)));
export const set = (quorum: number, ids: number[]): SignerSet => ({ quorum, members: ids.map((id) => ({ id, publicKey: keys[id].publicKey })) });
export const A = set(2, [1, 2, 3]);
export const B = set(2, [2, 3, 4]);
export const C = set(2, [4, 5, 6]);
export const X = set(1, [7, 8]);

/** A log whose checkpoint i commits to `sets[i]`; a set change's head is signed by `by`. */
export class Log {
  readonly cps: Checkpoint[] = [];
  readonly sets: SignerSet[] = [];
  readonly sigs = new Map<number, HeadSignature[]>();
  readonly tree = new LogTree();
  /** The MasterRoot of checkpoint `index` (default: a byte pattern of the index and salt). */
  masterRootOf?: (index: number) => Uint8Array;

  /** Appends `n` checkpoints of `s`; the first, when it changes the set, is signed by `by`. */
  add(s: SignerSet, by: number[] = [], n = 1, salt = 0): this {
    for (let k = 0; k < n; k++) {
      const index = this.cps.length;
      const prev = this.cps[index - 1];
      const c: Checkpoint = { index, seq: index, masterRoot: this.masterRootOf?.(index) ?? new Uint8Array(32).fill((index + salt) % 256), time: 1000, signerSetHash: signerSetHash(s) };
      if (prev) c.prevCheckpointHash = checkpointHash(prev);
      this.tree.append(checkpointLeafHash(c));
      this.cps.push(c);
      this.sets.push(s);
      if (this.isChange(index)) this.sigs.set(index, by.map((id) => signHead(keys[id].privateKey, this.head(index + 1))));
    }
    return this;
  }

  head(size = this.cps.length): LogHead {
    return { size, root: this.tree.root(size) };
  }

  get top(): Checkpoint {
    return this.cps[this.cps.length - 1];
  }

  isChange(i: number): boolean {
    return i === 0 || this.sets[i] !== this.sets[i - 1];
  }

  /** The change at `i` as the server lists it against the head of `size`. */
  change(i: number, size = this.cps.length): SetChange {
    const out: SetChange = {
      checkpoint: this.cps[i],
      head: this.head(i + 1),
      signatures: this.sigs.get(i) ?? [],
      inclusion: this.tree.inclusionProof(i, i + 1),
      signers: this.sets[i],
      consistency: this.tree.consistencyProof(i + 1, size),
    };
    if (i > 0) out.previous = { checkpoint: this.cps[i - 1], inclusion: this.tree.inclusionProof(i - 1, i + 1), signers: this.sets[i - 1] };
    return out;
  }

  /** Every change at `from` or later. */
  list(from = 0): SetChange[] {
    return this.cps.map((_, i) => i).filter((i) => i >= from && this.isChange(i)).map((i) => this.change(i));
  }
}
