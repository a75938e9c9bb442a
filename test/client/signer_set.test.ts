/**
 * The SDK's signer-set trust (docs/proofs.md §5.6, docs/client.md): a `TrustKeeper` configured with
 * keys and a quorum adopts a new signer set only from a head a quorum of the set it trusts signed,
 * walks the set changes between its trusted head and a newer one (each change with its own
 * certificate), persists the adopted set with the head, and refuses everything else with a typed
 * reason, leaving its state as it was. Logs are hand-made with real Ed25519 keys and served through
 * an in-memory `AcceptContext` that a test can tamper with.
 */
import { describe, expect, it } from 'vitest';
import { BACK_WALK_CHECKPOINTS, MemoryStateStore, TrustKeeper, VerificationError, type AcceptContext, type Answer, type IncludedCheckpoint, type SetChangePage } from '../../client-sdk/index.js';
import type { SetChange } from '../../proofs/set_changes.js';
import { checkpointHash, checkpointLeafHash, generateKeyPair, signHead, type Checkpoint, type HeadSignature, type LogHead, type TrustPolicy } from '../../proofs/checkpoint.js';
import { Reason } from '../../proofs/errors.js';
import { LogTree } from '../../proofs/log.js';
import { verifyCertificate } from '../../proofs/lsm_proof.js';
import { signerSetHash, type SignerSet } from '../../proofs/signer_set.js';

const keys = Array.from({ length: 10 }, (_, i) => generateKeyPair(new Uint8Array(32).fill(i + 11)));
const set = (quorum: number, ids: number[]): SignerSet => ({ quorum, members: ids.map((id) => ({ id, publicKey: keys[id].publicKey })) });
const A = set(2, [1, 2, 3]);

/** A checkpoint log: checkpoint i commits to `sets[i]`; the head of size i + 1 is signed by `signers[i]`. */
class Log {
  readonly cps: Checkpoint[] = [];
  readonly sets: SignerSet[] = [];
  readonly sigs: HeadSignature[][] = [];
  readonly tree = new LogTree();
  /** Indexes whose `setChange` certificate the server leaves out. */
  readonly hideChange = new Set<number>();
  /** Replaces the checkpoint served at an index (not the log's). */
  readonly served = new Map<number, Checkpoint>();

  add(s: SignerSet, by: number[], v1 = false): this {
    const index = this.cps.length;
    const prev = this.cps[index - 1];
    const c: Checkpoint = { index, seq: index * 10, masterRoot: new Uint8Array(32).fill(index + 1) };
    if (!v1) {
      c.time = 1000 + index;
      c.signerSetHash = signerSetHash(s);
    }
    if (prev) c.prevCheckpointHash = checkpointHash(prev);
    this.tree.append(checkpointLeafHash(c));
    const head = this.head(index + 1);
    this.cps.push(c);
    this.sets.push(s);
    this.sigs.push(by.map((id) => signHead(keys[id].privateKey, head)));
    return this;
  }

  head(size = this.cps.length): LogHead {
    return { size, root: this.tree.root(size) };
  }

  /** The answer of a verified call at the head of `size`, as the server sends it. */
  answer(size = this.cps.length): Answer {
    const c = this.cps[size - 1];
    const a: Answer = { head: this.head(size), signatures: this.sigs[size - 1], checkpoint: c };
    if (c.signerSetHash) a.signers = this.sets[size - 1];
    return a;
  }

  /** Checks the answer's checkpoint is the head's last leaf, as a proof's certificate does. */
  verify(size = this.cps.length): (policy: TrustPolicy) => void {
    return (policy) => {
      const a = this.answer(size);
      const r = verifyCertificate({ ...a, inclusion: this.tree.inclusionProof(size - 1, size) }, { trust: policy });
      if (!r.ok) throw VerificationError.from(r);
    };
  }

  isChange(i: number): boolean {
    const h = this.cps[i].signerSetHash;
    const p = this.cps[i - 1]?.signerSetHash;
    return h !== undefined && !(p !== undefined && Buffer.from(p).equals(Buffer.from(h)));
  }

  /** The set changes at `from .. size - 1` as `GET /v1/checkpoints/set-changes` lists them, in pages of `pageSize`. */
  setChanges(from: number, size: number, pageSize: number): SetChangePage {
    const changes: SetChange[] = [];
    let next: number | undefined;
    for (let i = from; i < size; i++) {
      if (!this.isChange(i) || this.hideChange.has(i)) continue;
      if (changes.length === pageSize) {
        next = changes[changes.length - 1].checkpoint.index + 1;
        break;
      }
      const c: SetChange = {
        checkpoint: this.cps[i],
        head: this.head(i + 1),
        signatures: this.sigs[i],
        inclusion: this.tree.inclusionProof(i, i + 1),
        signers: this.sets[i],
        consistency: this.tree.consistencyProof(i + 1, size),
      };
      if (i > 0) c.previous = { checkpoint: this.cps[i - 1], inclusion: this.tree.inclusionProof(i - 1, i + 1), signers: this.cps[i - 1].signerSetHash ? this.sets[i - 1] : undefined };
      changes.push(c);
    }
    return next === undefined ? { changes } : { changes, next };
  }

