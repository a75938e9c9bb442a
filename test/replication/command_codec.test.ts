/**
 * The log's command encoding (server/command_codec.ts): `put` and `delete` in the binary form,
 * everything else (and anything the binary form cannot carry exactly) in CBOR; both decode; the
 * binary decoder is strict. The same command stream applied through either encoding gives the
 * same outcomes, tables, MasterRoots and checkpoint heads.
 */
import { afterEach, describe, expect, it } from 'vitest';
import * as path from 'node:path';
import { ProofDB, type DBOptions } from '../../src/index.js';
import { CommandApplier, type WriteCommand } from '../../server/write_path.js';
import { CommandCodecError, decodeCommand, encodeCommand, encodeCommandCbor, MAX_CLIENT_ID_BYTES, TAG_DELETE, TAG_PUT } from '../../server/command_codec.js';
import { decodeEntryPayload, encodeEntryPayload } from '../../src/replication/group.js';
import { tempDir } from '../engine/harness.js';
import { mulberry32 } from '../support/prng.js';

const SEED = Number(process.env.CODEC_SEED ?? 1010);
const te = new TextEncoder();
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** A random put or delete with any combination of the optional fields. */
function randomCommand(rnd: () => number, n: number): WriteCommand {
  const pick = (p: number) => rnd() < p;
  const key = te.encode(`k${Math.floor(rnd() * 40)}`);
  const extra: Record<string, unknown> = {};
  if (pick(0.7)) extra.time = 1_700_000_000_000 + n * 3;
  if (pick(0.5)) extra.session = { clientId: pick(0.2) ? 'clé-ü-日本' : `c${Math.floor(rnd() * 5)}`, seq: Math.floor(rnd() * 300) };
  if (pick(0.2)) extra.ifVersion = Math.floor(rnd() * 30);
  if (pick(0.25)) return { type: 'delete', key, ...extra } as WriteCommand;
  if (!('ifVersion' in extra) && pick(0.15)) extra.ifAbsent = true;
  if (pick(0.1)) extra.version = n + 1;
  const value = new Uint8Array(Math.floor(rnd() * 300)).map(() => Math.floor(rnd() * 256));
  return { type: 'put', key, value, ...extra } as WriteCommand;
}

