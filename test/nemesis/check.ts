/**
 * The checks of a nemesis run, after the cluster healed and settled. {@link checkRun} reads the
 * final state from every member (the certified head, each key's proven history, every
 * checkpoint, consistency proofs for the heads clients trusted) and runs the pure checks below on
 * it, each a named entry of the {@link CheckReport}:
 *
 * | check | fails on |
 * |---|---|
 * | linearizable per key | a key whose linearizable operations (writes, conditional writes and their `CONDITION_FAILED`, deletes, appends, batch members, linearizable gets, history reads) have no legal order (WGL); a search that gives up is `unknown`, which fails the check too |
 * | no acknowledged write lost | an `ok` write whose value (or tombstone) is not at its acknowledged version in its key's final proven history |
 * | no write applied twice | a value (each write's is unique) at two versions, a version written by no client, more tombstones on a key than deletes sent to it |
 * | reads show committed data | a read (any kind, serializable and verified ones too) showing at some version another value than the final history has there, or a version the final history lacks |
 * | no fork or rollback | a head a client trusted that the final head does not extend (RFC 9162 consistency proof, verified with `proofs/`) |
 * | members agree | members whose certified heads differ, whose checkpoint at some index differs (MasterRoot, seq, chain) or is not proven leaf of the member's head (inclusion proof), or whose proven histories of a key differ |
 * | verified reads verified | a verified read that failed verification (`VerificationError`), but for too few trusted signatures (`QUORUM_NOT_MET`, `UNTRUSTED_KEY`) during a membership change (documented as transient) |
| batches all or nothing | a batch (acknowledged or not) some of whose puts are in the final state and some not |
 *
 * How the final history settles operations whose outcome is unknown (`info`): every value the
 * workload writes is unique, so an `info` write whose value is in its key's final history took
 * effect, at the version where it is (and, being linearizable, before any operation that
 * completed having seen that version or a newer one: its response time is bounded by that); one
 * whose value is absent never took effect (after the heal every member applied the same log, so
 * nothing sent is still pending). An `info` delete has no value: it is "maybe" (the model tries
 * both), and only at a tombstone of the final history that no delete of known version wrote (with
 * none, it never took effect). Batches are split into per-key operations with the batch's call
 * and return: atomicity across keys is not checked by the linearizability checker; the final
 * state shows each batch whole or not at all ("batches all or nothing"), but whether a reader
 * could see one half applied is not checked.
 * @module
 */
import { ProofKVClient, ProofKVHttpError, VerificationError, type Entry } from '../../client-sdk/index.js';
import { b64List, parseCheckpoint, parseHead } from '../../client-sdk/wire.js';
import { verifyCheckpointInclusion } from '../../proofs/checkpoint.js';
import { fromBase64Url } from '../../client-sdk/bytes.js';
import { verifyConsistency } from '../../proofs/log.js';
import { toHex } from '../../proofs/bytes.js';
import { wgl, type Model, type WglTrace } from '../raft/linearizability.js';
import { isWrite, writesOf, type FaultEvent, type OpRecord, type VersionValue } from './history.js';

/** What the runner knows of the cluster after the heal. */
export interface FinalState {
  members: Array<{ id: number; url: string }>;
  /** The keys the clients were configured with (the members at start) and their quorum. */
  publicKeys: Uint8Array[];
  quorum: number;
}

/** The trust the final reads use: keys and quorum, and where they come from. */
export interface FinalTrust {
  publicKeys: Uint8Array[];
  quorum: number;
  /** Set when the configured keys no longer reach a quorum and the current voters' keys are used. */
  note?: string;
}

/** One named check. */
export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

/** The verdict of a run. */
export interface CheckReport {
  ok: boolean;
  checks: Check[];
  figures: Record<string, number>;
}

/** One version of a key in the final proven history. */
export interface FinalEntry extends VersionValue {
  seq: number;
}

/** The final state as the pure checks take it. */
export interface FinalView {
  /** Each key's proven history (every version, oldest first), from the reference member. */
  histories: Map<string, FinalEntry[]>;
}

/** Names of the checks, as they appear in reports. */
export const CHECK = {
  linearizable: 'linearizable per key',
  lost: 'no acknowledged write lost',
  twice: 'no write applied twice',
  reads: 'reads show committed data',
  fork: 'no fork or rollback',
  members: 'members agree',
  verified: 'verified reads verified',
  batches: 'batches all or nothing',
} as const;

/** At most this many problems are listed in a check's detail. */
const MAX_LISTED = 12;

function listed(problems: string[]): string {
  const shown = problems.slice(0, MAX_LISTED).join('\n');
  return problems.length > MAX_LISTED ? `${shown}\n… and ${problems.length - MAX_LISTED} more` : shown;
}

/** The token of a value: the last appended suffix (`|c1-4`), or the whole value of a put. */
export function tokenOf(value: string): string {
  const i = value.lastIndexOf('|');
  return i >= 0 ? value.slice(i) : value;
}

const fmt = (v: string | null | undefined) => (v === null || v === undefined ? 'tombstone/absent' : JSON.stringify(v.length > 40 ? `…${v.slice(-40)}` : v));

// ---- per-key operations for the linearizability checker -----------------------------------------

