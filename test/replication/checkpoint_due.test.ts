/**
 * `RaftWritePath.checkpointDue()`: when a cluster member's checkpoint timer must propose a
 * checkpoint although nothing was written since the last certified one (docs/replication.md §
 * Membership, *Set changes*, and § Weak points).
 *
 * - A member restarted between applying its latest checkpoint and seeing it certified does not
 *   apply that checkpoint's entry again (it is at or below the engine's durable index): the
 *   session table captured at it comes from disk (`CaptureStore`), and the member records the
 *   checkpoint as its Raft snapshot once it is certified.
 * - `snapshot`: when that capture is lost too (a crash before it was written, a damaged file), the
 *   member cannot record the checkpoint, and would offer members far behind an older snapshot
 *   whose tables it no longer serves; its timer proposes the next checkpoint, which clears it.
 * - `set-change`: the voters changed since the latest checkpoint (the checkpoint that records the
 *   new signer set is due), and a membership change waits until it is certified
 *   (`setChangePending`).
 *
 * Full-stack members (real engines under the real write path) on the seeded simulator.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { captureFileName, decodeCapture, encodeCapture } from '../../src/replication/index.js';
import { EPOCH, FullCluster } from './fullstack_cluster.js';

const te = new TextEncoder();
const clusters: FullCluster[] = [];
afterEach(async () => {
  for (const c of clusters.splice(0)) await c.close();
});

async function open(seed: number): Promise<FullCluster> {
  const c = await FullCluster.open({ seed, n: 3 });
  clusters.push(c);
  for (const id of c.ids()) await c.start(id);
  expect(await c.sim.runUntil(() => c.leader() !== undefined, 5000)).toBe(true);
  return c;
}

/** Proposes `cmd` on the leader (asked again after a failure) and runs until it is answered. */
async function write(c: FullCluster, key: string): Promise<void> {
  let done = false;
  const go = (): void => {
    const l = c.leader();
    if (l === undefined) return void c.sim.schedule(20, go);
    c.members.get(l)!.wp!.propose({ type: 'put', key: te.encode(key), value: te.encode(`v-${key}`) }).then(() => { done = true; }, () => c.sim.schedule(20, go));
  };
  go();
  expect(await c.sim.runUntil(() => done, 10_000)).toBe(true);
}

/** Proposes a checkpoint on the leader and runs until every running member certified a head of at least `size`. */
async function checkpoint(c: FullCluster, size: number): Promise<void> {
  const go = (): void => {
    const l = c.leader();
    if (l === undefined) return void c.sim.schedule(20, go);
    c.members.get(l)!.wp!.propose({ type: 'checkpoint', time: EPOCH + c.sim.now }).catch(() => c.sim.schedule(20, go));
  };
  go();
  expect(await c.sim.runUntil(() => c.up().every((id) => c.members.get(id)!.db!.certification().certifiedSize >= size), 10_000)).toBe(true);
}

