/**
 * The event catalogue: every fact vcp stores. Payloads are plain JSON records (mirrored by the
 * Avro schemas in schemas/ in a later issue). Intent events (`…Requested`) are decided by the
 * control plane; fact events are reported by the node daemon that observed them and carry the
 * incarnation they concern.
 */
import type { HostLimits } from './limits.ts';
import { type MigrationEvent, migrationDirectiveTypes } from './migration.ts';
import type { PlacementRecord } from './placement.ts';
import type { PartitionSpec, SpecChange } from './spec.ts';

// ---------------------------------------------------------------- host-<id> stream

export type HostRegistered = {
  readonly type: 'HostRegistered';
  readonly data: {
    readonly hostId: string;
    readonly logicalProcessors: number;
    readonly memoryMiB: number;
    readonly parentReserveMiB: number;
    readonly labels: { readonly [key: string]: string };
    readonly limitsPreset: string;
    readonly limits: HostLimits;
  };
};

export type HostCordoned = {
  readonly type: 'HostCordoned';
  readonly data: { readonly hostId: string; readonly reason: string };
};

export type HostUncordoned = {
  readonly type: 'HostUncordoned';
  readonly data: { readonly hostId: string };
};

export type ReservationPurpose = 'start' | 'migration' | 'restart';

export type HostCapacityReserved = {
  readonly type: 'HostCapacityReserved';
  readonly data: {
    readonly hostId: string;
    readonly reservationId: string;
    readonly partitionId: string;
    /** The incarnation the reservation is for (the next start's). */
    readonly incarnation: number;
    readonly purpose: ReservationPurpose;
    readonly vcpus: number;
    /** vcpus × reservePct: processor reserve in hundredths of a logical processor. */
    readonly reserveLpPct: number;
    readonly memoryMiB: number;
  };
};

export type HostReservationAdjusted = {
  readonly type: 'HostReservationAdjusted';
  readonly data: {
    readonly hostId: string;
    readonly reservationId: string;
    readonly partitionId: string;
    readonly reserveLpPct: number;
  };
};

export type HostReservationReleased = {
  readonly type: 'HostReservationReleased';
  readonly data: {
    readonly hostId: string;
    readonly reservationId: string;
    readonly partitionId: string;
    readonly reason: string;
  };
};

/** Maintenance: the host is cordoned and drained by live migration, then enters Maintenance. */
export type HostMaintenanceRequested = {
  readonly type: 'HostMaintenanceRequested';
  readonly data: { readonly hostId: string; readonly drainId: string; readonly reason: string };
};
export type HostMaintenanceEntered = { readonly type: 'HostMaintenanceEntered'; readonly data: { readonly hostId: string; readonly drainId: string } };
export type HostMaintenanceExited = { readonly type: 'HostMaintenanceExited'; readonly data: { readonly hostId: string; readonly drainId: string } };

/** Liveness: a daemon's lease on its host (renewals are not events; state changes are). */
export type LeaseTerms = { readonly leaseMs: number; readonly renewMs: number; readonly marginMs: number };
export type HostLeaseAcquired = {
  readonly type: 'HostLeaseAcquired';
  readonly data: LeaseTerms & { readonly hostId: string; readonly bootId: string; readonly previousLiveness: string };
};
export type HostSuspected = { readonly type: 'HostSuspected'; readonly data: { readonly hostId: string; readonly silentMs: number; readonly renewMs: number } };
export type HostFailed = {
  readonly type: 'HostFailed';
  readonly data: LeaseTerms & { readonly hostId: string; readonly silentMs: number; readonly lastRenewedAt: string | null; readonly reason: string };
};
export type HostFenced = {
  readonly type: 'HostFenced';
  readonly data: {
    readonly hostId: string;
    readonly bootId: string;
    /** What the host turned off: `partitionId#incarnation`. */
    readonly turnedOff: readonly string[];
    readonly how: 'self-fence' | 'watchdog' | 'machine-down';
    readonly reason: string;
  };
};

export type HostEvent =
  | HostLeaseAcquired
  | HostSuspected
  | HostFailed
  | HostFenced
  | HostMaintenanceRequested
  | HostMaintenanceEntered
  | HostMaintenanceExited
  | HostRegistered
  | HostCordoned
  | HostUncordoned
  | HostCapacityReserved
  | HostReservationAdjusted
  | HostReservationReleased;

// ---------------------------------------------------------------- partition-<id> stream

type OnHost = { readonly partitionId: string; readonly hostId: string; readonly incarnation: number };