/** One key's operation as the model sees it. */
export interface KeyOp {
  call: number;
  ret: number;
  /** The record it comes from. */
  id: number;
  client: number;
  type: 'put' | 'append' | 'delete' | 'maybe-delete' | 'cond-fail' | 'get' | 'history';
  value?: string;
  /** Writes: the version it wrote, when known. Gets: the version read (undefined: absent or deleted). */
  version?: number;
  ifVersion?: number;
  ifAbsent?: boolean;
  /** Gets: the value read (null: absent or deleted). */
  read?: string | null;
  /**
   * Deletes of unknown version (an `info` delete, a member of an `info` batch that was applied):
   * the versions it may have written — the final history's tombstones that no delete of known
   * version wrote.
   */
  allowed?: ReadonlySet<number>;
  /** History reads: the last version listed (undefined: none) and its value, and the lowest asked. */
  last?: VersionValue;
  minVersion?: number;
}

/** A model state: the key's newest version (tombstones included) and its live value. */
interface KvState {
  version: number;
  value: string | null;
}

function stepOne(s: KvState, op: KeyOp): KvState[] {
  const cond = (): boolean => (op.ifVersion === undefined || s.version === op.ifVersion) && (!op.ifAbsent || s.value === null);
  const next = (value: string | null): KvState[] => (op.version !== undefined && op.version !== s.version + 1 ? [] : [{ version: s.version + 1, value }]);
  switch (op.type) {
    case 'put':
      return cond() ? next(op.value!) : [];
    case 'append':
      return cond() ? next((s.value ?? '') + op.value!) : [];
    case 'delete':
      return op.allowed && !op.allowed.has(s.version + 1) ? [] : next(null);
    case 'maybe-delete':
      return op.allowed && !op.allowed.has(s.version + 1) ? [s] : [s, { version: s.version + 1, value: null }];
    case 'cond-fail':
      return cond() ? [] : [s];
    case 'get':
      return s.value === op.read && (op.version === undefined || op.version === s.version) ? [s] : [];
    case 'history':
      if (op.last === undefined) return s.version < Math.max(1, op.minVersion ?? 0) ? [s] : [];
      return s.version === op.last.version && s.value === op.last.value ? [s] : [];
  }
}

/** The most states a "maybe" operation may leave open at once before the search is 'unknown'. */
const MAX_STATES = 64;

/** The key-value model over sets of states (an `info` delete is "maybe"). */
export const kvModel: Model<KvState[], KeyOp> = {
  init: [{ version: 0, value: null }],
  step(states, op) {
    const out: KvState[] = [];
    const seen = new Set<string>();
    for (const s of states) {
      for (const n of stepOne(s, op)) {
        const k = `${n.version}:${n.value === null ? '-' : `${n.value.length}:${tokenOf(n.value)}`}`;
        if (!seen.has(k)) {
          seen.add(k);
          out.push(n);
        }
      }
    }
    if (out.length > MAX_STATES) throw new RangeError('too many possible states');
    return out.length > 0 ? out : undefined;
  },
  key: (states) => states.map((s) => `${s.version}:${s.value === null ? '-' : `${s.value.length}:${tokenOf(s.value)}`}`).join(','),
};

/**
 * Each key's operations for the model, with `info` writes settled by the final history (see the
 * module comment). Serializable gets and verified reads are not linearizable operations and are
 * left out (the read check covers them).
 */
