/**
 * A joiner's trust in a snapshot (issue 10, item 1; `snapshotPolicy` / `checkSnapshotDescriptor`
 * with `{ initialSignerSet }`): a member that knows no voters yet follows the signer-set changes
 * the descriptor lists from the initial set its cluster file commits to, and the snapshot's head
 * needs the quorum of the set reached. On hand-made logs with real Ed25519 keys: the honest
 * snapshot is trusted; one whose log starts from a made-up set, one with a change certified only
 * by a made-up set, one with a change left out, one without changes, and one whose head is signed
 * by members removed since (a minority of the set in force, which the former
 * `majority(majority(listed))` rule accepted) are refused with `SNAPSHOT_UNTRUSTED`.
 *
 * A member that knows its voters (`{ signerSet }`) and fell behind later membership changes: it
 * follows the listed changes from the one that committed to its known set, and needs the quorum
 * of the set reached; the same refusals, and its known set's quorum when nothing changed since.
 */
import { describe, expect, it } from 'vitest';
import { signHead } from '../../proofs/checkpoint.js';
import { computeMasterRoot } from '../../proofs/lsm.js';
import { signerSetHash, type SignerSet } from '../../proofs/signer_set.js';
import { checkSnapshotDescriptor, decodeSnapshotDescriptor, encodeSnapshotDescriptor, guessedInitialSignerSet, snapshotPolicy, type SnapshotDescriptor, type SnapshotTrust } from '../../src/replication/snapshot.js';
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

/** The honest snapshot (signed by 4, 5, 6) is trusted under `trust`, through its bytes too, with C4's keys and quorum. */
function trustsHonestAsC4(trust: SnapshotTrust): void {
  const d = descriptor(honest(), [4, 5, 6]);
  expect(refusal(d, trust)).toBeUndefined();
  const p = snapshotPolicy(d, trust);
  expect(p.quorum).toBe(3);
  expect(p.publicKeys.map((k) => keys.findIndex((x) => Buffer.from(x.publicKey).equals(Buffer.from(k))))).toEqual(ids(C4));
  // The changes travel in the descriptor bytes.
  expect(refusal(decodeSnapshotDescriptor(encodeSnapshotDescriptor(d)), trust)).toBeUndefined();
}

