import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type ClosedFormInput,
  closedFormPreCopy,
  createPreCopy,
  defaultMigrationLimits,
  type MigrationLimits,
  type MigrationOutcome,
  type PreCopyInput,
  type RoundResult,
  simulateMigration,
  validateMigrationLimits,
} from '../../services/hypervisor/sim/migration.ts';

// The reference's units (hypervisor-models.md §4.2): GiB = 2^30 B, GB/s = 10^9 B/s, MB = 10^6 B,
// Mbit/s = 10^6 bit/s. The engine works in MiB (2^20 B) and MiB/s; convert explicitly.
const mibPerGB = 1e9 / 2 ** 20;
const mibPerMB = 1e6 / 2 ** 20;
const mibPsPerMbitPs = 1e6 / 8 / 2 ** 20;

/** No management timeout interferes: for comparisons with the closed form, which has none. */
const noTimeouts = { completionTimeoutMsPerGiB: 86_400_000, progressTimeoutMs: 2_592_000_000 } as const;

function limitsWith(overrides: Partial<MigrationLimits>): MigrationLimits {
  return { ...defaultMigrationLimits, ...overrides };
}

function expectWithin(actual: number, expected: number, relative: number, absolute = 1e-9): void {
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(Math.max(relative * Math.abs(expected), absolute));
}

interface Case {
  readonly name: string;
  readonly memoryMiB: number;
  readonly dirtyMiBps: number;
  readonly workingSetMiB: number | null;
  readonly limits: MigrationLimits;
}

function closedFormOf(c: Case): ReturnType<typeof closedFormPreCopy> {
  const input: ClosedFormInput = {
    memoryMiB: c.memoryMiB,
    dirtyMiBps: c.dirtyMiBps,
    bandwidthMiBps: c.limits.bandwidthMiBps,
    downtimeMsMax: c.limits.downtimeMsMax,
    resumeCostMs: c.limits.resumeCostMs,
    roundsMax: c.limits.roundsMax,
    workingSetMiB: c.workingSetMiB,
  };
  return closedFormPreCopy(input);
}

/** Engine vs §4.2: rounds exactly; transferred, downtime and total time within 1 %. */
function expectAgreesWithClosedForm(c: Case, outcome: MigrationOutcome, tolerance = 0.01): void {
  const model = closedFormOf(c);
  expect(outcome.preCopyRounds).toBe(model.preCopyRounds);
  if (model.roundLimitHit && c.limits.onRoundLimit === 'fail') {
    expect(outcome.outcome).toBe('failed');
    expectWithin(outcome.transferredMiBTotal, model.preCopyMiBTotal, tolerance);
    expectWithin(outcome.elapsedMsTotal, model.preCopyMs, tolerance);
    return;
  }
  expect(outcome.outcome).toBe('completed');
  expectWithin(outcome.transferredMiBTotal, model.transferredMiBTotal, tolerance);
  expectWithin(outcome.downtimeMs ?? Number.NaN, model.downtimeMs, tolerance);
  expectWithin(outcome.elapsedMsTotal, model.elapsedMsTotal, tolerance);
}

