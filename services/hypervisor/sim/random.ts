/**
 * A tiny seeded pseudo-random source for the simulator.
 *
 * The simulation must replay exactly from a seed, so nothing in services/hypervisor/sim may call
 * Math.random. mulberry32 is a 32-bit-state generator: fast, passes the usual smoke tests for
 * simulation noise, and trivially reproducible across platforms because it uses only 32-bit
 * integer arithmetic (Math.imul). It is not cryptographic and must not be used for ids or secrets.
 */

export interface RandomSource {
  /** A float uniformly distributed in [0, 1). */
  nextFloat(): number;
}

export interface SeededRandom extends RandomSource {
  /** A uniformly distributed unsigned 32-bit integer. */
  nextUint32(): number;
  /** The seed this generator was created with (for logs, so a run can be replayed). */
  readonly seed: number;
}

const uint32Range = 0x1_0000_0000;

/** mulberry32 (Tommy Ettinger's public-domain generator). Any integer seed; it is taken modulo 2^32. */
export function createSeededRandom(seed: number): SeededRandom {
  if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
  const seedUint32 = ((seed % uint32Range) + uint32Range) % uint32Range;
  let state = seedUint32;
  const nextUint32 = (): number => {
    state = (state + 0x6d2b79f5) | 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
  return {
    seed: seedUint32,
    nextUint32,
    nextFloat: () => nextUint32() / uint32Range,
  };
}
