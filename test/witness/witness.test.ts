/**
 * The witness (witness/): what it cosigns, what it refuses, and that every refusal leaves its
 * stored state byte-identical while forks are filed as evidence (both notes).
 */
import * as fs from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  KEY_TYPE_COSIGNATURE,
  LogTree,
  formatCheckpointNote,
  formatNote,
  generateKeyPair,
  logLeafHash,
  parseNote,
  signNote,
  verifierKeyOf,
  verifyCheckpointNote,
  type KeyPair,
} from '../../proofs/index.js';
import { formatAddCheckpoint, parseCosignatures, TLOG_SIZE_CONTENT_TYPE } from '../../witness/protocol.js';
import { serveWitness } from '../../witness/http.js';
import { WitnessStore } from '../../witness/state.js';
import { Witness } from '../../witness/witness.js';
import { tempDir } from '../engine/harness.js';

const ORIGIN = 'proofkv/witness-test';
const nodeKey = generateKeyPair(new Uint8Array(32).fill(7));
const otherKey = generateKeyPair(new Uint8Array(32).fill(8));
const witnessKey = generateKeyPair(new Uint8Array(32).fill(9));

/** A log of `n` leaves `${tag}${i}`. */
function logOf(n: number, tag = 'leaf'): LogTree {
  return LogTree.fromLeafHashes(Array.from({ length: n }, (_, i) => logLeafHash(new TextEncoder().encode(`${tag}${i}`))));
}

function noteOf(log: LogTree, size: number, key: KeyPair = nodeKey, origin = ORIGIN): string {
  const text = formatCheckpointNote({ origin, size, root: log.root(size), extensions: [] });
  return formatNote({ text, signatures: [signNote(text, origin, key.privateKey)] });
}

function request(oldSize: number, log: LogTree, size: number, opts: { key?: KeyPair; proofFrom?: LogTree; origin?: string } = {}): string {
  const proof = oldSize > 0 && oldSize < size ? (opts.proofFrom ?? log).consistencyProof(oldSize, size) : [];
  return formatAddCheckpoint({ oldSize, proof, note: noteOf(log, size, opts.key, opts.origin) });
}

let dir: string;
let cleanup: () => void;
let witness: Witness;
let refusals: string[];
const open = () =>
  new Witness(new WitnessStore(dir), {
    name: 'witness.example/w1',
    key: witnessKey,
    logs: [{ origin: ORIGIN, keys: [verifierKeyOf(ORIGIN, nodeKey.publicKey)], quorum: 1 }],
    now: () => 1764374400,
    onRefusal: (code) => refusals.push(code),
  });

beforeEach(() => {
  ({ dir, cleanup } = tempDir('proofkv-witness-'));
  refusals = [];
  witness = open();
});
afterEach(() => cleanup());

/** The bytes of the witness's state file (undefined when there is none). */
function stateBytes(): Buffer | undefined {
  const f = witness.store.fileOf(ORIGIN);
  return fs.existsSync(f) ? fs.readFileSync(f) : undefined;
}

async function expectRefused(body: string, status: number, code: string): Promise<void> {
  const before = stateBytes();
  const a = await witness.addCheckpoint(body);
  expect(a.status).toBe(status);
  expect('code' in a && a.code).toBe(code);
  expect(stateBytes()).toEqual(before);
}

describe('witness: cosigning', () => {
  it('cosigns a first checkpoint and its extensions, with a cosignature clients verify', async () => {
    const log = logOf(10);
    const a = await witness.addCheckpoint(request(0, log, 4));
    expect(a.status).toBe(200);
    const sigs = parseCosignatures(a.body);
    const wkey = verifierKeyOf('witness.example/w1', witnessKey.publicKey, KEY_TYPE_COSIGNATURE);
    expect(witness.verifierKey()).toEqual(wkey);
    const note = parseNote(noteOf(log, 4));
    const v = verifyCheckpointNote({ text: note.text, signatures: [...note.signatures, ...sigs] }, {
      origin: ORIGIN,
      logKeys: [verifierKeyOf(ORIGIN, nodeKey.publicKey)],
      quorum: 1,
      witnesses: [wkey],
      witnessQuorum: 1,
    });
    expect(v.ok && v.cosignedAt.get(wkey)).toBe(1764374400);
    expect((await witness.addCheckpoint(request(4, log, 9))).status).toBe(200);
    expect((await witness.addCheckpoint(request(9, log, 9))).status).toBe(200); // same size, same root
    expect(witness.cosigned(ORIGIN)?.size).toBe(9);
    // The state survives a restart.
    witness = open();
    expect(witness.cosigned(ORIGIN)?.size).toBe(9);
    await expectRefused(request(9, log, 5), 400, 'OLD_SIZE_TOO_LARGE');
  });

  it('answers a stale old size with 409 and the cosigned size as text/x.tlog.size', async () => {
    const log = logOf(10);
    await witness.addCheckpoint(request(0, log, 6));
    const before = stateBytes();
    const a = await witness.addCheckpoint(request(0, log, 8));
    expect(a).toMatchObject({ status: 409, contentType: TLOG_SIZE_CONTENT_TYPE, body: '6\n' });
    expect(stateBytes()).toEqual(before);
  });
});

