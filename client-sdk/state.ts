/**
 * Trusted state and where it persists. Isomorphic: {@link FileStateStore} loads `node:fs/promises`
 * dynamically inside its methods, through a computed specifier that bundlers leave alone, so
 * bundling this module for a browser pulls in no `node:` module and needs no configuration.
 *
 * The trusted state of one identity (a set of trusted keys and a quorum, or a TOFU pin for a set
 * of endpoints) is the newest checkpoint-log head the client has verified, and the checkpoint
 * that ends it. A client only ever
 * replaces it with a head that provably extends it (RFC 9162 consistency), so a persisted state
 * turns a later rollback or fork into a {@link VerificationError}, across restarts.
 *
 * A store holds the states of several identities, keyed by {@link TrustedState} id (see
 * `trustId` in `trust.ts`), so one file can serve several clusters. Stores hold JSON-ready data:
 * bytes are lower-case hex.
 * @module
 */

/** Persisted trust for one identity. */
export interface TrustedState {
  /** The trusted Ed25519 public keys, lower-case hex. */
  publicKeys: string[];
  /** Distinct trusted signatures a checkpoint needs. */
  quorum: number;
  /** True when the key was pinned on first use rather than configured. */
  tofu?: boolean;
  /** The newest verified checkpoint-log head, when one was seen. */
  head?: { size: number; root: string };
  /**
   * The checkpoint that ends `head` (leaf `head.size - 1`), bytes hex, when the client verified it;
   * absent in state written before it was kept (still readable: the next verified checkpoint fills it).
   */
  checkpoint?: { index: number; seq: number; masterRoot: string; prevCheckpointHash?: string; time?: number; signerSetHash?: string };
  /**
   * The signer set the client adopted (docs/proofs.md §5.6), keys hex: the set the trusted head's
   * last (v2) checkpoint commits to, accepted because a quorum of the set trusted before signed a
   * head committing to it. When present it is the trust policy (its keys and quorum) instead of
   * `publicKeys`/`quorum`, which stay the configured (or rotated) keys. Absent before the first v2
   * checkpoint, and after a followed key rotation.
   */
  signers?: { quorum: number; members: Array<{ id: number; publicKey: string }> };
  /**
   * Key rotations the client followed (oldest first), keys hex: `publicKeys` is the configured (or
   * pinned) set with each `oldPublicKey` replaced by its `newPublicKey`. Absent in state written
   * before rotations were followed, and while none was.
   */
  rotations?: Array<{ logSize: number; oldPublicKey: string; newPublicKey: string }>;
  /** When the state was last written (ISO 8601), for people reading the file. */
  updatedAt?: string;
}

/** Where trusted state persists. Implementations must write atomically. */
export interface StateStore {
  /** The state saved under `id`, or `undefined`. */
  load(id: string): Promise<TrustedState | undefined>;
  /** Replaces the state under `id`. */
  save(id: string, state: TrustedState): Promise<void>;
}

/** The serialized form of a multi-identity store (file or browser storage). */
interface StoreDocument {
  format: 'proofkv-trust-v1';
  states: Record<string, TrustedState>;
}

const FORMAT = 'proofkv-trust-v1';

function parseDocument(text: string | null | undefined, where: string): StoreDocument {
  if (text === null || text === undefined || text === '') return { format: FORMAT, states: {} };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new Error(`trusted state in ${where} is not JSON`, { cause: err });
  }
  const d = doc as StoreDocument;
  if (typeof d !== 'object' || d === null || d.format !== FORMAT || typeof d.states !== 'object' || d.states === null) {
    throw new Error(`trusted state in ${where} is not a ${FORMAT} document`);
  }
  return d;
}

function clone(s: TrustedState): TrustedState {
  return JSON.parse(JSON.stringify(s)) as TrustedState;
}

type NodeFs = typeof import('node:fs/promises');
const FS_MODULE = 'node:fs/promises';

/** `node:fs/promises`, loaded on first use (a computed specifier: bundlers do not follow it). */
function nodeFs(): Promise<NodeFs> {
  return import(/* @vite-ignore */ /* webpackIgnore: true */ FS_MODULE) as Promise<NodeFs>;
}

