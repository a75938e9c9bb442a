/**
 * The member registry: who the members of a group are (id, client and peer URL, public key) and
 * which of them are voters or learners, as replicated state built by applying the Raft log in
 * log order (docs/replication.md § Membership).
 *
 * Two kinds of entries change it:
 * - a `member` log command (`{ type: 'member', op: 'add' | 'remove', id, clientUrl?, peerUrl?,
 *   publicKey? }`): the member's metadata, which the Raft core knows nothing of;
 * - a Raft membership change (`AddLearner`, `AddNode`, `RemoveNode`), handed over by the group in
 *   log order ({@link MemberRegistry.applyConfChange}).
 *
 * The registry keeps a short history of versions, each tagged with the log index it reflects, so
 * that the **signer set of a checkpoint at log index i** is the voters *as of i* with their keys
 * and a majority quorum ({@link MemberRegistry.signerSetAt}) — the same on every replica whatever
 * Ready boundaries it saw, and the same when the entries are applied again after a crash while the
 * stored registry is already ahead of them.
 *
 * {@link MemberStore} persists it (`<raft dir>/members`, CBOR, written atomically and synced at
 * every change, before the change's apply returns), so the stored registry always reflects every
 * membership entry up to the applied index; entries at or below the stored index are ignored when
 * applied again (idempotent replay). Exports for snapshots are bounded bytes, validated on import.
 * @module
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { writeFileDurably } from '../util/durable.js';
import { Encoder } from 'cbor-x';
import { ConfChangeType, type ConfChange } from '../raft/types.js';

/** Most members (voters, learners and registered members not yet in the group) a registry holds. */
export const MAX_REGISTRY_MEMBERS = 16;
/** Most versions of the registry kept (the history the signer set of a replayed entry is read from). */
export const MAX_REGISTRY_VERSIONS = 64;
/** Longest URL of a member, characters. */
export const MAX_MEMBER_URL_LENGTH = 256;
/**
 * Most removed ids a registry remembers ({@link MembershipState.removed}): the newest removals are
 * kept, the oldest forgotten beyond it (etcd keeps every one; we bound every table).
 */
export const MAX_REMOVED_MEMBERS = 256;
/** Largest encoded registry (export or stored file), bytes: versions × (members × (URLs, key, framing) + removed ids). */
export const MAX_REGISTRY_BYTES = MAX_REGISTRY_VERSIONS * (64 + MAX_REGISTRY_MEMBERS * (2 * MAX_MEMBER_URL_LENGTH + 32 + 64) + MAX_REMOVED_MEMBERS * 5);
/** Largest member id (ids are u32 in the signer set; 0 means "no member"). */
export const MAX_MEMBER_ID = 0xffff_ffff;

/** Stable codes of {@link MembersError}. */
export enum MembersErrorCode {
  /** A `member` command, an export or a stored registry is malformed; nothing was changed. */
  Malformed = 'MEMBERS_MALFORMED',
  /** The command conflicts with the registry (an id, URL or key in use, a member still in the group). */
  Conflict = 'MEMBERS_CONFLICT',
  /** No such member. */
  NotFound = 'MEMBERS_NOT_FOUND',
  /** The registry does not reach back to the log index asked for, or cannot be written. */
  Unavailable = 'MEMBERS_UNAVAILABLE',
  /**
   * A change of the voters (the signer set) was refused because the previous one is not certified
   * yet by a quorum of its set and of the set before it (or not recorded by a checkpoint yet); try
   * again once it is, or force it (docs/cluster.md § Membership, *One signer-set change at a time*).
   */
  Pending = 'MEMBERS_PENDING',
}

/** A refused membership command or registry bytes. */
export class MembersError extends Error {
  constructor(
    readonly code: MembersErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'MembersError';
  }
}

/** One member's metadata. */
export interface MemberInfo {
  id: number;
  /** Origin of the member's client listener. */
  clientUrl: string;
  /** Origin of the member's peer listener (the transport's). */
  peerUrl: string;
  /** The member's Ed25519 public key (its `NODE_KEY`), 32 bytes. */
  publicKey: Uint8Array;
}

/** The `member` log command. */
export type MemberCommand =
  | { type: 'member'; op: 'add'; id: number; clientUrl: string; peerUrl: string; publicKey: Uint8Array }
  | { type: 'member'; op: 'remove'; id: number };

