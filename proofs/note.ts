/**
 * C2SP signed notes, `tlog-checkpoint` bodies and `tlog-cosignature` (cosignature/v1) lines: the
 * text format of the transparency-log ecosystem (Go's checksum database, Sigstore, witnesses).
 * Isomorphic: no `node:` imports. `docs/proofs.md` §5.5 specifies what ProofKV signs.
 *
 * ```
 * signed note     = text "\n" signature-line+        text ends in "\n"; the blank line splits
 * signature-line  = "— " name " " base64(keyHash[4] || signature) "\n"
 * keyHash         = SHA-256(name || 0x0A || type || publicKey)[0:4]       big-endian u32
 * verifier key    = name "+" hex8(keyHash) "+" base64(type || publicKey)
 *   type 0x01: Ed25519 note signature over the text
 *   type 0x04: cosignature/v1, signature = u64 BE time || Ed25519 over
 *              "cosignature/v1\ntime " decimal(time) "\n" || text
 * checkpoint text = origin "\n" decimal(size) "\n" base64(root) "\n" extension-line*
 * ```
 * Parsers are strict and throw {@link DecodeError}; `verify…` functions never throw and return a
 * {@link Verified} result like the other verifiers.
 * @module
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes, equalBytes, fromBase64, readU64BE, toBase64, toBytes, toHex, writeU64BE } from './bytes.js';
import { PUBLIC_KEY_LEN, SIGNATURE_LEN, publicKeyOf } from './checkpoint.js';
import { DecodeError, Reason, fail, type Verified, type VerifyFailure } from './errors.js';
import { HASH_LEN } from './hash.js';

/** Signature type byte of an Ed25519 note signature (signed-note). */
export const KEY_TYPE_ED25519 = 0x01;
/** Signature type byte of an Ed25519 cosignature/v1 (tlog-cosignature). */
export const KEY_TYPE_COSIGNATURE = 0x04;
/** Signature key types this module verifies. */
export type NoteKeyType = typeof KEY_TYPE_ED25519 | typeof KEY_TYPE_COSIGNATURE;
/** Largest note accepted by {@link parseNote}, bytes (a checkpoint note is a few hundred). */
export const MAX_NOTE_BYTES = 65536;
/** Most signature lines in one note (Go's `note.Open` allows 100). */
export const MAX_NOTE_SIGNATURES = 100;
/** Most extension lines of a checkpoint body. */
export const MAX_CHECKPOINT_EXTENSIONS = 16;
/** The em dash, space prefix of a signature line. */
export const SIGNATURE_PREFIX = '\u2014 ';
/** Length of a cosignature/v1 signature after the key hash: u64 time || Ed25519 signature. */
export const COSIGNATURE_LEN = 8 + SIGNATURE_LEN;

/** One signature line of a note. */
export interface NoteSignature {
  /** The key name. */
  name: string;
  /** The key hash (u32). */
  keyHash: number;
  /** The signature bytes after the key hash (64 for Ed25519, 72 for cosignature/v1). */
  signature: Uint8Array;
}

/** A parsed signed note. */
export interface SignedNote {
  /** The note text, ending in `\n`. */
  text: string;
  /** Its signature lines, in order. */
  signatures: NoteSignature[];
}

/** A parsed verifier key (`name+hash+base64(type || key)`). */
export interface VerifierKey {
  name: string;
  keyHash: number;
  type: NoteKeyType;
  /** The 32-byte Ed25519 public key. */
  publicKey: Uint8Array;
}

/** A parsed `tlog-checkpoint` body. */
export interface CheckpointNote {
  /** The log's origin line. */
  origin: string;
  /** The tree size. */
  size: number;
  /** The RFC 6962 / 9162 root hash (32 bytes). */
  root: Uint8Array;
  /** Extension lines (without their newline), in order. */
  extensions: string[];
}

