/**
 * The simulated hypervisor: a deterministic, in-memory implementation of the Hypervisor port.
 *
 * Determinism: time comes only from the injected clock and randomness only from the injected
 * RandomSource, and every iteration over partitions is in partition-id order, so the same seed and
 * the same sequence of calls give the same results. Time advances only through tick(elapsedMs):
 * the sim never reads a timer of its own.
 *
 * Lifecycle (idempotent per (partitionId, incarnation), as the port requires):
 * - start of the incarnation that already runs returns its status and changes nothing;
 * - start of a newer incarnation turns the older one off first: a host never runs two copies of a
 *   partition. The older one stays off even if the newer one is then refused for lack of memory,
 *   because the caller has already superseded it;
 * - start of an incarnation older than the one running (or saved) is refused ('invalid-state');
 * - stop/turnOff of a partition that does not run, or of another incarnation than the one running,
 *   succeed without doing anything, so a retried or stale stop can never kill a newer incarnation;
 * - pause/resume/setProcessor/setMemory/save need that exact incarnation running ('not-found');
 * - save takes the partition off the host and keeps its state; start of the same incarnation
 *   restores it (same startedAtMs, same memory), stop/turnOff of that incarnation discards it.
 *
 * Time: tick(elapsedMs) advances virtual time in quanta (default 10 ms): each quantum the workloads
 * offer their CPU demand (./workload.ts) and the quantum scheduler (./scheduler.ts) dispatches vCPUs
 * onto LPs, honouring reserve, limit (lowered by any throttle, setThrottle) and weight; every
 * memoryBalancerPeriodMs (1 s) of virtual time the Dynamic Memory balancer (./memory.ts) runs. Time
 * not worth a whole quantum is carried to the next tick. A tick does bounded work: beyond
 * quantaPerTickMax quanta (60 s), the older part of the interval is fast-forwarded with the fluid
 * model instead (entitlements from ./entitlement.ts, no dispatches), so a stalled sim-host process
 * cannot make one tick run for minutes.
 *
 * Usage (hypervisor-models.md §1.4, §1.9, §2.2–2.3): usage() returns the CPU figures the scheduler
 * measured over the last tick (cheap: nothing is computed on the call) with the memory figures as
 * they are now; cpuEntitlementLp is the water-filling figure for the tick's average demands, the
 * reference the measured cpuLp converges to.
 *
 * Host limits (§1.3): vCPUs per partition, partitions and vCPUs per host and the vCPU:LP ratio are
 * checked at start, per the limitsPreset ('modern' by default, or 'r2': Hyper-V 2008 R2).
 *
 * Watchdog (the port's Watchdog capability, for HA self-fencing): expiry is judged on the injected
 * clock. Every call (tick() and checkWatchdog() included) first fires a watchdog whose expiry has
 * come (now >= expiresAtMs): every Running or Paused partition is turned off, in id order, each with
 * a 'fenced' observation stamped with the time it went off, then the watchdog disarms and counts the
 * firing. The sim has no timer, so it fires when it is next called at or after its expiry: a host
 * process calls checkWatchdog() on a short timer of its own (sim-host.ts).
 */
import {
  type HostInfo,
  type HostUsage,
  type Hypervisor,
  HypervisorError,
  type MemorySettings,
  type PartitionConfig,
  type PartitionStatus,
  type PartitionUsage,
  type ProcessorSettings,
  type RunState,
  type Watchdog,
  type WatchdogStatus,
  type WorkloadProfile,
  watchdogTimeoutMsMax,
  watchdogTimeoutMsMin,
} from '../port.ts';
import { computeEntitlements, type EntitlementDemand } from './entitlement.ts';
import { type HostLimits, type HostLimitsPreset, hostLimitsPresets, isHostLimitsPreset } from './limits.ts';
import { assignedMiBOf, compareIds, computeMemoryGoals, type DynamicMemoryState, moveToGoal } from './memory.ts';
import type { RandomSource } from './random.ts';
import {
  createQuantumScheduler,
  defaultCapPeriodMs,
  defaultQuantumMs,
  dropPendingWork,
  partitionCounters,
  type SchedulerPartition,
} from './scheduler.ts';
import {
  validateIncarnation,
  validateMemory,
  validatePartitionConfig,
  validatePartitionId,
  validateProcessor,
  validateReason,
  validateThrottle,
  validateWorkload,
} from './validate.ts';
import { type BurstState, cpuDemandOver } from './workload.ts';

export interface Clock {
  nowMs(): number;
}

/** Something that happened on the host by itself, not because a caller asked for it. */
export type Observation =
  | {
      readonly kind: 'crashed';
      readonly partitionId: string;
      readonly incarnation: number;
      readonly reason: string;
      readonly atMs: number;
    }
  | { readonly kind: 'stopped-by-guest'; readonly partitionId: string; readonly incarnation: number; readonly atMs: number }
  /** The host's watchdog expired and turned the partition off (self-fencing); atMs is when it went off. */
  | { readonly kind: 'fenced'; readonly partitionId: string; readonly incarnation: number; readonly atMs: number };

