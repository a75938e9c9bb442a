/**
 * The cluster file and secret (`server/cluster_config.ts`) and `proofkv cluster init`
 * (`server/cli/cluster.ts`): every rule of the file refused with its code, the layout init makes
 * (modes, keys that are the data directories' real node keys), and init never overwriting.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ProofDB } from '../../src/index.js';
import { toHex } from '../../proofs/bytes.js';
import { publicKeyOf } from '../../proofs/checkpoint.js';
import { NODE_KEY_FILE } from '../../src/proof/node_key.js';
import { signerSetHash } from '../../proofs/signer_set.js';
import {
  bootstrapSignerSet,
  initialSignerSetOf,
  CLUSTER_CONFIG_FILE,
  CLUSTER_SECRET_FILE,
  ClusterConfigError,
  MAX_CLUSTER_CONFIG_BYTES,
  formatClusterConfig,
  memberOf,
  parseClusterConfig,
  parseClusterSecret,
  readClusterConfig,
  readClusterSecret,
  type ClusterConfigCode,
} from '../../server/cluster_config.js';
import { ConfigError } from '../../server/config.js';
import { initCluster, majority, sdkSnippet } from '../../server/cli/cluster.js';
import { CliError } from '../../server/cli/common.js';
import { cli, jsonError, jsonOf } from './cli_helpers.js';

const key = (b: number) => 'ab'.repeat(31) + b.toString(16).padStart(2, '0');
const member = (id: number, over: Record<string, unknown> = {}) => ({ id, clientUrl: `http://127.0.0.1:${7000 + id}`, peerUrl: `http://127.0.0.1:${7100 + id}`, publicKey: key(id), ...over });
const doc = (members: unknown[], over: Record<string, unknown> = {}) => JSON.stringify({ clusterId: 'pk-test', members, ...over });

function codeOf(f: () => unknown): ClusterConfigCode | string {
  try {
    f();
  } catch (err) {
    if (err instanceof ClusterConfigError) {
      expect(err).toBeInstanceOf(ConfigError);
      return err.code;
    }
    if (err instanceof CliError) return err.code;
    throw err;
  }
  throw new Error('did not throw');
}

const dirs: string[] = [];
function tmp(): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'proofkv-cluster-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('parseClusterConfig', () => {
  it('accepts a valid file, normalises URLs and sorts members by id', () => {
    const c = parseClusterConfig(doc([member(3), member(1, { clientUrl: 'http://127.0.0.1:7001/', publicKey: key(1).toUpperCase() }), member(2)]));
    expect(c.clusterId).toBe('pk-test');
    expect(c.members.map((m) => m.id)).toEqual([1, 2, 3]);
    expect(c.members[0].clientUrl).toBe('http://127.0.0.1:7001');
    expect(toHex(c.members[0].publicKey)).toBe(key(1));
    expect(parseClusterConfig(formatClusterConfig(c))).toEqual(c);
  });

  it('refuses what is not a JSON object of the right size', () => {
    expect(codeOf(() => parseClusterConfig('{'))).toBe('CLUSTER_CONFIG_UNREADABLE');
    expect(codeOf(() => parseClusterConfig(' '.repeat(MAX_CLUSTER_CONFIG_BYTES + 1)))).toBe('CLUSTER_CONFIG_UNREADABLE');
    for (const t of ['[]', 'null', '"x"', '1']) expect(codeOf(() => parseClusterConfig(t)), t).toBe('CLUSTER_CONFIG_INVALID');
  });

  it('refuses unknown and missing fields, at the top and in members', () => {
    const bad = [
      doc([member(1)], { extra: 1 }),
      JSON.stringify({ members: [member(1)] }),
      JSON.stringify({ clusterId: 'pk' }),
      doc([{ ...member(1), role: 'voter' }]),
      doc([{ id: 1, clientUrl: 'http://127.0.0.1:1', peerUrl: 'http://127.0.0.1:2' }]),
      doc([7]),
    ];
    for (const t of bad) expect(codeOf(() => parseClusterConfig(t)), t).toBe('CLUSTER_CONFIG_INVALID');
  });

  it('bounds the member count to 1 .. 7', () => {
    expect(codeOf(() => parseClusterConfig(doc([])))).toBe('CLUSTER_CONFIG_INVALID');
    expect(parseClusterConfig(doc([1, 2, 3, 4, 5, 6, 7].map((i) => member(i)))).members).toHaveLength(7);
    expect(codeOf(() => parseClusterConfig(doc([1, 2, 3, 4, 5, 6, 7, 8].map((i) => member(i)))))).toBe('CLUSTER_CONFIG_INVALID');
  });

  it('refuses bad cluster ids, member ids, URLs and keys', () => {
    for (const clusterId of ['', 'a b', 'x'.repeat(65), 7, 'ü']) expect(codeOf(() => parseClusterConfig(doc([member(1)], { clusterId }))), String(clusterId)).toBe('CLUSTER_CONFIG_INVALID');
    for (const id of [0, -1, 1.5, 2 ** 32, '1', null]) expect(codeOf(() => parseClusterConfig(doc([member(1, { id })]))), String(id)).toBe('CLUSTER_CONFIG_INVALID');
    expect(parseClusterConfig(doc([member(1, { id: 2 ** 32 - 1 })])).members[0].id).toBe(2 ** 32 - 1);
    for (const url of ['', 'not a url', 'ftp://127.0.0.1:1', 'http://127.0.0.1:1/v1', 'http://127.0.0.1:1?a=1', 'http://127.0.0.1:1#x', 'http://u:p@127.0.0.1:1', 'http://0.0.0.0:1', 'http://[::]:1', 1]) {
      expect(codeOf(() => parseClusterConfig(doc([member(1, { clientUrl: url })]))), String(url)).toBe('CLUSTER_CONFIG_INVALID');
      expect(codeOf(() => parseClusterConfig(doc([member(1, { peerUrl: url })]))), String(url)).toBe('CLUSTER_CONFIG_INVALID');
    }
    for (const pk of [key(1).slice(2), `${key(1)}00`, `${key(1).slice(0, 63)}g`, Buffer.from(key(1), 'hex').toString('base64url'), 5]) {
      expect(codeOf(() => parseClusterConfig(doc([member(1, { publicKey: pk })]))), String(pk)).toBe('CLUSTER_CONFIG_INVALID');
    }
  });

  it('refuses duplicate ids, listeners (client or peer, default ports filled in) and keys', () => {
    const dup = [
      [member(1), member(1, { clientUrl: 'http://127.0.0.1:7009', peerUrl: 'http://127.0.0.1:7109', publicKey: key(9) })],
      [member(1), member(2, { clientUrl: 'http://127.0.0.1:7001' })],
      [member(1), member(2, { peerUrl: 'http://127.0.0.1:7001' })],
      [member(1, { peerUrl: 'http://127.0.0.1:7001' })],
      [member(1, { clientUrl: 'http://h' }), member(2, { clientUrl: 'http://h:80' })],
      [member(1, { clientUrl: 'https://h' }), member(2, { peerUrl: 'http://h:443' })],
      [member(1), member(2, { publicKey: key(1).toUpperCase() })],
    ];
    for (const ms of dup) expect(codeOf(() => parseClusterConfig(doc(ms))), JSON.stringify(ms)).toBe('CLUSTER_CONFIG_INVALID');
    // The same port on different hosts is two listeners.
    expect(parseClusterConfig(doc([member(1, { clientUrl: 'http://10.0.0.1:7001' }), member(2, { clientUrl: 'http://10.0.0.2:7001' })])).members).toHaveLength(2);
  });

  it('finds members by id, and says which ids exist when one does not', () => {
    const c = parseClusterConfig(doc([member(1), member(2)]));
    expect(memberOf(c, 2).peerUrl).toBe('http://127.0.0.1:7102');
    expect(codeOf(() => memberOf(c, 3))).toBe('NOT_A_MEMBER');
    expect(() => memberOf(c, 3)).toThrow(/members: 1, 2/);
  });
});

describe('initialSignerSet (the hash of checkpoint 0\'s signer set)', () => {
  it('is optional, 64 hex digits, kept by format; without it a joiner derives it from the other listed members', () => {
    const hash = 'cd'.repeat(32);
    const c = parseClusterConfig(doc([member(1), member(2), member(3)], { initialSignerSet: hash.toUpperCase() }));
    expect(toHex(c.initialSignerSet!)).toBe(hash);
    expect(parseClusterConfig(formatClusterConfig(c))).toEqual(c);
    expect(toHex(initialSignerSetOf(c, 4))).toBe(hash);
    for (const bad of ['cd'.repeat(31), 'zz'.repeat(32), 7, null]) {
      expect(codeOf(() => parseClusterConfig(doc([member(1)], { initialSignerSet: bad })))).toBe('CLUSTER_CONFIG_INVALID');
    }
    // Without the field: the members other than the asking one, majority quorum.
    const old = parseClusterConfig(doc([member(1), member(2), member(3), member(4)]));
    expect(old.initialSignerSet).toBeUndefined();
    expect(formatClusterConfig(old)).not.toContain('initialSignerSet');
    const three = parseClusterConfig(doc([member(1), member(2), member(3)])).members;
    expect(toHex(initialSignerSetOf(old, 4))).toBe(toHex(signerSetHash(bootstrapSignerSet(three))));
    expect(bootstrapSignerSet(three)).toMatchObject({ quorum: 2, members: [{ id: 1 }, { id: 2 }, { id: 3 }] });
  });
});

describe('cluster secret', () => {
  const hex = '0f'.repeat(32);
  it('parses 64 hex digits with white space around', () => {
    expect(toHex(parseClusterSecret(`  ${hex.toUpperCase()}\n`))).toBe(hex);
    for (const t of ['', hex.slice(2), `${hex}00`, `${hex.slice(0, 63)}z`, `${hex.slice(0, 32)} ${hex.slice(32)}`]) expect(codeOf(() => parseClusterSecret(t)), t).toBe('CLUSTER_SECRET_INVALID');
  });
  it('refuses a secret file group or others may read or write, and a missing one', () => {
    const d = tmp();
    const f = path.join(d, CLUSTER_SECRET_FILE);
    fs.writeFileSync(f, `${hex}\n`, { mode: 0o600 });
    expect(toHex(readClusterSecret(f))).toBe(hex);
    for (const mode of [0o644, 0o640, 0o602]) {
      fs.chmodSync(f, mode);
      expect(codeOf(() => readClusterSecret(f)), mode.toString(8)).toBe('CLUSTER_SECRET_EXPOSED');
    }
    expect(codeOf(() => readClusterSecret(path.join(d, 'missing')))).toBe('CLUSTER_SECRET_INVALID');
    fs.writeFileSync(path.join(d, 'big'), 'a'.repeat(2000), { mode: 0o600 });
    expect(codeOf(() => readClusterSecret(path.join(d, 'big')))).toBe('CLUSTER_SECRET_INVALID');
  });
  it('reads a cluster file, refusing a missing or oversized one', () => {
    const d = tmp();
    const f = path.join(d, CLUSTER_CONFIG_FILE);
    fs.writeFileSync(f, doc([member(1)]));
    expect(readClusterConfig(f).members[0].id).toBe(1);
    expect(codeOf(() => readClusterConfig(path.join(d, 'missing.json')))).toBe('CLUSTER_CONFIG_UNREADABLE');
    fs.writeFileSync(f, `${doc([member(1)])}${' '.repeat(MAX_CLUSTER_CONFIG_BYTES)}`);
    expect(codeOf(() => readClusterConfig(f))).toBe('CLUSTER_CONFIG_UNREADABLE');
  });
});

describe('initCluster', () => {
  it('lays out the cluster file, a private secret and data directories whose node keys are the listed keys', async () => {
    const dir = path.join(tmp(), 'c');
    const layout = initCluster({ nodes: 3, dir, clientPort: 17001, peerPort: 17101 });
    const cfg = readClusterConfig(path.join(dir, CLUSTER_CONFIG_FILE));
    expect(cfg).toEqual(layout.config);
    expect(cfg.clusterId).toMatch(/^pk-[0-9a-f]{16}$/);
    // It commits to the signer set the log's checkpoint 0 will have: all three, quorum 2.
    expect(toHex(cfg.initialSignerSet!)).toBe(toHex(signerSetHash(bootstrapSignerSet(cfg.members))));
    expect(cfg.members.map((m) => [m.id, m.clientUrl, m.peerUrl])).toEqual([
      [1, 'http://127.0.0.1:17001', 'http://127.0.0.1:17101'],
      [2, 'http://127.0.0.1:17002', 'http://127.0.0.1:17102'],
      [3, 'http://127.0.0.1:17003', 'http://127.0.0.1:17103'],
    ]);
    readClusterSecret(path.join(dir, CLUSTER_SECRET_FILE));
    if (process.platform !== 'win32') {
      expect(fs.statSync(path.join(dir, CLUSTER_SECRET_FILE)).mode & 0o777).toBe(0o600);
      for (const id of [1, 2, 3]) expect(fs.statSync(path.join(dir, `node${id}`)).mode & 0o777, `node${id}`).toBe(0o700);
    }
    for (const m of cfg.members) {
      const nodeKey = new Uint8Array(fs.readFileSync(path.join(dir, `node${m.id}`, NODE_KEY_FILE)));
      expect(toHex(publicKeyOf(nodeKey))).toBe(toHex(m.publicKey));
    }
    // The engine, opening the member's data directory, signs with the listed key.
    const db = await ProofDB.open(path.join(dir, 'node2'));
    try {
      expect(toHex(db.publicKey())).toBe(toHex(cfg.members[1].publicKey));
    } finally {
      await db.close();
    }
    expect(new Set(cfg.members.map((m) => toHex(m.publicKey))).size).toBe(3);
    expect(sdkSnippet(cfg).join('\n')).toContain(`quorum: ${majority(3)},`);
    expect(majority(3)).toBe(2);
    expect(majority(4)).toBe(3);
    expect(majority(5)).toBe(3);
  });

  it('never overwrites: any existing part of a cluster is refused and nothing is created', () => {
    const dir = tmp();
    initCluster({ nodes: 3, dir });
    const before = fs.readFileSync(path.join(dir, CLUSTER_CONFIG_FILE), 'utf8');
    const secret = fs.readFileSync(path.join(dir, CLUSTER_SECRET_FILE), 'utf8');
    expect(codeOf(() => initCluster({ nodes: 3, dir }))).toBe('CLUSTER_EXISTS');
    expect(fs.readFileSync(path.join(dir, CLUSTER_CONFIG_FILE), 'utf8')).toBe(before);
    expect(fs.readFileSync(path.join(dir, CLUSTER_SECRET_FILE), 'utf8')).toBe(secret);
    // Only a member's data directory exists (say, an old node): refused, and node1 is not made.
    const d2 = tmp();
    fs.mkdirSync(path.join(d2, 'node2'));
    expect(codeOf(() => initCluster({ nodes: 3, dir: d2 }))).toBe('CLUSTER_EXISTS');
    expect(fs.readdirSync(d2)).toEqual(['node2']);
    const d3 = tmp();
    fs.writeFileSync(path.join(d3, CLUSTER_SECRET_FILE), 'x');
    expect(codeOf(() => initCluster({ nodes: 1, dir: d3 }))).toBe('CLUSTER_EXISTS');
    expect(fs.readdirSync(d3)).toEqual([CLUSTER_SECRET_FILE]);
  });

  it('refuses bad options before touching the disk', () => {
    const dir = path.join(tmp(), 'c');
    for (const o of [
      { nodes: 0 },
      { nodes: 8 },
      { nodes: 2.5 },
      { nodes: 3, clientPort: 65534 },
      { nodes: 3, peerPort: 0 },
      { nodes: 3, clientPort: 7001, peerPort: 7003 },
      { nodes: 3, host: 'a b' },
      { nodes: 3, host: 'h/x' },
      { nodes: 3, host: '0.0.0.0' },
    ]) {
      expect(codeOf(() => initCluster({ dir, ...o })), JSON.stringify(o)).toBe('USAGE');
    }
    expect(fs.existsSync(dir)).toBe(false);
  });

  it('puts IPv6 hosts in brackets', () => {
    const cfg = initCluster({ nodes: 1, dir: tmp(), host: '::1' }).config;
    expect(cfg.members[0].clientUrl).toBe('http://[::1]:7001');
  });
});

describe('proofkv cluster init', () => {
  it('prints the layout as JSON, and CLUSTER_EXISTS when run again', async () => {
    const dir = tmp();
    const r = await cli(['cluster', 'init', '--nodes', '3', '--dir', dir, '--client-port', '27001', '--peer-port', '27101', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const out = jsonOf(r);
    const cfg = readClusterConfig(path.join(dir, CLUSTER_CONFIG_FILE));
    expect(out.clusterId).toBe(cfg.clusterId);
    expect(out.quorum).toBe(2);
    expect(out.members.map((m: { publicKey: string }) => m.publicKey)).toEqual(cfg.members.map((m) => toHex(m.publicKey)));
    expect(out.members[2].serve).toContain('--node-id 3');
    const again = await cli(['cluster', 'init', '--nodes', '3', '--dir', dir, '--json']);
    expect(again.code).toBe(1);
    expect(jsonError(again).code).toBe('CLUSTER_EXISTS');
    const bad = await cli(['cluster', 'init', '--nodes', 'three', '--dir', path.join(dir, 'x')]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/USAGE/);
  });
});
