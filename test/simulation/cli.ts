/**
 * npm run sim -- [--seeds N] [--from S] [--seed N [--until K] [--trace [partitionId]]] [--steps N] [--hosts N] [--partitions N] [--no-shrink] [--verbose]
 *
 * --seeds N   runs seeds S .. S+N−1 (default 100 from 1) and prints a summary;
 * --seed N    runs (replays) exactly one seed and prints its figures; with --until K only its
 *             steps 0..K; with --trace [partitionId] it prints the log and the machines at the end.
 * A failure prints the seed, the violated invariant and the shortest step list the shrinker found;
 * `npm run sim -- --seed N` replays the seed's whole list. Exit status 1 on any violation, 2 on bad
 * arguments.
 */
import { defaultSimOptions, formatSteps, runSeed, runSteps, shrink, trace, type RunResult, type SimOptions } from './run.ts';
import { generateSteps } from './steps.ts';

type Args = { seeds: number; from: number; seed: number | null; shrink: boolean; verbose: boolean; trace: string | null; until: number | null; options: SimOptions };

function parse(argv: readonly string[]): Args {
  const args: Args = { seeds: 100, from: 1, seed: null, shrink: true, verbose: false, trace: null, until: null, options: { ...defaultSimOptions } };
  const positive = (flag: string, value: string | undefined, min = 1): number => {
    const n = Number(value);
    if (value === undefined || !Number.isSafeInteger(n) || n < min) throw new Error(`${flag} needs an integer ≥ ${min}, got ${value ?? 'nothing'}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const value = () => argv[++i];
    switch (flag) {
      case '--seeds':
        args.seeds = positive(flag, value());
        break;
      case '--from':
        args.from = positive(flag, value(), 0);
        break;
      case '--seed':
        args.seed = positive(flag, value(), 0);
        break;
      case '--steps':
        args.options = { ...args.options, steps: positive(flag, value(), 8) };
        break;
      case '--hosts':
        args.options = { ...args.options, hosts: positive(flag, value(), 2) };
        break;
      case '--partitions':
        args.options = { ...args.options, partitions: positive(flag, value()) };
        break;
      case '--trace': {
        // Optional partition id: only its events (and the hosts') are printed.
        const next = argv[i + 1];
        const given = next !== undefined && !next.startsWith('--');
        args.trace = given ? next : '';
        if (given) i++;
        break;
      }
      case '--until':
        args.until = positive(flag, value(), 0);
        break;
      case '--no-shrink':
        args.shrink = false;
        break;
      case '--verbose':
        args.verbose = true;
        break;
      case '--help':
        process.stdout.write('usage: npm run sim -- [--seeds N] [--from S] [--seed N [--until K] [--trace [partitionId]]] [--steps N] [--hosts N] [--partitions N] [--no-shrink] [--verbose]\n');
        process.exit(0);
        break;
      default:
        throw new Error(`unknown flag ${flag} (see --help)`);
    }
  }
  return args;
}

function figures(r: RunResult): string {
  const s = r.stats;
  return `${r.steps} steps, ${(r.virtualMs / 1000).toFixed(0)} s virtual, ${r.events} events, commands ${r.commands.accepted} accepted / ${r.commands.rejected} rejected / ${r.commands.failed} failed, HA obligations ${s.obligationsMet} met / ${s.obligationsExcused} excused, replays compared ${s.replaysCompared} (+${s.fullReplays} from scratch)`;
}

async function report(r: RunResult, args: Args): Promise<void> {
  process.stdout.write(`seed ${r.seed} FAILED after step ${r.failedAt}: invariant ${r.violations.map((v) => `${v.invariant}: ${v.message}`).join('; invariant ')}\n`);
  const steps = generateSteps(r.seed, args.options).slice(0, (r.failedAt ?? r.steps) + 1);
  if (!args.shrink) {
    process.stdout.write(`steps:\n${formatSteps(steps)}\n`);
    return;
  }
  const invariant = r.violations[0]!.invariant;
  const shrunk = await shrink(r.seed, steps, invariant, args.options);
  const again = await runSteps(r.seed, shrunk.steps, args.options);
  process.stdout.write(
    `shortest failing step list found (${shrunk.steps.length} of ${steps.length} steps, ${shrunk.runs} runs; replays: ${again.ok ? 'NO (flaky!)' : `invariant ${again.violations[0]!.invariant}`}):\n${formatSteps(shrunk.steps)}\n` +
      `replay the whole seed with: npm run sim -- --seed ${r.seed}${args.options.steps !== defaultSimOptions.steps ? ` --steps ${args.options.steps}` : ''}\n`,
  );
}

async function main(): Promise<number> {
  let args: Args;
  try {
    args = parse(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`sim: ${(error as Error).message}\n`);
    return 2;
  }
  if (args.seed !== null) {
    const started = performance.now();
    const steps = generateSteps(args.seed, args.options).slice(0, args.until === null ? undefined : args.until + 1);
    const traceFilter = args.trace;
    const r = await runSteps(args.seed, steps, args.options, traceFilter === null ? undefined : async (world) => {
      process.stdout.write(`${await trace(world, traceFilter === '' ? null : traceFilter)}\n`);
    });
    const wallMs = performance.now() - started;
    process.stdout.write(`seed ${r.seed}: ${r.ok ? 'ok' : 'FAILED'}; ${figures(r)}; ${wallMs.toFixed(0)} ms wall\n`);
    if (!r.ok) await report(r, args);
    return r.ok ? 0 : 1;
  }
  const started = performance.now();
  let failures = 0;
  let steps = 0;
  const totals = { met: 0, excused: 0, events: 0 };
  for (let seed = args.from; seed < args.from + args.seeds; seed++) {
    const r = await runSeed(seed, args.options);
    steps += r.steps;
    totals.met += r.stats.obligationsMet;
    totals.excused += r.stats.obligationsExcused;
    totals.events += r.events;
    if (args.verbose) process.stdout.write(`seed ${seed}: ${r.ok ? 'ok' : 'FAILED'}; ${figures(r)}\n`);
    if (!r.ok) {
      failures += 1;
      await report(r, args);
    }
  }
  const wallS = (performance.now() - started) / 1000;
  process.stdout.write(
    `sim: ${args.seeds} seeds × ${args.options.steps} steps (${args.options.hosts} hosts, ${args.options.partitions} partitions): ${failures} failed; ` +
      `${totals.events} events; HA obligations ${totals.met} met / ${totals.excused} excused; ${wallS.toFixed(1)} s wall, ${(steps / wallS).toFixed(0)} steps/s\n`,
  );
  return failures > 0 ? 1 : 0;
}

process.exitCode = await main();
