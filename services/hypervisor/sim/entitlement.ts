/**
 * CPU entitlement: weighted max-min fairness with floors and ceilings ("water-filling").
 *
 * Model from ../shared/reference/hypervisor-models.md §1.9 (the "clamp" policy, the default there):
 *   if Σ u_i <= C: x_i = u_i             (no contention: everybody gets what it can use)
 *   else: find λ >= 0 with Σ clamp(λ·w_i, f_i, u_i) = C, and x_i = clamp(λ·w_i, f_i, u_i)
 * A reserve is a floor, a limit (or a low demand) is a ceiling, and weights divide whatever remains
 * only among the partitions strictly between their floor and ceiling.
 *
 * λ is found exactly, not by bisection: Σ clamp(λ·w_i, f_i, u_i) is piecewise linear and
 * non-decreasing in λ with breakpoints at f_i/w_i and u_i/w_i, so we walk the sorted breakpoints to
 * the segment where the sum crosses C and solve that segment's linear equation.
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

  const ceilingSumLp = sum(demands.map((d) => d.ceilingLp));
  if (ceilingSumLp <= capacityLp) {
    for (const d of demands) result.set(d.id, d.ceilingLp);
    return result;
  }

  const floorSumLp = sum(demands.map((d) => d.floorLp));
  if (floorSumLp >= capacityLp) {
    // floorSumLp > 0 here, because capacityLp >= 0 and ceilingSumLp > capacityLp >= 0 implies a demand exists;
    // if capacityLp is 0 and all floors are 0, the factor is 0/0, so guard it.
    const factor = floorSumLp === 0 ? 0 : capacityLp / floorSumLp;
    for (const d of demands) result.set(d.id, d.floorLp * factor);
    return result;
  }

  // Contention with feasible floors: Σ f < C < Σ u. Weights are normalized to (0, 1] so that a ratio
  // u/w is never smaller than u: a positive ceiling always has a positive breakpoint (no underflow).
  const weightMax = Math.max(...demands.map((d) => d.weight));
  const weights = demands.map((d) => Math.max(d.weight / weightMax, Number.MIN_VALUE));
  const lowRatios = demands.map((d, i) => d.floorLp / (weights[i] ?? 1));
  const highRatios = demands.map((d, i) => d.ceilingLp / (weights[i] ?? 1));
  // A demand's share at λ, deciding the clamped cases by comparing λ with its breakpoints rather than
  // by multiplying back: (u/w)·w can round below u, and then Σ at the last breakpoint would miss Σ u.
  const shareAt = (lambda: number, i: number): number => {
    const d = demands[i];
    if (d === undefined) return 0;
    if (lambda >= (highRatios[i] ?? 0)) return d.ceilingLp;
    if (lambda <= (lowRatios[i] ?? 0)) return d.floorLp;
    return clamp(lambda * (weights[i] ?? 0), d.floorLp, d.ceilingLp);
  };
  const totalAt = (lambda: number): number => sum(demands.map((_, i) => shareAt(lambda, i)));
  const breakpoints = [...new Set([...lowRatios, ...highRatios])].filter((b) => b > 0).sort((a, b) => a - b);

  let lowLambda = 0;
  let highLambda = Number.NaN;
  for (const breakpoint of breakpoints) {
    if (totalAt(breakpoint) >= capacityLp) {
      highLambda = breakpoint;
      break;
    }
    lowLambda = breakpoint;
  }
  if (Number.isNaN(highLambda)) {
    // Unreachable: totalAt(largest breakpoint) = Σ u > C. Crash loudly rather than hand out garbage.
    throw new Error(`entitlement: no breakpoint reaches capacity ${capacityLp} (Σ ceilings ${ceilingSumLp})`);
  }

  // On (lowLambda, highLambda) every demand is in one of three constant states.
  let clampedLp = 0;
  let freeWeight = 0;
  const states = demands.map((d, i): 'ceiling' | 'floor' | 'free' => {
    if ((highRatios[i] ?? 0) <= lowLambda) {
      clampedLp += d.ceilingLp;
      return 'ceiling';
    }
    if ((lowRatios[i] ?? 0) >= highLambda) {
      clampedLp += d.floorLp;
      return 'floor';
    }
    freeWeight += d.weight;
    return 'free';
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
      state === 'ceiling'
        ? d.ceilingLp
        : state === 'floor'
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

function sum(values: readonly number[]): number {
  let total = 0;
  for (const value of values) total += value;
  return total;
}
