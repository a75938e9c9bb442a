/**
 * The operator's secret rotation on real processes (issue 10, item 3; docs/cluster.md § Rotating
 * the cluster secret): three `proofkv serve` processes share one `cluster.secret`; the file is
 * rewritten for each step (old + new; new + old; new) and every member is sent SIGHUP, one at a
 * time, each reload confirmed by its log line, while an SDK client writes. No write fails; a file
 * that cannot be used changes nothing (the member logs it and keeps its secrets); afterwards
 * every member refuses the old secret and authenticates the new one.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProofKVClient } from '../../client-sdk/index.js';
import { toHex } from '../../proofs/bytes.js';
import { readClusterSecret } from '../../server/cluster_config.js';
import { ProcessCluster } from './harness.js';
import { peerSecretProbe, until } from './in_process.js';

const te = new TextEncoder();

describe('secret rotation by SIGHUP', () => {
  let cluster: ProcessCluster;
  beforeAll(async () => {
    cluster = await ProcessCluster.start(3, ['--log-level', 'info']);
  }, 120_000);
  afterAll(async () => {
    await cluster?.close();
  });

  it('rotates while a client writes; the old secret is refused afterwards', async () => {
    const ids = cluster.members.map((m) => m.id);
    const file = path.join(cluster.dir, 'cluster.secret');
    const OLD = readClusterSecret(file);
    const NEW = new Uint8Array(randomBytes(32));
    const write = (text: string) => fs.writeFileSync(file, text, { mode: 0o600 });
    const count = (id: number, event: string) => cluster.member(id).output.split(`"event":"${event}"`).length - 1;
    const hup = async (id: number, event = 'cluster_secret_reloaded') => {
      const before = count(id, event);
      cluster.member(id).proc!.kill('SIGHUP');
      await until(`member ${id} logged ${event}`, () => count(id, event) > before);
    };
    const probe = (id: number, secret: Uint8Array) => peerSecretProbe(cluster.config, id, ids.find((x) => x !== id)!, secret);

    await cluster.leader();
    const client = new ProofKVClient({ endpoints: cluster.members.map((m) => m.url), trust: { publicKeys: cluster.publicKeys, quorum: 2 }, retries: 40, retryDelayMs: 50, timeoutMs: 5000, onWarning: () => {} });
    let stop = false;
    let acked = 0;
    const failures: string[] = [];
    const writer = (async () => {
      while (!stop && acked < 20_000) {
        try {
          await client.put(te.encode(`k${acked}`), te.encode(`v${acked}`));
          acked++;
        } catch (err) {
          failures.push((err as Error).message);
          if (failures.length > 20) return;
        }
      }
    })();
    const progress = async (what: string) => {
      const at = acked;
      await until(`writes go on (${what})`, () => acked >= at + 10 || failures.length > 0, 30_000);
    };

    await progress('before');
    const authenticated = await probe(1, OLD);
    expect(authenticated).not.toMatch(/bad-mac|error/);
    expect(await probe(1, NEW)).toBe('401 bad-mac');
    // A file that cannot be used: the member keeps its secrets.
    write('not a secret\n');
    await hup(1, 'cluster_secret_reload_failed');
    expect(await probe(1, OLD)).toBe(authenticated);
    const steps: Array<[string, string]> = [
      ['accept the new secret too', `${toHex(OLD)}\n${toHex(NEW)}\n`],
      ['send with the new secret', `${toHex(NEW)}\n${toHex(OLD)}\n`],
      ['drop the old secret', `${toHex(NEW)}\n`],
    ];
    for (const [what, text] of steps) {
      write(text);
      for (const id of ids) {
        await hup(id);
        await progress(`${what}, member ${id}`);
      }
    }
    stop = true;
    await writer;
    expect(failures).toEqual([]);
    for (const id of ids) {
      expect([id, await probe(id, OLD)]).toEqual([id, '401 bad-mac']);
      expect([id, await probe(id, NEW)]).toEqual([id, authenticated]);
    }
  }, 180_000);
});