/** What {@link verifyNote} proves. */
export interface VerifiedNote {
  text: string;
  /** Verifier keys whose signature verified, in the order given. */
  signers: VerifierKey[];
  /** For each cosigner among `signers` (type 0x04), the time it signed, in seconds. */
  cosignedAt: Map<VerifierKey, number>;
  /** Signature lines by keys not in the verifier list. */
  unknown: NoteSignature[];
}

/** What {@link verifyCheckpointNote} proves. */
export interface VerifiedCheckpointNote extends VerifiedNote {
  checkpoint: CheckpointNote;
}

// ---------------------------------------------------------------------------------------------
// names, key hashes, verifier keys

/** Unicode white space as Go's `unicode.IsSpace` defines it. */
const GO_SPACE = /[\t\n\v\f\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]/u;

/** A key name is non-empty, has no white space (Go's `unicode.IsSpace`) and no `+`. */
export function isValidKeyName(name: unknown): name is string {
  return typeof name === 'string' && name.length > 0 && !GO_SPACE.test(name) && !name.includes('+') && !/[\uD800-\uDFFF]/u.test(name.replace(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g, ''));
}

/** `SHA-256(name || 0x0A || type || publicKey)[0:4]` as a big-endian u32. */
export function noteKeyHash(name: string, type: number, publicKey: Uint8Array): number {
  const h = sha256(concatBytes(toBytes(name), Uint8Array.of(0x0a, type), publicKey));
  return ((h[0] << 24) | (h[1] << 16) | (h[2] << 8) | h[3]) >>> 0;
}

/** The verifier key of an Ed25519 public key under `name`. Throws `RangeError` on a bad name or key. */
export function verifierKeyOf(name: string, publicKey: Uint8Array, type: NoteKeyType = KEY_TYPE_ED25519): VerifierKey {
  if (!isValidKeyName(name)) throw new RangeError(`key name ${JSON.stringify(name)} is empty or has white space or '+'`);
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== PUBLIC_KEY_LEN) throw new RangeError(`public key must be ${PUBLIC_KEY_LEN} bytes`);
  return { name, keyHash: noteKeyHash(name, type, publicKey), type, publicKey: publicKey.slice() };
}

/** `name+hex8(keyHash)+base64(type || publicKey)`. */
export function formatVerifierKey(v: VerifierKey): string {
  return `${v.name}+${v.keyHash.toString(16).padStart(8, '0')}+${toBase64(concatBytes(Uint8Array.of(v.type), v.publicKey))}`;
}

/** Parses a verifier key; throws {@link DecodeError} unless it is well formed, of a known type, with the right hash. */
export function parseVerifierKey(text: string): VerifierKey {
  if (typeof text !== 'string') throw new DecodeError('', 'verifier key must be a string');
  const parts = splitVerifierKey(text);
  if (!parts) throw new DecodeError('', 'verifier key is not name+hash+key');
  const [name, hash16, key64] = parts;
  if (!isValidKeyName(name)) throw new DecodeError('', `verifier key name ${JSON.stringify(name)} is not valid`);
  if (!/^[0-9a-f]{8}$/.test(hash16)) throw new DecodeError('', 'verifier key hash is not 8 lower-case hex digits');
  let key: Uint8Array;
  try {
    key = fromBase64(key64);
  } catch (err) {
    throw new DecodeError('', `verifier key: ${(err as Error).message}`);
  }
  if (key.length !== 1 + PUBLIC_KEY_LEN) throw new DecodeError('', `verifier key has ${key.length} bytes, want ${1 + PUBLIC_KEY_LEN}`);
  const type = key[0];
  if (type !== KEY_TYPE_ED25519 && type !== KEY_TYPE_COSIGNATURE) throw new DecodeError('', `verifier key type 0x${type.toString(16).padStart(2, '0')} is not supported`);
  const publicKey = key.slice(1);
  const keyHash = Number.parseInt(hash16, 16);
  if (keyHash !== noteKeyHash(name, type, publicKey)) throw new DecodeError('', 'verifier key hash does not match its name and key');
  return { name, keyHash, type, publicKey };
}

