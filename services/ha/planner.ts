/**
 * The HA restart policy, pure: given the partitions that failed, their policies and history, the
 * hosts' liveness and the time, what to do now (plan a restart after a backoff, restart now,
 * give up), in priority order. No I/O: the control plane carries the decisions out.
 */
import type { HaRecord } from './ledger.ts';

export type HaConfig = {
  /** At most this many HA restarts of one partition within windowMs, then Failed for good (WSFC: 3 in 15 min). */
  readonly restartsMax: number;
  readonly windowMs: number;
  /** Backoff after a guest crash: initial, doubling, capped (10 s → 5 min). */
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  /** Running this long resets the backoff (10 min). */
  readonly resetAfterMs: number;
  /** `same-host` waits this long for its host to come back, then falls back to any host. */
  readonly sameHostWaitMs: number;
  /** Most HA restarts in flight (Starting) per target host. */
  readonly restartsPerHostMax: number;
};

export const defaultHaConfig: HaConfig = {
  restartsMax: 3,
  windowMs: 15 * 60_000,
  backoffInitialMs: 10_000,
  backoffMaxMs: 5 * 60_000,
  resetAfterMs: 10 * 60_000,
  sameHostWaitMs: 5 * 60_000,
  restartsPerHostMax: 4,
};

export type HaCandidate = {
  readonly partitionId: string;
  readonly restart: 'none' | 'same-host' | 'any-host';
  readonly priority: number;
  readonly record: HaRecord;
};

export type HaDecision =
  | { readonly kind: 'plan'; readonly partitionId: string; readonly causeEventId: string; readonly causeType: string; readonly attempt: number; readonly restartsInWindow: number; readonly delayMs: number; readonly notBeforeMs: number; readonly where: 'same-host' | 'any-host'; readonly lastHostId: string }
  | {
      readonly kind: 'restart';
      readonly partitionId: string;
      readonly causeEventId: string;
      readonly where: 'same-host' | 'any-host';
      readonly hostId: string | null;
      readonly priority: number;
      /** A host not to choose: the one that refused to start it. */
      readonly avoidHostId?: string;
    }
  | { readonly kind: 'give-up'; readonly partitionId: string; readonly causeEventId: string; readonly restartsInWindow: number; readonly reason: string };

const causeTypeOf = { 'host-lost': 'PartitionHostLost', crashed: 'PartitionCrashed', 'start-failed': 'PartitionStartFailed' } as const;

/**
 * Decisions for the partitions that need one now. `hostUp(h)` says whether host h holds a lease.
 * Restarts come out ordered by priority (High 3000 first), then by how long they have waited.
 */
export function planRestarts(candidates: readonly HaCandidate[], hostUp: (hostId: string) => boolean, nowMs: number, config: HaConfig): HaDecision[] {
  const decisions: HaDecision[] = [];
  const restarts: (HaDecision & { kind: 'restart' } & { failedAtMs: number })[] = [];
  for (const c of candidates) {
    const r = c.record;
    const failure = r.failure;
    // Priority 0 = never auto-start (WSFC); restart none = not protected.
    if (!failure || c.restart === 'none' || c.priority <= 0) continue;
    if (r.gaveUpCauseId === failure.eventId) continue;
    const restartsInWindow = r.restartTimesMs.filter((t) => nowMs - t < config.windowMs).length;
    if (failure.kind === 'host-lost') {
      // A host failure restarts at once: on the same host once it is back, or elsewhere.
      let where: 'same-host' | 'any-host' = 'any-host';
      if (c.restart === 'same-host') {
        if (hostUp(failure.hostId)) where = 'same-host';
        else if (nowMs - failure.atMs < config.sameHostWaitMs) continue;
      }
      restarts.push({ kind: 'restart', partitionId: c.partitionId, causeEventId: failure.eventId, where, hostId: where === 'same-host' ? failure.hostId : null, priority: c.priority, failedAtMs: failure.atMs });
      continue;
    }
    // A guest crash (or a failed restart) on a healthy host: in place, after a backoff, a bounded number of times.
    if (restartsInWindow >= config.restartsMax) {
      decisions.push({
        kind: 'give-up',
        partitionId: c.partitionId,
        causeEventId: failure.eventId,
        restartsInWindow,
        reason: `${restartsInWindow} restarts within ${config.windowMs / 60_000} min (limit ${config.restartsMax}): left Failed`,
      });
      continue;
    }
    if (r.plan?.causeEventId !== failure.eventId) {
      const delayMs = Math.min(config.backoffInitialMs * 2 ** r.consecutiveRestarts, config.backoffMaxMs);
      decisions.push({
        kind: 'plan',
        partitionId: c.partitionId,
        causeEventId: failure.eventId,
        causeType: causeTypeOf[failure.kind],
        attempt: r.consecutiveRestarts + 1,
        restartsInWindow,
        delayMs,
        notBeforeMs: failure.atMs + delayMs,
        // A host that refused the start (it had no room) is not tried again when others may do.
        where: c.restart === 'any-host' && (!hostUp(failure.hostId) || failure.kind === 'start-failed') ? 'any-host' : 'same-host',
        lastHostId: failure.hostId,
      });
      continue;
    }
    if (nowMs >= r.plan.notBeforeMs) {
      // In place while its host is up; a same-host policy waits for a host that is down, up to
      // sameHostWaitMs, then falls back to any host, as after a host failure.
      let where: 'same-host' | 'any-host' | null = null;
      if (r.plan.where === 'same-host' && hostUp(failure.hostId)) where = 'same-host';
      else if (r.plan.where === 'any-host' || c.restart === 'any-host' || nowMs - failure.atMs >= config.sameHostWaitMs) where = 'any-host';
      if (where === null) continue;
      restarts.push({
        kind: 'restart',
        partitionId: c.partitionId,
        causeEventId: failure.eventId,
        where,
        hostId: where === 'same-host' ? failure.hostId : null,
        priority: c.priority,
        failedAtMs: failure.atMs,
        ...(failure.kind === 'start-failed' && where === 'any-host' ? { avoidHostId: failure.hostId } : {}),
      });
    }
  }
  restarts.sort((a, b) => b.priority - a.priority || a.failedAtMs - b.failedAtMs || (a.partitionId < b.partitionId ? -1 : 1));
  return [...decisions, ...restarts.map(({ failedAtMs: _f, ...d }) => d)];
}