export function keyOps(history: OpRecord[], view: FinalView): Map<string, KeyOp[]> {
  const out = new Map<string, KeyOp[]>();
  const add = (key: string, op: KeyOp) => {
    const l = out.get(key);
    if (l) l.push(op);
    else out.set(key, [op]);
  };
  // Where each value is in the final histories.
  const where = new Map<string, { key: string; version: number }>();
  for (const [key, entries] of view.histories) for (const e of entries) if (e.value !== null) where.set(tokenOf(e.value), { key, version: e.version });

  for (const op of history) {
    if (isWrite(op)) {
      const members = writesOf(op);
      if (op.outcome === 'fail') {
        if (op.error === 'CONDITION_FAILED' && op.kind !== 'batch') add(op.key, { call: op.call, ret: op.ret, id: op.id, client: op.client, type: 'cond-fail', ifVersion: op.ifVersion, ifAbsent: op.kind === 'put-if-absent' });
        continue;
      }
      let applied = op.outcome === 'ok';
      if (!applied) applied = members.some((m) => m.value !== undefined && where.get(tokenOf(m.value))?.key === m.key);
      const maybe = op.outcome === 'info' && members.every((m) => m.value === undefined);
      if (!applied && !maybe) continue;
      members.forEach((m, i) => {
        const version = op.outcome === 'ok' ? (op.kind === 'batch' ? op.result?.versions?.[i]?.version : op.result?.version) : m.value !== undefined ? where.get(tokenOf(m.value))?.version : undefined;
        const type: KeyOp['type'] = m.kind === 'delete' ? (maybe ? 'maybe-delete' : 'delete') : m.kind;
        add(m.key, {
          call: op.call,
          ret: op.ret,
          id: op.id,
          client: op.client,
          type,
          value: m.value,
          version,
          ifVersion: op.kind === 'put-if-version' ? op.ifVersion : undefined,
          ifAbsent: op.kind === 'put-if-absent' || undefined,
        });
      });
      continue;
    }
    if (op.outcome !== 'ok' || !op.result) continue;
    if (op.kind === 'get') {
      add(op.key, { call: op.call, ret: op.ret, id: op.id, client: op.client, type: 'get', read: op.result.value ?? null, version: op.result.version });
    } else if (op.kind === 'history' && op.result.complete) {
      const vs = op.result.versions ?? [];
      add(op.key, { call: op.call, ret: op.ret, id: op.id, client: op.client, type: 'history', last: vs.length > 0 ? vs[vs.length - 1] : undefined, minVersion: op.result.minVersion ?? 0 });
    }
  }
  // A delete of unknown version wrote one of the tombstones no delete of known version wrote;
  // with none left, an unknown delete never took effect.
  for (const [key, ops] of out) {
    const known = new Set(ops.filter((o) => o.type === 'delete' && o.version !== undefined).map((o) => o.version));
    const free = new Set((view.histories.get(key) ?? []).filter((e) => e.value === null && !known.has(e.version)).map((e) => e.version));
    const kept = ops.filter((o) => !(o.type === 'maybe-delete' && free.size === 0));
    for (const o of kept) if ((o.type === 'delete' && o.version === undefined) || o.type === 'maybe-delete') o.allowed = free;
    out.set(key, kept);
  }
  // An applied write of unknown return took effect before any operation that completed having
  // seen its version (or a newer one): bound its return by the earliest such completion.
  for (const ops of out.values()) {
    const seenAt: Array<{ version: number; ret: number }> = [];
    for (const o of ops) {
      if (o.ret === Infinity) continue;
      const v = o.type === 'history' ? o.last?.version : o.type === 'cond-fail' || o.type === 'maybe-delete' ? undefined : o.version;
      if (v !== undefined) seenAt.push({ version: v, ret: o.ret });
    }
    seenAt.sort((a, b) => b.version - a.version);
    const minRet: number[] = [];
    let m = Infinity;
    for (const s of seenAt) minRet.push((m = Math.min(m, s.ret)));
    for (const o of ops) {
      if (o.ret !== Infinity || o.version === undefined) continue;
      // The earliest completion among operations that saw version >= o.version.
      let lo = 0;
      let hi = seenAt.length; // seenAt[0..hi) have version >= o.version
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (seenAt[mid].version >= o.version) lo = mid + 1;
        else hi = mid;
      }
      if (lo > 0) o.ret = Math.max(o.call, minRet[lo - 1]);
    }
  }
  return out;
}

/** Linearizability of every key's operations. */
export function checkLinearizable(history: OpRecord[], view: FinalView, maxSteps = 5_000_000): Check & { violations: number; unknown: number } {
  const bad: string[] = [];
  let unknown = 0;
  let violations = 0;
  let count = 0;
  for (const [key, ops] of [...keyOps(history, view)].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    count += ops.length;
    let r: boolean | 'unknown';
    const trace: WglTrace = { deepest: 0, last: -1 };
    try {
      r = wgl(ops, kvModel, maxSteps, trace);
    } catch (err) {
      if (!(err instanceof RangeError)) throw err;
      r = 'unknown';
    }
    if (r === 'unknown') {
      unknown++;
      bad.push(`${key}: search gave up after ${maxSteps} steps (${ops.length} operations): unknown, not ok`);
    } else if (!r) {
      violations++;
      const at = trace.last >= 0 ? ops[trace.last] : undefined;
      bad.push(`${key}: not linearizable (${ops.length} operations); at most ${trace.deepest} could be ordered, the last of them #${at?.id ?? '?'}; the operations around it:\n${describeOps(ops, at)}`);
    }
  }
  const ok = bad.length === 0;
  return {
    name: CHECK.linearizable,
    ok,
    detail: ok
      ? `${count} operations on ${view.histories.size} keys linearizable (batches checked per key: atomicity across keys is not checked here)`
      : listed(bad),
    violations,
    unknown,
  };
}

/** A readable excerpt of one key's operations: 30 by call around `at` (default: the first 30). */
function describeOps(ops: KeyOp[], at?: KeyOp): string {
  const sorted = ops.slice().sort((a, b) => a.call - b.call);
  const i = at ? sorted.indexOf(at) : 0;
  return sorted
    .slice(Math.max(0, i - 12), Math.max(0, i - 12) + 30)
    .map((o) => {
      const t = `[${o.call.toFixed(0)}, ${o.ret === Infinity ? '∞' : o.ret.toFixed(0)}]`;
      const cond = o.ifVersion !== undefined ? ` ifVersion ${o.ifVersion}` : o.ifAbsent ? ' ifAbsent' : '';
      const what =
        o.type === 'get' ? `get -> ${fmt(o.read)} v${o.version ?? '?'}` : o.type === 'history' ? `history -> last ${o.last ? `v${o.last.version} ${fmt(o.last.value)}` : 'none'}` : `${o.type}${o.value !== undefined ? ` ${fmt(o.value)}` : ''}${cond} v${o.version ?? '?'}`;
      return `  #${o.id} c${o.client} ${t} ${what}`;
    })
    .join('\n');
}

/** Each key's final entries by version. */
function byVersion(view: FinalView): Map<string, Map<number, FinalEntry>> {
  return new Map([...view.histories].map(([k, list]) => [k, new Map(list.map((e) => [e.version, e]))]));
}

