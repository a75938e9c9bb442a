/** A ProofNode for the witness tests: loopback, no tokens, no automatic checkpoints, silent, explicit pushes. */
import { pino } from 'pino';
import { ProofNode } from '../../server/node.js';
import type { NoteOptions } from '../../server/notes.js';

/** Starts a node on `dataDir` with `notes` (pushes only when the test calls `node.notes.push()`). */
export function startNode(dataDir: string, notes: NoteOptions): Promise<ProofNode> {
  return ProofNode.start({
    dataDir,
    host: '127.0.0.1',
    port: 0,
    tokens: [],
    checkpointIntervalMs: 0,
    checkpointWrites: 0,
    logger: pino({ level: 'silent' }),
    notes: { pushIntervalMs: 0, ...notes },
  });
}
