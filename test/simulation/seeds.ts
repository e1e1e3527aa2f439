/**
 * Shared body of the seed suites: runs seeds in chunks, one test per chunk, and fails with the
 * seed, the violation and the way to replay and shrink it.
 */
import { expect, it } from 'vitest';
import { defaultSimOptions, runSeed } from './run.ts';

/** CI runs at least 500 seeds of at least 200 steps (issue 5); the suites split them in two files so both workers share them. */
export const seedsPerChunk = 25;

export function seedSuite(from: number, count: number): void {
  for (let start = from; start < from + count; start += seedsPerChunk) {
    const end = Math.min(start + seedsPerChunk, from + count);
    it(`seeds ${start}–${end - 1} (${defaultSimOptions.steps} steps each) keep every invariant`, async () => {
      const failures: string[] = [];
      for (let seed = start; seed < end; seed++) {
        const result = await runSeed(seed, defaultSimOptions);
        expect(result.steps).toBeGreaterThanOrEqual(200);
        if (!result.ok) {
          failures.push(
            `seed ${seed} broke invariant ${result.violations.map((v) => `${v.invariant} (${v.message})`).join(', ')} after step ${result.failedAt}; ` +
              `replay and shrink it with: npm run sim -- --seed ${seed}`,
          );
        }
      }
      expect(failures).toEqual([]);
    }, 600_000);
  }
}