describe('RaftWritePath.checkpointDue', () => {
  /**
   * Runs to the point of interest: a follower applied the second checkpoint and was stopped before
   * any signature on it reached it; the others certified it; the follower is started again (with
   * its capture files removed first (`lose`), or the checkpoint's replaced by a well-formed file
   * whose session table is the previous checkpoint's (`forge`: refused at load, as the table is
   * not as of the file's index)). Returns the checkpoint's log index.
   */
  async function restartBeforeCertified(c: FullCluster, follower: number, captureFault?: 'lose' | 'forge'): Promise<number> {
    // Cosign proposals are how members sign: resumed as the server's cosign timer does.
    c.sim.clock.setInterval(() => { for (const id of c.up()) c.members.get(id)!.wp!.resumeCosign(); }, 200);
    for (let i = 0; i < 5; i++) await write(c, `a${i}`);
    await checkpoint(c, 1);
    const f = () => c.members.get(follower)!;
    expect(f().wp!.checkpointDue()).toBeUndefined();
    await write(c, 'b');
    // The next checkpoint: the follower applies it, and is stopped before any signature on it
    // reaches it (its record is written: the engine's durable index is at the entry).
    const l = c.leader()!;
    void c.members.get(l)!.wp!.propose({ type: 'checkpoint', time: EPOCH + c.sim.now }).catch(() => undefined);
    expect(await c.sim.runUntil(() => f().db!.certification().latestSize === 2, 5000, 1)).toBe(true);
    expect(f().db!.certification().certifiedSize).toBe(1);
    const entry = f().db!.logIndex().durable;
    await c.crash(follower);
    const captures = path.join(f().dir, 'raft', 'captures');
    // The capture of the checkpoint's session table was written before the crash completed.
    expect(fs.readdirSync(captures).filter((n) => !n.endsWith('.tmp')).length).toBeGreaterThan(0);
    if (captureFault === 'lose') for (const n of fs.readdirSync(captures)) fs.rmSync(path.join(captures, n));
    if (captureFault === 'forge') {
      const kept = fs.readdirSync(captures).map((n) => Number(n.slice('capture-'.length))).sort((a, b) => a - b);
      expect(kept.length).toBe(2);
      const [older, newer] = kept.map((i) => decodeCapture(new Uint8Array(fs.readFileSync(path.join(captures, captureFileName(i)))), i));
      fs.writeFileSync(path.join(captures, captureFileName(newer.index)), encodeCapture({ ...newer, sessions: older.sessions }));
    }
    // The others certify it meanwhile.
    expect(await c.sim.runUntil(() => c.up().every((id) => c.members.get(id)!.db!.certification().certifiedSize === 2), 5000)).toBe(true);
    await c.start(follower);
    expect(f().db!.logIndex().durable).toBeGreaterThanOrEqual(entry);
    expect(await c.sim.runUntil(() => f().db!.certification().certifiedSize === 2, 5000)).toBe(true);
    const at = f().db!.servedCheckpointRecord()?.appliedIndex;
    expect(at).toBeGreaterThanOrEqual(entry);
    return at!;
  }

  it('a checkpoint applied before a restart and certified after it is recorded from the capture kept on disk', async () => {
    const c = await open(31);
    const follower = c.ids().find((id) => id !== c.leader())!;
    const f = () => c.members.get(follower)!;
    const at = await restartBeforeCertified(c, follower);
    // Recorded without any new checkpoint (fails when captures are kept in memory only).
    expect(await c.sim.runUntil(() => f().wp!.cluster().snapshotIndex === at, 5000)).toBe(true);
    expect(f().wp!.checkpointDue()).toBeUndefined();
    expect(f().wp!.snapshotStats().recorded).toBeGreaterThan(0);
    c.check();
  });

  it.each(['lose', 'forge'] as const)('snapshot: the capture was lost too (%s); the next certified checkpoint clears it', async (fault) => {
    const c = await open(31);
    const follower = c.ids().find((id) => id !== c.leader())!;
    const f = () => c.members.get(follower)!;
    const at = await restartBeforeCertified(c, follower, fault);
    // Certified, and not recordable: the Raft snapshot it holds is older.
    expect(f().wp!.cluster().snapshotIndex).toBeLessThan(at);
    expect(f().wp!.checkpointDue()).toBe('snapshot');
    // Nothing was written since: only checkpointDue asks for the next one. Certified, it is recorded.
    await checkpoint(c, 3);
    expect(await c.sim.runUntil(() => f().wp!.checkpointDue() === undefined, 5000)).toBe(true);
    expect(f().wp!.cluster().snapshotIndex).toBeGreaterThan(at);
    c.check();
  });

  it('set-change: the voters changed since the latest checkpoint; membership changes wait until it is certified', async () => {
    const c = await open(32);
    c.sim.clock.setInterval(() => { for (const id of c.up()) c.members.get(id)!.wp!.resumeCosign(); }, 200);
    await write(c, 'a');
    await checkpoint(c, 1);
    const l = c.leader()!;
    const victim = c.ids().find((id) => id !== l)!;
    const m = c.members.get(l)!.wp!.membership()!;
    expect(c.members.get(l)!.wp!.setChangePending()).toBeUndefined();
    // Demoted: out of the voters at once; the checkpoint recording it is due (and proposed by
    // the member that applied the change).
    let demoted: string | undefined;
    void m.remove(victim).then((r) => { demoted = r; });
    expect(await c.sim.runUntil(() => demoted !== undefined, 5000, 1)).toBe(true);
    expect(demoted).toBe('demoted');
    expect(c.members.get(l)!.wp!.checkpointDue()).toBe('set-change');
    expect(c.members.get(l)!.wp!.setChangePending()).toMatch(/changed since the latest checkpoint/);
    await expect(m.remove(victim)).rejects.toMatchObject({ code: 'MEMBERS_PENDING' });
    // Once the checkpoint that records it is certified by both quorums, nothing is due or pending.
    expect(await c.sim.runUntil(() => c.members.get(l)!.wp!.setChangePending() === undefined, 10_000)).toBe(true);
    expect(c.members.get(l)!.wp!.checkpointDue()).toBeUndefined();
    expect(c.members.get(l)!.db!.latestCheckpoint().signers?.members.map((x) => x.id)).toEqual(c.ids().filter((id) => id !== victim));
    let removed: string | undefined;
    void m.remove(victim).then((r) => { removed = r; });
    expect(await c.sim.runUntil(() => removed !== undefined, 5000)).toBe(true);
    expect(removed).toBe('removed');
    c.check();
  });
});
