/**
 * The auditing witness (witness/audit.ts): it co-signs a head only when the table set behind the
 * head's MasterRoot is well formed. A compromised node — its real key signing a head over a
 * MasterRoot whose level 1 is out of order — is caught and refused, and the witness's state does
 * not move. An honest node's heads are co-signed.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  LogTree,
  Reason,
  checkpointLeafHash,
  computeMasterRoot,
  formatCheckpointNote,
  formatNote,
  generateKeyPair,
  internalKeyOf,
  nobleHasher,
  signNote,
  toBase64Url,
  verifierKeyOf,
  type Checkpoint,
  type TableDescriptor,
} from '../../proofs/index.js';
import type { ProofNode } from '../../server/node.js';
import { startNode } from './helpers.js';
import { openNodeKey } from '../../src/proof/node_key.js';
import { auditNode, auditTableSet } from '../../witness/audit.js';
import { serveWitness } from '../../witness/http.js';
import { formatAddCheckpoint } from '../../witness/protocol.js';
import { WitnessStore } from '../../witness/state.js';
import { Witness } from '../../witness/witness.js';
import { tempDir } from '../engine/harness.js';

const ORIGIN = 'proofkv/audit.example';
const enc = new TextEncoder();
const ik = (key: string, version: number) => internalKeyOf({ key: enc.encode(key), version, seq: version, kind: 1 });
const table = (level: number, position: number, lo: string, hi: string): TableDescriptor => ({
  level,
  position,
  smallest: ik(lo, 1),
  largest: ik(hi, 1),
  entryCount: 2,
  tableRoot: nobleHasher.sha256(enc.encode(`${level}/${position}/${lo}`)),
});

const honest = [table(0, 0, 'a', 'z'), table(1, 0, 'a', 'f'), table(1, 1, 'g', 'm'), table(2, 0, 'b', 'y')];
const outOfOrder = [table(0, 0, 'a', 'z'), table(1, 0, 'g', 'm'), table(1, 1, 'a', 'f'), table(2, 0, 'b', 'y')];
const overlapping = [table(1, 0, 'a', 'h'), table(1, 1, 'g', 'm')];

/** A one-checkpoint log over `descriptors`: the checkpoint, its head and what the node would serve. */
function logOver(descriptors: TableDescriptor[]) {
  // A v2 checkpoint (docs/proofs.md §5.1): the audit must read its time and signer-set hash to find its leaf.
  const checkpoint: Checkpoint = { index: 0, seq: 9, masterRoot: computeMasterRoot(nobleHasher, descriptors), time: 1_700_000_000_000, signerSetHash: new Uint8Array(32).fill(5) };
  const tree = LogTree.fromLeafHashes([checkpointLeafHash(checkpoint)]);
  const head = { size: 1, root: tree.root() };
  return { checkpoint, head, tables: { checkpoint, head, inclusion: [] as Uint8Array[], descriptors } };
}

describe('auditTableSet', () => {
  const note = (l: ReturnType<typeof logOver>) => ({ origin: ORIGIN, size: 1, root: l.head.root, extensions: [] });

  it('accepts an honest table set and refuses level 1 out of order, overlapping tables, and a wrong MasterRoot', () => {
    const ok = logOver(honest);
    expect(auditTableSet(note(ok), ok.tables)).toMatchObject({ ok: true });
    const bad = logOver(outOfOrder);
    expect(auditTableSet(note(bad), bad.tables)).toMatchObject({ ok: false, reason: Reason.ENTRY_ORDER });
    const over = logOver(overlapping);
    expect(auditTableSet(note(over), over.tables)).toMatchObject({ ok: false, reason: Reason.ENTRY_ORDER });
    // Descriptors that are not the committed ones (a table dropped) do not hash to the MasterRoot.
    expect(auditTableSet(note(ok), { ...ok.tables, descriptors: honest.slice(1) })).toMatchObject({ ok: false, reason: Reason.ROOT_MISMATCH });
    // A checkpoint that is not the head's last leaf.
    expect(auditTableSet({ ...note(ok), root: bad.head.root }, ok.tables).ok).toBe(false);
    expect(auditTableSet(note(ok), null as never).ok).toBe(false);
  });
});