describe('command codec', () => {
  it('puts and deletes take the binary form and decode to what their CBOR form decodes to', () => {
    const rnd = mulberry32(SEED);
    for (let n = 0; n < 2000; n++) {
      const cmd = randomCommand(rnd, n);
      const bin = encodeCommand(cmd);
      expect(bin[0]).toBe(cmd.type === 'put' ? TAG_PUT : TAG_DELETE);
      const fromBin = decodeCommand(bin);
      const fromCbor = decodeCommand(encodeCommandCbor(cmd));
      expect(encodeCommandCbor(cmd)[0] >= 0xa0 && encodeCommandCbor(cmd)[0] <= 0xbf).toBe(true);
      expect(fromBin).toEqual(cmd);
      expect(fromBin).toEqual(fromCbor);
      expect(Object.keys(fromBin).sort()).toEqual(Object.keys(fromCbor).sort());
      expect(fromBin.type === 'put' || fromBin.type === 'delete' ? Object.getPrototypeOf(fromBin.key) : null).toBe(Uint8Array.prototype);
      // Canonical: what the decoder accepts re-encodes to the same bytes.
      expect(hex(encodeCommand(fromBin))).toBe(hex(bin));
    }
  });

  it('keeps CBOR for every other command and for what the binary form cannot carry exactly', () => {
    const key = te.encode('k');
    const value = te.encode('v');
    const lone = String.fromCharCode(0xd800);
    const cases: WriteCommand[] = [
      { type: 'append', key, value },
      { type: 'batch', ops: [{ op: 'put', key, value }] },
      { type: 'checkpoint', time: 5 },
      { type: 'put', key, value, ifAbsent: false },
      { type: 'put', key, value, time: 1.5 },
      { type: 'put', key, value, version: -1 },
      { type: 'put', key, value, version: 2 ** 53 },
      { type: 'put', key, value, session: { clientId: `x${lone}`, seq: 1 } },
      { type: 'put', key, value, session: { clientId: 'x'.repeat(MAX_CLIENT_ID_BYTES + 1), seq: 1 } },
      { type: 'put', key, value, session: { clientId: 'x', seq: 1, extra: 1 } as never },
      { type: 'put', key, value, unknownField: 1 } as never,
      { type: 'delete', key, ifAbsent: true } as never,
    ];
    for (const cmd of cases) {
      const bytes = encodeCommand(cmd);
      expect(bytes[0] >= 0xa0 && bytes[0] <= 0xbf, JSON.stringify(cmd, (_k, v) => (v instanceof Uint8Array ? hex(v) : v))).toBe(true);
      expect(hex(bytes)).toBe(hex(encodeCommandCbor(cmd)));
    }
  });

  it('refuses malformed binary commands with CommandCodecError (CORRUPTION), never anything else', () => {
    const full = encodeCommand({ type: 'put', key: te.encode('key'), value: te.encode('value'), time: 1_700_000_000_000, version: 7, ifVersion: 3, session: { clientId: 'client', seq: 300 } });
    const throwsCodec = (b: Uint8Array, why: RegExp) => {
      let err: unknown;
      try {
        decodeCommand(b);
      } catch (e) {
        err = e;
      }
      expect(err, hex(b)).toBeInstanceOf(CommandCodecError);
      expect((err as CommandCodecError).code).toBe('CORRUPTION');
      expect((err as Error).message).toMatch(why);
    };
    // Every truncation.
    for (let n = 1; n < full.length; n++) throwsCodec(full.subarray(0, n), /truncated|beyond|length/);
    // Trailing bytes, unknown flags, a delete with a put's flag.
    throwsCodec(Uint8Array.from([...full, 0]), /after the command/);
    throwsCodec(Uint8Array.from([TAG_PUT, 0x20, 1, 0x6b, 0]), /unknown flags/);
    throwsCodec(Uint8Array.from([TAG_DELETE, 0x02, 1, 1, 0x6b]), /unknown flags/);
    // A varint not in shortest form (time = 1 as 0x81 0x00), and one above 2^53 - 1.
    throwsCodec(Uint8Array.from([TAG_DELETE, 0x01, 0x81, 0x00, 1, 0x6b]), /shortest/);
    throwsCodec(Uint8Array.from([TAG_DELETE, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 1, 0x6b]), /2\^53/);
    // A key length beyond the bytes left; a client id that is not UTF-8 or too long.
    throwsCodec(Uint8Array.from([TAG_DELETE, 0x00, 5, 0x6b]), /beyond/);
    throwsCodec(Uint8Array.from([TAG_DELETE, 0x10, 1, 0xff, 1, 1, 0x6b]), /UTF-8/);
    const long = new Uint8Array(3 + 2 + MAX_CLIENT_ID_BYTES + 1 + 2);
    long.set([TAG_DELETE, 0x10, 0x81, 0x02]); // clientId length 257
    throwsCodec(long, /at most/);
    // Random damage: either refused with CommandCodecError, or a canonical command.
    const rnd = mulberry32(SEED + 1);
    for (let i = 0; i < 3000; i++) {
      const b = full.slice();
      const flips = 1 + Math.floor(rnd() * 3);
      for (let f = 0; f < flips; f++) b[1 + Math.floor(rnd() * (b.length - 1))] ^= 1 << Math.floor(rnd() * 8);
      let cmd: WriteCommand | undefined;
      try {
        cmd = decodeCommand(b);
      } catch (e) {
        expect(e).toBeInstanceOf(CommandCodecError);
        continue;
      }
      expect(hex(encodeCommand(cmd))).toBe(hex(b));
    }
  });

  it('frames an entry payload with the UTF-8 bytes of its proposal id, ASCII or not', () => {
    const cmd = Uint8Array.of(TAG_DELETE, 0, 1, 0x6b);
    for (const id of ['0123456789abcdef/42', 'bootstrap-1', 'ü/1', '日本/7', 'x'.repeat(255), 'é'.repeat(127)]) {
      const idBytes = te.encode(id);
      const want = Uint8Array.from([1, idBytes.length, ...idBytes, ...cmd]);
      const got = encodeEntryPayload(id, cmd);
      expect(hex(got)).toBe(hex(want));
      const back = decodeEntryPayload(got);
      expect(back.id).toBe(id);
      expect(hex(back.command)).toBe(hex(cmd));
    }
    expect(() => encodeEntryPayload('x'.repeat(256), cmd)).toThrow(RangeError);
    expect(() => encodeEntryPayload('é'.repeat(128), cmd)).toThrow(RangeError);
  });

  it('the same commands through either encoding give the same outcomes, tables, MasterRoots and heads', async () => {
    const opts: DBOptions = {
      writeAheadLog: 'external',
      compactionThread: 'inline',
      writeBufferSize: 4096,
      targetFileSize: 4096,
      blockSize: 256,
      level0CompactionTrigger: 2,
    };
    const root = tempDir('proofkv-codec-');
    cleanups.push(root.cleanup);
    const dbs = [await ProofDB.open(path.join(root.dir, 'cbor'), opts), await ProofDB.open(path.join(root.dir, 'binary'), opts)];
    try {
      const appliers = dbs.map((db) => new CommandApplier(db));
      const encodings = [encodeCommandCbor, encodeCommand];
      const rnd = mulberry32(SEED + 2);
      const sent: WriteCommand[] = [];
      let index = 0;
      let binary = 0;
      const results: string[] = [];
      for (let round = 0; round < 12; round++) {
        const cmds: WriteCommand[] = [];
        for (let i = 0; i < 120; i++) {
          // A retry of an earlier command (same session), or a new one.
          const retry = sent.length > 0 && rnd() < 0.1 ? sent[Math.floor(rnd() * sent.length)] : undefined;
          const cmd = retry ?? randomCommand(rnd, sent.length);
          sent.push(cmd);
          cmds.push(cmd);
        }
        cmds.push({ type: 'checkpoint', time: 1_700_000_000_000 + round * 1000 });
        const outcomes = await Promise.all(
          dbs.map(async (_db, d) => {
            let at = index;
            const runs = cmds.map((cmd) => {
              const bytes = encodings[d](cmd);
              if (d === 1 && bytes[0] < 0xa0) binary++;
              return appliers[d].execute(decodeCommand(bytes), ++at).then(
                // A checkpoint's head and signature differ (each engine has its own node key); its message's fields do not.
                (o) => JSON.stringify(o.type === 'checkpoint' ? { root: hex(o.checkpoint.checkpoint.masterRoot), index: o.checkpoint.checkpoint.index, seq: o.checkpoint.checkpoint.seq, time: o.checkpoint.checkpoint.time } : o, (_k, v) => (v instanceof Uint8Array ? hex(v) : v)),
                (e: { code?: string }) => `error ${e.code}`,
              );
            });
            return Promise.all(runs);
          }),
        );
        index += cmds.length;
        expect(outcomes[1]).toEqual(outcomes[0]);
        results.push(...outcomes[0]);
      }
      expect(binary).toBeGreaterThan(1000);
      // Failed conditions, reused session pairs and retries answered from the session table are in the stream.
      expect(results.some((r) => r === 'error CONDITION_FAILED')).toBe(true);
      expect(results.some((r) => r === 'error IDEMPOTENCY_KEY_REUSED')).toBe(true);
      expect(results.some((r) => r.includes('"replayed":true'))).toBe(true);
      const a = dbs[0].latestCheckpoint();
      const b = dbs[1].latestCheckpoint();
      expect(hex(b.checkpoint.masterRoot)).toBe(hex(a.checkpoint.masterRoot));
      expect(b.checkpoint.index).toBe(11);
      expect(b.head.size).toBe(a.head.size);
      expect(dbs[1].tables()).toEqual(dbs[0].tables());
      expect(dbs[0].stats().compactions).toBeGreaterThan(0);
    } finally {
      for (const db of dbs) await db.close();
    }
  });
});
