/**
 * The member registry (src/replication/members.ts): applying member commands and Raft
 * membership changes in log order, the signer set as of a log index, idempotent replay after a
 * restart with the stored registry ahead of the engine, persistence, exports for snapshots, and
 * malformed or conflicting input refused with nothing changed.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Encoder } from 'cbor-x';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfChangeType } from '../../src/raft/index.js';
import {
  MAX_REGISTRY_BYTES, MAX_REMOVED_MEMBERS, MEMBERS_FILE, MemberRegistry, MemberStore, Membership, MembersErrorCode, decodeMembers, encodeMembers, parseMemberCommand,
  type MemberInfo,
} from '../../src/replication/members.js';

const key = (n: number) => new Uint8Array(32).fill(n);
const member = (id: number): MemberInfo => ({ id, clientUrl: `http://127.0.0.1:${7000 + id}`, peerUrl: `http://127.0.0.1:${7100 + id}`, publicKey: key(id) });
const add = (id: number) => ({ type: 'member' as const, op: 'add' as const, ...member(id) });
const addNode = (nodeId: number) => ({ type: ConfChangeType.AddNode, nodeId });
const addLearner = (nodeId: number) => ({ type: ConfChangeType.AddLearner, nodeId });
const removeNode = (nodeId: number) => ({ type: ConfChangeType.RemoveNode, nodeId });
const codeOf = (f: () => unknown) => {
  try {
    f();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return 'none';
};

/** A 3-member bootstrap (AddNode 1..3 at 1..3), then member 4 added, promoted, member 1 removed. */
function history(r: MemberRegistry): void {
  r.applyConfChange(1, addNode(1));
  r.applyConfChange(2, addNode(2));
  r.applyConfChange(3, addNode(3));
  r.applyMember(10, add(4));
  r.applyConfChange(11, addLearner(4));
  r.applyConfChange(20, addNode(4));
  r.applyConfChange(30, removeNode(1));
  r.applyMember(31, { type: 'member', op: 'remove', id: 1 });
}

