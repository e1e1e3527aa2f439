/**
 * The migration decider: one live migration's saga, in its own stream `migration-<id>`.
 *
 * Requested → (Queued) → Reserved (capacity held on the target host's stream) → Prepared (target
 * daemon ready to receive) → PreCopy (source daemon sends rounds) → SwitchOver (source paused,
 * last pages sent) → Completed (target activated: the commit point) — or Failed / Cancelled,
 * with the partition still running on the source. Every event carries the source and target
 * hosts (so both daemons receive it) and the limits in force.
 */
import { type Decision, accept, reject, unreachable } from './decision.ts';
import type { PlacementRecord } from './placement.ts';

export type MigrationPhase =
  | 'Requested'
  | 'Queued'
  | 'Reserved'
  | 'Prepared'
  | 'PreCopy'
  | 'SwitchOver'
  | 'Completed'
  | 'Failed'
  | 'Cancelled';

export const activeMigrationPhases: readonly MigrationPhase[] = ['Reserved', 'Prepared', 'PreCopy', 'SwitchOver'];
export const endedMigrationPhases: readonly MigrationPhase[] = ['Completed', 'Failed', 'Cancelled'];

export type MigrationLimitsRecord = {
  readonly bandwidthMiBps: number;
  readonly downtimeMsMax: number;
  readonly roundsMax: number;
  readonly completionTimeoutMsPerGiB: number;
  readonly progressTimeoutMs: number;
  readonly autoConverge: boolean;
  readonly onRoundLimit: 'force-switchover' | 'fail';
  /** Concurrency limits in force when the migration was admitted. */
  readonly perHostMax: number;
  readonly perClusterMax: number;
};

type Hosts = { readonly migrationId: string; readonly partitionId: string; readonly sourceHostId: string; readonly targetHostId: string | null };

export type MigrationRequested = {
  readonly type: 'MigrationRequested';
  readonly data: Hosts & {
    readonly sourceIncarnation: number;
    /** Incarnation the partition will have on the target. */
    readonly targetIncarnation: number;
    readonly memoryMiB: number;
    readonly reason: string;
    /** The drain that asked for it, if any. */
    readonly drainId: string | null;
    readonly limits: MigrationLimitsRecord;
  };
};
export type MigrationQueued = { readonly type: 'MigrationQueued'; readonly data: Hosts & { readonly position: number; readonly why: string } };
export type MigrationTargetReserved = {
  readonly type: 'MigrationTargetReserved';
  readonly data: Hosts & {
    readonly targetHostId: string;
    readonly reservationId: string;
    readonly targetIncarnation: number;
    readonly memoryMiB: number;
    readonly placement: PlacementRecord;
    readonly limits: MigrationLimitsRecord;
  };
};
export type MigrationTargetPrepared = { readonly type: 'MigrationTargetPrepared'; readonly data: Hosts & { readonly targetHostId: string } };
export type MigrationPreCopyStarted = {
  readonly type: 'MigrationPreCopyStarted';
  readonly data: Hosts & { readonly targetHostId: string; readonly sourceIncarnation: number; readonly limits: MigrationLimitsRecord };
};
export type MigrationRoundCompleted = {
  readonly type: 'MigrationRoundCompleted';
  readonly data: Hosts & {
    readonly round: number;
    readonly sentMiB: number;
    readonly durationMs: number;
    readonly transferredMiB: number;
    readonly remainingMiB: number;
    readonly dirtyRateMiBps: number;
    readonly throttlePct: number;
    readonly expectedDowntimeMs: number;
  };
};
export type MigrationSwitchoverStarted = {
  readonly type: 'MigrationSwitchoverStarted';
  readonly data: Hosts & {
    readonly targetHostId: string;
    readonly round: number;
    readonly finalCopyMiB: number;
    readonly transferredMiB: number;
    readonly downtimeMs: number;
    readonly targetIncarnation: number;
    readonly reason: string;
  };
};
export type MigrationCompleted = {
  readonly type: 'MigrationCompleted';
  readonly data: Hosts & {
    readonly targetHostId: string;
    readonly targetIncarnation: number;
    readonly rounds: number;
    readonly transferredMiB: number;
    /** Modelled downtime: final copy at the migration's bandwidth + the resume cost. */
    readonly downtimeMs: number;
  };
};
type Ending = Hosts & {
  readonly phase: MigrationPhase;
  readonly reason: string;
  /** Where the partition runs on: the source (a migration that ends without moving leaves it there). */
  readonly runningOnHostId: string | null;
  readonly sourceIncarnation: number;
  readonly targetIncarnation: number;
};
export type MigrationFailed = { readonly type: 'MigrationFailed'; readonly data: Ending };
export type MigrationCancelled = { readonly type: 'MigrationCancelled'; readonly data: Ending };

