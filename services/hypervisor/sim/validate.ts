/**
 * Range checks for what the simulated hypervisor accepts. Ranges follow the port's comments
 * (Hyper-V's, ../shared/reference/hypervisor-models.md §1.1 and §2.1); each failure is a
 * HypervisorError('invalid-config') naming the field, so a caller can fix the request.
 */
import {
  HypervisorError,
  type MemorySettings,
  type PartitionConfig,
  type ProcessorSettings,
  type WorkloadProfile,
} from '../port.ts';
import type { HostLimits } from './limits.ts';

export const simLimits = {
  /** Ids travel in URLs and logs; anything longer is a caller bug. */
  partitionIdLengthMax: 200,
  /** 256 TiB: far above any real host, low enough that sums stay exact in a double. */
  memoryMiBMax: 256 * 1024 * 1024,
  processorWeightMin: 1,
  processorWeightMax: 10_000,
  memoryWeightMax: 10_000,
  bufferPctMin: 5,
  bufferPctMax: 2000,
  dirtyMiBpsMax: 1_000_000,
  /** Bounds of a workload's CPU period (the control plane's spec accepts the same). */
  cpuPeriodMsMin: 10,
  cpuPeriodMsMax: 86_400_000,
  reasonLengthMax: 1000,
} as const;

const cpuPatterns: readonly string[] = ['constant', 'periodic', 'bursty'] satisfies WorkloadProfile['cpuPattern'][];

export function validatePartitionId(partitionId: string): void {
  if (typeof partitionId !== 'string' || partitionId.length === 0 || partitionId.length > simLimits.partitionIdLengthMax) {
    throw invalid(`partitionId must be 1 to ${simLimits.partitionIdLengthMax} characters`);
  }
}

export function validateIncarnation(incarnation: number): void {
  if (!Number.isSafeInteger(incarnation) || incarnation < 0) {
    throw invalid(`incarnation must be a non-negative integer, got ${incarnation}`);
  }
}

export function validatePartitionConfig(
  config: PartitionConfig,
  logicalProcessors: number,
  limits: HostLimits,
  presetName: string,
): void {
  validatePartitionId(config.partitionId);
  validateIncarnation(config.incarnation);
  if (!Number.isInteger(config.vcpus) || config.vcpus < 1 || config.vcpus > logicalProcessors) {
    throw invalid(
      `vcpus must be an integer from 1 to the host's ${logicalProcessors} logical processors, got ${config.vcpus}`,
    );
  }
  if (config.vcpus > limits.vcpusPerPartitionMax) {
    throw invalid(
      `vcpus ${config.vcpus} is above the ${presetName} limit of ${limits.vcpusPerPartitionMax} vCPUs per partition (vcpusPerPartitionMax)`,
    );
  }
  validateProcessor(config.processor);
  validateMemory(config.memory);
  if (config.workload !== null) validateWorkload(config.workload);
}

export function validateProcessor(processor: ProcessorSettings): void {
  numberIn(processor.reservePct, 0, 100, 'processor.reservePct');
  numberIn(processor.limitPct, 0, 100, 'processor.limitPct');
  if (processor.limitPct < processor.reservePct) {
    throw invalid(`processor.limitPct (${processor.limitPct}) must be >= processor.reservePct (${processor.reservePct})`);
  }
  integerIn(processor.weight, simLimits.processorWeightMin, simLimits.processorWeightMax, 'processor.weight');
}

export function validateMemory(memory: MemorySettings): void {
  integerIn(memory.startupMiB, 1, simLimits.memoryMiBMax, 'memory.startupMiB');
  if (memory.mode === 'static') return;
  if (memory.mode !== 'dynamic') throw invalid(`memory.mode must be 'static' or 'dynamic'`);
  integerIn(memory.minMiB, 1, simLimits.memoryMiBMax, 'memory.minMiB');
  integerIn(memory.maxMiB, 1, simLimits.memoryMiBMax, 'memory.maxMiB');
  if (memory.minMiB > memory.startupMiB || memory.startupMiB > memory.maxMiB) {
    throw invalid(
      `memory must satisfy minMiB <= startupMiB <= maxMiB, got ${memory.minMiB} / ${memory.startupMiB} / ${memory.maxMiB}`,
    );
  }
  numberIn(memory.bufferPct, simLimits.bufferPctMin, simLimits.bufferPctMax, 'memory.bufferPct');
  integerIn(memory.weight, 0, simLimits.memoryWeightMax, 'memory.weight');
}

export function validateWorkload(workload: WorkloadProfile): void {
  numberIn(workload.cpuDemandPct, 0, 100, 'workload.cpuDemandPct');
  if (!cpuPatterns.includes(workload.cpuPattern)) {
    throw invalid(`workload.cpuPattern must be one of ${cpuPatterns.join(', ')}, got ${String(workload.cpuPattern)}`);
  }
  numberIn(workload.cpuLowPct, 0, 100, 'workload.cpuLowPct');
  integerIn(workload.cpuPeriodMs, simLimits.cpuPeriodMsMin, simLimits.cpuPeriodMsMax, 'workload.cpuPeriodMs');
  numberIn(workload.cpuDutyPct, 0, 100, 'workload.cpuDutyPct');
  numberIn(workload.memoryDemandMiB, 0, simLimits.memoryMiBMax, 'workload.memoryDemandMiB');
  numberIn(workload.dirtyMiBps, 0, simLimits.dirtyMiBpsMax, 'workload.dirtyMiBps');
  if (workload.workingSetMiB !== null) integerIn(workload.workingSetMiB, 1, simLimits.memoryMiBMax, 'workload.workingSetMiB');
}

/** A throttle takes a percentage of vCPU time away (0–100), or null for none. */
export function validateThrottle(throttlePct: number | null): void {
  if (throttlePct !== null) numberIn(throttlePct, 0, 100, 'throttlePct');
}

export function validateReason(reason: string): void {
  if (typeof reason !== 'string' || reason.length > simLimits.reasonLengthMax) {
    throw invalid(`reason must be a string of at most ${simLimits.reasonLengthMax} characters`);
  }
}

function integerIn(value: number, min: number, max: number, field: string): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw invalid(`${field} must be an integer from ${min} to ${max}, got ${value}`);
  }
}

function numberIn(value: number, min: number, max: number, field: string): void {
  if (!Number.isFinite(value) || value < min || value > max) {
    throw invalid(`${field} must be a number from ${min} to ${max}, got ${value}`);
  }
}

function invalid(message: string): HypervisorError {
  return new HypervisorError('invalid-config', message);
}
