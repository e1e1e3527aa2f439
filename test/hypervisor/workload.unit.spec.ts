import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type BurstState,
  cpuDemandOver,
  cpuDemandPctAt,
  createSeededRandom,
  type RandomSource,
  type WorkloadProfile,
} from '../../services/hypervisor/index.ts';
import { profile } from './fixtures/profile.ts';

/** A random source that must not be used: constant and periodic workloads draw nothing. */
const noDraws: RandomSource = {
  nextFloat: () => {
    throw new Error('unexpected draw');
  },
};

/** Average demand over [0, spanMs) walked in steps of stepMs, chaining the bursty state. */
function averageOver(workload: WorkloadProfile, spanMs: number, stepMs: number, random: RandomSource): number {
  let burst: BurstState | null = null;
  let sum = 0;
  for (let atMs = 0; atMs < spanMs; atMs += stepMs) {
    const result = cpuDemandOver(workload, 0, burst, atMs, atMs + stepMs, random);
    burst = result.burst;
    sum += result.demandPct * stepMs;
  }
  return sum / spanMs;
}

describe('workload patterns', () => {
  it('constant: the demand, always, drawing nothing', () => {
    const workload = profile({ cpuDemandPct: 37 });
    expect(cpuDemandOver(workload, 0, null, 0, 10, noDraws)).toEqual({ demandPct: 37, burst: null });
    expect(cpuDemandPctAt(workload, 0, null, 123_456)).toBe(37);
  });

  it('periodic: busy for the first duty % of each period, counted from the origin', () => {
    const workload = profile({ cpuPattern: 'periodic', cpuDemandPct: 90, cpuLowPct: 10, cpuPeriodMs: 100, cpuDutyPct: 30 });
    const originMs = 1000;
    expect(cpuDemandPctAt(workload, originMs, null, 1000)).toBe(90);
    expect(cpuDemandPctAt(workload, originMs, null, 1029)).toBe(90);
    expect(cpuDemandPctAt(workload, originMs, null, 1030)).toBe(10);
    expect(cpuDemandPctAt(workload, originMs, null, 1099)).toBe(10);
    expect(cpuDemandPctAt(workload, originMs, null, 1100)).toBe(90);
    // Before the origin the pattern runs backwards in phase.
    expect(cpuDemandPctAt(workload, originMs, null, 990)).toBe(10);
    // A quantum across the edge: [1020, 1040) is half busy.
    expect(cpuDemandOver(workload, originMs, null, 1020, 1040, noDraws).demandPct).toBeCloseTo(50, 12);
    // A whole period: 30 % × 90 + 70 % × 10 = 34.
    expect(cpuDemandOver(workload, originMs, null, 1000, 1100, noDraws).demandPct).toBeCloseTo(34, 12);
    expect(cpuDemandOver(workload, originMs, null, 1050, 1350, noDraws).demandPct).toBeCloseTo(34, 12);
  });

  it('duty 0 % and 100 % are constant at the low and the busy value', () => {
    for (const cpuPattern of ['periodic', 'bursty'] as const) {
      const idle = profile({ cpuPattern, cpuDemandPct: 80, cpuLowPct: 5, cpuDutyPct: 0 });
      const busy = profile({ cpuPattern, cpuDemandPct: 80, cpuLowPct: 5, cpuDutyPct: 100 });
      expect(cpuDemandOver(idle, 0, null, 0, 10, noDraws)).toEqual({ demandPct: 5, burst: null });
      expect(cpuDemandOver(busy, 0, null, 0, 10, noDraws)).toEqual({ demandPct: 80, burst: null });
    }
  });

  it('bursty: replays exactly from the same seed, and differs with another', () => {
    const workload = profile({ cpuPattern: 'bursty', cpuDemandPct: 100, cpuLowPct: 0, cpuPeriodMs: 50, cpuDutyPct: 40 });
    const series = (seed: number): number[] => {
      const random = createSeededRandom(seed);
      let burst: BurstState | null = null;
      return Array.from({ length: 200 }, (_, k) => {
        const result = cpuDemandOver(workload, 0, burst, k * 10, (k + 1) * 10, random);
        burst = result.burst;
        return result.demandPct;
      });
    };
    expect(series(5)).toEqual(series(5));
    expect(series(5)).not.toEqual(series(6));
  });

  it('bursty: busy about duty % of the time, with exponential spells of the stated means', () => {
    const workload = profile({ cpuPattern: 'bursty', cpuDemandPct: 100, cpuLowPct: 0, cpuPeriodMs: 200, cpuDutyPct: 25 });
    const random = createSeededRandom(11);
    // 2,000 s of 10 ms quanta: about 10,000 busy/idle cycles.
    expect(averageOver(workload, 2_000_000, 10, random)).toBeCloseTo(25, 0);
    // Spell lengths: follow the state through 400 s in 1 ms steps; a new spell starts where the last ended.
    let burst: BurstState | null = null;
    const spells: { busy: boolean; ms: number }[] = [];
    for (let atMs = 0; atMs < 400_000; atMs += 1) {
      const state: BurstState | null = cpuDemandOver(workload, 0, burst, atMs, atMs + 1, random).burst;
      if (state === null) throw new Error('bursty workloads have a state');
      // One transition in the step: the new spell's length is the distance between the two ends.
      if (burst !== null && state !== burst && state.busy !== burst.busy) {
        spells.push({ busy: state.busy, ms: state.spellEndMs - burst.spellEndMs });
      }
      burst = state;
    }
    const mean = (busy: boolean): number => {
      const lengths = spells.filter((s) => s.busy === busy);
      return lengths.reduce((sum, s) => sum + s.ms, 0) / lengths.length;
    };
    // Means 25 % and 75 % of 200 ms, over about 2,000 cycles.
    expect(mean(true)).toBeGreaterThan(50 * 0.9);
    expect(mean(true)).toBeLessThan(50 * 1.1);
    expect(mean(false)).toBeGreaterThan(150 * 0.9);
    expect(mean(false)).toBeLessThan(150 * 1.1);
  });

  it('property: the average lies between the low and the busy value, and splitting an interval changes nothing', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('constant', 'periodic', 'bursty'),
        fc.integer({ min: 0, max: 100 }),
        fc.integer({ min: 0, max: 100 }),
        fc.integer({ min: 10, max: 5000 }),
        fc.integer({ min: 0, max: 100 }),
        fc.integer({ min: 0, max: 100_000 }),
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 1, max: 10_000 }),
        fc.nat(),
        (cpuPattern, cpuDemandPct, cpuLowPct, cpuPeriodMs, cpuDutyPct, fromMs, firstDraw, secondDraw, seed) => {
          // Up to 10 periods each, well within the spells one call walks exactly (spellCountMax).
          const firstMs = 1 + (firstDraw % (10 * cpuPeriodMs));
          const secondMs = 1 + (secondDraw % (10 * cpuPeriodMs));
          const workload = profile({ cpuPattern, cpuDemandPct, cpuLowPct, cpuPeriodMs, cpuDutyPct });
          const low = Math.min(cpuDemandPct, cpuLowPct);
          const high = Math.max(cpuDemandPct, cpuLowPct);
          const whole = cpuDemandOver(workload, 0, null, fromMs, fromMs + firstMs + secondMs, createSeededRandom(seed));
          expect(whole.demandPct).toBeGreaterThanOrEqual(low - 1e-9);
          expect(whole.demandPct).toBeLessThanOrEqual(high + 1e-9);
          // The same draws in the same order: two calls chained by the state give the same average.
          const random = createSeededRandom(seed);
          const first = cpuDemandOver(workload, 0, null, fromMs, fromMs + firstMs, random);
          const second = cpuDemandOver(workload, 0, first.burst, fromMs + firstMs, fromMs + firstMs + secondMs, random);
          const chained = (first.demandPct * firstMs + second.demandPct * secondMs) / (firstMs + secondMs);
          expect(chained).toBeCloseTo(whole.demandPct, 6);
        },
      ),
    );
  });
});