/** The registry as of one log index. */
export interface MembershipState {
  /** Log index of the last entry this state reflects (0: the seed). */
  index: number;
  /** Registered members, sorted by id. */
  members: MemberInfo[];
  /** Voters, sorted. */
  voters: number[];
  /** Learners, sorted. */
  learners: number[];
  /**
   * Ids removed from the group (`RemoveNode` of a voter or learner), oldest removal first, at most
   * {@link MAX_REMOVED_MEMBERS}: their peer messages are refused for good and the ids are never
   * registered again (etcd's rule). Absent in registries written before it: read as none.
   */
  removed: number[];
}

/** A signer set (the shape `proofs/signer_set.ts` hashes): voters with their keys, majority quorum. */
export interface MemberSignerSet {
  quorum: number;
  members: Array<{ id: number; publicKey: Uint8Array }>;
}

/** The majority quorum of `n` voters. */
export function majorityOf(n: number): number {
  return Math.floor(n / 2) + 1;
}

const malformed = (why: string) => new MembersError(MembersErrorCode.Malformed, why);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);

function checkMemberId(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_MEMBER_ID) throw malformed(`${where} must be an integer 1 .. ${MAX_MEMBER_ID}, got ${JSON.stringify(v)}`);
  return v;
}

/** `v` as a listener origin (`http:`/`https:`, host, no credentials, path, query or fragment). */
export function checkOrigin(v: unknown, where: string): string {
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_MEMBER_URL_LENGTH) throw malformed(`${where} must be a URL of 1 .. ${MAX_MEMBER_URL_LENGTH} characters`);
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw malformed(`${where} is not a URL: ${JSON.stringify(v.slice(0, 64))}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw malformed(`${where} must be http: or https:`);
  if (u.hostname === '' || u.hostname === '0.0.0.0' || u.hostname === '[::]') throw malformed(`${where} must name a reachable host`);
  if (u.username !== '' || u.password !== '' || (u.pathname !== '/' && u.pathname !== '') || u.search !== '' || u.hash !== '') {
    throw malformed(`${where} must be an origin (no credentials, path, query or fragment)`);
  }
  return u.origin;
}

function checkKey(v: unknown, where: string): Uint8Array {
  if (!(v instanceof Uint8Array) || v.length !== 32) throw malformed(`${where} must be 32 bytes`);
  return new Uint8Array(v);
}

/** Validates a decoded `member` command (throws `MEMBERS_MALFORMED`); returns it normalised. */
export function parseMemberCommand(c: unknown): MemberCommand {
  if (!isObject(c) || c.type !== 'member') throw malformed('not a member command');
  const id = checkMemberId(c.id, 'member id');
  if (c.op === 'remove') {
    for (const k of Object.keys(c)) if (!['type', 'op', 'id', 'session', 'time'].includes(k)) throw malformed(`member remove: unknown field ${JSON.stringify(k)}`);
    return { type: 'member', op: 'remove', id };
  }
  if (c.op !== 'add') throw malformed(`member op must be add or remove, got ${JSON.stringify(c.op)}`);
  for (const k of Object.keys(c)) if (!['type', 'op', 'id', 'clientUrl', 'peerUrl', 'publicKey', 'session', 'time'].includes(k)) throw malformed(`member add: unknown field ${JSON.stringify(k)}`);
  return { type: 'member', op: 'add', id, clientUrl: checkOrigin(c.clientUrl, 'clientUrl'), peerUrl: checkOrigin(c.peerUrl, 'peerUrl'), publicKey: checkKey(c.publicKey, 'publicKey') };
}

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const listenerOf = (origin: string) => {
  const u = new URL(origin);
  return `${u.hostname}:${u.port || (u.protocol === 'https:' ? '443' : '80')}`;
};
const sortedIds = (s: Iterable<number>) => [...new Set(s)].sort((a, b) => a - b);

function sameMember(a: MemberInfo, b: MemberInfo): boolean {
  return a.id === b.id && a.clientUrl === b.clientUrl && a.peerUrl === b.peerUrl && hex(a.publicKey) === hex(b.publicKey);
}

/** Throws `MEMBERS_CONFLICT` when `m` shares an id-less identity (a listener or the key) with another member of `members`. */
function checkDistinct(members: readonly MemberInfo[], m: MemberInfo): void {
  const mine = new Set([listenerOf(m.clientUrl), listenerOf(m.peerUrl)]);
  if (mine.size !== 2) throw new MembersError(MembersErrorCode.Conflict, `member ${m.id}: its client and peer URLs are the same listener`);
  for (const o of members) {
    if (o.id === m.id) continue;
    if (hex(o.publicKey) === hex(m.publicKey)) throw new MembersError(MembersErrorCode.Conflict, `member ${m.id}: public key already belongs to member ${o.id}`);
    for (const l of [listenerOf(o.clientUrl), listenerOf(o.peerUrl)]) {
      if (mine.has(l)) throw new MembersError(MembersErrorCode.Conflict, `member ${m.id}: listener ${l} already belongs to member ${o.id}`);
    }
  }
}

/**
 * The state after `cmd` (pure; throws `MEMBERS_CONFLICT` and changes nothing when refused).
 * Rules: `add` of a new id registers it; `add` of a registered id with the same fields changes
 * nothing; with other fields it replaces the metadata only while the member is neither voter nor
 * learner (a member's key never changes while it may sign: replace a member with a new id).
 * Every id, listener and key is distinct, and an id removed from the group is never registered
 * again ({@link MembershipState.removed}). `remove` forgets a member that is no longer in the Raft
 * membership (remove it from the group first) and changes nothing for an unknown id.
 */
export function applyMemberCommand(s: MembershipState, index: number, cmd: MemberCommand): MembershipState {
  const inGroup = s.voters.includes(cmd.id) || s.learners.includes(cmd.id);
  const existing = s.members.find((m) => m.id === cmd.id);
  if (cmd.op === 'remove') {
    if (inGroup) throw new MembersError(MembersErrorCode.Conflict, `member ${cmd.id} is still a ${s.voters.includes(cmd.id) ? 'voter' : 'learner'}: remove it from the group first`);
    return { ...s, index, members: s.members.filter((m) => m.id !== cmd.id) };
  }
  if (s.removed.includes(cmd.id)) throw new MembersError(MembersErrorCode.Conflict, `member ${cmd.id} was removed from the group, and a removed member's id is never used again: add the replacement under a new id`);
  const m: MemberInfo = { id: cmd.id, clientUrl: cmd.clientUrl, peerUrl: cmd.peerUrl, publicKey: cmd.publicKey };
  if (existing && sameMember(existing, m)) return { ...s, index };
  if (existing && inGroup) throw new MembersError(MembersErrorCode.Conflict, `member ${cmd.id} is in the group with other URLs or another key: add the replacement under a new id`);
  if (!existing && s.members.length >= MAX_REGISTRY_MEMBERS) throw new MembersError(MembersErrorCode.Conflict, `the registry holds ${MAX_REGISTRY_MEMBERS} members, the most it may`);
  checkDistinct(s.members, m);
  const members = [...s.members.filter((x) => x.id !== m.id), m].sort((a, b) => a.id - b.id);
  return { ...s, index, members };
}

