/**
 * End to end: a node, two witnesses and an SDK that requires both. The node serves its checkpoint
 * notes and pushes each new head to the witnesses (tlog-witness); the SDK accepts a head only
 * with both cosignatures and reports who vouched; a fork shown to one witness is refused and
 * filed as evidence; a head one witness has not cosigned is refused by the SDK.
 */
import * as fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProofKVClient, VerificationError } from '../../client-sdk/index.js';
import {
  KEY_TYPE_COSIGNATURE,
  formatCheckpointNote,
  formatNote,
  formatVerifierKey,
  generateKeyPair,
  parseCheckpointNote,
  parseNote,
  signNote,
  verifierKeyOf,
  verifyCheckpointNote,
  type KeyPair,
} from '../../proofs/index.js';
import type { ProofNode } from '../../server/node.js';
import { startNode } from './helpers.js';
import { openNodeKey } from '../../src/proof/node_key.js';
import { serveWitness, type WitnessServer } from '../../witness/http.js';
import { formatAddCheckpoint } from '../../witness/protocol.js';
import { WitnessStore } from '../../witness/state.js';
import { Witness } from '../../witness/witness.js';
import { tempDir } from '../engine/harness.js';

const ORIGIN = 'proofkv/e2e.example';
let dirs: Array<{ dir: string; cleanup: () => void }> = [];
let nodeKey: KeyPair;
let node: ProofNode;
const w: Array<{ witness: Witness; server: WitnessServer; key: KeyPair }> = [];

function dir(): string {
  const d = tempDir('proofkv-witness-e2e-');
  dirs.push(d);
  return d.dir;
}

beforeAll(async () => {
  const dataDir = dir();
  nodeKey = openNodeKey(dataDir, { logSize: 0 }).key;
  for (let i = 0; i < 2; i++) {
    const key = generateKeyPair(new Uint8Array(32).fill(40 + i));
    const witness = new Witness(new WitnessStore(dir()), {
      name: `w${i + 1}.example`,
      key,
      logs: [{ origin: ORIGIN, keys: [verifierKeyOf(ORIGIN, nodeKey.publicKey)], quorum: 1 }],
    });
    w.push({ witness, server: await serveWitness(witness, '127.0.0.1', 0, [ORIGIN]), key });
  }
  node = await startNode(dataDir, { origin: ORIGIN, witnesses: w.map((x) => ({ url: x.server.url, key: x.witness.verifierKey() })) });
});
afterAll(async () => {
  await node?.shutdown('test');
  for (const x of w) await x.server.close();
  for (const d of dirs) d.cleanup();
  dirs = [];
});

const witnessKeys = () => w.map((x) => formatVerifierKey(x.witness.verifierKey()));
const client = (witnesses = true) =>
  new ProofKVClient({
    endpoints: [node.url],
    trust: { publicKeys: [formatVerifierKey(verifierKeyOf(ORIGIN, nodeKey.publicKey))], quorum: 1, ...(witnesses ? { witnesses: { origin: ORIGIN, keys: witnessKeys(), quorum: 2 } } : {}) },
    retries: 0,
  });

async function checkpointAndPush(key: string, value: string): Promise<number> {
  const plain = client(false);
  await plain.put(key, value);
  const cp = await plain.createCheckpoint();
  await node.notes!.push();
  return cp.head.size;
}

