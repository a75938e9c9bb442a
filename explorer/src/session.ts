/**
 * The viewer's session: the token (sessionStorage: gone when the tab closes), the trust
 * configuration (pasted keys and quorum, or TOFU; localStorage), the SDK client built from them
 * (endpoint: the node that served the page), its trusted state (`BrowserStateStore`,
 * localStorage) and a bounded log of the heads this browser verified (for consistency checks
 * between any two).
 * @module
 */
import { ProofKVClient, type VerifiedCheckpoint } from '../../client-sdk/client.js';
import { parsePublicKey } from '../../client-sdk/keys.js';
import { BrowserStateStore, type TrustedState } from '../../client-sdk/state.js';
import { trustId, type TrustConfig } from '../../client-sdk/trust.js';
import { fromHex, toHex } from '../../proofs/bytes.js';
import type { LogHead } from '../../proofs/checkpoint.js';

const TOKEN_KEY = 'proofkv-explorer-token';
const CONFIG_KEY = 'proofkv-explorer-config';
/** The localStorage item of the trusted state (format `proofkv-trust-v1`, as the SDK writes it). */
export const STATE_KEY = 'proofkv-explorer-trust';
const HEADS_KEY = 'proofkv-explorer-heads';
/** Heads kept in the log of verified heads (oldest dropped first): about 200 B each, 40 KB in all. */
export const MAX_HEADS = 200;

/** What the viewer configured: pasted keys (hex, base64url or base64) and a quorum, or TOFU. */
export interface ExplorerConfig {
  tofu: boolean;
  publicKeys: string[];
  quorum: number;
}

/** A head this browser verified (signatures by the quorum, consistent with the trusted state). */
export interface SeenHead {
  size: number;
  /** Root, hex. */
  root: string;
  /** Trusted keys whose signatures verified, hex. */
  signers: string[];
  /** When this browser verified it (ISO 8601). */
  seenAt: string;
}

export function token(): string {
  return sessionStorage.getItem(TOKEN_KEY) ?? '';
}

export function setToken(t: string): void {
  if (t === '') sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, t);
  client = undefined;
}

/** The saved configuration, or undefined before the viewer chose one (or when it is unreadable). */
export function config(): ExplorerConfig | undefined {
  const raw = localStorage.getItem(CONFIG_KEY);
  if (!raw) return undefined;
  try {
    const c = JSON.parse(raw) as ExplorerConfig;
    return checkConfig(c);
  } catch {
    return undefined;
  }
}

/** Validates a configuration (keys parse, quorum in range); throws `TypeError`/`RangeError` naming the problem. */
export function checkConfig(c: ExplorerConfig): ExplorerConfig {
  if (typeof c !== 'object' || c === null) throw new TypeError('configuration must be an object');
  if (c.tofu === true) return { tofu: true, publicKeys: [], quorum: 1 };
  if (!Array.isArray(c.publicKeys) || c.publicKeys.length === 0) throw new TypeError('paste at least one node public key, or choose trust on first use');
  const seen = new Set<string>();
  const keys = c.publicKeys.map((k, i) => {
    let hex: string;
    try {
      hex = toHex(parsePublicKey(k));
    } catch (err) {
      throw new TypeError(`key ${i + 1}: ${(err as Error).message}`);
    }
    if (seen.has(hex)) throw new TypeError(`key ${i + 1} is listed twice`);
    seen.add(hex);
    return hex;
  });
  if (!Number.isInteger(c.quorum) || c.quorum < 1 || c.quorum > keys.length) throw new RangeError(`quorum must be an integer from 1 to ${keys.length}`);
  return { tofu: false, publicKeys: keys, quorum: c.quorum };
}

export function setConfig(c: ExplorerConfig): void {
  localStorage.setItem(CONFIG_KEY, JSON.stringify(checkConfig(c)));
  client = undefined;
}

function trustConfig(c: ExplorerConfig): TrustConfig {
  return c.tofu ? { tofu: true } : { publicKeys: c.publicKeys, quorum: c.quorum };
}

/** The endpoint: the node (or the proxy) that served this page. */
export function endpoint(): string {
  return location.origin;
}

let client: ProofKVClient | undefined;
let warnings: string[] = [];

/** The client of the current configuration (one per configuration, so its trusted-state queue is shared). */
export function getClient(): ProofKVClient {
  const c = config();
  if (!c) throw new TypeError('choose the trusted keys first (Trust page)');
  client ??= new ProofKVClient({
    endpoints: [endpoint()],
    token: token() || undefined,
    trust: trustConfig(c),
    stateStore: new BrowserStateStore(STATE_KEY),
    onWarning: (m) => warnings.push(m),
    retries: 1,
    timeoutMs: 15_000,
  });
  return client;
}

/** Warnings the SDK gave (the TOFU pin), taken once. */
export function takeWarnings(): string[] {
  const w = warnings;
  warnings = [];
  return w;
}

/** The trusted state of the current configuration, as stored (undefined before the first verified answer). */
export async function trustedState(): Promise<TrustedState | undefined> {
  const c = config();
  if (!c) return undefined;
  return new BrowserStateStore(STATE_KEY).load(trustId(trustConfig(c), [endpoint()]));
}

/** Forgets the trusted state of the current configuration (the next head is trusted on its signatures alone). */
export function forgetState(): void {
  const c = config();
  const raw = localStorage.getItem(STATE_KEY);
  if (!c || !raw) return;
  try {
    const doc = JSON.parse(raw) as { states?: Record<string, unknown> };
    if (doc.states) delete doc.states[trustId(trustConfig(c), [endpoint()])];
    localStorage.setItem(STATE_KEY, JSON.stringify(doc));
  } catch {
    localStorage.removeItem(STATE_KEY);
  }
  localStorage.removeItem(HEADS_KEY);
  client = undefined;
}

/** The heads this browser verified, oldest first. */
export function seenHeads(): SeenHead[] {
  try {
    const v = JSON.parse(localStorage.getItem(HEADS_KEY) ?? '[]') as SeenHead[];
    return Array.isArray(v) ? v.filter((x) => Number.isSafeInteger(x?.size) && typeof x.root === 'string' && /^[0-9a-f]{64}$/.test(x.root)) : [];
  } catch {
    return [];
  }
}

/** Records a head the SDK accepted (once per size; at most {@link MAX_HEADS}, oldest dropped). */
export function recordHead(head: LogHead, signers: Uint8Array[] = []): void {
  const list = seenHeads();
  if (list.some((x) => x.size === head.size)) return;
  list.push({ size: head.size, root: toHex(head.root), signers: signers.map(toHex), seenAt: new Date().toISOString() });
  list.sort((a, b) => a.size - b.size);
  while (list.length > MAX_HEADS) list.shift();
  localStorage.setItem(HEADS_KEY, JSON.stringify(list));
}

/** Verifies the latest checkpoint with the SDK and records its head. */
export async function latestCheckpoint(): Promise<VerifiedCheckpoint> {
  const cp = await getClient().checkpoint();
  recordHead(cp.head, cp.signers);
  return cp;
}

/** A recorded head as a `LogHead`. */
export function asHead(s: SeenHead): LogHead {
  return { size: s.size, root: fromHex(s.root) };
}