  /**
   * The server's side: consistency proofs and checkpoints by index (with `setChange` at set
   * changes), at head `size`; with `listPage`, also the list of set changes in pages of that many
   * (`listed`: the `from` of each page asked for; `undefined` pages: a server without the list).
   */
  ctx(size = this.cps.length, listPage?: number | 'absent'): AcceptContext & { fetched: number[]; listed: number[] } {
    const fetched: number[] = [];
    const listed: number[] = [];
    return {
      fetched,
      listed,
      ...(listPage === undefined
        ? {}
        : {
            signerSetChanges: async (from: number, at: number) => {
              listed.push(from);
              return listPage === 'absent' ? undefined : this.setChanges(from, at, listPage);
            },
          }),
      consistency: async (from, to) => this.tree.consistencyProof(from, to),
      keyRotations: async () => [],
      checkpointAt: async (i) => {
        fetched.push(i);
        const c = this.served.get(i) ?? this.cps[i];
        const out: IncludedCheckpoint = { checkpoint: c, head: this.head(size), signatures: this.sigs[size - 1], inclusion: this.tree.inclusionProof(i, size) };
        if (this.isChange(i) && !this.hideChange.has(i)) {
          out.setChange = { checkpoint: c, head: this.head(i + 1), signatures: this.sigs[i], inclusion: this.tree.inclusionProof(i, i + 1), signers: this.sets[i] };
        }
        return out;
      },
    };
  }
}

function keeper(store = new MemoryStateStore(), trust: { ids: number[]; quorum: number } = { ids: [1, 2, 3], quorum: 2 }) {
  return new TrustKeeper({ publicKeys: trust.ids.map((id) => keys[id].publicKey), quorum: trust.quorum }, store, ['http://node'], () => {});
}

async function accept(k: TrustKeeper, log: Log, size = log.cps.length) {
  return k.acceptAnswer(log.answer(size), log.ctx(size), log.verify(size));
}

async function refused(k: TrustKeeper, log: Log, size?: number): Promise<string> {
  const store = (k as unknown as { store: MemoryStateStore }).store;
  const before = JSON.stringify(await store.load(k.id));
  const err = await accept(k, log, size).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(VerificationError);
  expect(JSON.stringify(await store.load(k.id))).toBe(before);
  return (err as VerificationError<string>).reason;
}

const ids = (s: SignerSet | undefined) => s?.members.map((m) => m.id);