/**
 * The state after the Raft membership change `cc` (the core's rules, as `applyConfChangeTo`). A
 * `RemoveNode` of a voter or learner adds its id to {@link MembershipState.removed}; an id the log
 * adds again (the Raft core allows it; the registry's `member add` does not) leaves it, so the
 * state always mirrors the core's.
 */
export function applyConfChangeToState(s: MembershipState, index: number, cc: ConfChange): MembershipState {
  const voters = new Set(s.voters);
  const learners = new Set(s.learners);
  let removed = s.removed;
  switch (cc.type) {
    case ConfChangeType.AddNode: voters.add(cc.nodeId); learners.delete(cc.nodeId); break;
    // A new learner, or a voter demoted (never the last voter: the Raft core's rule).
    case ConfChangeType.AddLearner: if (!(voters.has(cc.nodeId) && voters.size === 1)) { voters.delete(cc.nodeId); learners.add(cc.nodeId); } break;
    case ConfChangeType.RemoveNode:
      if (voters.has(cc.nodeId) || learners.has(cc.nodeId)) removed = [...removed.filter((id) => id !== cc.nodeId), cc.nodeId].slice(-MAX_REMOVED_MEMBERS);
      voters.delete(cc.nodeId);
      learners.delete(cc.nodeId);
      break;
  }
  if (cc.type !== ConfChangeType.RemoveNode && removed.includes(cc.nodeId)) removed = removed.filter((id) => id !== cc.nodeId);
  return { ...s, index, voters: sortedIds(voters), learners: sortedIds(learners), removed };
}