/** `name`, `hash`, `key` at the first two `+` (the base64 key may itself contain `+`). */
function splitVerifierKey(text: string): [string, string, string] | undefined {
  const a = text.indexOf('+');
  const b = a < 0 ? -1 : text.indexOf('+', a + 1);
  return b < 0 ? undefined : [text.slice(0, a), text.slice(a + 1, b), text.slice(b + 1)];
}

/** True when `text` looks like a verifier key (`name+8 hex digits+…`), as opposed to a raw key. */
export function isVerifierKeyText(text: unknown): boolean {
  if (typeof text !== 'string') return false;
  const parts = splitVerifierKey(text.trim());
  return parts !== undefined && /^[0-9a-f]{8}$/.test(parts[1]);
}

// ---------------------------------------------------------------------------------------------
// notes

/** The text problems {@link parseNote} rejects: not UTF-8, a control character other than `\n`. */
function textProblem(s: string): string | undefined {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 && c !== 0x0a) return `control character 0x${c.toString(16).padStart(2, '0')} at ${i}`;
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (!(d >= 0xdc00 && d <= 0xdfff)) return `unpaired surrogate at ${i}`;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) return `unpaired surrogate at ${i}`;
  }
  return undefined;
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** `text` with its signature lines: text, a blank line, one line per signature. Throws `RangeError` if malformed. */
export function formatNote(note: SignedNote): string {
  if (typeof note.text !== 'string' || !note.text.endsWith('\n')) throw new RangeError('note text must end in a newline');
  const bad = textProblem(note.text);
  if (bad) throw new RangeError(`note text has a ${bad}`);
  if (note.signatures.length === 0) throw new RangeError('a signed note needs at least one signature');
  let out = `${note.text}\n`;
  for (const s of note.signatures) out += signatureLine(s);
  return out;
}

/** One signature line, `— name base64(keyHash || signature)\n`. Throws `RangeError` on a bad name. */
export function signatureLine(s: NoteSignature): string {
  if (!isValidKeyName(s.name)) throw new RangeError(`signature name ${JSON.stringify(s.name)} is not valid`);
  const hash = new Uint8Array(4);
  new DataView(hash.buffer).setUint32(0, s.keyHash >>> 0);
  return `${SIGNATURE_PREFIX}${s.name} ${toBase64(concatBytes(hash, s.signature))}\n`;
}

/**
 * Parses signature lines (each ending in `\n`): `— name base64`, the decoded bytes at least 5
 * (key hash and a signature). Throws {@link DecodeError}.
 */
export function parseSignatureLines(block: string): NoteSignature[] {
  if (block.length === 0 || !block.endsWith('\n')) throw new DecodeError('', 'signature block must be non-empty and end in a newline');
  const lines = block.slice(0, -1).split('\n');
  if (lines.length > MAX_NOTE_SIGNATURES) throw new DecodeError('', `more than ${MAX_NOTE_SIGNATURES} signatures`);
  return lines.map((line, i) => {
    if (!line.startsWith(SIGNATURE_PREFIX)) throw new DecodeError(`signatures[${i}]`, 'line does not start with "— "');
    const rest = line.slice(SIGNATURE_PREFIX.length);
    const sp = rest.indexOf(' ');
    const name = sp < 0 ? rest : rest.slice(0, sp);
    const b64 = sp < 0 ? '' : rest.slice(sp + 1);
    if (!isValidKeyName(name)) throw new DecodeError(`signatures[${i}]`, `key name ${JSON.stringify(name)} is not valid`);
    let raw: Uint8Array;
    try {
      raw = fromBase64(b64);
    } catch (err) {
      throw new DecodeError(`signatures[${i}]`, (err as Error).message);
    }
    if (raw.length < 5) throw new DecodeError(`signatures[${i}]`, `signature has ${raw.length} bytes, want at least 5`);
    const keyHash = ((raw[0] << 24) | (raw[1] << 16) | (raw[2] << 8) | raw[3]) >>> 0;
    return { name, keyHash, signature: raw.slice(4) };
  });
}