describe("a joiner's snapshot trust: the signer-set changes from the initial set", () => {
  it('trusts the honest snapshot: the walk reaches the set in force and its quorum signed', () => {
    trustsHonestAsC4(initial(A5));
  });

  it('trusts a snapshot at checkpoint 0 itself (the only change listed is the snapshot\'s own checkpoint), signed by a quorum of the initial set', () => {
    // A cluster whose log was compacted behind its first certified checkpoint, joined before the
    // second: the full-stack simulation's seed 315 (twenty-first session), refused forever before.
    const first = log().add(A5, [1, 2, 3], 1);
    expect(first.list().map((c) => c.checkpoint.index)).toEqual([0]);
    const d = descriptor(first, [1, 2, 3]);
    expect(refusal(d, initial(A5))).toBeUndefined();
    expect(snapshotPolicy(d, initial(A5)).quorum).toBe(3);
    expect(refusal(decodeSnapshotDescriptor(encodeSnapshotDescriptor(d)), initial(A5))).toBeUndefined();
    // Still the initial set's quorum, and only the initial set's.
    expect(refusal(descriptor(first, [1, 2]), initial(A5))).toBe('SNAPSHOT_UNTRUSTED');
    expect(refusal(d, initial(A))).toBe('SNAPSHOT_UNTRUSTED');
    const madeUp = log().add(X, [7, 8], 1);
    expect(refusal(descriptor(madeUp, [7, 8]), initial(A5))).toBe('SNAPSHOT_UNTRUSTED');
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

describe('a joiner whose cluster file predates initialSignerSet (the initial set is guessed)', () => {
  const guessed = (s: SignerSet): SnapshotTrust => ({ initialSignerSet: guessedInitialSignerSet(signerSetHash(s), ids(s)) });

  it('trusts the honest snapshot when the guess is the initial set (the file lists the initial members and the joiner)', () => {
    trustsHonestAsC4(guessed(A5));
  });

  it('refuses with SNAPSHOT_INITIAL_SET_UNKNOWN and the way out when the guess is another set', () => {
    // The file also lists member 6, added after the cluster was created: the guess is A5 + 6.
    const d = descriptor(honest(), [4, 5, 6]);
    let err: { code?: string; message?: string } = {};
    try {
      checkSnapshotDescriptor(d, guessed(set(4, [1, 2, 3, 4, 5, 6])));
    } catch (e) {
      err = e as typeof err;
    }
    expect(err.code).toBe('SNAPSHOT_INITIAL_SET_UNKNOWN');
    expect(err.message).toContain('(1, 2, 3, 4, 5, 6)');
    expect(err.message).toContain('proofkv cluster initial-set');
    // The same hash given by the file (not guessed) is an untrusted snapshot, as before.
    expect(refusal(d, initial(set(4, [1, 2, 3, 4, 5, 6])))).toBe('SNAPSHOT_UNTRUSTED');
    // A guess never widens trust: a log that starts from the guessed set but is signed by a
    // minority of it is still refused, as untrusted.
    const minority = log().add(A5, [1], 1);
    expect(refusal(descriptor(minority, [1]), guessed(A5))).toBe('SNAPSHOT_UNTRUSTED');
  });
});

const knows = (s: SignerSet): SnapshotTrust => ({ signerSet: s });

// A member that knows its voters (issue 10: a member far behind a membership change): it follows
// the listed changes from the one that committed to the set it knows. Without the walk it trusted
// only its known set's keys and quorum: it refused the honest snapshot certified by C4 (only 4 and
// 5 of A5 signed) and accepted one signed by 1, 2 and 3 (removed members and a minority of C4).
describe('a member that knows its voters: the signer-set changes from its known set', () => {
  it('knowing A5, accepts a snapshot certified by C4 after the certified changes A5 → B3 → C4', () => {
    trustsHonestAsC4(knows(A5));
    // Knowing B3, the walk starts at its change (checkpoint 3): the change to B3 need not be followed.
    trustsHonestAsC4(knows(B3));
    expect(refusal(descriptor(honest(), [4, 5, 6], honest().list(3)), knows(B3))).toBeUndefined();
  });

  it("refuses a head signed by a quorum of the known set that is no quorum of the snapshot's set", () => {
    // 1, 2 and 3 are a quorum of A5; 1 and 2 were removed, and 3 alone is no quorum of C4.
    expect(refusal(descriptor(honest(), [1, 2, 3]), knows(A5))).toBe('SNAPSHOT_UNTRUSTED');
    expect(refusal(descriptor(honest(), [3, 4]), knows(B3))).toBe('SNAPSHOT_UNTRUSTED');
  });

  it('refuses a snapshot certified by a made-up set, and a made-up change to the known set', () => {
    const hijack = log().add(A5, [1, 2, 3], 2).add(X, [7, 8], 2);
    expect(refusal(descriptor(hijack, [7, 8]), knows(A5))).toBe('SNAPSHOT_UNTRUSTED');
    // Even with a quorum of A5 on the head too (which A5's keys alone accepted): X's change is not A5's.
    expect(refusal(descriptor(hijack, [1, 2, 3, 7, 8]), knows(A5))).toBe('SNAPSHOT_UNTRUSTED');
    // A made-up log (starting from X) lists no change to the known set.
    const madeUp = log().add(X, [7, 8], 4);
    expect(refusal(descriptor(madeUp, [7, 8]), knows(A5))).toBe('SNAPSHOT_UNTRUSTED');
    // A change committing to B3 taken from another log (checkpoint 2): not in the snapshot's log.
    const other = log().add(A5, [1, 2, 3], 2).add(B3, [1, 2, 3, 4], 4);
    const l = honest();
    const all = l.list();
    const forged = [all[0], other.change(2, 6), all[2]];
    expect(forged.map((c) => c.checkpoint.index)).toEqual([0, 2, 6]);
    expect(refusal(descriptor(l, [4, 5, 6], forged), knows(B3))).toBe('SNAPSHOT_UNTRUSTED');
  });

  it('refuses when a change is left out, or certified by a minority of the set before it', () => {
    // 3, 4 and 5 are a quorum of A5 as well as of C4: only the walk refuses these.
    const l = honest();
    const all = l.list();
    expect(refusal(descriptor(l, [3, 4, 5]), knows(A5))).toBeUndefined();
    expect(refusal(descriptor(l, [3, 4, 5], [all[0], all[2]]), knows(A5))).toBe('SNAPSHOT_UNTRUSTED');
    expect(refusal(descriptor(l, [3, 4, 5], all.slice(0, 2)), knows(A5))).toBe('SNAPSHOT_UNTRUSTED');
    expect(refusal(descriptor(l, [3, 4, 5], []), knows(A5))).toBe('SNAPSHOT_UNTRUSTED');
    const { setChanges: _none, ...bare } = descriptor(l, [3, 4, 5]);
    expect(refusal(bare, knows(A5))).toBe('SNAPSHOT_UNTRUSTED');
    // A5 → B3 certified by 4 and 5 only (2 of A5, quorum 3).
    const weakB = log().add(A5, [1, 2, 3], 3).add(B3, [4, 5], 3).add(C4, [3, 4, 6], 3);
    expect(refusal(descriptor(weakB, [3, 4, 5]), knows(A5))).toBe('SNAPSHOT_UNTRUSTED');
    // B3 → {3, 6, 7} certified by all of the new set but only 3 of B3 (1 of 3, quorum 2).
    const weakC = log().add(A5, [1, 2, 3], 3).add(B3, [1, 2, 3, 4], 3).add(set(2, [3, 6, 7]), [3, 6, 7], 3);
    expect(refusal(descriptor(weakC, [3, 4, 5, 6, 7]), knows(A5))).toBe('SNAPSHOT_UNTRUSTED');
    expect(refusal(descriptor(weakC, [3, 6, 7]), knows(B3))).toBe('SNAPSHOT_UNTRUSTED');
  });

  it('without a change after the known set: the known set and its quorum, as before', () => {
    const same = log().add(A5, [1, 2, 3], 4);
    expect(refusal(descriptor(same, [1, 2, 5]), knows(A5))).toBeUndefined();
    expect(refusal(descriptor(same, [1, 2]), knows(A5))).toBe('SNAPSHOT_UNTRUSTED');
    const { setChanges: _none, ...bare } = descriptor(same, [1, 2, 5]);
    expect(refusal(bare, knows(A5))).toBeUndefined();
    expect(snapshotPolicy(bare, knows(A5))).toEqual({ publicKeys: A5.members.map((m) => m.publicKey), quorum: 3 });
    // Knowing the snapshot's own set (C4): its quorum, whatever the list says.
    expect(refusal(descriptor(honest(), [4, 5, 6], []), knows(C4))).toBeUndefined();
    expect(refusal(descriptor(honest(), [3, 4]), knows(C4))).toBe('SNAPSHOT_UNTRUSTED');
  });
});