/**
 * The signer set of `s`: every voter with a registered key, and a majority of the voters as quorum
 * (a voter without a key cannot sign, and still counts in the quorum: the bar is never lowered).
 */
export function signerSetOf(s: MembershipState): MemberSignerSet {
  const members = s.voters.flatMap((id) => {
    const m = s.members.find((x) => x.id === id);
    return m ? [{ id, publicKey: m.publicKey }] : [];
  });
  return { quorum: majorityOf(s.voters.length), members };
}

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true });

/** Encodes versions (oldest first) for the store or a snapshot. */
export function encodeMembers(versions: readonly MembershipState[]): Uint8Array {
  const bytes = cbor.encode({
    v: 1,
    versions: versions.map((s) => ({ index: s.index, members: s.members.map((m) => ({ id: m.id, clientUrl: m.clientUrl, peerUrl: m.peerUrl, publicKey: m.publicKey })), voters: s.voters, learners: s.learners, removed: s.removed })),
  });
  if (bytes.length > MAX_REGISTRY_BYTES) throw new MembersError(MembersErrorCode.Unavailable, `registry encodes to ${bytes.length} bytes, over ${MAX_REGISTRY_BYTES}`);
  return new Uint8Array(bytes);
}

function parseState(v: unknown, where: string): MembershipState {
  if (!isObject(v)) throw malformed(`${where} must be a map`);
  const index = v.index;
  if (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 0) throw malformed(`${where}.index must be a non-negative integer`);
  if (!Array.isArray(v.members) || v.members.length > MAX_REGISTRY_MEMBERS) throw malformed(`${where}.members must be an array of at most ${MAX_REGISTRY_MEMBERS}`);
  const members: MemberInfo[] = v.members.map((m: unknown, i: number) => {
    if (!isObject(m)) throw malformed(`${where}.members[${i}] must be a map`);
    const c = parseMemberCommand({ type: 'member', op: 'add', id: m.id, clientUrl: m.clientUrl, peerUrl: m.peerUrl, publicKey: m.publicKey }) as Extract<MemberCommand, { op: 'add' }>;
    return { id: c.id, clientUrl: c.clientUrl, peerUrl: c.peerUrl, publicKey: c.publicKey };
  });
  for (let i = 0; i < members.length; i++) {
    if (i > 0 && members[i].id <= members[i - 1].id) throw malformed(`${where}.members must be sorted by distinct id`);
    try {
      checkDistinct(members, members[i]);
    } catch (err) {
      throw malformed(`${where}: ${(err as Error).message}`);
    }
  }
  const ids = (x: unknown, name: string) => {
    if (!Array.isArray(x) || x.length > MAX_REGISTRY_MEMBERS) throw malformed(`${where}.${name} must be an array of at most ${MAX_REGISTRY_MEMBERS}`);
    const out = x.map((id, i) => checkMemberId(id, `${where}.${name}[${i}]`));
    for (let i = 1; i < out.length; i++) if (out[i] <= out[i - 1]) throw malformed(`${where}.${name} must be sorted and distinct`);
    return out;
  };
  const voters = ids(v.voters, 'voters');
  const learners = ids(v.learners, 'learners');
  if (voters.some((id) => learners.includes(id))) throw malformed(`${where}: a member is both voter and learner`);
  // Absent before removed ids were kept (the field is ignored by older readers, so either can read the other's files).
  let removed: number[] = [];
  if (v.removed !== undefined) {
    if (!Array.isArray(v.removed) || v.removed.length > MAX_REMOVED_MEMBERS) throw malformed(`${where}.removed must be an array of at most ${MAX_REMOVED_MEMBERS}`);
    removed = v.removed.map((id, i) => checkMemberId(id, `${where}.removed[${i}]`));
    if (new Set(removed).size !== removed.length) throw malformed(`${where}.removed must be distinct`);
    if (removed.some((id) => voters.includes(id) || learners.includes(id))) throw malformed(`${where}: a removed member is a voter or learner`);
  }
  return { index, members, voters, learners, removed };
}