describe('witness: refusals leave the stored state byte-identical', () => {
  it('an inconsistent head (another history, validly signed) is refused and filed as evidence', async () => {
    const log = logOf(10);
    await witness.addCheckpoint(request(0, log, 4));
    const forked = logOf(10, 'other');
    // A proof from the forked log does not connect the cosigned root at 4 to the forked root at 8.
    await expectRefused(request(4, forked, 8), 422, 'INCONSISTENT');
    const ev = witness.store.evidence();
    expect(ev).toHaveLength(1);
    const text = fs.readFileSync(ev[0], 'utf8');
    expect(text).toContain(noteOf(log, 4));
    expect(text).toContain(noteOf(forked, 8));
  });

  it('a rollback is refused (old size above the new size, or a stale old size)', async () => {
    const log = logOf(10);
    await witness.addCheckpoint(request(0, log, 7));
    await expectRefused(request(7, log, 3), 400, 'OLD_SIZE_TOO_LARGE');
    await expectRefused(request(3, log, 3), 409, 'STALE_OLD_SIZE');
    await expectRefused(request(0, log, 3), 409, 'STALE_OLD_SIZE');
    expect(witness.store.evidence()).toHaveLength(0);
  });

  it('a fork of the same size is refused with 409 and filed as evidence', async () => {
    const log = logOf(10);
    await witness.addCheckpoint(request(0, log, 5));
    await expectRefused(request(5, logOf(10, 'fork'), 5), 409, 'FORK');
    expect(witness.store.evidence()).toHaveLength(1);
  });

  it('a head signed by an unknown key, or of an unknown origin, is refused', async () => {
    const log = logOf(10);
    await witness.addCheckpoint(request(0, log, 2));
    await expectRefused(request(2, log, 6, { key: otherKey }), 403, 'BAD_SIGNATURE');
    await expectRefused(request(2, log, 6, { origin: 'proofkv/elsewhere' }), 404, 'UNKNOWN_LOG');
    // A bad signature by the known key (tampered root) is refused too.
    const body = request(2, log, 6);
    const tampered = body.replace(formatCheckpointNote({ origin: ORIGIN, size: 6, root: log.root(6), extensions: [] }), formatCheckpointNote({ origin: ORIGIN, size: 6, root: logOf(10, 'x').root(6), extensions: [] }));
    await expectRefused(tampered, 403, 'BAD_SIGNATURE');
  });

  it('malformed requests and notes are refused with 400', async () => {
    const log = logOf(10);
    await witness.addCheckpoint(request(0, log, 2));
    const good = request(2, log, 6);
    for (const bad of [
      '',
      'old 2\n',
      good.replace('old 2', 'old 02'),
      good.replace('old 2', 'new 2'),
      good.replace('\u2014 ', '- '),
      good.replace(/\n\n([^\n]*)\n/, '\n\n$1\nextra\n'),
      good.slice(0, -1),
      `old 2\nnot-base64!\n\n${noteOf(log, 6)}`,
      `old 2\n${'A'.repeat(40)}==\n\n${noteOf(log, 6)}`,
      good.replace(`\n6\n`, '\n6x\n'),
      `\x01${good}`,
    ]) {
      await expectRefused(bad, 400, 'MALFORMED');
    }
    expect(refusals.every((c) => c === 'MALFORMED')).toBe(true);
  });
});

describe('witness: HTTP', () => {
  it('speaks add-checkpoint over HTTP', async () => {
    const srv = await serveWitness(witness, '127.0.0.1', 0, [ORIGIN]);
    try {
      const log = logOf(4);
      const ok = await fetch(`${srv.url}/add-checkpoint`, { method: 'POST', body: request(0, log, 3) });
      expect(ok.status).toBe(200);
      expect((await ok.text()).startsWith('\u2014 witness.example/w1 ')).toBe(true);
      const stale = await fetch(`${srv.url}/add-checkpoint`, { method: 'POST', body: request(0, log, 4) });
      expect(stale.status).toBe(409);
      expect(stale.headers.get('content-type')).toBe(TLOG_SIZE_CONTENT_TYPE);
      expect(await stale.text()).toBe('3\n');
      const big = await fetch(`${srv.url}/add-checkpoint`, { method: 'POST', body: 'x'.repeat(200_000) });
      expect(big.status).toBe(413);
      const status = (await (await fetch(`${srv.url}/status`)).json()) as { logs: Array<{ cosigned: { size: number } }> };
      expect(status.logs[0].cosigned.size).toBe(3);
    } finally {
      await srv.close();
    }
  });
});
