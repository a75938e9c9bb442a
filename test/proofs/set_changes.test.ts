/**
 * The pure verifier of a list of signer-set changes (`proofs/set_changes.ts`, docs/proofs.md §5.6),
 * on hand-made logs with real Ed25519 keys: the honest list is followed forward; a change left out,
 * reordered or repeated, replayed from another log, certified only by the new set, a head that is
 * not a prefix of the anchor, a wrong or missing predecessor, a change after the anchor, a
 * "change" to the same set, and more changes than the bound are each refused with their reason.
 */
import { describe, expect, it } from 'vitest';
import type { TrustPolicy } from '../../proofs/checkpoint.js';
import { Reason } from '../../proofs/errors.js';
import { MAX_SET_CHANGES, startSetChain, verifySetChanges, type SetChange, type SetChainState } from '../../proofs/set_changes.js';
import { signerSetHash, signerSetPolicy, type SignerSet } from '../../proofs/signer_set.js';
import { A, B, C, keys, Log, set, X } from './set_change_log.js';

const configured = (s: SignerSet): SetChainState => startSetChain(signerSetPolicy(s), undefined, 0);
const ids = (p: TrustPolicy) => p.publicKeys.map((k) => keys.findIndex((x) => Buffer.from(x.publicKey).equals(Buffer.from(k))));

function reason(r: { ok: boolean; reason?: string; message?: string }): string | undefined {
  return r.ok ? undefined : r.reason;
}

/** A → B at 3 (signed by 1, 2 of A and 3, 4 of B), B → C at 6 (by 2, 3 of B and 4, 5 of C), C until 9. */
const honest = () => new Log().add(A, [1, 2], 3).add(B, [1, 2, 4], 3).add(C, [2, 3, 4, 5], 3);