describe('pre-copy engine vs the reference vectors (hypervisor-models.md §4.2)', () => {
  it('P1: 8 GiB, D = 0.25 GB/s, B = 1.25 GB/s → 2 rounds, 343.6 MB stop-and-copy, 0.275 s down, 8.52 s, 1.24 × M', () => {
    // The table's downtimes are V_n / B alone (T_res = 0): 343.6 MB / 1.25 GB/s = 0.2749 s.
    const outcome = simulateMigration({
      memoryMiB: 8 * 1024,
      dirtyMiBps: 0.25 * mibPerGB,
      workingSetMiB: null,
      limits: limitsWith({ bandwidthMiBps: 1.25 * mibPerGB, resumeCostMs: 0 }),
    });
    expect(outcome.outcome).toBe('completed');
    expect(outcome.preCopyRounds).toBe(2);
    expect(outcome.rounds.map((r) => Number((r.durationMs / 1000).toFixed(3)))).toEqual([6.872, 1.374]);
    const end = outcome.end;
    if (end.kind !== 'switchover') throw new Error('expected a switch-over');
    expect(end.cause).toBe('converged');
    expectWithin(end.finalCopyMiB, 343.6 * mibPerMB, 0.001);
    expectWithin(end.downtimeMs, 275, 0.01);
    expectWithin(outcome.elapsedMsTotal, 8520, 0.01);
    expectWithin(outcome.transferredMiBTotal / (8 * 1024), 1.24, 0.01);
  });

  it('P1 with the default 9 ms resume cost: downtime = final copy + 9 ms', () => {
    const outcome = simulateMigration({
      memoryMiB: 8 * 1024,
      dirtyMiBps: 0.25 * mibPerGB,
      workingSetMiB: null,
      limits: limitsWith({ bandwidthMiBps: 1.25 * mibPerGB }),
    });
    expectWithin(outcome.downtimeMs ?? 0, 274.878 + 9, 0.001);
  });

  it('P2: 4 GiB, D = 100 MB/s, B = 125 MB/s (λ = 0.8) → 22 rounds, 31.7 MB, 0.254 s, 170.8 s, 4.97 × M', () => {
    const outcome = simulateMigration({
      memoryMiB: 4096,
      dirtyMiBps: 100 * mibPerMB,
      workingSetMiB: null,
      limits: limitsWith({ bandwidthMiBps: 125 * mibPerMB, resumeCostMs: 0 }),
    });
    expect(outcome.preCopyRounds).toBe(22);
    if (outcome.end.kind !== 'switchover') throw new Error('expected a switch-over');
    expectWithin(outcome.end.finalCopyMiB, 31.7 * mibPerMB, 0.01);
    expectWithin(outcome.end.downtimeMs, 254, 0.01);
    expectWithin(outcome.elapsedMsTotal, 170_800, 0.01);
    expectWithin(outcome.transferredMiBTotal / 4096, 4.97, 0.01);
  });

  it('P3: same with Xen caps (≤ 30 rounds, ≤ 3 × M) → forced after 5 rounds, 1.407 GB, 11.26 s down, 126.8 s, 3.69 × M', () => {
    const outcome = simulateMigration({
      memoryMiB: 4096,
      dirtyMiBps: 100 * mibPerMB,
      workingSetMiB: null,
      limits: limitsWith({ bandwidthMiBps: 125 * mibPerMB, resumeCostMs: 0, transferredFactorMax: 3 }),
    });
    expect(outcome.preCopyRounds).toBe(5);
    if (outcome.end.kind !== 'switchover') throw new Error('expected a switch-over');
    expect(outcome.end.cause).toBe('transfer-limit');
    expectWithin(outcome.end.finalCopyMiB, 1407e6 / 2 ** 20, 0.01);
    expectWithin(outcome.end.downtimeMs, 11_260, 0.01);
    expectWithin(outcome.elapsedMsTotal, 126_800, 0.01);
    expectWithin(outcome.transferredMiBTotal / 4096, 3.69, 0.01);
  });

  it('P4: 4 GiB, D = 200 MB/s, B = 125 MB/s, W = 1.5 GiB, Xen caps → 7 rounds, W = 1.61 GB, 12.88 s down, 124.6 s, 3.63 × M', () => {
    const outcome = simulateMigration({
      memoryMiB: 4096,
      dirtyMiBps: 200 * mibPerMB,
      workingSetMiB: 1536,
      limits: limitsWith({ bandwidthMiBps: 125 * mibPerMB, resumeCostMs: 0, transferredFactorMax: 3 }),
    });
    expect(outcome.preCopyRounds).toBe(7);
    if (outcome.end.kind !== 'switchover') throw new Error('expected a switch-over');
    expect(outcome.end.finalCopyMiB).toBe(1536);
    expectWithin(outcome.end.downtimeMs, 12_880, 0.01);
    expectWithin(outcome.elapsedMsTotal, 124_600, 0.01);
    expectWithin(outcome.transferredMiBTotal / 4096, 3.63, 0.01);
    expect(outcome.end.reason).toMatch(/does not converge/);
  });

  it("P4': QEMU rule without auto-converge never completes; KubeVirt's progress timeout (150 s without a new low) aborts", () => {
    const outcome = simulateMigration({
      memoryMiB: 4096,
      dirtyMiBps: 200 * mibPerMB,
      workingSetMiB: 1536,
      limits: limitsWith({ bandwidthMiBps: 125 * mibPerMB }),
    });
    const end = outcome.end;
    if (end.kind !== 'failed') throw new Error('expected a failure');
    expect(end.cause).toBe('progress-timeout');
    expect(end.remainingMiB).toBe(1536);
    // The last new low (W) came at the end of round 1 (34.36 s); rounds then last W / B = 12.88 s;
    // the first sync more than 150 s later is the 13th.
    expect(end.preCopyRounds).toBe(13);
    expectWithin(end.elapsedMsTotal, 34_359.7 + 12 * 12_884.9, 0.0001);
    expect(end.reason).toMatch(/progressTimeoutMs 150000/);
    expect(end.reason).toMatch(/does not converge/);
  });

  it('P5: 512 MB by pure stop-and-copy (roundsMax 1) at 128 / 256 / 512 Mbit/s → 32 / 16 / 8 s down (Clark §4)', () => {
    for (const [mbitPs, seconds] of [
      [128, 32],
      [256, 16],
      [512, 8],
    ] as const) {
      const outcome = simulateMigration({
        memoryMiB: 512 * mibPerMB,
        dirtyMiBps: 10,
        workingSetMiB: null,
        limits: limitsWith({ bandwidthMiBps: mbitPs * mibPsPerMbitPs, roundsMax: 1, resumeCostMs: 0, ...noTimeouts }),
      });
      expect(outcome.preCopyRounds).toBe(0);
      expect(outcome.rounds).toEqual([]);
      expectWithin(outcome.downtimeMs ?? 0, seconds * 1000, 1e-9);
    }
  });
});

