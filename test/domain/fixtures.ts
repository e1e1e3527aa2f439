/**
 * Builders for the domain specs: deciders as {decide, evolve, initialState}, valid specs, and
 * one builder per event and command, with defaults that the tests override where it matters.
 */
import {
  type FactReport,
  type HostCommand,
  type HostEvent,
  type HostLimitPreset,
  type HostLimits,
  type HostState,
  type MigrationCommand,
  type MigrationEvent,
  type MigrationLimitsRecord,
  type MigrationPhase,
  type MigrationState,
  type PartitionCommand,
  type PartitionEvent,
  type PartitionFactEvent,
  type PartitionSpec,
  type PartitionSpecInput,
  type PartitionState,
  type PlacementRecord,
  type ReservationPurpose,
  buildSpec,
  decideHost,
  decideMigration,
  decidePartition,
  evolveHost,
  evolveMigration,
  evolvePartition,
  hostLimitPresets,
  initialHostState,
  initialMigrationState,
  initialPartitionState,
} from '../../services/domain/index.ts';
import type { Decider } from './decider-spec.ts';

export const partitionDecider: Decider<PartitionCommand, PartitionEvent, PartitionState> = {
  decide: decidePartition,
  evolve: evolvePartition,
  initialState: initialPartitionState,
};

export const migrationDecider: Decider<MigrationCommand, MigrationEvent, MigrationState> = {
  decide: decideMigration,
  evolve: evolveMigration,
  initialState: initialMigrationState,
};

export const hostDecider: Decider<HostCommand, HostEvent, HostState> = {
  decide: decideHost,
  evolve: evolveHost,
  initialState: initialHostState,
};

/** A spec built from input that must be valid (the test is wrong otherwise). */
export function validSpec(input: PartitionSpecInput): PartitionSpec {
  const built = buildSpec(input, null);
  if (!built.ok) throw new Error(`fixture spec is invalid: ${built.rejection.message}`);
  return built.value;
}

// ---------------------------------------------------------------- partitions

export const partitionId = 'web-1';
export const hostId = 'h1';
export const otherHostId = 'h2';

export const staticSpec = validSpec({ vcpus: 2, memory: { startupMiB: 2048 } });
export const dynamicSpec = validSpec({
  vcpus: 2,
  memory: { mode: 'dynamic', startupMiB: 2048, minMiB: 1024, maxMiB: 4096 },
});

export function placementOn(host: string): PlacementRecord {
  return { policy: 'requested', chosenHostId: host, scores: [{ hostId: host, score: 50 }], rejected: [] };
}

type On = { incarnation?: number; hostId?: string };
const onHost = (on: On = {}) => ({ partitionId, hostId: on.hostId ?? hostId, incarnation: on.incarnation ?? 1 });
const asFact = (on: On = {}) => ({ ...onHost(on), directiveEventId: null });

