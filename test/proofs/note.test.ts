/**
 * Signed notes, checkpoint bodies and cosignatures (proofs/note.ts), with vectors copied from
 * golang.org/x/mod/sumdb/note's note_test.go (BSD-3-Clause, The Go Authors) and from the C2SP
 * tlog-witness / tlog-checkpoint specifications (c2sp.org, CC BY 4.0).
 */
import { describe, expect, it } from 'vitest';
import {
  DecodeError,
  KEY_TYPE_COSIGNATURE,
  Reason,
  formatCheckpointNote,
  formatNote,
  formatVerifierKey,
  fromBase64,
  generateKeyPair,
  parseCheckpointNote,
  parseNote,
  parseVerifierKey,
  signCosignature,
  signNote,
  toBase64,
  verifierKeyOf,
  verifyCheckpointNote,
  verifyNote,
} from '../../proofs/index.js';

// --- golang.org/x/mod/sumdb/note, note_test.go ------------------------------------------------
const PETER_VKEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
const PETER_SKEY_SEED_B64 = 'AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz'; // from PRIVATE+KEY+PeterNeumann+c74f20a3+...
const ENOCH_VKEY = 'EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop';
const TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const PETER_SIG = '— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n';
const ENOCH_SIG = '— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n';

// --- c2sp.org/tlog-witness, example request body (its checkpoint) --------------------------------
const SOFA = 'example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n';
const SOFA_SIGS =
  '— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n' +
  '— example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=\n';

const peterSeed = () => fromBase64(PETER_SKEY_SEED_B64).slice(1);

describe('signed notes: Go note_test.go vectors', () => {
  it('parses and re-formats the verifier keys, and derives them from the seed', () => {
    const peter = parseVerifierKey(PETER_VKEY);
    expect(peter.name).toBe('PeterNeumann');
    expect(peter.keyHash).toBe(0xc74f20a3);
    expect(formatVerifierKey(peter)).toBe(PETER_VKEY);
    expect(formatVerifierKey(parseVerifierKey(ENOCH_VKEY))).toBe(ENOCH_VKEY);
    expect(formatVerifierKey(verifierKeyOf('PeterNeumann', generateKeyPair(peterSeed()).publicKey))).toBe(PETER_VKEY);
    // The base64 key may contain '+': only the first two '+' separate fields.
    let plus: string | undefined;
    for (let i = 0; i < 256 && !plus; i++) {
      const k = formatVerifierKey(verifierKeyOf('n.example', generateKeyPair(new Uint8Array(32).fill(i)).publicKey));
      if (k.split('+').length > 3) plus = k;
    }
    expect(plus).toBeDefined();
    expect(formatVerifierKey(parseVerifierKey(plus!))).toBe(plus);
  });

  it('rejects every mangling of a verifier key (Go TestNewVerifier)', () => {
    const b = PETER_VKEY;
    for (let i = 0; i <= b.length; i++) {
      for (let j = i + 1; j <= b.length; j++) {
        if (i === 0 && j === b.length) continue;
        expect(() => parseVerifierKey(b.slice(i, j)), b.slice(i, j)).toThrow(DecodeError);
      }
    }
    for (let i = 0; i < b.length; i++) {
      const m = b.slice(0, i) + String.fromCharCode(b.charCodeAt(i) + 1) + b.slice(i + 1);
      expect(() => parseVerifierKey(m), m).toThrow(DecodeError);
    }
    expect(() => parseVerifierKey('PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==')).toThrow(DecodeError);
    expect(() => parseVerifierKey('PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW')).toThrow(DecodeError);
  });

  it('signs exactly as Go does (TestSign)', () => {
    const sig = signNote(TEXT, 'PeterNeumann', peterSeed());
    expect(formatNote({ text: TEXT, signatures: [sig] })).toBe(`${TEXT}\n${PETER_SIG}`);
    expect(() => signNote('abc', 'PeterNeumann', peterSeed())).toThrow(RangeError);
    expect(() => signNote(TEXT, 'bad name', peterSeed())).toThrow(RangeError);
  });

  it('opens as Go does (TestOpen)', () => {
    const peter = parseVerifierKey(PETER_VKEY);
    const enoch = parseVerifierKey(ENOCH_VKEY);
    const both = parseNote(`${TEXT}\n${PETER_SIG}${ENOCH_SIG}`);
    expect(both.text).toBe(TEXT);
    const one = verifyNote(both, [peter]);
    expect(one.ok && one.signers.map((k) => k.name)).toEqual(['PeterNeumann']);
    expect(one.ok && one.unknown.map((s) => s.name)).toEqual(['EnochRoot']);
    const two = verifyNote(both, [peter, enoch]);
    expect(two.ok && two.signers.map((k) => k.name)).toEqual(['PeterNeumann', 'EnochRoot']);
    expect(verifyNote(both, [])).toMatchObject({ ok: false, reason: Reason.MISSING_SIGNATURE });
    expect(() => parseNote(`${TEXT}\n${PETER_SIG.repeat(101)}`)).toThrow(DecodeError);
    const bad = parseNote(`${TEXT}\n${PETER_SIG.slice(0, 60)}ABCD${PETER_SIG.slice(60)}`);
    expect(verifyNote(bad, [peter])).toMatchObject({ ok: false, reason: Reason.BAD_SIGNATURE });
    // Duplicated verified and unverified signatures: the first line of a known key counts, the rest are skipped.
    const dup = parseNote(`${TEXT}\n${PETER_SIG}${PETER_SIG}${ENOCH_SIG}${ENOCH_SIG}`);
    const r = verifyNote(dup, [peter]);
    expect(r.ok && r.signers.length).toBe(1);
    const badMsgs = [
      TEXT,
      `${TEXT}\n`,
      `${TEXT}\n${PETER_SIG.slice(0, -1)}`,
      `\x01${TEXT}\n${PETER_SIG}`,
      `${TEXT}\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=`,
      `${TEXT}\n${PETER_SIG}Unexpected line.\n`,
    ];
    for (const m of badMsgs) expect(() => parseNote(m), JSON.stringify(m)).toThrow(DecodeError);
    expect(() => parseNote(Uint8Array.of(0xff, ...new TextEncoder().encode(`${TEXT}\n${PETER_SIG}`)))).toThrow(DecodeError);
  });
});