export type PartitionCreated = {
  readonly type: 'PartitionCreated';
  readonly data: { readonly partitionId: string; readonly name: string; readonly spec: PartitionSpec };
};

export type PartitionReconfigured = {
  readonly type: 'PartitionReconfigured';
  readonly data: {
    readonly partitionId: string;
    readonly changes: readonly SpecChange[];
    readonly spec: PartitionSpec;
    /** Set when the partition lives on a host, so that host's daemon applies the change live. */
    readonly hostId: string | null;
    readonly incarnation: number;
  };
};

export type PartitionStartRequested = {
  readonly type: 'PartitionStartRequested';
  readonly data: OnHost & {
    readonly reservationId: string;
    /** True when the partition restores a saved state instead of booting. */
    readonly fromSaved: boolean;
    /** The spec the daemon must apply (the spec in force at this start). */
    readonly spec: PartitionSpec;
    readonly placement: PlacementRecord;
  };
};

export type PartitionStopRequested = { readonly type: 'PartitionStopRequested'; readonly data: OnHost };
export type PartitionTurnOffRequested = { readonly type: 'PartitionTurnOffRequested'; readonly data: OnHost };
export type PartitionPauseRequested = { readonly type: 'PartitionPauseRequested'; readonly data: OnHost };
export type PartitionResumeRequested = { readonly type: 'PartitionResumeRequested'; readonly data: OnHost };
export type PartitionSaveRequested = { readonly type: 'PartitionSaveRequested'; readonly data: OnHost };

export type PartitionDeleted = {
  readonly type: 'PartitionDeleted';
  readonly data: { readonly partitionId: string };
};

/** Facts carry the id of the directive event that made the daemon act (null when it acted on its own). */
type Fact = OnHost & { readonly directiveEventId: string | null };

export type PartitionStarted = {
  readonly type: 'PartitionStarted';
  readonly data: Fact & { readonly memoryAssignedMiB: number };
};
export type PartitionStartFailed = {
  readonly type: 'PartitionStartFailed';
  readonly data: Fact & { readonly reason: string; readonly code: string };
};
export type PartitionStopped = {
  readonly type: 'PartitionStopped';
  readonly data: Fact & { readonly how: 'shutdown' | 'turn-off' | 'guest' | 'reconcile' };
};
export type PartitionPaused = { readonly type: 'PartitionPaused'; readonly data: Fact };
export type PartitionResumed = { readonly type: 'PartitionResumed'; readonly data: Fact };
export type PartitionSaved = { readonly type: 'PartitionSaved'; readonly data: Fact };
export type PartitionCrashed = {
  readonly type: 'PartitionCrashed';
  readonly data: Fact & { readonly reason: string };
};

/** A daemon's report that no longer applies (stale incarnation, superseded intent): kept, changes nothing. */
export type PartitionReportIgnored = {
  readonly type: 'PartitionReportIgnored';
  readonly data: Fact & { readonly reportedType: string; readonly reason: string };
};

export type PartitionMigrationStarted = {
  readonly type: 'PartitionMigrationStarted';
  readonly data: OnHost & { readonly migrationId: string; readonly targetHostId: string; readonly targetReservationId: string };
};

/** The partition now runs on the target (hostId) as a new incarnation; the source copy is discarded. */
export type PartitionMigrated = {
  readonly type: 'PartitionMigrated';
  readonly data: OnHost & {
    readonly migrationId: string;
    readonly sourceHostId: string;
    readonly sourceIncarnation: number;
    readonly reservationId: string;
  };
};

export type PartitionMigrationEnded = {
  readonly type: 'PartitionMigrationEnded';
  readonly data: OnHost & { readonly migrationId: string; readonly outcome: 'failed' | 'cancelled'; readonly reason: string };
};

/** HA: the partition's host failed (its lease expired past the fencing margin): it runs nowhere. */
export type PartitionHostLost = {
  readonly type: 'PartitionHostLost';
  readonly data: OnHost & { readonly hostFailedEventId: string; readonly reason: string };
};

