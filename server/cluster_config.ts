/**
 * The cluster file `cluster.json` and the cluster secret `cluster.secret`, as `proofkv cluster
 * init` writes them and `proofkv serve --cluster` reads them (docs/cluster.md).
 *
 * ```json
 * { "clusterId": "pk-3f2a9c0d1e2b4f60",
 *   "initialSignerSet": "<64 hex: hash of the bootstrap voters' signer set>",
 *   "members": [
 *     { "id": 1, "clientUrl": "http://127.0.0.1:7001", "peerUrl": "http://127.0.0.1:7101",
 *       "publicKey": "<64 hex: the member's NODE_KEY public key>" }, … ] }
 * ```
 * `initialSignerSet` (optional; `cluster init` writes it, `cluster add` keeps it) commits to the
 * signer set of the log's checkpoint 0 — the members the cluster was created with, majority
 * quorum: a member that joins trusts a snapshot only through the signer-set changes from that
 * set ({@link initialSignerSetOf}, docs/cluster.md § A member far behind).
 * Rules (a file that breaks one is a {@link ClusterConfigError} and nothing starts): only these
 * fields; 1 to {@link MAX_CLUSTER_MEMBERS} members; ids are integers 1 .. 2^32-1; URLs are
 * `http:` or `https:` origins (no path, query, fragment or credentials, not a wildcard address
 * such as 0.0.0.0: others dial them); every id, every
 * listener (`host:port` over all client and peer URLs) and every public key is distinct; the
 * file is at most {@link MAX_CLUSTER_CONFIG_BYTES}. The secret file holds 32 bytes as 64 hex
 * digits (surrounding white space allowed) — during a rotation a second line with the secret also
 * accepted ({@link parseClusterSecrets}) — and must not be readable by group or others.
 * @module
 */
import * as fs from 'node:fs';
import { fromHex, toHex } from '../proofs/bytes.js';
import { signerSetHash, type SignerSet } from '../proofs/signer_set.js';
import { majorityOf } from '../src/replication/members.js';
import { guessedInitialSignerSet } from '../src/replication/initial_set.js';
import { ConfigError } from './config.js';

/** Name of the cluster file in the directory `cluster init` creates. */
export const CLUSTER_CONFIG_FILE = 'cluster.json';
/** Name of the secret file in the directory `cluster init` creates. */
export const CLUSTER_SECRET_FILE = 'cluster.secret';
/** Most members a cluster file may list (a Raft group larger than 7 gains nothing but latency). */
export const MAX_CLUSTER_MEMBERS = 7;
/** Largest cluster file read, bytes. */
export const MAX_CLUSTER_CONFIG_BYTES = 64 * 1024;
/** Bytes of the cluster secret. */
export const CLUSTER_SECRET_BYTES = 32;
/** Largest member id (ids are u32 in the signer set; 0 means "no member"). */
export const MAX_MEMBER_ID = 0xffff_ffff;
/** Longest cluster id, characters. */
export const MAX_CLUSTER_ID_LENGTH = 64;

/** Stable codes of {@link ClusterConfigError}. */
export const CLUSTER_CONFIG_CODES = [
  /** The cluster file cannot be read, is too large or is not JSON. */
  'CLUSTER_CONFIG_UNREADABLE',
  /** The cluster file is JSON but breaks a rule (the message says which field). */
  'CLUSTER_CONFIG_INVALID',
  /** The secret file cannot be read or is not 32 bytes of hex. */
  'CLUSTER_SECRET_INVALID',
  /** The secret file can be read or written by group or others. */
  'CLUSTER_SECRET_EXPOSED',
  /** The member id asked for is not in the cluster file. */
  'NOT_A_MEMBER',
  /** `cluster init` would overwrite an existing cluster. */
  'CLUSTER_EXISTS',
  /** A `--peer-via` entry is not `ID=URL`, names this member or a member twice, or has a bad URL. */
  'PEER_VIA_INVALID',
  /**
   * `cluster initial-set`: the initial signer set a member showed does not verify (checkpoint 0's
   * certificate, its set, or keys the cluster file does not list), or the log has none (v1).
   */
  'CLUSTER_INITIAL_SET_UNVERIFIED',
  /** `cluster initial-set`: the cluster file already commits to another initial signer set. */
  'CLUSTER_INITIAL_SET_CONFLICT',
] as const;
/** One of {@link CLUSTER_CONFIG_CODES}. */
export type ClusterConfigCode = (typeof CLUSTER_CONFIG_CODES)[number];

