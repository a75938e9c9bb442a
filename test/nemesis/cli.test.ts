/**
 * `npm run nemesis` arguments: defaults (3 nodes, 5 minutes, a random seed), every flag, and
 * every bad argument refused with the usage line; the replay command a failing run prints.
 */
import { describe, expect, it } from 'vitest';
import { parseArgs } from './cli.js';
import { replayCommand } from './run.js';

describe('nemesis CLI arguments', () => {
  it('has defaults and takes every flag', () => {
    expect(parseArgs([], () => 77)).toEqual({ seed: 77, nodes: 3, minutes: 5 });
    expect(parseArgs(['--minutes', '30', '--nodes', '5'], () => 1)).toEqual({ seed: 1, nodes: 5, minutes: 30 });
    expect(parseArgs(['--seed', '12', '--nodes', '3', '--events', '40', '--out', 'r', '--clients', '2', '--keys', '4', '--quick'])).toEqual({ seed: 12, nodes: 3, events: 40, out: 'r', clients: 2, keys: 4, quick: true });
    expect(parseArgs(['--protocol', 'stream'], () => 3)).toEqual({ seed: 3, nodes: 3, minutes: 5, protocol: 'stream' });
    expect(parseArgs(['--protocol', 'http'], () => 3)).toEqual({ seed: 3, nodes: 3, minutes: 5, protocol: 'http' });
  });

  it('refuses bad arguments with the usage line', () => {
    for (const bad of [['--nodes', '4'], ['--nodes'], ['--seed', '-1'], ['--seed', '1.5'], ['--events', '0'], ['--minutes', 'x'], ['--minutes', '5', '--events', '3'], ['--out'], ['--out', '--quick'], ['--frobnicate'], ['5'], ['--protocol'], ['--protocol', 'grpc'], ['--protocol', 'STREAM']]) {
      expect(() => parseArgs(bad), bad.join(' ')).toThrow(/usage: npm run nemesis/);
    }
  });

  it('prints one replay command with the seed, nodes, steps played and pace', () => {
    expect(replayCommand(9, 5, 87)).toBe('npm run nemesis -- --seed 9 --nodes 5 --events 87');
    expect(replayCommand(9, 3, 22, true)).toBe('npm run nemesis -- --seed 9 --nodes 3 --events 22 --quick');
    expect(replayCommand(9, 3, 22, true, 'http')).toBe('npm run nemesis -- --seed 9 --nodes 3 --events 22 --quick');
    expect(replayCommand(9, 5, 40, false, 'stream')).toBe('npm run nemesis -- --seed 9 --nodes 5 --events 40 --protocol stream');
  });
});