describe('pre-copy engine vs the closed form (table)', () => {
  const cases: Case[] = [
    {
      name: 'converging, λ = 0.2 (P1)',
      memoryMiB: 8192,
      dirtyMiBps: 0.25 * mibPerGB,
      workingSetMiB: null,
      limits: limitsWith({ bandwidthMiBps: 1.25 * mibPerGB }),
    },
    {
      name: 'converging, λ = 0.8 (P2)',
      memoryMiB: 4096,
      dirtyMiBps: 100 * mibPerMB,
      workingSetMiB: null,
      limits: limitsWith({ bandwidthMiBps: 125 * mibPerMB }),
    },
    {
      name: 'barely converging, λ = 0.99 (260 rounds)',
      memoryMiB: 4096,
      dirtyMiBps: 990,
      workingSetMiB: null,
      limits: limitsWith({ bandwidthMiBps: 1000, roundsMax: 1000 }),
    },
    {
      name: 'converging but too slowly for roundsMax 10, forced',
      memoryMiB: 4096,
      dirtyMiBps: 950,
      workingSetMiB: null,
      limits: limitsWith({ bandwidthMiBps: 1000, roundsMax: 10 }),
    },
    {
      name: 'converging but too slowly for roundsMax 10, failed',
      memoryMiB: 4096,
      dirtyMiBps: 950,
      workingSetMiB: null,
      limits: limitsWith({ bandwidthMiBps: 1000, roundsMax: 10, onRoundLimit: 'fail' }),
    },
    {
      name: 'working set below λM, λ = 0.5: a round at W, then geometric',
      memoryMiB: 16_384,
      dirtyMiBps: 500,
      workingSetMiB: 2048,
      limits: limitsWith({ bandwidthMiBps: 1000 }),
    },
    {
      name: 'non-converging D = B, forced at roundsMax',
      memoryMiB: 2048,
      dirtyMiBps: 1000,
      workingSetMiB: null,
      limits: limitsWith({ bandwidthMiBps: 1000, ...noTimeouts }),
    },
    {
      name: 'non-converging D = 1.5 B, failed at roundsMax',
      memoryMiB: 2048,
      dirtyMiBps: 1500,
      workingSetMiB: null,
      limits: limitsWith({ bandwidthMiBps: 1000, onRoundLimit: 'fail', ...noTimeouts }),
    },
    {
      name: 'fits at once: stop-and-copy with no pre-copy round',
      memoryMiB: 256,
      dirtyMiBps: 100,
      workingSetMiB: null,
      limits: limitsWith({ bandwidthMiBps: 1000 }),
    },
    {
      name: 'idle guest (D = 0): one round, then nothing left',
      memoryMiB: 4096,
      dirtyMiBps: 0,
      workingSetMiB: null,
      limits: limitsWith({ bandwidthMiBps: 1000 }),
    },
    {
      name: 'exactly on the threshold: 800 MiB × 0.5³ = 100 MiB = 100 MiB/s × 1 s',
      memoryMiB: 800,
      dirtyMiBps: 50,
      workingSetMiB: null,
      limits: limitsWith({ bandwidthMiBps: 100, downtimeMsMax: 1000 }),
    },
  ];

  it.each(cases)('$name', (c) => {
    const outcome = simulateMigration(c);
    expectAgreesWithClosedForm(c, outcome);
  });

  it('the threshold case switches over after exactly 3 rounds in both', () => {
    const c = cases.at(-1)!;
    expect(simulateMigration(c).preCopyRounds).toBe(3);
    expect(closedFormOf(c).preCopyRounds).toBe(3);
  });

  it('a non-converging workload (D >= B) ends by the policy, with a reason that says it does not converge', () => {
    for (const onRoundLimit of ['force-switchover', 'fail'] as const) {
      const outcome = simulateMigration({
        memoryMiB: 2048,
        dirtyMiBps: 1500,
        workingSetMiB: null,
        limits: limitsWith({ bandwidthMiBps: 1000, onRoundLimit, ...noTimeouts }),
      });
      expect(outcome.end.kind).toBe(onRoundLimit === 'fail' ? 'failed' : 'switchover');
      if (outcome.end.kind === 'failed') expect(outcome.end.cause).toBe('round-limit');
      else expect(outcome.end.cause).toBe('round-limit');
      expect(outcome.end.reason).toMatch(/roundsMax 30/);
      expect(outcome.end.reason).toMatch(/does not converge: dirty rate 1500 MiB\/s >= bandwidth 1000 MiB\/s/);
    }
  });

  it('property: for random constant-rate workloads the engine equals the closed form (rounds exact, the rest within 1 %)', () => {
    fc.assert(
      fc.property(
        fc.record({
          memoryMiB: fc.integer({ min: 64, max: 65_536 }),
          bandwidthMiBps: fc.double({ min: 10, max: 10_000, noNaN: true }),
          lambda: fc.double({ min: 0, max: 1.5, noNaN: true }),
          workingSetShare: fc.option(fc.double({ min: 0.01, max: 1.2, noNaN: true }), { nil: null }),
          downtimeMsMax: fc.integer({ min: 0, max: 2000 }),
          resumeCostMs: fc.integer({ min: 0, max: 100 }),
          roundsMax: fc.integer({ min: 1, max: 60 }),
          onRoundLimit: fc.constantFrom('force-switchover' as const, 'fail' as const),
        }),
        (p) => {
          const c: Case = {
            name: 'random',
            memoryMiB: p.memoryMiB,
            dirtyMiBps: p.lambda * p.bandwidthMiBps,
            workingSetMiB: p.workingSetShare === null ? null : p.workingSetShare * p.memoryMiB,
            limits: limitsWith({
              bandwidthMiBps: p.bandwidthMiBps,
              downtimeMsMax: p.downtimeMsMax,
              resumeCostMs: p.resumeCostMs,
              roundsMax: p.roundsMax,
              onRoundLimit: p.onRoundLimit,
              ...noTimeouts,
            }),
          };
          expectAgreesWithClosedForm(c, simulateMigration(c));
        },
      ),
      { numRuns: 500, seed: 20_050_502 },
    );
  });
});

