/**
 * Interoperability of ProofKV's signed notes with an implementation we did not write: Go's
 * golang.org/x/mod/sumdb/note (Debian: golang-go, golang-golang-x-mod-dev; `.ci/run` installs
 * them). The Go program in test/interop/note/ is built in GOPATH mode against the Debian source
 * tree (no module download); a missing Go toolchain fails this file, it does not skip it.
 *
 * Go verifies notes and cosignatures ProofKV signed; ProofKV verifies notes Go signed with
 * note.Sign and cosignatures the Go program wrote from the tlog-cosignature specification.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  KEY_TYPE_COSIGNATURE,
  KEY_TYPE_ED25519,
  concatBytes,
  formatCheckpointNote,
  formatNote,
  formatVerifierKey,
  generateKeyPair,
  parseNote,
  signCosignature,
  signNote,
  toBase64,
  toHex,
  verifierKeyOf,
  verifyCheckpointNote,
  verifyNote,
} from '../../proofs/index.js';
import { mulberry32, randomBytes } from '../support/prng.js';

/** Debian's GOPATH for golang-*-dev source packages; override with PROOFKV_GOPATH. */
const GOPATH = process.env.PROOFKV_GOPATH ?? '/usr/share/gocode';
const here = path.dirname(fileURLToPath(import.meta.url));
let dir: string;
let bin: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'proofkv-go-note-'));
  bin = path.join(dir, 'note');
  // Fails (ENOENT, or a build error) when Go or the note package is missing: no skip.
  execFileSync('go', ['build', '-o', bin, '.'], {
    cwd: path.join(here, 'note'),
    env: { ...process.env, GO111MODULE: 'off', GOPATH, GOCACHE: path.join(dir, 'cache'), GOFLAGS: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}, 120_000);
afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function go(args: string[], input: string): { status: number; out: string; err: string } {
  const r = spawnSync(bin, args, { input, encoding: 'utf8' });
  return { status: r.status ?? -1, out: r.stdout, err: r.stderr };
}

/** Go's signer key form: PRIVATE+KEY+name+hash+base64(0x01 || seed). */
function goSignerKey(name: string, seed: Uint8Array): string {
  const v = verifierKeyOf(name, generateKeyPair(seed).publicKey);
  return `PRIVATE+KEY+${name}+${v.keyHash.toString(16).padStart(8, '0')}+${toBase64(concatBytes(Uint8Array.of(KEY_TYPE_ED25519), seed))}`;
}

const r = mulberry32(15);
const origin = 'proofkv/interop.example';
const nodeA = randomBytes(r, 32);
const nodeB = randomBytes(r, 32);
const witnessSeed = randomBytes(r, 32);
const text = formatCheckpointNote({ origin, size: 1234, root: randomBytes(r, 32), extensions: [] });
const keyA = verifierKeyOf(origin, generateKeyPair(nodeA).publicKey);
const keyB = verifierKeyOf(origin, generateKeyPair(nodeB).publicKey);
const witnessKey = verifierKeyOf('witness.example/w1', generateKeyPair(witnessSeed).publicKey, KEY_TYPE_COSIGNATURE);

describe('Go golang.org/x/mod/sumdb/note verifies what ProofKV signs', () => {
  const note = formatNote({ text, signatures: [signNote(text, origin, nodeA), signNote(text, origin, nodeB)] });

  it('a checkpoint note with two node signatures opens with both keys', () => {
    const g = go(['verify', formatVerifierKey(keyA), formatVerifierKey(keyB)], note);
    expect(g.err).toBe('');
    expect(g.out.trim().split('\n')).toEqual([`${origin}+${keyA.keyHash.toString(16).padStart(8, '0')}`, `${origin}+${keyB.keyHash.toString(16).padStart(8, '0')}`]);
  });

  it('a tampered note or a wrong key is refused by Go', () => {
    expect(go(['verify', formatVerifierKey(keyA)], note.replace('1234', '1235')).status).toBe(1);
    expect(go(['verify', formatVerifierKey(verifierKeyOf(origin, generateKeyPair(witnessSeed).publicKey))], note).err).toMatch(/no verifiable signatures/);
  });

  it('a ProofKV witness cosignature verifies under the spec emulation in Go', () => {
    const cosigned = formatNote({ text, signatures: [signNote(text, origin, nodeA), signCosignature(text, witnessKey.name, witnessSeed, 1764374400)] });
    const g = go(['verify', formatVerifierKey(keyA), formatVerifierKey(witnessKey)], cosigned);
    expect(g.err).toBe('');
    expect(g.out.trim().split('\n')).toHaveLength(2);
    const forged = cosigned.replace(/(witness\.example\/w1 \S{8})\S/, (_m, p: string) => `${p}${p.endsWith('A') ? 'B' : 'A'}`);
    expect(go(['verify', formatVerifierKey(witnessKey)], forged).status).toBe(1);
  });

  it('the Go program derives the same cosigner verifier key', () => {
    expect(go(['cosigner-vkey', witnessKey.name, toHex(witnessSeed)], '').out.trim()).toBe(formatVerifierKey(witnessKey));
  });
});

describe('ProofKV verifies what Go signs', () => {
  it('note.Sign output is byte-identical to ProofKV signing, and verifies', () => {
    const g = go(['sign', goSignerKey(origin, nodeA), goSignerKey(origin, nodeB)], text);
    expect(g.err).toBe('');
    expect(g.out).toBe(formatNote({ text, signatures: [signNote(text, origin, nodeA), signNote(text, origin, nodeB)] }));
    const v = verifyCheckpointNote(g.out, { origin, logKeys: [keyA, keyB], quorum: 2 });
    expect(v.ok && v.checkpoint.size).toBe(1234);
  });

  it('a cosignature written in Go verifies, with its time', () => {
    const signed = go(['sign', goSignerKey(origin, nodeA)], text).out;
    const g = go(['cosign', witnessKey.name, toHex(witnessSeed), '1764374400'], signed);
    expect(g.err).toBe('');
    const v = verifyCheckpointNote(g.out, { origin, logKeys: [keyA], quorum: 1, witnesses: [witnessKey], witnessQuorum: 1 });
    expect(v.ok).toBe(true);
    if (v.ok) expect(v.cosignedAt.get(witnessKey)).toBe(1764374400);
    // The same cosignature under another text does not verify.
    const parsed = parseNote(g.out);
    const other = formatCheckpointNote({ origin, size: 1235, root: new Uint8Array(32), extensions: [] });
    expect(verifyNote({ text: other, signatures: parsed.signatures.slice(1) }, [witnessKey]).ok).toBe(false);
  });

  it("Go's own test vector (note_test.go TestSign) comes out of the Go program and ProofKV alike", () => {
    const skey = 'PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz';
    const t = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    const want = `${t}\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n`;
    expect(go(['sign', skey], t).out).toBe(want);
    expect(go(['verify', 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW'], want).out.trim()).toBe('PeterNeumann+c74f20a3');
  });
});
