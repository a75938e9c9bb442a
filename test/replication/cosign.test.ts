/**
 * Co-signing of checkpoint-log heads (docs/replication.md § Co-signing) over three engines in
 * external-log mode, without Raft: the test is the log. Every replica is fed the same command
 * stream with increasing log indexes through its own `CommandApplier`; the cosign commands the
 * replicas hand to their `proposeCosign` callback are appended to that stream in one order and
 * fed to all three, as the group would commit them.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import { ProofDB, ProofKVError, type DBOptions } from '../../src/index.js';
import { CommandApplier, type WriteCommand, type WriteOutcome } from '../../server/write_path.js';
import { RaftSnapshots, SNAPSHOT_HOLD_MS } from '../../server/raft_snapshot.js';
import { checkSnapshotDescriptor, decodeSnapshotDescriptor, servedSnapshotOf, snapshotDescriptor, type SessionStore, type Transport } from '../../src/replication/index.js';
import { signHead, verifyCheckpoint, type LogHead } from '../../proofs/checkpoint.js';
import { verifyGetProof } from '../../proofs/lsm_proof.js';
import { describeDivergence, type CosignCommand, type SignerSet } from '../../src/replication/cosign.js';
import type { CosignResult } from '../../src/proof/checkpointer.js';
import { powerLossCopy, tempDir } from '../engine/harness.js';
import { mulberry32 } from '../support/prng.js';

const SEED = Number(process.env.COSIGN_SEED ?? 1130);
const OPTS: DBOptions = {
  writeAheadLog: 'external',
  compactionThread: 'inline',
  writeBufferSize: 4096,
  targetFileSize: 4096,
  blockSize: 256,
  level0CompactionTrigger: 2,
  compactionDelay: () => new Promise((res) => setImmediate(res)),
};
const te = new TextEncoder();
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

interface Replica {
  id: number;
  dir: string;
  db: ProofDB;
  applier: CommandApplier;
  /** Cosign results this replica's applier reported, in order. */
  results: CosignResult[];
  /** Lines this replica would log for ignored signatures and divergence. */
  logged: string[];
}

/**
 * A replica's engine. The test's log stands for a Raft log that syncs (every entry durable before
 * it is applied), so the checkpoint log defers its syncs, as on the Raft path.
 */
async function openReplica(dir: string): Promise<ProofDB> {
  const db = await ProofDB.open(dir, OPTS);
  await db.deferCheckpointLogSyncs(true);
  return db;
}

/** Three replicas (ids 1..3, quorum 2) fed one log; the test appends to `log` and applies it. */
class Trio {
  readonly replicas: Replica[] = [];
  /** The log: entry i (from 1) is `log[i - 1]`. */
  readonly log: WriteCommand[] = [];
  /**
   * Cosign commands proposed by the replicas and not yet in the log, by proposer id (stable: one
   * replica's own proposals stay in their order). The replicas apply each entry concurrently and
   * sync their checkpoint logs in the threadpool, so which one proposes first is a matter of
   * timing; in a cluster the log orders them, here the test does, the same way every run.
   */
  proposed: CosignCommand[] = [];
  set!: SignerSet;

  static async open(): Promise<Trio> {
    const t = new Trio();
    const root = tempDir('proofkv-cosign-');
    cleanups.push(root.cleanup);
    const keys: Uint8Array[] = [];
    for (let id = 1; id <= 3; id++) {
      const dir = path.join(root.dir, `node${id}`);
      const db = await openReplica(dir);
      keys.push(db.publicKey());
      t.replicas.push({ id, dir, db, applier: undefined as unknown as CommandApplier, results: [], logged: [] });
    }
    t.set = { quorum: 2, members: keys.map((publicKey, i) => ({ id: i + 1, publicKey })) };
    for (const r of t.replicas) t.wire(r);
    return t;
  }

  private wire(r: Replica): void {
    r.applier = new CommandApplier(r.db, {
      signers: () => this.set,
      proposeCosign: (cmd) => {
        this.proposed.push(cmd);
        this.proposed.sort((a, b) => a.nodeId - b.nodeId);
      },
      onCosign: (_cmd, res) => {
        r.results.push(res);
        if (res.divergence) r.logged.push(describeDivergence(res.divergence));
        else if (res.verdict !== 'accepted' && res.verdict !== 'duplicate') r.logged.push(`cosign ignored: ${res.verdict}`);
      },
    });
  }

