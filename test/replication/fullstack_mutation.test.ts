/**
 * The full-stack simulation catches broken replicas (fullstack.test.ts runs the same seeds with
 * the real code and they pass):
 * - an applier that ignores `(clientId, seq)` applies a retry twice;
 * - a member whose checkpoints take their time from its own clock instead of the log entry
 *   computes other checkpoints than the rest: the others certify theirs, and it diverges.
 */
import * as path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ProofDB } from '../../src/index.js';
import { CommandApplier, type WriteCommand } from '../../server/write_path.js';
import { runFullSeed } from './fullstack_run.js';

afterEach(() => {
  vi.restoreAllMocks();
});

/** The first failure among seeds 1..max, as `seed n: message`. */
async function firstFailure(max: number): Promise<string | undefined> {
  for (let seed = 1; seed <= max; seed++) {
    try {
      await runFullSeed(seed);
    } catch (err) {
      return `seed ${seed}: ${(err as Error).message}`;
    }
  }
  return undefined;
}

describe('full-stack simulation, mutation', () => {
  it('finds a retry applied twice when the applier ignores sessions', async () => {
    const real = CommandApplier.prototype.execute;
    vi.spyOn(CommandApplier.prototype, 'execute').mockImplementation(function (this: CommandApplier, cmd: WriteCommand, logIndex?: number, tookEffect?: () => void) {
      const { session: _, ...bare } = cmd;
      return real.call(this, bare as WriteCommand, logIndex, tookEffect);
    });
    const caught = await firstFailure(40);
    console.log(`fullsim mutation (sessions ignored): ${caught?.split('\n')[0]}`);
    expect(caught).toMatch(/applied twice|not linearizable/);
  }, 300_000);

  it('finds a replica that stamps checkpoints with its own clock', async () => {
    const real = ProofDB.prototype.startCheckpoint;
    vi.spyOn(ProofDB.prototype, 'startCheckpoint').mockImplementation(function (this: ProofDB, options = {}) {
      // Member 1's clock runs 1 ms ahead of the time in the log entry; the others follow the log.
      const skewed = path.basename(this.location) === 'm1';
      return real.call(this, skewed ? { ...options, time: (options.time ?? 0) + 1 } : options);
    });
    const caught = await firstFailure(10);
    console.log(`fullsim mutation (local clock): ${caught?.split('\n')[0]}`);
    expect(caught).toMatch(/member 1 diverged/);
  }, 300_000);
});
