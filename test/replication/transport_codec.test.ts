/**
 * The peer message codec: every wire message type round-trips with every field (entries of both
 * types, snapshot chunks with metadata and membership, context, force, offset); local types are
 * refused; decoding is strict (truncations, non-shortest varints, unknown types and flags,
 * oversized counts, trailing bytes) and throws nothing but TRANSPORT_MALFORMED on random or
 * mutated bytes, and whatever it accepts re-encodes to the same bytes (one encoding per message).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { EntryType, MessageType, isLocalMessage, newMessage, type Message } from '../../src/raft/index.js';
import {
  FRAME_HEADER_BYTES, FrameReader, MAX_BATCH_MESSAGES, MAX_MEMBERS, TransportError, TransportErrorCode, batchSize, decodeBatch,
  decodeMessage, encodeBatch, encodeBatchFrame, encodeFrame, encodeMessage, encodeMessages,
} from '../../src/replication/transport/index.js';

const bytes = (...v: number[]): Uint8Array => Uint8Array.from(v);

function expectMalformed(f: () => unknown): void {
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(TransportError);
  expect((err as TransportError).code).toBe(TransportErrorCode.Malformed);
}

/** One realistic message of every type that travels. */
const samples: Message[] = [
  newMessage({ type: MessageType.Prop, to: 1, from: 2, entries: [{ term: 0, index: 0, type: EntryType.Normal, data: bytes(1, 2, 3) }] }),
  newMessage({
    type: MessageType.App, to: 2, from: 1, term: 7, logTerm: 6, index: 41, commit: 40,
    entries: [
      { term: 7, index: 42, type: EntryType.Normal, data: new Uint8Array(0) },
      { term: 7, index: 43, type: EntryType.ConfChange, data: bytes(0, 0, 0, 0, 4) },
      { term: 7, index: 44, type: EntryType.Normal, data: new Uint8Array(3000).fill(0xab) },
    ],
  }),
  newMessage({ type: MessageType.AppResp, to: 1, from: 3, term: 7, index: 44, reject: true, rejectHint: 30, logTerm: 5 }),
  newMessage({ type: MessageType.Vote, to: 3, from: 2, term: 9, logTerm: 8, index: 100, force: true }),
  newMessage({ type: MessageType.VoteResp, to: 2, from: 3, term: 9, reject: false }),
  newMessage({ type: MessageType.PreVote, to: 3, from: 2, term: 10, logTerm: 8, index: 100, force: false }),
  newMessage({ type: MessageType.PreVoteResp, to: 2, from: 3, term: 10, reject: true }),
  newMessage({
    type: MessageType.Snap, to: 4, from: 1, term: 12,
    snapshot: { metadata: { index: 5000, term: 11, confState: { voters: [1, 2, 3], learners: [4] } }, offset: 65536, total: 200000, data: new Uint8Array(65536).fill(7) },
  }),
  newMessage({ type: MessageType.SnapResp, to: 1, from: 4, term: 12, index: 5000, offset: 131072 }),
  newMessage({ type: MessageType.SnapResp, to: 1, from: 4, term: 12, index: 5000, reject: true, offset: 0 }),
  newMessage({ type: MessageType.Heartbeat, to: 2, from: 1, term: 12, commit: 4999, context: bytes(9, 9) }),
  newMessage({ type: MessageType.HeartbeatResp, to: 1, from: 2, term: 12, context: new Uint8Array(0) }),
  newMessage({ type: MessageType.TransferLeader, to: 1, from: 3, term: 12 }),
  newMessage({ type: MessageType.TimeoutNow, to: 3, from: 1, term: 12 }),
  newMessage({ type: MessageType.ReadIndex, to: 1, from: 2, term: 12, entries: [{ term: 0, index: 0, type: EntryType.Normal, data: bytes(0xde, 0xad) }] }),
  newMessage({ type: MessageType.ReadIndexResp, to: 2, from: 1, term: 12, index: 4999, entries: [{ term: 0, index: 0, type: EntryType.Normal, data: bytes(0xde, 0xad) }] }),
  newMessage({ type: MessageType.App, to: 0xffff_ffff, from: 1, term: Number.MAX_SAFE_INTEGER, index: 2 ** 40, commit: 2 ** 33 }),
];

