/**
 * Node key rotation, through real nodes: a client that trusts the old key follows a rotation made
 * with `serve --rotate-key` while the old key existed, persists the new key and keeps verifying; a
 * rotation without the old key (the key was lost) is refused with a reason that says so; forged
 * statements served through the tampering proxy are refused and leave the trusted state as it
 * was; a rollback or a fork across a rotation is still caught.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import { afterEach, describe, expect, it } from 'vitest';
import { FileStateStore, fromBase64Url, ProofKVClient, toBase64Url, VerificationError, type AnyReason } from '../../client-sdk/index.js';
import { keyRotationMessage } from '../../proofs/rotation.js';
import { RewritingProxy, startServer, tmpDir, type ServerProc } from './helpers.js';

const started: Array<{ stop(): Promise<unknown> } | RewritingProxy> = [];
afterEach(async () => {
  for (const s of started.splice(0).reverse()) await ('close' in s ? s.close() : s.stop());
});

async function serve(dataDir: string, args: string[] = []): Promise<ServerProc> {
  const s = await startServer({ dataDir, args: ['--checkpoint-interval', '0', ...args] });
  started.push(s);
  return s;
}

async function stop(s: ServerProc): Promise<void> {
  started.splice(started.indexOf(s), 1);
  await s.stop();
}

/** A write and a checkpoint straight to the node (no client trust involved). */
async function writeAndCheckpoint(url: string, key: string, value: string): Promise<void> {
  expect((await fetch(`${url}/v1/kv/${key}`, { method: 'PUT', body: value, headers: { 'content-type': 'application/octet-stream' } })).status).toBe(200);
  expect((await fetch(`${url}/v1/checkpoints`, { method: 'POST' })).status).toBe(200);
}

interface Setup {
  dataDir: string;
  stateFile: string;
  oldKey: Uint8Array;
  warnings: string[];
  client(url: string): ProofKVClient;
}

/** A node with one checkpoint that a client trusting its key has verified, then stopped. */
async function trustedNode(): Promise<Setup> {
  const dataDir = path.join(tmpDir('proofkv-rotation-'), 'data');
  const stateFile = path.join(tmpDir('proofkv-rotation-state-'), 'trust.json');
  const s = await serve(dataDir);
  const status = (await (await fetch(`${s.url}/v1/status`)).json()) as { publicKey: string };
  const oldKey = fromBase64Url(status.publicKey);
  const warnings: string[] = [];
  const client = (url: string) =>
    new ProofKVClient({ endpoints: [url], trust: { publicKeys: [oldKey], quorum: 1 }, stateStore: new FileStateStore(stateFile), retries: 0, onWarning: (m) => warnings.push(m) });
  const c = client(s.url);
  await c.put('a', '1');
  expect((await c.createCheckpoint()).head.size).toBe(1);
  await stop(s);
  return { dataDir, stateFile, oldKey, warnings, client };
}

async function reasonOf(p: Promise<unknown>): Promise<{ reason: AnyReason; message: string }> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(VerificationError);
  return { reason: (err as VerificationError<AnyReason>).reason, message: (err as Error).message };
}