export type MigrationEvent =
  | MigrationRequested
  | MigrationQueued
  | MigrationTargetReserved
  | MigrationTargetPrepared
  | MigrationPreCopyStarted
  | MigrationRoundCompleted
  | MigrationSwitchoverStarted
  | MigrationCompleted
  | MigrationFailed
  | MigrationCancelled;

export const migrationEventTypes = [
  'MigrationRequested',
  'MigrationQueued',
  'MigrationTargetReserved',
  'MigrationTargetPrepared',
  'MigrationPreCopyStarted',
  'MigrationRoundCompleted',
  'MigrationSwitchoverStarted',
  'MigrationCompleted',
  'MigrationFailed',
  'MigrationCancelled',
] as const satisfies readonly MigrationEvent['type'][];

/** Migration events a daemon acts on (it is told by sourceHostId / targetHostId which side it is). */
export const migrationDirectiveTypes = [
  'MigrationTargetReserved',
  'MigrationPreCopyStarted',
  'MigrationSwitchoverStarted',
  'MigrationFailed',
  'MigrationCancelled',
] as const satisfies readonly MigrationEvent['type'][];

export type MigrationState =
  | { readonly status: 'Initial' }
  | {
      readonly status: 'Known';
      readonly migrationId: string;
      readonly partitionId: string;
      readonly sourceHostId: string;
      readonly targetHostId: string | null;
      readonly sourceIncarnation: number;
      readonly targetIncarnation: number;
      readonly memoryMiB: number;
      readonly reason: string;
      readonly drainId: string | null;
      readonly limits: MigrationLimitsRecord;
      readonly phase: MigrationPhase;
      readonly reservationId: string | null;
      readonly queuePosition: number | null;
      readonly round: number;
      readonly transferredMiB: number;
      readonly remainingMiB: number | null;
      readonly dirtyRateMiBps: number | null;
      readonly throttlePct: number;
      readonly expectedDowntimeMs: number | null;
      readonly downtimeMs: number | null;
      readonly failureReason: string | null;
      readonly placement: PlacementRecord | null;
    };

export type KnownMigration = Extract<MigrationState, { status: 'Known' }>;

export type MigrationCommand =
  | ({ readonly type: 'RequestMigration' } & MigrationRequested['data'])
  | { readonly type: 'QueueMigration'; readonly position: number; readonly why: string }
  | { readonly type: 'ReserveTarget'; readonly targetHostId: string; readonly reservationId: string; readonly placement: PlacementRecord }
  | { readonly type: 'ReportTargetPrepared'; readonly hostId: string }
  | { readonly type: 'StartPreCopy' }
  | ({ readonly type: 'ReportRound'; readonly hostId: string } & Omit<MigrationRoundCompleted['data'], keyof Hosts>)
  | ({ readonly type: 'ReportSwitchover'; readonly hostId: string } & Pick<MigrationSwitchoverStarted['data'], 'round' | 'finalCopyMiB' | 'transferredMiB' | 'downtimeMs' | 'reason'>)
  | { readonly type: 'ReportActivated'; readonly hostId: string }
  | { readonly type: 'FailMigration'; readonly reason: string }
  | { readonly type: 'CancelMigration'; readonly reason: string };

export const initialMigrationState = (): MigrationState => ({ status: 'Initial' });

export function migrationHosts(state: KnownMigration): Hosts {
  return { migrationId: state.migrationId, partitionId: state.partitionId, sourceHostId: state.sourceHostId, targetHostId: state.targetHostId };
}

