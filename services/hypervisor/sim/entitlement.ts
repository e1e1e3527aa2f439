/**
 * CPU entitlement: weighted max-min fairness with floors and ceilings ("water-filling").
 *
 * Model from ../shared/reference/hypervisor-models.md §1.9 (the "clamp" policy, the default there):
 *   if Σ u_i <= C: x_i = u_i             (no contention: everybody gets what it can use)
 *   else: find λ >= 0 with Σ clamp(λ·w_i, f_i, u_i) = C, and x_i = clamp(λ·w_i, f_i, u_i)
 * A reserve is a floor, a limit (or a low demand) is a ceiling, and weights divide whatever remains
 * only among the partitions strictly between their floor and ceiling.
 *
 * λ is found exactly, not by bisection on λ: Σ clamp(λ·w_i, f_i, u_i) is piecewise linear and
 * non-decreasing in λ with breakpoints at f_i/w_i and u_i/w_i, so a binary search over the sorted
 * breakpoints finds the segment where the sum crosses C, and we solve that segment's linear
 * equation. O(n log n): a native sort plus ~log2(2n) passes over the demands
 * (test/bench/hypervisor.bench.ts times it for 1,000 partitions).
 */

export interface EntitlementDemand {
  readonly id: string;
  /** Relative weight, > 0 (Hyper-V: 1–10000). */
  readonly weight: number;
  /** Guaranteed LPs under contention (the reserve, already capped at the ceiling), >= 0. */
  readonly floorLp: number;
  /** Most LPs this partition can use (limit, vCPU count and demand), >= floorLp. */
  readonly ceilingLp: number;
}

/**
 * Splits capacityLp logical processors among the demands. Returns LPs per id.
 *
 * When the floors alone exceed the capacity (reserves over-committed: admission was not enforced,
 * or the host lost capacity), every partition gets its floor scaled down by the same factor, so the
 * total never exceeds capacityLp. The TLFS says over-committed reserves "are not guaranteed"; it does
 * not say how they degrade, so proportional scaling is our choice [D].
 *
 * Throws RangeError on inputs that break the contract (negative or non-finite numbers, weight <= 0,
 * floor > ceiling, duplicate ids): those are bugs in the caller, not operating conditions.
 */