const stateOf = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8')).states as Record<string, { publicKeys: string[]; head: { size: number; root: string }; rotations?: unknown[] }>;
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe('key rotation', () => {
  it('follows a rotation signed by the old key, persists the new key and keeps verifying', async () => {
    const t = await trustedNode();
    const r = await serve(t.dataDir, ['--rotate-key']);
    const newKey = fromBase64Url(((await (await fetch(`${r.url}/v1/status`)).json()) as { publicKey: string }).publicKey);
    expect(hex(newKey)).not.toBe(hex(t.oldKey));
    const c = t.client(r.url);
    await c.put('b', '2');
    const cp = await c.createCheckpoint();
    expect(cp.head.size).toBe(2);
    expect(cp.signers.map(hex)).toEqual([hex(newKey)]);
    expect(t.warnings.join('\n')).toMatch(new RegExp(`node key ${hex(t.oldKey)} was rotated to ${hex(newKey)} at log size 1`));
    expect(new TextDecoder().decode((await c.verifiedGet('a'))?.value)).toBe('1');
    const [state] = Object.values(stateOf(t.stateFile));
    expect(state!.publicKeys).toEqual([hex(newKey)]);
    expect(state!.rotations).toEqual([{ logSize: 1, oldPublicKey: hex(t.oldKey), newPublicKey: hex(newKey) }]);
    expect(state!.head.size).toBe(2);
    // A new client configured with the old key reads the state and verifies without following again.
    const warned = t.warnings.length;
    await c.put('c', '3');
    const again = t.client(r.url);
    expect((await again.createCheckpoint()).head.size).toBe(3);
    expect(new TextDecoder().decode((await again.verifiedGet('c'))?.value)).toBe('3');
    expect(t.warnings.length).toBe(warned);
  });

  it('refuses a rotation made without the old key and says the new key must be confirmed out of band', async () => {
    const t = await trustedNode();
    fs.rmSync(path.join(t.dataDir, 'NODE_KEY'));
    const r = await serve(t.dataDir, ['--rotate-key']);
    await writeAndCheckpoint(r.url, 'b', '2');
    const before = fs.readFileSync(t.stateFile, 'utf8');
    const { reason, message } = await reasonOf(t.client(r.url).checkpoint());
    expect(reason).toBe('KEY_ROTATION_REFUSED');
    expect(message).toMatch(/not signed by the old key \(the key was lost\): confirm the new key [0-9a-f]{64} out of band/);
    expect(fs.readFileSync(t.stateFile, 'utf8')).toBe(before);
  });

  it('refuses forged rotation statements and leaves the trusted state as it was', async () => {
    const t = await trustedNode();
    const r = await serve(t.dataDir, ['--rotate-key']);
    await writeAndCheckpoint(r.url, 'b', '2');
    const proxy = await new RewritingProxy(r.url).start();
    started.push(proxy);
    const before = fs.readFileSync(t.stateFile, 'utf8');
    const madeUp = ed25519.utils.randomSecretKey();
    type Wire = { logSize: number; oldPublicKey: string; newPublicKey: string; oldSignature?: string; newSignature: string };
    const sign = (w: Wire, key: Uint8Array) =>
      toBase64Url(ed25519.sign(keyRotationMessage({ logSize: w.logSize, oldPublicKey: fromBase64Url(w.oldPublicKey), newPublicKey: fromBase64Url(w.newPublicKey) }), key));
    const cases: Array<{ name: string; edit: (w: Wire) => void; reason: AnyReason }> = [
      {
        name: 'made-up old key, signed by it',
        edit: (w) => {
          w.oldPublicKey = toBase64Url(ed25519.getPublicKey(madeUp));
          w.oldSignature = sign(w, madeUp);
        },
        reason: 'UNTRUSTED_KEY',
      },
      { name: 'old signature by a wrong key', edit: (w) => (w.oldSignature = sign(w, madeUp)), reason: 'KEY_ROTATION_REFUSED' },
      { name: 'old signature copied from the new one', edit: (w) => (w.oldSignature = w.newSignature), reason: 'KEY_ROTATION_REFUSED' },
      { name: 'tampered logSize', edit: (w) => (w.logSize += 1), reason: 'KEY_ROTATION_REFUSED' },
      { name: 'tampered new key', edit: (w) => (w.newPublicKey = toBase64Url(ed25519.getPublicKey(madeUp))), reason: 'KEY_ROTATION_REFUSED' },
      { name: 'no statement at all', edit: () => {}, reason: 'UNTRUSTED_KEY' },
    ];
    for (const k of cases) {
      proxy.hooks.response = (_m, p, res) => {
        if (!p.startsWith('/v1/key-rotations') || res.status !== 200) return;
        const body = res.body as { rotations: Wire[] };
        if (k.name === 'no statement at all') body.rotations = [];
        else k.edit(body.rotations[0]!);
      };
      const { reason } = await reasonOf(t.client(proxy.url).checkpoint());
      expect([k.name, reason]).toEqual([k.name, k.reason]);
      expect(fs.readFileSync(t.stateFile, 'utf8')).toBe(before);
    }
    proxy.hooks.response = undefined;
    expect((await t.client(proxy.url).checkpoint()).head.size).toBe(2);
  });

  it('still catches a rollback and a fork across a rotation', async () => {
    const t = await trustedNode();
    const copy = path.join(tmpDir('proofkv-rotation-copy-'), 'data');
    fs.cpSync(t.dataDir, copy, { recursive: true });
    const fork = path.join(tmpDir('proofkv-rotation-fork-'), 'data');
    fs.cpSync(t.dataDir, fork, { recursive: true });
    // The client goes on to trust head 2 of the original.
    const x = await serve(t.dataDir);
    const c = t.client(x.url);
    await c.put('x', 'original');
    expect((await c.createCheckpoint()).head.size).toBe(2);
    await stop(x);
    const trusted = Object.values(stateOf(t.stateFile))[0]!.head;

    // Rollback: the copy at size 1 rotates (a statement at log size 1, signed by the old key).
    const back = await serve(copy, ['--rotate-key']);
    await writeAndCheckpoint(back.url, 'y', 'other');
    const rb = await reasonOf(t.client(back.url).checkpoint());
    expect(rb.reason).toBe('KEY_ROTATION_REFUSED');
    expect(rb.message).toMatch(/below the trusted log size 2/);
    await stop(back);

    // Fork: another history of size 2 under the old key, then a rotation at log size 2.
    const f1 = await serve(fork);
    await writeAndCheckpoint(f1.url, 'x', 'forked');
    await stop(f1);
    const f2 = await serve(fork, ['--rotate-key']);
    await writeAndCheckpoint(f2.url, 'z', '3');
    const fk = await reasonOf(t.client(f2.url).checkpoint());
    expect(fk.reason).toBe('FORK');
    expect(Object.values(stateOf(t.stateFile))[0]!.head).toEqual(trusted);
  });
});