/**
 * Parses a signed note (a string, or UTF-8 bytes): at most {@link MAX_NOTE_BYTES}, valid UTF-8,
 * no control characters but `\n`, text and signatures split at the last blank line, at least one
 * signature line. Throws {@link DecodeError}.
 */
export function parseNote(input: string | Uint8Array): SignedNote {
  let s: string;
  if (input instanceof Uint8Array) {
    if (input.length > MAX_NOTE_BYTES) throw new DecodeError('', `note has ${input.length} bytes, limit ${MAX_NOTE_BYTES}`);
    try {
      s = strictUtf8.decode(input);
    } catch {
      throw new DecodeError('', 'note is not valid UTF-8');
    }
  } else if (typeof input === 'string') {
    s = input;
    if (s.length > MAX_NOTE_BYTES) throw new DecodeError('', `note has more than ${MAX_NOTE_BYTES} characters`);
  } else {
    throw new DecodeError('', 'note must be a string or bytes');
  }
  const bad = textProblem(s);
  if (bad) throw new DecodeError('', `note has a ${bad}`);
  const split = s.lastIndexOf('\n\n');
  if (split < 0) throw new DecodeError('', 'note has no blank line before its signatures');
  return { text: s.slice(0, split + 1), signatures: parseSignatureLines(s.slice(split + 2)) };
}

/** Signs note `text` with Ed25519 under `name` (type 0x01). Throws `RangeError` on bad input. */
export function signNote(text: string, name: string, privateKey: Uint8Array): NoteSignature {
  return signNoteWith(text, name, publicKeyOf(privateKey), (m) => ed25519.sign(m, privateKey));
}

/**
 * Like {@link signNote}, for a key held elsewhere: `sign` returns the Ed25519 signature of a
 * message by the key whose public key is `publicKey`. Throws `RangeError` on bad input.
 */
export function signNoteWith(text: string, name: string, publicKey: Uint8Array, sign: (message: Uint8Array) => Uint8Array): NoteSignature {
  if (typeof text !== 'string' || !text.endsWith('\n') || textProblem(text)) throw new RangeError('note text must be valid text ending in a newline');
  const v = verifierKeyOf(name, publicKey);
  return { name, keyHash: v.keyHash, signature: sign(toBytes(text)) };
}

/** The message a cosignature/v1 signs: `"cosignature/v1\ntime <time>\n" || text`. */
export function cosignatureMessage(text: string, time: number): Uint8Array {
  if (!Number.isSafeInteger(time) || time < 0) throw new RangeError('cosignature time must be a safe non-negative integer');
  return toBytes(`cosignature/v1\ntime ${time}\n${text}`);
}

/** Cosigns checkpoint `text` at `time` (Unix seconds) under `name` (type 0x04). Throws `RangeError` on bad input. */
export function signCosignature(text: string, name: string, privateKey: Uint8Array, time: number): NoteSignature {
  if (typeof text !== 'string' || !text.endsWith('\n') || textProblem(text)) throw new RangeError('note text must be valid text ending in a newline');
  const v = verifierKeyOf(name, publicKeyOf(privateKey), KEY_TYPE_COSIGNATURE);
  const sig = new Uint8Array(COSIGNATURE_LEN);
  writeU64BE(sig, 0, time);
  sig.set(ed25519.sign(cosignatureMessage(text, time), privateKey), 8);
  return { name, keyHash: v.keyHash, signature: sig };
}

/** The time (seconds) of a cosignature/v1 signature, or undefined if it is not one or above 2^53 - 1. */
export function cosignatureTime(sig: NoteSignature): number | undefined {
  if (!(sig.signature instanceof Uint8Array) || sig.signature.length !== COSIGNATURE_LEN) return undefined;
  return readU64BE(sig.signature, 0);
}

