/**
 * Dynamic Memory balancer for the simulator (../shared/reference/hypervisor-models.md §2.1–2.3).
 *
 * Microsoft does not publish the balancer's algorithm; this is the [D] model of §2.3:
 * - need = clamp(demand, min, max): the memory the guest has committed.
 * - target = clamp(⌈demand × (1 + buffer)⌉, min, max): what the partition should get when memory is
 *   plentiful. The doc's example: 1000 MB committed with a 20 % buffer → 1200 MB (pressure 100/1.2 = 83).
 * - Every balancer pass (once per second in the sim), within the pool (physical memory less the
 *   parent reserve, less what static and paused partitions hold): if every target fits, everyone
 *   gets its target. Otherwise three phases, each finished before the next starts:
 *     1. everyone gets its minimum (admission guarantees the minimums fit);
 *     2. then its need above the minimum, by weight;
 *     3. then its buffer (target above need), by weight.
 *   "By weight": higher memory weights are served completely before lower ones (so the lowest
 *   weight is the first to be ballooned down, and a higher weight never loses memory to a lower one
 *   under pressure); partitions of equal weight share what is left equally (max-min fair, whole MiB,
 *   the odd MiB going in partition-id order so the outcome is deterministic).
 * - A goal is reached in one balancer pass (no balloon rate limit yet): growth first deflates the
 *   balloon, then hot-adds memory in 128 MiB chunks (Linux hv_balloon HA_CHUNK); any part of the
 *   last chunk beyond the goal stays ballooned, so the host commits exactly the goal. Shrinking
 *   inflates the balloon; nothing goes below its minimum.
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

/** Memory the partition needs without buffer: its demand within [min, max], whole MiB. */
export function memoryNeedMiB(input: BalancerInput): number {
  return clamp(Math.ceil(input.demandMiB), input.minMiB, input.maxMiB);
}

/** What the balancer aims at when memory is plentiful: demand × (1 + buffer) within [min, max], whole MiB. */
export function memoryTargetMiB(input: BalancerInput): number {
  // × (100 + b) ÷ 100 rather than × (1 + b/100): exact for whole-MiB demands and whole-percent buffers.
  return clamp(Math.ceil((input.demandMiB * (100 + input.bufferPct)) / 100), input.minMiB, input.maxMiB);
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
    needs.set(input.id, memoryNeedMiB(input));
    targets.set(input.id, memoryTargetMiB(input));
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
    for (let first = 0; first < byWeight.length && remainingMiB > 0; ) {
      let end = first;
      while (end < byWeight.length && byWeight[end]?.weight === byWeight[first]?.weight) end += 1;
      const group = byWeight.slice(first, end);
      const wants = group.map((input) => Math.max(0, (stage.get(input.id) ?? 0) - (goals.get(input.id) ?? 0)));
      const grants = shareEqually(remainingMiB, wants);
      group.forEach((input, i) => {
        const grantMiB = grants[i] ?? 0;
        goals.set(input.id, (goals.get(input.id) ?? input.minMiB) + grantMiB);
        remainingMiB -= grantMiB;
      });
      first = end;
    }
  }
  return goals;
}

/**
 * Max-min fair split of availableMiB (whole MiB) among wants (whole MiB, in id order): everyone
 * gets min(want, level); what the level's rounding leaves goes one MiB each in order.
 */
function shareEqually(availableMiB: number, wants: readonly number[]): number[] {
  const wantSumMiB = wants.reduce((total, want) => total + want, 0);
  if (wantSumMiB <= availableMiB) return [...wants];
  const grants = wants.map(() => 0);
  const open = wants.map((_, i) => i).sort((a, b) => (wants[a] ?? 0) - (wants[b] ?? 0) || a - b);
  let leftMiB = availableMiB;
  let index = 0;
  // Serve the smallest wants in full while they are below an equal share of what is left.
  while (index < open.length) {
    const i = open[index] ?? 0;
    const levelMiB = Math.floor(leftMiB / (open.length - index));
    if ((wants[i] ?? 0) > levelMiB) break;
    grants[i] = wants[i] ?? 0;
    leftMiB -= grants[i] ?? 0;
    index += 1;
  }
  const rest = open.slice(index).sort((a, b) => a - b);
  const levelMiB = Math.floor(leftMiB / Math.max(1, rest.length));
  for (const i of rest) {
    grants[i] = levelMiB;
    leftMiB -= levelMiB;
  }
  for (const i of rest) {
    if (leftMiB <= 0) break;
    grants[i] = (grants[i] ?? 0) + 1;
    leftMiB -= 1;
  }
  return grants;
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
