/**
 * The command line: `proofkv witness` as a process, a node pushing to it, and `proofkv note`
 * printing and verifying the merged note (exit 3 when it does not verify); note-form keys in
 * `--public-key`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatVerifierKey, generateKeyPair, parseVerifierKey, verifierKeyOf } from '../../proofs/index.js';
import type { ProofNode } from '../../server/node.js';
import { startNode } from './helpers.js';
import { openNodeKey } from '../../src/proof/node_key.js';
import { tempDir } from '../engine/harness.js';
import { cli } from '../server/cli_helpers.js';
import { noteOptionsOf } from '../../server/cli/note.js';
import { resolveConfig } from '../../server/config.js';
import * as fs from 'node:fs';
import { cliArgv } from '../support/cli_build.js';

const ORIGIN = 'proofkv/cli.example';
const dirs: Array<{ dir: string; cleanup: () => void }> = [];
const tempDirOf = () => dirs[0].dir;
let witnessProc: ChildProcess;
let witnessKey: string;
let node: ProofNode;
let nodeVkey: string;

beforeAll(async () => {
  const dataDir = tempDir('proofkv-note-cli-');
  const wdir = tempDir('proofkv-witness-cli-');
  dirs.push(dataDir, wdir);
  const nodeKey = openNodeKey(dataDir.dir, { logSize: 0 }).key;
  nodeVkey = formatVerifierKey(verifierKeyOf(ORIGIN, nodeKey.publicKey));
  witnessProc = spawn(process.execPath, [...cliArgv(), 'witness', '--name', 'w.example', '--dir', wdir.dir, '--port', '0', '--log-key', nodeVkey], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`witness did not start: ${out}`)), 30_000);
    witnessProc.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const m = /listening on (\S+)[\s\S]*verifier key\s+(\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        witnessKey = m[2];
        resolve(m[1]);
      }
    });
    witnessProc.once('exit', (code) => reject(new Error(`witness exited ${code}: ${out}`)));
  });
  node = await startNode(dataDir.dir, { origin: ORIGIN, witnesses: [{ url, key: parseVerifierKey(witnessKey) }] });
}, 60_000);
afterAll(async () => {
  await node?.shutdown('test');
  witnessProc?.kill('SIGTERM');
  for (const d of dirs) d.cleanup();
});

describe('proofkv note and proofkv witness', () => {
  it('prints and verifies a note cosigned by a witness process; a wrong key exits 3', async () => {
    const put = await cli(['put', 'greeting', 'hello', '--endpoint', node.url, '--public-key', nodeVkey]);
    expect(put.code, put.stderr).toBe(0);
    expect((await cli(['checkpoint', '--create', '--endpoint', node.url, '--public-key', nodeVkey])).code).toBe(0);
    await node.notes!.push();
    const ok = await cli(['note', '--endpoint', node.url, '--verifier-key', nodeVkey, '--witness-key', witnessKey]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toContain(`${ORIGIN}\n1\n`);
    expect(ok.stdout).toMatch(/verified: 1 node signature\(s\), 1 witness cosignature\(s\): w\.example at /);
    const other = formatVerifierKey(verifierKeyOf(ORIGIN, generateKeyPair().publicKey));
    const bad = await cli(['note', '--endpoint', node.url, '--verifier-key', other]);
    expect(bad.code).toBe(3);
    expect(bad.stderr).toMatch(/QUORUM_NOT_MET/);
    const get = await cli(['get', 'greeting', '--endpoint', node.url, '--public-key', nodeVkey]);
    expect(get.code, get.stderr).toBe(0);
    expect(get.stdout).toContain('hello');
  });

  it('serve reads origin and witnesses from the config file; the command line wins', () => {
    const file = path.join(tempDirOf(), 'config.json');
    fs.writeFileSync(file, JSON.stringify({ origin: 'proofkv/from-file', witnesses: [`http://127.0.0.1:1=${witnessKey}`] }));
    const fromFile = resolveConfig({ config: file }, {}, new Set());
    expect(fromFile.origin).toBe('proofkv/from-file');
    expect(noteOptionsOf({ origin: fromFile.origin, witness: fromFile.witnesses }).witnesses?.[0].key.name).toBe('w.example');
    const flags = resolveConfig({ config: file, origin: 'proofkv/flag', witness: [] }, {}, new Set(['origin', 'witness']));
    expect([flags.origin, flags.witnesses]).toEqual(['proofkv/flag', []]);
    fs.writeFileSync(file, JSON.stringify({ witnesses: 'http://x=y' }));
    expect(() => resolveConfig({ config: file }, {}, new Set())).toThrow(/witnesses must be a list/);
  });

  it('refuses a malformed verifier key as a usage error', async () => {
    const r = await cli(['note', '--endpoint', node.url, '--verifier-key', 'nope+123+abc']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/USAGE/);
  });
});