describe('pre-copy properties (hypervisor-models.md §4.3)', () => {
  const arbitraryConverging = fc.record({
    memoryMiB: fc.integer({ min: 64, max: 32_768 }),
    bandwidthMiBps: fc.double({ min: 10, max: 5000, noNaN: true }),
    lambda: fc.double({ min: 0, max: 0.95, noNaN: true }),
    downtimeMsMax: fc.integer({ min: 1, max: 2000 }),
    resumeCostMs: fc.integer({ min: 0, max: 100 }),
  });

  it('with λ < 1 and the QEMU rule: downtime <= downtimeMsMax + resume cost, total data >= M, expected downtime = remaining / B', () => {
    fc.assert(
      fc.property(arbitraryConverging, (p) => {
        const outcome = simulateMigration({
          memoryMiB: p.memoryMiB,
          dirtyMiBps: p.lambda * p.bandwidthMiBps,
          workingSetMiB: null,
          limits: limitsWith({
            bandwidthMiBps: p.bandwidthMiBps,
            downtimeMsMax: p.downtimeMsMax,
            resumeCostMs: p.resumeCostMs,
            roundsMax: 1000,
            ...noTimeouts,
          }),
        });
        if (outcome.end.kind !== 'switchover') throw new Error(outcome.end.reason);
        expect(outcome.end.cause).toBe('converged');
        expect(outcome.end.downtimeMs).toBeLessThanOrEqual(p.downtimeMsMax + p.resumeCostMs + 1e-6);
        expect(outcome.transferredMiBTotal).toBeGreaterThanOrEqual(p.memoryMiB);
        for (const r of outcome.rounds) expectWithin(r.expectedDowntimeMs, (r.remainingMiB / p.bandwidthMiBps) * 1000, 1e-12);
      }),
      { numRuns: 300, seed: 4_3 },
    );
  });

  it('with a fixed number of rounds (forced at roundsMax), downtime grows with D and shrinks with B', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 256, max: 16_384 }),
        fc.integer({ min: 1, max: 6 }),
        fc.double({ min: 100, max: 2000, noNaN: true }),
        fc.double({ min: 100, max: 2000, noNaN: true }),
        fc.double({ min: 100, max: 2000, noNaN: true }),
        fc.double({ min: 100, max: 2000, noNaN: true }),
        (memoryMiB, roundsMax, d1, d2, b1, b2) => {
          // downtimeMsMax 0: nothing but an empty dirty set fits, so every run has roundsMax − 1 rounds
          // (λ >= 0.1 and at most 5 rounds keep every set far above the byte under which sizes are equal).
          const downtime = (dirtyMiBps: number, bandwidthMiBps: number): number =>
            simulateMigration({
              memoryMiB,
              dirtyMiBps,
              workingSetMiB: null,
              limits: limitsWith({ bandwidthMiBps, downtimeMsMax: 0, roundsMax, ...noTimeouts }),
            }).downtimeMs ?? Number.NaN;
          const [dLow, dHigh] = d1 <= d2 ? [d1, d2] : [d2, d1];
          const [bLow, bHigh] = b1 <= b2 ? [b1, b2] : [b2, b1];
          expect(downtime(dLow, 1000)).toBeLessThanOrEqual(downtime(dHigh, 1000) * (1 + 1e-12));
          expect(downtime(500, bHigh)).toBeLessThanOrEqual(downtime(500, bLow) * (1 + 1e-12));
        },
      ),
      { numRuns: 200, seed: 7 },
    );
  });

  it('under the threshold rule downtime is NOT monotone in D (§4.3 claims it is): one more round can shrink the final copy', () => {
    // M = 1000 MiB, B = 100 MiB/s, limit 1 s → threshold 100 MiB. λ = 0.31: V_2 = 96.1 fits (961 ms).
    // λ = 0.32: V_2 = 102.4 does not, V_3 = 32.8 does (328 ms): a higher dirty rate, a shorter downtime.
    const downtime = (dirtyMiBps: number) =>
      simulateMigration({
        memoryMiB: 1000,
        dirtyMiBps,
        workingSetMiB: null,
        limits: limitsWith({ bandwidthMiBps: 100, downtimeMsMax: 1000, resumeCostMs: 0 }),
      }).downtimeMs ?? Number.NaN;
    expectWithin(downtime(31), 961, 0.001);
    expectWithin(downtime(32), 327.68, 0.001);
  });

  it('is deterministic: the same input gives the same rounds and end', () => {
    const input: PreCopyInput = {
      memoryMiB: 4096,
      dirtyMiBps: 2 * mibPerGB,
      workingSetMiB: null,
      limits: limitsWith({ bandwidthMiBps: 1.25 * mibPerGB, autoConverge: true }),
    };
    expect(simulateMigration(input)).toEqual(simulateMigration(input));
  });
});

