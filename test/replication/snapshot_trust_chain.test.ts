/**
 * A joiner's trust in a snapshot (issue 10, item 1; `snapshotPolicy` / `checkSnapshotDescriptor`
 * with `{ initialSignerSet }`): a member that knows no voters yet follows the signer-set changes
 * the descriptor lists from the initial set its cluster file commits to, and the snapshot's head
 * needs the quorum of the set reached. On hand-made logs with real Ed25519 keys: the honest
 * snapshot is trusted; one whose log starts from a made-up set, one with a change certified only
 * by a made-up set, one with a change left out, one without changes, and one whose head is signed
 * by members removed since (a minority of the set in force, which the former
 * `majority(majority(listed))` rule accepted) are refused with `SNAPSHOT_UNTRUSTED`.
 */
import { describe, expect, it } from 'vitest';
import { signHead } from '../../proofs/checkpoint.js';
import { computeMasterRoot } from '../../proofs/lsm.js';
import { signerSetHash, type SignerSet } from '../../proofs/signer_set.js';
import { checkSnapshotDescriptor, decodeSnapshotDescriptor, encodeSnapshotDescriptor, snapshotPolicy, type SnapshotDescriptor, type SnapshotTrust } from '../../src/replication/snapshot.js';
import { nodeHasher } from '../../src/table/node_hasher.js';
import { A, keys, Log, set, X } from '../proofs/set_change_log.js';

/** The MasterRoot of a snapshot with no tables: the descriptors below list none. */
const EMPTY_ROOT = computeMasterRoot(nodeHasher, []);

/** A log whose checkpoints all have {@link EMPTY_ROOT}. */
const log = () => Object.assign(new Log(), { masterRootOf: () => EMPTY_ROOT });

/** The snapshot at the log's last checkpoint, its head signed by `by`, listing `changes` (default: all). */
function descriptor(l: Log, by: number[], changes = l.list()): SnapshotDescriptor {
  const head = l.head();
  return {
    index: 100 + l.top.index,
    checkpoint: l.top,
    head,
    signatures: by.map((id) => signHead(keys[id].privateKey, head)),
    tables: [],
    log: { size: head.size, bytes: 0 },
    sessions: new Uint8Array(0),
    setChanges: changes,
  };
}

function refusal(d: SnapshotDescriptor, trust: SnapshotTrust): string | undefined {
  try {
    checkSnapshotDescriptor(d, trust);
    return undefined;
  } catch (err) {
    return `${(err as { code?: string }).code}`;
  }
}

const ids = (s: SignerSet) => s.members.map((m) => m.id);
const initial = (s: SignerSet): SnapshotTrust => ({ initialSignerSet: signerSetHash(s) });

// Five initial members (quorum 3); 1 and 2 removed at checkpoint 3 (the change certified by 1–4:
// a quorum of both sets); then 6 added at checkpoint 6 (certified by 3, 4, 6).
const A5 = set(3, [1, 2, 3, 4, 5]);
const B3 = set(2, [3, 4, 5]);
const C4 = set(3, [3, 4, 5, 6]);
const honest = () => log().add(A5, [1, 2, 3], 3).add(B3, [1, 2, 3, 4], 3).add(C4, [3, 4, 6], 3);

describe("a joiner's snapshot trust: the signer-set changes from the initial set", () => {
  it('trusts the honest snapshot: the walk reaches the set in force and its quorum signed', () => {
    const d = descriptor(honest(), [4, 5, 6]);
    expect(refusal(d, initial(A5))).toBeUndefined();
    const p = snapshotPolicy(d, initial(A5));
    expect(p.quorum).toBe(3);
    expect(p.publicKeys.map((k) => keys.findIndex((x) => Buffer.from(x.publicKey).equals(Buffer.from(k))))).toEqual(ids(C4));
    // The changes travel in the descriptor bytes.
    expect(refusal(decodeSnapshotDescriptor(encodeSnapshotDescriptor(d)), initial(A5))).toBeUndefined();
  });

  it('refuses a head signed by members removed since (1 and 2), which majority(majority(listed)) accepted', () => {
    const d = descriptor(honest(), [1, 2]);
    expect(refusal(d, initial(A5))).toBe('SNAPSHOT_UNTRUSTED');
    // The former rule for a file listing 1–6 (and the joiner): 2 of those 6 keys.
    const listed = [1, 2, 3, 4, 5, 6].map((id) => keys[id].publicKey);
    expect(refusal(d, { publicKeys: listed, quorum: 2 })).toBeUndefined();
    // The removed pair cannot certify a change of their own either (they are not a quorum of B3).
    const fork = log().add(A5, [1, 2, 3], 3).add(B3, [1, 2, 3, 4], 3).add(set(2, [1, 2]), [1, 2], 2);
    expect(refusal(descriptor(fork, [1, 2]), initial(A5))).toBe('SNAPSHOT_UNTRUSTED');
  });

  it('refuses a log that starts from a made-up set, and a change certified only by a made-up set', () => {
    const madeUp = log().add(X, [7, 8], 4);
    expect(refusal(descriptor(madeUp, [7, 8]), initial(A5))).toBe('SNAPSHOT_UNTRUSTED');
    // The same made-up log is trusted only by a joiner whose file commits to X.
    expect(refusal(descriptor(madeUp, [7, 8]), initial(X))).toBeUndefined();
    const hijack = log().add(A5, [1, 2, 3], 2).add(X, [7, 8], 2);
    expect(refusal(descriptor(hijack, [7, 8]), initial(A5))).toBe('SNAPSHOT_UNTRUSTED');
  });

  it('refuses a list with a change left out, a list that does not start at checkpoint 0, and no list', () => {
    const l = honest();
    const all = l.list();
    expect(all.map((c) => c.checkpoint.index)).toEqual([0, 3, 6]);
    expect(refusal(descriptor(l, [4, 5, 6], [all[0], all[2]]), initial(A5))).toBe('SNAPSHOT_UNTRUSTED');
    expect(refusal(descriptor(l, [4, 5, 6], all.slice(0, 2)), initial(A5))).toBe('SNAPSHOT_UNTRUSTED');
    expect(refusal(descriptor(l, [4, 5, 6], all.slice(1)), initial(A5))).toBe('SNAPSHOT_UNTRUSTED');
    const { setChanges: _none, ...bare } = descriptor(l, [4, 5, 6]);
    expect(refusal(bare, initial(A5))).toBe('SNAPSHOT_UNTRUSTED');
    // Another initial set (the cluster file of another cluster): refused at checkpoint 0.
    expect(refusal(descriptor(l, [4, 5, 6]), initial(A))).toBe('SNAPSHOT_UNTRUSTED');
  });
});