export interface SimHypervisorOptions {
  readonly hostId: string;
  readonly logicalProcessors: number;
  readonly memoryMiB: number;
  /** Memory kept for the parent (root) partition; never assigned to guests. */
  readonly parentReserveMiB: number;
  readonly clock: Clock;
  readonly random: RandomSource;
  readonly bootId: string;
  /**
   * Per-tick noise on every workload's CPU and memory demand, as ± percent of the nominal value
   * (0–100, default 0 = demands exactly as configured). Drawn from `random`, so runs replay.
   */
  readonly workloadJitterPct?: number;
  /** CPU the parent (root) partition uses, in LPs (default 0); partitions share the rest. */
  readonly parentCpuLp?: number;
  /** Host scale limits checked at start (default 'modern'; 'r2' = Hyper-V 2008 R2, §1.3). */
  readonly limitsPreset?: HostLimitsPreset;
  /** Scheduler time slice (default 10 ms). */
  readonly quantumMs?: number;
  /** Period over which CPU caps are enforced, a whole number of quanta (default one quantum). */
  readonly capPeriodMs?: number;
}

/** Cumulative counters of one vCPU, measured by the quantum scheduler. */
export interface VcpuAccounting {
  readonly runTimeMs: number;
  /** Time it had work but no LP (contention, or parked at its cap). */
  readonly waitTimeMs: number;
  readonly dispatches: number;
  /** waitTimeMs ÷ dispatches (0 before the first dispatch). */
  readonly waitMsPerDispatch: number;
}

/** Cumulative CPU accounting of one running incarnation, advanced by tick(). */
export interface PartitionAccounting {
  readonly partitionId: string;
  readonly incarnation: number;
  /** CPU time received, in LP-milliseconds. */
  readonly cpuTimeLpMs: number;
  /** Time an average vCPU was ready to run but got no LP, in milliseconds. */
  readonly cpuWaitMs: number;
  /** Dispatches of all its vCPUs. */
  readonly dispatches: number;
  readonly vcpus: readonly VcpuAccounting[];
}

export interface SimHypervisor extends Hypervisor, Watchdog {
  /**
   * Advances virtual time by elapsedMs: the quantum scheduler runs over it (whole quanta; the rest
   * is carried to the next tick), the memory balancer runs every memoryBalancerPeriodMs, workload
   * noise is drawn once per tick, and usage() then reports this tick's measurements.
   */
  tick(elapsedMs: number): void;
  /** Simulates a guest crash of whatever incarnation runs now; it is gone from the host afterwards. */
  crashPartition(partitionId: string, reason: string): void;
  /** Simulates the guest shutting itself down. */
  shutdownFromGuest(partitionId: string): void;
  /** Replaces the simulated guest behaviour of the running partition (null = the defaults). */
  setWorkload(partitionId: string, workload: WorkloadProfile | null): void;
  /**
   * Throttling hook (auto-converge during migration): takes throttlePct % of every vCPU's time
   * away, as QEMU's cpu-throttle-percentage does, so the effective limit becomes
   * min(limitPct, 100 − throttlePct); null lifts the throttle. Needs that exact incarnation running
   * ('not-found' otherwise); a throttle lasts until lifted or until the incarnation leaves the host
   * (a save drops it).
   */
  setThrottle(partitionId: string, incarnation: number, throttlePct: number | null): Promise<void>;
  /** Returns, oldest first, and forgets what happened on its own since the last call. */
  drainObservations(): Observation[];
  /**
   * How many observations were dropped, oldest first, because nobody drained the queue before it
   * held observationCountMax. A reader that missed some finds the outcome with list(): observations
   * only say sooner what reconciliation would find anyway.
   */
  lostObservationCount(): number;
  accounting(): readonly PartitionAccounting[];
  /**
   * Fires the watchdog if it is armed and its expiry has come (every other call does this first
   * too); returns whether it fired. Cheap: a host process calls it on a short timer so fencing is
   * prompt between calls and accounting ticks.
   */
  checkWatchdog(): boolean;
}

/** Observations kept until drained; beyond it the oldest are dropped (and counted, see lostObservationCount). */
export const observationCountMax = 10_000;
/** Logical processors per host: Windows Server 2025's limit (hypervisor-models.md §1.3). */
export const logicalProcessorsMax = hostLimitsPresets.modern.logicalProcessorsMax;
/** The Dynamic Memory balancer re-evaluates about once per second (hypervisor-models.md §2.2). */
export const memoryBalancerPeriodMs = 1000;
/** Most quanta one tick simulates one by one; older time in a longer tick is fast-forwarded. */
export const quantaPerTickMax = 6000;
/** A partition without a workload profile: a busy guest that wants its startup memory. */
const defaultWorkload = {
  cpuDemandPct: 100,
  cpuPattern: 'constant',
  cpuLowPct: 0,
  cpuPeriodMs: 10_000,
  cpuDutyPct: 100,
  dirtyMiBps: 0,
  workingSetMiB: null,
} as const satisfies Omit<WorkloadProfile, 'memoryDemandMiB'>;

interface PartitionRecord {
  readonly partitionId: string;
  readonly incarnation: number;
  readonly vcpus: number;
  readonly startedAtMs: number;
  state: RunState;
  processor: ProcessorSettings;
  memory: MemorySettings;
  memoryState: DynamicMemoryState;
  workload: WorkloadProfile | null;
  /** Virtual time the workload was set (the phase of a periodic pattern). */
  workloadOriginMs: number;
  burst: BurstState | null;
  throttlePct: number | null;
  /** This tick's noise factors (1 without jitter). */
  cpuNoise: number;
  /** Memory demand in effect now: the workload's nominal value plus this tick's noise. */
  memoryDemandMiB: number;
  readonly scheduler: SchedulerPartition;
  /** Σ demand% × ms over the quanta of this tick, for the average demand. */
  demandPctMs: number;
  /** Counters when this tick started. */
  tickStart: { runTimeMs: number; waitTimeMs: number; dispatches: number };
  sample: CpuSample;
}