describe('writable working set', () => {
  it('with D >= B the dirty set plateaus at W; above the threshold pre-copy cannot converge and ends by the policy', () => {
    const outcome = simulateMigration({
      memoryMiB: 8192,
      dirtyMiBps: 2000,
      workingSetMiB: 1024,
      limits: limitsWith({ bandwidthMiBps: 1000, roundsMax: 8, onRoundLimit: 'fail', ...noTimeouts }),
    });
    expect(outcome.rounds.map((r) => r.sentMiB)).toEqual([8192, 1024, 1024, 1024, 1024, 1024, 1024]);
    expect(outcome.rounds.every((r) => r.remainingMiB === 1024)).toBe(true);
    if (outcome.end.kind !== 'failed') throw new Error('expected a failure');
    expect(outcome.end.cause).toBe('round-limit');
    expect(outcome.end.reason).toMatch(/dirty set stays at 1024 MiB/);
  });

  it('with D >= B and W within the downtime limit, the floor is sent in the stop-and-copy', () => {
    const outcome = simulateMigration({
      memoryMiB: 8192,
      dirtyMiBps: 5000,
      workingSetMiB: 200,
      limits: limitsWith({ bandwidthMiBps: 1000 }),
    });
    expect(outcome.preCopyRounds).toBe(1);
    if (outcome.end.kind !== 'switchover') throw new Error('expected a switch-over');
    expect(outcome.end.cause).toBe('converged');
    expect(outcome.end.finalCopyMiB).toBe(200);
    expectWithin(outcome.end.downtimeMs, 200 + 9, 1e-12);
  });

  it('a working set larger than memory is bounded by memory', () => {
    const base: PreCopyInput = {
      memoryMiB: 2048,
      dirtyMiBps: 3000,
      workingSetMiB: null,
      limits: limitsWith({ bandwidthMiBps: 1000, roundsMax: 5, ...noTimeouts }),
    };
    expect(simulateMigration({ ...base, workingSetMiB: 1_000_000 })).toEqual(simulateMigration(base));
  });
});

describe('round limit policies', () => {
  const nonConverging = (onRoundLimit: MigrationLimits['onRoundLimit']): MigrationOutcome =>
    simulateMigration({
      memoryMiB: 4096,
      dirtyMiBps: 2000,
      workingSetMiB: null,
      limits: limitsWith({ bandwidthMiBps: 1000, roundsMax: 5, onRoundLimit, ...noTimeouts }),
    });

  it("'force-switchover' stops and copies what remains after roundsMax − 1 pre-copy rounds, however long that takes", () => {
    const outcome = nonConverging('force-switchover');
    expect(outcome.outcome).toBe('completed');
    if (outcome.end.kind !== 'switchover') throw new Error('expected a switch-over');
    expect(outcome.end.round).toBe(5);
    expect(outcome.end.cause).toBe('round-limit');
    expect(outcome.end.finalCopyMiB).toBe(4096);
    expectWithin(outcome.end.downtimeMs, 4096 + 9, 1e-12);
    expect(outcome.transferredMiBTotal).toBe(5 * 4096);
  });

  it("'fail' abandons the migration at the same point; the partition never paused", () => {
    const outcome = nonConverging('fail');
    expect(outcome.outcome).toBe('failed');
    expect(outcome.downtimeMs).toBeNull();
    if (outcome.end.kind !== 'failed') throw new Error('expected a failure');
    expect(outcome.end.preCopyRounds).toBe(4);
    expect(outcome.end.remainingMiB).toBe(4096);
    expect(outcome.transferredMiBTotal).toBe(4 * 4096);
    expect(outcome.end.reason).toMatch(/onRoundLimit is 'fail'/);
  });

  it('the transfer cap (Xen max factor) follows the same policy', () => {
    const outcome = simulateMigration({
      memoryMiB: 4096,
      dirtyMiBps: 2000,
      workingSetMiB: null,
      limits: limitsWith({ bandwidthMiBps: 1000, transferredFactorMax: 2.5, onRoundLimit: 'fail', ...noTimeouts }),
    });
    if (outcome.end.kind !== 'failed') throw new Error('expected a failure');
    expect(outcome.end.cause).toBe('transfer-limit');
    expect(outcome.end.preCopyRounds).toBe(3);
    expect(outcome.end.reason).toMatch(/transferredFactorMax 2.5/);
  });
});

describe('management timeouts (KubeVirt)', () => {
  // P4': pre-copy plateaus at W = 1.5 GiB above the 35.8 MiB threshold.
  const stuck = (overrides: Partial<MigrationLimits>): MigrationOutcome =>
    simulateMigration({
      memoryMiB: 4096,
      dirtyMiBps: 200 * mibPerMB,
      workingSetMiB: 1536,
      limits: limitsWith({ bandwidthMiBps: 125 * mibPerMB, ...overrides }),
    });

  it('completion timeout: 150 s/GiB × 4 GiB = 600 s, cut at the instant, naming the limit and the figures', () => {
    const outcome = stuck({ roundsMax: 1000, progressTimeoutMs: 2_592_000_000 });
    const end = outcome.end;
    if (end.kind !== 'failed') throw new Error('expected a failure');
    expect(end.cause).toBe('completion-timeout');
    expect(end.elapsedMsTotal).toBe(600_000);
    // Sending never paused, so everything sent is bandwidth × time.
    expectWithin(end.transferredMiBTotal, 125 * mibPerMB * 600, 1e-9);
    expect(end.reason).toMatch(/completion timeout: 600000 ms for 4 GiB \(completionTimeoutMsPerGiB 150000\)/);
    expect(end.reason).toMatch(/does not converge/);
  });

  it('completion timeout scales with memory and its per-GiB setting', () => {
    const outcome = stuck({ roundsMax: 1000, progressTimeoutMs: 2_592_000_000, completionTimeoutMsPerGiB: 50_000 });
    expect(outcome.end.kind === 'failed' && outcome.end.cause).toBe('completion-timeout');
    expect(outcome.elapsedMsTotal).toBe(200_000);
  });

  it('progress timeout: fails at the first sync more than progressTimeoutMs after the last new low of remaining', () => {
    const outcome = stuck({ progressTimeoutMs: 60_000 });
    const end = outcome.end;
    if (end.kind !== 'failed') throw new Error('expected a failure');
    expect(end.cause).toBe('progress-timeout');
    // Low at 34.36 s (round 1); 12.88 s rounds; 34.36 + 5 × 12.88 = 98.8 s is the first sync past 94.36 s.
    expect(end.preCopyRounds).toBe(6);
    expect(end.reason).toMatch(/has not gone below 1536 MiB for 64425 ms \(progressTimeoutMs 60000\)/);
  });

  it('a long first round is not cut by the progress timeout, since remaining falls at its sync', () => {
    // 64 GiB at 128 MiB/s: round 1 takes 512 s, far past 150 s; λ = 0.1 converges.
    const outcome = simulateMigration({
      memoryMiB: 65_536,
      dirtyMiBps: 12.8,
      workingSetMiB: null,
      limits: limitsWith({}),
    });
    expect(outcome.outcome).toBe('completed');
  });

  it('a converging migration keeps making progress and is not aborted', () => {
    const outcome = simulateMigration({
      memoryMiB: 4096,
      dirtyMiBps: 100 * mibPerMB,
      workingSetMiB: null,
      limits: limitsWith({ bandwidthMiBps: 125 * mibPerMB }),
    });
    expect(outcome.outcome).toBe('completed');
  });
});