export const p = {
  created: (spec: PartitionSpec = staticSpec, name = 'web'): PartitionEvent => ({
    type: 'PartitionCreated',
    data: { partitionId, name, spec },
  }),
  deleted: (): PartitionEvent => ({ type: 'PartitionDeleted', data: { partitionId } }),
  startRequested: (
    on: On & { spec?: PartitionSpec; fromSaved?: boolean; reservationId?: string } = {},
  ): PartitionEvent => {
    const data = onHost(on);
    return {
      type: 'PartitionStartRequested',
      data: {
        ...data,
        reservationId: on.reservationId ?? `res-${data.incarnation}`,
        fromSaved: on.fromSaved ?? false,
        spec: on.spec ?? staticSpec,
        placement: placementOn(data.hostId),
      },
    };
  },
  stopRequested: (on: On = {}): PartitionEvent => ({ type: 'PartitionStopRequested', data: onHost(on) }),
  turnOffRequested: (on: On = {}): PartitionEvent => ({ type: 'PartitionTurnOffRequested', data: onHost(on) }),
  pauseRequested: (on: On = {}): PartitionEvent => ({ type: 'PartitionPauseRequested', data: onHost(on) }),
  resumeRequested: (on: On = {}): PartitionEvent => ({ type: 'PartitionResumeRequested', data: onHost(on) }),
  saveRequested: (on: On = {}): PartitionEvent => ({ type: 'PartitionSaveRequested', data: onHost(on) }),
  started: (on: On & { memoryAssignedMiB?: number } = {}): PartitionEvent => ({
    type: 'PartitionStarted',
    data: { ...asFact(on), memoryAssignedMiB: on.memoryAssignedMiB ?? 2048 },
  }),
  resumed: (on: On = {}): PartitionEvent => ({ type: 'PartitionResumed', data: asFact(on) }),
  paused: (on: On = {}): PartitionEvent => ({ type: 'PartitionPaused', data: asFact(on) }),
  saved: (on: On = {}): PartitionEvent => ({ type: 'PartitionSaved', data: asFact(on) }),
  stopped: (on: On & { how?: 'shutdown' | 'turn-off' | 'guest' | 'reconcile' } = {}): PartitionEvent => ({
    type: 'PartitionStopped',
    data: { ...asFact(on), how: on.how ?? 'shutdown' },
  }),
  startFailed: (on: On & { reason?: string; code?: string } = {}): PartitionEvent => ({
    type: 'PartitionStartFailed',
    data: { ...asFact(on), reason: on.reason ?? 'no disk', code: on.code ?? 'start-failed' },
  }),
  crashed: (on: On & { reason?: string } = {}): PartitionEvent => ({
    type: 'PartitionCrashed',
    data: { ...asFact(on), reason: on.reason ?? 'triple fault' },
  }),
};

/** A daemon's report, as the ReportFact command carries it. */
export function report(
  type: PartitionFactEvent['type'],
  overrides: Partial<Omit<FactReport, 'type'>> = {},
): PartitionCommand {
  return {
    type: 'ReportFact',
    fact: {
      type,
      hostId,
      incarnation: 1,
      directiveEventId: null,
      reason: null,
      code: null,
      how: null,
      memoryAssignedMiB: null,
      ...overrides,
    },
  };
}

export function requestStart(incarnation: number, host = hostId, reservationId = `res-${incarnation}`): PartitionCommand {
  return { type: 'RequestStart', hostId: host, incarnation, reservationId, placement: placementOn(host) };
}

/**
 * One history per lifecycle state (static spec, incarnation 1 once started). `Resuming` is the
 * Starting state reached by a resume (resuming: true).
 */
const created = [p.created()];
const starting = [...created, p.startRequested()];
const running = [...starting, p.started()];
const paused = [...running, p.pauseRequested(), p.paused()];
const saving = [...running, p.saveRequested()];
export const histories = {
  Off: created,
  Starting: starting,
  Running: running,
  Pausing: [...running, p.pauseRequested()],
  Paused: paused,
  Resuming: [...paused, p.resumeRequested()],
  Stopping: [...running, p.stopRequested()],
  Saving: saving,
  Saved: [...saving, p.saved()],
  Failed: [...starting, p.startFailed()],
} as const satisfies Record<string, readonly PartitionEvent[]>;

export type HistoryName = keyof typeof histories;
export const historyNames = Object.keys(histories) as HistoryName[];
export const liveHistoryNames: HistoryName[] = ['Starting', 'Resuming', 'Running', 'Pausing', 'Paused', 'Stopping', 'Saving'];
export const restingHistoryNames: HistoryName[] = ['Off', 'Saved', 'Failed'];
/** The API status each history ends in. */
export const statusOf = (name: HistoryName): string => (name === 'Resuming' ? 'Starting' : name);

// ---------------------------------------------------------------- hosts

export type RegisterHost = Extract<HostCommand, { type: 'RegisterHost' }>;
export type ReserveCapacity = Extract<HostCommand, { type: 'ReserveCapacity' }>;

export function registerHost(overrides: Partial<Omit<RegisterHost, 'type'>> = {}): RegisterHost {
  return {
    type: 'RegisterHost',
    hostId,
    logicalProcessors: 8,
    memoryMiB: 65_536,
    parentReserveMiB: 4096,
    labels: {},
    limitsPreset: 'modern',
    limits: {},
    ...overrides,
  };
}