  /** Appends `cmd` to the log and applies it to every replica (or `to`), returning the outcomes. */
  async append(cmd: WriteCommand | ((r: Replica) => WriteCommand), to = this.replicas): Promise<WriteOutcome[]> {
    this.log.push(typeof cmd === 'function' ? cmd(this.replicas[0]) : cmd);
    const index = this.log.length;
    return Promise.all(to.map((r) => r.applier.execute(typeof cmd === 'function' ? cmd(r) : cmd, index)));
  }

  /** Appends the proposed cosigns (those `keep` accepts) in the order of {@link proposed}, then forgets the rest. */
  async commitCosigns(keep: (c: CosignCommand) => boolean = () => true): Promise<void> {
    const batch = this.proposed.filter(keep);
    this.proposed = [];
    for (const c of batch) await this.append(c);
  }

  /** Closes and reopens replica `i`, re-applying the log after its durable index (what the group does). */
  async restart(i: number): Promise<Replica> {
    const r = this.replicas[i];
    await r.db.close();
    r.db = await openReplica(r.dir);
    this.wire(r);
    const { durable } = r.db.logIndex();
    for (let index = durable + 1; index <= this.log.length; index++) await r.applier.execute(this.log[index - 1], index);
    return r;
  }

  /**
   * Replica `i` after a power loss: its directory as it is now (a copy), except that `CHECKPOINTS`
   * keeps only its synced bytes (external-log mode writes its records at once and syncs them
   * before the engine's recorded log index passes them); reopened, it re-applies the log after
   * its durable index. The old directory is abandoned.
   */
  async powerLoss(i: number): Promise<Replica> {
    const r = this.replicas[i];
    const synced = r.db._checkpointLogSyncedLength();
    const copy = `${r.dir}-power-loss-${++this.losses}`;
    powerLossCopy(r.dir, copy, synced);
    await r.db.close();
    r.dir = copy;
    r.db = await openReplica(r.dir);
    this.wire(r);
    const { durable } = r.db.logIndex();
    for (let index = durable + 1; index <= this.log.length; index++) await r.applier.execute(this.log[index - 1], index);
    return r;
  }
  private losses = 0;

  async close(): Promise<void> {
    for (const r of this.replicas) await r.db.close();
  }
}

/** A batch of puts (seeded), ending with a marker put so each batch changes the state. */
function batch(r: () => number, i: number): WriteCommand {
  const ops: Extract<WriteCommand, { type: 'batch' }>['ops'] = [];
  for (let j = 0; j < 1 + Math.floor(r() * 4); j++) ops.push({ op: 'put', key: te.encode(`key-${Math.floor(r() * 20)}`), value: te.encode(`v${i}-${j}-${'x'.repeat(Math.floor(r() * 60))}`) });
  ops.push({ op: 'put', key: te.encode('marker'), value: te.encode(String(i)) });
  return { type: 'batch', ops };
}

const trust = (set: SignerSet) => ({ publicKeys: set.members.map((m) => m.publicKey), quorum: set.quorum });

/** Everything a client is served about the certified head, as comparable text. */
function served(db: ProofDB) {
  const l = db.latestCheckpoint();
  return { checkpoint: { ...l.checkpoint, masterRoot: hex(l.checkpoint.masterRoot), prevCheckpointHash: l.checkpoint.prevCheckpointHash && hex(l.checkpoint.prevCheckpointHash) }, head: { size: l.head.size, root: hex(l.head.root) }, signatures: l.signatures.map((g) => hex(g.publicKey) + hex(g.signature)) };
}

async function code(p: Promise<unknown> | (() => unknown)): Promise<string | undefined> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    return (err as ProofKVError).code;
  }
  return undefined;
}

