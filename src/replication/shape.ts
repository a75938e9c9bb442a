/**
 * The cluster's **shape** as one member tells it to another (issue 10: a member added to a running
 * cluster builds the tables its peers build; docs/engine.md § Shape options, docs/cluster.md
 * § Membership).
 *
 * Every member's tables, and so its MasterRoot, depend on the engine's shape options, which each
 * data directory records in its manifest. A member that joins with an empty directory must build
 * with the shape its peers recorded, not with this release's defaults. A member tells its shape as
 * the pseudo-file {@link SHAPE_FILE} of the snapshot chunk route (`Transport.fetchSnapshotChunk`,
 * any snapshot index): the chunk route's authentication and answer MACs apply, and a member of a
 * release from before shapes were told refuses the read (`SNAPSHOT_BAD_REQUEST` or
 * `SNAPSHOT_UNAVAILABLE` on its side: a refusal on the wire), which is a clear "unknown", never a
 * guess.
 *
 * The bytes are the manifest's own shape record (tag 13 of `src/version/edit.ts`), so a shape told
 * by a peer is read exactly as the peer's manifest would be read by this release (a record of
 * fewer options, from an older release, has the later options "off"), and bounded
 * ({@link MAX_TOLD_SHAPE}) because a peer, unlike the local disk, is not trusted with memory.
 * @module
 */
import { CorruptionError } from '../errors.js';
import { SHAPE_OPTIONS, resolveOptions, sameShape, shapeOf, type DBOptions, type Shape } from '../options.js';
import { decodeEdit, encodeEdit, encodeShapeRecord } from '../version/edit.js';

/** The snapshot chunk name under which a member tells its recorded shape (any index). */
export const SHAPE_FILE = 'SHAPE';

/** Largest shape answer read: a tag-13 record is a few dozen bytes. */
export const MAX_SHAPE_BYTES = 1024;

/**
 * The largest value of each shape option a member accepts from a peer (the engine's own minimums
 * and rules apply too, `resolveOptions`). Generous — 16 to 1000 times the defaults — but they bound
 * what a hostile or broken peer can make this member hold: `writeBufferSize` is held up to three
 * times in memtables, a block or a table is read whole.
 */
export const MAX_TOLD_SHAPE: Readonly<Shape> = Object.freeze({
  writeBufferSize: 1 << 30,
  blockSize: 16 << 20,
  blockRestartInterval: 1 << 16,
  bloomBitsPerKey: 64,
  targetFileSize: 1 << 30,
  level0CompactionTrigger: 1024,
  checkpointLevel0Tables: 1024,
  maxBytesForLevelBase: 2 ** 40,
  merkleGroup: 1 << 16,
  checkpointLevel0Bytes: 2 ** 40,
  checkpointLevel0SizeRatio: 1_000_000,
});

/** Stable codes of {@link ShapeError}. */
export enum ShapeErrorCode {
  /** A peer told a shape that is not a well-formed shape record, or one out of bounds. */
  Invalid = 'SHAPE_INVALID',
  /**
   * No member told its shape: every member asked refused the read (a release from before shapes
   * were told) or could not be reached. The member does not start rather than guess.
   */
  Unknown = 'SHAPE_UNKNOWN',
  /** Members told different shapes, or the shape options given to this member differ from the cluster's. */
  Conflict = 'SHAPE_CONFLICT',
}

/** The cluster's shape could not be learned, or was refused; nothing was opened or changed. `code` is stable. */
export class ShapeError extends Error {
  constructor(
    readonly code: ShapeErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ShapeError';
  }
}

/**
 * The bytes a member tells its shape with: the manifest's tag-13 record of `shape`, with the
 * **fewest** options that the manifest decoder reads back as `shape` — an option added by a later
 * release and left at the value a record without it reads as (`merkleGroup` 0,
 * `checkpointLevel0Bytes` 0) is left out, as the release before it wrote the record. So a member
 * whose shape an older release can build tells it in a record that release reads; only a shape
 * that uses an option it does not know is refused there (`SHAPE_INVALID`).
 */