/** The HostRegistered event a valid RegisterHost command produces. */
export function registered(command: RegisterHost = registerHost()): HostEvent {
  const preset = command.limitsPreset as HostLimitPreset;
  const limits: HostLimits = { ...hostLimitPresets[preset], ...command.limits };
  return {
    type: 'HostRegistered',
    data: {
      hostId: command.hostId,
      logicalProcessors: command.logicalProcessors,
      memoryMiB: command.memoryMiB,
      parentReserveMiB: command.parentReserveMiB,
      labels: command.labels,
      limitsPreset: preset,
      limits,
    },
  };
}

export function reserve(overrides: Partial<Omit<ReserveCapacity, 'type'>> = {}): ReserveCapacity {
  return {
    type: 'ReserveCapacity',
    reservationId: 'res-1',
    partitionId,
    incarnation: 1,
    purpose: 'start',
    vcpus: 2,
    reserveLpPct: 0,
    memoryMiB: 2048,
    ...overrides,
  };
}

/** The HostCapacityReserved event an accepted ReserveCapacity command produces. */
export function reserved(command: ReserveCapacity = reserve(), host = hostId): HostEvent {
  const { type: _type, ...rest } = command;
  return { type: 'HostCapacityReserved', data: { hostId: host, ...rest } };
}

export const purposes: ReservationPurpose[] = ['start', 'migration', 'restart'];

// ---------------------------------------------------------------- migrations

/** The migration saga's fixture: partition web-1 (incarnation 1) moves from h1 to h2; h3 is a bystander. */
export const migrationId = 'mig-1';
export const sourceHostId = hostId;
export const targetHostId = otherHostId;
export const thirdHostId = 'h3';
export const migrationMemoryMiB = 2048;
export const targetReservationId = 'mres-1';

export const migrationLimits: MigrationLimitsRecord = {
  bandwidthMiBps: 1024,
  downtimeMsMax: 300,
  roundsMax: 10,
  completionTimeoutMsPerGiB: 30_000,
  progressTimeoutMs: 10_000,
  autoConverge: true,
  onRoundLimit: 'force-switchover',
  perHostMax: 2,
  perClusterMax: 4,
};

/** The hosts every migration event carries; the target is null until one is requested or reserved. */
export const migrationHostsOf = (target: string | null = targetHostId) => ({
  migrationId,
  partitionId,
  sourceHostId,
  targetHostId: target,
});

type RoundFigures = Omit<Extract<MigrationEvent, { type: 'MigrationRoundCompleted' }>['data'], 'migrationId' | 'partitionId' | 'sourceHostId' | 'targetHostId'>;
type SwitchoverFigures = Pick<
  Extract<MigrationEvent, { type: 'MigrationSwitchoverStarted' }>['data'],
  'round' | 'finalCopyMiB' | 'transferredMiB' | 'downtimeMs' | 'reason'
>;

/** Plausible figures for pre-copy round `round` of a 2 GiB partition (the first round sends everything). */
export function roundFigures(round: number, overrides: Partial<RoundFigures> = {}): RoundFigures {
  return {
    round,
    sentMiB: round === 1 ? migrationMemoryMiB : 256,
    durationMs: round === 1 ? 2000 : 250,
    transferredMiB: migrationMemoryMiB + 256 * (round - 1),
    remainingMiB: Math.round(512 / round),
    dirtyRateMiBps: 64,
    throttlePct: round > 2 ? 20 : 0,
    expectedDowntimeMs: Math.round(500 / round),
    ...overrides,
  };
}

export function switchoverFigures(overrides: Partial<SwitchoverFigures> = {}): SwitchoverFigures {
  return { round: 3, finalCopyMiB: 96, transferredMiB: 2656, downtimeMs: 120, reason: 'converged', ...overrides };
}