describe('transport codec', () => {
  it('round-trips one message of every wire type, every field', () => {
    const wireTypes = new Set(samples.map((m) => m.type));
    for (const t of Object.values(MessageType)) {
      expect(wireTypes.has(t)).toBe(!isLocalMessage(t));
    }
    for (const m of samples) {
      const back = decodeMessage(encodeMessage(m));
      expect(back).toEqual(m);
      // optional fields stay absent when absent, and keep their value (false, 0, empty) when set
      for (const k of ['snapshot', 'offset', 'context', 'force'] as const) expect(k in back).toBe(k in m);
    }
    expect(decodeBatch(encodeMessages(samples))).toEqual(samples);
    expect(decodeBatch(encodeMessages([]))).toEqual([]);
  });

  it('decoded bytes are copies that do not alias the body', () => {
    const body = encodeMessages([samples[1]]);
    const [m] = decodeBatch(body);
    body.fill(0);
    expect(m.entries[2].data[0]).toBe(0xab);
  });

  it('a message\'s entries are views of one copy of their own bytes: not of the body, not of another message\'s', () => {
    const entries = Array.from({ length: 40 }, (_, i) => ({ term: 3, index: 100 + i, type: i % 7 === 3 ? EntryType.ConfChange : EntryType.Normal, data: new Uint8Array(i * 13).fill(i) }));
    const a = newMessage({ type: MessageType.App, to: 2, from: 1, term: 3, index: 99, logTerm: 3, commit: 98, entries });
    const b = newMessage({ type: MessageType.App, to: 2, from: 1, term: 3, index: 139, logTerm: 3, commit: 99, entries: [{ term: 3, index: 140, type: EntryType.Normal, data: bytes(9, 9) }] });
    const body = encodeMessages([a, b]);
    const [ma, mb] = decodeBatch(body);
    expect(ma).toEqual(a);
    expect(mb).toEqual(b);
    body.fill(0);
    ma.entries.forEach((e, i) => expect(e.data).toEqual(new Uint8Array(i * 13).fill(i)));
    const shared = ma.entries[1].data.buffer;
    for (const e of ma.entries) expect(e.data.buffer).toBe(shared);
    expect(mb.entries[0].data.buffer).not.toBe(shared);
    expect(shared).not.toBe(body.buffer);
    // The copy holds this message's entries and their headers only (a few bytes each), not the rest of the batch.
    const dataBytes = entries.reduce((n, e) => n + e.data.length, 0);
    expect(shared.byteLength).toBeLessThanOrEqual(dataBytes + entries.length * 8);
    // An entry's bytes never reach into its neighbour's.
    ma.entries[5].data.fill(0xee);
    expect(ma.entries[6].data).toEqual(new Uint8Array(6 * 13).fill(6));
  });

  it('encodes into one buffer sized up front: round-trips and re-encodes to the same bytes, at every varint length', () => {
    for (const m of samples) {
      const out = encodeMessage(m);
      expect(decodeMessage(out)).toEqual(m);
      expect(encodeMessage(decodeMessage(out))).toEqual(out);
    }
    // Large integers and many entries: the bound counts every varint at its longest, the output is trimmed to what was written.
    const m = newMessage({
      type: MessageType.App, to: 0xffff_ffff, from: 0xffff_fffe, term: Number.MAX_SAFE_INTEGER, logTerm: 2 ** 50, index: 2 ** 52, commit: 1, rejectHint: 127,
      entries: Array.from({ length: 300 }, (_, i) => ({ term: Number.MAX_SAFE_INTEGER - i, index: 2 ** 52 + i, type: EntryType.Normal, data: new Uint8Array(i % 200).fill(i & 0xff) })),
    });
    const out = encodeMessage(m);
    expect(decodeMessage(out)).toEqual(m);
    expect(out.byteOffset + out.length).toBeLessThanOrEqual(out.buffer.byteLength);
  });

  it('a batch framed in place is the frame of the encoded batch, byte for byte, and a reader accepts it', () => {
    const key = new Uint8Array(32).fill(7);
    for (const ms of [[], samples.slice(0, 1), samples]) {
      const encoded = ms.map(encodeMessage);
      const framed = encodeBatchFrame(key, 5, encoded);
      expect(framed).toEqual(encodeFrame(key, 5, encodeBatch(encoded)));
      expect(framed.length).toBe(FRAME_HEADER_BYTES + batchSize(encoded));
    }
    const reader = new FrameReader(key, 1 << 20);
    const read = reader.push(encodeBatchFrame(key, 1, samples.map(encodeMessage)));
    expect(read.refused).toBeUndefined();
    expect(decodeBatch(read.bodies[0])).toEqual(samples);
  });

  it('refuses a snapshot whose membership lists are missing or over the cap before sizing the message', () => {
    const snap = (voters: unknown, learners: unknown) =>
      newMessage({ type: MessageType.Snap, to: 2, from: 1, snapshot: { metadata: { index: 1, term: 1, confState: { voters, learners } as never }, offset: 0, total: 1, data: bytes(1) } });
    for (const m of [snap(new Array(MAX_MEMBERS + 1).fill(1), []), snap([1], new Array(MAX_MEMBERS + 1).fill(2)), snap(undefined, []), snap([1], 'x')]) {
      expect(() => encodeMessage(m)).toThrow(expect.objectContaining({ code: TransportErrorCode.InvalidArgument }));
    }
  });

  it('refuses to encode local types and out-of-range fields with TRANSPORT_INVALID_ARGUMENT', () => {
    const bad: Message[] = [
      newMessage({ type: MessageType.Hup, to: 1, from: 1 }),
      newMessage({ type: MessageType.Unreachable, to: 1, from: 2 }),
      newMessage({ type: MessageType.App, to: 0, from: 1 }),
      newMessage({ type: MessageType.App, to: 2 ** 32, from: 1 }),
      newMessage({ type: MessageType.App, to: 2, from: 1, term: -1 }),
      newMessage({ type: MessageType.App, to: 2, from: 1, index: 1.5 }),
      newMessage({ type: MessageType.Snap, to: 2, from: 1, snapshot: { metadata: { index: 1, term: 1, confState: { voters: [1], learners: [] } }, offset: 10, total: 11, data: bytes(1, 2) } }),
      newMessage({ type: MessageType.Snap, to: 2, from: 1, snapshot: { metadata: { index: 1, term: 1, confState: { voters: [0], learners: [] } }, offset: 0, total: 0, data: bytes() } }),
    ];
    for (const m of bad) {
      expect(() => encodeMessage(m)).toThrow(expect.objectContaining({ code: TransportErrorCode.InvalidArgument }));
    }
  });

  it('refuses every truncation of a valid batch', () => {
    const body = encodeMessages(samples.slice(0, 9));
    for (let n = 0; n < body.length; n += n < 200 ? 1 : 97) expectMalformed(() => decodeBatch(body.subarray(0, n)));
  });

  it('refuses trailing bytes, unknown versions, types and flags, non-shortest varints, ids of 0', () => {
    const one = encodeMessage(samples[3]);
    const body = encodeBatch([one]);
    expectMalformed(() => decodeBatch(Uint8Array.of(...body, 0)));
    expectMalformed(() => decodeMessage(Uint8Array.of(...one, 0)));
    expectMalformed(() => decodeBatch(Uint8Array.of(2, ...body.subarray(1))));
    const withType = (t: number): Uint8Array => Uint8Array.of(t, ...one.subarray(1));
    expectMalformed(() => decodeMessage(withType(0)));
    expectMalformed(() => decodeMessage(withType(16)));
    const withFlags = (f: number): Uint8Array => Uint8Array.of(one[0], f, ...one.subarray(2));
    expectMalformed(() => decodeMessage(withFlags(64)));
    expectMalformed(() => decodeMessage(withFlags(4))); // force value without force
    // `to` (offset 2) written as 0x83 0x00 instead of 0x03
    expectMalformed(() => decodeMessage(Uint8Array.of(one[0], one[1], 0x83, 0x00, ...one.subarray(3))));
    expectMalformed(() => decodeMessage(Uint8Array.of(one[0], one[1], 0, ...one.subarray(3))));
    // a message length inside the batch that overruns it
    expectMalformed(() => decodeBatch(Uint8Array.of(1, 1, 0x7f, ...one)));
  });

  it('checks counts against the bytes left and the caps before allocating', () => {
    const varint = (v: number): number[] => {
      const out: number[] = [];
      while (v >= 0x80) { out.push((v % 0x80) | 0x80); v = Math.floor(v / 0x80); }
      out.push(v);
      return out;
    };
    expectMalformed(() => decodeBatch(Uint8Array.of(1, ...varint(MAX_BATCH_MESSAGES + 1))));
    expectMalformed(() => decodeBatch(Uint8Array.of(1, ...varint(2 ** 50))));
    expectMalformed(() => decodeBatch(Uint8Array.of(1, ...varint(1000), 0)));
    // a message claiming 2^40 entries
    const head = [2, 0, 2, 1, 0, 0, 0, 0, 0];
    expectMalformed(() => decodeMessage(Uint8Array.of(...head, ...varint(2 ** 40))));
    // an entry claiming 1 GiB of data
    expectMalformed(() => decodeMessage(Uint8Array.of(...head, 1, 0, 1, 1, ...varint(2 ** 30))));
    // a snapshot whose membership claims 2^20 voters
    expectMalformed(() => decodeMessage(Uint8Array.of(8, 8, 2, 1, 0, 0, 0, 0, 0, 0, 1, 1, ...varint(2 ** 20))));
    // a varint above 2^53 - 1
    expectMalformed(() => decodeMessage(Uint8Array.of(2, 0, 2, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 0)));
  });

  it('property: random messages round-trip', () => {
    const id = fc.integer({ min: 1, max: 0xffff_ffff });
    const n = fc.maxSafeNat();
    const data = fc.uint8Array({ maxLength: 64 });
    const entry = fc.record({ term: n, index: n, type: fc.constantFrom(EntryType.Normal, EntryType.ConfChange), data });
    const wire = Object.values(MessageType).filter((t) => !isLocalMessage(t));
    const chunk = fc.record({
      index: n, term: n, voters: fc.array(id, { maxLength: 7 }), learners: fc.array(id, { maxLength: 3 }),
      offset: fc.nat({ max: 1 << 30 }), extra: fc.nat({ max: 100 }), data,
    }).map((c) => ({
      metadata: { index: c.index, term: c.term, confState: { voters: c.voters, learners: c.learners } },
      offset: c.offset, total: c.offset + c.data.length + c.extra, data: c.data,
    }));
    const message = fc.record({
      type: fc.constantFrom(...wire), to: id, from: id, term: n, logTerm: n, index: n, commit: n,
      reject: fc.boolean(), rejectHint: n, entries: fc.array(entry, { maxLength: 5 }),
      snapshot: fc.option(chunk, { nil: undefined }), offset: fc.option(n, { nil: undefined }),
      context: fc.option(data, { nil: undefined }), force: fc.option(fc.boolean(), { nil: undefined }),
    }).map((m) => {
      const out: Message = newMessage({ type: m.type, to: m.to, from: m.from, term: m.term, logTerm: m.logTerm, index: m.index, commit: m.commit, reject: m.reject, rejectHint: m.rejectHint, entries: m.entries });
      if (m.snapshot !== undefined) out.snapshot = m.snapshot;
      if (m.offset !== undefined) out.offset = m.offset;
      if (m.context !== undefined) out.context = m.context;
      if (m.force !== undefined) out.force = m.force;
      return out;
    });
    fc.assert(fc.property(fc.array(message, { maxLength: 8 }), (ms) => {
      const body = encodeMessages(ms);
      expect(decodeBatch(body)).toEqual(ms);
    }), { numRuns: 300, seed: 10 });
  });

  it('fuzz: random and mutated bytes give TRANSPORT_MALFORMED or a batch that re-encodes identically', () => {
    const valid = encodeMessages(samples.filter((m) => m.type !== MessageType.Snap && m.type !== MessageType.App));
    const check = (b: Uint8Array): void => {
      let ms: Message[];
      try {
        ms = decodeBatch(b);
      } catch (e) {
        expect(e).toBeInstanceOf(TransportError);
        expect((e as TransportError).code).toBe(TransportErrorCode.Malformed);
        return;
      }
      expect(Buffer.from(encodeMessages(ms)).equals(b)).toBe(true);
    };
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (b) => check(b)), { numRuns: 2000, seed: 11 });
    fc.assert(fc.property(fc.uint8Array({ maxLength: 60 }), (b) => check(Uint8Array.of(1, 1, b.length, ...b))), { numRuns: 2000, seed: 12 });
    fc.assert(fc.property(fc.nat({ max: valid.length - 1 }), fc.integer({ min: 0, max: 255 }), (pos, v) => {
      const b = valid.slice();
      b[pos] = v;
      check(b);
    }), { numRuns: 3000, seed: 13 });
    expect(() => decodeBatch(undefined as unknown as Uint8Array)).toThrow(TransportError);
  });
});
