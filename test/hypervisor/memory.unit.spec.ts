import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type BalancerInput,
  computeMemoryGoals,
  createSeededRandom,
  hotAddChunkMiB,
  memoryNeedMiB,
  memoryTargetMiB,
} from '../../services/hypervisor/index.ts';
import { moveToGoal } from '../../services/hypervisor/sim/memory.ts';

const vm = (id: string, overrides: Partial<BalancerInput> = {}): BalancerInput => ({
  id,
  minMiB: 512,
  maxMiB: 8192,
  bufferPct: 20,
  weight: 5000,
  demandMiB: 1000,
  ...overrides,
});

describe('computeMemoryGoals (hypervisor-models.md §2.3)', () => {
  it('aims at demand × (1 + buffer): the reference example, 1000 MB committed with a 20 % buffer → 1200 MB', () => {
    expect(memoryTargetMiB(vm('a', { demandMiB: 1000, bufferPct: 20 }))).toBe(1200);
    expect(memoryNeedMiB(vm('a', { demandMiB: 1000, bufferPct: 20 }))).toBe(1000);
    // Target pressure 100 / 1.2 = 83.3 (§2.2).
    expect((100 * 1000) / memoryTargetMiB(vm('a'))).toBeCloseTo(83.33, 2);
  });

  it('gives every partition its target when the pool allows', () => {
    const goals = computeMemoryGoals(10_000, [vm('a'), vm('b', { demandMiB: 2000, bufferPct: 50 })]);
    expect(goals.get('a')).toBe(1200);
    expect(goals.get('b')).toBe(3000);
  });

  it('keeps goals within min and max, in whole MiB', () => {
    const goals = computeMemoryGoals(100_000, [
      vm('idle', { demandMiB: 0 }),
      vm('hungry', { demandMiB: 50_000 }),
      vm('odd', { demandMiB: 1001.5, bufferPct: 7 }),
    ]);
    expect(goals.get('idle')).toBe(512);
    expect(goals.get('hungry')).toBe(8192);
    expect(goals.get('odd')).toBe(Math.ceil(1001.5 * 1.07));
  });

  it('when short, fills minimum, then need, then buffer, highest weight first', () => {
    // Pool 4096: minimums 1024, then need 2500 for the heavy one (1988), leaving 1084 for the light one.
    const goals = computeMemoryGoals(4096, [
      vm('light', { weight: 2000, demandMiB: 2500 }),
      vm('heavy', { weight: 8000, demandMiB: 2500 }),
    ]);
    expect(goals.get('heavy')).toBe(2500);
    expect(goals.get('light')).toBe(512 + 1084);
  });

  it('gives buffers only after every partition has what it needs', () => {
    // Needs 1000 + 1000 fit in 2300; of the 300 left, the heavier partition's buffer (200) comes first.
    const goals = computeMemoryGoals(2300, [vm('light', { weight: 1 }), vm('heavy', { weight: 2 })]);
    expect(goals.get('heavy')).toBe(1200);
    expect(goals.get('light')).toBe(1100);
  });

  it('never goes below a minimum, even for weight 0', () => {
    const goals = computeMemoryGoals(1024, [
      vm('zero', { weight: 0, demandMiB: 4000 }),
      vm('top', { weight: 10_000, demandMiB: 4000 }),
    ]);
    expect(goals.get('zero')).toBe(512);
    expect(goals.get('top')).toBe(512);
  });

  it('shares equally among equal weights, whatever the input order', () => {
    // Minimums 1024; the 1976 MiB left are split 988 / 988 of the wanted 1488 each.
    const a = computeMemoryGoals(3000, [vm('x', { demandMiB: 2000 }), vm('y', { demandMiB: 2000 })]);
    const b = computeMemoryGoals(3000, [vm('y', { demandMiB: 2000 }), vm('x', { demandMiB: 2000 })]);
    expect([...a.entries()].sort()).toEqual([...b.entries()].sort());
    expect([a.get('x'), a.get('y')]).toEqual([1500, 1500]);
  });

  it('shares max-min among equal weights: a small need is met in full, the rest split, odd MiB by id', () => {
    // Pool 3001: minimums 1536, 1465 left; s needs 100 more, x and y 1488 each → 100 / 683 / 682.
    const goals = computeMemoryGoals(3001, [
      vm('y', { demandMiB: 2000 }),
      vm('s', { demandMiB: 612 }),
      vm('x', { demandMiB: 2000 }),
    ]);
    expect(goals.get('s')).toBe(612);
    expect(goals.get('x')).toBe(512 + 683);
    expect(goals.get('y')).toBe(512 + 682);
  });

  it('throws when the minimums alone exceed the pool (an admission bug)', () => {
    expect(() => computeMemoryGoals(1000, [vm('a'), vm('b')])).toThrow(/minimums/);
  });
});