export function encodeShape(shape: Shape): Uint8Array {
  const s = shapeOf(shape);
  for (let n = 1; n < SHAPE_OPTIONS.length; n++) {
    const bytes = encodeShapeRecord(s, n);
    let back: Shape | undefined;
    try {
      back = decodeEdit(bytes, SHAPE_FILE).shape;
    } catch {
      continue; // a record of n options was never written
    }
    if (sameShape(back, s)) return bytes;
  }
  return encodeEdit({ shape: s });
}

/**
 * Reads a shape a peer told: a version edit holding a shape record and nothing else, every option
 * within the engine's rules and {@link MAX_TOLD_SHAPE}. Throws `SHAPE_INVALID` otherwise (a record
 * of more options than this release knows is one: a newer release's shape cannot be built here).
 */
export function decodeShape(bytes: Uint8Array, from = 'a peer'): Shape {
  const invalid = (m: string, cause?: unknown) => new ShapeError(ShapeErrorCode.Invalid, `the shape told by ${from}: ${m}`, { cause });
  if (!(bytes instanceof Uint8Array) || bytes.length === 0 || bytes.length > MAX_SHAPE_BYTES) {
    throw invalid(`want 1 to ${MAX_SHAPE_BYTES} bytes, got ${bytes instanceof Uint8Array ? bytes.length : typeof bytes}`);
  }
  let edit;
  try {
    edit = decodeEdit(bytes, SHAPE_FILE);
  } catch (err) {
    throw invalid(err instanceof CorruptionError ? err.message : String(err), err);
  }
  const { shape, ...rest } = edit;
  if (shape === undefined) throw invalid('no shape record');
  if (Object.keys(rest).length > 0) throw invalid(`fields other than the shape: ${Object.keys(rest).join(', ')}`);
  for (const k of SHAPE_OPTIONS) {
    if (!(shape[k] <= MAX_TOLD_SHAPE[k])) throw invalid(`${k} ${shape[k]} exceeds ${MAX_TOLD_SHAPE[k]}`);
  }
  try {
    resolveOptions(shape);
  } catch (err) {
    throw invalid((err as Error).message, err);
  }
  return shape;
}

/** A shape as one line: `writeBufferSize=… blockSize=…`. */
export function describeShape(shape: Shape): string {
  return SHAPE_OPTIONS.map((k) => `${k}=${shape[k]}`).join(' ');
}

/** Reads `length` bytes at `offset` of snapshot chunk `name` from member `id` (the transport's `fetchSnapshotChunk`, index fixed). */
export type ShapeFetch = (id: number, name: string, offset: number, length: number) => Promise<Uint8Array>;

/** What one member answered when asked its shape. */
export type ToldShape =
  | { id: number; shape: Shape }
  /** It answered but did not tell (a release from before shapes were told, or it refused the read). */
  | { id: number; refused: string }
  /** It could not be reached. */
  | { id: number; unreachable: string };

/** Transport codes that are an answer of the member (not a failure to reach it). */
const REFUSALS = new Set(['TRANSPORT_NOT_FOUND', 'TRANSPORT_REFUSED', 'SNAPSHOT_BAD_REQUEST', 'SNAPSHOT_UNAVAILABLE']);

/**
 * Asks member `id` for its shape. A refusal (`TRANSPORT_NOT_FOUND` / `TRANSPORT_REFUSED`: an older
 * release answers the unknown name with one) is `refused`; any other failure `unreachable`. A
 * malformed answer throws `SHAPE_INVALID`.
 */