/** HA's decisions, recorded with the policy and counters in force so a restart explains itself. */
export type HaPolicyRecord = {
  readonly restart: string;
  readonly priority: number;
  readonly restartsMax: number;
  readonly windowMs: number;
  readonly backoffInitialMs: number;
  readonly backoffMaxMs: number;
  readonly resetAfterMs: number;
};
export type PartitionRestartPlanned = {
  readonly type: 'PartitionRestartPlanned';
  readonly data: {
    readonly partitionId: string;
    /** The HostFailed or PartitionCrashed event that caused it. */
    readonly causeEventId: string;
    readonly causeType: string;
    readonly attempt: number;
    readonly restartsInWindow: number;
    readonly delayMs: number;
    readonly notBefore: string;
    readonly where: 'same-host' | 'any-host';
    readonly lastHostId: string | null;
    readonly policy: HaPolicyRecord;
  };
};
export type PartitionRestartGivenUp = {
  readonly type: 'PartitionRestartGivenUp';
  readonly data: {
    readonly partitionId: string;
    readonly causeEventId: string;
    readonly restartsInWindow: number;
    readonly reason: string;
    readonly policy: HaPolicyRecord;
  };
};
export type PartitionUnplaceable = {
  readonly type: 'PartitionUnplaceable';
  readonly data: {
    readonly partitionId: string;
    readonly causeEventId: string;
    readonly placement: PlacementRecord;
    readonly reason: string;
  };
};

export type PartitionFactEvent =
  | PartitionStarted
  | PartitionStartFailed
  | PartitionStopped
  | PartitionPaused
  | PartitionResumed
  | PartitionSaved
  | PartitionCrashed;

export type PartitionDirectiveEvent =
  | PartitionStartRequested
  | PartitionStopRequested
  | PartitionTurnOffRequested
  | PartitionPauseRequested
  | PartitionResumeRequested
  | PartitionSaveRequested
  | PartitionReconfigured;

export type PartitionEvent =
  | PartitionHostLost
  | PartitionRestartPlanned
  | PartitionRestartGivenUp
  | PartitionUnplaceable
  | PartitionCreated
  | PartitionDeleted
  | PartitionMigrationStarted
  | PartitionMigrated
  | PartitionMigrationEnded
  | PartitionDirectiveEvent
  | PartitionFactEvent
  | PartitionReportIgnored;

export type DomainEvent = HostEvent | PartitionEvent | MigrationEvent;
export type DomainEventType = DomainEvent['type'];

export const hostEventTypes = [
  'HostLeaseAcquired',
  'HostSuspected',
  'HostFailed',
  'HostFenced',
  'HostMaintenanceRequested',
  'HostMaintenanceEntered',
  'HostMaintenanceExited',
  'HostRegistered',
  'HostCordoned',
  'HostUncordoned',
  'HostCapacityReserved',
  'HostReservationAdjusted',
  'HostReservationReleased',
] as const satisfies readonly HostEvent['type'][];

export const partitionFactTypes = [
  'PartitionStarted',
  'PartitionStartFailed',
  'PartitionStopped',
  'PartitionPaused',
  'PartitionResumed',
  'PartitionSaved',
  'PartitionCrashed',
] as const satisfies readonly PartitionFactEvent['type'][];

/** Events a node daemon must act on; each carries the hostId it concerns. */
export const directiveTypes = [
  'PartitionStartRequested',
  'PartitionStopRequested',
  'PartitionTurnOffRequested',
  'PartitionPauseRequested',
  'PartitionResumeRequested',
  'PartitionSaveRequested',
  'PartitionReconfigured',
] as const satisfies readonly PartitionDirectiveEvent['type'][];

export const partitionEventTypes = [
  'PartitionHostLost',
  'PartitionRestartPlanned',
  'PartitionRestartGivenUp',
  'PartitionUnplaceable',
  'PartitionCreated',
  'PartitionDeleted',
  'PartitionMigrationStarted',
  'PartitionMigrated',
  'PartitionMigrationEnded',
  'PartitionReportIgnored',
  ...directiveTypes,
  ...partitionFactTypes,
] as const satisfies readonly PartitionEvent['type'][];

export function isDirectiveType(type: string): type is PartitionDirectiveEvent['type'] {
  return (directiveTypes as readonly string[]).includes(type);
}

/**
 * Whether a stored event is something the daemon of `hostId` must act on: a partition directive
 * for its host, the end of a migration away from it (PartitionMigrated: discard the old copy),
 * or a migration step in which it is the source or the target.
 */
export function concernsHost(type: string, data: { readonly [key: string]: unknown }, hostId: string): boolean {
  if (isDirectiveType(type)) return data.hostId === hostId;
  if (type === 'PartitionMigrated') return data.sourceHostId === hostId;
  if ((migrationDirectiveTypes as readonly string[]).includes(type)) return data.sourceHostId === hostId || data.targetHostId === hostId;
  return false;
}

export function isFactType(type: string): type is PartitionFactEvent['type'] {
  return (partitionFactTypes as readonly string[]).includes(type);
}

export const hostStreamId = (hostId: string): string => `host-${hostId}`;
export const partitionStreamId = (partitionId: string): string => `partition-${partitionId}`;
