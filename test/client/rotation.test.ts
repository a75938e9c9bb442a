/**
 * Node key rotation, through real nodes: a client that trusts the old key follows a rotation made
 * with `serve --rotate-key` while the old key existed, persists the new key and keeps verifying; a
 * rotation without the old key (the key was lost) is refused with a reason that says so; forged
 * statements served through the tampering proxy are refused and leave the trusted state as it
 * was; a rollback or a fork across a rotation is still caught. With a fake node: a rotation
 * replaces one member of a quorum > 1 set, TOFU follows its pinned key, and a stored state whose
 * rotations do not lead from the configured keys is refused.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import { afterEach, describe, expect, it } from 'vitest';
import { FileStateStore, fromBase64Url, MemoryStateStore, ProofKVClient, toBase64Url, VerificationError, type AnyReason, type ProofKVClientOptions } from '../../client-sdk/index.js';
import { generateKeyPair, type KeyPair } from '../../proofs/checkpoint.js';
import { keyRotationMessage } from '../../proofs/rotation.js';
import { FakeLog, json, problem, recordingFetch, rejection } from './fake_node.js';
import { RewritingProxy, runCli, startServer, tmpDir, type ServerProc } from './helpers.js';

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
    // A client configured with the old key and no state at all follows the statement from scratch.
    const fresh = new ProofKVClient({ endpoints: [r.url], trust: { publicKeys: [t.oldKey], quorum: 1 }, stateStore: new MemoryStateStore(), retries: 0, onWarning: (m) => t.warnings.push(m) });
    expect(new TextDecoder().decode((await fresh.verifiedGet('b'))?.value)).toBe('2');
    expect(t.warnings.length).toBe(warned + 1);
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

/** A signed rotation statement in its wire form. */
function statement(logSize: number, from: KeyPair, to: KeyPair, oldSigner: KeyPair | undefined = from): Record<string, unknown> {
  const msg = keyRotationMessage({ logSize, oldPublicKey: from.publicKey, newPublicKey: to.publicKey });
  return {
    logSize,
    oldPublicKey: toBase64Url(from.publicKey),
    newPublicKey: toBase64Url(to.publicKey),
    ...(oldSigner ? { oldSignature: toBase64Url(ed25519.sign(msg, oldSigner.privateKey)) } : {}),
    newSignature: toBase64Url(ed25519.sign(msg, to.privateKey)),
    time: '2026-01-01T00:00:00Z',
  };
}

/** A client of a fake node that serves `log` and `rotations()` at `/v1/key-rotations`. */
function fakeClient(log: FakeLog, rotations: () => unknown[], extra: Partial<ProofKVClientOptions>): ProofKVClient {
  const { fetch } = recordingFetch((call) => {
    if (new URL(call.url).pathname === '/v1/key-rotations') return json(200, { rotations: rotations() });
    return log.route(call) ?? problem(404, 'NOT_FOUND');
  });
  return new ProofKVClient({ endpoints: ['http://fake.invalid'], trust: { tofu: true }, onWarning: () => {}, retries: 0, fetch, ...extra });
}

describe('key rotation, CLI (trust on first use)', () => {
  it('follows a rotation by the old key with a warning; a lost-key rotation is refused with the reset hint', async () => {
    const dataDir = path.join(tmpDir('proofkv-rotation-cli-'), 'data');
    const home = tmpDir('proofkv-rotation-home-');
    const first = await serve(dataDir);
    const port = first.url.split(':')[2]!;
    const run = (args: string[]) => runCli(args, { HOME: home, PROOFKV_ENDPOINT: first.url });
    expect((await run(['put', 'k', 'v1', '--verify'])).code).toBe(0);
    await stop(first);

    const rotated = await serve(dataDir, ['--port', port, '--rotate-key']);
    expect(rotated.url).toBe(first.url);
    expect((await run(['put', 'k', 'v2'])).code).toBe(0);
    const followed = await run(['checkpoint', '--create']);
    expect(followed.code).toBe(0);
    expect(followed.stderr).toMatch(/node key [0-9a-f]{64} was rotated to [0-9a-f]{64} at log size 1/);
    expect((await run(['get', 'k'])).stdout).toContain('v2');
    await stop(rotated);

    fs.rmSync(path.join(dataDir, 'NODE_KEY'));
    const lost = await serve(dataDir, ['--port', port, '--rotate-key']);
    await writeAndCheckpoint(lost.url, 'k', 'v3');
    const refused = await run(['get', 'k', '--json']);
    expect(refused.code).toBe(3);
    const err = JSON.parse(refused.stdout).error as { reason: string; detail: string; hint: string };
    expect(err.reason).toBe('KEY_ROTATION_REFUSED');
    expect(err.detail).toMatch(/not signed by the old key \(the key was lost\)/);
    expect(err.hint).toBe('proofkv trust reset');
  });
});