/** Every acknowledged write is at its version in its key's final history. */
export function checkNoLostWrite(history: OpRecord[], view: FinalView): Check & { lost: number; acked: number } {
  const bad: string[] = [];
  let acked = 0;
  const final = byVersion(view);
  for (const op of history) {
    if (!isWrite(op) || op.outcome !== 'ok') continue;
    writesOf(op).forEach((m, i) => {
      acked++;
      const version = op.kind === 'batch' ? op.result?.versions?.[i]?.version : op.result?.version;
      const e = version === undefined ? undefined : final.get(m.key)?.get(version);
      const want = m.value === undefined ? null : m.value;
      const okHere = e !== undefined && (want === null ? e.value === null : e.value !== null && tokenOf(e.value) === tokenOf(want) && (m.kind === 'append' || e.value === want));
      if (!okHere) bad.push(`#${op.id} ${op.kind} ${m.key} ${fmt(want)} acknowledged at version ${version}: final history has ${e ? fmt(e.value) : 'no such version'}`);
    });
  }
  return { name: CHECK.lost, ok: bad.length === 0, detail: bad.length === 0 ? `${acked} acknowledged writes, each at its version in the final proven history` : listed(bad), lost: bad.length, acked };
}

/** No value twice, no version without a writer, no more tombstones than deletes sent. */
export function checkNoDuplicate(history: OpRecord[], view: FinalView): Check & { duplicates: number } {
  const bad: string[] = [];
  const writers = new Map<string, { key: string; id: number; refused: boolean }>();
  const deletes = new Map<string, number>();
  for (const op of history) {
    if (!isWrite(op)) continue;
    for (const m of writesOf(op)) {
      if (m.value !== undefined) writers.set(tokenOf(m.value), { key: m.key, id: op.id, refused: op.outcome === 'fail' });
      else if (op.outcome !== 'fail') deletes.set(m.key, (deletes.get(m.key) ?? 0) + 1);
    }
  }
  let duplicates = 0;
  for (const [key, entries] of view.histories) {
    const at = new Map<string, number>();
    let tombstones = 0;
    for (const e of entries) {
      if (e.value === null) {
        tombstones++;
        continue;
      }
      const t = tokenOf(e.value);
      const first = at.get(t);
      if (first !== undefined) {
        duplicates++;
        bad.push(`${key}: value ${fmt(t)} at versions ${first} and ${e.version} (a write applied twice)`);
      } else at.set(t, e.version);
      const w = writers.get(t);
      if (!w) bad.push(`${key} v${e.version}: value ${fmt(e.value)} written by no recorded operation`);
      else if (w.key !== key) bad.push(`${key} v${e.version}: value ${fmt(t)} was written to ${w.key} (#${w.id})`);
      else if (w.refused) bad.push(`${key} v${e.version}: value ${fmt(t)} of #${w.id}, a write refused with a definite error, took effect`);
    }
    const sent = deletes.get(key) ?? 0;
    if (tombstones > sent) {
      duplicates++;
      bad.push(`${key}: ${tombstones} tombstones, but only ${sent} deletes were sent`);
    }
  }
  return { name: CHECK.twice, ok: bad.length === 0, detail: bad.length === 0 ? `every value of ${view.histories.size} final histories written once, by a recorded operation` : listed(bad), duplicates };
}

/**
 * Every batch took effect whole or not at all in the final state: of its puts (their values are
 * unique; a delete leaves no value to find) all are in their keys' final histories, or none.
 * Whether another client could see a batch half applied is not checked (batches are split per
 * key for the linearizability checker).
 */
export function checkBatches(history: OpRecord[], view: FinalView): Check {
  const where = new Map<string, string>();
  for (const [key, entries] of view.histories) for (const e of entries) if (e.value !== null) where.set(tokenOf(e.value), key);
  const bad: string[] = [];
  let whole = 0;
  for (const op of history) {
    if (op.kind !== 'batch') continue;
    const puts = (op.ops ?? []).filter((m) => m.value !== undefined);
    const found = puts.filter((m) => where.get(tokenOf(m.value!)) === m.key);
    if (found.length > 0 && found.length < puts.length) {
      bad.push(`#${op.id} batch (${op.outcome}): ${found.map((m) => `${m.key} ${fmt(m.value)}`).join(', ')} applied, ${puts.filter((m) => !found.includes(m)).map((m) => `${m.key} ${fmt(m.value)}`).join(', ')} not`);
    } else if (found.length > 0) whole++;
  }
  return { name: CHECK.batches, ok: bad.length === 0, detail: bad.length === 0 ? `${whole} batches applied, each whole` : listed(bad) };
}

/** Every read's (version, value) pairs agree with the final history. */
export function checkReads(history: OpRecord[], view: FinalView): Check {
  const bad: string[] = [];
  let reads = 0;
  const final = byVersion(view);
  const none = new Map<number, FinalEntry>();
  for (const op of history) {
    if (isWrite(op) || op.outcome !== 'ok' || !op.result) continue;
    const versions = final.get(op.key) ?? none;
    const shown: VersionValue[] = op.result.versions ?? (op.result.version !== undefined ? [{ version: op.result.version, value: op.result.value ?? null }] : []);
    reads++;
    for (const v of shown) {
      const e = versions.get(v.version);
      if (!e) bad.push(`#${op.id} ${op.kind} ${op.key} showed version ${v.version} ${fmt(v.value)}; the final history has no such version`);
      else if (e.value !== v.value) bad.push(`#${op.id} ${op.kind} ${op.key} showed version ${v.version} as ${fmt(v.value)}; the final history has ${fmt(e.value)}`);
    }
    // A history read lists every version from its lowest: none may be missing in between.
    if (op.result.versions && op.result.versions.length > 1) {
      const vs = op.result.versions.map((v) => v.version);
      for (let i = 1; i < vs.length; i++) if (vs[i] !== vs[i - 1] + 1) bad.push(`#${op.id} ${op.kind} ${op.key} skipped from version ${vs[i - 1]} to ${vs[i]}`);
    }
  }
  return { name: CHECK.reads, ok: bad.length === 0, detail: bad.length === 0 ? `${reads} reads, each showing only committed versions as the final history has them` : listed(bad) };
}