/** Decodes {@link encodeMembers}; `MEMBERS_MALFORMED` for anything else (bounded, every field checked). */
export function decodeMembers(bytes: Uint8Array): MembershipState[] {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0 || bytes.length > MAX_REGISTRY_BYTES) throw malformed(`registry bytes must be 1 .. ${MAX_REGISTRY_BYTES} bytes`);
  let doc: unknown;
  try {
    doc = cbor.decode(bytes);
  } catch (err) {
    throw malformed(`registry bytes are not CBOR: ${(err as Error).message}`);
  }
  if (!isObject(doc) || doc.v !== 1 || !Array.isArray(doc.versions)) throw malformed('registry bytes are not a version-1 registry');
  if (doc.versions.length === 0 || doc.versions.length > MAX_REGISTRY_VERSIONS) throw malformed(`a registry holds 1 .. ${MAX_REGISTRY_VERSIONS} versions`);
  const versions = doc.versions.map((s: unknown, i: number) => parseState(s, `versions[${i}]`));
  for (let i = 1; i < versions.length; i++) if (versions[i].index <= versions[i - 1].index) throw malformed('registry versions must have increasing indexes');
  return versions;
}

/**
 * The registry (pure core): the versions of the membership, oldest first, each reflecting every
 * membership entry up to its index. Changes at or below the current index are replays and are
 * ignored.
 */
export class MemberRegistry {
  private versions: MembershipState[];

  constructor(versions: readonly MembershipState[]) {
    if (versions.length === 0) throw malformed('a registry needs at least one version');
    this.versions = [...versions];
  }

  /** The seed of a new group: `members` registered, with `voters` (the bootstrap voters; none for a joining member) at index 0. */
  static seed(members: readonly MemberInfo[], voters: readonly number[] = []): MemberRegistry {
    let s: MembershipState = { index: 0, members: [], voters: [], learners: [], removed: [] };
    for (const m of [...members].sort((a, b) => a.id - b.id)) s = applyMemberCommand(s, 0, { type: 'member', op: 'add', ...m });
    return new MemberRegistry([{ ...s, voters: sortedIds(voters) }]);
  }

  /** The newest version. */
  current(): MembershipState {
    return this.versions[this.versions.length - 1];
  }

  /** Log index the registry reflects. */
  get index(): number {
    return this.current().index;
  }

  /** Versions kept, oldest first. */
  history(): readonly MembershipState[] {
    return this.versions;
  }

  /**
   * The membership as of log index `index`: the newest version at or before it. Throws
   * `MEMBERS_UNAVAILABLE` when the history no longer reaches back to it.
   */
  at(index: number): MembershipState {
    for (let i = this.versions.length - 1; i >= 0; i--) if (this.versions[i].index <= index) return this.versions[i];
    throw new MembersError(MembersErrorCode.Unavailable, `the member registry starts at log index ${this.versions[0].index}, after ${index}`);
  }

  /** The signer set of a checkpoint at log index `index` ({@link signerSetOf} of {@link at}). */
  signerSetAt(index: number): MemberSignerSet {
    return signerSetOf(this.at(index));
  }

  /** Applies the `member` command of entry `index`; false for a replay (index at or below the registry's). Throws `MEMBERS_MALFORMED` / `MEMBERS_CONFLICT` (nothing changed) when refused. */
  applyMember(index: number, cmd: MemberCommand): boolean {
    if (index <= this.index) return false;
    // Checked again at apply: the log, not the route, is what every replica trusts.
    this.push(applyMemberCommand(this.current(), index, parseMemberCommand(cmd)));
    return true;
  }

  /** Applies the Raft membership change of entry `index`; false for a replay. */
  applyConfChange(index: number, cc: ConfChange): boolean {
    if (index <= this.index) return false;
    this.push(applyConfChangeToState(this.current(), index, cc));
    return true;
  }