/**
 * A cluster file or secret is unusable. A {@link ConfigError} (so `serve` exits with its
 * configuration status) with a stable {@link ClusterConfigCode}.
 */
export class ClusterConfigError extends ConfigError {
  constructor(
    readonly code: ClusterConfigCode,
    message: string,
  ) {
    super(message);
    this.name = 'ClusterConfigError';
  }
}

/** One member of the cluster file. */
export interface ClusterMember {
  /** Raft id and signer-set id, 1 .. 2^32-1. */
  id: number;
  /** Origin of the client listener (existing routes, tokens), e.g. `http://127.0.0.1:7001`. */
  clientUrl: string;
  /** Origin of the peer listener (transport routes only), e.g. `http://127.0.0.1:7101`. */
  peerUrl: string;
  /** The member's Ed25519 public key (its `NODE_KEY`), 32 bytes. */
  publicKey: Uint8Array;
}

/** A parsed, validated cluster file; members sorted by id. */
export interface ClusterConfig {
  clusterId: string;
  members: ClusterMember[];
  /**
   * Hash of the signer set the log's first checkpoint commits to (the bootstrap voters, majority
   * quorum; {@link bootstrapSignerSet}); absent in files written before it existed.
   */
  initialSignerSet?: Uint8Array;
}

/** The signer set of members bootstrapped together: all of them by id, a majority quorum (as the member registry computes it). */
export function bootstrapSignerSet(members: readonly ClusterMember[]): SignerSet {
  const sorted = [...members].sort((a, b) => a.id - b.id);
  return { quorum: majorityOf(sorted.length), members: sorted.map((m) => ({ id: m.id, publicKey: m.publicKey })) };
}

/**
 * The hash of the initial signer set member `selfId` trusts for a snapshot while it knows no
 * voters (a member that joined): the file's `initialSignerSet`, or — a file without it — the set
 * of the members it lists other than `selfId`, which is right when the file lists exactly the
 * initial members and this one. That guess is a `GuessedInitialSignerSet` (src/replication/initial_set.ts): when the
 * snapshot's checkpoint 0 commits to another set, the install is refused with
 * `SNAPSHOT_INITIAL_SET_UNKNOWN`, whose message gives the way out (`proofkv cluster initial-set`
 * fills the field from the cluster's verified checkpoint 0; docs/cluster.md § An old cluster file).
 */
export function initialSignerSetOf(config: ClusterConfig, selfId: number): Uint8Array {
  if (config.initialSignerSet) return config.initialSignerSet;
  const others = config.members.filter((m) => m.id !== selfId);
  return guessedInitialSignerSet(signerSetHash(bootstrapSignerSet(others)), others.map((m) => m.id));
}

const invalid = (message: string) => new ClusterConfigError('CLUSTER_CONFIG_INVALID', message);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function onlyFields(o: Record<string, unknown>, allowed: readonly string[], where: string, optionalFields: readonly string[] = []): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k) && !optionalFields.includes(k)) throw invalid(`${where}: unknown field ${JSON.stringify(k)}`);
  for (const k of allowed) if (!(k in o)) throw invalid(`${where}: missing field ${JSON.stringify(k)}`);
}

/**
 * `text` as a listener origin: `http:` or `https:`, a host, no credentials, path, query or
 * fragment. Returns the normalised origin (`http://127.0.0.1:7001`) and the listener
 * (`127.0.0.1:7001`, the default port filled in) that distinctness is checked on.
 */