export function computeEntitlements(
  capacityLp: number,
  demands: readonly EntitlementDemand[],
): Map<string, number> {
  assertInputs(capacityLp, demands);
  const result = new Map<string, number>();
  const count = demands.length;

  let ceilingSumLp = 0;
  let floorSumLp = 0;
  let weightMax = 0;
  for (const d of demands) {
    ceilingSumLp += d.ceilingLp;
    floorSumLp += d.floorLp;
    weightMax = Math.max(weightMax, d.weight);
  }
  if (ceilingSumLp <= capacityLp) {
    for (const d of demands) result.set(d.id, d.ceilingLp);
    return result;
  }
  if (floorSumLp >= capacityLp) {
    // floorSumLp > 0 here, because capacityLp >= 0 and ceilingSumLp > capacityLp >= 0 implies a demand exists;
    // if capacityLp is 0 and all floors are 0, the factor is 0/0, so guard it.
    const factor = floorSumLp === 0 ? 0 : capacityLp / floorSumLp;
    for (const d of demands) result.set(d.id, d.floorLp * factor);
    return result;
  }

  // Contention with feasible floors: Σ f < C < Σ u. Weights are normalized to (0, 1] so that a ratio
  // u/w is never smaller than u: a positive ceiling always has a positive breakpoint (no underflow).
  const weights = new Float64Array(count);
  const floors = new Float64Array(count);
  const ceilings = new Float64Array(count);
  const lowRatios = new Float64Array(count);
  const highRatios = new Float64Array(count);
  demands.forEach((d, i) => {
    const weight = Math.max(d.weight / weightMax, Number.MIN_VALUE);
    weights[i] = weight;
    floors[i] = d.floorLp;
    ceilings[i] = d.ceilingLp;
    lowRatios[i] = d.floorLp / weight;
    highRatios[i] = d.ceilingLp / weight;
  });
  const sorted = new Float64Array(2 * count);
  sorted.set(lowRatios, 0);
  sorted.set(highRatios, count);
  sorted.sort();
  const breakpoints: number[] = [];
  for (const breakpoint of sorted) {
    if (breakpoint > 0 && breakpoint !== breakpoints[breakpoints.length - 1]) breakpoints.push(breakpoint);
  }
  // The sum at λ, deciding the clamped cases by comparing λ with the breakpoints rather than by
  // multiplying back: (u/w)·w can round below u, and then the sum at the last breakpoint would miss Σ u.
  const totalAt = (lambda: number): number => {
    let total = 0;
    for (let i = 0; i < count; i += 1) {
      const floor = floors[i] ?? 0;
      const ceiling = ceilings[i] ?? 0;
      if (lambda >= (highRatios[i] ?? 0)) total += ceiling;
      else if (lambda <= (lowRatios[i] ?? 0)) total += floor;
      else total += clamp(lambda * (weights[i] ?? 0), floor, ceiling);
    }
    return total;
  };
  // Binary search for the first breakpoint at which the sum reaches the capacity.
  let low = 0;
  let high = breakpoints.length - 1;
  if (high < 0 || totalAt(breakpoints[high] ?? 0) < capacityLp) {
    // Unreachable: the sum at the largest breakpoint is Σ u > C. Crash loudly rather than hand out garbage.
    throw new Error(`entitlement: no breakpoint reaches capacity ${capacityLp} (Σ ceilings ${ceilingSumLp})`);
  }
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (totalAt(breakpoints[middle] ?? 0) >= capacityLp) high = middle;
    else low = middle + 1;
  }
  const highLambda = breakpoints[low] ?? 0;
  const lowLambda = low > 0 ? (breakpoints[low - 1] ?? 0) : 0;

  // On (lowLambda, highLambda) every demand is in one of three constant states.
  const atFloor = 0;
  const between = 1;
  const atCeiling = 2;
  const states = new Uint8Array(count);
  let clampedLp = 0;
  let freeWeight = 0;
  demands.forEach((d, i) => {
    if ((highRatios[i] ?? 0) <= lowLambda) {
      clampedLp += d.ceilingLp;
      states[i] = atCeiling;
    } else if ((lowRatios[i] ?? 0) >= highLambda) {
      clampedLp += d.floorLp;
      states[i] = atFloor;
    } else {
      freeWeight += d.weight;
      states[i] = between;
    }
  });
  if (freeWeight <= 0) {
    throw new Error('entitlement: the crossing segment has no partition between floor and ceiling');
  }
  // Dividing the remaining capacity by the original weights (rather than multiplying by λ) keeps
  // simple cases exact: 1 LP over weights 100/200/700 gives 0.1/0.2/0.7, not 0.7000000000000001.
  const remainingLp = capacityLp - clampedLp;
  demands.forEach((d, i) => {
    const state = states[i];
    const share =
      state === atCeiling
        ? d.ceilingLp
        : state === atFloor
          ? d.floorLp
          : clamp((remainingLp * d.weight) / freeWeight, d.floorLp, d.ceilingLp);
    result.set(d.id, share);
  });
  return result;
}

function assertInputs(capacityLp: number, demands: readonly EntitlementDemand[]): void {
  if (!Number.isFinite(capacityLp) || capacityLp < 0) {
    throw new RangeError(`capacityLp must be a finite number >= 0, got ${capacityLp}`);
  }
  const seen = new Set<string>();
  for (const d of demands) {
    if (seen.has(d.id)) throw new RangeError(`duplicate demand id ${d.id}`);
    seen.add(d.id);
    if (!Number.isFinite(d.weight) || d.weight <= 0) throw new RangeError(`${d.id}: weight must be > 0, got ${d.weight}`);
    if (!Number.isFinite(d.floorLp) || d.floorLp < 0) {
      throw new RangeError(`${d.id}: floorLp must be a finite number >= 0, got ${d.floorLp}`);
    }
    if (!Number.isFinite(d.ceilingLp) || d.ceilingLp < d.floorLp) {
      throw new RangeError(`${d.id}: ceilingLp must be finite and >= floorLp (${d.floorLp}), got ${d.ceilingLp}`);
    }
  }
}

function clamp(value: number, low: number, high: number): number {
  return Math.min(high, Math.max(low, value));
}

