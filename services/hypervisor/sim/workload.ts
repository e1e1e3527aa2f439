/**
 * Simulated guest CPU demand over virtual time: the three patterns of WorkloadProfile.cpuPattern.
 *
 * - constant: cpuDemandPct all the time.
 * - periodic: cpuDemandPct for the first cpuDutyPct % of every cpuPeriodMs, cpuLowPct for the rest;
 *   periods are counted from the origin (the time the workload was set), so the phase is fixed.
 * - bursty: alternating busy (cpuDemandPct) and idle (cpuLowPct) spells whose lengths are drawn
 *   from the injected seeded source, exponentially distributed with mean busy = cpuDutyPct % of
 *   cpuPeriodMs and mean idle = the rest. The first spell is busy with probability cpuDutyPct %
 *   (the long-run share), so a fresh workload starts in its stationary state.
 *
 * Pure apart from the injected RandomSource, which only bursty workloads draw from, and only when a
 * spell ends: the same seed and the same sequence of calls give the same demands, bit for bit.
 */
import type { WorkloadProfile } from '../port.ts';
import type { RandomSource } from './random.ts';

/** Where a bursty workload is: in a busy or idle spell that ends at spellEndMs (virtual time). */
export interface BurstState {
  readonly busy: boolean;
  readonly spellEndMs: number;
}

/** Shortest spell drawn, so that every draw moves time forward. */
export const spellMsMin = 0.001;
/**
 * Most spells walked through in one call. Mean spells are at least a period apart (cpuPeriodMs >= 10
 * in validation), so a 10 ms quantum sees about one; beyond this bound (a long fast-forward) the
 * rest of the interval counts at the workload's mean duty and the state is drawn afresh at its end.
 */
export const spellCountMax = 1000;

export interface DemandOverInterval {
  /** Average demand over the interval, % of the partition's vCPU capacity. */
  readonly demandPct: number;
  /** The bursty state at the end of the interval (null for the other patterns). */
  readonly burst: BurstState | null;
}

/**
 * Average CPU demand of the workload over [fromMs, toMs) of virtual time, and the bursty state at
 * toMs. originMs is when the workload was set (periodic phase); burst is the state returned by the
 * previous call for this workload, whose interval ended at fromMs (null at first: drawn from the
 * stationary distribution at fromMs).
 */
export function cpuDemandOver(
  workload: WorkloadProfile,
  originMs: number,
  burst: BurstState | null,
  fromMs: number,
  toMs: number,
  random: RandomSource,
): DemandOverInterval {
  const lengthMs = toMs - fromMs;
  const high = workload.cpuDemandPct;
  const low = workload.cpuLowPct;
  const dutyShare = workload.cpuDutyPct / 100;
  if (!(lengthMs > 0)) return { demandPct: cpuDemandPctAt(workload, originMs, burst, fromMs), burst };
  if (workload.cpuPattern === 'constant' || dutyShare >= 1) return { demandPct: high, burst: null };
  if (dutyShare <= 0) return { demandPct: low, burst: null };

  if (workload.cpuPattern === 'periodic') {
    const busyMs = periodicBusyMsUntil(workload, toMs - originMs) - periodicBusyMsUntil(workload, fromMs - originMs);
    return { demandPct: mix(busyMs / lengthMs, high, low), burst: null };
  }

  // A state that ended before the interval (the workload was not followed meanwhile, e.g. while
  // paused) is stale; spells are memoryless, so a fresh draw is as good as walking the gap.
  let state = burst !== null && burst.spellEndMs > fromMs ? burst : initialBurst(workload, fromMs, random);
  let atMs = fromMs;
  let busyMs = 0;
  for (let spell = 0; spell < spellCountMax; spell += 1) {
    const untilMs = Math.min(state.spellEndMs, toMs);
    if (state.busy) busyMs += untilMs - atMs;
    atMs = untilMs;
    if (state.spellEndMs > toMs) return { demandPct: mix(busyMs / lengthMs, high, low), burst: state };
    state = nextSpell(workload, state, random);
  }
  // Bound reached: the rest of the interval at the mean duty, and a fresh state at its end.
  busyMs += (toMs - atMs) * dutyShare;
  return { demandPct: mix(busyMs / lengthMs, high, low), burst: initialBurst(workload, toMs, random) };
}

/** Demand at one instant (busy or idle value); for a bursty workload, per its current state. */
export function cpuDemandPctAt(workload: WorkloadProfile, originMs: number, burst: BurstState | null, atMs: number): number {
  const dutyShare = workload.cpuDutyPct / 100;
  if (workload.cpuPattern === 'constant' || dutyShare >= 1) return workload.cpuDemandPct;
  if (dutyShare <= 0) return workload.cpuLowPct;
  if (workload.cpuPattern === 'periodic') {
    const phaseMs = positiveModulo(atMs - originMs, workload.cpuPeriodMs);
    return phaseMs < dutyShare * workload.cpuPeriodMs ? workload.cpuDemandPct : workload.cpuLowPct;
  }
  return burst === null || burst.busy ? workload.cpuDemandPct : workload.cpuLowPct;
}

/** Busy time of a periodic workload in [0, sinceOriginMs) (negative times count backwards). */
function periodicBusyMsUntil(workload: WorkloadProfile, sinceOriginMs: number): number {
  const periodMs = workload.cpuPeriodMs;
  const busyPerPeriodMs = (workload.cpuDutyPct / 100) * periodMs;
  const periods = Math.floor(sinceOriginMs / periodMs);
  const phaseMs = sinceOriginMs - periods * periodMs;
  return periods * busyPerPeriodMs + Math.min(phaseMs, busyPerPeriodMs);
}

function initialBurst(workload: WorkloadProfile, atMs: number, random: RandomSource): BurstState {
  const busy = random.nextFloat() < workload.cpuDutyPct / 100;
  return { busy, spellEndMs: atMs + spellMs(workload, busy, random) };
}

function nextSpell(workload: WorkloadProfile, state: BurstState, random: RandomSource): BurstState {
  const busy = !state.busy;
  return { busy, spellEndMs: state.spellEndMs + spellMs(workload, busy, random) };
}

/** An exponentially distributed spell length with the mean of a busy or an idle spell. */
function spellMs(workload: WorkloadProfile, busy: boolean, random: RandomSource): number {
  const dutyShare = workload.cpuDutyPct / 100;
  const meanMs = (busy ? dutyShare : 1 - dutyShare) * workload.cpuPeriodMs;
  // 1 − u is in (0, 1], so the logarithm is finite.
  return Math.max(spellMsMin, -meanMs * Math.log(1 - random.nextFloat()));
}

function mix(busyShare: number, high: number, low: number): number {
  const share = Math.min(1, Math.max(0, busyShare));
  return share * high + (1 - share) * low;
}

function positiveModulo(value: number, modulus: number): number {
  return ((value % modulus) + modulus) % modulus;
}
