/**
 * Placement as a pure policy: least loaded host that fits, deterministic tie-break by host id.
 * The whole evaluation (scores and rejections with reasons) is recorded in the placement event,
 * so an auditor can see why a partition runs where it runs.
 */
import { type CapacityRequest, type HostCapacity, type ReservedTotals, capacityShortfalls, loadAfter } from './capacity.ts';

export type PlacementCandidate = HostCapacity & {
  readonly hostId: string;
  readonly reserved: ReservedTotals;
  readonly cordoned: boolean;
  /** Whether the host's node daemon is connected; hosts without one cannot start anything. */
  readonly daemonConnected: boolean;
  /** Anti-affinity classes of the partitions placed on the host now. */
  readonly antiAffinityClasses?: readonly string[];
};

/** A soft anti-affinity conflict costs this many score points: chosen only when nothing else fits. */
export const softAntiAffinityPenalty = 1000;

export type PlacementRecord = {
  /** `least-loaded` or `requested` (the caller named the host). */
  readonly policy: string;
  readonly chosenHostId: string | null;
  /** Score = 100 × (1 − load after placement); higher is better. */
  readonly scores: readonly { readonly hostId: string; readonly score: number }[];
  readonly rejected: readonly { readonly hostId: string; readonly reasons: readonly string[] }[];
};

export type PlacementRequest = CapacityRequest & {
  /** Hosts never to choose (e.g. a migration's source). */
  readonly excludeHostIds: readonly string[];
  /** When set, only this host is considered (explicit placement by the caller). */
  readonly requiredHostId: string | null;
  /** Partitions of one class avoid sharing a host: hard = never, soft = only if nothing else fits. */
  readonly antiAffinityClass?: string | null;
  readonly antiAffinityMode?: 'soft' | 'hard';
};

export function place(hosts: readonly PlacementCandidate[], request: PlacementRequest): PlacementRecord {
  const scores: { hostId: string; score: number }[] = [];
  const rejected: { hostId: string; reasons: string[] }[] = [];
  const sorted = [...hosts].sort((a, b) => (a.hostId < b.hostId ? -1 : a.hostId > b.hostId ? 1 : 0));
  for (const host of sorted) {
    if (request.requiredHostId !== null && host.hostId !== request.requiredHostId) continue;
    const reasons: string[] = [];
    if (request.excludeHostIds.includes(host.hostId)) reasons.push('excluded by the request');
    if (host.cordoned) reasons.push('host is cordoned');
    if (!host.daemonConnected && request.requiredHostId === null) reasons.push('node daemon is not connected');
    reasons.push(...capacityShortfalls(host, host.reserved, request));
    const sameClass = request.antiAffinityClass ? (host.antiAffinityClasses ?? []).includes(request.antiAffinityClass) : false;
    if (sameClass && request.antiAffinityMode === 'hard') reasons.push(`anti-affinity: a partition of class ${request.antiAffinityClass} runs there`);
    if (reasons.length > 0) {
      rejected.push({ hostId: host.hostId, reasons });
      continue;
    }
    // Rounded to 0.01 so the record is stable across platforms' float printing.
    const score = Math.round(10_000 * (1 - loadAfter(host, host.reserved, request))) / 100 - (sameClass ? softAntiAffinityPenalty : 0);
    scores.push({ hostId: host.hostId, score });
  }
  if (request.requiredHostId !== null && !hosts.some((h) => h.hostId === request.requiredHostId)) {
    rejected.push({ hostId: request.requiredHostId, reasons: ['no such host'] });
  }
  let best: { hostId: string; score: number } | null = null;
  for (const candidate of scores) {
    if (best === null || candidate.score > best.score) best = candidate;
  }
  return {
    policy: request.requiredHostId === null ? 'least-loaded' : 'requested',
    chosenHostId: best?.hostId ?? null,
    scores,
    rejected,
  };
}