describe('signer-set trust', () => {
  it('adopts the set of the first v2 head its configured keys certify, and persists it with the head', async () => {
    const store = new MemoryStateStore();
    const log = new Log().add(A, [1, 2]);
    const r = await accept(keeper(store), log);
    expect(ids(r.signerSet)).toEqual([1, 2, 3]);
    const state = await store.load(keeper(store).id);
    expect(state?.signers?.quorum).toBe(2);
    expect(state?.signers?.members.map((m) => m.id)).toEqual([1, 2, 3]);
    expect(state?.checkpoint?.signerSetHash).toBe(Buffer.from(signerSetHash(A)).toString('hex'));
  });

  it('adding a member: adopted from a head both quorums signed; then the new member counts', async () => {
    const store = new MemoryStateStore();
    const B = set(3, [1, 2, 3, 4]);
    const log = new Log().add(A, [1, 2]).add(B, [1, 2, 4]).add(B, [2, 3, 4]);
    const k = keeper(store);
    await accept(k, log, 1);
    expect(ids((await accept(k, log, 2)).signerSet)).toEqual([1, 2, 3, 4]);
    // Signed by 2, 3, 4: a quorum of B (3) — though 4 is not a configured key.
    await accept(k, log, 3);
    // Across a restart, the adopted set is the trust.
    const again = keeper(store);
    expect(ids(await again.trustedSignerSet())).toEqual([1, 2, 3, 4]);
    expect((await again.policy([])).quorum).toBe(3);
  });

  it('removing a member: the removed key no longer counts', async () => {
    const C = set(2, [1, 2]);
    const log = new Log().add(A, [1, 3]).add(C, [1, 2]);
    const k = keeper();
    await accept(k, log, 1);
    await accept(k, log, 2);
    // Member 3 and 1 sign a later head of set C: 3 is outside the trusted set now.
    log.add(C, [1, 3]);
    expect(await refused(k, log, 3)).toBe(Reason.UNTRUSTED_KEY);
  });

  it('replacing a member (3 by 4): old member 3 signs the change, later heads need the new member', async () => {
    const D = set(2, [1, 2, 4]);
    const log = new Log().add(A, [1, 2]).add(D, [1, 3, 4]).add(D, [2, 4]);
    const k = keeper();
    await accept(k, log, 1);
    await accept(k, log, 2);
    await accept(k, log, 3);
    expect(ids(await k.trustedSignerSet())).toEqual([1, 2, 4]);
  });

  it('a chain of two changes while the client was away: walks back to the trusted set and adopts each in turn', async () => {
    const B = set(3, [1, 2, 3, 4]);
    const E = set(2, [4, 5, 6]);
    // 0: A. 1: A→B (signed by A and B). 2: B. 3: B→E (signed by a quorum of B and of E). 4, 5: E only.
    const log = new Log().add(A, [1, 2]).add(B, [1, 2, 3, 4]).add(B, [2, 3, 4]).add(E, [2, 3, 4, 5]).add(E, [5, 6]).add(E, [4, 6]);
    const k = keeper();
    await accept(k, log, 1);
    const ctx = log.ctx();
    const r = await k.acceptAnswer(log.answer(), ctx, log.verify());
    expect(ids(r.signerSet)).toEqual([4, 5, 6]);
    // The set walk (and the link check after it) fetch exactly the checkpoints between the trusted head and the new one.
    expect([...new Set(ctx.fetched)].sort()).toEqual([1, 2, 3, 4]);
    expect(ids(await k.trustedSignerSet())).toEqual([4, 5, 6]);
  });

  it('refuses the walk when a change lacks its certificate, is certified only by the new set, or does not link', async () => {
    const B = set(3, [1, 2, 3, 4]);
    const E = set(2, [4, 5, 6]);
    const build = () => new Log().add(A, [1, 2]).add(B, [1, 2, 3, 4]).add(E, [2, 3, 4, 5]).add(E, [5, 6]);
    const k = keeper();
    await accept(k, build(), 1);

    const hidden = build();
    hidden.hideChange.add(2);
    expect(await refused(k, hidden)).toBe(Reason.QUORUM_NOT_MET);

    // B → E signed by E alone: B never approved E.
    const unapproved = new Log().add(A, [1, 2]).add(B, [1, 2, 3, 4]).add(E, [4, 5]).add(E, [5, 6]);
    expect(['UNTRUSTED_KEY', 'QUORUM_NOT_MET']).toContain(await refused(k, unapproved));

    // A checkpoint in between that does not link to its successor.
    const relinked = build();
    relinked.served.set(1, { ...relinked.cps[1], seq: 11 });
    expect(await refused(k, relinked)).toBe(Reason.CHAIN_MISMATCH);

    // The honest log is then accepted.
    expect(ids((await accept(k, build())).signerSet)).toEqual([4, 5, 6]);
  });

  it("refuses an attacker's head signed by a made-up set, with or without a made-up change certificate", async () => {
    const M = set(1, [7, 8]);
    const k = keeper();
    await accept(k, new Log().add(A, [1, 2]), 1);
    // Extends the honest log with a checkpoint committing to M, signed by M.
    const attack = new Log().add(A, [1, 2]).add(M, [7, 8]).add(M, [8]);
    expect(await refused(k, attack)).toBe(Reason.UNTRUSTED_KEY);
    // A made-up set that includes one trusted member, which alone is below the trusted quorum.
    const half = new Log().add(A, [1, 2]).add(set(2, [1, 7, 8]), [1, 7, 8]);
    expect(await refused(k, half)).toBe(Reason.UNTRUSTED_KEY);
    expect(ids(await k.trustedSignerSet())).toEqual([1, 2, 3]);
  });

  it('refuses a set that does not hash to the checkpoint, and a set on a v1 checkpoint', async () => {
    const k = keeper();
    const log = new Log().add(A, [1, 2]);
    const wrong = { ...log.answer(), signers: set(2, [1, 2, 4]) };
    await expect(k.acceptAnswer(wrong, log.ctx(), () => {})).rejects.toMatchObject({ reason: Reason.SIGNER_SET_MISMATCH });
    const missing = { ...log.answer(), signers: undefined };
    await expect(k.acceptAnswer(missing, log.ctx(), () => {})).rejects.toMatchObject({ reason: Reason.SIGNER_SET_MISMATCH });
    const v1 = new Log().add(A, [1, 2], true);
    await expect(k.acceptAnswer({ ...v1.answer(), signers: A }, v1.ctx(), () => {})).rejects.toMatchObject({ reason: Reason.SIGNER_SET_MISMATCH });
    expect(await k.trustedHead()).toBeUndefined();
  });

  it('refuses a quorum of the new set that is not a quorum of the old one', async () => {
    const k = keeper();
    const log = new Log().add(A, [1, 2]).add(set(2, [1, 4, 5]), [1, 4, 5]);
    await accept(k, log, 1);
    expect(await refused(k, log)).toBe(Reason.UNTRUSTED_KEY);
  });

  it('v1/v2: a v1 log is trusted under the configured keys and may move to v2; never back from v2 to v1', async () => {
    const k = keeper();
    const log = new Log().add(A, [1, 2], true).add(A, [1, 3]);
    await accept(k, log, 1);
    expect(await k.trustedSignerSet()).toBeUndefined();
    expect(ids((await accept(k, log, 2)).signerSet)).toEqual([1, 2, 3]);
    log.add(A, [1, 2], true);
    expect(await refused(k, log, 3)).toBe(Reason.CHAIN_MISMATCH);
    // A v2 checkpoint whose fields are dropped is another leaf: the certificate's inclusion fails.
    const v2 = new Log().add(A, [1, 2]);
    const stripped = { ...v2.answer(), signers: undefined, checkpoint: { index: 0, seq: 0, masterRoot: v2.cps[0].masterRoot } };
    const verify = (policy: TrustPolicy) => {
      const r = verifyCertificate({ ...stripped, inclusion: [] }, { trust: policy });
      if (!r.ok) throw VerificationError.from(r);
    };
    await expect(keeper().acceptAnswer(stripped, v2.ctx(), verify)).rejects.toMatchObject({ reason: Reason.ROOT_MISMATCH });
  });

  it('far from the trusted head, follows the listed changes page by page; near it, or without the list, walks back', async () => {
    const B = set(3, [1, 2, 3, 4]);
    const E = set(2, [4, 5, 6]);
    const F = set(2, [5, 6, 7]);
    // 0: A. 1: A→B. 2..9: B. 10: B→E. 11..19: E. 20: E→F. 21: F.
    const build = () => {
      const log = new Log().add(A, [1, 2]).add(B, [1, 2, 3, 4]);
      for (let i = 2; i < 10; i++) log.add(B, [1, 2, 3]);
      log.add(E, [2, 3, 4, 5]);
      for (let i = 11; i < 20; i++) log.add(E, [4, 5]);
      return log.add(F, [4, 5, 6]).add(F, [6, 7]);
    };
    const log = build();
    const far = keeper();
    const ctx = log.ctx(log.cps.length, 1);
    const r = await far.acceptAnswer(log.answer(), ctx, log.verify());
    expect(ids(r.signerSet)).toEqual([5, 6, 7]);
    // Pages of one change (0, 1, 10, 20): from 0, then after each change but the last; no checkpoint fetched for the sets.
    expect(ctx.listed).toEqual([0, 1, 2, 11]);
    expect(ctx.fetched.length).toBeLessThanOrEqual(1);

    // A trusted head within BACK_WALK_CHECKPOINTS of the answer: the walk back, no list.
    const near = keeper();
    await near.acceptAnswer(log.answer(18), log.ctx(18, 1), log.verify(18));
    const nearCtx = log.ctx(log.cps.length, 1);
    expect(log.cps.length - 18).toBeLessThanOrEqual(BACK_WALK_CHECKPOINTS);
    expect(ids((await near.acceptAnswer(log.answer(), nearCtx, log.verify())).signerSet)).toEqual([5, 6, 7]);
    expect(nearCtx.listed).toEqual([]);
    expect(nearCtx.fetched.length).toBeGreaterThan(0);

    // A server without the list: the walk back.
    const old = keeper();
    const oldCtx = log.ctx(log.cps.length, 'absent');
    expect(ids((await old.acceptAnswer(log.answer(), oldCtx, log.verify())).signerSet)).toEqual([5, 6, 7]);
    expect(oldCtx.listed).toEqual([0]);
    expect(oldCtx.fetched).toContain(10);

    // A change the list leaves out: refused, nothing stored.
    const hidden = build();
    hidden.hideChange.add(10);
    const store = new MemoryStateStore();
    const k = keeper(store);
    await expect(k.acceptAnswer(hidden.answer(), hidden.ctx(hidden.cps.length, 64), hidden.verify())).rejects.toMatchObject({ reason: Reason.SIGNER_SET_MISMATCH });
    expect(await store.load(k.id)).toBeUndefined();
  });
});
