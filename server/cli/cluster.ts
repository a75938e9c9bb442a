/**
 * `proofkv cluster init`: lays out a new cluster in one directory (docs/cluster.md). Also the
 * runtime-membership commands (docs/cluster.md § Membership): `cluster add` (lays out a member to
 * add: its data directory and key, and the member in `cluster.json`), `cluster add-member` and
 * `cluster remove-member` (the `/v1/cluster/members` routes), `cluster status` (every member's
 * role, term, leader, indexes, certified checkpoint and divergence).
 *
 * ```
 * proofkv cluster init --nodes 3 --dir ./cluster [--host 127.0.0.1] [--client-port 7001] [--peer-port 7101] [--json]
 * ```
 * creates `<dir>/cluster.json` (the members: id, client and peer URL, public key),
 * `<dir>/cluster.secret` (32 random bytes as hex, mode 0600: the peers' shared secret) and one
 * data directory per member, `<dir>/node1` … (mode 0700), each holding the member's `NODE_KEY`
 * made by the node-key code `serve` itself uses, so the public keys in `cluster.json` are the keys
 * the members sign with. Member i listens on `--client-port + i - 1` and `--peer-port + i - 1`.
 * Nothing is overwritten: when any of these paths exists the command fails with
 * `CLUSTER_EXISTS`, and a failure half-way removes what it created. `cluster.json` is written
 * last, so its presence means the layout is complete. Then each member starts with
 * `proofkv serve --cluster <dir>/cluster.json --node-id i --data <dir>/node<i> --cluster-secret-file <dir>/cluster.secret`.
 * @module
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { toHex } from '../../proofs/bytes.js';
import { verifyCheckpoint, verifyCheckpointInclusion } from '../../proofs/checkpoint.js';
import type { SetChange } from '../../proofs/set_changes.js';
import { signerSetHash, signerSetPolicy, verifySignerSet } from '../../proofs/signer_set.js';
import type { Verified } from '../../proofs/errors.js';
import { parseSetChange } from '../../client-sdk/wire.js';
import { openNodeKey } from '../../src/proof/node_key.js';
import {
  MAX_MEMBER_ID,
  bootstrapSignerSet,
  readClusterConfig,
  CLUSTER_CONFIG_FILE,
  CLUSTER_SECRET_BYTES,
  CLUSTER_SECRET_FILE,
  ClusterConfigError,
  formatClusterConfig,
  formatClusterSecret,
  MAX_CLUSTER_MEMBERS,
  parseListenerUrl,
  type ClusterConfig,
} from '../cluster_config.js';
import { CliError, intOption, print, run, table } from './common.js';

/** What {@link initCluster} needs. */
export interface ClusterInitOptions {
  /** Members, 1 .. {@link MAX_CLUSTER_MEMBERS}. */
  nodes: number;
  /** Directory to lay the cluster out in (created when missing). */
  dir: string;
  /** Host of every member's URLs (default 127.0.0.1). */
  host?: string;
  /** Client port of member 1; member i gets `clientPort + i - 1` (default 7001). */
  clientPort?: number;
  /** Peer port of member 1; member i gets `peerPort + i - 1` (default 7101). */
  peerPort?: number;
}

/** What {@link initCluster} made. */
export interface ClusterLayout {
  config: ClusterConfig;
  /** Absolute paths of the cluster file, the secret file and each member's data directory (by id). */
  configFile: string;
  secretFile: string;
  dataDirs: Map<number, string>;
}

/** Data directory name of member `id` inside the cluster directory. */
export function nodeDirName(id: number): string {
  return `node${id}`;
}

/** The majority quorum of `n` members. */
export function majority(n: number): number {
  return Math.floor(n / 2) + 1;
}

/** `host` as it appears in a URL (IPv6 literals in brackets). */
function urlHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

function portOf(v: number | undefined, dflt: number, name: string, n: number): number {
  const p = v ?? dflt;
  if (!Number.isInteger(p) || p < 1 || p + n - 1 > 65535) throw new CliError('USAGE', `${name} must leave ${n} ports within 1 .. 65535, got ${p}`);
  return p;
}

