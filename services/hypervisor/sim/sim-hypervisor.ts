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
 * Usage model (../shared/reference/hypervisor-models.md §1.9, §2.2–2.3): CPU by weighted
 * water-filling (./entitlement.ts), Dynamic Memory by the balancer in ./memory.ts, run once per tick.
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
  type WorkloadProfile,
} from '../port.ts';
import { computeEntitlements, type EntitlementDemand } from './entitlement.ts';
import { assignedMiBOf, compareIds, computeMemoryGoals, type DynamicMemoryState, moveToGoal } from './memory.ts';
import type { RandomSource } from './random.ts';
import {
  validateIncarnation,
  validateMemory,
  validatePartitionConfig,
  validatePartitionId,
  validateProcessor,
  validateReason,
  validateWorkload,
} from './validate.ts';

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
  | { readonly kind: 'stopped-by-guest'; readonly partitionId: string; readonly incarnation: number; readonly atMs: number };

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
}

/** Cumulative CPU accounting of one running incarnation, advanced by tick(). */
export interface PartitionAccounting {
  readonly partitionId: string;
  readonly incarnation: number;
  /** CPU time received, in LP-milliseconds. */
  readonly cpuTimeLpMs: number;
  /** Time an average vCPU was ready to run but got no LP, in milliseconds. */
  readonly cpuWaitMs: number;
}

export interface SimHypervisor extends Hypervisor {
  /** Advances the internal accounting by elapsedMs: CPU time, workload noise, one memory-balancer pass. */
  tick(elapsedMs: number): void;
  /** Simulates a guest crash of whatever incarnation runs now; it is gone from the host afterwards. */
  crashPartition(partitionId: string, reason: string): void;
  /** Simulates the guest shutting itself down. */
  shutdownFromGuest(partitionId: string): void;
  /** Replaces the simulated guest behaviour of the running partition (null = the defaults). */
  setWorkload(partitionId: string, workload: WorkloadProfile | null): void;
  /** Returns, oldest first, and forgets what happened on its own since the last call. */
  drainObservations(): Observation[];
  /**
   * How many observations were dropped, oldest first, because nobody drained the queue before it
   * held observationCountMax. A reader that missed some finds the outcome with list(): observations
   * only say sooner what reconciliation would find anyway.
   */
  lostObservationCount(): number;
  accounting(): readonly PartitionAccounting[];
}

/** Observations kept until drained; beyond it the oldest are dropped (and counted, see lostObservationCount). */
export const observationCountMax = 10_000;
/** Logical processors per host: Windows Server 2025's limit (hypervisor-models.md §1.3). */
export const logicalProcessorsMax = 2048;
/** CPU demand of a partition without a workload profile: a busy guest. */
const defaultCpuDemandPct = 100;

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
  /** Demands in effect now: the workload's nominal values plus this tick's noise. */
  cpuDemandPct: number;
  memoryDemandMiB: number;
  cpuTimeLpMs: number;
  cpuWaitMs: number;
}

interface SavedRecord {
  readonly incarnation: number;
  readonly startedAtMs: number;
  readonly memoryState: DynamicMemoryState;
  readonly cpuTimeLpMs: number;
  readonly cpuWaitMs: number;
}

interface CpuSample {
  readonly cpuLp: number;
  readonly cpuWaitMsPerS: number;
}