/**
 * Verifies one signature line against one verifier key (name, hash and type must match): an
 * Ed25519 note signature over `text`, or a cosignature/v1 over its time and `text`. Strict
 * RFC 8032 verification. Never throws.
 */
export function verifyNoteSignature(text: string, sig: NoteSignature, key: VerifierKey): boolean {
  try {
    if (sig.name !== key.name || sig.keyHash !== key.keyHash) return false;
    if (key.type === KEY_TYPE_ED25519) {
      if (sig.signature.length !== SIGNATURE_LEN) return false;
      return ed25519.verify(sig.signature, toBytes(text), key.publicKey, { zip215: false });
    }
    if (key.type === KEY_TYPE_COSIGNATURE) {
      const time = cosignatureTime(sig);
      if (time === undefined) return false;
      return ed25519.verify(sig.signature.subarray(8), cosignatureMessage(text, time), key.publicKey, { zip215: false });
    }
    return false;
  } catch {
    return false;
  }
}

function checkKeys(keys: unknown, what: string): VerifyFailure | undefined {
  if (!Array.isArray(keys)) return fail(Reason.INVALID_TRUST_POLICY, `${what} must be a list of verifier keys`);
  const seen = new Set<string>();
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i] as VerifierKey;
    if (typeof k !== 'object' || k === null || !isValidKeyName(k.name) || !(k.publicKey instanceof Uint8Array) || k.publicKey.length !== PUBLIC_KEY_LEN) {
      return fail(Reason.INVALID_TRUST_POLICY, `${what}[${i}] is not a verifier key`);
    }
    if ((k.type !== KEY_TYPE_ED25519 && k.type !== KEY_TYPE_COSIGNATURE) || k.keyHash !== noteKeyHash(k.name, k.type, k.publicKey)) {
      return fail(Reason.INVALID_TRUST_POLICY, `${what}[${i}] has a wrong type or key hash`);
    }
    const id = `${k.name}+${k.keyHash}`;
    if (seen.has(id)) return fail(Reason.INVALID_TRUST_POLICY, `${what}[${i}] (${k.name}) is listed twice`);
    seen.add(id);
  }
  return undefined;
}

/**
 * Verifies the signatures of a parsed note against `keys`, the way Go's `note.Open` does: a
 * line by a listed key (name and hash) must verify (`BAD_SIGNATURE`); repeated lines of one key
 * count once; lines by other keys are returned as `unknown`. At least one listed key must have
 * signed (`MISSING_SIGNATURE`). Never throws.
 */
export function verifyNote(note: SignedNote, keys: readonly VerifierKey[]): Verified<VerifiedNote> {
  try {
    const bad = checkKeys(keys, 'keys');
    if (bad) return bad;
    if (typeof note !== 'object' || note === null || typeof note.text !== 'string' || !Array.isArray(note.signatures)) {
      return fail(Reason.MALFORMED_INPUT, 'note must be { text, signatures }');
    }
    if (!note.text.endsWith('\n') || textProblem(note.text)) return fail(Reason.MALFORMED_ENCODING, 'note text must be valid text ending in a newline');
    const byId = new Map(keys.map((k) => [`${k.name}+${k.keyHash}`, k]));
    const seen = new Set<string>();
    const signers: VerifierKey[] = [];
    const cosignedAt = new Map<VerifierKey, number>();
    const unknown: NoteSignature[] = [];
    for (let i = 0; i < note.signatures.length; i++) {
      const s = note.signatures[i];
      if (typeof s !== 'object' || s === null || !isValidKeyName(s.name) || !Number.isInteger(s.keyHash) || !(s.signature instanceof Uint8Array)) {
        return fail(Reason.MALFORMED_INPUT, `signature ${i} is malformed`);
      }
      const id = `${s.name}+${s.keyHash}`;
      const k = byId.get(id);
      if (!k) {
        unknown.push(s);
        continue;
      }
      if (seen.has(id)) continue;
      seen.add(id);
      if (!verifyNoteSignature(note.text, s, k)) return fail(Reason.BAD_SIGNATURE, `signature ${i} by ${s.name}+${toHex(u32(s.keyHash))} does not verify`);
      signers.push(k);
      if (k.type === KEY_TYPE_COSIGNATURE) cosignedAt.set(k, cosignatureTime(s)!);
    }
    if (signers.length === 0) return fail(Reason.MISSING_SIGNATURE, 'no signature by a known key');
    return { ok: true, text: note.text, signers, cosignedAt, unknown };
  } catch (err) {
    return fail(Reason.MALFORMED_INPUT, `note could not be verified: ${(err as Error).message}`);
  }
}

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0);
  return b;
}