describe('verifySetChanges', () => {
  it('follows the honest list from the configured keys to the set in force before the head', () => {
    const log = honest();
    const r = verifySetChanges(configured(A), log.list(), log.head(), log.top);
    expect(r.ok, JSON.stringify(r)).toBe(true);
    if (!r.ok) return;
    expect(ids(r.policy)).toEqual([4, 5, 6]);
    expect(r.followed).toBe(3);
    expect(r.setHash).toEqual(signerSetHash(C));
  });

  it('follows from a trusted set and head: only the changes after the head', () => {
    const log = honest();
    const start = startSetChain(signerSetPolicy(B), signerSetHash(B), 4);
    const r = verifySetChanges(start, log.list(4), log.head(), log.top);
    expect(r.ok && ids(r.policy)).toEqual([4, 5, 6]);
    // A change at or before the trusted head's checkpoint is out of order.
    expect(reason(verifySetChanges(start, log.list(3), log.head(), log.top))).toBe(Reason.CHAIN_MISMATCH);
  });

  it('refuses a change left out: in the middle (its successor commits to another set) and at the end', () => {
    const log = honest();
    const list = log.list();
    expect(reason(verifySetChanges(configured(A), [list[0], list[2]], log.head(), log.top))).toBe(Reason.SIGNER_SET_MISMATCH);
    expect(reason(verifySetChanges(configured(A), list.slice(0, 2), log.head(), log.top))).toBe(Reason.SIGNER_SET_MISMATCH);
  });

  it('refuses changes out of order or repeated', () => {
    const log = honest();
    const list = log.list();
    expect(reason(verifySetChanges(configured(A), [list[0], list[1], list[1], list[2]], log.head(), log.top))).toBe(Reason.CHAIN_MISMATCH);
    expect(reason(verifySetChanges(configured(A), [list[1], list[0], list[2]], log.head(), log.top))).toBe(Reason.CHAIN_MISMATCH);
  });

  it('refuses a change replayed from another log signed by the same members', () => {
    const log = honest();
    // Same sets and signers, other checkpoints (other MasterRoots): its certificate is valid there.
    const other = new Log().add(A, [1, 2], 3, 50).add(B, [1, 2, 4], 3, 50).add(C, [2, 3, 4, 5], 3, 50);
    const list = log.list();
    expect(reason(verifySetChanges(configured(A), [list[0], other.change(3), list[2]], log.head(), log.top))).toBe(Reason.FORK);
    // Even with a consistency proof computed in the attacker's log to a head of the same size.
    const replay = { ...other.change(3), consistency: other.tree.consistencyProof(4, 9) };
    expect(reason(verifySetChanges(configured(A), [list[0], replay, list[2]], log.head(), log.top))).toBe(Reason.FORK);
  });

  it('refuses a change certified only by the new set, or by too few of the old one', () => {
    const byNew = new Log().add(A, [1, 2], 3).add(B, [4, 3], 3).add(C, [2, 3, 4, 5], 3);
    expect(['UNTRUSTED_KEY', 'QUORUM_NOT_MET']).toContain(reason(verifySetChanges(configured(A), byNew.list(), byNew.head(), byNew.top)));
    const oneOld = new Log().add(A, [1, 2], 3).add(B, [3, 4], 3).add(C, [2, 3, 4, 5], 3);
    expect(['UNTRUSTED_KEY', 'QUORUM_NOT_MET']).toContain(reason(verifySetChanges(configured(A), oneOld.list(), oneOld.head(), oneOld.top)));
    // A made-up set certified by itself.
    const madeUp = new Log().add(A, [1, 2], 3).add(X, [7], 2);
    expect(reason(verifySetChanges(configured(A), madeUp.list(), madeUp.head(), madeUp.top))).toBe(Reason.UNTRUSTED_KEY);
  });

  it('refuses a change whose head is not a prefix of the anchor', () => {
    const log = honest();
    const list = log.list();
    const bent = { ...list[1], consistency: list[1].consistency.map((h, i) => (i === 0 ? new Uint8Array(32).fill(3) : h)) };
    expect(reason(verifySetChanges(configured(A), [list[0], bent, list[2]], log.head(), log.top))).toBe(Reason.FORK);
    // Against an anchor of another log of the same size.
    const other = new Log().add(A, [1, 2], 3, 50).add(B, [1, 2, 4], 3, 50).add(C, [2, 3, 4, 5], 3, 50);
    expect(reason(verifySetChanges(configured(A), list, other.head(), other.top))).toBe(Reason.FORK);
    // A head of the wrong size for its checkpoint.
    const wrongSize = { ...list[1], head: log.head(5), consistency: log.tree.consistencyProof(5, 9) };
    expect(reason(verifySetChanges(configured(A), [list[0], wrongSize, list[2]], log.head(), log.top))).toBe(Reason.CHECKPOINT_MISMATCH);
  });

  it('refuses a wrong, unlinked, rewritten or missing predecessor', () => {
    const log = honest();
    const list = log.list();
    const at = (c: SetChange) => [list[0], c, list[2]];
    const run = (c: SetChange) => reason(verifySetChanges(configured(A), at(c), log.head(), log.top));
    const p = list[1].previous!;
    expect(run({ ...list[1], previous: { ...p, checkpoint: log.cps[1], inclusion: log.tree.inclusionProof(1, 4) } })).toBe(Reason.CHECKPOINT_MISMATCH);
    // Rewritten to commit to another set: it no longer links.
    expect(run({ ...list[1], previous: { ...p, checkpoint: { ...p.checkpoint, signerSetHash: signerSetHash(B) } } })).toBe(Reason.CHAIN_MISMATCH);
    // The right checkpoint with another's inclusion path.
    expect(run({ ...list[1], previous: { ...p, inclusion: log.tree.inclusionProof(1, 4) } })).toBe(Reason.ROOT_MISMATCH);
    expect(run({ ...list[1], previous: undefined })).toBe(Reason.MALFORMED_INPUT);
    // While trusting configured keys the predecessor's set is read: it must hash to the checkpoint.
    const keysOnly = startSetChain(signerSetPolicy(A), undefined, 1);
    expect(reason(verifySetChanges(keysOnly, [{ ...list[1], previous: { ...p, signers: B } }, list[2]], log.head(), log.top))).toBe(Reason.SIGNER_SET_MISMATCH);
    expect(verifySetChanges(keysOnly, [list[1], list[2]], log.head(), log.top).ok).toBe(true);
  });

  it('refuses a change after the anchor, a "change" to the same set, and a v1 checkpoint listed as a change', () => {
    const log = honest();
    const list = log.list();
    const upTo6 = [log.change(0, 6), log.change(3, 6), { ...log.change(6), consistency: [] }];
    expect(reason(verifySetChanges(configured(A), upTo6, log.head(6), log.cps[5]))).toBe(Reason.INDEX_OUT_OF_RANGE);
    expect(verifySetChanges(configured(A), upTo6.slice(0, 2), log.head(6), log.cps[5]).ok).toBe(true);
    const same = log.change(4);
    expect(reason(verifySetChanges(configured(A), [list[0], list[1], { ...same, signatures: [] }, list[2]], log.head(), log.top))).toBe(Reason.SIGNER_SET_MISMATCH);
    const v1 = { ...list[1], checkpoint: { ...list[1].checkpoint, signerSetHash: undefined, time: undefined } };
    expect(reason(verifySetChanges(configured(A), [list[0], v1, list[2]], log.head(), log.top))).toBe(Reason.SIGNER_SET_MISMATCH);
  });

  it("lists the anchor's own checkpoint when it changes the set: only its predecessor is checked", () => {
    const log = new Log().add(A, [1, 2], 3).add(B, [1, 2, 3, 4], 1);
    const r = verifySetChanges(configured(A), log.list(), log.head(), log.top);
    expect(r.ok && ids(r.policy)).toEqual([1, 2, 3]);
    // Nothing may follow it.
    const more = new Log().add(A, [1, 2], 3).add(B, [1, 2, 3, 4], 1).add(C, [2, 3, 4, 5], 1);
    const list = [more.change(0, 4), more.change(3, 4), { ...more.change(4), consistency: [] }];
    expect(reason(verifySetChanges(configured(A), list, more.head(4), more.cps[3]))).toBe(Reason.CHAIN_MISMATCH);
  });

  it('configured keys in force only from a later set: the changes before them are skipped', () => {
    // X from 0, X → A at 2 (X's member 7 and A's 1, 2), A → B at 4, B until 6.
    const log = new Log().add(X, [7], 2).add(A, [7, 1, 2], 2).add(B, [1, 2, 4], 2);
    const r = verifySetChanges(configured(A), log.list(), log.head(), log.top);
    expect(r.ok, JSON.stringify(r)).toBe(true);
    expect(r.ok && ids(r.policy)).toEqual([2, 3, 4]);
    expect(r.ok && r.followed).toBe(1);
    // Keys that are no set of the log: nothing is followed, the configured policy comes back.
    const none = verifySetChanges(configured(C), log.list(), log.head(), log.top);
    expect(none.ok && none.followed).toBe(0);
    expect(none.ok && ids(none.policy)).toEqual([4, 5, 6]);
  });

  it('an excursion A → B → A left out entirely is not seen: the ends of the interval both commit to A (§5.6)', () => {
    const log = new Log().add(A, [1, 2], 2).add(B, [1, 2, 4], 2).add(A, [2, 3, 4], 2);
    const start = startSetChain(signerSetPolicy(A), signerSetHash(A), 1);
    const all = verifySetChanges(start, log.list(1), log.head(), log.top);
    const hidden = verifySetChanges(start, [], log.head(), log.top);
    expect(all.ok && hidden.ok).toBe(true);
    expect(all.ok && all.followed).toBe(2);
    expect(hidden.ok && ids(hidden.policy)).toEqual([1, 2, 3]);
  });

  it(`refuses more than ${MAX_SET_CHANGES} changes per walk`, () => {
    const log = honest();
    const list = log.list();
    // A walk that already consumed all but three: the three changes fit; all but two: they do not.
    expect(verifySetChanges({ ...configured(A), seen: MAX_SET_CHANGES - 3 }, list, log.head(), log.top).ok).toBe(true);
    expect(verifySetChanges({ ...configured(A), seen: MAX_SET_CHANGES - 2 }, list, log.head(), log.top)).toMatchObject({ reason: Reason.QUORUM_NOT_MET });
  });

  it('never throws on malformed input', () => {
    const log = honest();
    for (const bad of [null, 1, {}, { checkpoint: null }, { ...log.change(3), head: null }, { ...log.change(3), signers: null }, { ...log.change(3), previous: { checkpoint: null } }]) {
      const r = verifySetChanges(configured(A), [bad as unknown as SetChange], log.head(), log.top);
      expect(r.ok).toBe(false);
    }
    expect(verifySetChanges(configured(A), null as unknown as SetChange[], log.head(), log.top).ok).toBe(false);
  });
});
