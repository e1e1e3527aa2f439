/**
 * What high availability needs to remember about each partition, folded from the log: its last
 * failure and cause, its HA restarts (for the restart limit and the backoff), how long it ran,
 * and the decisions already recorded (so none is recorded twice). Replaying the log rebuilds it.
 */
export type LoggedEvent = {
  readonly eventId: string;
  readonly type: string;
  readonly actor: string;
  readonly recordedAt: string;
  readonly data: { readonly [key: string]: unknown };
};

export type FailureKind = 'host-lost' | 'crashed' | 'start-failed';

export type HaRecord = {
  failure: { kind: FailureKind; atMs: number; eventId: string; hostId: string } | null;
  /** Times of the starts HA made (ms since epoch). */
  restartTimesMs: number[];
  /** HA restarts since the partition last ran long enough to reset the backoff. */
  consecutiveRestarts: number;
  runningSinceMs: number | null;
  plan: { causeEventId: string; notBeforeMs: number; where: 'same-host' | 'any-host' } | null;
  gaveUpCauseId: string | null;
  unplaceableCauseId: string | null;
};

export class HaLedger {
  readonly partitions = new Map<string, HaRecord>();

  constructor(
    /** A partition that ran this long since its last start resets its backoff (WSFC: 10 min). */
    private readonly resetAfterMs: number,
  ) {}

  record(partitionId: string): HaRecord {
    let r = this.partitions.get(partitionId);
    if (!r) {
      r = { failure: null, restartTimesMs: [], consecutiveRestarts: 0, runningSinceMs: null, plan: null, gaveUpCauseId: null, unplaceableCauseId: null };
      this.partitions.set(partitionId, r);
    }
    return r;
  }

  apply(event: LoggedEvent): void {
    const partitionId = event.data.partitionId;
    if (typeof partitionId !== 'string') return;
    const atMs = Date.parse(event.recordedAt);
    const hostId = typeof event.data.hostId === 'string' ? event.data.hostId : '';
    switch (event.type) {
      case 'PartitionStartRequested': {
        const r = this.record(partitionId);
        if (event.actor === 'system:ha') {
          r.restartTimesMs.push(atMs);
          r.consecutiveRestarts++;
        } else {
          // An operator's start begins a new story: counters and pending plans are cleared.
          r.consecutiveRestarts = 0;
          r.restartTimesMs = [];
        }
        r.plan = null;
        return;
      }
      // A live migration moves a running guest without restarting it: its clock keeps running.
      case 'PartitionStarted':
        this.record(partitionId).runningSinceMs = atMs;
        return;
      case 'PartitionCrashed':
      case 'PartitionStartFailed':
      case 'PartitionHostLost': {
        const r = this.record(partitionId);
        if (r.runningSinceMs !== null && atMs - r.runningSinceMs >= this.resetAfterMs) r.consecutiveRestarts = 0;
        const kind: FailureKind = event.type === 'PartitionHostLost' ? 'host-lost' : event.type === 'PartitionCrashed' ? 'crashed' : 'start-failed';
        r.failure = { kind, atMs, eventId: event.eventId, hostId };
        r.runningSinceMs = null;
        r.plan = null;
        return;
      }
      case 'PartitionStopped':
      case 'PartitionDeleted':
        this.partitions.delete(partitionId);
        return;
      case 'PartitionRestartPlanned': {
        const d = event.data as { causeEventId: string; notBefore: string; where: 'same-host' | 'any-host' };
        this.record(partitionId).plan = { causeEventId: d.causeEventId, notBeforeMs: Date.parse(d.notBefore), where: d.where };
        return;
      }
      case 'PartitionRestartGivenUp':
        this.record(partitionId).gaveUpCauseId = String(event.data.causeEventId);
        return;
      case 'PartitionUnplaceable':
        this.record(partitionId).unplaceableCauseId = String(event.data.causeEventId);
        return;
      default:
        return;
    }
  }
}
