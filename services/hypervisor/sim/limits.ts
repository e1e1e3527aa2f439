/**
 * Host scale limits the simulated hypervisor enforces (hypervisor-models.md §1.3), as named presets.
 * The names and numbers match the control plane's host limit presets (services/domain/limits.ts),
 * so a placement the control plane accepts is one the host accepts.
 */

export interface HostLimits {
  readonly logicalProcessorsMax: number;
  readonly vcpusPerPartitionMax: number;
  /** Partitions on the host at once (running or paused; saved ones do not count). */
  readonly partitionsPerHostMax: number;
  /** Σ vCPUs of the partitions on the host. */
  readonly vcpusPerHostMax: number;
  /** Σ vCPUs ÷ logical processors; 0 = no ratio limit. */
  readonly vcpusPerLpRatioMax: number;
}

export const hostLimitsPresets = {
  /** Windows Server 2016+ style: 240 vCPUs per gen-2 VM, 1024 running VMs, 2048 vCPUs, no ratio; 2048 LPs (WS2025). */
  modern: {
    logicalProcessorsMax: 2048,
    vcpusPerPartitionMax: 240,
    partitionsPerHostMax: 1024,
    vcpusPerHostMax: 2048,
    vcpusPerLpRatioMax: 0,
  },
  /** Windows Server 2008 R2 (TechNet ee405267): 64 LPs, 4 vCPUs per VM, 384 running VMs, 512 vCPUs, 8:1. */
  r2: { logicalProcessorsMax: 64, vcpusPerPartitionMax: 4, partitionsPerHostMax: 384, vcpusPerHostMax: 512, vcpusPerLpRatioMax: 8 },
} as const satisfies Record<string, HostLimits>;

export type HostLimitsPreset = keyof typeof hostLimitsPresets;

export function isHostLimitsPreset(name: string): name is HostLimitsPreset {
  return Object.hasOwn(hostLimitsPresets, name);
}