describe('checkpoint notes served by a node', () => {
  it('GET /v1/checkpoints/latest/note and /{size}/note return signed notes; bad sizes are refused', async () => {
    await checkpointAndPush('a', '1');
    const size = await checkpointAndPush('b', '2');
    const res = await fetch(`${node.url}/v1/checkpoints/latest/note`);
    expect(res.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    const text = await res.text();
    const logKey = verifierKeyOf(ORIGIN, nodeKey.publicKey);
    const v = verifyCheckpointNote(text, { origin: ORIGIN, logKeys: [logKey], quorum: 1, witnesses: w.map((x) => x.witness.verifierKey()), witnessQuorum: 2 });
    expect(v.ok && v.checkpoint.size).toBe(size);
    const first = await (await fetch(`${node.url}/v1/checkpoints/1/note`)).text();
    const c1 = parseCheckpointNote(parseNote(first).text);
    expect(c1.size).toBe(1);
    expect(verifyCheckpointNote(first, { origin: ORIGIN, logKeys: [logKey], quorum: 1 }).ok).toBe(true);
    expect((await fetch(`${node.url}/v1/checkpoints/${size + 1}/note`)).status).toBe(404);
    for (const bad of ['0', '01', 'x', '99999999999999999']) expect((await fetch(`${node.url}/v1/checkpoints/${bad}/note`)).status, bad).toBe(400);
  });
});

describe('witnesses and an SDK requiring both', () => {
  it('a verified read reports both witnesses', async () => {
    await checkpointAndPush('k', 'v1');
    const c = client();
    const r = await c.verifiedGet('k');
    expect(new TextDecoder().decode(r.value)).toBe('v1');
    expect(r.witnesses.sort()).toEqual(['w1.example', 'w2.example']);
    expect((await c.checkpoint()).witnesses.sort()).toEqual(['w1.example', 'w2.example']);
    expect((await c.verifiedHistory('k')).witnesses.sort()).toEqual(['w1.example', 'w2.example']);
  });

  it('proof answers carry the cosignatures: no note request, and a forged one is refused', async () => {
    const paths: string[] = [];
    let tamper = false;
    const counting = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
      const url = String(input);
      paths.push(new URL(url).pathname);
      const res = await fetch(input, init);
      if (!tamper || !url.includes('/proof')) return res;
      const body = (await res.json()) as { cosignatures: string };
      // Flip one base64 character of the first cosignature's signature bytes.
      const line = body.cosignatures.split('\n')[0];
      const at = line.length - 10;
      body.cosignatures = body.cosignatures.replace(line, line.slice(0, at) + (line[at] === 'A' ? 'B' : 'A') + line.slice(at + 1));
      return new Response(JSON.stringify(body), { status: res.status, headers: { 'content-type': 'application/json' } });
    };
    const c = new ProofKVClient({
      endpoints: [node.url],
      trust: { publicKeys: [nodeKey.publicKey], quorum: 1, witnesses: { origin: ORIGIN, keys: witnessKeys(), quorum: 2 } },
      retries: 0,
      fetch: counting as never,
    });
    const body = (await (await fetch(`${node.url}/v1/kv/k/proof`)).json()) as { cosignatures?: string };
    expect(body.cosignatures?.split('\n').filter(Boolean)).toHaveLength(2);
    expect((await c.verifiedGet('k')).witnesses.sort()).toEqual(['w1.example', 'w2.example']);
    expect(paths.some((p) => p.endsWith('/note'))).toBe(false);
    tamper = true;
    const fresh = new ProofKVClient({
      endpoints: [node.url],
      trust: { publicKeys: [nodeKey.publicKey], quorum: 1, witnesses: { origin: ORIGIN, keys: witnessKeys(), quorum: 2 } },
      retries: 0,
      fetch: counting as never,
    });
    const err = await fresh.verifiedGet('k').catch((e: unknown) => e);
    expect((err as VerificationError).reason).toBe('BAD_SIGNATURE');
  });

  it('a fork shown to one witness is refused and filed as evidence; its state does not move', async () => {
    const cosigned = w[0].witness.cosigned(ORIGIN)!;
    const stateFile = w[0].witness.store.fileOf(ORIGIN);
    const before = fs.readFileSync(stateFile);
    // The node's key signs another root at the size the witness cosigned (a compromised key).
    const text = formatCheckpointNote({ origin: ORIGIN, size: cosigned.size, root: new Uint8Array(32).fill(0xee), extensions: [] });
    const note = formatNote({ text, signatures: [signNote(text, ORIGIN, nodeKey.privateKey)] });
    const res = await fetch(`${w[0].server.url}/add-checkpoint`, { method: 'POST', body: formatAddCheckpoint({ oldSize: cosigned.size, proof: [], note }) });
    expect(res.status).toBe(409);
    expect(fs.readFileSync(stateFile)).toEqual(before);
    const evidence = w[0].witness.store.evidence();
    expect(evidence).toHaveLength(1);
    expect(fs.readFileSync(evidence[0], 'utf8')).toContain(note);
  });

  it('the SDK refuses a head one witness has not cosigned, and its trusted head stays', async () => {
    const c = client();
    await c.verifiedGet('k');
    const trusted = await c.trust.trustedHead();
    await w[1].server.close(); // witness 2 is unreachable from now on
    await checkpointAndPush('k', 'v2');
    const note = await (await fetch(`${node.url}/v1/checkpoints/latest/note`)).text();
    const cosigners = parseNote(note).signatures.filter((s) => s.name !== ORIGIN).map((s) => s.name);
    expect(cosigners).toEqual(['w1.example']);
    const err = await c.verifiedGet('k').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VerificationError);
    expect((err as VerificationError).reason).toBe('QUORUM_NOT_MET');
    expect(await c.trust.trustedHead()).toEqual(trusted);
    // A client that requires only one of the two accepts it, and says who vouched.
    const one = new ProofKVClient({
      endpoints: [node.url],
      trust: { publicKeys: [nodeKey.publicKey], quorum: 1, witnesses: { origin: ORIGIN, keys: witnessKeys(), quorum: 1 } },
      retries: 0,
    });
    expect((await one.verifiedGet('k')).witnesses).toEqual(['w1.example']);
  });

  it('a witness key is not accepted as a node key, nor a node key as a witness key', () => {
    const wk = formatVerifierKey(verifierKeyOf('w.example', generateKeyPair().publicKey, KEY_TYPE_COSIGNATURE));
    expect(() => new ProofKVClient({ endpoints: [node.url], trust: { publicKeys: [wk], quorum: 1 } })).toThrow(TypeError);
    const nk = formatVerifierKey(verifierKeyOf(ORIGIN, nodeKey.publicKey));
    expect(() => new ProofKVClient({ endpoints: [node.url], trust: { publicKeys: [nk], quorum: 1, witnesses: { origin: ORIGIN, keys: [nk], quorum: 1 } } })).toThrow(TypeError);
  });
});