describe('key rotation, fake node', () => {
  it('with quorum 2 a rotation replaces exactly one member of the set', async () => {
    const [k1, k2, k3] = [generateKeyPair(), generateKeyPair(), generateKeyPair()];
    const log = new FakeLog([k1!, k2!]).grow(2);
    let rotations: unknown[] = [];
    const store = new MemoryStateStore();
    const warnings: string[] = [];
    const c = fakeClient(log, () => rotations, { trust: { publicKeys: [k1!.publicKey, k2!.publicKey], quorum: 2 }, stateStore: store, onWarning: (m) => warnings.push(m) });
    expect((await c.checkpoint()).head.size).toBe(2);
    // k2 is replaced by k3 at log size 2; heads from 3 on are signed by k1 and k3.
    log.keys[1] = k3!;
    log.grow(1);
    // A rotation onto a key already in the set would shrink it: refused.
    rotations = [statement(2, k2!, k1!)];
    expect(((await rejection(c.checkpoint())) as VerificationError).reason).toBe('KEY_ROTATION_REFUSED');
    rotations = [statement(2, k2!, k3!)];
    const cp = await c.checkpoint();
    expect(cp.head.size).toBe(3);
    expect(cp.signers.map(hex).sort()).toEqual([hex(k1!.publicKey), hex(k3!.publicKey)].sort());
    const [state] = [await store.load(c.trust.id)];
    expect(state?.publicKeys.sort()).toEqual([hex(k1!.publicKey), hex(k3!.publicKey)].sort());
    expect(state?.quorum).toBe(2);
    expect(warnings).toHaveLength(1);
  });

  it('TOFU follows a rotation of its pinned key; a chain of two rotations is followed in order', async () => {
    const [k1, k2, k3] = [generateKeyPair(), generateKeyPair(), generateKeyPair()];
    const log = new FakeLog([k1!]).grow(2);
    let rotations: unknown[] = [];
    const store = new MemoryStateStore();
    const c = fakeClient(log, () => rotations, { stateStore: store });
    await c.checkpoint();
    log.keys[0] = k2!;
    log.grow(1);
    log.keys[0] = k3!;
    log.grow(1);
    rotations = [statement(2, k1!, k2!), statement(3, k2!, k3!)];
    expect((await c.checkpoint()).head.size).toBe(4);
    const state = await store.load(c.trust.id);
    expect(state?.tofu).toBe(true);
    expect(state?.publicKeys).toEqual([hex(k3!.publicKey)]);
    expect(state?.rotations?.map((r) => r.logSize)).toEqual([2, 3]);
  });

  it('refuses a head signed by the new key at or below the rotation size, and a chain whose sizes go back', async () => {
    const [k1, k2, k3] = [generateKeyPair(), generateKeyPair(), generateKeyPair()];
    const log = new FakeLog([k1!]).grow(2);
    let rotations: unknown[] = [];
    const store = new MemoryStateStore();
    const c = fakeClient(log, () => rotations, { trust: { publicKeys: [k1!.publicKey], quorum: 1 }, stateStore: store });
    await c.checkpoint();
    const before = await store.load(c.trust.id);
    log.keys[0] = k2!;
    log.grow(1);
    rotations = [statement(3, k1!, k2!)];
    const atSize = (await rejection(c.checkpoint())) as VerificationError;
    expect(atSize.reason).toBe('KEY_ROTATION_REFUSED');
    expect(atSize.message).toMatch(/head 3 is signed by a new key but the old key signed heads up to the rotation at log size 3/);
    rotations = [statement(2, k1!, k3!), statement(1, k3!, k2!)];
    expect(((await rejection(c.checkpoint())) as VerificationError).reason).toBe('KEY_ROTATION_REFUSED');
    expect(await store.load(c.trust.id)).toEqual(before);
  });

  it('refuses stored state whose rotations do not lead from the configured keys', async () => {
    const [k1, k2] = [generateKeyPair(), generateKeyPair()];
    const log = new FakeLog([k2!]).grow(2);
    const store = new MemoryStateStore();
    const trust = { publicKeys: [k1!.publicKey], quorum: 1 };
    const c = fakeClient(log, () => [], { trust, stateStore: store });
    // Someone wrote k2 into the state with a rotation from a key that is not configured.
    await store.save(c.trust.id, { publicKeys: [hex(k2!.publicKey)], quorum: 1, rotations: [{ logSize: 1, oldPublicKey: hex(k2!.publicKey), newPublicKey: hex(k2!.publicKey) }] });
    expect(((await rejection(c.checkpoint())) as VerificationError).reason).toBe('STATE_MISMATCH');
    await store.save(c.trust.id, { publicKeys: [hex(k2!.publicKey)], quorum: 1 });
    expect(((await rejection(c.checkpoint())) as VerificationError).reason).toBe('STATE_MISMATCH');
  });
});