/**
 * How long after a membership change a verified read may still be refused for too few signatures
 * (docs/cluster.md § Membership: the set-change checkpoint's certificate completes when the
 * members' signatures on it are applied, later when a signer died right after the change).
 */
export const SET_CHANGE_TAIL_MS = 15_000;

/**
 * The refusals a set-change certificate that is still short of the previous set's quorum gives: too
 * few signatures of the trusted set (`QUORUM_NOT_MET`), or the same with a signature of the new set
 * among them (`UNTRUSTED_KEY`: `verifyCertifiedHead` names the first valid key outside the trusted
 * set, and a certificate only holds keys of the trusted or the new set).
 */
const SET_CHANGE_REFUSALS = new Set(['VERIFY_QUORUM_NOT_MET', 'VERIFY_UNTRUSTED_KEY']);

/**
 * No verified read failed verification — except a refusal for too few trusted signatures
 * (`QUORUM_NOT_MET`, `UNTRUSTED_KEY`) during a membership change, the faults overlapping it, and
 * {@link SET_CHANGE_TAIL_MS} after, which docs/cluster.md documents as transient (the client
 * refused a head it could not yet verify: safe, and counted apart). Every other reason, and those
 * two at any other time, fail the check.
 */
export function checkVerified(history: OpRecord[], events: FaultEvent[] = []): Check & { failures: number; quorumNotMet: number } {
  // A change's window runs to the end of the faults that overlap it (a member killed during the
  // change cannot sign until it is back), plus the tail.
  const changes = events
    .filter((e) => /member|replace/.test(e.kind))
    .map((e) => ({ start: e.start, end: events.filter((x) => x.start <= e.end && x.end >= e.start).reduce((m, x) => Math.max(m, x.end), e.end) + SET_CHANGE_TAIL_MS }));
  const verified = (o: OpRecord) => o.kind === 'verified-get' || o.kind === 'verified-history';
  const refused = history.filter((o) => verified(o) && o.error?.startsWith('VERIFY_'));
  const duringChange = (o: OpRecord) => SET_CHANGE_REFUSALS.has(o.error ?? '') && changes.some((w) => w.start <= o.call && o.call <= w.end);
  const tolerated = refused.filter(duringChange);
  const bad = refused.filter((o) => !duringChange(o));
  const n = history.filter((o) => verified(o) && o.outcome === 'ok').length;
  const also = tolerated.length > 0 ? `; ${tolerated.length} refused for too few trusted signatures during a membership change (documented as transient)` : '';
  return {
    name: CHECK.verified,
    ok: bad.length === 0,
    detail: bad.length === 0 ? `${n} verified reads verified; none failed verification${also}` : listed(bad.map((o) => `#${o.id} ${o.kind} ${o.key} at ${o.endpoint || '?'} (${(o.call / 1000).toFixed(1)} s): ${o.error}`)) + also,
    failures: bad.length,
    quorumNotMet: tolerated.length,
  };
}

/**
 * Every trusted head is extended by the final head: `proofs` holds the consistency proof from
 * each trusted size to `finalHead.size` (absent: not obtained).
 */
export function checkNoFork(trusted: Array<{ size: number; root: Uint8Array }>, finalHead: { size: number; root: Uint8Array }, proofs: Map<number, Uint8Array[] | Error>): Check & { forks: number } {
  const bad: string[] = [];
  let forks = 0;
  for (const h of trusted) {
    if (h.size > finalHead.size) {
      forks++;
      bad.push(`a client trusted size ${h.size}, above the final head ${finalHead.size} (rollback)`);
      continue;
    }
    const p = proofs.get(h.size);
    if (p === undefined || p instanceof Error) {
      bad.push(`no consistency proof from size ${h.size} to ${finalHead.size}${p ? `: ${p.message}` : ''}`);
      continue;
    }
    const r = verifyConsistency(h.size, finalHead.size, p, h.root, finalHead.root);
    if (!r.ok) {
      forks++;
      bad.push(`trusted head ${h.size} (${toHex(h.root).slice(0, 16)}…) is not extended by the final head ${finalHead.size}: ${r.reason} ${r.message}`);
    }
  }
  return { name: CHECK.fork, ok: bad.length === 0, detail: bad.length === 0 ? `${trusted.length} trusted heads, each extended by the final head (size ${finalHead.size})` : listed(bad), forks };
}

/** What one member showed of the final state. */
export interface MemberView {
  id: number;
  head?: { size: number; root: Uint8Array };
  /** Checkpoint index → its canonical JSON (index, seq, masterRoot, prevCheckpointHash, time, signerSetHash). */
  checkpoints: Map<number, string>;
  histories: Map<string, FinalEntry[]>;
  /** What could not be read. */
  errors: string[];
}