describe('auto-converge (QEMU)', () => {
  // The reference's example ratio (D = 200 MB/s against B = 125 MB/s needs a throttle > 37.5 %),
  // scaled to 10 GbE so rounds last seconds and no timeout interferes.
  const input = (autoConverge: boolean, overrides: Partial<MigrationLimits> = {}): PreCopyInput => ({
    memoryMiB: 4096,
    dirtyMiBps: 2 * mibPerGB,
    workingSetMiB: null,
    limits: limitsWith({ bandwidthMiBps: 1.25 * mibPerGB, autoConverge, ...overrides }),
  });

  it('converges a workload that does not converge without it', () => {
    const without = simulateMigration(input(false, { onRoundLimit: 'fail' }));
    expect(without.outcome).toBe('failed');
    expect(without.end.reason).toMatch(/does not converge/);

    const withIt = simulateMigration(input(true, { onRoundLimit: 'fail' }));
    expect(withIt.outcome).toBe('completed');
    if (withIt.end.kind !== 'switchover') throw new Error('expected a switch-over');
    expect(withIt.end.cause).toBe('converged');
    expect(withIt.end.downtimeMs).toBeLessThanOrEqual(300 + 9);
  });

  it('steps 20, 30, 40 … every second "too fast" period, and the dirty rate falls by the throttle', () => {
    const outcome = simulateMigration(input(true));
    const throttles = outcome.rounds.map((r) => r.throttlePctInRound);
    expect(throttles).toEqual([0, 0, 20, 20, 30, 30, 40, 40, 50, 50, 60, 60, 70, 70]);
    for (const r of outcome.rounds) expectWithin(r.dirtyRateMiBps, 2 * mibPerGB * (1 - r.throttlePctInRound / 100), 1e-12);
    // Once dirtied <= 50 % of sent (λ = 0.48 at 70 %), the throttle stops rising.
    expect(outcome.end.throttlePct).toBe(70);
  });

  it('reports the throttle in force from the sync on (to apply now), which the next round runs under', () => {
    const rounds = simulateMigration(input(true)).rounds;
    for (let i = 1; i < rounds.length; i++) expect(rounds[i]!.throttlePctInRound).toBe(rounds[i - 1]!.throttlePct);
  });

  it('stops at autoConvergeMaxPct', () => {
    const outcome = simulateMigration(input(true, { autoConvergeMaxPct: 35, onRoundLimit: 'fail', ...noTimeouts }));
    expect(Math.max(...outcome.rounds.map((r) => r.throttlePct))).toBe(35);
    expect(outcome.rounds.map((r) => r.throttlePctInRound)).toContain(35);
  });

  it('steps at most once per two evaluation periods of more than 1 s, even with short rounds', () => {
    // W = 512 MiB at 10 GiB/s: rounds of 50 ms; D = 2 B keeps the set at W until the throttle passes 50 %.
    const outcome = simulateMigration({
      memoryMiB: 1024,
      dirtyMiBps: 20 * 1024,
      workingSetMiB: 512,
      limits: limitsWith({ bandwidthMiBps: 10 * 1024, downtimeMsMax: 1, autoConverge: true, roundsMax: 1000, ...noTimeouts }),
    });
    const stepTimesMs = outcome.rounds.filter((r) => r.throttlePct !== r.throttlePctInRound).map((r) => r.elapsedMsTotal);
    expect(stepTimesMs.length).toBeGreaterThan(1);
    expect(stepTimesMs[0]!).toBeGreaterThan(2000);
    for (let i = 1; i < stepTimesMs.length; i++) expect(stepTimesMs[i]! - stepTimesMs[i - 1]!).toBeGreaterThan(2000);
  });

  it('is off by default: no throttle', () => {
    expect(simulateMigration(input(false)).rounds.every((r) => r.throttlePct === 0 && r.throttlePctInRound === 0)).toBe(true);
  });
});

