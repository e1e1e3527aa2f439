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
  decidePartition,
  evolveHost,
  evolvePartition,
  hostLimitPresets,
  initialHostState,
  initialPartitionState,
} from '../../services/domain/index.ts';
import type { Decider } from './decider-spec.ts';

export const partitionDecider: Decider<PartitionCommand, PartitionEvent, PartitionState> = {
  decide: decidePartition,
  evolve: evolvePartition,
  initialState: initialPartitionState,
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