export function parseListenerUrl(text: unknown, where: string): { origin: string; listener: string } {
  if (typeof text !== 'string' || text.length === 0) throw invalid(`${where} must be a non-empty string`);
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw invalid(`${where} is not a URL: ${JSON.stringify(text)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw invalid(`${where} must be http: or https:, got ${JSON.stringify(text)}`);
  if (u.hostname === '') throw invalid(`${where} has no host: ${JSON.stringify(text)}`);
  // Members and clients dial these URLs: a wildcard address names no host to dial.
  if (u.hostname === '0.0.0.0' || u.hostname === '[::]') throw invalid(`${where} must name an address the others can reach, not the wildcard ${u.hostname}`);
  if (u.username !== '' || u.password !== '') throw invalid(`${where} must not carry credentials`);
  if ((u.pathname !== '/' && u.pathname !== '') || u.search !== '' || u.hash !== '') throw invalid(`${where} must be an origin (no path, query or fragment): ${JSON.stringify(text)}`);
  const port = u.port !== '' ? u.port : u.protocol === 'https:' ? '443' : '80';
  return { origin: u.origin, listener: `${u.hostname}:${port}` };
}

function parseMember(m: unknown, i: number): ClusterMember & { listeners: [string, string] } {
  const where = `members[${i}]`;
  if (!isObject(m)) throw invalid(`${where} must be an object`);
  onlyFields(m, ['id', 'clientUrl', 'peerUrl', 'publicKey'], where);
  const id = m.id;
  if (typeof id !== 'number' || !Number.isInteger(id) || id < 1 || id > MAX_MEMBER_ID) throw invalid(`${where}.id must be an integer 1 .. ${MAX_MEMBER_ID}, got ${JSON.stringify(id)}`);
  const client = parseListenerUrl(m.clientUrl, `${where}.clientUrl`);
  const peer = parseListenerUrl(m.peerUrl, `${where}.peerUrl`);
  if (typeof m.publicKey !== 'string' || !/^[0-9a-fA-F]{64}$/.test(m.publicKey)) throw invalid(`${where}.publicKey must be 64 hex digits (32 bytes)`);
  return { id, clientUrl: client.origin, peerUrl: peer.origin, publicKey: fromHex(m.publicKey.toLowerCase()), listeners: [client.listener, peer.listener] };
}

/** Parses and validates the text of a cluster file (pure: no I/O). */
export function parseClusterConfig(text: string): ClusterConfig {
  if (text.length > MAX_CLUSTER_CONFIG_BYTES) throw new ClusterConfigError('CLUSTER_CONFIG_UNREADABLE', `the cluster file is larger than ${MAX_CLUSTER_CONFIG_BYTES} bytes`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new ClusterConfigError('CLUSTER_CONFIG_UNREADABLE', `the cluster file is not JSON: ${(err as Error).message}`);
  }
  if (!isObject(doc)) throw invalid('the cluster file must be a JSON object');
  onlyFields(doc, ['clusterId', 'members'], 'cluster file', ['initialSignerSet']);
  const initial = doc.initialSignerSet;
  if (initial !== undefined && (typeof initial !== 'string' || !/^[0-9a-fA-F]{64}$/.test(initial))) throw invalid('initialSignerSet must be 64 hex digits (a 32-byte signer-set hash)');
  const clusterId = doc.clusterId;
  if (typeof clusterId !== 'string' || !/^[A-Za-z0-9._-]+$/.test(clusterId) || clusterId.length > MAX_CLUSTER_ID_LENGTH) {
    throw invalid(`clusterId must be 1 .. ${MAX_CLUSTER_ID_LENGTH} characters of A-Z a-z 0-9 . _ -`);
  }
  if (!Array.isArray(doc.members)) throw invalid('members must be an array');
  if (doc.members.length === 0 || doc.members.length > MAX_CLUSTER_MEMBERS) throw invalid(`members must list 1 .. ${MAX_CLUSTER_MEMBERS} members, got ${doc.members.length}`);
  const members = doc.members.map(parseMember);
  const ids = new Map<number, number>();
  const listeners = new Map<string, string>();
  const keys = new Map<string, number>();
  members.forEach((m, i) => {
    const dupId = ids.get(m.id);
    if (dupId !== undefined) throw invalid(`members[${i}].id ${m.id} is also members[${dupId}].id`);
    ids.set(m.id, i);
    for (const [field, l] of [['clientUrl', m.listeners[0]], ['peerUrl', m.listeners[1]]] as const) {
      const other = listeners.get(l);
      if (other !== undefined) throw invalid(`members[${i}].${field} listens on ${l}, as ${other} does`);
      listeners.set(l, `members[${i}].${field}`);
    }
    const hex = toHex(m.publicKey);
    const dupKey = keys.get(hex);
    if (dupKey !== undefined) throw invalid(`members[${i}].publicKey is also members[${dupKey}].publicKey`);
    keys.set(hex, i);
  });
  const out: ClusterConfig = {
    clusterId,
    members: members.map(({ id, clientUrl, peerUrl, publicKey }) => ({ id, clientUrl, peerUrl, publicKey })).sort((a, b) => a.id - b.id),
  };
  if (typeof initial === 'string') out.initialSignerSet = fromHex(initial.toLowerCase());
  return out;
}

/** The cluster file's text for `config` (public keys as lowercase hex), validated on the way. */
export function formatClusterConfig(config: ClusterConfig): string {
  const doc = {
    clusterId: config.clusterId,
    ...(config.initialSignerSet ? { initialSignerSet: toHex(config.initialSignerSet) } : {}),
    members: config.members.map((m) => ({ id: m.id, clientUrl: m.clientUrl, peerUrl: m.peerUrl, publicKey: toHex(m.publicKey) })),
  };
  const text = `${JSON.stringify(doc, null, 2)}\n`;
  parseClusterConfig(text);
  return text;
}

/** Reads and validates the cluster file `file`. */
export function readClusterConfig(file: string): ClusterConfig {
  return parseClusterConfig(readBounded(file, MAX_CLUSTER_CONFIG_BYTES, 'CLUSTER_CONFIG_UNREADABLE', 'cluster file'));
}

/** The member `id` of `config`, or `NOT_A_MEMBER`. */
export function memberOf(config: ClusterConfig, id: number): ClusterMember {
  const m = config.members.find((x) => x.id === id);
  if (!m) throw new ClusterConfigError('NOT_A_MEMBER', `node id ${id} is not a member of cluster ${config.clusterId} (members: ${config.members.map((x) => x.id).join(', ')})`);
  return m;
}

/**
 * The dial overrides of `serve --peer-via ID=URL` (repeatable; `peerVia` in the `--config` file):
 * this member dials member `ID` at `URL` instead of the member's registered `peerUrl` (a local
 * routing choice: a proxy, a tunnel, NAT). Nothing replicated changes: the member registry keeps
 * the registered URL. `ID` may name a member that is not in the cluster file yet (one added at
 * runtime). Refused with `PEER_VIA_INVALID`: an entry that is not `ID=URL`, an id outside
 * 1 .. 2^32-1, `selfId` itself, an id given twice, a URL that is not a listener origin.
 */
export function parsePeerVia(entries: readonly string[], selfId: number): Map<number, string> {
  const bad = (message: string) => new ClusterConfigError('PEER_VIA_INVALID', message);
  const out = new Map<number, string>();
  for (const e of entries) {
    const m = /^([0-9]{1,10})=(.+)$/.exec(typeof e === 'string' ? e.trim() : '');
    if (!m) throw bad(`--peer-via ${JSON.stringify(e)} is not ID=URL (e.g. 2=http://127.0.0.1:9102)`);
    const id = Number(m[1]);
    if (id < 1 || id > MAX_MEMBER_ID) throw bad(`--peer-via ${JSON.stringify(e)}: the id must be 1 .. ${MAX_MEMBER_ID}`);
    if (id === selfId) throw bad(`--peer-via ${JSON.stringify(e)} names this member (${selfId}): a member never dials itself`);
    if (out.has(id)) throw bad(`--peer-via gives member ${id} twice`);
    let origin: string;
    try {
      origin = parseListenerUrl(m[2], `--peer-via ${id}`).origin;
    } catch (err) {
      throw bad((err as Error).message);
    }
    out.set(id, origin);
  }
  return out;
}

/** The 32-byte secret in the text of a secret file: 64 hex digits, white space around allowed. */
export function parseClusterSecret(text: string): Uint8Array {
  const t = text.trim();
  if (!/^[0-9a-fA-F]{64}$/.test(t)) throw new ClusterConfigError('CLUSTER_SECRET_INVALID', `the cluster secret must be ${CLUSTER_SECRET_BYTES} bytes as 64 hex digits`);
  return fromHex(t.toLowerCase());
}

/**
 * The secrets of a secret file: `secret`, the one this member MACs its peer traffic with (the
 * first line), and `accept`, another one it also accepts while the cluster rotates its secret
 * (a second line; empty otherwise). docs/cluster.md § Rotating the cluster secret.
 */
export interface ClusterSecrets {
  secret: Uint8Array;
  accept: Uint8Array[];
}

/**
 * The secrets in the text of a secret file: one or two lines of 64 hex digits (white space
 * around and blank lines allowed), distinct; the first is the one sent with.
 */
export function parseClusterSecrets(text: string): ClusterSecrets {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  if (lines.length === 0 || lines.length > 2) throw new ClusterConfigError('CLUSTER_SECRET_INVALID', `the cluster secret file must hold one secret, or two during a rotation (one a line), not ${lines.length}`);
  const [secret, ...accept] = lines.map(parseClusterSecret);
  if (accept.some((k) => toHex(k) === toHex(secret))) throw new ClusterConfigError('CLUSTER_SECRET_INVALID', 'the two secrets of the cluster secret file are the same');
  return { secret, accept };
}

/** The text of a secret file for `secret` (64 lowercase hex digits and a newline). */
export function formatClusterSecret(secret: Uint8Array): string {
  if (secret.length !== CLUSTER_SECRET_BYTES) throw new RangeError(`the cluster secret must be ${CLUSTER_SECRET_BYTES} bytes`);
  return `${toHex(secret)}\n`;
}

/**
 * Reads the secret file `file`. On POSIX systems a file that group or others may read or write
 * is refused (`CLUSTER_SECRET_EXPOSED`), as ssh refuses a loose private key: whoever holds the
 * secret can speak for a member on the peer listener.
 */
export function readClusterSecret(file: string): Uint8Array {
  return readClusterSecrets(file).secret;
}

/** Reads the secret file `file` with the secret accepted besides during a rotation ({@link parseClusterSecrets}); checked as {@link readClusterSecret}. */
export function readClusterSecrets(file: string): ClusterSecrets {
  if (process.platform !== 'win32') {
    let mode: number;
    try {
      mode = fs.statSync(file).mode & 0o777;
    } catch (err) {
      throw new ClusterConfigError('CLUSTER_SECRET_INVALID', `cannot read the cluster secret ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (mode & 0o077) throw new ClusterConfigError('CLUSTER_SECRET_EXPOSED', `the cluster secret ${file} has mode ${mode.toString(8).padStart(4, '0')}: make it 0600 (chmod 600) and treat the secret as exposed`);
  }
  return parseClusterSecrets(readBounded(file, 1024, 'CLUSTER_SECRET_INVALID', 'cluster secret'));
}

function readBounded(file: string, limit: number, code: ClusterConfigCode, what: string): string {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    throw new ClusterConfigError(code, `cannot read the ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    const buf = Buffer.alloc(limit + 1);
    let n = 0;
    for (;;) {
      const r = fs.readSync(fd, buf, n, buf.length - n, null);
      if (r === 0) break;
      n += r;
      if (n > limit) throw new ClusterConfigError(code, `the ${what} ${file} is larger than ${limit} bytes`);
    }
    return buf.subarray(0, n).toString('utf8');
  } finally {
    fs.closeSync(fd);
  }
}
