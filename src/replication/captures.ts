/**
 * Snapshot captures kept on disk: the session table (and a cluster member's registry) exported as
 * of a `checkpoint` entry's log index, the part of a Raft snapshot that cannot be rebuilt later.
 *
 * A member records a checkpoint as its Raft snapshot only once the checkpoint is certified, and
 * the session table must be *as of* the checkpoint's entry: the session store can export it only
 * until two later flushes move its base past that index (docs/replication.md § Snapshots,
 * "Wiring"). The write path therefore captures it when it applies the entry. Kept in memory only,
 * a capture was lost when the member restarted between applying a checkpoint and seeing it
 * certified: the member could not record that checkpoint, and offered members far behind an older
 * snapshot whose tables it no longer serves until the next certified checkpoint. Kept here, the
 * capture survives the restart.
 *
 * **A cache, never an authority.** Nothing is decided from a capture that is missing: the member
 * then behaves as before (its checkpoint timer proposes the next checkpoint,
 * `RaftWritePath.checkpointDue`). A capture that is torn, damaged or of another index is refused
 * at load ({@link decodeCapture}); its contents are checked again by the caller (the session
 * table's own index, the registry's encoding) before use.
 *
 * **Layout.** One file per capture, `capture-<index>` in the directory given (the write path's
 * `<raft>/captures`): {@link CAPTURE_MAGIC}, the index (u64), the session table's and the
 * registry's lengths (u32; the registry's `0xffffffff` when absent), the two, and a CRC-32C of
 * everything before it. Written to `<name>.tmp`, fsynced, renamed and the directory fsynced, in
 * the threadpool, one file at a time.
 *
 * **Bounds.** The store writes and keeps only what {@link CaptureStore.want} lists (the write path
 * lists at most two captures, each bounded by the session budget and the registry's bound); it
 * holds no bytes of its own beyond the list it was last given, and reads at most
 * `maxBytes` of a file.
 * @module
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';
import { crc32c } from '../util/crc32c.js';
import { syncDirAsync } from '../util/durable.js';

/** The first 8 bytes of a capture file. */
export const CAPTURE_MAGIC = 'PKVCAPT1';
const MAGIC = new TextEncoder().encode(CAPTURE_MAGIC);
/** Magic, index, two lengths. */
const HEADER_BYTES = MAGIC.length + 8 + 4 + 4;
const NO_MEMBERS = 0xffffffff;
const NAME = /^capture-(\d{1,16})$/;

/** What is captured at a checkpoint entry. */
export interface Capture {
  /** Log index of the `checkpoint` entry. */
  index: number;
  /** The session table as of `index` (`SessionStore.export`). */
  sessions: Uint8Array;
  /** The member registry as of `index` (`MemberRegistry.export`), for a cluster member. */
  members?: Uint8Array;
}

/** Why a capture file was not loaded. */
export interface RefusedCapture {
  file: string;
  reason: string;
}

/** Encodes a capture file's bytes. */
export function encodeCapture(c: Capture): Uint8Array {
  if (!Number.isSafeInteger(c.index) || c.index <= 0) throw new RangeError(`capture index must be a positive integer, got ${c.index}`);
  const members = c.members;
  if (members && members.length >= NO_MEMBERS) throw new RangeError('registry bytes too large for a capture');
  const out = new Uint8Array(HEADER_BYTES + c.sessions.length + (members?.length ?? 0) + 4);
  const dv = new DataView(out.buffer);
  out.set(MAGIC, 0);
  let o = MAGIC.length;
  dv.setBigUint64(o, BigInt(c.index), true);
  o += 8;
  dv.setUint32(o, c.sessions.length, true);
  dv.setUint32(o + 4, members ? members.length : NO_MEMBERS, true);
  o += 8;
  out.set(c.sessions, o);
  o += c.sessions.length;
  if (members) {
    out.set(members, o);
    o += members.length;
  }
  dv.setUint32(o, crc32c(out, 0, o), true);
  return out;
}

/**
 * Decodes a capture file's bytes; throws an `Error` saying why for bytes that are not one whole
 * capture (short, another magic, lengths that do not add up, a CRC that does not match) or whose
 * index is not `expectIndex` (the file's name).
 */
export function decodeCapture(bytes: Uint8Array, expectIndex?: number): Capture {
  if (bytes.length < HEADER_BYTES + 4) throw new Error(`${bytes.length} bytes, shorter than a capture`);
  for (let i = 0; i < MAGIC.length; i++) if (bytes[i] !== MAGIC[i]) throw new Error('not a capture file (magic)');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.length - 4;
  if (dv.getUint32(end, true) !== crc32c(bytes, 0, end)) throw new Error('checksum does not match');
  let o = MAGIC.length;
  const big = dv.getBigUint64(o, true);
  if (big === 0n || big > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`index ${big} out of range`);
  const index = Number(big);
  if (expectIndex !== undefined && index !== expectIndex) throw new Error(`holds index ${index}, named ${expectIndex}`);
  o += 8;
  const sLen = dv.getUint32(o, true);
  const mLen = dv.getUint32(o + 4, true);
  o += 8;
  if (o + sLen + (mLen === NO_MEMBERS ? 0 : mLen) !== end) throw new Error('lengths do not match the file');
  const sessions = bytes.slice(o, o + sLen);
  o += sLen;
  return mLen === NO_MEMBERS ? { index, sessions } : { index, sessions, members: bytes.slice(o, o + mLen) };
}