export function createSimHypervisor(options: SimHypervisorOptions): SimHypervisor {
  assertHostOptions(options);
  const { hostId, logicalProcessors, memoryMiB, parentReserveMiB, clock, random, bootId } = options;
  const jitterPct = options.workloadJitterPct ?? 0;
  const guestPoolMiB = memoryMiB - parentReserveMiB;
  const running = new Map<string, PartitionRecord>();
  const saved = new Map<string, SavedRecord>();
  let observations: Observation[] = [];
  let lostObservationCount = 0;

  const sortedRecords = (): PartitionRecord[] =>
    [...running.values()].sort((a, b) => compareIds(a.partitionId, b.partitionId));

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

  const resetDemands = (record: PartitionRecord): void => {
    record.cpuDemandPct = record.workload?.cpuDemandPct ?? defaultCpuDemandPct;
    record.memoryDemandMiB = record.workload?.memoryDemandMiB ?? record.memory.startupMiB;
  };

  const observe = (observation: Observation): void => {
    if (observations.length >= observationCountMax) {
      observations.shift();
      lostObservationCount += 1;
    }
    observations.push(observation);
  };

  /** CPU per running partition now, from the demands currently in effect. */
  const sampleCpu = (): Map<string, CpuSample> => {
    const records = sortedRecords();
    const demands: EntitlementDemand[] = records.map((record) => {
      const demandPct = record.state === 'Paused' ? 0 : record.cpuDemandPct;
      const ceilingLp = (Math.min(record.processor.limitPct, demandPct) / 100) * record.vcpus;
      return {
        id: record.partitionId,
        weight: record.processor.weight,
        floorLp: Math.min((record.processor.reservePct / 100) * record.vcpus, ceilingLp),
        ceilingLp,
      };
    });
    const entitlements = computeEntitlements(logicalProcessors, demands);
    const samples = new Map<string, CpuSample>();
    for (const record of records) {
      const cpuLp = entitlements.get(record.partitionId) ?? 0;
      const wantedLp = record.state === 'Paused' ? 0 : (record.cpuDemandPct / 100) * record.vcpus;
      // Approximation: the shortfall (wanted − got) spread evenly over the vCPUs, as a fraction of each
      // second, is the time a vCPU was ready but not running. It includes time withheld by the
      // partition's own limit (Hyper-V counts capped VPs as waiting too). A quantum scheduler would
      // add dispatch latency even without a shortfall; that comes with the scheduler model.
      const cpuWaitMsPerS = (Math.max(0, wantedLp - cpuLp) / record.vcpus) * 1000;
      samples.set(record.partitionId, { cpuLp, cpuWaitMsPerS });
    }
    return samples;
  };

  /** nominal × (1 ± jitter), uniformly; only called when jitterPct > 0 so a quiet sim draws nothing. */
  const noisy = (nominal: number): number => nominal * (1 + (jitterPct / 100) * (2 * random.nextFloat() - 1));

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

  const hypervisor: SimHypervisor = {
    async info(): Promise<HostInfo> {
      return { hostId, logicalProcessors, memoryMiB, parentReserveMiB, bootId };
    },

    async start(config: PartitionConfig): Promise<PartitionStatus> {
      validatePartitionConfig(config, logicalProcessors);
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
      if (current) running.delete(partitionId);

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
      const record: PartitionRecord = {
        partitionId,
        incarnation,
        vcpus: config.vcpus,
        startedAtMs: restoring ? restoring.startedAtMs : clock.nowMs(),
        state: 'Running',
        processor: { ...config.processor },
        memory: { ...config.memory },
        memoryState,
        workload: config.workload ? { ...config.workload } : null,
        cpuDemandPct: 0,
        memoryDemandMiB: 0,
        cpuTimeLpMs: restoring?.cpuTimeLpMs ?? 0,
        cpuWaitMs: restoring?.cpuWaitMs ?? 0,
      };
      resetDemands(record);
      running.set(partitionId, record);
      return statusOf(record);
    },

    async stop(partitionId: string, incarnation: number): Promise<void> {
      removeIncarnation(partitionId, incarnation);
    },

    async turnOff(partitionId: string, incarnation: number): Promise<void> {
      // The simulated guest shuts down instantly, so a graceful stop and a power-off look the same.
      removeIncarnation(partitionId, incarnation);
    },

    async pause(partitionId: string, incarnation: number): Promise<PartitionStatus> {
      const record = requireIncarnation(partitionId, incarnation, 'pause');
      record.state = 'Paused';
      return statusOf(record);
    },

    async resume(partitionId: string, incarnation: number): Promise<PartitionStatus> {
      const record = requireIncarnation(partitionId, incarnation, 'resume');
      record.state = 'Running';
      return statusOf(record);
    },

    async save(partitionId: string, incarnation: number): Promise<void> {
      validatePartitionId(partitionId);
      validateIncarnation(incarnation);
      if (saved.get(partitionId)?.incarnation === incarnation && running.get(partitionId) === undefined) return;
      const record = requireIncarnation(partitionId, incarnation, 'save');
      running.delete(partitionId);
      saved.set(partitionId, {
        incarnation,
        startedAtMs: record.startedAtMs,
        memoryState: record.memoryState,
        cpuTimeLpMs: record.cpuTimeLpMs,
        cpuWaitMs: record.cpuWaitMs,
      });
    },

    async setProcessor(partitionId: string, incarnation: number, processor: ProcessorSettings): Promise<PartitionStatus> {
      const record = requireIncarnation(partitionId, incarnation, 'set the processor of');
      validateProcessor(processor);
      record.processor = { ...processor };
      return statusOf(record);
    },

    async setMemory(partitionId: string, incarnation: number, memory: MemorySettings): Promise<PartitionStatus> {
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
      return sortedRecords().map(statusOf);
    },

    async usage(): Promise<HostUsage> {
      const cpu = sampleCpu();
      const partitions: PartitionUsage[] = sortedRecords().map((record) => {
        const sample = cpu.get(record.partitionId) ?? { cpuLp: 0, cpuWaitMsPerS: 0 };
        const memoryAssignedMiB = assignedMiBOf(record.memoryState);
        return {
          partitionId: record.partitionId,
          incarnation: record.incarnation,
          cpuPct: (100 * sample.cpuLp) / record.vcpus,
          cpuLp: sample.cpuLp,
          cpuWaitMsPerS: sample.cpuWaitMsPerS,
          memoryAssignedMiB,
          memoryDemandMiB: record.memoryDemandMiB,
          memoryPressurePct: memoryAssignedMiB > 0 ? (100 * record.memoryDemandMiB) / memoryAssignedMiB : 0,
          memoryBalloonedMiB: record.memoryState.balloonedMiB,
        };
      });
      const memoryCommittedMiB = committedMiB();
      return {
        logicalProcessors,
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
      if (!Number.isFinite(elapsedMs) || elapsedMs < 0) {
        throw new RangeError(`tick: elapsedMs must be a finite number >= 0, got ${elapsedMs}`);
      }
      // The rates in effect during the elapsed interval are the ones sampled at the previous tick.
      const cpu = sampleCpu();
      for (const record of sortedRecords()) {
        const sample = cpu.get(record.partitionId);
        if (!sample) continue;
        record.cpuTimeLpMs += sample.cpuLp * elapsedMs;
        record.cpuWaitMs += (sample.cpuWaitMsPerS * elapsedMs) / 1000;
      }
      for (const record of sortedRecords()) {
        if (record.state !== 'Running') continue;
        resetDemands(record);
        if (jitterPct === 0) continue;
        // Noise around the nominal value each tick (not a random walk), so demands cannot drift away.
        record.cpuDemandPct = Math.min(100, Math.max(0, noisy(record.cpuDemandPct)));
        record.memoryDemandMiB = Math.max(0, Math.round(noisy(record.memoryDemandMiB)));
      }
      balanceMemory();
    },

    crashPartition(partitionId: string, reason: string): void {
      validateReason(reason);
      const record = requireRunning(partitionId, 'crash');
      running.delete(partitionId);
      observe({ kind: 'crashed', partitionId, incarnation: record.incarnation, reason, atMs: clock.nowMs() });
    },

    shutdownFromGuest(partitionId: string): void {
      const record = requireRunning(partitionId, 'shut down');
      running.delete(partitionId);
      observe({ kind: 'stopped-by-guest', partitionId, incarnation: record.incarnation, atMs: clock.nowMs() });
    },

    setWorkload(partitionId: string, workload: WorkloadProfile | null): void {
      const record = requireRunning(partitionId, 'set the workload of');
      if (workload !== null) validateWorkload(workload);
      record.workload = workload ? { ...workload } : null;
      resetDemands(record);
    },

    drainObservations(): Observation[] {
      const drained = observations;
      observations = [];
      return drained;
    },

    lostObservationCount: () => lostObservationCount,

    accounting(): readonly PartitionAccounting[] {
      return sortedRecords().map((record) => ({
        partitionId: record.partitionId,
        incarnation: record.incarnation,
        cpuTimeLpMs: record.cpuTimeLpMs,
        cpuWaitMs: record.cpuWaitMs,
      }));
    },
  };

  /** Stop/turn-off semantics: that exact incarnation goes (running or saved), anything else is a no-op. */
  function removeIncarnation(partitionId: string, incarnation: number): void {
    validatePartitionId(partitionId);
    validateIncarnation(incarnation);
    if (running.get(partitionId)?.incarnation === incarnation) running.delete(partitionId);
    if (saved.get(partitionId)?.incarnation === incarnation) saved.delete(partitionId);
  }

  return hypervisor;
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
  if (!Number.isInteger(logicalProcessors) || logicalProcessors < 1 || logicalProcessors > logicalProcessorsMax) {
    throw new RangeError(`logicalProcessors must be an integer from 1 to ${logicalProcessorsMax}, got ${logicalProcessors}`);
  }
  if (!Number.isSafeInteger(memoryMiB) || memoryMiB < 1) {
    throw new RangeError(`memoryMiB must be a positive integer, got ${memoryMiB}`);
  }
  if (!Number.isSafeInteger(parentReserveMiB) || parentReserveMiB < 0 || parentReserveMiB >= memoryMiB) {
    throw new RangeError(`parentReserveMiB must be an integer from 0 to below memoryMiB (${memoryMiB}), got ${parentReserveMiB}`);
  }
  const jitterPct = options.workloadJitterPct ?? 0;
  if (!Number.isFinite(jitterPct) || jitterPct < 0 || jitterPct > 100) {
    throw new RangeError(`workloadJitterPct must be a number from 0 to 100, got ${jitterPct}`);
  }
}