// ---------------------------------------------------------------------------------------------
// tlog-checkpoint bodies

/** The checkpoint text: origin, decimal size, base64 root, extension lines. Throws `RangeError` if malformed. */
export function formatCheckpointNote(c: CheckpointNote): string {
  if (typeof c.origin !== 'string' || c.origin.length === 0 || c.origin.includes('\n') || textProblem(c.origin)) throw new RangeError('origin must be one non-empty line');
  if (!Number.isSafeInteger(c.size) || c.size < 0) throw new RangeError('size must be a safe non-negative integer');
  if (!(c.root instanceof Uint8Array) || c.root.length !== HASH_LEN) throw new RangeError(`root must be ${HASH_LEN} bytes`);
  const ext = c.extensions ?? [];
  if (ext.length > MAX_CHECKPOINT_EXTENSIONS) throw new RangeError(`more than ${MAX_CHECKPOINT_EXTENSIONS} extension lines`);
  for (const e of ext) if (typeof e !== 'string' || e.length === 0 || e.includes('\n') || textProblem(e)) throw new RangeError('extension lines must be non-empty lines');
  return [c.origin, String(c.size), toBase64(c.root), ...ext].join('\n') + '\n';
}

/**
 * Parses a checkpoint text: a non-empty origin line, the size in decimal without leading zeros
 * (at most 2^53 - 1), the base64 of a 32-byte root, then non-empty extension lines. Throws {@link DecodeError}.
 */
export function parseCheckpointNote(text: string): CheckpointNote {
  if (typeof text !== 'string' || !text.endsWith('\n')) throw new DecodeError('', 'checkpoint text must end in a newline');
  const bad = textProblem(text);
  if (bad) throw new DecodeError('', `checkpoint text has a ${bad}`);
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3) throw new DecodeError('', `checkpoint has ${lines.length} lines, want at least 3`);
  const [origin, sizeText, rootText, ...extensions] = lines;
  if (origin.length === 0) throw new DecodeError('origin', 'empty');
  if (!/^(0|[1-9][0-9]{0,15})$/.test(sizeText) || !Number.isSafeInteger(Number(sizeText))) throw new DecodeError('size', `${JSON.stringify(sizeText.slice(0, 32))} is not a decimal size`);
  let root: Uint8Array;
  try {
    root = fromBase64(rootText);
  } catch (err) {
    throw new DecodeError('root', (err as Error).message);
  }
  if (root.length !== HASH_LEN) throw new DecodeError('root', `has ${root.length} bytes, want ${HASH_LEN}`);
  if (extensions.length > MAX_CHECKPOINT_EXTENSIONS) throw new DecodeError('', `more than ${MAX_CHECKPOINT_EXTENSIONS} extension lines`);
  if (extensions.some((e) => e.length === 0)) throw new DecodeError('', 'empty extension line');
  return { origin, size: Number(sizeText), root, extensions };
}