/** Every member shows the same head, the same checkpoint at every index and the same histories. */
export function checkMembersAgree(members: MemberView[]): Check {
  const bad: string[] = [];
  for (const m of members) for (const e of m.errors) bad.push(`member ${m.id}: ${e}`);
  const ref = members.find((m) => m.head);
  if (!ref) return { name: CHECK.members, ok: false, detail: listed([...bad, 'no member showed a certified head']) };
  let compared = 0;
  for (const m of members) {
    if (m === ref || !m.head) continue;
    if (m.head.size !== ref.head!.size || toHex(m.head.root) !== toHex(ref.head!.root)) {
      bad.push(`member ${m.id} head ${m.head.size}/${toHex(m.head.root).slice(0, 16)}…, member ${ref.id} head ${ref.head!.size}/${toHex(ref.head!.root).slice(0, 16)}…`);
    }
    for (const [i, c] of ref.checkpoints) {
      const o = m.checkpoints.get(i);
      if (o === undefined) continue; // an unreadable one is in errors
      compared++;
      if (o !== c) bad.push(`checkpoint ${i}: member ${m.id} ${o}, member ${ref.id} ${c}`);
    }
    for (const [key, h] of ref.histories) {
      const o = m.histories.get(key);
      if (o && JSON.stringify(o) !== JSON.stringify(h)) bad.push(`history of ${key}: member ${m.id} has ${o.length} versions, member ${ref.id} ${h.length}, or they differ`);
    }
  }
  return {
    name: CHECK.members,
    ok: bad.length === 0,
    detail: bad.length === 0 ? `${members.length} members: one certified head (size ${ref.head!.size}), ${compared} checkpoint comparisons equal, the same proven history of every key` : listed(bad),
  };
}

// ---- figures ------------------------------------------------------------------------------------

/** After a fault event: the longest stretch without an acknowledged write. */
export interface Outage {
  event: number;
  kind: string;
  ms: number;
}

/** How long after its end a fault window is still watched for an outage (recovery: elections, catch-up). */
export const OUTAGE_TAIL_MS = 10_000;

/**
 * The longest time without an acknowledged write: overall (from the first invocation to the end
 * of the run), and after each event that kills a member (`kill*`, `torn-tail`, `replace-leader`):
 * the longest gap between the event's start, the completions of acknowledged writes after it, in
 * its window and {@link OUTAGE_TAIL_MS} after (the whole window when none completed), as
 * `test/cluster/failover.test.ts` measures a failover.
 */
export function unavailability(history: OpRecord[], events: FaultEvent[] = [], end?: number): { overall: number; outages: Outage[] } {
  const acks = history.filter((o) => isWrite(o) && o.outcome === 'ok').map((o) => o.ret).sort((a, b) => a - b);
  let last = end ?? 0;
  let first = Infinity;
  for (const o of history) {
    if (end === undefined) last = Math.max(last, o.ret === Infinity ? o.call : o.ret);
    first = Math.min(first, o.call);
  }
  first = Math.min(first, last);
  let overall = 0;
  let prev = first;
  for (const t of [...acks, last]) {
    overall = Math.max(overall, t - prev);
    prev = t;
  }
  const outages = events
    .filter((e) => /kill|torn|replace-leader/.test(e.kind))
    .map((e) => {
      const until = Math.min(last, e.end + OUTAGE_TAIL_MS);
      let gap = 0;
      let at = e.start;
      let any = false;
      for (const t of acks) {
        if (t <= e.start) continue;
        if (t > until) break;
        gap = Math.max(gap, t - at);
        at = t;
        any = true;
      }
      return { event: e.id, kind: e.kind, ms: any ? gap : Math.max(0, until - e.start) };
    });
  return { overall, outages };
}

/** Operation counts by kind and outcome. */
export function opFigures(history: OpRecord[]): Record<string, number> {
  const f: Record<string, number> = { operations: history.length };
  for (const o of history) {
    f[`ops.${o.kind}.${o.outcome}`] = (f[`ops.${o.kind}.${o.outcome}`] ?? 0) + 1;
    f[`outcome.${o.outcome}`] = (f[`outcome.${o.outcome}`] ?? 0) + 1;
  }
  return f;
}

// ---- reading the final state --------------------------------------------------------------------

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The keys an operation touched. */
function keysOf(history: OpRecord[]): string[] {
  const keys = new Set<string>();
  for (const o of history) {
    keys.add(o.key);
    for (const m of o.ops ?? []) keys.add(m.key);
  }
  return [...keys].sort();
}

function toFinal(e: Entry): FinalEntry {
  return { version: e.version, value: e.kind === 'delete' ? null : new TextDecoder().decode(e.value), seq: e.seq };
}

/** Whether an error may go away by asking again (no answer, 5xx, a checkpoint replaced meanwhile). */
function transient(err: unknown): boolean {
  if (err instanceof ProofKVHttpError) return err.status >= 500 || err.code === 'CHECKPOINT_UNAVAILABLE';
  return !(err instanceof VerificationError);
}

/** Retries `f` on transient errors for up to `ms`. */
async function patiently<T>(f: () => Promise<T>, ms = 30_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    try {
      return await f();
    } catch (err) {
      if (!transient(err) || Date.now() > until) throw err;
      await sleep(200);
    }
  }
}

