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
  WorkloadProfile,
} from './port.ts';
export { HypervisorError } from './port.ts';
export { type EntitlementDemand, computeEntitlements } from './sim/entitlement.ts';
export { type BalancerInput, computeMemoryGoals, hotAddChunkMiB } from './sim/memory.ts';
export { createSeededRandom, type RandomSource, type SeededRandom } from './sim/random.ts';
export {
  type Clock,
  createSimHypervisor,
  type Observation,
  observationCountMax,
  type PartitionAccounting,
  type SimHypervisor,
  type SimHypervisorOptions,
} from './sim/sim-hypervisor.ts';
export { simLimits } from './sim/validate.ts';
export {
  runSimHost,
  type SimHostDescriptor,
  type SimHostHandle,
  type SimHostOptions,
  simHostDescriptorName,
  simHostSocketName,
} from './sim-host.ts';
export { createSimHostClient, type SimHostClient, type SimHostClientOptions } from './sim-host-client.ts';