describe('live driving', () => {
  const live = () =>
    createPreCopy({
      memoryMiB: 4096,
      dirtyMiBps: 500,
      workingSetMiB: null,
      limits: limitsWith({ bandwidthMiBps: 1000 }),
    });

  it('setDirtyRate applies from the next round', () => {
    const engine = live();
    const first = engine.nextRound();
    expect(first.kind === 'round' && first.remainingMiB).toBe(2048);
    engine.setDirtyRate(0);
    const second = engine.nextRound() as RoundResult;
    expect(second.sentMiB).toBe(2048);
    expect(second.dirtiedMiB).toBe(0);
    const end = engine.nextRound();
    expect(end.kind === 'switchover' && end.finalCopyMiB).toBe(0);
  });

  it('setBandwidth applies from the next step, including the switch-over threshold', () => {
    const engine = live();
    engine.nextRound(); // 2048 MiB remain; threshold 300 MiB at 1000 MiB/s
    engine.setBandwidth(10_000); // threshold 3000 MiB
    const end = engine.nextRound();
    if (end.kind !== 'switchover') throw new Error('expected a switch-over');
    expect(end.preCopyRounds).toBe(1);
    expectWithin(end.downtimeMs, 204.8 + 9, 1e-12);
  });

  it('cancel ends the migration at the round boundary; later calls return the same end', () => {
    const engine = live();
    engine.nextRound();
    const end = engine.cancel();
    expect(end).toMatchObject({ kind: 'failed', cause: 'cancelled', preCopyRounds: 1, remainingMiB: 2048, transferredMiBTotal: 4096 });
    expect(engine.nextRound()).toBe(end);
    expect(engine.cancel()).toBe(end);
    engine.setDirtyRate(1); // ignored after the end
    expect(engine.nextRound()).toBe(end);
  });

  it('cancel after the switch-over returns the switch-over', () => {
    const engine = live();
    let step = engine.nextRound();
    while (step.kind === 'round') step = engine.nextRound();
    expect(engine.cancel()).toBe(step);
  });

  it('rejects invalid live changes, naming the field', () => {
    const engine = live();
    expect(() => engine.setDirtyRate(-1)).toThrow(/dirtyMiBps/);
    expect(() => engine.setDirtyRate(Number.NaN)).toThrow(RangeError);
    expect(() => engine.setBandwidth(0)).toThrow(/bandwidthMiBps/);
  });
});

describe('input validation', () => {
  it('accepts the defaults', () => {
    expect(validateMigrationLimits(defaultMigrationLimits)).toBeNull();
    expect(validateMigrationLimits({ ...defaultMigrationLimits, transferredFactorMax: 3, autoConverge: true })).toBeNull();
  });

  it.each<[Partial<Record<keyof MigrationLimits, unknown>>, RegExp]>([
    [{ bandwidthMiBps: 0 }, /^limits\.bandwidthMiBps must be a number above 0/],
    [{ bandwidthMiBps: Number.NaN }, /limits\.bandwidthMiBps/],
    [{ downtimeMsMax: -1 }, /limits\.downtimeMsMax/],
    [{ downtimeMsMax: 2_000_001 }, /limits\.downtimeMsMax must be a number from 0 to 2000000/],
    [{ roundsMax: 0 }, /limits\.roundsMax must be an integer from 1 to 1000, got 0/],
    [{ roundsMax: 2.5 }, /limits\.roundsMax/],
    [{ transferredFactorMax: 0.5 }, /limits\.transferredFactorMax/],
    [{ onRoundLimit: 'abort' }, /limits\.onRoundLimit must be 'force-switchover' or 'fail', got abort/],
    [{ resumeCostMs: -1 }, /limits\.resumeCostMs/],
    [{ completionTimeoutMsPerGiB: 0 }, /limits\.completionTimeoutMsPerGiB/],
    [{ progressTimeoutMs: Number.POSITIVE_INFINITY }, /limits\.progressTimeoutMs/],
    [{ autoConverge: 'yes' }, /limits\.autoConverge must be a boolean/],
    [{ autoConvergeTriggerPct: 0 }, /limits\.autoConvergeTriggerPct/],
    [{ autoConvergeInitialPct: 100 }, /limits\.autoConvergeInitialPct/],
    [{ autoConvergeStepPct: 0 }, /limits\.autoConvergeStepPct/],
    [{ autoConvergeMaxPct: 100 }, /limits\.autoConvergeMaxPct/],
    [{ autoConvergeInitialPct: 50, autoConvergeMaxPct: 40 }, /limits\.autoConvergeInitialPct \(50\) must be <= limits\.autoConvergeMaxPct \(40\)/],
  ])('rejects %o', (overrides, message) => {
    const limits = { ...defaultMigrationLimits, ...overrides } as MigrationLimits;
    expect(validateMigrationLimits(limits)).toMatch(message);
    expect(() => simulateMigration({ memoryMiB: 1024, dirtyMiBps: 10, workingSetMiB: null, limits })).toThrow(RangeError);
  });

  it.each<[Partial<PreCopyInput>, RegExp]>([
    [{ memoryMiB: 0 }, /memoryMiB must be a number above 0/],
    [{ memoryMiB: 2 ** 40 }, /memoryMiB/],
    [{ dirtyMiBps: -1 }, /dirtyMiBps/],
    [{ workingSetMiB: 0 }, /workingSetMiB/],
  ])('createPreCopy rejects %o', (overrides, message) => {
    const input: PreCopyInput = { memoryMiB: 1024, dirtyMiBps: 10, workingSetMiB: null, limits: defaultMigrationLimits, ...overrides };
    expect(() => createPreCopy(input)).toThrow(message);
  });

  it('limits left out take the defaults; the outcome records the limits in force', () => {
    const outcome = simulateMigration({ memoryMiB: 1024, dirtyMiBps: 10, workingSetMiB: null, limits: { bandwidthMiBps: 1000, onRoundLimit: 'fail' } });
    expect(outcome.limits).toEqual({ ...defaultMigrationLimits, bandwidthMiBps: 1000, onRoundLimit: 'fail' });
    expect(() => createPreCopy({ memoryMiB: 1024, dirtyMiBps: 10, workingSetMiB: null, limits: { roundsMax: 0 } })).toThrow(/limits\.roundsMax/);
  });

  it('the closed form rejects impossible inputs', () => {
    const base: ClosedFormInput = { memoryMiB: 1, dirtyMiBps: 0, bandwidthMiBps: 1, downtimeMsMax: 0, resumeCostMs: 0, roundsMax: 1 };
    expect(() => closedFormPreCopy({ ...base, bandwidthMiBps: 0 })).toThrow(RangeError);
    expect(() => closedFormPreCopy({ ...base, roundsMax: 0 })).toThrow(RangeError);
  });
});