/** Reads what one member shows: its certified head, every checkpoint, each key's proven history. */
async function readMember(m: { id: number; url: string }, trust: FinalTrust, keys: string[], checkpointLimit: number): Promise<MemberView> {
  const view: MemberView = { id: m.id, checkpoints: new Map(), histories: new Map(), errors: [] };
  const client = new ProofKVClient({ endpoints: [m.url], trust: { publicKeys: trust.publicKeys, quorum: trust.quorum }, retries: 3, retryDelayMs: 100, timeoutMs: 10_000, onWarning: () => {} });
  try {
    const cp = await patiently(() => client.checkpoint());
    view.head = { size: cp.head.size, root: cp.head.root };
  } catch (err) {
    view.errors.push(`no verified checkpoint: ${(err as Error).message}`);
    return view;
  }
  for (const key of keys) {
    try {
      const h = await patiently(() => client.verifiedHistory(key));
      view.histories.set(key, h.entries.map(toFinal));
    } catch (err) {
      view.errors.push(`verified history of ${key}: ${(err as Error).message}`);
    }
  }
  const size = view.head.size;
  for (let i = Math.max(0, size - checkpointLimit); i < size; i++) {
    try {
      const r = await patiently(() => client.transport.request<{ checkpoint: unknown; head: unknown; inclusion: unknown }>({ method: 'GET', path: `/v1/checkpoints/${i}` }), 10_000);
      const c = parseCheckpoint(r.body.checkpoint);
      // It is leaf i of the member's log: an inclusion proof in the head it answered with (its certified one, or a newer).
      const head = parseHead(r.body.head);
      const included = verifyCheckpointInclusion(c, b64List(r.body as Record<string, unknown>, 'inclusion', 'checkpoint'), head);
      if (c.index !== i || !included.ok || (head.size === view.head.size && toHex(head.root) !== toHex(view.head.root))) {
        view.errors.push(`checkpoint ${i} is not leaf ${i} of the member's head ${head.size}${included.ok ? '' : `: ${included.reason} ${included.message}`}`);
      }
      view.checkpoints.set(i, JSON.stringify({ index: c.index, seq: c.seq, masterRoot: toHex(c.masterRoot), prev: c.prevCheckpointHash && toHex(c.prevCheckpointHash), time: c.time, signerSetHash: c.signerSetHash && toHex(c.signerSetHash) }));
    } catch (err) {
      view.errors.push(`checkpoint ${i}: ${(err as Error).message}`);
      if (view.errors.length > 50) break;
    }
  }
  return view;
}

/**
 * The trust of the final reads. A fresh client trusting the configured keys (the members at
 * start) cannot accept a head once membership changes left fewer of them than a quorum of the
 * current signer set (the workload's clients followed each change from a head they trusted;
 * docs/cluster.md: a new client is given the current members' keys). Then the current voters'
 * keys from `GET /v1/cluster/members` and their majority are used, and the report says so. The
 * final head stays anchored: "no fork or rollback" proves it extends every head the workload's
 * clients trusted.
 */
export async function finalTrust(final: FinalState): Promise<FinalTrust> {
  const configured: FinalTrust = { publicKeys: final.publicKeys, quorum: final.quorum };
  const probe = new ProofKVClient({ endpoints: final.members.map((m) => m.url), trust: configured, retries: 3, retryDelayMs: 100, timeoutMs: 10_000, onWarning: () => {} });
  try {
    // A set change made by the heal can leave its certificate short of the previous set's quorum
    // for a moment (the documented transient): wait it out before giving up on the configured keys.
    const until = Date.now() + SET_CHANGE_TAIL_MS;
    for (;;) {
      try {
        await patiently(() => probe.checkpoint(), 10_000);
        return configured;
      } catch (err) {
        if (!(err instanceof VerificationError) || !SET_CHANGE_REFUSALS.has(`VERIFY_${err.reason}`) || Date.now() > until) throw err;
        await sleep(500);
      }
    }
  } catch (err) {
    if (!(err instanceof VerificationError)) return configured;
    try {
      const r = await patiently(() => probe.transport.request<{ members: Array<{ id: number; publicKey: string; role: string }> }>({ method: 'GET', path: '/v1/cluster/members' }), 10_000);
      const voters = r.body.members.filter((m) => m.role === 'voter');
      const publicKeys = voters.map((m) => Uint8Array.from(Buffer.from(m.publicKey, 'hex')));
      const quorum = Math.floor(voters.length / 2) + 1;
      return { publicKeys, quorum, note: `the configured keys no longer reach a quorum (${err.reason}): the final state was read trusting the current voters ${voters.map((m) => m.id).join(', ')} (GET /v1/cluster/members), quorum ${quorum}` };
    } catch {
      return configured;
    }
  }
}

/** Waits until every member's latest checkpoint has the same log size (at most `ms`; then the checks say what differs). */
async function settleHeads(final: FinalState, trust: FinalTrust, ms: number): Promise<void> {
  const clients = final.members.map((m) => new ProofKVClient({ endpoints: [m.url], trust: { publicKeys: trust.publicKeys, quorum: trust.quorum }, retries: 1, retryDelayMs: 100, timeoutMs: 5000, onWarning: () => {} }));
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const sizes = await Promise.all(clients.map((c) => c.checkpoint().then((v) => v.head.size, () => -1)));
    if (sizes.every((s) => s >= 0 && s === sizes[0])) return;
    await sleep(300);
  }
}