describe(`co-signing checkpoint heads (COSIGN_SEED=${SEED})`, () => {
  it('three replicas fed one log certify identical heads with identical certificates; times come from the log', async () => {
    const t = await Trio.open();
    const r = mulberry32(SEED);
    try {
      let i = 0;
      for (let round = 0; round < 4; round++) {
        for (let k = 0; k < 5 + Math.floor(r() * 10); k++) await t.append(batch(r, i++));
        // Round 2's command carries an earlier time: the checkpoint keeps the previous time.
        const time = round === 2 ? 1000 : 1_700_000_100_000 + round * 1000;
        const outs = await t.append({ type: 'checkpoint', time });
        const taken = outs.map((o) => (o.type === 'checkpoint' ? o.checkpoint : undefined)!);
        expect(taken.map((c) => c.time)).toEqual(Array(3).fill(round === 2 ? 1_700_000_101_000 : time));
        // Pending: each replica signed its head and proposed it; nothing new is served yet.
        expect(taken.every((c) => !c.certified && c.cosign)).toBe(true);
        expect(new Set(taken.map((c) => hex(c.head.root))).size).toBe(1);
        for (const rep of t.replicas) {
          if (round === 0) expect(await code(() => rep.db.latestCheckpoint())).toBe('CHECKPOINT_UNAVAILABLE');
          else expect(rep.db.latestCheckpoint().head.size).toBe(round);
          expect(await code(rep.db.getWithProof('marker', { checkpoint: round }))).toBe('CHECKPOINT_UNAVAILABLE');
        }
        expect(t.proposed.map((c) => c.nodeId)).toEqual([1, 2, 3]);
        await t.commitCosigns();
        const views = t.replicas.map((rep) => served(rep.db));
        expect(views[1]).toEqual(views[0]);
        expect(views[2]).toEqual(views[0]);
        expect(views[0].head.size).toBe(round + 1);
        // The quorum was met by members 1 and 2 (log order); 3's signature came after: stale.
        expect(t.replicas.map((rep) => rep.db.certification().signers)).toEqual([[1, 2], [1, 2], [1, 2]]);
        expect(t.replicas.map((rep) => rep.results.slice(-3).map((x) => x.verdict))).toEqual(Array(3).fill(['accepted', 'accepted', 'stale']));
        const l = t.replicas[0].db.latestCheckpoint();
        expect(verifyCheckpoint(l.head, l.signatures, trust(t.set)).ok).toBe(true);
        // Every replica serves proofs against the certified checkpoint, and they verify with quorum trust.
        for (const rep of t.replicas) {
          const p = await rep.db.getWithProof('marker');
          expect(verifyGetProof(p.proof, { key: te.encode('marker') }, { trust: trust(t.set) }).ok).toBe(true);
        }
      }
    } finally {
      await t.close();
    }
  });

  it('two of three certify when one replica\'s cosign is missing; one alone does not', async () => {
    const t = await Trio.open();
    const r = mulberry32(SEED + 1);
    try {
      for (let i = 0; i < 8; i++) await t.append(batch(r, i));
      await t.append({ type: 'checkpoint', time: 5 });
      await t.commitCosigns((c) => c.nodeId === 3);
      for (const rep of t.replicas) expect(await code(() => rep.db.latestCheckpoint())).toBe('CHECKPOINT_UNAVAILABLE');
      for (const rep of t.replicas) expect(rep.db.certification()).toMatchObject({ certifiedSize: 0, latestSize: 1 });
      // Member 3 proposes again (e.g. a restart); 2's arrives, 1's never does.
      const again = t.replicas[2].db.ownCosign();
      expect(again).toBeUndefined(); // its signature is already in the log
      for (let i = 8; i < 12; i++) await t.append(batch(r, i));
      await t.append({ type: 'checkpoint', time: 6 });
      await t.commitCosigns((c) => c.nodeId !== 1);
      const views = t.replicas.map((rep) => served(rep.db));
      expect(views[0].head.size).toBe(2);
      expect(views[1]).toEqual(views[0]);
      expect(views[2]).toEqual(views[0]);
      expect(t.replicas[0].db.certification().signers).toEqual([2, 3]);
      // Member 1 (whose cosign is missing) serves the certificate of the others.
      const l = t.replicas[0].db.latestCheckpoint();
      expect(l.signatures.map((g) => hex(g.publicKey))).toEqual([hex(t.set.members[1].publicKey), hex(t.set.members[2].publicKey)]);
      expect(verifyCheckpoint(l.head, l.signatures, trust(t.set)).ok).toBe(true);
    } finally {
      await t.close();
    }
  });

  it('forged, wrong-key, unknown, malformed, duplicated, old and future cosigns are ignored and counted', async () => {
    const t = await Trio.open();
    const r = mulberry32(SEED + 2);
    try {
      for (let i = 0; i < 6; i++) await t.append(batch(r, i));
      await t.append({ type: 'checkpoint', time: 1 });
      const [c1, c2] = t.proposed;
      t.proposed = [];
      const head: LogHead = { size: c1.size, root: c1.root };
      const attacker = ed25519.keygen();
      const forged: CosignCommand = { ...c2, signature: signHead(attacker.secretKey, head).signature };
      const wrongKey: CosignCommand = { ...c1, nodeId: 2 }; // member 1's signature claimed for member 2
      const unknown: CosignCommand = { ...c1, nodeId: 9 };
      const malformed = { ...c1, root: c1.root.subarray(0, 31) } as CosignCommand;
      const future: CosignCommand = { ...c1, size: 7 };
      for (const c of [forged, wrongKey, unknown, malformed, future, c1, c1]) await t.append(c);
      for (const rep of t.replicas) {
        expect(rep.results.map((x) => x.verdict)).toEqual(['bad-signature', 'bad-signature', 'unknown-signer', 'malformed', 'unknown-head', 'accepted', 'duplicate']);
        expect(await code(() => rep.db.latestCheckpoint())).toBe('CHECKPOINT_UNAVAILABLE'); // one valid signer: no quorum
        expect(rep.db.cosignCounters()).toMatchObject({ 'bad-signature': 2, 'unknown-signer': 1, malformed: 1, 'unknown-head': 1, accepted: 1, duplicate: 1 });
        expect(rep.logged).toEqual(['cosign ignored: bad-signature', 'cosign ignored: bad-signature', 'cosign ignored: unknown-signer', 'cosign ignored: malformed', 'cosign ignored: unknown-head']);
      }
      await t.append(c2);
      for (const rep of t.replicas) expect(rep.db.certification().signers).toEqual([1, 2]);
      // A signature on an older head of the same log: stale, certificate unchanged.
      for (let i = 6; i < 9; i++) await t.append(batch(r, i));
      await t.append({ type: 'checkpoint', time: 2 });
      t.proposed = [];
      await t.append(c2);
      for (const rep of t.replicas) {
        expect(rep.results.at(-1)!.verdict).toBe('stale');
        expect(rep.db.certification()).toMatchObject({ certifiedSize: 1, latestSize: 2, signers: [1, 2] });
      }
    } finally {
      await t.close();
    }
  });

  it('a changed signer set is certified only by a quorum of the new set and of the previous one', async () => {
    const t = await Trio.open();
    const r = mulberry32(SEED + 5);
    try {
      for (let i = 0; i < 6; i++) await t.append(batch(r, i));
      await t.append({ type: 'checkpoint', time: 1 });
      await t.commitCosigns();
      // Members 2 and 3 are replaced by 4 and 5 (keys held by the test).
      const k4 = ed25519.keygen();
      const k5 = ed25519.keygen();
      const old = t.set;
      t.set = { quorum: 2, members: [old.members[0], { id: 4, publicKey: k4.publicKey }, { id: 5, publicKey: k5.publicKey }] };
      for (let i = 6; i < 10; i++) await t.append(batch(r, i));
      await t.append({ type: 'checkpoint', time: 2 });
      // 1 signs as a member of both sets, 2 and 3 as members of the previous set only.
      expect(t.proposed.map((c) => c.nodeId)).toEqual([1, 2, 3]);
      const [c1, c2] = t.proposed;
      t.proposed = [];
      const head: LogHead = { size: c1.size, root: c1.root };
      const c4: CosignCommand = { ...c1, nodeId: 4, signature: signHead(k4.secretKey, head).signature };
      await t.append(c1);
      await t.append(c4);
      // The new set's quorum (1, 4) is met, the previous set's (2 of 1, 2, 3) is not.
      for (const rep of t.replicas) expect(rep.db.certification()).toMatchObject({ certifiedSize: 1, latestSize: 2 });
      await t.append(c2);
      for (const rep of t.replicas) expect(rep.db.certification()).toMatchObject({ certifiedSize: 2, signers: [1, 4, 2] });
      const l = t.replicas[0].db.latestCheckpoint();
      expect(verifyCheckpoint(l.head, l.signatures, { ...trust(t.set), allowUntrusted: true }).ok).toBe(true);
      expect(verifyCheckpoint(l.head, l.signatures, { ...trust(old), allowUntrusted: true }).ok).toBe(true);
    } finally {
      await t.close();
    }
  });

  it('a set change overtaken by a newer certified head: its members propose their signatures again until its own certificate is complete', async () => {
    const t = await Trio.open();
    const r = mulberry32(SEED + 6);
    try {
      for (let i = 0; i < 4; i++) await t.append(batch(r, i));
      await t.append({ type: 'checkpoint', time: 1 });
      await t.commitCosigns();
      // Member 3 is replaced by 4 (key held by the test): checkpoint 1 changes the set.
      const k4 = ed25519.keygen();
      const old = t.set;
      t.set = { quorum: 2, members: [old.members[0], old.members[1], { id: 4, publicKey: k4.publicKey }] };
      await t.append(batch(r, 4));
      await t.append({ type: 'checkpoint', time: 2 });
      const changeEntry = t.log.length;
      // Only member 1's signature on the change reaches the log (the others' proposals were lost).
      const change = t.proposed.find((c) => c.nodeId === 1)!;
      t.proposed = [];
      await t.append(change);
      // A newer head is certified by the new set alone (1, 2; then 4's signature too).
      await t.append(batch(r, 5));
      await t.append({ type: 'checkpoint', time: 3 });
      await t.commitCosigns();
      for (const rep of t.replicas) expect(rep.db.certification()).toMatchObject({ certifiedSize: 3 });
      // Every replica tells the same: the change (head size 2) is short of a quorum in the log.
      for (const rep of t.replicas) expect(rep.db.incompleteSetChanges()).toEqual([2]);
      // ... at the log entry that asked for it: the log is kept from there (docs/replication.md).
      for (const rep of t.replicas) expect(rep.db.incompleteSetChangeLogIndex()).toBe(changeEntry);
      // The Raft snapshot a leader records now, at the certified checkpoint 2, carries the change's
      // certificate as it is: a member that knows only the previous set refuses it.
      const leader = t.replicas[0].db;
      const snapIndex = leader.servedCheckpointRecord()!.appliedIndex!;
      const recorded = snapshotDescriptor(leader, { index: snapIndex }).data;
      const toPrevious = (data: Uint8Array | undefined) => code(() => checkSnapshotDescriptor(decodeSnapshotDescriptor(data!), { signerSet: old }));
      expect(await toPrevious(recorded)).toBe('SNAPSHOT_UNTRUSTED');
      // What the leader's state machine sends (the session store is not used for it). Chunk reads
      // come through the transport's reader; the clock times the holds of fetched snapshots.
      let readChunk!: (index: number, name: string, offset: number, length: number) => Promise<Uint8Array>;
      let now = 0;
      const transport = { onSnapshotRead: (f: typeof readChunk) => { readChunk = f; } } as unknown as Transport;
      const snapshots = new RaftSnapshots(leader, {} as SessionStore, { transport, now: () => now, trust: () => ({ signerSet: old }), maxSessionBytes: 1 << 20 });
      // The change's own certificate lacks the previous set's quorum (only 1 of 1, 2, 3 signed there):
      // members 2 and 3 hold a signature on it in their own records, and propose it again.
      const again = t.replicas.flatMap((rep) => rep.db.setChangeCosigns());
      expect(again.map((c) => [c.nodeId, c.size])).toEqual([[2, 2], [3, 2]]);
      for (const c of again) expect(verifyCheckpoint({ size: c.size, root: c.root }, [{ publicKey: t.set.members.concat(old.members).find((m) => m.id === c.nodeId)!.publicKey, signature: c.signature }], { ...trust(old), quorum: 1 }).ok).toBe(true);
      t.proposed = [];
      for (const rep of t.replicas) rep.applier.resumeCosign();
      expect(t.proposed.map((c) => [c.nodeId, c.size])).toEqual([[2, 2], [3, 2]]);
      await t.commitCosigns();
      // Complete now (the previous set's 1, 2, 3 and the new set's 1, 2): nothing more to propose.
      for (const rep of t.replicas) expect(rep.db.setChangeCosigns()).toEqual([]);
      for (const rep of t.replicas) expect(rep.db.incompleteSetChanges()).toEqual([]);
      for (const rep of t.replicas) expect(rep.db.incompleteSetChangeLogIndex()).toBeUndefined();
      const set2 = t.replicas[0].db.signerSetChanges(0, 3, 10, 1 << 20).changes.find((c) => c.checkpoint.index === 1)!;
      expect(verifyCheckpoint(set2.head, set2.signatures, trust(old)).ok).toBe(true);
      // The snapshot recorded before is still refused; sent now (the group's `snapshotToSend`), it
      // carries the completed certificate and the member behind the change trusts it. The rest of
      // the descriptor is what was recorded.
      expect(await toPrevious(recorded)).toBe('SNAPSHOT_UNTRUSTED');
      const sent = snapshots.snapshotToSend(snapIndex, recorded);
      expect(await toPrevious(sent)).toBeUndefined();
      const [a, b] = [decodeSnapshotDescriptor(recorded), decodeSnapshotDescriptor(sent!)];
      expect({ ...b, setChanges: undefined }).toEqual({ ...a, setChanges: undefined });
      expect(b.setChanges!.find((c) => c.checkpoint.index === 1)!.signatures.length).toBeGreaterThan(a.setChanges!.find((c) => c.checkpoint.index === 1)!.signatures.length);
      // Data that does not decode, or is of another index, goes out as recorded.
      const junk = new Uint8Array([1, 2, 3]);
      expect(snapshots.snapshotToSend(snapIndex, junk)).toBe(junk);
      expect(snapshots.snapshotToSend(snapIndex + 1, recorded)).toBe(recorded);

      // Sent, it is held (as a member's first chunk read would hold it). A newer checkpoint is then
      // certified, and served before the leader records it.
      const [name] = [...servedSnapshotOf(leader).files.keys()];
      expect(snapshots.heldSnapshots()).toEqual([snapIndex]);
      await t.append(batch(r, 6));
      await t.append({ type: 'checkpoint', time: 4 });
      await t.commitCosigns();
      expect(servedSnapshotOf(leader).index).toBeGreaterThan(snapIndex);
      // Held for the member it was sent to: sent as recorded (its tables are still served).
      expect(snapshots.snapshotToSend(snapIndex, recorded)).toBe(recorded);
      expect((await readChunk(snapIndex, name, 0, 1)).length).toBe(1);
      // No chunk read for the hold's time: let go, its tables no longer served. Sent, it would be
      // fetched and refused; nothing is sent until the newer one is recorded.
      now += SNAPSHOT_HOLD_MS;
      expect(snapshots.snapshotToSend(snapIndex, recorded)).toBeUndefined();
      expect(await code(readChunk(snapIndex, name, 0, 1))).toBe('SNAPSHOT_UNAVAILABLE');
    } finally {
      await t.close();
    }
  });

  it('a restart in the middle of collecting, and after certifying, serves the same certificate; re-applied cosigns are idempotent', async () => {
    const t = await Trio.open();
    const r = mulberry32(SEED + 3);
    try {
      for (let i = 0; i < 10; i++) await t.append(batch(r, i));
      await t.append({ type: 'checkpoint', time: 10 });
      const [c1, c2, c3] = t.proposed;
      t.proposed = [];
      await t.append(c3);
      // Replica 1 restarts with its own signature not yet in the log: it proposes it again.
      const r1 = await t.restart(0);
      const again = r1.db.ownCosign();
      expect(again && { ...again, root: hex(again.root), signature: hex(again.signature) }).toEqual({ ...c1, root: hex(c1.root), signature: hex(c1.signature) });
      r1.applier.resumeCosign();
      expect(t.proposed.length).toBe(1);
      t.proposed = [];
      await t.append(c1);
      const before = t.replicas.map((rep) => served(rep.db));
      expect(before[0].head.size).toBe(1);
      expect(t.replicas[0].db.certification().signers).toEqual([3, 1]);
      // Restart every replica: the log after each one's durable index (the cosigns) is re-applied.
      for (let i = 0; i < 3; i++) {
        const rep = await t.restart(i);
        expect(served(rep.db)).toEqual(before[i]);
        expect(rep.db.certification().signers).toEqual([3, 1]);
        const p = await rep.db.getWithProof('marker');
        expect(verifyGetProof(p.proof, { key: te.encode('marker') }, { trust: trust(t.set) }).ok).toBe(true);
      }
      // The late third signature does not change the certificate, before or after a restart.
      await t.append(c2);
      await t.restart(1);
      expect(t.replicas.map((rep) => served(rep.db))).toEqual(before);
    } finally {
      await t.close();
    }
  });

  it("a power loss that drops the unsynced tail of CHECKPOINTS (checkpoint, intent and cosign records) serves the same certificate after the log's re-apply", async () => {
    const t = await Trio.open();
    const r = mulberry32(SEED + 5);
    const cpFile = (rep: Replica) => path.join(rep.dir, 'CHECKPOINTS');
    try {
      for (let i = 0; i < 10; i++) await t.append(batch(r, i));
      await t.append({ type: 'checkpoint', time: 10 });
      await t.commitCosigns();
      const first = t.replicas.map((rep) => served(rep.db));
      expect(first[0].head.size).toBe(1);
      // The checkpoint's record and its cosigns are written, not synced: the next install syncs them.
      for (const rep of t.replicas) expect(rep.db._checkpointLogSyncedLength()).toBeLessThan(fs.statSync(cpFile(rep)).size);
      for (let i = 0; i < 3; i++) {
        const rep = await t.powerLoss(i);
        expect(served(rep.db)).toEqual(first[i]);
        expect(rep.db.certification().signers).toEqual(t.replicas[0].db.certification().signers);
      }
      // A second checkpoint: its flush's install raises the recorded index past the first one's
      // cosign entries, so those records are synced before it; then a power loss again.
      for (let i = 10; i < 20; i++) await t.append(batch(r, i));
      await t.append({ type: 'checkpoint', time: 20 });
      await t.commitCosigns();
      const second = t.replicas.map((rep) => served(rep.db));
      expect(second[0].head.size).toBe(2);
      for (let i = 0; i < 3; i++) {
        const rep = await t.powerLoss(i);
        expect(served(rep.db)).toEqual(second[i]);
        const p = await rep.db.getWithProof('marker');
        expect(verifyGetProof(p.proof, { key: te.encode('marker') }, { trust: trust(t.set) }).ok).toBe(true);
        // Every checkpoint is there, the first one's certificate too.
        expect(rep.db.checkpointAt(0).checkpoint).toEqual(t.replicas[(i + 1) % 3].db.checkpointAt(0).checkpoint);
      }
      expect(t.replicas.map((rep) => served(rep.db))).toEqual(second);
    } finally {
      await t.close();
    }
  });

  it('a replica whose table was damaged by a corrupted value enters DIVERGENCE; the other two stay certified', async () => {
    const t = await Trio.open();
    const r = mulberry32(SEED + 4);
    try {
      for (let i = 0; i < 6; i++) await t.append(batch(r, i));
      await t.append({ type: 'checkpoint', time: 1 });
      await t.commitCosigns();
      // Replica 3 applies one entry with a flipped bit in a value (silent corruption of its copy).
      const good = batch(r, 100);
      await t.append((rep) => {
        if (rep.id !== 3 || good.type !== 'batch') return good;
        const ops = good.ops.map((op) => ({ ...op }));
        const v = Uint8Array.from((ops[0] as { value: Uint8Array }).value);
        v[0] ^= 1;
        (ops[0] as { value: Uint8Array }).value = v;
        return { ...good, ops };
      });
      for (let i = 7; i < 10; i++) await t.append(batch(r, i));
      await t.append({ type: 'checkpoint', time: 2 });
      const heads = t.proposed.map((c) => hex(c.root));
      expect(heads[0]).toBe(heads[1]);
      expect(heads[2]).not.toBe(heads[0]);
      await t.commitCosigns();
      const [a, b, c] = t.replicas;
      expect(served(a.db)).toEqual(served(b.db));
      expect(a.db.certification()).toMatchObject({ certifiedSize: 2, signers: [1, 2] });
      expect(a.results.at(-1)!.verdict).toBe('conflict');
      expect(a.db.divergence()).toBeUndefined();
      const d = c.db.divergence()!;
      expect(d).toBeDefined();
      expect({ size: d.size, own: hex(d.ownRoot), quorum: hex(d.quorumRoot), signers: d.signers }).toEqual({ size: 2, own: heads[2], quorum: heads[0], signers: [1, 2] });
      // Round 1: member 3's signature came after the quorum (stale). Round 2: member 1's root
      // conflicts, member 2's makes a quorum on it (DIVERGENCE), its own comes after (ignored).
      expect(c.logged).toEqual([
        'cosign ignored: stale',
        'cosign ignored: conflict',
        `DIVERGENCE at checkpoint log size 2: own root ${heads[2]}, quorum root ${heads[0]} signed by members 1, 2`,
        'cosign ignored: diverged',
      ]);
      expect(c.db.cosignCounters().conflict).toBe(2);
      // It serves no proofs and refuses client writes; it still follows the log but signs nothing.
      expect(await code(c.db.getWithProof('marker'))).toBe('DIVERGED');
      expect(await code(c.applier.execute({ type: 'put', key: te.encode('k'), value: te.encode('v') }))).toBe('DIVERGED');
      expect(await code(() => c.applier.refuseIfDiverged())).toBe('DIVERGED');
      expect(await code(a.applier.execute({ type: 'checkpoint', time: 3 }, t.log.length + 1))).toBeUndefined();
      t.log.push({ type: 'checkpoint', time: 3 });
      await b.applier.execute({ type: 'checkpoint', time: 3 }, t.log.length);
      await c.applier.execute({ type: 'checkpoint', time: 3 }, t.log.length);
      expect(t.proposed.map((x) => x.nodeId)).toEqual([1, 2]); // the diverged replica proposes nothing
      await t.commitCosigns();
      expect(a.db.certification().certifiedSize).toBe(3);
      expect(served(b.db)).toEqual(served(a.db));
      expect(c.results.slice(-2).map((x) => x.verdict)).toEqual(['diverged', 'diverged']);
      // The divergence survives a restart until an operator replaces the data.
      const c2 = await t.restart(2);
      const dd = c2.db.divergence()!;
      expect({ size: dd.size, own: hex(dd.ownRoot), quorum: hex(dd.quorumRoot), signers: dd.signers }).toEqual({ size: 2, own: heads[2], quorum: heads[0], signers: [1, 2] });
      expect(await code(c2.db.getWithProof('marker'))).toBe('DIVERGED');
    } finally {
      await t.close();
    }
  });

  it('a one-member node certifies each checkpoint with its own signature at once and proposes nothing', async () => {
    const root = tempDir('proofkv-cosign-solo-');
    cleanups.push(root.cleanup);
    for (const opts of [OPTS, {}] as DBOptions[]) {
      const dir = path.join(root.dir, opts.writeAheadLog ?? 'journal');
      const db = await ProofDB.open(dir, opts);
      const proposed: CosignCommand[] = [];
      const applier = new CommandApplier(db, { proposeCosign: (c) => proposed.push(c) });
      const external = opts.writeAheadLog === 'external';
      try {
        await applier.execute({ type: 'put', key: te.encode('a'), value: te.encode('1') }, external ? 1 : undefined);
        const o = await applier.execute({ type: 'checkpoint', time: 42 }, external ? 2 : undefined);
        if (o.type !== 'checkpoint') throw new Error('unexpected outcome');
        expect(o.checkpoint).toMatchObject({ certified: true, time: 42 });
        expect(o.checkpoint.cosign).toBeUndefined();
        expect(proposed).toEqual([]);
        const l = db.latestCheckpoint();
        expect(l.head.size).toBe(1);
        expect(verifyCheckpoint(l.head, l.signatures, { publicKeys: [db.publicKey()], quorum: 1 }).ok).toBe(true);
        expect(db.certification()).toMatchObject({ certifiedSize: 1, latestSize: 1, time: 42 });
      } finally {
        await db.close();
      }
      const re = await ProofDB.open(dir, opts);
      try {
        expect(re.latestCheckpoint().head.size).toBe(1);
        expect(fs.existsSync(path.join(dir, 'CHECKPOINTS'))).toBe(true);
      } finally {
        await re.close();
      }
    }
  });
});
