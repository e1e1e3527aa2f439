/**
 * Host limits: how much a host may carry, besides its raw capacity.
 * Presets follow Hyper-V's published limits (../shared/reference/hypervisor-models.md §1.3).
 */

export type HostLimits = {
  /** Most vCPUs one partition may have on this host (also never more than its LPs). */
  readonly vcpusPerPartitionMax: number;
  /** Most partitions placed (reserved) on this host at once. */
  readonly partitionsPerHostMax: number;
  /** Most vCPUs summed over placed partitions. */
  readonly vcpusPerHostMax: number;
  /** Most vCPUs per logical processor (0 = no ratio limit, as in modern Hyper-V). */
  readonly vcpusPerLpRatioMax: number;
};

export const hostLimitPresets = {
  /** Windows Server 2016+ style: 240 vCPUs per gen-2 VM, 1024 running VMs, 2048 vCPUs, no ratio. */
  modern: { vcpusPerPartitionMax: 240, partitionsPerHostMax: 1024, vcpusPerHostMax: 2048, vcpusPerLpRatioMax: 0 },
  /** Windows Server 2008 R2: 4 vCPUs per VM, 384 running VMs, 512 vCPUs, 8:1 VP:LP. */
  r2: { vcpusPerPartitionMax: 4, partitionsPerHostMax: 384, vcpusPerHostMax: 512, vcpusPerLpRatioMax: 8 },
} as const satisfies Record<string, HostLimits>;

export type HostLimitPreset = keyof typeof hostLimitPresets;

export function isHostLimitPreset(name: string): name is HostLimitPreset {
  return Object.hasOwn(hostLimitPresets, name);
}

/** The R2 preset also caps a host at 64 logical processors. */
export const logicalProcessorsMaxByPreset: Record<HostLimitPreset, number> = { modern: 2048, r2: 64 };
