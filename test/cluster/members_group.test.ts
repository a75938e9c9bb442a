/**
 * The group hands every Raft membership change to the state machine in log order, between the
 * normal entries around it (`StateMachine.applyConfChange`), so that a member registry built from
 * it gives a checkpoint at index i the voters as of i, whatever Ready the entries came in; after a
 * restart, changes at or below the applied index given at open are not handed over again.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfChangeType, type ConfChange } from '../../src/raft/index.js';
import { ReplicationGroup, type StateMachine, type Transport } from '../../src/replication/index.js';
import { MemberRegistry, type MemberInfo } from '../../src/replication/members.js';

const te = new TextEncoder();
const td = new TextDecoder();
const member = (id: number): MemberInfo => ({ id, clientUrl: `http://127.0.0.1:${7000 + id}`, peerUrl: `http://127.0.0.1:${7100 + id}`, publicKey: new Uint8Array(32).fill(id) });

/** Records every call in order, and the signer set each normal entry would record. */
class Recorder implements StateMachine<string> {
  calls: Array<{ index: number; kind: 'entry' | 'conf'; what: string; signers?: number[] }> = [];
  readonly registry = MemberRegistry.seed([1, 2, 3].map(member));
  apply(index: number, command: Uint8Array): Promise<string> {
    this.calls.push({ index, kind: 'entry', what: td.decode(command), signers: this.registry.signerSetAt(index).members.map((m) => m.id) });
    return Promise.resolve(td.decode(command));
  }
  isFatal(): boolean {
    return false;
  }
  applyConfChange(index: number, cc: ConfChange): void {
    this.registry.applyConfChange(index, cc);
    this.calls.push({ index, kind: 'conf', what: `${cc.type} ${cc.nodeId}` });
  }
}

/** A transport that carries nothing (the learners are never reached; only the log matters here). */
const silent: Transport = {
  send() {},
  onMessages() {},
  onUnreachable() {},
  setPeers() {},
  fetchSnapshotChunk: () => Promise.reject(new Error('no snapshots here')),
  onSnapshotRead() {},
  close: () => Promise.resolve(),
};

/** Waits (bounded) until the lone voter elected itself (with learners it campaigns after an election timeout). */
async function leads(g: ReplicationGroup<string>): Promise<void> {
  for (let i = 0; i < 400 && g.status().leader !== g.id; i++) await new Promise((r) => setTimeout(r, 5));
  expect(g.status().leader).toBe(g.id);
}

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('membership changes reach the state machine in log order', () => {
  it('hands over changes between the entries of the same Ready, and not again after a restart', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'proofkv-members-group-'));
    dirs.push(dir);
    const sm = new Recorder();
    // A one-member group (the learners added below are never reached: their changes only need the voter).
    const g = await ReplicationGroup.open<string>(dir, { stateMachine: sm, appliedIndex: 0, tickMs: 2 ** 31 - 1, transport: silent });
    // Proposals and changes queued together: the loop takes them in one turn (one Ready).
    const done = [
      g.propose(te.encode('a')),
      g.proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: 2 }),
      g.propose(te.encode('b')),
    ];
    await Promise.all(done);
    await g.proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: 3 });
    await g.propose(te.encode('c'));
    const indexes = sm.calls.map((c) => c.index);
    expect(indexes).toEqual([...indexes].sort((a, b) => a - b));
    expect(new Set(indexes).size).toBe(indexes.length);
    // The bootstrap change is handed over too.
    expect(sm.calls[0]).toMatchObject({ index: 1, kind: 'conf', what: `${ConfChangeType.AddNode} 1` });
    const confs = sm.calls.filter((c) => c.kind === 'conf').map((c) => c.what);
    expect(confs).toEqual([`${ConfChangeType.AddNode} 1`, `${ConfChangeType.AddLearner} 2`, `${ConfChangeType.AddLearner} 3`]);
    // Each entry's signer set is the voters as of its index (learners never sign).
    for (const c of sm.calls.filter((x) => x.kind === 'entry' && x.what !== '')) expect(c.signers).toEqual([1]);
    expect(sm.registry.current().learners).toEqual([2, 3]);
    const last = g.status().applied;
    await g.close();

    // Reopened with everything applied: nothing is handed over again.
    const again = new Recorder();
    const g2 = await ReplicationGroup.open<string>(dir, { stateMachine: again, appliedIndex: last, tickMs: 5, transport: silent });
    await leads(g2);
    await g2.propose(te.encode('d'));
    expect(again.calls.every((c) => c.index > last)).toBe(true);
    expect(again.calls.filter((c) => c.kind === 'conf')).toEqual([]);
    await g2.close();

    // Reopened as of index 1: every later change is handed over again, in order.
    const replay = new Recorder();
    const g3 = await ReplicationGroup.open<string>(dir, { stateMachine: replay, appliedIndex: 1, tickMs: 5, transport: silent });
    await leads(g3);
    await g3.propose(te.encode('e'));
    expect(replay.calls.filter((c) => c.kind === 'conf').map((c) => c.what)).toEqual([`${ConfChangeType.AddLearner} 2`, `${ConfChangeType.AddLearner} 3`]);
    const ri = replay.calls.map((c) => c.index);
    expect(ri).toEqual([...ri].sort((a, b) => a - b));
    await g3.close();
  });
});