interface SavedRecord {
  readonly incarnation: number;
  readonly startedAtMs: number;
  readonly memoryState: DynamicMemoryState;
  readonly vcpus: readonly VcpuAccounting[];
}

/** What usage() reports about a partition's CPU: measured over the last tick. */
interface CpuSample {
  readonly cpuLp: number;
  readonly cpuWaitMsPerS: number;
  readonly cpuDemandPct: number;
  readonly cpuEntitlementLp: number;
  readonly dispatchesPerS: number;
  readonly cpuWaitMsPerDispatch: number;
}

const noCpuSample: CpuSample = {
  cpuLp: 0,
  cpuWaitMsPerS: 0,
  cpuDemandPct: 0,
  cpuEntitlementLp: 0,
  dispatchesPerS: 0,
  cpuWaitMsPerDispatch: 0,
};

export function createSimHypervisor(options: SimHypervisorOptions): SimHypervisor {
  assertHostOptions(options);
  const { hostId, logicalProcessors, memoryMiB, parentReserveMiB, clock, random, bootId } = options;
  const jitterPct = options.workloadJitterPct ?? 0;
  const parentCpuLp = options.parentCpuLp ?? 0;
  const limitsPreset = options.limitsPreset ?? 'modern';
  const limits: HostLimits = hostLimitsPresets[limitsPreset];
  const guestPoolMiB = memoryMiB - parentReserveMiB;
  const scheduler = createQuantumScheduler({
    logicalProcessors,
    parentCpuLp,
    quantumMs: options.quantumMs ?? defaultQuantumMs,
    capPeriodMs: options.capPeriodMs ?? options.quantumMs ?? defaultCapPeriodMs,
  });
  const { quantumMs, capacityLp } = scheduler;
  const running = new Map<string, PartitionRecord>();
  const saved = new Map<string, SavedRecord>();
  let observations: Observation[] = [];
  let lostObservationCount = 0;
  /** Virtual time of the next quantum's start. */
  let virtualMs = clock.nowMs();
  /** Elapsed time not yet simulated (less than a quantum). */
  let carriedMs = 0;
  let sinceBalanceMs = 0;
  let sorted: PartitionRecord[] | null = null;
  /** The watchdog: armed while timeoutMs is not null. */
  let watchdogTimeoutMs: number | null = null;
  let watchdogExpiresAtMs: number | null = null;
  let watchdogFiredCount = 0;
  let watchdogLastFiredAtMs: number | null = null;

  /** Running and paused partitions in id order (cached: membership changes rarely, quanta are many). */
  const sortedRecords = (): PartitionRecord[] => {
    sorted ??= [...running.values()].sort((a, b) => compareIds(a.partitionId, b.partitionId));
    return sorted;
  };
  const addRecord = (record: PartitionRecord): void => {
    running.set(record.partitionId, record);
    sorted = null;
  };
  const deleteRecord = (partitionId: string): void => {
    running.delete(partitionId);
    sorted = null;
  };

  const statusOf = (record: PartitionRecord): PartitionStatus => ({
    partitionId: record.partitionId,
    incarnation: record.incarnation,
    state: record.state,
    vcpus: record.vcpus,
    processor: { ...record.processor },
    memory: { ...record.memory },
    memoryAssignedMiB: assignedMiBOf(record.memoryState),
    startedAtMs: record.startedAtMs,
  });

  /** Memory assigned to all partitions on the host (paused ones keep theirs). */
  const committedMiB = (): number => {
    let total = 0;
    for (const record of running.values()) total += assignedMiBOf(record.memoryState);
    return total;
  };

  /** The record of exactly this incarnation, or 'not-found' explaining what runs instead. */
  const requireIncarnation = (partitionId: string, incarnation: number, action: string): PartitionRecord => {
    validatePartitionId(partitionId);
    validateIncarnation(incarnation);
    const record = running.get(partitionId);
    if (!record) {
      throw new HypervisorError('not-found', `cannot ${action} ${partitionId}: it does not run on host ${hostId}`);
    }
    if (record.incarnation !== incarnation) {
      throw new HypervisorError(
        'not-found',
        `cannot ${action} ${partitionId} incarnation ${incarnation}: host ${hostId} runs incarnation ${record.incarnation}`,
      );
    }
    return record;
  };

  const requireRunning = (partitionId: string, action: string): PartitionRecord => {
    validatePartitionId(partitionId);
    const record = running.get(partitionId);
    if (!record) {
      throw new HypervisorError('not-found', `cannot ${action} ${partitionId}: it does not run on host ${hostId}`);
    }
    return record;
  };

  const workloadOf = (record: PartitionRecord): WorkloadProfile =>
    record.workload ?? { ...defaultWorkload, memoryDemandMiB: record.memory.startupMiB };

  /** The scheduler settings from the processor settings, the throttle and the state. */
  const applyProcessor = (record: PartitionRecord): void => {
    const p = record.scheduler;
    const capPct = Math.min(record.processor.limitPct, 100 - (record.throttlePct ?? 0));
    p.weight = record.processor.weight;
    p.capShare = capPct / 100;
    p.reserveShare = Math.min(record.processor.reservePct, capPct) / 100;
    if (record.state === 'Paused') {
      p.demandShare = 0;
      dropPendingWork(p);
    }
  };

  const observe = (observation: Observation): void => {
    if (observations.length >= observationCountMax) {
      observations.shift();
      lostObservationCount += 1;
    }
    observations.push(observation);
  };

  /** nominal × (1 ± jitter), uniformly; only called when jitterPct > 0 so a quiet sim draws nothing. */
  const noise = (): number => 1 + (jitterPct / 100) * (2 * random.nextFloat() - 1);

  const watchdogStatusNow = (): WatchdogStatus => ({
    armed: watchdogTimeoutMs !== null,
    timeoutMs: watchdogTimeoutMs,
    expiresAtMs: watchdogExpiresAtMs,
    firedCount: watchdogFiredCount,
    lastFiredAtMs: watchdogLastFiredAtMs,
  });

  /** Fires the watchdog if its expiry has come: every partition on the host goes off. Runs first in every call. */
  const fireWatchdogIfExpired = (): boolean => {
    if (watchdogExpiresAtMs === null) return false;
    const nowMs = clock.nowMs();
    if (nowMs < watchdogExpiresAtMs) return false;
    for (const record of sortedRecords()) {
      observe({ kind: 'fenced', partitionId: record.partitionId, incarnation: record.incarnation, atMs: nowMs });
    }
    running.clear();
    sorted = null;
    watchdogTimeoutMs = null;
    watchdogExpiresAtMs = null;
    watchdogFiredCount += 1;
    watchdogLastFiredAtMs = nowMs;
    return true;
  };

  /** Host-limit admission (§1.3) for a start of this config, with any older incarnation already off. */
  const checkHostLimits = (config: PartitionConfig): void => {
    const subject = `cannot start ${config.partitionId} incarnation ${config.incarnation}`;
    let partitions = 1;
    let vcpus = config.vcpus;
    for (const record of running.values()) {
      partitions += 1;
      vcpus += record.vcpus;
    }
    if (partitions > limits.partitionsPerHostMax) {
      throw new HypervisorError(
        'invalid-config',
        `${subject}: host ${hostId} would run ${partitions} partitions, above the ${limitsPreset} limit of ` +
          `${limits.partitionsPerHostMax} running partitions per host (partitionsPerHostMax)`,
      );
    }
    if (vcpus > limits.vcpusPerHostMax) {
      throw new HypervisorError(
        'invalid-config',
        `${subject}: host ${hostId} would run ${vcpus} vCPUs, above the ${limitsPreset} limit of ` +
          `${limits.vcpusPerHostMax} vCPUs per host (vcpusPerHostMax)`,
      );
    }
    const ratioMax = limits.vcpusPerLpRatioMax;
    if (ratioMax > 0 && vcpus > ratioMax * logicalProcessors) {
      throw new HypervisorError(
        'invalid-config',
        `${subject}: host ${hostId} would run ${vcpus} vCPUs on ${logicalProcessors} logical processors, above the ` +
          `${limitsPreset} limit of ${ratioMax}:1 vCPUs per logical processor (vcpusPerLpRatioMax)`,
      );
    }
  };

  const balanceMemory = (): void => {
    // Static partitions and paused guests (whose balloon drivers cannot respond) keep what they have.
    const balanced = sortedRecords().filter((r) => r.memory.mode === 'dynamic' && r.state === 'Running');
    const fixedMiB = committedMiB() - balanced.reduce((total, r) => total + assignedMiBOf(r.memoryState), 0);
    const goals = computeMemoryGoals(
      guestPoolMiB - fixedMiB,
      balanced.flatMap((record) =>
        record.memory.mode === 'dynamic'
          ? [
              {
                id: record.partitionId,
                minMiB: record.memory.minMiB,
                maxMiB: record.memory.maxMiB,
                bufferPct: record.memory.bufferPct,
                weight: record.memory.weight,
                demandMiB: record.memoryDemandMiB,
              },
            ]
          : [],
      ),
    );
    for (const record of balanced) {
      const goalMiB = goals.get(record.partitionId);
      if (goalMiB === undefined || record.memory.mode !== 'dynamic') continue;
      record.memoryState = moveToGoal(record.memoryState, goalMiB, record.memory.maxMiB);
    }
    const afterMiB = committedMiB();
    if (afterMiB > guestPoolMiB) {
      throw new Error(`sim ${hostId}: ${afterMiB} MiB assigned exceeds the guest pool of ${guestPoolMiB} MiB`);
    }
  };

  /** One quantum: the workloads' demand over it, then the scheduler. */
  const runQuantum = (records: readonly PartitionRecord[], partitions: readonly SchedulerPartition[]): void => {
    const endMs = virtualMs + quantumMs;
    for (const record of records) {
      if (record.state !== 'Running') continue;
      const demand = cpuDemandOver(workloadOf(record), record.workloadOriginMs, record.burst, virtualMs, endMs, random);
      record.burst = demand.burst;
      const demandPct = Math.min(100, Math.max(0, demand.demandPct * record.cpuNoise));
      record.scheduler.demandShare = demandPct / 100;
      record.demandPctMs += demandPct * quantumMs;
    }
    scheduler.runQuantum(partitions, virtualMs);
    virtualMs = endMs;
  };

  /**
   * The fluid model over skippedMs (a tick beyond quantaPerTickMax): each partition gets its
   * entitlement for its average demand, spread evenly over its vCPUs; the shortfall is wait time.
   */
  const fastForward = (records: readonly PartitionRecord[], skippedMs: number): void => {
    const fromMs = virtualMs;
    const toMs = virtualMs + skippedMs;
    const demands = new Map<string, number>();
    for (const record of records) {
      if (record.state !== 'Running') continue;
      // Over a long stretch, bursty spells average out; a fresh state is drawn at its end.
      const workload = workloadOf(record);
      const demand = cpuDemandOver(workload, record.workloadOriginMs, null, fromMs, toMs, random);
      record.burst = null;
      const demandPct = Math.min(100, Math.max(0, demand.demandPct * record.cpuNoise));
      demands.set(record.partitionId, demandPct);
      record.demandPctMs += demandPct * skippedMs;
    }
    const entitlements = entitlementsFor(records, demands);
    for (const record of records) {
      const demandPct = demands.get(record.partitionId) ?? 0;
      const gotLp = entitlements.get(record.partitionId) ?? 0;
      const perVcpuRunMs = (gotLp / record.vcpus) * skippedMs;
      const perVcpuWaitMs = Math.max(0, (demandPct / 100) * skippedMs - perVcpuRunMs);
      for (const vcpu of record.scheduler.vcpus) {
        vcpu.runTimeMs += perVcpuRunMs;
        vcpu.waitTimeMs += perVcpuWaitMs;
      }
    }
    virtualMs = toMs;
  };

  /** Water-filling entitlements (§1.9) for these CPU demands (% of each partition's vCPUs). */
  const entitlementsFor = (records: readonly PartitionRecord[], demandPcts: ReadonlyMap<string, number>): Map<string, number> =>
    computeEntitlements(
      capacityLp,
      records.map((record): EntitlementDemand => {
        const demandPct = record.state === 'Paused' ? 0 : (demandPcts.get(record.partitionId) ?? 0);
        const p = record.scheduler;
        const ceilingLp = Math.min(p.capShare, demandPct / 100) * record.vcpus;
        return {
          id: record.partitionId,
          weight: record.processor.weight,
          floorLp: Math.min(p.reserveShare * record.vcpus, ceilingLp),
          ceilingLp,
        };
      }),
    );

  const hypervisor: SimHypervisor = {
    async info(): Promise<HostInfo> {
      fireWatchdogIfExpired();
      return { hostId, logicalProcessors, memoryMiB, parentReserveMiB, bootId };
    },

    async start(config: PartitionConfig): Promise<PartitionStatus> {
      fireWatchdogIfExpired();
      validatePartitionConfig(config, logicalProcessors, limits, limitsPreset);
      const { partitionId, incarnation } = config;
      const current = running.get(partitionId);
      if (current && current.incarnation === incarnation) return statusOf(current);
      if (current && current.incarnation > incarnation) {
        throw new HypervisorError(
          'invalid-state',
          `cannot start ${partitionId} incarnation ${incarnation}: newer incarnation ${current.incarnation} runs on host ${hostId}`,
        );
      }
      const savedRecord = saved.get(partitionId);
      if (savedRecord && savedRecord.incarnation > incarnation) {
        throw new HypervisorError(
          'invalid-state',
          `cannot start ${partitionId} incarnation ${incarnation}: newer incarnation ${savedRecord.incarnation} is saved on host ${hostId}`,
        );
      }
      if (current) deleteRecord(partitionId);
      checkHostLimits(config);

      const restoring = savedRecord?.incarnation === incarnation ? savedRecord : null;
      const memoryState = restoring ? restoredMemory(restoring.memoryState, config.memory) : bootMemory(config.memory);
      const requiredMiB = assignedMiBOf(memoryState);
      // Any older incarnation is already off, so everything committed belongs to other partitions.
      const availableMiB = guestPoolMiB - committedMiB();
      if (requiredMiB > availableMiB) {
        throw new HypervisorError(
          'insufficient-memory',
          `cannot ${restoring ? 'restore' : 'start'} ${partitionId} incarnation ${incarnation}: it needs ${requiredMiB} MiB, ` +
            `host ${hostId} has ${availableMiB} MiB available (${memoryMiB} MiB − ${parentReserveMiB} MiB parent reserve − ` +
            `${guestPoolMiB - availableMiB} MiB assigned to other partitions)`,
        );
      }
      if (savedRecord) saved.delete(partitionId);
      const schedulerPartition = scheduler.createPartition(partitionId, config.vcpus);
      // A restored guest keeps its counters (cumulative per incarnation).
      restoring?.vcpus.forEach((counters, i) => {
        const vcpu = schedulerPartition.vcpus[i];
        if (!vcpu) return;
        vcpu.runTimeMs = counters.runTimeMs;
        vcpu.waitTimeMs = counters.waitTimeMs;
        vcpu.dispatches = counters.dispatches;
      });
      const workload = config.workload ? { ...config.workload } : null;
      const record: PartitionRecord = {
        partitionId,
        incarnation,
        vcpus: config.vcpus,
        startedAtMs: restoring ? restoring.startedAtMs : clock.nowMs(),
        state: 'Running',
        processor: { ...config.processor },
        memory: { ...config.memory },
        memoryState,
        workload,
        workloadOriginMs: virtualMs,
        burst: null,
        throttlePct: null,
        cpuNoise: 1,
        memoryDemandMiB: workload?.memoryDemandMiB ?? config.memory.startupMiB,
        scheduler: schedulerPartition,
        demandPctMs: 0,
        tickStart: partitionCounters(schedulerPartition),
        sample: noCpuSample,
      };
      applyProcessor(record);
      addRecord(record);
      return statusOf(record);
    },

    async stop(partitionId: string, incarnation: number): Promise<void> {
      fireWatchdogIfExpired();
      removeIncarnation(partitionId, incarnation);
    },

    async turnOff(partitionId: string, incarnation: number): Promise<void> {
      fireWatchdogIfExpired();
      // The simulated guest shuts down instantly, so a graceful stop and a power-off look the same.
      removeIncarnation(partitionId, incarnation);
    },

    async pause(partitionId: string, incarnation: number): Promise<PartitionStatus> {
      fireWatchdogIfExpired();
      const record = requireIncarnation(partitionId, incarnation, 'pause');
      record.state = 'Paused';
      applyProcessor(record);
      return statusOf(record);
    },

    async resume(partitionId: string, incarnation: number): Promise<PartitionStatus> {
      fireWatchdogIfExpired();
      const record = requireIncarnation(partitionId, incarnation, 'resume');
      record.state = 'Running';
      applyProcessor(record);
      return statusOf(record);
    },

    async save(partitionId: string, incarnation: number): Promise<void> {
      fireWatchdogIfExpired();
      validatePartitionId(partitionId);
      validateIncarnation(incarnation);
      if (saved.get(partitionId)?.incarnation === incarnation && running.get(partitionId) === undefined) return;
      const record = requireIncarnation(partitionId, incarnation, 'save');
      deleteRecord(partitionId);
      saved.set(partitionId, {
        incarnation,
        startedAtMs: record.startedAtMs,
        memoryState: record.memoryState,
        vcpus: vcpuAccounting(record),
      });
    },

    async setProcessor(partitionId: string, incarnation: number, processor: ProcessorSettings): Promise<PartitionStatus> {
      fireWatchdogIfExpired();
      const record = requireIncarnation(partitionId, incarnation, 'set the processor of');
      validateProcessor(processor);
      record.processor = { ...processor };
      applyProcessor(record);
      return statusOf(record);
    },

    async setMemory(partitionId: string, incarnation: number, memory: MemorySettings): Promise<PartitionStatus> {
      fireWatchdogIfExpired();
      const record = requireIncarnation(partitionId, incarnation, 'set the memory of');
      validateMemory(memory);
      const current = record.memory;
      const subject = `${partitionId} incarnation ${incarnation}`;
      if (memory.mode !== current.mode) {
        throw new HypervisorError(
          'invalid-state',
          `cannot switch ${subject} from ${current.mode} to ${memory.mode} memory while it runs; turn it off first`,
        );
      }
      if (memory.mode === 'static') {
        // Runtime resize of static memory (Hyper-V 2016+): growing needs the host to have the difference free.
        const growMiB = memory.startupMiB - assignedMiBOf(record.memoryState);
        const availableMiB = guestPoolMiB - committedMiB();
        if (growMiB > availableMiB) {
          throw new HypervisorError(
            'insufficient-memory',
            `cannot grow ${subject} to ${memory.startupMiB} MiB: it needs ${growMiB} MiB more, host ${hostId} has ${availableMiB} MiB available`,
          );
        }
        record.memory = { ...memory };
        record.memoryState = { visibleMiB: memory.startupMiB, balloonedMiB: 0 };
        return statusOf(record);
      }
      if (current.mode !== 'dynamic') throw new Error('unreachable: memory modes were compared above');
      // Hyper-V's run-time rules (dynamic-memory.md): only raise the maximum and lower the minimum;
      // the startup amount applies at the next start.
      if (memory.startupMiB !== current.startupMiB) {
        throw new HypervisorError(
          'invalid-state',
          `cannot change startupMiB of ${subject} from ${current.startupMiB} to ${memory.startupMiB} MiB while it runs; it applies at the next start`,
        );
      }
      if (memory.maxMiB < current.maxMiB) {
        throw new HypervisorError(
          'invalid-state',
          `cannot lower maxMiB of ${subject} from ${current.maxMiB} to ${memory.maxMiB} MiB while it runs; the maximum can only be raised`,
        );
      }
      if (memory.minMiB > current.minMiB) {
        throw new HypervisorError(
          'invalid-state',
          `cannot raise minMiB of ${subject} from ${current.minMiB} to ${memory.minMiB} MiB while it runs; the minimum can only be lowered`,
        );
      }
      record.memory = { ...memory };
      return statusOf(record);
    },

    async list(): Promise<readonly PartitionStatus[]> {
      fireWatchdogIfExpired();
      return sortedRecords().map(statusOf);
    },

    async usage(): Promise<HostUsage> {
      fireWatchdogIfExpired();
      const partitions: PartitionUsage[] = sortedRecords().map((record) => {
        const sample = record.sample;
        const memoryAssignedMiB = assignedMiBOf(record.memoryState);
        return {
          partitionId: record.partitionId,
          incarnation: record.incarnation,
          cpuPct: (100 * sample.cpuLp) / record.vcpus,
          cpuLp: sample.cpuLp,
          cpuWaitMsPerS: sample.cpuWaitMsPerS,
          cpuDemandPct: sample.cpuDemandPct,
          cpuEntitlementLp: sample.cpuEntitlementLp,
          dispatchesPerS: sample.dispatchesPerS,
          cpuWaitMsPerDispatch: sample.cpuWaitMsPerDispatch,
          throttlePct: record.throttlePct,
          memoryAssignedMiB,
          memoryDemandMiB: record.memoryDemandMiB,
          memoryPressurePct: memoryAssignedMiB > 0 ? (100 * record.memoryDemandMiB) / memoryAssignedMiB : 0,
          memoryBalloonedMiB: record.memoryState.balloonedMiB,
        };
      });
      const memoryCommittedMiB = committedMiB();
      return {
        logicalProcessors,
        parentCpuLp,
        memoryMiB,
        parentReserveMiB,
        memoryAvailableMiB: guestPoolMiB - memoryCommittedMiB,
        memoryCommittedMiB,
        cpuUsedLp: partitions.reduce((total, p) => total + p.cpuLp, 0),
        partitions,
        sampledAtMs: clock.nowMs(),
      };
    },

    tick(elapsedMs: number): void {
      fireWatchdogIfExpired();
      if (!Number.isFinite(elapsedMs) || elapsedMs < 0) {
        throw new RangeError(`tick: elapsedMs must be a finite number >= 0, got ${elapsedMs}`);
      }
      carriedMs += elapsedMs;
      const quanta = Math.floor(carriedMs / quantumMs);
      if (quanta === 0) return;
      carriedMs -= quanta * quantumMs;
      const records = sortedRecords();
      const partitions = records.map((record) => record.scheduler);
      for (const record of records) {
        record.tickStart = partitionCounters(record.scheduler);
        record.demandPctMs = 0;
        if (record.state !== 'Running') continue;
        // Noise around the nominal value each tick (not a random walk), so demands cannot drift away.
        const nominalMiB = workloadOf(record).memoryDemandMiB;
        record.cpuNoise = jitterPct === 0 ? 1 : noise();
        record.memoryDemandMiB = jitterPct === 0 ? nominalMiB : Math.max(0, Math.round(nominalMiB * noise()));
      }

      const skippedQuanta = Math.max(0, quanta - quantaPerTickMax);
      if (skippedQuanta > 0) {
        fastForward(records, skippedQuanta * quantumMs);
        // The per-quantum state (cap windows, pending work) is stale after a jump; it refills in a quantum.
        balanceMemory();
        sinceBalanceMs = 0;
      }
      for (let i = skippedQuanta; i < quanta; i += 1) {
        runQuantum(records, partitions);
        sinceBalanceMs += quantumMs;
        if (sinceBalanceMs >= memoryBalancerPeriodMs) {
          balanceMemory();
          sinceBalanceMs -= memoryBalancerPeriodMs;
        }
      }

      const measuredMs = quanta * quantumMs;
      const measuredS = measuredMs / 1000;
      const averageDemandPct = new Map(records.map((r) => [r.partitionId, r.demandPctMs / measuredMs]));
      const entitlements = entitlementsFor(records, averageDemandPct);
      for (const record of records) {
        const now = partitionCounters(record.scheduler);
        const runMs = now.runTimeMs - record.tickStart.runTimeMs;
        const waitMs = now.waitTimeMs - record.tickStart.waitTimeMs;
        const dispatches = now.dispatches - record.tickStart.dispatches;
        record.sample = {
          cpuLp: runMs / measuredMs,
          cpuWaitMsPerS: waitMs / record.vcpus / measuredS,
          cpuDemandPct: averageDemandPct.get(record.partitionId) ?? 0,
          cpuEntitlementLp: entitlements.get(record.partitionId) ?? 0,
          dispatchesPerS: dispatches / measuredS,
          // A vCPU that waited the whole tick without a dispatch still shows its wait (as if dispatched once).
          cpuWaitMsPerDispatch: waitMs / Math.max(1, dispatches),
        };
      }
    },

    crashPartition(partitionId: string, reason: string): void {
      fireWatchdogIfExpired();
      validateReason(reason);
      const record = requireRunning(partitionId, 'crash');
      deleteRecord(partitionId);
      observe({ kind: 'crashed', partitionId, incarnation: record.incarnation, reason, atMs: clock.nowMs() });
    },

    shutdownFromGuest(partitionId: string): void {
      fireWatchdogIfExpired();
      const record = requireRunning(partitionId, 'shut down');
      deleteRecord(partitionId);
      observe({ kind: 'stopped-by-guest', partitionId, incarnation: record.incarnation, atMs: clock.nowMs() });
    },

    setWorkload(partitionId: string, workload: WorkloadProfile | null): void {
      fireWatchdogIfExpired();
      const record = requireRunning(partitionId, 'set the workload of');
      if (workload !== null) validateWorkload(workload);
      record.workload = workload ? { ...workload } : null;
      record.workloadOriginMs = virtualMs;
      record.burst = null;
      record.cpuNoise = 1;
      record.memoryDemandMiB = workloadOf(record).memoryDemandMiB;
    },

    async setThrottle(partitionId: string, incarnation: number, throttlePct: number | null): Promise<void> {
      fireWatchdogIfExpired();
      const record = requireIncarnation(partitionId, incarnation, 'throttle');
      validateThrottle(throttlePct);
      record.throttlePct = throttlePct;
      applyProcessor(record);
    },

    drainObservations(): Observation[] {
      fireWatchdogIfExpired();
      const drained = observations;
      observations = [];
      return drained;
    },

    lostObservationCount(): number {
      fireWatchdogIfExpired();
      return lostObservationCount;
    },

    accounting(): readonly PartitionAccounting[] {
      fireWatchdogIfExpired();
      return sortedRecords().map((record) => {
        const vcpus = vcpuAccounting(record);
        const counters = partitionCounters(record.scheduler);
        return {
          partitionId: record.partitionId,
          incarnation: record.incarnation,
          cpuTimeLpMs: counters.runTimeMs,
          cpuWaitMs: counters.waitTimeMs / record.vcpus,
          dispatches: counters.dispatches,
          vcpus,
        };
      });
    },

    async armWatchdog(timeoutMs: number): Promise<WatchdogStatus> {
      fireWatchdogIfExpired();
      if (!Number.isInteger(timeoutMs) || timeoutMs < watchdogTimeoutMsMin || timeoutMs > watchdogTimeoutMsMax) {
        throw new HypervisorError(
          'invalid-config',
          `watchdog timeoutMs must be an integer from ${watchdogTimeoutMsMin} to ${watchdogTimeoutMsMax}, got ${timeoutMs}`,
        );
      }
      watchdogTimeoutMs = timeoutMs;
      watchdogExpiresAtMs = clock.nowMs() + timeoutMs;
      return watchdogStatusNow();
    },

    async petWatchdog(): Promise<WatchdogStatus> {
      fireWatchdogIfExpired();
      if (watchdogTimeoutMs === null) {
        const why = watchdogLastFiredAtMs === null ? 'it is not armed' : `it is not armed (it last fired at ${watchdogLastFiredAtMs})`;
        throw new HypervisorError('invalid-state', `cannot pet the watchdog of host ${hostId}: ${why}; arm it first`);
      }
      watchdogExpiresAtMs = clock.nowMs() + watchdogTimeoutMs;
      return watchdogStatusNow();
    },

    async disarmWatchdog(): Promise<WatchdogStatus> {
      fireWatchdogIfExpired();
      watchdogTimeoutMs = null;
      watchdogExpiresAtMs = null;
      return watchdogStatusNow();
    },

    async watchdogStatus(): Promise<WatchdogStatus> {
      fireWatchdogIfExpired();
      return watchdogStatusNow();
    },

    checkWatchdog: (): boolean => fireWatchdogIfExpired(),
  };

  /** Stop/turn-off semantics: that exact incarnation goes (running or saved), anything else is a no-op. */
  function removeIncarnation(partitionId: string, incarnation: number): void {
    validatePartitionId(partitionId);
    validateIncarnation(incarnation);
    if (running.get(partitionId)?.incarnation === incarnation) deleteRecord(partitionId);
    if (saved.get(partitionId)?.incarnation === incarnation) saved.delete(partitionId);
  }

  return hypervisor;
}

