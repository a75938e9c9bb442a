/** A ProofNode for the witness tests: loopback, no tokens, no automatic checkpoints, silent, explicit pushes. */
import type { ProofNode } from '../../server/node.js';
import type { NoteOptions } from '../../server/notes.js';
import { startLocalNode } from '../server/harness.js';

/** Starts a node on `dataDir` with `notes` (pushes only when the test calls `node.notes.push()`). */
export function startNode(dataDir: string, notes: NoteOptions): Promise<ProofNode> {
  return startLocalNode(undefined, dataDir, { notes: { pushIntervalMs: 0, ...notes } });
}