export async function askShape(fetch: ShapeFetch, id: number): Promise<ToldShape> {
  let bytes: Uint8Array;
  try {
    bytes = await fetch(id, SHAPE_FILE, 0, MAX_SHAPE_BYTES);
  } catch (err) {
    const code = (err as { code?: unknown })?.code;
    const m = (err as Error)?.message ?? String(err);
    return typeof code === 'string' && REFUSALS.has(code) ? { id, refused: m } : { id, unreachable: m };
  }
  return { id, shape: decodeShape(bytes, `member ${id}`) };
}

/** Options of {@link learnClusterShape}. */
export interface LearnShapeOptions {
  /**
   * How long to go on asking while no member could be reached at all (a joiner started during a
   * partition, or before its peers), ms (default 60 000); a refusal or an answer ends it at once.
   */
  patienceMs?: number;
  /** Most rounds of asking (default: as many as {@link patienceMs} allows). */
  rounds?: number;
  /** Wait between rounds, ms (default 1000). */
  waitMs?: number;
  /** Shape options the member was given explicitly: each must equal the cluster's. */
  explicit?: DBOptions;
}

/**
 * The shape of the cluster, asked of `ids` (the other members of the cluster file) before a joining
 * member with an empty data directory opens its engine (docs/cluster.md § Membership, "The shape"):
 *
 * - every member that answers must tell the **same** shape (else `SHAPE_CONFLICT`, naming them);
 * - at least one must tell it: members that refuse the read (older releases) are passed over when
 *   another tells it, and `SHAPE_UNKNOWN` is thrown when none does — after asking again for
 *   `patienceMs` while nobody could be reached at all;
 * - a malformed or out-of-bounds answer is `SHAPE_INVALID` (nothing is guessed from the others);
 * - shape options in `explicit` must equal the cluster's (`SHAPE_CONFLICT`).
 *
 * Nothing is opened or written here. Returns the shape and the members that told it.
 */
export async function learnClusterShape(fetch: ShapeFetch, ids: readonly number[], options: LearnShapeOptions = {}): Promise<{ shape: Shape; from: number[] }> {
  const rounds = Math.max(1, options.rounds ?? Number.POSITIVE_INFINITY);
  const until = Date.now() + (options.patienceMs ?? 60_000);
  let answers: ToldShape[] = [];
  for (let round = 0; round < rounds; round++) {
    if (round > 0) {
      if (Date.now() >= until) break;
      await new Promise((resolve) => setTimeout(resolve, options.waitMs ?? 1000));
    }
    answers = await Promise.all(ids.map((id) => askShape(fetch, id)));
    if (ids.length === 0 || answers.some((a) => !('unreachable' in a))) break;
  }
  const told = answers.filter((a): a is { id: number; shape: Shape } => 'shape' in a);
  if (told.length === 0) {
    const why = answers.map((a) => `member ${a.id}: ${'refused' in a ? `refused (${a.refused.slice(0, 120)})` : 'unreachable' in a ? `unreachable (${a.unreachable.slice(0, 120)})` : ''}`).join('; ');
    throw new ShapeError(
      ShapeErrorCode.Unknown,
      `no member told the cluster's shape (${why || 'no other member in the cluster file'}); a member of a release from before shapes were told refuses the read. ` +
        'Upgrade a member and start this one again, or add this member from a copy of a member\'s data directory (docs/cluster.md § Membership)',
    );
  }
  const shape = told[0].shape;
  const other = told.find((t) => !sameShape(t.shape, shape));
  if (other) {
    throw new ShapeError(ShapeErrorCode.Conflict, `members tell different shapes: member ${told[0].id} ${describeShape(shape)}; member ${other.id} ${describeShape(other.shape)}`);
  }
  const explicit = options.explicit ?? {};
  for (const k of SHAPE_OPTIONS) {
    const v = explicit[k];
    if (v !== undefined && v !== shape[k]) {
      throw new ShapeError(ShapeErrorCode.Conflict, `the shape option ${k} given to this member (${v}) is not the cluster's (${shape[k]}, told by member ${told[0].id})`);
    }
  }
  return { shape, from: told.map((t) => t.id) };
}