function vcpuAccounting(record: PartitionRecord): VcpuAccounting[] {
  return record.scheduler.vcpus.map((vcpu) => ({
    runTimeMs: vcpu.runTimeMs,
    waitTimeMs: vcpu.waitTimeMs,
    dispatches: vcpu.dispatches,
    waitMsPerDispatch: vcpu.dispatches > 0 ? vcpu.waitTimeMs / vcpu.dispatches : 0,
  }));
}

/** Memory at boot: the startup amount, nothing hot-added or ballooned yet. */
function bootMemory(memory: MemorySettings): DynamicMemoryState {
  return { visibleMiB: memory.startupMiB, balloonedMiB: 0 };
}

/**
 * A restored guest gets back the memory it had when saved (its memory image needs it), as long as
 * that still fits the configuration it is restored with; otherwise it restarts from startup memory.
 */
function restoredMemory(savedState: DynamicMemoryState, memory: MemorySettings): DynamicMemoryState {
  if (memory.mode === 'static') return bootMemory(memory);
  const assignedMiB = assignedMiBOf(savedState);
  const fits = assignedMiB >= memory.minMiB && assignedMiB <= memory.maxMiB && savedState.visibleMiB <= memory.maxMiB;
  return fits ? savedState : bootMemory(memory);
}