// ---------------------------------------------------------------------------------------------
// Properties.

const inputsArb = fc
  .array(
    fc.record({
      minMiB: fc.integer({ min: 32, max: 4096 }),
      rangeMiB: fc.integer({ min: 0, max: 16_384 }),
      bufferPct: fc.integer({ min: 5, max: 2000 }),
      weight: fc.integer({ min: 0, max: 10_000 }),
      demandMiB: fc.integer({ min: 0, max: 20_000 }),
    }),
    { minLength: 1, maxLength: 8 },
  )
  .map((raw) =>
    raw.map(
      (r, i): BalancerInput => ({
        id: `vm${i}`,
        minMiB: r.minMiB,
        maxMiB: r.minMiB + r.rangeMiB,
        bufferPct: r.bufferPct,
        weight: r.weight,
        demandMiB: r.demandMiB,
      }),
    ),
  );
/** Inputs and a pool that holds at least the minimums (start admission guarantees it). */
const balancerCaseArb = fc.tuple(inputsArb, fc.integer({ min: 0, max: 60_000 })).map(([inputs, extraMiB]) => ({
  inputs,
  poolMiB: inputs.reduce((sum, i) => sum + i.minMiB, 0) + extraMiB,
}));

describe('computeMemoryGoals: properties', () => {
  it('assigns at least the minimum and at most the maximum to everyone, within the pool, in whole MiB', () => {
    fc.assert(
      fc.property(balancerCaseArb, ({ inputs, poolMiB }) => {
        const goals = computeMemoryGoals(poolMiB, inputs);
        let sumMiB = 0;
        for (const input of inputs) {
          const goal = goals.get(input.id) ?? Number.NaN;
          expect(Number.isInteger(goal)).toBe(true);
          expect(goal).toBeGreaterThanOrEqual(input.minMiB);
          expect(goal).toBeLessThanOrEqual(input.maxMiB);
          sumMiB += goal;
        }
        expect(sumMiB).toBeLessThanOrEqual(poolMiB);
      }),
    );
  });

  it('gives everyone its target when the targets fit, and uses the whole pool when they do not', () => {
    fc.assert(
      fc.property(balancerCaseArb, ({ inputs, poolMiB }) => {
        const goals = computeMemoryGoals(poolMiB, inputs);
        const targetSumMiB = inputs.reduce((sum, i) => sum + memoryTargetMiB(i), 0);
        const goalSumMiB = [...goals.values()].reduce((sum, g) => sum + g, 0);
        if (targetSumMiB <= poolMiB) {
          for (const input of inputs) expect(goals.get(input.id)).toBe(memoryTargetMiB(input));
        } else {
          expect(goalSumMiB).toBe(poolMiB);
        }
      }),
    );
  });

  it('never lets a higher weight lose memory to a lower one under pressure', () => {
    fc.assert(
      fc.property(balancerCaseArb, ({ inputs, poolMiB }) => {
        const goals = computeMemoryGoals(poolMiB, inputs);
        for (const high of inputs) {
          for (const low of inputs) {
            if (high.weight <= low.weight) continue;
            const highGoal = goals.get(high.id) ?? Number.NaN;
            const lowGoal = goals.get(low.id) ?? Number.NaN;
            // The lower weight got need beyond its minimum only if the higher one has its whole need...
            if (Math.min(lowGoal, memoryNeedMiB(low)) > low.minMiB) expect(highGoal).toBeGreaterThanOrEqual(memoryNeedMiB(high));
            // ...and buffer only if the higher one has its whole target.
            if (lowGoal > memoryNeedMiB(low)) expect(highGoal).toBe(memoryTargetMiB(high));
          }
        }
      }),
    );
  });

  it('fills the phases in order: nobody gets buffer while anybody lacks need', () => {
    fc.assert(
      fc.property(balancerCaseArb, ({ inputs, poolMiB }) => {
        const goals = computeMemoryGoals(poolMiB, inputs);
        const someoneShort = inputs.some((i) => (goals.get(i.id) ?? 0) < memoryNeedMiB(i));
        if (!someoneShort) return;
        for (const input of inputs) expect(goals.get(input.id)).toBeLessThanOrEqual(memoryNeedMiB(input));
      }),
    );
  });

  it('splits a shortage equally (to the MiB) among partitions of equal weight', () => {
    fc.assert(
      fc.property(balancerCaseArb, ({ inputs, poolMiB }) => {
        const goals = computeMemoryGoals(poolMiB, inputs);
        const grant = (i: BalancerInput): number => Math.min(goals.get(i.id) ?? 0, memoryNeedMiB(i)) - i.minMiB;
        for (const a of inputs) {
          if ((goals.get(a.id) ?? 0) >= memoryNeedMiB(a)) continue;
          // a is short of its need: no partition of the same weight got more than 1 MiB more of need.
          for (const b of inputs) if (b.weight === a.weight) expect(grant(b)).toBeLessThanOrEqual(grant(a) + 1);
        }
      }),
    );
  });

  it('does not depend on the order of its inputs', () => {
    fc.assert(
      fc.property(balancerCaseArb, fc.nat(), ({ inputs, poolMiB }, seed) => {
        const random = createSeededRandom(seed);
        const shuffled = [...inputs].sort(() => random.nextFloat() - 0.5);
        expect(computeMemoryGoals(poolMiB, shuffled)).toEqual(computeMemoryGoals(poolMiB, inputs));
      }),
    );
  });
});

