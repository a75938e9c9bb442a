/**
 * `proofkv serve --peer-via ID=URL` (docs/cluster.md): the dial overrides are parsed and refused
 * at start with `PEER_VIA_INVALID` (not ID=URL, a bad id, this member's own id, an id twice, a URL
 * that is not a listener origin); they come from the command line or the config file's `peerVia`
 * (the command line wins); without `--cluster` they are a configuration error; and a real `serve`
 * with a bad entry exits with the configuration status before it touches anything.
 * (That a member really dials through them: test/nemesis/peer_via.test.ts.)
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ClusterConfigError, parsePeerVia } from '../../server/cluster_config.js';
import { ConfigError, resolveConfig } from '../../server/config.js';
import { initCluster } from '../../server/cli/cluster.js';
import { EXIT } from '../../server/cli.js';
import { cli } from './cli_helpers.js';

function codeOf(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    if (err instanceof ClusterConfigError) return err.code;
    return `other: ${(err as Error).message}`;
  }
  return 'no error';
}

describe('parsePeerVia', () => {
  it('maps ids to normalised origins, including ids not in the cluster file yet', () => {
    const m = parsePeerVia(['2=http://127.0.0.1:9102', ' 7=http://localhost:9107/ '], 1);
    expect([...m]).toEqual([
      [2, 'http://127.0.0.1:9102'],
      [7, 'http://localhost:9107'],
    ]);
    expect(parsePeerVia([], 1).size).toBe(0);
  });

  it('refuses every bad entry with PEER_VIA_INVALID', () => {
    for (const bad of [['2'], ['=http://127.0.0.1:1'], ['x=http://127.0.0.1:1'], ['2:http://127.0.0.1:1'], ['0=http://127.0.0.1:1'], ['4294967296=http://127.0.0.1:1'],
      ['2=ftp://127.0.0.1:1'], ['2=http://127.0.0.1:1/path'], ['2=http://0.0.0.0:1'], ['2=not a url'], ['2=http://a:1', '2=http://b:1']]) {
      expect(codeOf(() => parsePeerVia(bad, 1)), bad.join(' ')).toBe('PEER_VIA_INVALID');
    }
    expect(() => parsePeerVia(['1=http://127.0.0.1:9101'], 1)).toThrow(/names this member/);
  });
});

describe('resolveConfig: peerVia', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });
  const cluster = { cluster: 'c.json', nodeId: '1', clusterSecretFile: 's' };

  it('takes the command line over the config file, and the file when the flag is absent', () => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'proofkv-peervia-'));
    dirs.push(d);
    const file = path.join(d, 'proofkv.json');
    fs.writeFileSync(file, JSON.stringify({ peerVia: ['2=http://127.0.0.1:9202'] }));
    expect(resolveConfig({ ...cluster, config: file }, {}, new Set()).cluster?.peerVia).toEqual(['2=http://127.0.0.1:9202']);
    expect(resolveConfig({ ...cluster, config: file, peerVia: ['3=http://127.0.0.1:9303'] }, {}, new Set(['peerVia'])).cluster?.peerVia).toEqual(['3=http://127.0.0.1:9303']);
    expect(resolveConfig(cluster, {}, new Set()).cluster?.peerVia).toEqual([]);
  });

  it('refuses --peer-via without --cluster, and a file value that is not a list of strings', () => {
    expect(() => resolveConfig({ peerVia: ['2=http://127.0.0.1:9102'] }, {}, new Set(['peerVia']))).toThrow(ConfigError);
    expect(() => resolveConfig({ peerVia: ['2=http://127.0.0.1:9102'] }, {}, new Set(['peerVia']))).toThrow(/needs --cluster/);
    const d = fs.mkdtempSync(path.join(os.tmpdir(), 'proofkv-peervia-'));
    dirs.push(d);
    const file = path.join(d, 'proofkv.json');
    fs.writeFileSync(file, JSON.stringify({ peerVia: '2=http://127.0.0.1:9202' }));
    expect(() => resolveConfig({ ...cluster, config: file }, {}, new Set())).toThrow(/peer-via must be a list of strings/);
  });
});

describe('serve --peer-via', () => {
  it('exits with the configuration status on its own id, before creating anything', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'proofkv-peervia-'));
    try {
      initCluster({ nodes: 3, dir, clientPort: 39_001, peerPort: 39_101 });
      const data = path.join(dir, 'node1');
      const before = fs.readdirSync(data).sort();
      const r = await cli(['serve', '--cluster', path.join(dir, 'cluster.json'), '--node-id', '1', '--data', data, '--cluster-secret-file', path.join(dir, 'cluster.secret'), '--peer-via', '2=http://127.0.0.1:39202', '--peer-via', '1=http://127.0.0.1:39201']);
      expect(r.code).toBe(EXIT.config);
      expect(r.stderr).toMatch(/--peer-via "1=http:\/\/127\.0\.0\.1:39201" names this member/);
      expect(fs.readdirSync(data).sort()).toEqual(before);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