function assertHostOptions(options: SimHypervisorOptions): void {
  const { hostId, logicalProcessors, memoryMiB, parentReserveMiB, bootId } = options;
  if (typeof hostId !== 'string' || hostId.length === 0) throw new RangeError('hostId must be a non-empty string');
  if (typeof bootId !== 'string' || bootId.length === 0) throw new RangeError('bootId must be a non-empty string');
  const preset = options.limitsPreset ?? 'modern';
  if (!isHostLimitsPreset(preset)) {
    throw new RangeError(`limitsPreset must be one of ${Object.keys(hostLimitsPresets).join(', ')}, got ${String(preset)}`);
  }
  const lpMax = hostLimitsPresets[preset].logicalProcessorsMax;
  if (!Number.isInteger(logicalProcessors) || logicalProcessors < 1 || logicalProcessors > lpMax) {
    throw new RangeError(
      `logicalProcessors must be an integer from 1 to ${lpMax} (the ${preset} limit logicalProcessorsMax), got ${logicalProcessors}`,
    );
  }
  if (!Number.isSafeInteger(memoryMiB) || memoryMiB < 1) {
    throw new RangeError(`memoryMiB must be a positive integer, got ${memoryMiB}`);
  }
  if (!Number.isSafeInteger(parentReserveMiB) || parentReserveMiB < 0 || parentReserveMiB >= memoryMiB) {
    throw new RangeError(`parentReserveMiB must be an integer from 0 to below memoryMiB (${memoryMiB}), got ${parentReserveMiB}`);
  }
  const parentCpuLp = options.parentCpuLp ?? 0;
  if (!Number.isFinite(parentCpuLp) || parentCpuLp < 0 || parentCpuLp >= logicalProcessors) {
    throw new RangeError(
      `parentCpuLp must be a number from 0 to below logicalProcessors (${logicalProcessors}), got ${parentCpuLp}`,
    );
  }
  const jitterPct = options.workloadJitterPct ?? 0;
  if (!Number.isFinite(jitterPct) || jitterPct < 0 || jitterPct > 100) {
    throw new RangeError(`workloadJitterPct must be a number from 0 to 100, got ${jitterPct}`);
  }
  const quantumMs = options.quantumMs ?? defaultQuantumMs;
  if (!Number.isInteger(quantumMs) || quantumMs < 1 || quantumMs > 1000) {
    throw new RangeError(`quantumMs must be an integer from 1 to 1000, got ${quantumMs}`);
  }
}