/** Keeps state in memory, for one process lifetime (the default store). */
export class MemoryStateStore implements StateStore {
  private readonly states = new Map<string, TrustedState>();

  /** {@inheritDoc StateStore.load} */
  async load(id: string): Promise<TrustedState | undefined> {
    const s = this.states.get(id);
    return s === undefined ? undefined : clone(s);
  }

  /** {@inheritDoc StateStore.save} */
  async save(id: string, state: TrustedState): Promise<void> {
    this.states.set(id, clone(state));
  }
}

/**
 * Keeps state in a JSON file (Node only), written atomically: a temporary file in the same
 * directory, then a rename. Missing directories are created (mode 0700, file 0600). Concurrent
 * writers in different processes are last-writer-wins; give each long-running client its own file
 * if that matters.
 */
export class FileStateStore implements StateStore {
  /** @param path the file; `~/` is expanded to the home directory. */
  constructor(readonly path: string) {
    if (typeof path !== 'string' || path === '') throw new TypeError('FileStateStore needs a file path');
  }

  private async resolved(): Promise<string> {
    if (!this.path.startsWith('~/')) return this.path;
    const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env ?? {};
    const home = env.HOME ?? env.USERPROFILE;
    if (!home) throw new Error('cannot expand ~/: no HOME');
    return `${home.replace(/[\\/]+$/, '')}/${this.path.slice(2)}`;
  }

  private async read(file: string): Promise<StoreDocument> {
    const fs = await nodeFs();
    let text: string | undefined;
    try {
      text = await fs.readFile(file, 'utf8');
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') throw err;
    }
    return parseDocument(text, file);
  }

  /** {@inheritDoc StateStore.load} */
  async load(id: string): Promise<TrustedState | undefined> {
    const doc = await this.read(await this.resolved());
    const s = doc.states[id];
    return s === undefined ? undefined : clone(s);
  }

  /** {@inheritDoc StateStore.save} */
  async save(id: string, state: TrustedState): Promise<void> {
    const fs = await nodeFs();
    const file = await this.resolved();
    const cut = Math.max(file.lastIndexOf('/'), file.lastIndexOf('\\'));
    if (cut > 0) await fs.mkdir(file.slice(0, cut), { recursive: true, mode: 0o700 });
    const doc = await this.read(file);
    doc.states[id] = clone(state);
    const rand = new Uint8Array(6);
    globalThis.crypto.getRandomValues(rand);
    const tmp = `${file}.${Array.from(rand, (b) => b.toString(16).padStart(2, '0')).join('')}.tmp`;
    try {
      await fs.writeFile(tmp, JSON.stringify(doc, null, 2) + '\n', { mode: 0o600 });
      await fs.rename(tmp, file);
    } catch (err) {
      await fs.rm(tmp, { force: true });
      throw err;
    }
  }
}

/** The part of the Web Storage API that {@link BrowserStateStore} uses. */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/** Keeps state in browser storage (`localStorage` by default) under one key. */
export class BrowserStateStore implements StateStore {
  private readonly storage: StorageLike;

  /**
   * @param localStorageKey the storage item that holds the document
   * @param storage another Web Storage (`sessionStorage`, a test double); default `localStorage`
   */
  constructor(
    readonly localStorageKey: string,
    storage?: StorageLike,
  ) {
    const s = storage ?? (globalThis as { localStorage?: StorageLike }).localStorage;
    if (!s) throw new TypeError('BrowserStateStore needs localStorage (or a storage argument)');
    this.storage = s;
  }

  /** {@inheritDoc StateStore.load} */
  async load(id: string): Promise<TrustedState | undefined> {
    const s = parseDocument(this.storage.getItem(this.localStorageKey), `storage item ${this.localStorageKey}`).states[id];
    return s === undefined ? undefined : clone(s);
  }

  /** {@inheritDoc StateStore.save} */
  async save(id: string, state: TrustedState): Promise<void> {
    const doc = parseDocument(this.storage.getItem(this.localStorageKey), `storage item ${this.localStorageKey}`);
    doc.states[id] = clone(state);
    this.storage.setItem(this.localStorageKey, JSON.stringify(doc));
  }
}
