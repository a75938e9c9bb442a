/**
 * A guessed initial signer set (docs/cluster.md): pure, and its own module so that reading a
 * cluster file (`server/cluster_config.ts`, the command line) does not load the snapshot code.
 * @module
 */

/**
 * The hash of an initial signer set *guessed* from a cluster file written before
 * `initialSignerSet` existed (the members it lists other than the member itself, majority
 * quorum): right only when the file lists exactly the initial members and this one. A joiner
 * trusting such a hash whose snapshot's checkpoint 0 commits to another set is refused with
 * `SNAPSHOT_INITIAL_SET_UNKNOWN` (snapshot.ts), not `SNAPSHOT_UNTRUSTED`: the guess, not the
 * snapshot, is what the operator must fix.
 */
export class GuessedInitialSignerSet extends Uint8Array {
  /** Ids of the members the guess was made of. */
  memberIds: readonly number[] = [];
}

/** A copy of `hash`, marked as guessed from the members `memberIds` ({@link GuessedInitialSignerSet}). */
export function guessedInitialSignerSet(hash: Uint8Array, memberIds: readonly number[]): GuessedInitialSignerSet {
  const g = new GuessedInitialSignerSet(hash.length);
  g.set(hash);
  g.memberIds = [...memberIds];
  return g;
}