  /**
   * Drops the versions no entry after `durableIndex` can need: those older than the newest version
   * at or before it (entries up to `durableIndex` are never applied again).
   */
  prune(durableIndex: number): void {
    let keepFrom = 0;
    for (let i = 0; i < this.versions.length; i++) if (this.versions[i].index <= durableIndex) keepFrom = i;
    if (keepFrom > 0) this.versions = this.versions.slice(keepFrom);
  }

  /** Replaces the whole registry (a snapshot install). */
  replace(versions: readonly MembershipState[]): void {
    if (versions.length === 0) throw malformed('a registry needs at least one version');
    this.versions = [...versions];
  }

  /** The registry as of `index` (default: now), encoded for a snapshot: one version. */
  export(index = this.index): Uint8Array {
    return encodeMembers([{ ...this.at(index), index: Math.min(index, this.index) }]);
  }

  private push(s: MembershipState): void {
    this.versions.push(s);
    if (this.versions.length > MAX_REGISTRY_VERSIONS) this.versions = this.versions.slice(this.versions.length - MAX_REGISTRY_VERSIONS);
  }
}

/** Name of the registry file in the group's directory. */
export const MEMBERS_FILE = 'members';

/**
 * The registry on disk: `<dir>/members` (CBOR of the kept versions), replaced atomically (temporary
 * file, fsync, rename, directory fsync) at every change, synchronously, so that the file reflects
 * every membership entry this member applied by the time the entry's apply returns.
 */
export class MemberStore {
  private constructor(
    private readonly file: string,
    /** The registry. */
    readonly registry: MemberRegistry,
  ) {}

  /**
   * Opens the registry in `dir`, or creates it from `seed` when the file is missing. A file that
   * does not decode is `MEMBERS_MALFORMED` (nothing is overwritten).
   */
  static open(dir: string, seed: () => MemberRegistry): MemberStore {
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, MEMBERS_FILE);
    let bytes: Uint8Array | undefined;
    try {
      const st = fs.statSync(file);
      if (st.size > MAX_REGISTRY_BYTES) throw malformed(`${MEMBERS_FILE} is ${st.size} bytes, over ${MAX_REGISTRY_BYTES}`);
      bytes = new Uint8Array(fs.readFileSync(file));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (bytes) return new MemberStore(file, new MemberRegistry(decodeMembers(bytes)));
    const store = new MemberStore(file, seed());
    store.persist();
    return store;
  }

  /** Writes the registry (atomically, synced). */
  persist(): void {
    const bytes = encodeMembers(this.registry.history());
    try {
      writeFileDurably(this.file, bytes);
    } catch (err) {
      // The registry in memory is ahead of the file: the member must stop (an I/O error is fatal
      // to the group) and re-apply the entry after a restart.
      throw Object.assign(new Error(`cannot write the member registry: ${(err as Error).message}`, { cause: err }), { code: 'IO_ERROR' });
    }
  }

  /** {@link MemberRegistry.applyMember}, then persisted (with versions before `durableIndex` dropped). */
  applyMember(index: number, cmd: MemberCommand, durableIndex: number): boolean {
    if (!this.registry.applyMember(index, cmd)) return false;
    this.registry.prune(durableIndex);
    this.persist();
    return true;
  }

  /** {@link MemberRegistry.applyConfChange}, then persisted. */
  applyConfChange(index: number, cc: ConfChange, durableIndex: number): boolean {
    if (!this.registry.applyConfChange(index, cc)) return false;
    this.registry.prune(durableIndex);
    this.persist();
    return true;
  }

  /** Replaces the registry by `bytes` from {@link MemberRegistry.export} (validated first; malformed bytes change nothing) and persists it; returns its index. */
  import(bytes: Uint8Array): number {
    const versions = decodeMembers(bytes);
    this.registry.replace(versions);
    this.persist();
    return this.registry.index;
  }
}

/** A member as `GET /v1/cluster/members` and `proofkv cluster status` show it. */
export interface MemberView extends MemberInfo {
  /** `voter` and `learner` are in the Raft membership; `registered` is known but not (or no longer) in it. */
  role: 'voter' | 'learner' | 'registered';
  /** True for the leader this member knows. */
  leader: boolean;
  /** The leader's match index of this member (only when answered by the leader). */
  match?: number;
}

