/**
 * The Hypervisor port: what a node daemon drives on its host.
 *
 * Implementations: the simulated hypervisor (services/hypervisor/sim, run in-process for the
 * deterministic simulation or in its own `vcp sim-host` process, reached over HTTP on a Unix
 * socket by SimHostClient), and later a real Linux driver (cgroups + QEMU/QMP).
 *
 * Every call is idempotent with respect to (partitionId, incarnation): starting an incarnation
 * that already runs returns the same result, turning off something that is off succeeds.
 */

/**
 * The settings a partition runs with are the domain's own spec types: one definition, so what
 * the control plane validates is exactly what the hypervisor applies.
 * ProcessorSettings: reserve %, limit % (hard cap), relative weight.
 * MemorySettings: static startup, or dynamic startup/minimum/maximum/buffer %/weight.
 * WorkloadProfile: simulated guest behaviour (constant, periodic or bursty CPU demand, committed
 * memory, dirty rate and working set); ignored by real drivers.
 */
import type { MemorySpec, ProcessorSpec, WorkloadSpec } from '../domain/index.ts';

export type ProcessorSettings = ProcessorSpec;
export type MemorySettings = MemorySpec;
export type WorkloadProfile = WorkloadSpec;

export interface PartitionConfig {
  readonly partitionId: string;
  /** Every start of a partition has a new, larger incarnation. */
  readonly incarnation: number;
  readonly vcpus: number;
  readonly processor: ProcessorSettings;
  readonly memory: MemorySettings;
  readonly workload: WorkloadProfile | null;
}

export type RunState = 'Running' | 'Paused';

export interface PartitionStatus {
  readonly partitionId: string;
  readonly incarnation: number;
  readonly state: RunState;
  readonly vcpus: number;
  readonly processor: ProcessorSettings;
  readonly memory: MemorySettings;
  readonly memoryAssignedMiB: number;
  /** Virtual or wall time (ms since epoch) at which this incarnation started. */
  readonly startedAtMs: number;
}

/**
 * What a partition used. The CPU figures are measured by the quantum scheduler over the last tick
 * (zero until the first tick after the partition started); the memory figures are current.
 */
export interface PartitionUsage {
  readonly partitionId: string;
  readonly incarnation: number;
  /** CPU used, as a percentage of the partition's vCPUs' capacity. */
  readonly cpuPct: number;
  /** CPU used, in logical processors (cpuPct/100 × vcpus). */
  readonly cpuLp: number;
  /** Time a vCPU (on average over the partition's vCPUs) was ready to run but not running, ms per second. */
  readonly cpuWaitMsPerS: number;
  /** CPU the guest wanted (its workload's average demand), as a percentage of its vCPUs' capacity. */
  readonly cpuDemandPct: number;
  /** The weighted water-filling entitlement for that demand (hypervisor-models.md §1.9), in LPs. */
  readonly cpuEntitlementLp: number;
  /** Dispatches of the partition's vCPUs onto LPs, per second (all vCPUs together). */
  readonly dispatchesPerS: number;
  /** Ready time per dispatch, ms: Hyper-V's "CPU Wait Time Per Dispatch" (hypervisor-models.md §1.4). */
  readonly cpuWaitMsPerDispatch: number;
  /**
   * A throttle in force (auto-converge during migration): % of vCPU time taken away, as QEMU's
   * cpu-throttle-percentage, so the effective limit is min(limit, 100 − throttle); null = none.
   */
  readonly throttlePct: number | null;
  readonly memoryAssignedMiB: number;
  readonly memoryDemandMiB: number;
  /** 100 × demand ÷ assigned. */
  readonly memoryPressurePct: number;
  readonly memoryBalloonedMiB: number;
}

export interface HostUsage {
  readonly logicalProcessors: number;
  /** CPU the parent (root) partition uses, in LPs; partitions share what is left. */
  readonly parentCpuLp: number;
  readonly memoryMiB: number;
  readonly parentReserveMiB: number;
  readonly memoryAvailableMiB: number;
  readonly memoryCommittedMiB: number;
  /** CPU used by all partitions, in LPs. */
  readonly cpuUsedLp: number;
  readonly partitions: readonly PartitionUsage[];
  readonly sampledAtMs: number;
}

export interface HostInfo {
  readonly hostId: string;
  readonly logicalProcessors: number;
  readonly memoryMiB: number;
  readonly parentReserveMiB: number;
  /** A new id every time the (simulated) machine boots: tells a daemon the host restarted. */
  readonly bootId: string;
}