describe('tlog-checkpoint bodies', () => {
  it('parses the tlog-witness example checkpoint and its two log signatures', () => {
    const n = parseNote(`${SOFA}\n${SOFA_SIGS}`);
    const c = parseCheckpointNote(n.text);
    expect(c.origin).toBe('example.com/behind-the-sofa');
    expect(c.size).toBe(20852163);
    expect(toBase64(c.root)).toBe('CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=');
    expect(formatCheckpointNote(c)).toBe(SOFA);
    expect(n.signatures).toHaveLength(2);
  });

  it('rejects malformed bodies', () => {
    const root = toBase64(new Uint8Array(32));
    for (const t of [
      'o\n1\n',
      `\n1\n${root}\n`,
      `o\n01\n${root}\n`,
      `o\n-1\n${root}\n`,
      `o\n9007199254740992\n${root}\n`,
      `o\n1\n${root.slice(0, -1)}\n`,
      `o\n1\n${toBase64(new Uint8Array(31))}\n`,
      `o\n1\n${root}\n\n`,
      `o\n1\n${root}`,
    ]) {
      expect(() => parseCheckpointNote(t), JSON.stringify(t)).toThrow(DecodeError);
    }
    expect(parseCheckpointNote(`o\n0\n${root}\next one\n`).extensions).toEqual(['ext one']);
  });
});

describe('checkpoint notes with cosignatures', () => {
  const node = generateKeyPair(new Uint8Array(32).fill(1));
  const w1 = generateKeyPair(new Uint8Array(32).fill(2));
  const w2 = generateKeyPair(new Uint8Array(32).fill(3));
  const origin = 'proofkv/test';
  const text = formatCheckpointNote({ origin, size: 5, root: new Uint8Array(32).fill(9), extensions: [] });
  const logKey = verifierKeyOf(origin, node.publicKey);
  const w1Key = verifierKeyOf('w1.example', w1.publicKey, KEY_TYPE_COSIGNATURE);
  const w2Key = verifierKeyOf('w2.example', w2.publicKey, KEY_TYPE_COSIGNATURE);
  const note = formatNote({
    text,
    signatures: [signNote(text, origin, node.privateKey), signCosignature(text, 'w1.example', w1.privateKey, 1700000000)],
  });

  it('verifies log quorum and witness quorum, reporting cosigners and times', () => {
    const r = verifyCheckpointNote(note, { origin, logKeys: [logKey], quorum: 1, witnesses: [w1Key, w2Key], witnessQuorum: 1 });
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.checkpoint.size).toBe(5);
      expect(r.cosignedAt.get(w1Key)).toBe(1700000000);
    }
    expect(verifyCheckpointNote(note, { origin, logKeys: [logKey], quorum: 1, witnesses: [w1Key, w2Key], witnessQuorum: 2 })).toMatchObject({ ok: false, reason: Reason.QUORUM_NOT_MET });
    expect(verifyCheckpointNote(note, { origin: 'other', logKeys: [logKey], quorum: 1 })).toMatchObject({ ok: false, reason: Reason.CHECKPOINT_MISMATCH });
    expect(verifyCheckpointNote(note, { origin, logKeys: [verifierKeyOf(origin, w2.publicKey)], quorum: 1 })).toMatchObject({ ok: false, reason: Reason.QUORUM_NOT_MET });
  });

  it('a cosignature does not verify under another time or text, and a witness key is not a log key', () => {
    const sig = signCosignature(text, 'w1.example', w1.privateKey, 1700000000);
    const moved = { ...sig, signature: sig.signature.slice() };
    moved.signature[7] ^= 1; // the time
    expect(verifyNote({ text, signatures: [moved] }, [w1Key])).toMatchObject({ ok: false, reason: Reason.BAD_SIGNATURE });
    const other = formatCheckpointNote({ origin, size: 6, root: new Uint8Array(32).fill(9), extensions: [] });
    expect(verifyNote({ text: other, signatures: [sig] }, [w1Key])).toMatchObject({ ok: false, reason: Reason.BAD_SIGNATURE });
    expect(verifyCheckpointNote(note, { origin, logKeys: [w1Key], quorum: 1 })).toMatchObject({ ok: false, reason: Reason.INVALID_TRUST_POLICY });
  });

  it('never throws on hostile input', () => {
    for (const bad of [null, undefined, 42, '', 'x', new Uint8Array(70000), { text: 1 }, { text: 'a\n', signatures: [null] }]) {
      expect(verifyCheckpointNote(bad as never, { origin, logKeys: [logKey], quorum: 1 }).ok).toBe(false);
      expect(verifyNote(bad as never, [logKey]).ok).toBe(false);
    }
    expect(verifyCheckpointNote(note, null as never).ok).toBe(false);
  });
});