const dirs: string[] = [];
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'proofkv-members-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('member registry', () => {
  it('gives the signer set of the voters as of each log index, with a majority quorum', () => {
    const r = MemberRegistry.seed([1, 2, 3].map(member));
    history(r);
    const ids = (i: number) => r.signerSetAt(i).members.map((m) => m.id);
    expect(r.signerSetAt(0)).toEqual({ quorum: 1, members: [] });
    expect(ids(3)).toEqual([1, 2, 3]);
    expect(r.signerSetAt(3).quorum).toBe(2);
    expect(ids(15)).toEqual([1, 2, 3]); // a learner does not sign
    expect(ids(20)).toEqual([1, 2, 3, 4]);
    expect(r.signerSetAt(25).quorum).toBe(3);
    expect(r.signerSetAt(25).members.find((m) => m.id === 4)!.publicKey).toEqual(key(4));
    expect(ids(30)).toEqual([2, 3, 4]);
    expect(r.signerSetAt(30).quorum).toBe(2);
    expect(r.current().members.map((m) => m.id)).toEqual([2, 3, 4]);
  });

  it('ignores replayed entries (index at or below its own) and gives the same answers', () => {
    const r = MemberRegistry.seed([1, 2, 3].map(member));
    history(r);
    const before = encodeMembers(r.history());
    // Replay of the whole log after a crash (the engine's durable index was behind the registry).
    expect(r.applyConfChange(11, addLearner(4))).toBe(false);
    expect(r.applyMember(31, { type: 'member', op: 'remove', id: 1 })).toBe(false);
    expect(r.applyConfChange(30, removeNode(2))).toBe(false);
    expect(encodeMembers(r.history())).toEqual(before);
    expect(r.signerSetAt(25).members.map((m) => m.id)).toEqual([1, 2, 3, 4]);
  });

  it('refuses conflicting commands and changes nothing', () => {
    const r = MemberRegistry.seed([1, 2, 3].map(member));
    history(r);
    const before = encodeMembers(r.history());
    // Another key under an id that is in the group.
    expect(codeOf(() => r.applyMember(40, { ...add(4), publicKey: key(9) }))).toBe(MembersErrorCode.Conflict);
    // A key or listener of another member.
    expect(codeOf(() => r.applyMember(41, { ...add(5), publicKey: key(2) }))).toBe(MembersErrorCode.Conflict);
    expect(codeOf(() => r.applyMember(42, { ...add(5), peerUrl: member(3).clientUrl }))).toBe(MembersErrorCode.Conflict);
    // Forgetting a voter.
    expect(codeOf(() => r.applyMember(43, { type: 'member', op: 'remove', id: 2 }))).toBe(MembersErrorCode.Conflict);
    expect(encodeMembers(r.history())).toEqual(before);
    // The same add again changes nothing but the index.
    expect(r.applyMember(44, add(4))).toBe(true);
    expect(r.current().members).toEqual(r.at(43).members);
  });

  it('refuses malformed member commands', () => {
    const bad: unknown[] = [
      { type: 'member', op: 'add', id: 0, clientUrl: 'http://a:1', peerUrl: 'http://a:2', publicKey: key(1) },
      { type: 'member', op: 'add', id: 2 ** 32, clientUrl: 'http://a:1', peerUrl: 'http://a:2', publicKey: key(1) },
      { type: 'member', op: 'add', id: 5, clientUrl: 'ftp://a:1', peerUrl: 'http://a:2', publicKey: key(1) },
      { type: 'member', op: 'add', id: 5, clientUrl: 'http://a:1/path', peerUrl: 'http://a:2', publicKey: key(1) },
      { type: 'member', op: 'add', id: 5, clientUrl: 'http://0.0.0.0:1', peerUrl: 'http://a:2', publicKey: key(1) },
      { type: 'member', op: 'add', id: 5, clientUrl: 'http://a:1', peerUrl: 'http://a:2', publicKey: new Uint8Array(31) },
      { type: 'member', op: 'add', id: 5, clientUrl: 'http://a:1', peerUrl: 'http://a:2', publicKey: key(1), extra: 1 },
      { type: 'member', op: 'rename', id: 5 },
      { type: 'member', op: 'remove', id: '5' },
    ];
    const r = MemberRegistry.seed([1, 2, 3].map(member));
    const before = encodeMembers(r.history());
    for (const c of bad) {
      expect(codeOf(() => parseMemberCommand(c))).toBe(MembersErrorCode.Malformed);
      // Refused at apply too (a command in the log is checked again), with nothing changed.
      expect(codeOf(() => r.applyMember(9, c as never))).toBe(MembersErrorCode.Malformed);
    }
    expect(encodeMembers(r.history())).toEqual(before);
  });

  it('exports the registry as of an index and refuses malformed exports', () => {
    const r = MemberRegistry.seed([1, 2, 3].map(member));
    history(r);
    const at25 = decodeMembers(r.export(25));
    expect(at25).toHaveLength(1);
    expect(at25[0].index).toBe(25);
    expect(at25[0].voters).toEqual([1, 2, 3, 4]);
    const copy = new MemberRegistry(decodeMembers(r.export()));
    expect(copy.signerSetAt(31)).toEqual(r.signerSetAt(31));
    const good = r.export();
    const bads: Uint8Array[] = [
      new Uint8Array(0),
      new Uint8Array(MAX_REGISTRY_BYTES + 1),
      good.subarray(0, good.length - 3),
      encodeMembers([{ index: 5, members: [member(1)], voters: [1], learners: [1], removed: [] }]),
      encodeMembers([{ index: 5, members: [member(2), member(1)], voters: [], learners: [], removed: [] }]),
      encodeMembers([{ index: 5, members: [member(1), { ...member(2), publicKey: key(1) }], voters: [], learners: [], removed: [] }]),
      encodeMembers([{ index: 5, members: [], voters: [], learners: [], removed: [] }, { index: 5, members: [], voters: [], learners: [], removed: [] }]),
    ];
    for (const b of bads) expect(codeOf(() => decodeMembers(b))).toBe(MembersErrorCode.Malformed);
  });

  it('remembers removed ids for good: kept through exports, stores and pruning; never registered again', () => {
    const dir = tmp();
    const store = MemberStore.open(dir, () => MemberRegistry.seed([1, 2, 3].map(member)));
    [1, 2, 3].forEach((id, i) => store.applyConfChange(i + 1, addNode(id), 0));
    store.applyMember(10, add(4), 3);
    store.applyConfChange(11, addLearner(4), 3);
    store.applyConfChange(12, addNode(4), 3);
    store.applyConfChange(20, removeNode(1), 3);
    // Unknown ids are not recorded: only members of the group are removed.
    store.applyConfChange(21, removeNode(9), 3);
    store.applyMember(22, { type: 'member', op: 'remove', id: 1 }, 3);
    // As of an index before the removal, an export has none.
    expect(decodeMembers(store.registry.export(15))[0].removed).toEqual([]);
    // Every version that could tell the removal is pruned away: the newest still holds it.
    store.applyMember(30, add(5), 25);
    expect(store.registry.history().map((v) => v.index)).toEqual([22, 30]);
    expect(store.registry.current().removed).toEqual([1]);
    const reopened = MemberStore.open(dir, () => {
      throw new Error('must not seed again');
    });
    expect(reopened.registry.current().removed).toEqual([1]);
    expect(decodeMembers(reopened.registry.export())[0].removed).toEqual([1]);
    // The id is never registered again, with its old fields or new ones; nothing changes.
    const before = encodeMembers(store.registry.history());
    for (const cmd of [add(1), { ...add(1), clientUrl: 'http://127.0.0.1:9001', peerUrl: 'http://127.0.0.1:9101', publicKey: key(99) }]) {
      expect(codeOf(() => store.applyMember(40, cmd, 25))).toBe(MembersErrorCode.Conflict);
    }
    expect(encodeMembers(store.registry.history())).toEqual(before);
    // A member removed from the group and not yet forgotten is refused too.
    store.applyConfChange(41, removeNode(2), 25);
    expect(store.registry.current().members.map((m) => m.id)).toContain(2);
    expect(codeOf(() => store.registry.applyMember(42, add(2)))).toBe(MembersErrorCode.Conflict);
    expect(store.registry.current().removed).toEqual([1, 2]);
  });

  it('bounds the removed ids (the oldest forgotten) and reads registries written before they were kept', () => {
    const r = MemberRegistry.seed([]);
    let index = 0;
    for (let id = 1; id <= MAX_REMOVED_MEMBERS + 3; id++) {
      r.applyConfChange(++index, addLearner(id));
      r.applyConfChange(++index, removeNode(id));
      r.prune(index);
    }
    const removed = r.current().removed;
    expect(removed).toHaveLength(MAX_REMOVED_MEMBERS);
    expect(removed[0]).toBe(4);
    expect(removed.at(-1)).toBe(MAX_REMOVED_MEMBERS + 3);
    expect(decodeMembers(r.export())[0].removed).toEqual(removed);
    // An id added again through the log (the Raft core allows it) leaves the list, as the core's state does.
    r.applyConfChange(++index, addLearner(4));
    expect(r.current().removed).not.toContain(4);
    expect(r.current().learners).toEqual([4]);
    // A registry file of an older release has no `removed` field.
    const old = new Encoder({ useRecords: false, mapsAsObjects: true }).encode({ v: 1, versions: [{ index: 7, members: [member(1)], voters: [1], learners: [] }] });
    expect(decodeMembers(new Uint8Array(old))).toEqual([{ index: 7, members: [member(1)], voters: [1], learners: [], removed: [] }]);
    const bad = (removedField: unknown) => new Uint8Array(new Encoder({ useRecords: false, mapsAsObjects: true }).encode({ v: 1, versions: [{ index: 7, members: [], voters: [1], learners: [2], removed: removedField }] }));
    for (const b of [bad([1]), bad([2]), bad([3, 3]), bad([0]), bad('3'), bad(new Array(MAX_REMOVED_MEMBERS + 1).fill(0).map((_, i) => i + 10))]) {
      expect(codeOf(() => decodeMembers(b))).toBe(MembersErrorCode.Malformed);
    }
  });

  it('persists every change, reopens it, keeps the history a replay needs, and refuses a damaged file', () => {
    const dir = tmp();
    const seed = () => MemberRegistry.seed([1, 2, 3].map(member));
    const s1 = MemberStore.open(dir, seed);
    s1.applyConfChange(1, addNode(1), 0);
    s1.applyConfChange(2, addNode(2), 0);
    s1.applyConfChange(3, addNode(3), 0);
    s1.applyMember(10, add(4), 3);
    s1.applyConfChange(11, addLearner(4), 3);
    // The engine recorded index 9 when 4 was promoted: versions before the newest at or below 9 go.
    s1.applyConfChange(20, addNode(4), 9);
    // Crash: reopen from the file; entries after the engine's index 9 are applied again.
    const s2 = MemberStore.open(dir, () => {
      throw new Error('must not seed again');
    });
    expect(s2.registry.history().map((v) => v.index)).toEqual([3, 10, 11, 20]);
    expect(s2.applyMember(10, add(4), 9)).toBe(false);
    expect(s2.applyConfChange(11, addLearner(4), 9)).toBe(false);
    expect(s2.applyConfChange(20, addNode(4), 9)).toBe(false);
    expect(s2.registry.signerSetAt(12).members.map((m) => m.id)).toEqual([1, 2, 3]);
    expect(s2.registry.signerSetAt(20).members.map((m) => m.id)).toEqual([1, 2, 3, 4]);
    expect(codeOf(() => s2.registry.signerSetAt(2))).toBe(MembersErrorCode.Unavailable);
    // A malformed import changes nothing, in memory or on disk.
    const file = fs.readFileSync(path.join(dir, MEMBERS_FILE));
    expect(codeOf(() => s2.import(new Uint8Array([1, 2, 3])))).toBe(MembersErrorCode.Malformed);
    expect(fs.readFileSync(path.join(dir, MEMBERS_FILE))).toEqual(file);
    expect(s2.registry.index).toBe(20);
    // A good import replaces it and persists it.
    const other = MemberRegistry.seed([1, 2].map(member), [1, 2]);
    other.applyConfChange(50, addNode(3));
    expect(s2.import(other.export())).toBe(50);
    expect(MemberStore.open(dir, seed).registry.current().voters).toEqual([1, 2, 3]);
    // A damaged file is refused, not replaced by the seed.
    fs.writeFileSync(path.join(dir, MEMBERS_FILE), Uint8Array.of(0xa1, 0x01));
    expect(codeOf(() => MemberStore.open(dir, seed))).toBe(MembersErrorCode.Malformed);
  });
});