describe('a compromised node and an auditing witness', () => {
  const nodeKey = generateKeyPair(new Uint8Array(32).fill(21));
  let served = logOver(outOfOrder);
  let server: http.Server;
  let url: string;
  let dir: { dir: string; cleanup: () => void };
  let witness: Witness;

  beforeAll(async () => {
    // The "node": serves the table set of its latest checkpoint, as GET /v1/checkpoints/latest/tables does.
    server = http.createServer((req, res) => {
      const t = served.tables;
      const c = t.checkpoint;
      const body = JSON.stringify({
        checkpoint: { index: c.index, seq: c.seq, masterRoot: toBase64Url(c.masterRoot), time: c.time, signerSetHash: toBase64Url(c.signerSetHash!) },
        head: { size: t.head.size, root: toBase64Url(t.head.root) },
        inclusion: [],
        descriptors: t.descriptors.map((d) => ({ ...d, smallest: toBase64Url(d.smallest), largest: toBase64Url(d.largest), tableRoot: toBase64Url(d.tableRoot) })),
      });
      res.writeHead(req.url === '/v1/checkpoints/latest/tables' ? 200 : 404, { 'content-type': 'application/json' });
      res.end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    dir = tempDir('proofkv-audit-');
    witness = new Witness(new WitnessStore(dir.dir), {
      name: 'auditor.example',
      key: generateKeyPair(new Uint8Array(32).fill(22)),
      logs: [{ origin: ORIGIN, keys: [verifierKeyOf(ORIGIN, nodeKey.publicKey)], quorum: 1, auditUrl: url }],
    });
  });
  afterAll(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    dir.cleanup();
  });

  const submit = (l: ReturnType<typeof logOver>) => {
    const text = formatCheckpointNote({ origin: ORIGIN, size: 1, root: l.head.root, extensions: [] });
    return witness.addCheckpoint(formatAddCheckpoint({ oldSize: 0, proof: [], note: formatNote({ text, signatures: [signNote(text, ORIGIN, nodeKey.privateKey)] }) }));
  };

  it('refuses to co-sign a head over a MasterRoot whose level 1 is out of order, and stores nothing', async () => {
    const a = await submit(served);
    expect(a.status).toBe(422);
    expect('code' in a && a.code).toBe('AUDIT_FAILED');
    expect(a.body).toMatch(/ENTRY_ORDER/);
    expect(fs.existsSync(witness.store.fileOf(ORIGIN))).toBe(false);
  });

  it('co-signs the same node once its table set is well formed', async () => {
    served = logOver(honest);
    expect((await submit(served)).status).toBe(200);
    expect(witness.cosigned(ORIGIN)?.size).toBe(1);
  });
});

describe('an auditing witness and a real node', () => {
  it('co-signs every head a real node pushes, after auditing its table set', async () => {
    const data = tempDir('proofkv-audit-node-');
    const wdir = tempDir('proofkv-audit-w-');
    const nodeKey = openNodeKey(data.dir, { logSize: 0 }).key;
    const origin = 'proofkv/audit-real.example';
    let node: ProofNode | undefined;
    let audited = 0;
    // The node needs the witness's URL to start, so the witness learns the node's URL through its audit hook.
    const witness = new Witness(new WitnessStore(wdir.dir), {
      name: 'auditor.example',
      key: generateKeyPair(new Uint8Array(32).fill(23)),
      logs: [{ origin, keys: [verifierKeyOf(origin, nodeKey.publicKey)], quorum: 1, auditUrl: 'the node, once started' }],
      audit: (_url, c) => {
        audited++;
        return auditNode(node!.url, c);
      },
    });
    const srv = await serveWitness(witness, '127.0.0.1', 0, [origin]);
    try {
      node = await startNode(data.dir, { origin, witnesses: [{ url: srv.url, key: witness.verifierKey() }] });
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 50; i++) await node.writePath.propose({ type: 'put', key: new TextEncoder().encode(`k${round}-${i}`), value: new TextEncoder().encode(`v${i}`) });
        await node.writePath.propose({ type: 'checkpoint' });
        await node.notes!.push();
        expect(node.notes!.cosigners(node.db.latestCheckpoint().head)).toEqual(['auditor.example']);
      }
      expect(audited).toBe(3);
    } finally {
      await node?.shutdown('test');
      await srv.close();
      data.cleanup();
      wdir.cleanup();
    }
  });
});