/**
 * Creates the cluster directory layout (see the module comment). Throws `CLUSTER_EXISTS` when any
 * path it would create exists, `USAGE` for bad options; on any failure it removes what it made.
 */
export function initCluster(o: ClusterInitOptions): ClusterLayout {
  const n = o.nodes;
  if (!Number.isInteger(n) || n < 1 || n > MAX_CLUSTER_MEMBERS) throw new CliError('USAGE', `--nodes must be 1 .. ${MAX_CLUSTER_MEMBERS}, got ${n}`);
  const host = o.host ?? '127.0.0.1';
  if (host === '' || /[\s/@#?]/.test(host)) throw new CliError('USAGE', `--host ${JSON.stringify(host)} is not a host name or address`);
  try {
    parseListenerUrl(`http://${urlHost(host)}:1`, '--host');
  } catch (err) {
    throw new CliError('USAGE', (err as Error).message);
  }
  const clientPort = portOf(o.clientPort, 7001, '--client-port', n);
  const peerPort = portOf(o.peerPort, 7101, '--peer-port', n);
  if (clientPort < peerPort + n && peerPort < clientPort + n) throw new CliError('USAGE', `client ports ${clientPort}..${clientPort + n - 1} and peer ports ${peerPort}..${peerPort + n - 1} overlap`);
  const dir = path.resolve(o.dir);
  const configFile = path.join(dir, CLUSTER_CONFIG_FILE);
  const secretFile = path.join(dir, CLUSTER_SECRET_FILE);
  const ids = Array.from({ length: n }, (_, i) => i + 1);
  const dataDirs = new Map(ids.map((id) => [id, path.join(dir, nodeDirName(id))]));
  for (const p of [configFile, secretFile, ...dataDirs.values()]) {
    if (fs.existsSync(p)) throw new ClusterConfigError('CLUSTER_EXISTS', `${p} exists: cluster init never overwrites a cluster; choose another --dir`);
  }
  const created: string[] = [];
  try {
    if (!fs.existsSync(dir)) {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      created.push(dir);
    }
    const members = ids.map((id) => {
      const d = dataDirs.get(id)!;
      // Not recursive: fails (EEXIST) if another process made it since the check above.
      fs.mkdirSync(d, { mode: 0o700 });
      created.push(d);
      const { key } = openNodeKey(d, { logSize: 0 });
      return {
        id,
        clientUrl: `http://${urlHost(host)}:${clientPort + id - 1}`,
        peerUrl: `http://${urlHost(host)}:${peerPort + id - 1}`,
        publicKey: key.publicKey,
      };
    });
    // The file commits to the signer set the log's checkpoint 0 will have: a joiner's snapshot trust starts there.
    const config: ClusterConfig = { clusterId: `pk-${toHex(randomBytes(8))}`, initialSignerSet: signerSetHash(bootstrapSignerSet(members)), members };
    const text = formatClusterConfig(config);
    // 'wx': never replace a file another process created since the check.
    fs.writeFileSync(secretFile, formatClusterSecret(new Uint8Array(randomBytes(CLUSTER_SECRET_BYTES))), { mode: 0o600, flag: 'wx' });
    created.push(secretFile);
    fs.chmodSync(secretFile, 0o600);
    fs.writeFileSync(configFile, text, { mode: 0o644, flag: 'wx' });
    created.push(configFile);
    return { config, configFile, secretFile, dataDirs };
  } catch (err) {
    for (const p of created.reverse()) fs.rmSync(p, { recursive: true, force: true });
    if (err instanceof CliError || err instanceof ClusterConfigError) throw err;
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EEXIST') throw new ClusterConfigError('CLUSTER_EXISTS', `${e.path ?? dir} appeared while cluster init ran; nothing was kept`);
    throw new CliError('IO_ERROR', `cluster init failed, nothing was kept: ${e.message}`);
  }
}

/** The client SDK's trust and endpoints for `config`, as TypeScript to paste. */
export function sdkSnippet(config: ClusterConfig): string[] {
  return [
    "import { ProofKVClient } from 'proofkv/client';",
    'const client = new ProofKVClient({',
    `  endpoints: [${config.members.map((m) => `'${m.clientUrl}'`).join(', ')}],`,
    '  trust: {',
    '    publicKeys: [',
    ...config.members.map((m) => `      '${toHex(m.publicKey)}', // node ${m.id}`),
    '    ],',
    `    quorum: ${majority(config.members.length)},`,
    '  },',
    '});',
  ];
}

/** The `serve` command line of member `id` of the layout (paths as given). */
export function serveCommand(dir: string, id: number): string {
  const d = (f: string) => path.join(dir, f);
  return `proofkv serve --cluster ${d(CLUSTER_CONFIG_FILE)} --node-id ${id} --data ${d(nodeDirName(id))} --cluster-secret-file ${d(CLUSTER_SECRET_FILE)}`;
}

/** What {@link addClusterMember} needs. */
export interface ClusterAddOptions {
  /** A directory made by {@link initCluster}. */
  dir: string;
  /** The new member's id (not in the cluster file). */
  id: number;
  /** Its host (default: member 1's client host). */
  host?: string;
  /** Its client port (default: one above the highest port of the file). */
  clientPort?: number;
  /** Its peer port (default: the next port above the highest of the file and the client port). */
  peerPort?: number;
}

/**
 * `proofkv cluster add`: lays out a member to add at runtime in a directory made by
 * {@link initCluster}: creates `<dir>/node<id>` with its `NODE_KEY` and adds the member to
 * `<dir>/cluster.json` (replaced atomically). The running members are not told: that is
 * `cluster add-member` (the `POST /v1/cluster/members` route) once the new member runs with
 * `serve --join`. A failure leaves the file as it was and removes the new directory.
 */
export function addClusterMember(o: ClusterAddOptions): { config: ClusterConfig; configFile: string; dataDir: string } {
  const dir = path.resolve(o.dir);
  const configFile = path.join(dir, CLUSTER_CONFIG_FILE);
  let config: ClusterConfig;
  try {
    config = readClusterConfig(configFile);
  } catch (err) {
    if (err instanceof ClusterConfigError) throw new CliError(err.code, err.message);
    throw err;
  }
  if (!Number.isInteger(o.id) || o.id < 1 || o.id > MAX_MEMBER_ID) throw new CliError('USAGE', `--id must be 1 .. ${MAX_MEMBER_ID}, got ${o.id}`);
  if (config.members.some((m) => m.id === o.id)) throw new ClusterConfigError('CLUSTER_EXISTS', `member ${o.id} is already in ${configFile}`);
  if (config.members.length >= MAX_CLUSTER_MEMBERS) throw new CliError('USAGE', `${configFile} lists ${config.members.length} members, the most a cluster may`);
  const first = new URL(config.members[0].clientUrl);
  const host = o.host ?? first.hostname;
  const portOfUrl = (u: string) => Number(new URL(u).port);
  const highest = Math.max(...config.members.flatMap((m) => [portOfUrl(m.clientUrl), portOfUrl(m.peerUrl)]));
  const clientPort = o.clientPort ?? highest + 1;
  const peerPort = o.peerPort ?? (o.clientPort === undefined ? highest + 2 : highest + 1);
  const dataDir = path.join(dir, nodeDirName(o.id));
  if (fs.existsSync(dataDir)) throw new ClusterConfigError('CLUSTER_EXISTS', `${dataDir} exists`);
  fs.mkdirSync(dataDir, { mode: 0o700 });
  try {
    const { key } = openNodeKey(dataDir, { logSize: 0 });
    const next: ClusterConfig = {
      ...config,
      members: [...config.members, { id: o.id, clientUrl: `http://${urlHost(host)}:${clientPort}`, peerUrl: `http://${urlHost(host)}:${peerPort}`, publicKey: key.publicKey }].sort((a, b) => a.id - b.id),
    };
    // Checks distinct ids, listeners and keys, and the URL rules, exactly as serve will.
    const text = formatClusterConfig(next);
    const tmp = `${configFile}.tmp`;
    fs.writeFileSync(tmp, text, { mode: 0o644 });
    fs.renameSync(tmp, configFile);
    return { config: next, configFile, dataDir };
  } catch (err) {
    fs.rmSync(dataDir, { recursive: true, force: true });
    if (err instanceof ClusterConfigError) throw new CliError(err.code, err.message);
    throw err;
  }
}

/**
 * The hash of the initial signer set — the one checkpoint 0 commits to — shown by `change`, the
 * first signer-set change a member lists (`GET /v1/checkpoints/set-changes?from=0`), verified
 * against `config`: it is checkpoint 0 (in a head of size 1 that includes it), the set hashes to
 * what checkpoint 0 commits to, a quorum of that set signed the head, and every member of the set
 * is listed in the cluster file under the same id with the same public key — so a member cannot
 * make the operator commit the file to keys the file does not already trust. Throws
 * `CLUSTER_INITIAL_SET_UNVERIFIED`. Pure.
 */
export function verifiedInitialSignerSet(config: ClusterConfig, change: SetChange | undefined): Uint8Array {
  const refuse = (why: string) => new ClusterConfigError('CLUSTER_INITIAL_SET_UNVERIFIED', `the initial signer set shown does not verify: ${why}`);
  if (change === undefined) throw refuse('the member lists no signer-set change at checkpoint 0 (a log whose checkpoint 0 commits to no signer set, written before signer sets were committed, has no initial set to fill in)');
  const { checkpoint, head, signers } = change;
  const hash = checkpoint.signerSetHash;
  if (checkpoint.index !== 0 || head.size !== 1 || hash === undefined) throw refuse(`the first change listed is checkpoint ${checkpoint.index} (head size ${head.size}), not checkpoint 0 committing to a set`);
  const steps: Array<[string, Verified]> = [
    ['its signer set', verifySignerSet(signers, hash)],
    ['its inclusion in its head', verifyCheckpointInclusion(checkpoint, change.inclusion, head)],
    ["its head's certificate (a quorum of the set)", verifyCheckpoint(head, change.signatures, signerSetPolicy(signers))],
  ];
  for (const [what, v] of steps) if (!v.ok) throw refuse(`checkpoint 0: ${what}: ${v.reason}: ${v.message}`);
  for (const m of signers.members) {
    const listed = config.members.find((x) => x.id === m.id);
    if (!listed || !Buffer.from(listed.publicKey).equals(Buffer.from(m.publicKey))) throw refuse(`member ${m.id} of the set is not in the cluster file with that public key`);
  }
  return hash;
}

/**
 * `proofkv cluster initial-set`: fills `initialSignerSet` in `<dir>/cluster.json` (replaced
 * atomically) from checkpoint 0 as the member at `endpoint` shows it, verified by
 * {@link verifiedInitialSignerSet}. For a cluster file written before the field existed: a member
 * that joins needs it to trust a snapshot (`SNAPSHOT_INITIAL_SET_UNKNOWN` says so). A file that
 * already holds the same hash is left as it is; one that holds another is `CLUSTER_INITIAL_SET_CONFLICT`.
 */
export async function fillInitialSignerSet(o: { dir: string; endpoint: string; token?: string }): Promise<{ configFile: string; initialSignerSet: Uint8Array; changed: boolean }> {
  const configFile = path.join(path.resolve(o.dir), CLUSTER_CONFIG_FILE);
  const config = readClusterConfig(configFile);
  const doc = await adminRequest(o.endpoint, 'GET', '/v1/checkpoints/set-changes?from=0&limit=1', o.token);
  const changes: unknown = doc?.changes;
  if (!Array.isArray(changes)) throw new ClusterConfigError('CLUSTER_INITIAL_SET_UNVERIFIED', `${o.endpoint} answered no list of set changes`);
  let first: SetChange | undefined;
  try {
    first = changes.length === 0 ? undefined : parseSetChange(changes[0]);
  } catch (err) {
    throw new ClusterConfigError('CLUSTER_INITIAL_SET_UNVERIFIED', `${o.endpoint} answered a malformed set change: ${(err as Error).message}`);
  }
  const hash = verifiedInitialSignerSet(config, first);
  if (config.initialSignerSet) {
    if (Buffer.from(config.initialSignerSet).equals(Buffer.from(hash))) return { configFile, initialSignerSet: hash, changed: false };
    throw new ClusterConfigError('CLUSTER_INITIAL_SET_CONFLICT', `${configFile} commits to the initial signer set ${toHex(config.initialSignerSet)}, the cluster at ${o.endpoint} to ${toHex(hash)}: another cluster's file?`);
  }
  const tmp = `${configFile}.tmp`;
  fs.writeFileSync(tmp, formatClusterConfig({ ...config, initialSignerSet: hash }), { mode: 0o644 });
  fs.renameSync(tmp, configFile);
  return { configFile, initialSignerSet: hash, changed: true };
}

/** One admin request to a member's client listener; answers the parsed JSON body or throws a {@link CliError} with the problem's code. */
export async function adminRequest(endpoint: string, method: string, route: string, token: string | undefined, body?: unknown): Promise<any> {
  const r = await fetch(`${endpoint.replace(/\/$/, '')}${route}`, {
    method,
    headers: { Accept: 'application/json', ...(body === undefined ? {} : { 'Content-Type': 'application/json' }), ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await r.text();
  const doc = text ? JSON.parse(text) : undefined;
  if (!r.ok) throw new CliError(doc?.code ?? 'UNAVAILABLE', `${method} ${route} on ${endpoint}: ${r.status} ${doc?.detail ?? text.slice(0, 200)}`);
  return doc;
}

/** Answers a membership request may get that pass: not caught up yet, the previous set change not certified yet, no leader, a connection refused. */
function passingMembershipError(err: unknown): boolean {
  const code = (err as CliError).code;
  return code === 'MEMBERSHIP_CONFLICT' || code === 'MEMBERSHIP_PENDING' || code === 'UNAVAILABLE' || err instanceof TypeError;
}

/**
 * `proofkv cluster add-member`: asks `endpoint` to add member `member` (POST
 * /v1/cluster/members: registered, then a learner), waits until the leader reports it caught up,
 * and promotes it (POST …/promote, sent to the leader's client URL; retried while it answers
 * 409 — not caught up, or `MEMBERSHIP_PENDING`: the previous signer-set change not certified yet —
 * or 503), within `timeoutMs`. `force`: promote although the previous change is not certified.
 */
export async function addMemberRemote(endpoint: string, member: { id: number; clientUrl: string; peerUrl: string; publicKey: Uint8Array }, token: string | undefined, timeoutMs = 60_000, options: { force?: boolean } = {}): Promise<any> {
  await adminRequest(endpoint, 'POST', '/v1/cluster/members', token, { id: member.id, clientUrl: member.clientUrl, peerUrl: member.peerUrl, publicKey: toHex(member.publicKey) });
  const until = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < until) {
    try {
      const list = await adminRequest(endpoint, 'GET', '/v1/cluster/members', token);
      const leader = (list.members as Array<{ id: number; clientUrl: string; role: string }>).find((m) => m.id === list.leader);
      return await adminRequest(leader?.clientUrl || endpoint, 'POST', `/v1/cluster/members/${member.id}/promote${options.force ? '?force=true' : ''}`, token);
    } catch (err) {
      last = err;
      if (!passingMembershipError(err)) throw err;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new CliError('UNAVAILABLE', `member ${member.id} was added as a learner but not promoted within ${timeoutMs} ms: ${(last as Error)?.message ?? 'no answer'}`);
}

/**
 * `proofkv cluster remove-member`: asks `endpoint` to remove member `id` (DELETE
 * /v1/cluster/members/{id}) until it is gone: a voter is first demoted to learner (`202`), and
 * removed by a later request once that signer-set change is certified (`204`); the request is
 * made again while it answers 202, `MEMBERSHIP_PENDING` or 503, within `timeoutMs`. `force`
 * removes it at once. A `404` after an earlier request means that request did it.
 */
export async function removeMemberRemote(endpoint: string, id: number, token: string | undefined, timeoutMs = 60_000, options: { force?: boolean } = {}): Promise<void> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  let tries = 0;
  while (Date.now() < until) {
    try {
      tries++;
      const r = await adminRequest(endpoint, 'DELETE', `/v1/cluster/members/${id}${options.force ? '?force=true' : ''}`, token);
      if (r === undefined) return; // 204: removed
      last = new Error(`member ${id} is a ${r.role} now; waiting for the signer-set change to be certified`);
    } catch (err) {
      last = err;
      const code = (err as CliError).code;
      if (code === 'NOT_FOUND' && tries > 1) return;
      if (code === 'MEMBERSHIP_CONFLICT' || !passingMembershipError(err)) throw err;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new CliError('UNAVAILABLE', `member ${id} was not removed within ${timeoutMs} ms: ${(last as Error)?.message ?? 'no answer'}`);
}

/** One member's line of `proofkv cluster status` (undefined fields: it did not answer). */
export interface MemberStatusLine {
  endpoint: string;
  id?: number;
  role?: string;
  term?: number;
  leader?: number;
  commit?: number;
  applied?: number;
  checkpointSize?: number;
  checkpointRoot?: string;
  divergence?: string;
  /** Why a membership change would wait on this member (`MEMBERSHIP_PENDING`), when it would. */
  setChangePending?: string;
  error?: string;
}

/** `GET /v1/status` of every endpoint, as the lines `proofkv cluster status` prints. */
export async function clusterStatus(endpoints: string[], token: string | undefined): Promise<MemberStatusLine[]> {
  return Promise.all(
    endpoints.map(async (endpoint): Promise<MemberStatusLine> => {
      try {
        const s = await adminRequest(endpoint, 'GET', '/v1/status', token);
        const root = s.lastCheckpoint?.head?.root as string | undefined;
        return {
          endpoint,
          id: s.cluster?.id,
          role: s.role,
          term: s.cluster?.term,
          leader: s.cluster?.leader,
          commit: s.cluster?.commit,
          applied: s.cluster?.applied,
          checkpointSize: s.lastCheckpoint?.head?.size,
          checkpointRoot: root === undefined ? undefined : toHex(new Uint8Array(Buffer.from(root, 'base64url'))).slice(0, 16),
          divergence: s.divergence ? `at size ${s.divergence.size}` : undefined,
          setChangePending: s.cluster?.setChangePending,
        };
      } catch (err) {
        return { endpoint, error: (err as Error).message };
      }
    }),
  );
}

/** Registers `cluster init` on `program`. */
export function registerClusterCommands(program: Command): void {
  const cluster = program.command('cluster').description('set up a replicated cluster (docs/cluster.md)');
  cluster
    .command('init')
    .description('create cluster.json, cluster.secret and one data directory with its node key per member')
    .requiredOption('--nodes <n>', `members, 1 .. ${MAX_CLUSTER_MEMBERS} (3 or 5 tolerate 1 or 2 failures)`)
    .requiredOption('--dir <dir>', 'directory to create the cluster in (must not hold one)')
    .option('--host <host>', "host of the members' URLs", '127.0.0.1')
    .option('--client-port <port>', 'client port of node 1 (node i: + i - 1)', '7001')
    .option('--peer-port <port>', 'peer port of node 1 (node i: + i - 1)', '7101')
    .option('--json', 'print JSON instead of text (errors too: {"error": {code, status, detail}})')
    .action(
      run(async (o: { nodes: string; dir: string; host: string; clientPort: string; peerPort: string; json?: boolean }) => {
        let layout: ClusterLayout;
        try {
          layout = initCluster({
            nodes: intOption(o.nodes, '--nodes', 1)!,
            dir: o.dir,
            host: o.host,
            clientPort: intOption(o.clientPort, '--client-port', 1),
            peerPort: intOption(o.peerPort, '--peer-port', 1),
          });
        } catch (err) {
          if (err instanceof ClusterConfigError) throw new CliError(err.code, err.message);
          throw err;
        }
        const { config } = layout;
        const quorum = majority(config.members.length);
        print(
          o,
          {
            clusterId: config.clusterId,
            configFile: layout.configFile,
            secretFile: layout.secretFile,
            quorum,
            members: config.members.map((m) => ({ id: m.id, clientUrl: m.clientUrl, peerUrl: m.peerUrl, publicKey: toHex(m.publicKey), data: layout.dataDirs.get(m.id), serve: serveCommand(o.dir, m.id) })),
          },
          [
            `cluster ${config.clusterId}: ${config.members.length} member(s), quorum ${quorum}`,
            ...table([
              ['cluster file', layout.configFile],
              ['secret', `${layout.secretFile} (mode 0600; every member needs it, keep it off the clients)`],
            ]),
            '',
            ...config.members.flatMap((m) => [`node ${m.id}  client ${m.clientUrl}  peer ${m.peerUrl}`, `        key ${toHex(m.publicKey)}`, `        ${serveCommand(o.dir, m.id)}`]),
            '',
            'SDK trust (the members\' keys, a majority must sign each checkpoint):',
            ...sdkSnippet(config).map((l) => `  ${l}`),
          ],
        );
      }),
    );
  cluster
    .command('add')
    .description('lay out a member to add at runtime: <dir>/node<id> with its node key, and the member in <dir>/cluster.json')
    .requiredOption('--dir <dir>', 'the directory cluster init made')
    .requiredOption('--id <id>', 'the new member id')
    .option('--host <host>', "host of the member's URLs (default: member 1's)")
    .option('--client-port <port>', 'client port (default: one above the highest port in the file)')
    .option('--peer-port <port>', 'peer port (default: the next free one above that)')
    .option('--json', 'print JSON instead of text')
    .action(
      run(async (o: { dir: string; id: string; host?: string; clientPort?: string; peerPort?: string; json?: boolean }) => {
        const id = intOption(o.id, '--id', 1)!;
        let added: ReturnType<typeof addClusterMember>;
        try {
          added = addClusterMember({ dir: o.dir, id, host: o.host, clientPort: intOption(o.clientPort, '--client-port', 1), peerPort: intOption(o.peerPort, '--peer-port', 1) });
        } catch (err) {
          if (err instanceof ClusterConfigError) throw new CliError(err.code, err.message);
          throw err;
        }
        const m = added.config.members.find((x) => x.id === id)!;
        const serve = `${serveCommand(o.dir, id)} --join`;
        print(o, { id, clientUrl: m.clientUrl, peerUrl: m.peerUrl, publicKey: toHex(m.publicKey), data: added.dataDir, configFile: added.configFile, serve }, [
          `member ${id}: client ${m.clientUrl}  peer ${m.peerUrl}`,
          `  key ${toHex(m.publicKey)}`,
          `  start it: ${serve}`,
          `  then:     proofkv cluster add-member --dir ${o.dir} --id ${id} --endpoint <a running member's client URL>`,
        ]);
      }),
    );
  cluster
    .command('add-member')
    .description('add a member laid out by `cluster add` to the running cluster: learner, catch-up, promotion (POST /v1/cluster/members)')
    .requiredOption('--endpoint <url>', "a running member's client URL")
    .requiredOption('--id <id>', 'the member id')
    .option('--dir <dir>', 'the cluster directory (its cluster.json gives the member URLs and key)', '.')
    .option('--token <token>', 'admin bearer token (env PROOFKV_TOKEN)')
    .option('--timeout <ms>', 'how long to wait for the catch-up and for the previous signer-set change to be certified', '60000')
    .option('--force', 'promote although the previous signer-set change is not certified yet (verifiers trusting the older set may not follow it)')
    .option('--json', 'print JSON instead of text')
    .action(
      run(async (o: { endpoint: string; id: string; dir: string; token?: string; timeout: string; force?: boolean; json?: boolean }) => {
        const id = intOption(o.id, '--id', 1)!;
        let config: ClusterConfig;
        try {
          config = readClusterConfig(path.join(o.dir, CLUSTER_CONFIG_FILE));
        } catch (err) {
          if (err instanceof ClusterConfigError) throw new CliError(err.code, err.message);
          throw err;
        }
        const m = config.members.find((x) => x.id === id);
        if (!m) throw new CliError('NOT_A_MEMBER', `member ${id} is not in ${path.join(o.dir, CLUSTER_CONFIG_FILE)}: run cluster add first`);
        const v = await addMemberRemote(o.endpoint, m, o.token ?? process.env.PROOFKV_TOKEN, intOption(o.timeout, '--timeout', 1), { force: o.force === true });
        print(o, v, [`member ${v.id} is a ${v.role} (client ${v.clientUrl})`]);
      }),
    );
  cluster
    .command('initial-set')
    .description("fill initialSignerSet in an old cluster.json from the cluster's verified checkpoint 0 (a joining member needs it to trust a snapshot)")
    .requiredOption('--endpoint <url>', "a running member's client URL")
    .option('--dir <dir>', 'the cluster directory (its cluster.json is updated)', '.')
    .option('--token <token>', 'read bearer token (env PROOFKV_TOKEN)')
    .option('--json', 'print JSON instead of text')
    .action(
      run(async (o: { endpoint: string; dir: string; token?: string; json?: boolean }) => {
        let r: Awaited<ReturnType<typeof fillInitialSignerSet>>;
        try {
          r = await fillInitialSignerSet({ dir: o.dir, endpoint: o.endpoint, token: o.token ?? process.env.PROOFKV_TOKEN });
        } catch (err) {
          if (err instanceof ClusterConfigError) throw new CliError(err.code, err.message);
          throw err;
        }
        print(o, { configFile: r.configFile, initialSignerSet: toHex(r.initialSignerSet), changed: r.changed }, [
          `${r.configFile}: initialSignerSet ${toHex(r.initialSignerSet)}${r.changed ? ' (written)' : ' (already there)'}`,
          ...(r.changed ? ['copy this cluster.json to every member that joins, and restart a joining member that refused its snapshot'] : []),
        ]);
      }),
    );
  cluster
    .command('remove-member')
    .description('remove a member from the running cluster (DELETE /v1/cluster/members/{id}; send it to another member)')
    .requiredOption('--endpoint <url>', "a running member's client URL (not the one removed)")
    .requiredOption('--id <id>', 'the member id')
    .option('--token <token>', 'admin bearer token (env PROOFKV_TOKEN)')
    .option('--timeout <ms>', 'how long to wait for the previous signer-set change to be certified', '60000')
    .option('--force', 'remove although the previous signer-set change is not certified yet (verifiers trusting the older set may not follow it)')
    .option('--json', 'print JSON instead of text')
    .action(
      run(async (o: { endpoint: string; id: string; token?: string; timeout: string; force?: boolean; json?: boolean }) => {
        const id = intOption(o.id, '--id', 1)!;
        await removeMemberRemote(o.endpoint, id, o.token ?? process.env.PROOFKV_TOKEN, intOption(o.timeout, '--timeout', 1), { force: o.force === true });
        print(o, { removed: id }, [`member ${id} removed`]);
      }),
    );
  cluster
    .command('status')
    .description('role, term, leader, commit/applied, last certified checkpoint and divergence of every member')
    .requiredOption('--endpoint <url...>', "members' client URLs")
    .option('--token <token>', 'admin bearer token (env PROOFKV_TOKEN)')
    .option('--json', 'print JSON instead of text')
    .action(
      run(async (o: { endpoint: string[]; token?: string; json?: boolean }) => {
        const lines = await clusterStatus(o.endpoint, o.token ?? process.env.PROOFKV_TOKEN);
        print(
          o,
          { members: lines },
          lines.map((l) =>
            l.error
              ? `${l.endpoint}  unreachable: ${l.error}`
              : `node ${l.id ?? '?'}  ${l.endpoint}  ${l.role}  term ${l.term}  leader ${l.leader}  commit ${l.commit}  applied ${l.applied}  checkpoint ${l.checkpointSize ?? '-'} ${l.checkpointRoot ?? ''}${l.divergence ? `  DIVERGED ${l.divergence}` : ''}${l.setChangePending ? `  membership changes wait: ${l.setChangePending}` : ''}`,
          ),
        );
      }),
    );
}