/** What {@link Membership} drives: the group, as the write path exposes it. */
export interface MembershipGroup {
  /** This member's id. */
  readonly id: number;
  /** Proposes a `member` command through the log and resolves once it is applied here. */
  proposeMember(cmd: MemberCommand): Promise<void>;
  /** Proposes a Raft membership change and resolves once it is applied here. */
  proposeConfChange(cc: ConfChange): Promise<void>;
  /** The group as this member sees it (leader, commit index). */
  status(): { leader: number; commit: number; role: string };
  /** The leader's progress of every member (empty when this member does not lead). */
  progress(): Map<number, { match: number }>;
  /**
   * Why a change of the voters must wait, or undefined when it may go ahead: the last one is not
   * recorded by a checkpoint yet, or that checkpoint's certificate lacks a quorum of its signer set
   * or of the previous one. Absent: never.
   */
  setChangePending?(): string | undefined;
  /** Called once a change of the voters is applied here: the write path proposes a checkpoint, which records the new signer set. */
  afterSetChange?(): void;
}

/** Options of {@link Membership.promote} and {@link Membership.remove}. */
export interface SetChangeOptions {
  /**
   * Change the voters although the previous change is not certified yet (`MEMBERS_PENDING`
   * otherwise). A verifier that trusts the set before a change whose certificate never completes
   * cannot follow it (docs/cluster.md § Membership): for an operator replacing a dead member.
   */
  force?: boolean;
}

/**
 * Runtime membership changes, as etcd's raftexample makes them, over a {@link MemberRegistry}:
 * `add` registers the member through the log, then adds it as a learner; `promote` makes a
 * caught-up learner a voter; `remove` takes a member out of the group, then forgets it. Each step
 * is a log entry (proposed on any member: a follower's proposal is forwarded to the leader), so
 * every replica sees the same sequence. Refusals are {@link MembersError}s.
 */
export class Membership {
  constructor(
    private readonly registry: MemberRegistry,
    private readonly group: MembershipGroup,
  ) {}

  /** Every registered member, and members of the Raft group without metadata, sorted by id. */
  list(): MemberView[] {
    const s = this.registry.current();
    const st = this.group.status();
    const progress = this.group.progress();
    const ids = sortedIds([...s.members.map((m) => m.id), ...s.voters, ...s.learners]);
    return ids.map((id) => {
      const m = s.members.find((x) => x.id === id) ?? { id, clientUrl: '', peerUrl: '', publicKey: new Uint8Array(0) };
      const role = s.voters.includes(id) ? 'voter' : s.learners.includes(id) ? 'learner' : 'registered';
      const match = progress.get(id)?.match;
      return { ...m, role, leader: st.leader === id, ...(match === undefined ? {} : { match }) };
    });
  }

  /** Ids removed from the group, oldest removal first (never registered again; {@link MembershipState.removed}). */
  removed(): number[] {
    return [...this.registry.current().removed];
  }

