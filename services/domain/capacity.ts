/**
 * Capacity accounting by reservations, shared by the host decider (which enforces it) and the
 * placement policy (which predicts it), so the two can never disagree.
 */
import type { HostLimits } from './limits.ts';

export type HostCapacity = {
  readonly logicalProcessors: number;
  readonly memoryMiB: number;
  readonly parentReserveMiB: number;
  readonly limits: HostLimits;
};

export type CapacityRequest = {
  readonly vcpus: number;
  /** vcpus × reservePct. */
  readonly reserveLpPct: number;
  readonly memoryMiB: number;
};

export type ReservedTotals = {
  readonly count: number;
  readonly vcpus: number;
  readonly reserveLpPct: number;
  readonly memoryMiB: number;
};

export const emptyTotals: ReservedTotals = { count: 0, vcpus: 0, reserveLpPct: 0, memoryMiB: 0 };

export function addToTotals(totals: ReservedTotals, request: CapacityRequest, sign: 1 | -1 = 1): ReservedTotals {
  return {
    count: totals.count + sign,
    vcpus: totals.vcpus + sign * request.vcpus,
    reserveLpPct: totals.reserveLpPct + sign * request.reserveLpPct,
    memoryMiB: totals.memoryMiB + sign * request.memoryMiB,
  };
}

export function memoryUsableMiB(host: HostCapacity): number {
  return host.memoryMiB - host.parentReserveMiB;
}

export function vcpusHostMax(host: HostCapacity): number {
  const byRatio =
    host.limits.vcpusPerLpRatioMax > 0 ? host.logicalProcessors * host.limits.vcpusPerLpRatioMax : Number.MAX_SAFE_INTEGER;
  return Math.min(byRatio, host.limits.vcpusPerHostMax);
}

/**
 * Why this request does not fit on this host given what is reserved already ([] = it fits).
 * Each reason is a sentence an operator understands.
 */
export function capacityShortfalls(host: HostCapacity, reserved: ReservedTotals, request: CapacityRequest): string[] {
  const reasons: string[] = [];
  if (request.vcpus > host.logicalProcessors) {
    reasons.push(`needs ${request.vcpus} vCPUs but the host has ${host.logicalProcessors} logical processors`);
  }
  if (request.vcpus > host.limits.vcpusPerPartitionMax) {
    reasons.push(`needs ${request.vcpus} vCPUs but the host allows ${host.limits.vcpusPerPartitionMax} per partition`);
  }
  if (reserved.count + 1 > host.limits.partitionsPerHostMax) {
    reasons.push(`the host already carries its maximum of ${host.limits.partitionsPerHostMax} partitions`);
  }
  const vcpusMax = vcpusHostMax(host);
  if (reserved.vcpus + request.vcpus > vcpusMax) {
    reasons.push(`vCPUs would reach ${reserved.vcpus + request.vcpus}, above the host's limit of ${vcpusMax}`);
  }
  const reserveCapacity = host.logicalProcessors * 100;
  if (reserved.reserveLpPct + request.reserveLpPct > reserveCapacity) {
    reasons.push(
      `processor reserve would reach ${(reserved.reserveLpPct + request.reserveLpPct) / 100} LPs, above the host's ${host.logicalProcessors}`,
    );
  }
  const memoryFreeMiB = memoryUsableMiB(host) - reserved.memoryMiB;
  if (request.memoryMiB > memoryFreeMiB) {
    reasons.push(`needs ${request.memoryMiB} MiB of memory but only ${memoryFreeMiB} MiB is free`);
  }
  return reasons;
}

/** Fraction (0–1) of the host's most used dimension after adding the request: the load score. */
export function loadAfter(host: HostCapacity, reserved: ReservedTotals, request: CapacityRequest): number {
  const memory = (reserved.memoryMiB + request.memoryMiB) / Math.max(1, memoryUsableMiB(host));
  const vcpus = (reserved.vcpus + request.vcpus) / Math.max(1, vcpusHostMax(host));
  const reserve = (reserved.reserveLpPct + request.reserveLpPct) / Math.max(1, host.logicalProcessors * 100);
  return Math.max(memory, reserve, vcpus);
}