/** A refusal by the hypervisor (no memory for startup, unknown partition, ...). */
export class HypervisorError extends Error {
  override readonly name = 'HypervisorError';
  constructor(
    readonly code: 'insufficient-memory' | 'not-found' | 'invalid-state' | 'invalid-config' | 'unavailable',
    message: string,
  ) {
    super(message);
  }
}

export interface Hypervisor {
  info(): Promise<HostInfo>;
  /** Starts (or restores from Saved) the given incarnation. Idempotent per incarnation. */
  start(config: PartitionConfig): Promise<PartitionStatus>;
  /** Graceful shut-down: the partition is gone from the host afterwards. */
  stop(partitionId: string, incarnation: number): Promise<void>;
  /** Immediate power-off: the partition is gone from the host afterwards. */
  turnOff(partitionId: string, incarnation: number): Promise<void>;
  pause(partitionId: string, incarnation: number): Promise<PartitionStatus>;
  resume(partitionId: string, incarnation: number): Promise<PartitionStatus>;
  /** Saves state and releases CPU and memory; the partition no longer runs on the host. */
  save(partitionId: string, incarnation: number): Promise<void>;
  setProcessor(partitionId: string, incarnation: number, processor: ProcessorSettings): Promise<PartitionStatus>;
  setMemory(partitionId: string, incarnation: number, memory: MemorySettings): Promise<PartitionStatus>;
  /** What actually runs (Running or Paused) on the host now. */
  list(): Promise<readonly PartitionStatus[]>;
  usage(): Promise<HostUsage>;
}

/** What a host's watchdog is doing; see Watchdog. */
export interface WatchdogStatus {
  readonly armed: boolean;
  /** The timeout it was armed with; null while disarmed. */
  readonly timeoutMs: number | null;
  /** Clock time (ms since epoch, virtual or wall) at which it fires unless petted; null while disarmed. */
  readonly expiresAtMs: number | null;
  /** How often it has fired since the machine booted. */
  readonly firedCount: number;
  /** When it last fired (the partitions went off); null if it never has since boot. */
  readonly lastFiredAtMs: number | null;
}

/** Shortest and longest watchdog timeouts a host accepts (armWatchdog refuses others with 'invalid-config'). */
export const watchdogTimeoutMsMin = 100;
export const watchdogTimeoutMsMax = 10 * 60_000;

/**
 * Optional capability: a hardware-style watchdog for high availability's self-fencing (as Proxmox
 * HA's watchdog-mux over a hardware watchdog). The node daemon arms it and pets it on every lease
 * renewal; if the petting stops (the daemon crashed, hung, or lost the control plane and stopped on
 * purpose) the machine itself turns off every partition when the watchdog expires, so the control
 * plane may restart them elsewhere once the lease has expired plus a margin. The watchdog belongs to
 * the machine, not to the daemon: a daemon restarted within the timeout re-arms or pets it and the
 * partitions keep running. A machine boots with it disarmed.
 *
 * Firing turns off every Running or Paused partition (saved state is kept), reports one 'fenced'
 * observation per partition where the implementation reports observations, counts the firing and
 * disarms; arm it again to keep watching. A late pet does not save anything: a watchdog found
 * expired fires before the call that found it is served, so petWatchdog then fails with
 * 'invalid-state'.
 *
 * A Hypervisor may or may not have one: test with hasWatchdog.
 */
export interface Watchdog {
  /**
   * Arms (or re-arms, replacing the timeout) the watchdog: it fires timeoutMs from now unless
   * petted. timeoutMs must be an integer from watchdogTimeoutMsMin to watchdogTimeoutMsMax
   * ('invalid-config' otherwise).
   */
  armWatchdog(timeoutMs: number): Promise<WatchdogStatus>;
  /** Pushes the expiry to timeoutMs from now; 'invalid-state' if it is not armed (never armed, disarmed or fired). */
  petWatchdog(): Promise<WatchdogStatus>;
  /** Stops watching; the partitions keep running. Succeeds when already disarmed. */
  disarmWatchdog(): Promise<WatchdogStatus>;
  watchdogStatus(): Promise<WatchdogStatus>;
}

/** Whether this hypervisor has a watchdog (the Watchdog capability). */
export function hasWatchdog<T extends object>(hypervisor: T): hypervisor is T & Watchdog {
  const candidate = hypervisor as Partial<Record<keyof Watchdog, unknown>>;
  return (
    typeof candidate.armWatchdog === 'function' &&
    typeof candidate.petWatchdog === 'function' &&
    typeof candidate.disarmWatchdog === 'function' &&
    typeof candidate.watchdogStatus === 'function'
  );
}