/** File name of the capture at `index`. */
export function captureFileName(index: number): string {
  return `capture-${index}`;
}

/** Options of {@link CaptureStore.open}. */
export interface CaptureStoreOptions {
  /** Largest file read at load (a larger one is refused unread). */
  maxBytes: number;
  /** Called when a write or a removal fails (the store goes on; the capture is then only in memory). */
  onError?: (err: Error) => void;
}

/**
 * The captures on disk of one member (see the module comment). {@link want} says which captures
 * should be there; a single worker writes the missing ones and removes the others, in the
 * threadpool; {@link settled} and {@link close} wait for it.
 */
export class CaptureStore {
  /** Indexes whose file is written (by this process) or was loaded. */
  private readonly onDisk = new Set<number>();
  /** Files refused at load, removed by the next {@link want}'s work. */
  private readonly bad = new Set<string>();
  private wanted: readonly Capture[] = [];
  private dirty = false;
  private running: Promise<void> | undefined;
  private closed = false;

  private constructor(
    private readonly dir: string,
    private readonly options: CaptureStoreOptions,
  ) {}

  /** Opens (creating) the directory and removes temporary files a crash left. */
  static open(dir: string, options: CaptureStoreOptions): CaptureStore {
    fs.mkdirSync(dir, { recursive: true });
    for (const name of fs.readdirSync(dir)) if (name.endsWith('.tmp')) fs.rmSync(path.join(dir, name), { force: true });
    return new CaptureStore(dir, options);
  }

  /**
   * Reads every capture file, newest index first. A file that does not decode, or is larger than
   * `maxBytes`, is listed in `refused` and left where it is (the next {@link want} removes it).
   */
  load(): { captures: Capture[]; refused: RefusedCapture[] } {
    const captures: Capture[] = [];
    const refused: RefusedCapture[] = [];
    for (const name of fs.readdirSync(this.dir)) {
      const m = NAME.exec(name);
      if (!m) continue;
      const file = path.join(this.dir, name);
      try {
        const size = fs.statSync(file).size;
        if (size > this.options.maxBytes) throw new Error(`${size} bytes, over the bound of ${this.options.maxBytes}`);
        const c = decodeCapture(new Uint8Array(fs.readFileSync(file)), Number(m[1]));
        captures.push(c);
        this.onDisk.add(c.index);
      } catch (err) {
        refused.push({ file: name, reason: (err as Error).message });
        this.bad.add(name);
      }
    }
    captures.sort((a, b) => b.index - a.index);
    return { captures, refused };
  }

  /**
   * The captures that should be on disk: those missing are written, every other capture file is
   * removed. Returns at once; the work is done in order by one worker (a later call replaces an
   * earlier one not yet done: only the latest list is written).
   */
  want(captures: readonly Capture[]): void {
    if (this.closed) return;
    this.wanted = captures;
    this.dirty = true;
    this.running ??= this.work().finally(() => (this.running = undefined));
  }

  /** Resolves once every file {@link want} asked for so far is written or removed (or failed). */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Waits for the worker and takes no more work. */
  async close(): Promise<void> {
    await this.settled();
    this.closed = true;
  }

  private async work(): Promise<void> {
    while (this.dirty) {
      this.dirty = false;
      const wanted = this.wanted;
      const keep = new Set(wanted.map((c) => c.index));
      for (const name of [...this.bad]) {
        await this.step(() => fsp.rm(path.join(this.dir, name), { force: true }));
        this.bad.delete(name);
      }
      for (const index of [...this.onDisk]) {
        if (keep.has(index)) continue;
        await this.step(() => fsp.rm(path.join(this.dir, captureFileName(index)), { force: true }));
        this.onDisk.delete(index);
      }
      for (const c of wanted) {
        if (this.onDisk.has(c.index)) continue;
        if (await this.step(() => this.write(c))) this.onDisk.add(c.index);
      }
    }
  }

  private async write(c: Capture): Promise<void> {
    const file = path.join(this.dir, captureFileName(c.index));
    const tmp = `${file}.tmp`;
    const fh = await fsp.open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(encodeCapture(c));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, file);
    await syncDirAsync(this.dir);
  }

  private async step(op: () => Promise<void>): Promise<boolean> {
    try {
      await op();
      return true;
    } catch (err) {
      try {
        this.options.onError?.(err as Error);
      } catch {
        // the listener's failure is its own
      }
      return false;
    }
  }
}