export function evolveMigration(state: MigrationState, event: MigrationEvent): MigrationState {
  if (event.type === 'MigrationRequested') {
    const d = event.data;
    return {
      status: 'Known',
      migrationId: d.migrationId,
      partitionId: d.partitionId,
      sourceHostId: d.sourceHostId,
      targetHostId: d.targetHostId,
      sourceIncarnation: d.sourceIncarnation,
      targetIncarnation: d.targetIncarnation,
      memoryMiB: d.memoryMiB,
      reason: d.reason,
      drainId: d.drainId,
      limits: d.limits,
      phase: 'Requested',
      reservationId: null,
      queuePosition: null,
      round: 0,
      transferredMiB: 0,
      remainingMiB: d.memoryMiB,
      dirtyRateMiBps: null,
      throttlePct: 0,
      expectedDowntimeMs: null,
      downtimeMs: null,
      failureReason: null,
      placement: null,
    };
  }
  if (state.status === 'Initial') return state;
  switch (event.type) {
    case 'MigrationQueued':
      return { ...state, phase: 'Queued', queuePosition: event.data.position };
    case 'MigrationTargetReserved':
      return {
        ...state,
        phase: 'Reserved',
        queuePosition: null,
        targetHostId: event.data.targetHostId,
        reservationId: event.data.reservationId,
        placement: event.data.placement,
        limits: event.data.limits,
      };
    case 'MigrationTargetPrepared':
      return { ...state, phase: 'Prepared' };
    case 'MigrationPreCopyStarted':
      return { ...state, phase: 'PreCopy' };
    case 'MigrationRoundCompleted':
      return {
        ...state,
        round: event.data.round,
        transferredMiB: event.data.transferredMiB,
        remainingMiB: event.data.remainingMiB,
        dirtyRateMiBps: event.data.dirtyRateMiBps,
        throttlePct: event.data.throttlePct,
        expectedDowntimeMs: event.data.expectedDowntimeMs,
      };
    case 'MigrationSwitchoverStarted':
      return {
        ...state,
        phase: 'SwitchOver',
        round: event.data.round,
        transferredMiB: event.data.transferredMiB,
        remainingMiB: event.data.finalCopyMiB,
        expectedDowntimeMs: event.data.downtimeMs,
      };
    case 'MigrationCompleted':
      return { ...state, phase: 'Completed', remainingMiB: 0, transferredMiB: event.data.transferredMiB, downtimeMs: event.data.downtimeMs };
    case 'MigrationFailed':
      return { ...state, phase: 'Failed', failureReason: event.data.reason, queuePosition: null };
    case 'MigrationCancelled':
      return { ...state, phase: 'Cancelled', failureReason: event.data.reason, queuePosition: null };
    default:
      return unreachable(event);
  }
}

function wrongPhase(state: KnownMigration, action: string, expected: string): Decision<MigrationEvent> {
  return reject('conflict', 'invalid-migration-phase', `cannot ${action} migration ${state.migrationId}: it is ${state.phase}; ${expected}`, {
    details: { currentState: state.phase },
  });
}