  /**
   * Registers `m` (a `member add` entry) and adds it as a learner (`AddLearner`). Asking again for
   * a member already registered with the same fields finishes what is missing and changes nothing
   * else. `MEMBERS_MALFORMED` / `MEMBERS_CONFLICT` (nothing proposed) when the registry would
   * refuse it.
   */
  async add(m: { id: unknown; clientUrl: unknown; peerUrl: unknown; publicKey: unknown }): Promise<MemberView> {
    const cmd = parseMemberCommand({ type: 'member', op: 'add', id: m.id, clientUrl: m.clientUrl, peerUrl: m.peerUrl, publicKey: m.publicKey }) as Extract<MemberCommand, { op: 'add' }>;
    const before = this.registry.current();
    // The same check the apply makes, to refuse before anything enters the log.
    applyMemberCommand(before, before.index + 1, cmd);
    const inGroup = before.voters.includes(cmd.id) || before.learners.includes(cmd.id);
    if (!before.members.some((x) => x.id === cmd.id && sameMember(x, { ...cmd }))) await this.group.proposeMember(cmd);
    if (!inGroup) await this.group.proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: cmd.id });
    return this.view(cmd.id);
  }

  /**
   * Promotes learner `id` to voter (`AddNode`). On the leader, `MEMBERS_CONFLICT` unless the
   * learner has caught up (its match index reached the commit index, the core's own rule); a
   * follower forwards the change and the leader's core applies the same rule (a refused change
   * times out).
   */
  async promote(id: number, options: SetChangeOptions = {}): Promise<MemberView> {
    checkMemberId(id, 'member id');
    const s = this.registry.current();
    if (s.voters.includes(id)) return this.view(id);
    if (!s.learners.includes(id)) throw new MembersError(s.members.some((m) => m.id === id) ? MembersErrorCode.Conflict : MembersErrorCode.NotFound, `member ${id} is not a learner of the group`);
    const progress = this.group.progress();
    if (progress.size > 0) {
      const match = progress.get(id)?.match ?? 0;
      const commit = this.group.status().commit;
      if (match < commit) throw new MembersError(MembersErrorCode.Conflict, `learner ${id} has not caught up (match ${match} of commit ${commit}); try again`);
    }
    this.checkSetChange(`promote member ${id}`, options);
    await this.group.proposeConfChange({ type: ConfChangeType.AddNode, nodeId: id });
    this.group.afterSetChange?.();
    return this.view(id);
  }

  /**
   * Removes member `id`, in two steps when it is a voter, so that it signs the checkpoint that
   * takes it out of the signer set (its signature counts for the previous set's quorum):
   * 1. a voter is **demoted** to learner (`AddLearner` of a voter): it leaves the voters — the
   *    signer set of the next checkpoint, which the member applying the change proposes — and
   *    keeps receiving the log, so it applies that checkpoint and signs it. Answers `'demoted'`:
   *    ask again;
   * 2. a learner is removed (`RemoveNode`), then forgotten (`member remove`) — once the
   *    signer-set change is certified by a quorum of the new set and of the previous one
   *    (`MEMBERS_PENDING` until then). Answers `'removed'`.
   *
   * `force` removes at once (a dead member cannot sign anyway), without waiting for any
   * certificate. The member answering the request cannot remove itself (it would stop before
   * forgetting itself): `MEMBERS_CONFLICT`, ask another member.
   */
  async remove(id: number, options: SetChangeOptions = {}): Promise<'removed' | 'demoted'> {
    checkMemberId(id, 'member id');
    if (id === this.group.id) throw new MembersError(MembersErrorCode.Conflict, `member ${id} cannot remove itself: send the request to another member`);
    const s = this.registry.current();
    const inGroup = s.voters.includes(id) || s.learners.includes(id);
    if (!inGroup && !s.members.some((m) => m.id === id)) throw new MembersError(MembersErrorCode.NotFound, `member ${id} is not a member`);
    if (s.voters.includes(id) && s.voters.length === 1) throw new MembersError(MembersErrorCode.Conflict, `member ${id} is the last voter`);
    if (s.voters.includes(id) && options.force !== true) {
      this.checkSetChange(`remove member ${id}`, options);
      await this.group.proposeConfChange({ type: ConfChangeType.AddLearner, nodeId: id });
      this.group.afterSetChange?.();
      return 'demoted';
    }
    // A learner may be a voter demoted by step 1: it leaves once that change is certified.
    if (s.learners.includes(id)) this.checkSetChange(`remove member ${id}`, options);
    if (inGroup) await this.group.proposeConfChange({ type: ConfChangeType.RemoveNode, nodeId: id });
    if (s.voters.includes(id)) this.group.afterSetChange?.();
    await this.group.proposeMember({ type: 'member', op: 'remove', id });
    return 'removed';
  }

  /**
   * One signer-set change at a time: a change of the voters waits until the previous one is
   * recorded by a checkpoint whose certificate meets a quorum of the new set and of the set
   * before it. Two changes in one checkpoint, or a change whose certificate can no longer
   * complete because the next change removed a signer it needed, would leave verifiers that
   * trust the older set unable to follow (docs/cluster.md § Membership).
   */
  private checkSetChange(what: string, options: SetChangeOptions): void {
    if (options.force === true) return;
    const why = this.group.setChangePending?.();
    if (why !== undefined) throw new MembersError(MembersErrorCode.Pending, `cannot ${what} yet: ${why}; try again once it is certified, or force the change`);
  }

  private view(id: number): MemberView {
    const v = this.list().find((x) => x.id === id);
    if (!v) throw new MembersError(MembersErrorCode.NotFound, `member ${id} is not a member`);
    return v;
  }
}