/** Consistency proofs from every trusted size to `to`, through `client`. */
async function consistencyProofs(client: ProofKVClient, sizes: number[], to: number): Promise<Map<number, Uint8Array[] | Error>> {
  const out = new Map<number, Uint8Array[] | Error>();
  for (const from of new Set(sizes)) {
    if (from < 1 || from > to) continue;
    try {
      const r = await patiently(() => client.transport.request<{ proof: string[] }>({ method: 'GET', path: `/v1/checkpoints/consistency?from=${from}&to=${to}` }), 10_000);
      out.set(from, r.body.proof.map((p) => fromBase64Url(p)));
    } catch (err) {
      out.set(from, err instanceof Error ? err : new Error(String(err)));
    }
  }
  return out;
}

/**
 * Reads the final state from every member and runs every check: first asks for a checkpoint
 * (`POST /v1/checkpoints`: the final proven state must cover the last write; a failure fails the
 * run) and waits (up to `settleMs`, default 30 s) until every member shows the same latest
 * checkpoint. `events` (the nemesis steps)
 * give the fault figures and the unavailability after each kill (`unavailability`). At most `checkpointLimit`
 * (default 20 000) newest checkpoints are compared per member.
 */
export async function checkRun(
  history: OpRecord[],
  trustedHeads: Array<{ size: number; root: Uint8Array }>,
  final: FinalState,
  events: FaultEvent[] = [],
  options: { checkpointLimit?: number; maxSteps?: number; settleMs?: number } = {},
): Promise<CheckReport> {
  const keys = keysOf(history);
  const trust = await finalTrust(final);
  const refClient = new ProofKVClient({ endpoints: final.members.map((m) => m.url), trust: { publicKeys: trust.publicKeys, quorum: trust.quorum }, retries: 3, retryDelayMs: 100, onWarning: () => {} });
  // A checkpoint after the last write, so that the final proven state covers every write.
  const created = await patiently(() => refClient.createCheckpoint()).then(
    () => undefined,
    (err: Error) => err.message,
  );
  await settleHeads(final, trust, options.settleMs ?? 30_000);
  const members = await Promise.all(final.members.map((m) => readMember(m, trust, keys, options.checkpointLimit ?? 20_000)));
  const ref = members.find((m) => m.head && m.errors.length === 0) ?? members.find((m) => m.head);
  const checks: Check[] = [];
  const figures: Record<string, number> = opFigures(history);
  figures.faults = events.length;
  for (const e of events) figures[`faults.${e.kind}`] = (figures[`faults.${e.kind}`] ?? 0) + 1;
  if (created !== undefined) checks.push({ name: 'final state readable', ok: false, detail: `no checkpoint could be created after the last write: ${created}` });
  if (!ref || !ref.head) {
    checks.push({ name: 'final state readable', ok: false, detail: members.flatMap((m) => m.errors.map((e) => `member ${m.id}: ${e}`)).join('\n') || 'no member' });
    return { ok: false, checks, figures };
  }
  const view: FinalView = { histories: ref.histories };
  for (const k of keys) if (!view.histories.has(k)) checks.push({ name: 'final state readable', ok: false, detail: `no proven history of ${k} from member ${ref.id}` });

  const lin = checkLinearizable(history, view, options.maxSteps);
  const lost = checkNoLostWrite(history, view);
  const twice = checkNoDuplicate(history, view);
  const reads = checkReads(history, view);
  const proofs = await consistencyProofs(refClient, trustedHeads.map((h) => h.size), ref.head.size);
  const fork = checkNoFork(trustedHeads, ref.head, proofs);
  const agree = checkMembersAgree(members);
  const verified = checkVerified(history, events);
  const batches = checkBatches(history, view);
  if (trust.note) agree.detail += `\n${trust.note}`;
  for (const c of [lin, lost, twice, reads, fork, agree, verified, batches]) checks.push({ name: c.name, ok: c.ok, detail: c.detail });

  figures.acknowledgedWrites = lost.acked;
  figures.acknowledgedWritesLost = lost.lost;
  figures.linearizabilityViolations = lin.violations;
  figures.linearizabilityUnknownKeys = lin.unknown;
  figures.duplicates = twice.duplicates;
  figures.forks = fork.forks;
  figures.verifyFailures = verified.failures;
  figures.verifyRefusedDuringSetChange = verified.quorumNotMet;
  figures.trustedHeads = trustedHeads.length;
  figures.finalTrustFromRegistry = trust.note ? 1 : 0;
  figures.finalLogSize = ref.head.size;
  figures.violations = checks.filter((c) => !c.ok).length;
  const u = unavailability(history, events);
  figures.longestUnavailabilityMs = Math.round(u.overall);
  for (const o of u.outages) {
    const k = `longestUnavailabilityAfter.${o.kind}Ms`;
    figures[k] = Math.max(figures[k] ?? 0, Math.round(o.ms));
  }
  const leaderKills = u.outages.filter((o) => o.kind === 'kill-leader');
  figures.leaderKills = leaderKills.length;
  if (leaderKills.length > 0) figures.longestUnavailabilityAfterLeaderKillMs = Math.round(Math.max(...leaderKills.map((o) => o.ms)));
  return { ok: checks.every((c) => c.ok), checks, figures };
}
