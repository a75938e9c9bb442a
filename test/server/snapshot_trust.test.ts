/**
 * Whom a member trusts for a snapshot's certificate (`snapshotTrust`): the signer set of the
 * voters its registry knows (from which a later set is reached through the snapshot's signer-set
 * changes), or — a member that joined and has applied nothing yet, whose registry knows no
 * voters — the initial signer set its cluster file commits to, from which the snapshot's signer-set
 * changes are followed (`snapshotPolicy`, test/replication/snapshot_trust_chain.test.ts). Before,
 * a joiner's trust had no keys at all and it refused every snapshot, so it never caught up once
 * the leader's log no longer started at index 1 (found by the nemesis harness); then it trusted
 * `majority(majority(listed))` of the listed keys, which members removed since could meet.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { snapshotTrust } from '../../server/raft_write_path.js';
import { MemberRegistry, MemberStore, type MemberInfo } from '../../src/replication/members.js';
import { ConfChangeType } from '../../src/raft/index.js';
import type { SnapshotTrust } from '../../src/replication/snapshot.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});
const scratch = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'proofkv-trust-'));
  dirs.push(d);
  return d;
};
const member = (id: number): MemberInfo => ({ id, clientUrl: `http://127.0.0.1:${7000 + id}`, peerUrl: `http://127.0.0.1:${7100 + id}`, publicKey: new Uint8Array(32).fill(id) });
/** The first byte of each trusted key (each test key is one byte repeated), from keys or a known signer set. */
const keys = (t: SnapshotTrust | undefined) => {
  if (t && 'publicKeys' in t) return t.publicKeys.map((k) => k[0]);
  if (t && 'signerSet' in t) return t.signerSet.members.map((m) => m.publicKey[0]);
  return undefined;
};
const quorum = (t: SnapshotTrust | undefined) => (t && 'signerSet' in t ? t.signerSet.quorum : t && 'quorum' in t ? t.quorum : undefined);
const INITIAL = new Uint8Array(32).fill(0xab);

describe('snapshot trust', () => {
  it('a bootstrapped member trusts its registry voters and their quorum', () => {
    const store = MemberStore.open(scratch(), () => MemberRegistry.seed([1, 2, 3].map(member), [1, 2, 3]));
    const t = snapshotTrust(store, INITIAL, undefined);
    // The whole set (ids too): a snapshot certified by a later set is followed from it.
    expect(t && 'signerSet' in t ? t.signerSet.members.map((m) => m.id) : undefined).toEqual([1, 2, 3]);
    expect(quorum(t)).toBe(2);
    expect(keys(t)).toEqual([1, 2, 3]);
  });

  it('a joiner that applied nothing trusts the initial signer set (whatever its file lists); once it knows voters, those', () => {
    // Its cluster file lists the three initial members, one added later (4), and itself (5).
    const store = MemberStore.open(scratch(), () => MemberRegistry.seed([1, 2, 3, 4, 5].map(member), []));
    expect(snapshotTrust(store, INITIAL, undefined)).toEqual({ initialSignerSet: INITIAL });
    // No initial set known: no trust (the caller falls back to its own key: every snapshot refused).
    expect(snapshotTrust(store, undefined, undefined)).toBeUndefined();
    store.applyConfChange(1, { type: ConfChangeType.AddNode, nodeId: 1 }, 0);
    store.applyConfChange(2, { type: ConfChangeType.AddNode, nodeId: 2 }, 0);
    const later = snapshotTrust(store, INITIAL, undefined);
    expect(keys(later)).toEqual([1, 2]);
    expect(quorum(later)).toBe(2);
  });

  it('without a registry: the signer set given, else none', () => {
    expect(snapshotTrust(undefined, undefined, undefined)).toBeUndefined();
    const set = { quorum: 1, members: [{ id: 9, publicKey: new Uint8Array(32).fill(9) }] };
    expect(snapshotTrust(undefined, undefined, set)).toEqual({ publicKeys: [set.members[0].publicKey], quorum: 1 });
  });
});