describe('a voter demoted to learner (the first step of removing a voter)', () => {
  it('leaves the signer set and stays in the group; the last voter is never demoted', () => {
    const r = MemberRegistry.seed([1, 2, 3].map(member));
    history(r);
    r.applyConfChange(40, addLearner(2));
    expect(r.signerSetAt(39).members.map((m) => m.id)).toEqual([2, 3, 4]);
    expect(r.signerSetAt(40).members.map((m) => m.id)).toEqual([3, 4]);
    expect(r.current().voters).toEqual([3, 4]);
    expect(r.current().learners).toEqual([2]);
    const solo = MemberRegistry.seed([member(1)]);
    solo.applyConfChange(1, addNode(1));
    solo.applyConfChange(2, addLearner(1));
    expect(solo.current().voters).toEqual([1]);
    expect(solo.current().learners).toEqual([]);
  });
});

describe('Membership: one signer-set change at a time, a voter demoted before it is removed', () => {
  /** A Membership over a registry that a fake group applies changes to at once. */
  function setup(pending: () => string | undefined) {
    const r = MemberRegistry.seed([1, 2, 3, 4].map(member));
    for (let i = 1; i <= 4; i++) r.applyConfChange(i, addNode(i));
    let index = 10;
    const log: string[] = [];
    const m = new Membership(r, {
      id: 1,
      proposeMember: async (cmd) => {
        log.push(`member ${cmd.op} ${cmd.id}`);
        r.applyMember(++index, cmd);
      },
      proposeConfChange: async (cc) => {
        log.push(`${cc.type} ${cc.nodeId}`);
        r.applyConfChange(++index, cc);
      },
      status: () => ({ leader: 1, commit: index, role: 'leader' }),
      progress: () => new Map(),
      setChangePending: pending,
      afterSetChange: () => log.push('checkpoint'),
    });
    return { r, m, log };
  }

  it('refuses to change the voters while the previous change is pending, and changes nothing', async () => {
    const { r, m, log } = setup(() => 'the signer-set change at checkpoint 7 is not certified yet');
    r.applyMember(5, add(5));
    r.applyConfChange(6, addLearner(5));
    await expect(m.promote(5)).rejects.toMatchObject({ code: MembersErrorCode.Pending, message: expect.stringContaining('checkpoint 7') });
    await expect(m.remove(2)).rejects.toMatchObject({ code: MembersErrorCode.Pending });
    // A learner's removal waits too: it may be a demoted voter whose signature the change needs.
    await expect(m.remove(5)).rejects.toMatchObject({ code: MembersErrorCode.Pending });
    expect(log).toEqual([]);
    expect(r.current().voters).toEqual([1, 2, 3, 4]);
    // Forced, each goes through at once (a voter is removed without the demotion step).
    await m.promote(5, { force: true });
    expect(await m.remove(2, { force: true })).toBe('removed');
    expect(log).toEqual([`${ConfChangeType.AddNode} 5`, 'checkpoint', `${ConfChangeType.RemoveNode} 2`, 'checkpoint', 'member remove 2']);
    expect(r.current().voters).toEqual([1, 3, 4, 5]);
  });

  it('removes a voter in two steps: demoted (out of the signer set, a checkpoint proposed), then removed once nothing is pending', async () => {
    let pending: string | undefined;
    const { r, m, log } = setup(() => pending);
    expect(await m.remove(3)).toBe('demoted');
    expect(log).toEqual([`${ConfChangeType.AddLearner} 3`, 'checkpoint']);
    expect(r.current().voters).toEqual([1, 2, 4]);
    expect(r.current().learners).toEqual([3]);
    pending = 'the voters changed since the latest checkpoint';
    await expect(m.remove(3)).rejects.toMatchObject({ code: MembersErrorCode.Pending });
    pending = undefined;
    expect(await m.remove(3)).toBe('removed');
    expect(log.slice(2)).toEqual([`${ConfChangeType.RemoveNode} 3`, 'member remove 3']);
    expect(r.current().learners).toEqual([]);
    expect(r.current().members.map((x) => x.id)).toEqual([1, 2, 4]);
    // Asked again: it is gone.
    await expect(m.remove(3)).rejects.toMatchObject({ code: MembersErrorCode.NotFound });
  });
});
