/**
 * `npm run nemesis -- [--minutes M | --events E] [--nodes 3|5] [--seed S] [--out DIR]
 * [--clients C] [--keys K] [--quick] [--protocol http|stream]`: one nemesis run (docs/testing.md). Prints progress, the report's
 * paths and the verdict; a failing run prints its seed and the one command that replays its
 * schedule, and exits with status 1 (2 for a usage error or a harness that could not run).
 * @module
 */
import { pathToFileURL } from 'node:url';
import { runNemesis, replayCommand } from './run.js';
import { NEMESIS_PROTOCOLS, type NemesisProtocol } from './workload.js';

/** Parsed arguments of the command. */
export interface CliArgs {
  seed: number;
  nodes: 3 | 5;
  minutes?: number;
  events?: number;
  out?: string;
  clients?: number;
  keys?: number;
  quick?: boolean;
  /** How the clients reach the members (default `http`). */
  protocol?: NemesisProtocol;
}

const USAGE = 'usage: npm run nemesis -- [--minutes M | --events E] [--nodes 3|5] [--seed S] [--out DIR] [--clients C] [--keys K] [--quick] [--protocol http|stream]';

/** Parses the command's arguments (throws a usage error). Without --minutes or --events: 5 minutes. */
export function parseArgs(argv: readonly string[], randomSeed: () => number = () => Math.floor(Math.random() * 2 ** 31)): CliArgs {
  const out: Partial<CliArgs> = {};
  const num = (flag: string, v: string | undefined, lo: number, hi: number, int = true): number => {
    const n = Number(v);
    if (v === undefined || v.trim() === '' || !Number.isFinite(n) || (int && !Number.isInteger(n)) || n < lo || n > hi) throw new Error(`${flag} must be ${int ? 'an integer' : 'a number'} in ${lo} .. ${hi}, got ${JSON.stringify(v)}\n${USAGE}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const v = argv[i + 1];
    switch (flag) {
      case '--seed': out.seed = num(flag, v, 0, 2 ** 31 - 1); break;
      case '--nodes': {
        const n = num(flag, v, 3, 5);
        if (n !== 3 && n !== 5) throw new Error(`--nodes must be 3 or 5\n${USAGE}`);
        out.nodes = n;
        break;
      }
      case '--minutes': out.minutes = num(flag, v, 0.1, 1440, false); break;
      case '--events': out.events = num(flag, v, 1, 100_000); break;
      case '--clients': out.clients = num(flag, v, 1, 64); break;
      case '--keys': out.keys = num(flag, v, 1, 1000); break;
      case '--protocol':
        if (!NEMESIS_PROTOCOLS.includes(v as NemesisProtocol)) throw new Error(`--protocol must be ${NEMESIS_PROTOCOLS.join(' or ')}, got ${JSON.stringify(v)}\n${USAGE}`);
        out.protocol = v as NemesisProtocol;
        break;
      case '--quick':
        out.quick = true;
        continue;
      case '--out':
        if (v === undefined || v.startsWith('--')) throw new Error(`--out needs a directory\n${USAGE}`);
        out.out = v;
        break;
      default:
        throw new Error(`unknown argument ${JSON.stringify(flag)}\n${USAGE}`);
    }
    i++;
  }
  if (out.minutes !== undefined && out.events !== undefined) throw new Error(`give --minutes or --events, not both\n${USAGE}`);
  return { seed: out.seed ?? randomSeed(), nodes: out.nodes ?? 3, ...(out.events === undefined ? { minutes: out.minutes ?? 5 } : { events: out.events }), ...(out.out ? { out: out.out } : {}), ...(out.clients ? { clients: out.clients } : {}), ...(out.keys ? { keys: out.keys } : {}), ...(out.quick ? { quick: true } : {}), ...(out.protocol ? { protocol: out.protocol } : {}) };
}

async function main(): Promise<void> {
  let args: CliArgs;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exitCode = 2;
    return;
  }
  const started = new Date();
  const stamp = (line: string) => process.stdout.write(`[${((Date.now() - started.getTime()) / 1000).toFixed(1).padStart(7)} s] ${line}\n`);
  stamp(`nemesis: seed ${args.seed}, ${args.nodes} nodes, clients over ${args.protocol ?? 'http'}, ${args.events !== undefined ? `${args.events} events` : `${args.minutes} minutes`}`);
  try {
    const r = await runNemesis({ ...args, log: stamp });
    for (const c of r.check.checks) stamp(`${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail.split('\n')[0]}`);
    stamp(`report: ${r.reportDir}/report.md, plot: ${r.reportDir}/plot.svg`);
    if (r.check.ok) {
      stamp(`PASSED (seed ${args.seed}; replay: ${r.replay})`);
    } else {
      stamp(`FAILED: seed ${args.seed}. Replay with:\n  ${r.replay}`);
      process.exitCode = 1;
    }
  } catch (err) {
    stamp(`the harness could not run: ${(err as Error).stack ?? err}`);
    const again = args.events !== undefined ? replayCommand(args.seed, args.nodes, args.events, args.quick, args.protocol) : `npm run nemesis -- --seed ${args.seed} --nodes ${args.nodes} --minutes ${args.minutes}${args.quick ? ' --quick' : ''}${args.protocol ? ` --protocol ${args.protocol}` : ''}`;
    stamp(`seed ${args.seed}; replay with: ${again}`);
    process.exitCode = 2;
  }
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) await main();