describe("replays of Clark et al.'s traces (NSDI 2005; hypervisor-models.md §3.1, §4.3 step 3)", () => {
  /**
   * Drives the engine with the paper's per-round volumes under its dynamic rate limiting (§5.3):
   * round 1 at the minimum (100 Mbit/s); each later round at the previous round's dirty rate +
   * 50 Mbit/s, kept within [minimum, maximum]; the stop-and-copy at the maximum (Xen's 500 Mbit/s).
   * The dirty rate of each round is set so that it dirties exactly the next round's volume, and the
   * trace (not the threshold) says when pre-copy stopped: roundsMax = rounds + 1, forced.
   * memoryMiB is round 1's volume: the paper's round 1 sent less than the VM's memory.
   */
  function replay(roundsMB: readonly number[], finalMB: number, resumeCostMs: number): MigrationOutcome & { sentMB: number[] } {
    const minMbitPs = 100;
    const maxMbitPs = 500;
    const volumesMiB = [...roundsMB, finalMB].map((mb) => mb * mibPerMB);
    const engine = createPreCopy({
      memoryMiB: volumesMiB[0]!,
      dirtyMiBps: 0,
      workingSetMiB: null,
      limits: limitsWith({
        bandwidthMiBps: minMbitPs * mibPsPerMbitPs,
        downtimeMsMax: 0,
        roundsMax: roundsMB.length + 1,
        onRoundLimit: 'force-switchover',
        resumeCostMs,
        // Xen has no management timeouts.
        ...noTimeouts,
      }),
    });
    const rounds: RoundResult[] = [];
    let bandwidthMiBps = minMbitPs * mibPsPerMbitPs;
    for (let i = 0; i < roundsMB.length; i++) {
      const durationS = volumesMiB[i]! / bandwidthMiBps;
      engine.setBandwidth(bandwidthMiBps);
      engine.setDirtyRate(volumesMiB[i + 1]! / durationS);
      const step = engine.nextRound();
      if (step.kind !== 'round') throw new Error(`round ${i + 1} ended the migration: ${step.reason}`);
      rounds.push(step);
      const nextMbitPs = step.dirtyRateMiBps / mibPsPerMbitPs + 50;
      bandwidthMiBps = Math.min(maxMbitPs, Math.max(minMbitPs, nextMbitPs)) * mibPsPerMbitPs;
    }
    engine.setBandwidth(maxMbitPs * mibPsPerMbitPs);
    const end = engine.nextRound();
    if (end.kind !== 'switchover') throw new Error(`expected the forced switch-over, got ${end.kind}`);
    return {
      outcome: 'completed',
      limits: engine.limits,
      rounds,
      end,
      preCopyRounds: end.preCopyRounds,
      transferredMiBTotal: end.transferredMiBTotal,
      elapsedMsTotal: end.elapsedMsTotal,
      downtimeMs: end.downtimeMs,
      sentMB: [...rounds.map((r) => r.sentMiB / mibPerMB), end.finalCopyMiB / mibPerMB],
    };
  }

  it('SPECweb99 (800 MB VM): round 1 takes 54.1 s, total ≈ 71 s and 960 MB sent, within ±10 %', () => {
    const trace = [676.8, 126.7, 39.0, 28.4, 24.2, 16.7, 14.2, 15.3];
    const outcome = replay(trace, 18.2, 9);
    expect(outcome.sentMB.map((mb) => Number(mb.toFixed(6)))).toEqual([...trace, 18.2]);
    expectWithin(outcome.rounds[0]!.durationMs, 54_100, 0.01);
    expectWithin(outcome.elapsedMsTotal, 71_000, 0.1);
    expectWithin(outcome.transferredMiBTotal / mibPerMB, 960, 0.1);
  });

  it('Quake 3 (64 MB VM): total ≈ 7 s (read off the figure) and 88 MB sent, within ±10 %', () => {
    const trace = [56.3, 20.4, 4.6, 1.6, 1.2, 0.9, 1.2, 1.1, 0.8, 0.2, 0.1];
    const outcome = replay(trace, 0.148, 40);
    expectWithin(outcome.elapsedMsTotal, 7000, 0.1);
    expectWithin(outcome.transferredMiBTotal / mibPerMB, 88, 0.1);
  });
});