export function decideMigration(command: MigrationCommand, state: MigrationState): Decision<MigrationEvent> {
  if (command.type === 'RequestMigration') {
    if (state.status !== 'Initial') return reject('conflict', 'migration-exists', `migration ${command.migrationId} already exists`);
    if (command.targetHostId !== null && command.targetHostId === command.sourceHostId) {
      return reject('invalid', 'invalid-migration', 'the target host must differ from the source host', { field: '/targetHostId' });
    }
    const { type: _type, ...data } = command;
    return accept({ type: 'MigrationRequested', data });
  }
  if (state.status === 'Initial') return reject('not-found', 'migration-not-found', 'migration does not exist');
  const hosts = migrationHosts(state);
  const ended = endedMigrationPhases.includes(state.phase);
  const fromSource = (hostId: string) => hostId === state.sourceHostId;
  const fromTarget = (hostId: string) => hostId === state.targetHostId;
  switch (command.type) {
    case 'QueueMigration':
      if (state.phase !== 'Requested' && state.phase !== 'Queued') return wrongPhase(state, 'queue', 'only a waiting migration is queued');
      if (state.phase === 'Queued' && state.queuePosition === command.position) return accept();
      return accept({ type: 'MigrationQueued', data: { ...hosts, position: command.position, why: command.why } });
    case 'ReserveTarget':
      if (state.phase !== 'Requested' && state.phase !== 'Queued') return wrongPhase(state, 'reserve a target for', 'it must be waiting');
      if (command.targetHostId === state.sourceHostId) return reject('invalid', 'invalid-migration', 'the target host must differ from the source host');
      if (state.targetHostId !== null && command.targetHostId !== state.targetHostId) {
        return reject('invalid', 'invalid-migration', `the migration was requested to ${state.targetHostId}, not ${command.targetHostId}`);
      }
      return accept({
        type: 'MigrationTargetReserved',
        data: {
          ...hosts,
          targetHostId: command.targetHostId,
          reservationId: command.reservationId,
          targetIncarnation: state.targetIncarnation,
          memoryMiB: state.memoryMiB,
          placement: command.placement,
          limits: state.limits,
        },
      });
    case 'ReportTargetPrepared':
      if (!fromTarget(command.hostId)) return reject('conflict', 'wrong-host', `${command.hostId} is not the target of migration ${state.migrationId}`);
      // Only a reserved migration can become prepared; a late or repeated report changes nothing.
      if (state.phase !== 'Reserved') return accept();
      return accept({ type: 'MigrationTargetPrepared', data: { ...hosts, targetHostId: command.hostId } });
    case 'StartPreCopy':
      if (state.phase !== 'Prepared') return wrongPhase(state, 'start pre-copy of', 'the target must be prepared first');
      return accept({
        type: 'MigrationPreCopyStarted',
        data: { ...hosts, targetHostId: state.targetHostId!, sourceIncarnation: state.sourceIncarnation, limits: state.limits },
      });
    case 'ReportRound': {
      if (!fromSource(command.hostId)) return reject('conflict', 'wrong-host', `${command.hostId} is not the source of migration ${state.migrationId}`);
      // A round reported after the migration ended (a late or repeated report) changes nothing.
      if (state.phase !== 'PreCopy' || command.round <= state.round) return accept();
      const { type: _type, hostId: _hostId, ...round } = command;
      return accept({ type: 'MigrationRoundCompleted', data: { ...hosts, ...round } });
    }
    case 'ReportSwitchover': {
      if (!fromSource(command.hostId)) return reject('conflict', 'wrong-host', `${command.hostId} is not the source of migration ${state.migrationId}`);
      if (state.phase !== 'PreCopy') return accept();
      const { type: _type, hostId: _hostId, ...switchover } = command;
      return accept({
        type: 'MigrationSwitchoverStarted',
        // The final copy is the round after the last pre-copy round: it never counts backwards.
        data: { ...hosts, targetHostId: state.targetHostId!, targetIncarnation: state.targetIncarnation, ...switchover, round: Math.max(switchover.round, state.round) },
      });
    }
    case 'ReportActivated':
      if (!fromTarget(command.hostId)) return reject('conflict', 'wrong-host', `${command.hostId} is not the target of migration ${state.migrationId}`);
      if (state.phase !== 'SwitchOver') return accept();
      return accept({
        type: 'MigrationCompleted',
        data: {
          ...hosts,
          targetHostId: command.hostId,
          targetIncarnation: state.targetIncarnation,
          rounds: state.round,
          transferredMiB: state.transferredMiB,
          downtimeMs: state.expectedDowntimeMs ?? 0,
        },
      });
    case 'FailMigration':
      if (ended) return accept();
      return accept({
        type: 'MigrationFailed',
        data: { ...ending(state), reason: command.reason },
      });
    case 'CancelMigration':
      if (ended) return wrongPhase(state, 'cancel', 'it has ended');
      if (state.phase === 'SwitchOver') return wrongPhase(state, 'cancel', 'switch-over is under way; it completes or fails on its own');
      return accept({
        type: 'MigrationCancelled',
        data: { ...ending(state), reason: command.reason },
      });
    default:
      return unreachable(command);
  }
}

function ending(state: KnownMigration): Omit<Ending, 'reason'> {
  return {
    ...migrationHosts(state),
    phase: state.phase,
    runningOnHostId: state.sourceHostId,
    sourceIncarnation: state.sourceIncarnation,
    targetIncarnation: state.targetIncarnation,
  };
}

export const migrationStreamId = (migrationId: string): string => `migration-${migrationId}`;