describe('moveToGoal', () => {
  it('hot-adds whole 128 MiB chunks and leaves the unused part of the last chunk ballooned', () => {
    const state = moveToGoal({ visibleMiB: 1024, balloonedMiB: 0 }, 1100, 4096);
    expect(state).toEqual({ visibleMiB: 1024 + hotAddChunkMiB, balloonedMiB: 1024 + hotAddChunkMiB - 1100 });
  });

  it('does not hot-add past the maximum', () => {
    expect(moveToGoal({ visibleMiB: 1024, balloonedMiB: 0 }, 1100, 1100)).toEqual({ visibleMiB: 1100, balloonedMiB: 0 });
  });

  it('shrinks by inflating the balloon and grows by deflating it before hot-adding', () => {
    const shrunk = moveToGoal({ visibleMiB: 2048, balloonedMiB: 0 }, 600, 4096);
    expect(shrunk).toEqual({ visibleMiB: 2048, balloonedMiB: 1448 });
    const regrown = moveToGoal(shrunk, 2000, 4096);
    expect(regrown).toEqual({ visibleMiB: 2048, balloonedMiB: 48 });
  });
});

describe('createSeededRandom', () => {
  it('replays the same sequence from the same seed and a different one from another seed', () => {
    const draw = (seed: number): number[] => {
      const random = createSeededRandom(seed);
      return Array.from({ length: 20 }, () => random.nextFloat());
    };
    expect(draw(7)).toEqual(draw(7));
    expect(draw(7)).not.toEqual(draw(8));
  });

  it('draws floats in [0, 1) with a mean near 1/2', () => {
    const random = createSeededRandom(123);
    let sum = 0;
    let outside = 0;
    const count = 100_000;
    for (let i = 0; i < count; i += 1) {
      const value = random.nextFloat();
      if (!(value >= 0 && value < 1)) outside += 1;
      sum += value;
    }
    expect(outside).toBe(0);
    expect(sum / count).toBeGreaterThan(0.49);
    expect(sum / count).toBeLessThan(0.51);
  });

  it('rejects a seed that is not a safe integer', () => {
    expect(() => createSeededRandom(1.5)).toThrow(RangeError);
  });
});
