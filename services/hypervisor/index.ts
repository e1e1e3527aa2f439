/**
 * The hypervisor service's public surface: the port, the simulated hypervisor (in-process, and as a
 * sim-host process with its client), and the pure models the simulator is built from.
 */
export type {
  HostInfo,
  HostUsage,
  Hypervisor,
  MemorySettings,
  PartitionConfig,
  PartitionStatus,
  PartitionUsage,
  ProcessorSettings,
  RunState,
  Watchdog,
  WatchdogStatus,
  WorkloadProfile,
} from './port.ts';
export { HypervisorError, hasWatchdog, watchdogTimeoutMsMax, watchdogTimeoutMsMin } from './port.ts';
export { type EntitlementDemand, computeEntitlements } from './sim/entitlement.ts';
export { type HostLimits, type HostLimitsPreset, hostLimitsPresets, isHostLimitsPreset } from './sim/limits.ts';
export {
  type BalancerInput,
  computeMemoryGoals,
  hotAddChunkMiB,
  memoryNeedMiB,
  memoryTargetMiB,
} from './sim/memory.ts';
export { createSeededRandom, type RandomSource, type SeededRandom } from './sim/random.ts';
export {
  createQuantumScheduler,
  defaultCapPeriodMs,
  defaultQuantumMs,
  type PartitionCounters,
  partitionCounters,
  type QuantumScheduler,
  type SchedulerOptions,
  type SchedulerPartition,
  type VcpuState,
} from './sim/scheduler.ts';
export {
  type Clock,
  createSimHypervisor,
  memoryBalancerPeriodMs,
  type Observation,
  observationCountMax,
  type PartitionAccounting,
  quantaPerTickMax,
  type SimHypervisor,
  type SimHypervisorOptions,
  type VcpuAccounting,
} from './sim/sim-hypervisor.ts';
export { simLimits } from './sim/validate.ts';
export { type BurstState, cpuDemandOver, cpuDemandPctAt, type DemandOverInterval } from './sim/workload.ts';
export {
  runSimHost,
  type SimHostDescriptor,
  type SimHostHandle,
  type SimHostOptions,
  simHostDescriptorName,
  simHostSocketName,
  watchdogCheckMsMax,
} from './sim-host.ts';
export { createSimHostClient, type SimHostClient, type SimHostClientOptions } from './sim-host-client.ts';
export { type MigrationLimits as EngineMigrationLimits, type PreCopyEngine, type PreCopyStep, closedFormPreCopy, createPreCopy, defaultMigrationLimits, simulateMigration } from './sim/migration.ts';
