import { describe, expect, it } from 'vitest';
import { type BalancerInput, computeMemoryGoals, createSeededRandom, hotAddChunkMiB } from '../../services/hypervisor/index.ts';
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
  it('gives every partition demand × (1 + buffer), rounded up to a hot-add chunk, when the pool allows', () => {
    // 1000 MiB × 1.2 = 1200 → 1280 (10 chunks of 128 MiB).
    const goals = computeMemoryGoals(10_000, [vm('a'), vm('b', { demandMiB: 2000, bufferPct: 50 })]);
    expect(goals.get('a')).toBe(1280);
    expect(goals.get('b')).toBe(3072);
  });

  it('keeps goals within min and max', () => {
    const goals = computeMemoryGoals(100_000, [vm('idle', { demandMiB: 0 }), vm('hungry', { demandMiB: 50_000 })]);
    expect(goals.get('idle')).toBe(512);
    expect(goals.get('hungry')).toBe(8192);
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
    // Needs 1000 + 1000 fit in 2300; of the 300 left, the heavier partition's buffer (280) comes first.
    const goals = computeMemoryGoals(2300, [vm('light', { weight: 1 }), vm('heavy', { weight: 2 })]);
    expect(goals.get('heavy')).toBe(1280);
    expect(goals.get('light')).toBe(1020);
  });

  it('never goes below a minimum, even for weight 0', () => {
    const goals = computeMemoryGoals(1024, [
      vm('zero', { weight: 0, demandMiB: 4000 }),
      vm('top', { weight: 10_000, demandMiB: 4000 }),
    ]);
    expect(goals.get('zero')).toBe(512);
    expect(goals.get('top')).toBe(512);
  });

  it('breaks weight ties by id, so results do not depend on input order', () => {
    const a = computeMemoryGoals(3000, [vm('x', { demandMiB: 2000 }), vm('y', { demandMiB: 2000 })]);
    const b = computeMemoryGoals(3000, [vm('y', { demandMiB: 2000 }), vm('x', { demandMiB: 2000 })]);
    expect([...a.entries()].sort()).toEqual([...b.entries()].sort());
    expect(a.get('x')).toBe(2000);
    expect(a.get('y')).toBe(1000);
  });

  it('throws when the minimums alone exceed the pool (an admission bug)', () => {
    expect(() => computeMemoryGoals(1000, [vm('a'), vm('b')])).toThrow(/minimums/);
  });

  it('keeps Σ goals within the pool and each goal within [min, max] for random inputs', () => {
    const random = createSeededRandom(42);
    for (let round = 0; round < 500; round += 1) {
      const count = 1 + Math.floor(random.nextFloat() * 6);
      const inputs = Array.from({ length: count }, (_, i) => {
        const minMiB = 32 + Math.floor(random.nextFloat() * 2048);
        return vm(`vm${i}`, {
          minMiB,
          maxMiB: minMiB + Math.floor(random.nextFloat() * 8192),
          weight: Math.floor(random.nextFloat() * 10_001),
          bufferPct: 5 + Math.floor(random.nextFloat() * 1996),
          demandMiB: random.nextFloat() * 10_000,
        });
      });
      const minSumMiB = inputs.reduce((sum, input) => sum + input.minMiB, 0);
      const poolMiB = minSumMiB + Math.floor(random.nextFloat() * 20_000);
      const goals = computeMemoryGoals(poolMiB, inputs);
      const goalSumMiB = [...goals.values()].reduce((sum, goal) => sum + goal, 0);
      expect(goalSumMiB).toBeLessThanOrEqual(poolMiB);
      for (const input of inputs) {
        const goal = goals.get(input.id) ?? Number.NaN;
        expect(Number.isInteger(goal)).toBe(true);
        expect(goal).toBeGreaterThanOrEqual(input.minMiB);
        expect(goal).toBeLessThanOrEqual(input.maxMiB);
      }
    }
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
    const count = 100_000;
    for (let i = 0; i < count; i += 1) {
      const value = random.nextFloat();
      expect(value >= 0 && value < 1).toBe(true);
      sum += value;
    }
    expect(sum / count).toBeGreaterThan(0.49);
    expect(sum / count).toBeLessThan(0.51);
  });

  it('rejects a seed that is not a safe integer', () => {
    expect(() => createSeededRandom(1.5)).toThrow(RangeError);
  });
});
