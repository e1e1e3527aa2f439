/**
 * The pre-copy engine (services/hypervisor/sim/migration.ts): speed, and agreement with the
 * closed form of hypervisor-models.md §4.2.
 *
 * Figures:
 *  - simulated migrations per second of a 4 GiB partition through simulateMigration, on vector P2's
 *    workload (D = 100 MB/s against B = 125 MB/s: 22 pre-copy rounds, a long migration to simulate);
 *  - baseline: closedFormPreCopy evaluations per second for the same migration, in the same run, and
 *    the ratio (the engine walks the rounds, the closed form takes a logarithm and a few powers);
 *  - the largest relative error of the engine against the closed form (transferred, downtime, total
 *    time) and the count of round-count mismatches over paramSetCount random parameter sets, drawn
 *    from a fixed seed so every run checks the same sets.
 *
 * Run it with `npx tsx test/bench/migration.bench.ts`, or from main.ts once it is registered there.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { closedFormPreCopy, defaultMigrationLimits, type MigrationLimits, simulateMigration } from '../../services/hypervisor/sim/migration.ts';

export interface MigrationBenchResult {
  readonly migrationsPerS: number;
  readonly closedFormsPerS: number;
  /** migrationsPerS / closedFormsPerS. */
  readonly ratioToClosedForm: number;
  readonly paramSetCount: number;
  /** Largest |engine − closed form| / |closed form| over transferred, downtime and total time. */
  readonly relativeErrorMax: number;
  readonly roundMismatchCount: number;
}

const paramSetCount = 1000;
const seed = 20_050_502;
/** Each speed figure is measured over at least this much wall-clock time. */
const measureMsMin = 1000;
const mibPerMB = 1e6 / 2 ** 20;

/** mulberry32: a seeded generator, so the parameter sets are the same on every run. */
function seededRandom(seedValue: number): () => number {
  let state = seedValue >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 0x1_0000_0000;
  };
}

/** Calls per second of run; the sum of its results is kept so no call can be optimised away. */
function perSecond(run: () => number): { perS: number; sink: number } {
  let sink = 0;
  for (let i = 0; i < 1000; i++) sink += run(); // warm-up, so the JIT has compiled the hot path
  let count = 0;
  const started = performance.now();
  let elapsedMs = 0;
  while (elapsedMs < measureMsMin) {
    for (let i = 0; i < 500; i++) sink += run();
    count += 500;
    elapsedMs = performance.now() - started;
  }
  return { perS: (count / elapsedMs) * 1000, sink };
}

function relativeError(actual: number, expected: number): number {
  if (expected === 0) return Math.abs(actual);
  return Math.abs(actual - expected) / Math.abs(expected);
}

/** Engine vs closed form over random constant-rate workloads (no management timeout interferes). */
function agreement(): { relativeErrorMax: number; roundMismatchCount: number } {
  const random = seededRandom(seed);
  const between = (min: number, max: number) => min + random() * (max - min);
  let relativeErrorMax = 0;
  let roundMismatchCount = 0;
  for (let i = 0; i < paramSetCount; i++) {
    const memoryMiB = Math.round(between(64, 65_536));
    const bandwidthMiBps = between(10, 10_000);
    const dirtyMiBps = between(0, 1.5) * bandwidthMiBps;
    const workingSetMiB = random() < 0.5 ? null : between(0.01, 1.2) * memoryMiB;
    const limits: MigrationLimits = {
      ...defaultMigrationLimits,
      bandwidthMiBps,
      downtimeMsMax: Math.round(between(0, 2000)),
      resumeCostMs: Math.round(between(0, 100)),
      roundsMax: 1 + Math.floor(random() * 60),
      onRoundLimit: random() < 0.5 ? 'force-switchover' : 'fail',
      completionTimeoutMsPerGiB: 86_400_000,
      progressTimeoutMs: 2_592_000_000,
    };
    const outcome = simulateMigration({ memoryMiB, dirtyMiBps, workingSetMiB, limits });
    const model = closedFormPreCopy({ memoryMiB, dirtyMiBps, workingSetMiB, ...limits });
    if (outcome.preCopyRounds !== model.preCopyRounds) roundMismatchCount += 1;
    const errors =
      outcome.downtimeMs === null
        ? [
            relativeError(outcome.transferredMiBTotal, model.preCopyMiBTotal),
            relativeError(outcome.elapsedMsTotal, model.preCopyMs),
          ]
        : [
            relativeError(outcome.transferredMiBTotal, model.transferredMiBTotal),
            relativeError(outcome.downtimeMs, model.downtimeMs),
            relativeError(outcome.elapsedMsTotal, model.elapsedMsTotal),
          ];
    relativeErrorMax = Math.max(relativeErrorMax, ...errors);
  }
  return { relativeErrorMax, roundMismatchCount };
}

export async function benchMigrationEngine(): Promise<MigrationBenchResult> {
  const limits: MigrationLimits = { ...defaultMigrationLimits, bandwidthMiBps: 125 * mibPerMB };
  const input = { memoryMiB: 4096, dirtyMiBps: 100 * mibPerMB, workingSetMiB: null, limits };
  const closedFormInput = { ...input, ...limits };
  const rounds = simulateMigration(input).preCopyRounds;
  const migrationsPerS = perSecond(() => simulateMigration(input).elapsedMsTotal).perS;
  const closedFormsPerS = perSecond(() => closedFormPreCopy(closedFormInput).elapsedMsTotal).perS;
  const { relativeErrorMax, roundMismatchCount } = agreement();
  const result: MigrationBenchResult = {
    migrationsPerS,
    closedFormsPerS,
    ratioToClosedForm: migrationsPerS / closedFormsPerS,
    paramSetCount,
    relativeErrorMax,
    roundMismatchCount,
  };
  console.log(
    `migration.engine: ${migrationsPerS.toFixed(0)} simulated migrations/s of a 4 GiB partition (${rounds} pre-copy rounds each); ` +
      `closed form ${closedFormsPerS.toFixed(0)}/s; engine ÷ closed form = ${result.ratioToClosedForm.toFixed(3)}`,
  );
  console.log(
    `migration.engine: vs the closed form over ${paramSetCount} random parameter sets (seed ${seed}): ` +
      `max relative error ${relativeErrorMax.toExponential(2)}, round-count mismatches ${roundMismatchCount}`,
  );
  return result;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  await benchMigrationEngine();
}