/** Builders for the migration events, as the decider emits them for the fixture migration. */
export const m = {
  requested: (o: { targetHostId?: string | null; drainId?: string | null; reason?: string } = {}): MigrationEvent => ({
    type: 'MigrationRequested',
    data: {
      ...migrationHostsOf(o.targetHostId === undefined ? null : o.targetHostId),
      sourceIncarnation: 1,
      targetIncarnation: 2,
      memoryMiB: migrationMemoryMiB,
      reason: o.reason ?? 'operator',
      drainId: o.drainId ?? null,
      limits: migrationLimits,
    },
  }),
  queued: (position = 1, o: { targetHostId?: string | null; why?: string } = {}): MigrationEvent => ({
    type: 'MigrationQueued',
    data: { ...migrationHostsOf(o.targetHostId === undefined ? null : o.targetHostId), position, why: o.why ?? 'per-host limit' },
  }),
  targetReserved: (o: { targetHostId?: string; reservationId?: string; limits?: MigrationLimitsRecord } = {}): MigrationEvent => {
    const target = o.targetHostId ?? targetHostId;
    return {
      type: 'MigrationTargetReserved',
      data: {
        ...migrationHostsOf(target),
        targetHostId: target,
        reservationId: o.reservationId ?? targetReservationId,
        targetIncarnation: 2,
        memoryMiB: migrationMemoryMiB,
        placement: placementOn(target),
        limits: o.limits ?? migrationLimits,
      },
    };
  },
  targetPrepared: (target = targetHostId): MigrationEvent => ({
    type: 'MigrationTargetPrepared',
    data: { ...migrationHostsOf(target), targetHostId: target },
  }),
  preCopyStarted: (target = targetHostId): MigrationEvent => ({
    type: 'MigrationPreCopyStarted',
    data: { ...migrationHostsOf(target), targetHostId: target, sourceIncarnation: 1, limits: migrationLimits },
  }),
  roundCompleted: (round: number, overrides: Partial<RoundFigures> = {}): MigrationEvent => ({
    type: 'MigrationRoundCompleted',
    data: { ...migrationHostsOf(), ...roundFigures(round, overrides) },
  }),
  switchoverStarted: (overrides: Partial<SwitchoverFigures> = {}): MigrationEvent => ({
    type: 'MigrationSwitchoverStarted',
    data: { ...migrationHostsOf(), targetHostId, targetIncarnation: 2, ...switchoverFigures(overrides) },
  }),
  completed: (o: { rounds?: number; transferredMiB?: number; downtimeMs?: number } = {}): MigrationEvent => ({
    type: 'MigrationCompleted',
    data: {
      ...migrationHostsOf(),
      targetHostId,
      targetIncarnation: 2,
      rounds: o.rounds ?? 3,
      transferredMiB: o.transferredMiB ?? 2656,
      downtimeMs: o.downtimeMs ?? 120,
    },
  }),
  failed: (phase: MigrationPhase, reason = 'target daemon lost', target: string | null = targetHostId): MigrationEvent => ({
    type: 'MigrationFailed',
    data: { ...migrationHostsOf(target), phase, reason, runningOnHostId: sourceHostId, sourceIncarnation: 1, targetIncarnation: 2 },
  }),
  cancelled: (phase: MigrationPhase, reason = 'operator cancelled', target: string | null = targetHostId): MigrationEvent => ({
    type: 'MigrationCancelled',
    data: { ...migrationHostsOf(target), phase, reason, runningOnHostId: sourceHostId, sourceIncarnation: 1, targetIncarnation: 2 },
  }),
};

type RequestedData = Extract<MigrationEvent, { type: 'MigrationRequested' }>['data'];

