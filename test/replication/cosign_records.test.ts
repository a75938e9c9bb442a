/**
 * The co-signing records of `CHECKPOINTS` (docs/storage.md §10.1): a checkpoint finished at open
 * takes its time and signer set from its intent record and proposes its own signature again; a
 * legacy record (written before co-signing) is read as a certified one-node checkpoint; damaged
 * or unknown records are corruption.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ProofDB, type DBOptions } from '../../src/index.js';
import { CommandApplier } from '../../server/write_path.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { checkpointBytes, checkpointLeafHash, signHead } from '../../proofs/checkpoint.js';
import { openNodeKey } from '../../src/proof/node_key.js';
import { concatBytes, writeU32BE } from '../../proofs/bytes.js';
import { decodeRecord, encodeCosignRecord, isCheckpointRecord } from '../../src/proof/checkpoint_log.js';
import { readJournal } from '../../src/journal/reader.js';
import { JournalWriter } from '../../src/journal/writer.js';
import { encodeEdit } from '../../src/version/edit.js';
import type { CosignCommand, SignerSet } from '../../src/replication/cosign.js';
import { copyLiveDir, tempDir } from '../engine/harness.js';

const OPTS: DBOptions = { writeAheadLog: 'external', compactionThread: 'inline', writeBufferSize: 4096 };
const te = new TextEncoder();
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});
function scratch(): string {
  const t = tempDir('proofkv-cosign-rec-');
  cleanups.push(t.cleanup);
  return t.dir;
}

const u32 = (v: number) => {
  const b = new Uint8Array(4);
  writeU32BE(b, 0, v);
  return b;
};

describe('co-signing records in CHECKPOINTS', () => {
  it('a checkpoint finished at open records the time and signer set of its intent, stays pending, and proposes its signature again', async () => {
    const root = scratch();
    const dir = path.join(root, 'db');
    const db = await ProofDB.open(dir, OPTS);
    const other = (n: number) => Uint8Array.from({ length: 32 }, (_, i) => (i * 7 + n) & 0xff);
    const set: SignerSet = { quorum: 2, members: [{ id: 1, publicKey: db.publicKey() }, { id: 2, publicKey: other(2) }, { id: 3, publicKey: other(3) }] };
    const proposed: CosignCommand[] = [];
    const applier = new CommandApplier(db, { signers: () => set, proposeCosign: (c) => proposed.push(c) });
    const cut = path.join(root, 'cut');
    try {
      for (let i = 1; i <= 20; i++) await applier.execute({ type: 'put', key: te.encode(`k${i % 7}`), value: te.encode(`value ${i}`) }, i);
      await applier.execute({ type: 'checkpoint', time: 777_000 }, 21);
      expect(proposed.length).toBe(1);
      // The state right after the checkpoint's last install: its record cut, its intent kept.
      copyLiveDir(dir, cut);
    } finally {
      await db.close();
    }
    const file = path.join(cut, 'CHECKPOINTS');
    const whole = fs.readFileSync(file);
    const records = readJournal(whole, 'CHECKPOINTS').records.map(decodeRecord);
    expect(records.map((r) => (isCheckpointRecord(r) ? 'checkpoint' : r.kind))).toEqual(['intent', 'checkpoint']);
    fs.truncateSync(file, readJournal(whole.subarray(0, whole.length - 1), 'CHECKPOINTS').validLength);
    const re = await ProofDB.open(cut, OPTS);
    try {
      expect(fs.readFileSync(file).equals(whole)).toBe(true);
      expect(re.certification()).toMatchObject({ certifiedSize: 0, latestSize: 1, time: 777_000 });
      const again = re.ownCosign()!;
      expect({ ...again, root: hex(again.root), signature: hex(again.signature) }).toEqual({ ...proposed[0], root: hex(proposed[0].root), signature: hex(proposed[0].signature) });
      const resumed: CosignCommand[] = [];
      new CommandApplier(re, { signers: () => set, proposeCosign: (c) => resumed.push(c) }).resumeCosign();
      expect(resumed.length).toBe(1);
    } finally {
      await re.close();
    }
  });

  it('reads a legacy record as a certified one-node checkpoint, and a later checkpoint certifies at once', async () => {
    const dir = path.join(scratch(), 'db');
    const db = await ProofDB.open(dir);
    await db.put('a', 'x');
    const first = await db.checkpoint();
    const want = db.latestCheckpoint();
    await db.close();
    // Rewrite the record in the format written before co-signing.
    const file = path.join(dir, 'CHECKPOINTS');
    const [rec] = readJournal(fs.readFileSync(file), 'CHECKPOINTS').records.map(decodeRecord);
    if (!isCheckpointRecord(rec)) throw new Error('expected a checkpoint record');
    // A legacy record holds a v1 message (no time, no signer-set hash), signed by the node.
    const v1 = { index: rec.checkpoint.index, seq: rec.checkpoint.seq, masterRoot: rec.checkpoint.masterRoot };
    const msg = checkpointBytes(v1);
    const head = { size: 1, root: checkpointLeafHash(v1) };
    const { key } = openNodeKey(dir, { logSize: 1 });
    const sig = signHead(key.privateKey, head);
    const legacy = concatBytes(u32(msg.length), msg, u32(1), sig.publicKey, sig.signature, encodeEdit({ added: rec.tables }));
    fs.rmSync(file);
    const w = JournalWriter.open(file);
    w.addRecord(legacy);
    await w.flush({ sync: true });
    await w.close();
    const back = decodeRecord(legacy);
    expect(isCheckpointRecord(back) && back.signers === undefined && back.time === undefined).toBe(true);
    const re = await ProofDB.open(dir);
    try {
      const got = re.latestCheckpoint();
      expect(hex(got.head.root)).toBe(hex(head.root));
      expect(got.signatures.map((g) => hex(g.signature))).toEqual([hex(sig.signature)]);
      expect(hex(want.head.root)).not.toBe(hex(head.root)); // the v2 record it replaced
      expect((await re.getWithProof('a')).entry?.version).toBe(1);
      await re.put('b', 'y');
      const next = await re.checkpoint({ time: 5 });
      expect(next).toMatchObject({ certified: true, time: 5 });
      expect(re.latestCheckpoint().head.size).toBe(2);
    } finally {
      await re.close();
    }
  });

  it('a one-node log moves to a cluster signer set only with its own signature (the previous set), under any member id', async () => {
    const dir = path.join(scratch(), 'db');
    const db = await ProofDB.open(dir);
    try {
      await db.put('a', 'x');
      await db.checkpoint({ time: 1 });
      const x = ed25519.keygen();
      const y = ed25519.keygen();
      const members = [{ id: 2, publicKey: db.publicKey() }, { id: 5, publicKey: x.publicKey }, { id: 7, publicKey: y.publicKey }];
      await db.put('b', 'y');
      const cp = await db.checkpoint({ time: 2, signers: { quorum: 2, members } });
      expect(cp.certified).toBe(false);
      const head = { size: cp.head.size, root: cp.head.root };
      const sign = (id: number, key: Uint8Array): CosignCommand => ({ type: 'cosign', nodeId: id, size: head.size, root: head.root, signature: signHead(key, head).signature });
      // A quorum of the new set without the node itself does not approve the change.
      expect((await db.cosign(sign(5, x.secretKey))).verdict).toBe('accepted');
      expect((await db.cosign(sign(7, y.secretKey))).verdict).toBe('accepted');
      expect(db.certification()).toMatchObject({ certifiedSize: 1, latestSize: 2 });
      const done = await db.cosign(cp.cosign!);
      expect(cp.cosign!.nodeId).toBe(2);
      expect(done.certified?.head.size).toBe(2);
      expect(db.certification().signers).toEqual([5, 7, 2]);
    } finally {
      await db.close();
    }
  });

  it('an unknown record kind, a truncated cosign record or trailing bytes are corruption', () => {
    const good = encodeCosignRecord(3, { id: 2, publicKey: new Uint8Array(32).fill(1), signature: new Uint8Array(64).fill(2) });
    const back = decodeRecord(good);
    expect(!isCheckpointRecord(back) && back.kind === 'cosign' && back.size === 3 && back.signature.id === 2).toBe(true);
    const unknown = Uint8Array.from(good);
    unknown[4] = 9;
    for (const bad of [unknown, good.subarray(0, good.length - 1), concatBytes(good, Uint8Array.of(0))]) {
      expect(() => decodeRecord(bad)).toThrow(/CHECKPOINTS/);
    }
  });
});