/** Which keys a checkpoint note must carry. */
export interface NotePolicy {
  /** The expected origin line. */
  origin: string;
  /** The log's (node) verifier keys, type 0x01. */
  logKeys: readonly VerifierKey[];
  /** Distinct log keys that must have signed: 1 <= quorum <= logKeys.length. */
  quorum: number;
  /** Witness verifier keys (type 0x04), if witnesses are required. */
  witnesses?: readonly VerifierKey[];
  /** Distinct witnesses that must have cosigned (default 0). */
  witnessQuorum?: number;
}

/**
 * Verifies a checkpoint note (text or parsed): a well-formed checkpoint body with `policy.origin`
 * (`CHECKPOINT_MISMATCH` for another origin), at least `quorum` log keys and `witnessQuorum`
 * witnesses signed (`QUORUM_NOT_MET`); every signature by a listed key verifies. Never throws.
 */
export function verifyCheckpointNote(input: string | Uint8Array | SignedNote, policy: NotePolicy): Verified<VerifiedCheckpointNote> {
  try {
    if (typeof policy !== 'object' || policy === null || typeof policy.origin !== 'string') return fail(Reason.INVALID_TRUST_POLICY, 'policy needs an origin');
    const bad = checkKeys(policy.logKeys, 'logKeys') ?? checkKeys(policy.witnesses ?? [], 'witnesses');
    if (bad) return bad;
    const logKeys = policy.logKeys;
    const witnesses = policy.witnesses ?? [];
    if (logKeys.some((k) => k.type !== KEY_TYPE_ED25519)) return fail(Reason.INVALID_TRUST_POLICY, 'log keys must be Ed25519 note keys (type 0x01)');
    if (witnesses.some((k) => k.type !== KEY_TYPE_COSIGNATURE)) return fail(Reason.INVALID_TRUST_POLICY, 'witness keys must be cosignature/v1 keys (type 0x04)');
    const wq = policy.witnessQuorum ?? 0;
    if (!Number.isSafeInteger(policy.quorum) || policy.quorum < 1 || policy.quorum > logKeys.length) return fail(Reason.INVALID_TRUST_POLICY, `quorum ${String(policy.quorum)} out of range [1, ${logKeys.length}]`);
    if (!Number.isSafeInteger(wq) || wq < 0 || wq > witnesses.length) return fail(Reason.INVALID_TRUST_POLICY, `witnessQuorum ${String(wq)} out of range [0, ${witnesses.length}]`);
    let note: SignedNote;
    let checkpoint: CheckpointNote;
    try {
      note = typeof input === 'string' || input instanceof Uint8Array ? parseNote(input) : input;
      checkpoint = parseCheckpointNote(note.text);
    } catch (err) {
      return fail(Reason.MALFORMED_ENCODING, (err as Error).message);
    }
    if (checkpoint.origin !== policy.origin) return fail(Reason.CHECKPOINT_MISMATCH, `origin ${JSON.stringify(checkpoint.origin)}, want ${JSON.stringify(policy.origin)}`);
    const r = verifyNote(note, [...logKeys, ...witnesses]);
    if (!r.ok) return r.reason === Reason.MISSING_SIGNATURE ? fail(Reason.QUORUM_NOT_MET, `no signature by a log key, want ${policy.quorum}`) : r;
    const logSigners = r.signers.filter((k) => k.type === KEY_TYPE_ED25519).length;
    const witnessSigners = r.signers.length - logSigners;
    if (logSigners < policy.quorum) return fail(Reason.QUORUM_NOT_MET, `${logSigners} log signatures, want ${policy.quorum}`);
    if (witnessSigners < wq) return fail(Reason.QUORUM_NOT_MET, `${witnessSigners} witness cosignatures, want ${wq}`);
    return { ...r, checkpoint };
  } catch (err) {
    return fail(Reason.MALFORMED_INPUT, `checkpoint note could not be verified: ${(err as Error).message}`);
  }
}

/** True when two checkpoint bodies name the same origin, size and root. */
export function sameCheckpoint(a: CheckpointNote, b: CheckpointNote): boolean {
  return a.origin === b.origin && a.size === b.size && equalBytes(a.root, b.root);
}