/** Builders for the migration commands; reports come from the right host unless told otherwise. */
export const mc = {
  request: (overrides: Partial<RequestedData> = {}): MigrationCommand => {
    const { data } = m.requested() as Extract<MigrationEvent, { type: 'MigrationRequested' }>;
    const merged: RequestedData = { ...data, ...overrides };
    return { type: 'RequestMigration', ...merged };
  },
  queue: (position = 1, why = 'per-host limit'): MigrationCommand => ({ type: 'QueueMigration', position, why }),
  reserve: (target = targetHostId, reservationId = targetReservationId): MigrationCommand => ({
    type: 'ReserveTarget',
    targetHostId: target,
    reservationId,
    placement: placementOn(target),
  }),
  prepared: (host = targetHostId): MigrationCommand => ({ type: 'ReportTargetPrepared', hostId: host }),
  startPreCopy: (): MigrationCommand => ({ type: 'StartPreCopy' }),
  round: (round: number, overrides: Partial<RoundFigures> = {}, host = sourceHostId): MigrationCommand => ({
    type: 'ReportRound',
    hostId: host,
    ...roundFigures(round, overrides),
  }),
  switchover: (overrides: Partial<SwitchoverFigures> = {}, host = sourceHostId): MigrationCommand => ({
    type: 'ReportSwitchover',
    hostId: host,
    ...switchoverFigures(overrides),
  }),
  activated: (host = targetHostId): MigrationCommand => ({ type: 'ReportActivated', hostId: host }),
  fail: (reason = 'target daemon lost'): MigrationCommand => ({ type: 'FailMigration', reason }),
  cancel: (reason = 'operator cancelled'): MigrationCommand => ({ type: 'CancelMigration', reason }),
};

/**
 * One history per saga phase (no target named in the request, so the target is null until it is
 * reserved). PreCopy has seen rounds 1 and 2; SwitchOver started with round 3.
 */
const mRequested = [m.requested()];
const mReserved = [...mRequested, m.targetReserved()];
const mPrepared = [...mReserved, m.targetPrepared()];
const mPreCopy = [...mPrepared, m.preCopyStarted(), m.roundCompleted(1), m.roundCompleted(2)];
const mSwitchOver = [...mPreCopy, m.switchoverStarted()];
export const migrationHistories = {
  Requested: mRequested,
  Queued: [...mRequested, m.queued(1)],
  Reserved: mReserved,
  Prepared: mPrepared,
  PreCopy: mPreCopy,
  SwitchOver: mSwitchOver,
  Completed: [...mSwitchOver, m.completed()],
  Failed: [...mPreCopy, m.failed('PreCopy')],
  Cancelled: [...mPrepared, m.cancelled('Prepared')],
} as const satisfies Record<MigrationPhase, readonly MigrationEvent[]>;

export const migrationPhases = Object.keys(migrationHistories) as MigrationPhase[];
export const waitingMigrationPhases: MigrationPhase[] = ['Requested', 'Queued'];
/** The phases a migration can still be cancelled in. */
export const cancellableMigrationPhases: MigrationPhase[] = ['Requested', 'Queued', 'Reserved', 'Prepared', 'PreCopy'];

// ---------------------------------------------------------------- partition side of a migration

type LockForMigration = Extract<PartitionCommand, { type: 'LockForMigration' }>;

export function lockForMigration(overrides: Partial<Omit<LockForMigration, 'type'>> = {}): PartitionCommand {
  return { type: 'LockForMigration', migrationId, sourceIncarnation: 1, targetHostId, targetReservationId, ...overrides };
}

/** The partition's migration events (source h1 incarnation 1 → target h2 incarnation 2). */
export const pm = {
  started: (o: { migrationId?: string; targetHostId?: string } = {}): PartitionEvent => ({
    type: 'PartitionMigrationStarted',
    data: {
      ...onHost(),
      migrationId: o.migrationId ?? migrationId,
      targetHostId: o.targetHostId ?? targetHostId,
      targetReservationId,
    },
  }),
  migrated: (): PartitionEvent => ({
    type: 'PartitionMigrated',
    data: {
      partitionId,
      migrationId,
      sourceHostId,
      hostId: targetHostId,
      incarnation: 2,
      sourceIncarnation: 1,
      reservationId: targetReservationId,
    },
  }),
  ended: (outcome: 'failed' | 'cancelled' = 'cancelled', reason = 'operator cancelled'): PartitionEvent => ({
    type: 'PartitionMigrationEnded',
    data: { ...onHost(), migrationId, outcome, reason },
  }),
};
