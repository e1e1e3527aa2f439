/**
 * Dynamic Memory balancer for the simulator (../shared/reference/hypervisor-models.md §2.1–2.3).
 *
 * Microsoft does not publish the balancer's algorithm; this is the [D] model of §2.3, simplified:
 * - target = clamp(ceilChunk(demand × (1 + buffer)), min, max): what the partition should get when
 *   memory is plentiful (a 20 % buffer aims at pressure 100/1.2 = 83).
 * - When the pool cannot give every partition its target, everyone first gets its minimum, then
 *   the memory it needs without buffer, then its buffer, each stage filled in descending memory
 *   weight (ties by partition id, so the outcome is deterministic). The lowest weight is therefore
 *   the first to be ballooned down, and nobody goes below its minimum.
 * - A goal is reached in one balancer pass (no balloon rate limit yet): growth first deflates the
 *   balloon, then hot-adds memory in 128 MiB chunks (Linux hv_balloon HA_CHUNK); any part of the
 *   last chunk beyond the goal stays ballooned, so the host commits exactly the goal.
 */

/** Linux hv_balloon hot-add chunk (drivers/hv/hv_balloon.c HA_CHUNK). */
export const hotAddChunkMiB = 128;

export interface BalancerInput {
  readonly id: string;
  readonly minMiB: number;
  readonly maxMiB: number;
  readonly bufferPct: number;
  /** Memory weight 0–10000: higher keeps its memory longer when the pool is short. */
  readonly weight: number;
  /** Memory the guest has committed and wants. */
  readonly demandMiB: number;
}

/**
 * Goal (MiB to assign) per id for the partitions sharing poolMiB. Requires Σ minMiB <= poolMiB,
 * which start admission guarantees (every partition starts at startup >= min within the free pool,
 * and assignments never go below min); a violation is a bug and throws.
 */
export function computeMemoryGoals(poolMiB: number, inputs: readonly BalancerInput[]): Map<string, number> {
  const goals = new Map<string, number>();
  const needs = new Map<string, number>();
  const targets = new Map<string, number>();
  for (const input of inputs) {
    needs.set(input.id, clamp(Math.ceil(input.demandMiB), input.minMiB, input.maxMiB));
    const buffered = ceilToChunk(input.demandMiB * (1 + input.bufferPct / 100));
    targets.set(input.id, clamp(buffered, input.minMiB, input.maxMiB));
  }
  const targetSumMiB = sumOf(inputs, (i) => targets.get(i.id) ?? 0);
  if (targetSumMiB <= poolMiB) {
    for (const input of inputs) goals.set(input.id, targets.get(input.id) ?? input.minMiB);
    return goals;
  }

  const minSumMiB = sumOf(inputs, (i) => i.minMiB);
  if (minSumMiB > poolMiB) {
    throw new Error(`memory balancer: minimums (${minSumMiB} MiB) exceed the pool (${poolMiB} MiB)`);
  }
  for (const input of inputs) goals.set(input.id, input.minMiB);
  let remainingMiB = poolMiB - minSumMiB;
  const byWeight = [...inputs].sort((a, b) => b.weight - a.weight || compareIds(a.id, b.id));
  for (const stage of [needs, targets]) {
    for (const input of byWeight) {
      const goal = goals.get(input.id) ?? input.minMiB;
      const grantMiB = Math.min(Math.max(0, (stage.get(input.id) ?? goal) - goal), remainingMiB);
      goals.set(input.id, goal + grantMiB);
      remainingMiB -= grantMiB;
    }
  }
  return goals;
}

/** The memory state of one dynamic-memory partition. */
export interface DynamicMemoryState {
  /** Memory the guest sees installed: startup plus hot-added (hot-add cannot be undone while running). */
  readonly visibleMiB: number;
  /** Memory taken back from the guest by its balloon driver. */
  readonly balloonedMiB: number;
}

/** Assigned (host-committed) memory of a dynamic partition. */
export function assignedMiBOf(state: DynamicMemoryState): number {
  return state.visibleMiB - state.balloonedMiB;
}

/**
 * Moves one partition to goalMiB: growth deflates the balloon first, then hot-adds whole chunks
 * (capped at maxMiB); shrinking inflates the balloon. The caller keeps goalMiB within [min, max].
 */
export function moveToGoal(state: DynamicMemoryState, goalMiB: number, maxMiB: number): DynamicMemoryState {
  const assignedMiB = assignedMiBOf(state);
  if (goalMiB <= assignedMiB) return { visibleMiB: state.visibleMiB, balloonedMiB: state.balloonedMiB + assignedMiB - goalMiB };
  if (goalMiB <= state.visibleMiB) return { visibleMiB: state.visibleMiB, balloonedMiB: state.visibleMiB - goalMiB };
  const visibleMiB = Math.min(maxMiB, state.visibleMiB + ceilToChunk(goalMiB - state.visibleMiB));
  if (visibleMiB < goalMiB) throw new Error(`memory balancer: goal ${goalMiB} MiB is above max ${maxMiB} MiB`);
  return { visibleMiB, balloonedMiB: visibleMiB - goalMiB };
}

function ceilToChunk(mib: number): number {
  return Math.ceil(mib / hotAddChunkMiB) * hotAddChunkMiB;
}

function clamp(value: number, low: number, high: number): number {
  return Math.min(high, Math.max(low, value));
}

function sumOf<T>(items: readonly T[], amountOf: (item: T) => number): number {
  let total = 0;
  for (const item of items) total += amountOf(item);
  return total;
}

/** Plain code-unit order, independent of the locale, so runs replay identically everywhere. */
export function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
