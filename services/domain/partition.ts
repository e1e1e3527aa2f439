/**
 * The partition decider: spec, lifecycle, current host and incarnation.
 *
 * Lifecycle (API state names): Off → Starting → Running → Stopping → Off; Running → Pausing →
 * Paused → (resume) Starting → Running; Running/Paused → Saving → Saved → Starting; turn-off from
 * any live state; Failed with a reason. A resume is shown as Starting because the partition is
 * being brought (back) to Running; it keeps its incarnation, a start gets a new one.
 */
import { type Decision, accept, reject, unreachable } from './decision.ts';
import type { PartitionEvent, PartitionFactEvent, PartitionRestartGivenUp, PartitionRestartPlanned, PartitionUnplaceable } from './events.ts';
import type { PlacementRecord } from './placement.ts';
import { type PartitionSpec, type PartitionSpecInput, type PartitionSpecPatch, buildSpec, diffSpecs } from './spec.ts';

export type PartitionStatus =
  | 'Off'
  | 'Starting'
  | 'Running'
  | 'Pausing'
  | 'Paused'
  | 'Stopping'
  | 'Saving'
  | 'Saved'
  | 'Failed';

type Base = {
  readonly partitionId: string;
  readonly name: string;
  readonly spec: PartitionSpec;
  /** Number of starts so far: the current (or last) incarnation. */
  readonly incarnation: number;
};

/** A live migration under way: the partition is locked for other lifecycle commands. */
export type MigrationLock = {
  readonly migrationId: string;
  readonly targetHostId: string;
  readonly targetReservationId: string;
};

/** A partition that holds a host: it has a host, an incarnation there, and a reservation. */
type Placed = Base & { readonly hostId: string; readonly reservationId: string; readonly migration: MigrationLock | null };

export type PartitionState =
  | { readonly status: 'Initial' }
  | { readonly status: 'Deleted'; readonly partitionId: string }
  | (Base & { readonly status: 'Off'; readonly lastHostId: string | null })
  | (Base & { readonly status: 'Saved'; readonly savedOnHostId: string })
  | (Base & { readonly status: 'Failed'; readonly reason: string; readonly lastHostId: string | null })
  | (Placed & { readonly status: 'Starting'; readonly resuming: boolean })
  | (Placed & { readonly status: 'Running' | 'Pausing' | 'Paused' | 'Stopping' | 'Saving' });

export type ExistingPartition = Exclude<PartitionState, { status: 'Initial' } | { status: 'Deleted' }>;
export type LivePartition = Extract<PartitionState, { hostId: string }>;

export const liveStatuses = ['Starting', 'Running', 'Pausing', 'Paused', 'Stopping', 'Saving'] as const;

export function isLive(state: PartitionState): state is LivePartition {
  return (liveStatuses as readonly string[]).includes(state.status);
}

export type FactReport = {
  readonly type: PartitionFactEvent['type'];
  readonly hostId: string;
  readonly incarnation: number;
  readonly directiveEventId: string | null;
  readonly reason: string | null;
  readonly code: string | null;
  readonly how: 'shutdown' | 'turn-off' | 'guest' | 'reconcile' | null;
  readonly memoryAssignedMiB: number | null;
};

export type PartitionCommand =
  | { readonly type: 'CreatePartition'; readonly partitionId: string; readonly name: string; readonly spec: PartitionSpecInput }
  | { readonly type: 'ReconfigurePartition'; readonly patch: PartitionSpecPatch }
  | {
      readonly type: 'RequestStart';
      readonly hostId: string;
      /** Must be the current incarnation + 1: the reservation was made for it. */
      readonly incarnation: number;
      readonly reservationId: string;
      readonly placement: PlacementRecord;
    }
  | { readonly type: 'RequestStop' }
  | { readonly type: 'RequestTurnOff' }
  | { readonly type: 'RequestPause' }
  | { readonly type: 'RequestResume' }
  | { readonly type: 'RequestSave' }
  | { readonly type: 'DeletePartition' }
  | { readonly type: 'ReportFact'; readonly fact: FactReport }
  | ({ readonly type: 'LockForMigration'; readonly sourceIncarnation: number } & MigrationLock)
  | { readonly type: 'CompleteMigration'; readonly migrationId: string }
  | { readonly type: 'MarkHostLost'; readonly hostId: string; readonly hostFailedEventId: string }
  | { readonly type: 'RecordHaDecision'; readonly event: PartitionRestartPlanned | PartitionRestartGivenUp | PartitionUnplaceable }
  | { readonly type: 'EndMigration'; readonly migrationId: string; readonly outcome: 'failed' | 'cancelled'; readonly reason: string };

export const initialPartitionState = (): PartitionState => ({ status: 'Initial' });

export const partitionIdPattern = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** 1–100 characters, none of them a control character. */
function isValidName(name: string): boolean {
  return name.length >= 1 && name.length <= 100 && [...name].every((c) => c.charCodeAt(0) >= 0x20 && c.charCodeAt(0) !== 0x7f);
}

export function evolvePartition(state: PartitionState, event: PartitionEvent): PartitionState {
  switch (event.type) {
    case 'PartitionCreated':
      return {
        status: 'Off',
        partitionId: event.data.partitionId,
        name: event.data.name,
        spec: event.data.spec,
        incarnation: 0,
        lastHostId: null,
      };
    case 'PartitionDeleted':
      return { status: 'Deleted', partitionId: event.data.partitionId };
    case 'PartitionReconfigured':
      return state.status === 'Initial' || state.status === 'Deleted' ? state : { ...state, spec: event.data.spec };
    case 'PartitionReportIgnored':
    case 'PartitionRestartPlanned':
    case 'PartitionRestartGivenUp':
    case 'PartitionUnplaceable':
      return state;
    case 'PartitionMigrationStarted':
      return state.status === 'Running'
        ? { ...state, migration: { migrationId: event.data.migrationId, targetHostId: event.data.targetHostId, targetReservationId: event.data.targetReservationId } }
        : state;
    case 'PartitionMigrationEnded':
      return isLive(state) ? { ...state, migration: null } : state;
    case 'PartitionMigrated':
      return isLive(state)
        ? {
            ...state,
            status: 'Running',
            hostId: event.data.hostId,
            incarnation: event.data.incarnation,
            reservationId: event.data.reservationId,
            migration: null,
          }
        : state;
    default:
      break;
  }
  if (state.status === 'Initial' || state.status === 'Deleted') return state;
  const base: Base = { partitionId: state.partitionId, name: state.name, spec: state.spec, incarnation: state.incarnation };
  const placed = (status: 'Running' | 'Pausing' | 'Paused' | 'Stopping' | 'Saving'): PartitionState =>
    isLive(state) ? { ...base, status, hostId: state.hostId, reservationId: state.reservationId, migration: state.migration } : state;
  switch (event.type) {
    case 'PartitionStartRequested':
      return {
        ...base,
        status: 'Starting',
        incarnation: event.data.incarnation,
        hostId: event.data.hostId,
        reservationId: event.data.reservationId,
        resuming: false,
        migration: null,
      };
    case 'PartitionResumeRequested':
      return isLive(state)
        ? { ...base, status: 'Starting', hostId: state.hostId, reservationId: state.reservationId, resuming: true, migration: state.migration }
        : state;
    case 'PartitionStopRequested':
    case 'PartitionTurnOffRequested':
      return placed('Stopping');
    case 'PartitionPauseRequested':
      return placed('Pausing');
    case 'PartitionSaveRequested':
      return placed('Saving');
    case 'PartitionStarted':
    case 'PartitionResumed':
      return placed('Running');
    case 'PartitionPaused':
      return placed('Paused');
    case 'PartitionSaved':
      return { ...base, status: 'Saved', savedOnHostId: event.data.hostId };
    case 'PartitionStopped':
      return { ...base, status: 'Off', lastHostId: event.data.hostId };
    case 'PartitionStartFailed':
      return { ...base, status: 'Failed', reason: `start failed: ${event.data.reason}`, lastHostId: event.data.hostId };
    case 'PartitionCrashed':
      return { ...base, status: 'Failed', reason: `crashed: ${event.data.reason}`, lastHostId: event.data.hostId };
    case 'PartitionHostLost':
      return { ...base, status: 'Failed', reason: event.data.reason, lastHostId: event.data.hostId };
    default:
      return unreachable(event);
  }
}

function invalidTransition(state: ExistingPartition, action: string, allowed: string): Decision<PartitionEvent> {
  return reject('conflict', 'invalid-transition', `cannot ${action} partition ${state.partitionId}: it is ${state.status}; ${allowed}`, {
    details: { currentState: state.status },
  });
}

export function decidePartition(command: PartitionCommand, state: PartitionState): Decision<PartitionEvent> {
  if (command.type === 'CreatePartition') return decideCreate(command, state);
  if (state.status === 'Initial' || state.status === 'Deleted') {
    return reject('not-found', 'partition-not-found', 'partition does not exist');
  }
  const on = (s: LivePartition) => ({ partitionId: s.partitionId, hostId: s.hostId, incarnation: s.incarnation });
  const locked = isLive(state) ? state.migration : null;
  const lifecycle = ['ReconfigurePartition', 'RequestStop', 'RequestTurnOff', 'RequestPause', 'RequestResume', 'RequestSave'];
  if (locked && lifecycle.includes(command.type)) {
    return reject('conflict', 'migration-in-progress', `partition ${state.partitionId} is being migrated to ${locked.targetHostId} (migration ${locked.migrationId}); cancel the migration first`, {
      details: { currentState: state.status, migrationId: locked.migrationId },
    });
  }
  switch (command.type) {
    case 'ReconfigurePartition':
      return decideReconfigure(command.patch, state);
    case 'RequestStart': {
      if (state.status !== 'Off' && state.status !== 'Saved' && state.status !== 'Failed') {
        return invalidTransition(state, 'start', 'only an Off, Saved or Failed partition can be started');
      }
      if (state.status === 'Saved' && command.hostId !== state.savedOnHostId) {
        return reject('conflict', 'saved-on-another-host', `partition ${state.partitionId} was saved on ${state.savedOnHostId}; its saved state can only be restored there (turn it off to start it elsewhere)`, {
          details: { currentState: state.status, savedOnHostId: state.savedOnHostId },
        });
      }
      if (command.incarnation !== state.incarnation + 1) {
        return reject('conflict', 'stale-incarnation', `start was prepared for incarnation ${command.incarnation} but the next is ${state.incarnation + 1}`, {
          details: { currentState: state.status },
        });
      }
      return accept({
        type: 'PartitionStartRequested',
        data: {
          partitionId: state.partitionId,
          hostId: command.hostId,
          incarnation: command.incarnation,
          reservationId: command.reservationId,
          fromSaved: state.status === 'Saved',
          spec: state.spec,
          placement: command.placement,
        },
      });
    }
    case 'RequestStop':
      if (state.status !== 'Running') {
        return invalidTransition(state, 'stop', 'a graceful stop needs a Running partition (use turn-off for others)');
      }
      return accept({ type: 'PartitionStopRequested', data: on(state) });
    case 'RequestTurnOff':
      if (!isLive(state)) return invalidTransition(state, 'turn off', 'only a live partition can be turned off');
      return accept({ type: 'PartitionTurnOffRequested', data: on(state) });
    case 'RequestPause':
      if (state.status !== 'Running') return invalidTransition(state, 'pause', 'only a Running partition can be paused');
      return accept({ type: 'PartitionPauseRequested', data: on(state) });
    case 'RequestResume':
      if (state.status !== 'Paused') return invalidTransition(state, 'resume', 'only a Paused partition can be resumed');
      return accept({ type: 'PartitionResumeRequested', data: on(state) });
    case 'RequestSave':
      if (state.status !== 'Running' && state.status !== 'Paused') {
        return invalidTransition(state, 'save', 'only a Running or Paused partition can be saved');
      }
      return accept({ type: 'PartitionSaveRequested', data: on(state) });
    case 'DeletePartition':
      if (state.status !== 'Off' && state.status !== 'Saved' && state.status !== 'Failed') {
        return invalidTransition(state, 'delete', 'turn it off first (only Off, Saved or Failed partitions can be deleted)');
      }
      return accept({ type: 'PartitionDeleted', data: { partitionId: state.partitionId } });
    case 'ReportFact':
      return decideFact(command.fact, state);
    case 'LockForMigration':
      if (state.status !== 'Running') return invalidTransition(state, 'live-migrate', 'only a Running partition can be live-migrated');
      if (locked) {
        if (locked.migrationId === command.migrationId && locked.targetHostId !== command.targetHostId) {
          return reject('conflict', 'migration-target-differs', `partition ${state.partitionId} is locked for migration ${locked.migrationId} to host ${locked.targetHostId}, not ${command.targetHostId}`, {
            details: { currentState: state.status, migrationId: locked.migrationId },
          });
        }
        return locked.migrationId === command.migrationId
          ? accept()
          : reject('conflict', 'migration-in-progress', `partition ${state.partitionId} is already being migrated (migration ${locked.migrationId})`, {
              details: { currentState: state.status, migrationId: locked.migrationId },
            });
      }
      if (command.sourceIncarnation !== state.incarnation) {
        return reject('conflict', 'stale-incarnation', `the migration was requested for incarnation ${command.sourceIncarnation}; the partition now runs incarnation ${state.incarnation}`);
      }
      if (command.targetHostId === state.hostId) return reject('invalid', 'invalid-migration', 'the target host must differ from the source host');
      return accept({
        type: 'PartitionMigrationStarted',
        data: { ...on(state), migrationId: command.migrationId, targetHostId: command.targetHostId, targetReservationId: command.targetReservationId },
      });
    case 'CompleteMigration':
      if (!isLive(state) || state.migration?.migrationId !== command.migrationId) {
        return reject('conflict', 'not-migrating', `partition ${state.partitionId} is not in migration ${command.migrationId}`, { details: { currentState: state.status } });
      }
      return accept({
        type: 'PartitionMigrated',
        data: {
          partitionId: state.partitionId,
          migrationId: command.migrationId,
          sourceHostId: state.hostId,
          hostId: state.migration.targetHostId,
          incarnation: state.incarnation + 1,
          sourceIncarnation: state.incarnation,
          reservationId: state.migration.targetReservationId,
        },
      });
    case 'MarkHostLost':
      // Only the copy on the failed host is lost; a partition already elsewhere is untouched.
      if (!isLive(state) || state.hostId !== command.hostId) return accept();
      return accept({
        type: 'PartitionHostLost',
        data: { ...on(state), hostFailedEventId: command.hostFailedEventId, reason: `host ${command.hostId} failed (lease expired and fenced)` },
      });
    case 'RecordHaDecision':
      if (isLive(state)) return invalidTransition(state, 'record a restart decision for', 'it is live');
      return accept(command.event);
    case 'EndMigration':
      if (!isLive(state) || state.migration?.migrationId !== command.migrationId) return accept();
      return accept({
        type: 'PartitionMigrationEnded',
        data: { ...on(state), migrationId: command.migrationId, outcome: command.outcome, reason: command.reason },
      });
    default:
      return unreachable(command);
  }
}

function decideCreate(command: Extract<PartitionCommand, { type: 'CreatePartition' }>, state: PartitionState): Decision<PartitionEvent> {
  if (!partitionIdPattern.test(command.partitionId)) {
    return reject('invalid', 'invalid-partition', 'id must be 1–63 lowercase letters, digits or dashes, starting with a letter or digit', {
      field: '/id',
    });
  }
  if (!isValidName(command.name)) {
    return reject('invalid', 'invalid-partition', 'name must be 1–100 characters without control characters', { field: '/name' });
  }
  if (state.status !== 'Initial') {
    return reject('conflict', 'partition-exists', `partition ${command.partitionId} already exists${state.status === 'Deleted' ? ' (deleted; ids are not reused)' : ''}`, {
      details: { currentState: state.status },
    });
  }
  const spec = buildSpec(command.spec, null);
  if (!spec.ok) return spec;
  return accept({ type: 'PartitionCreated', data: { partitionId: command.partitionId, name: command.name, spec: spec.value } });
}

/**
 * What may change in which state, as Hyper-V allows: everything while Off or Failed; while the
 * partition runs (or is paused or saved) the processor settings, the HA policy and the workload,
 * and for dynamic memory: minimum down, maximum up, buffer and weight. vCPU count, memory mode
 * and static or startup memory need the partition Off. Nothing changes mid-transition.
 */
function decideReconfigure(patch: PartitionSpecPatch, state: ExistingPartition): Decision<PartitionEvent> {
  const transitional = ['Starting', 'Pausing', 'Stopping', 'Saving'];
  if (transitional.includes(state.status)) {
    return invalidTransition(state, 'reconfigure', 'wait until it is Running, Paused, Saved, Off or Failed');
  }
  const built = buildSpec(patch, state.spec);
  if (!built.ok) return built;
  const next = built.value;
  const restricted = state.status === 'Running' || state.status === 'Paused' || state.status === 'Saved';
  if (restricted) {
    const before = state.spec;
    const refuse = (field: string, why: string) =>
      reject<PartitionEvent>('conflict', 'not-changeable-now', `${why} while the partition is ${state.status}; turn it off first`, {
        field,
        details: { currentState: state.status },
      });
    if (next.vcpus !== before.vcpus) return refuse('/vcpus', 'the vCPU count cannot change');
    if (next.memory.mode !== before.memory.mode) return refuse('/memory/mode', 'the memory mode cannot change');
    if (next.memory.startupMiB !== before.memory.startupMiB) return refuse('/memory/startupMiB', 'startup memory cannot change');
    if (state.status === 'Saved' && JSON.stringify(next.memory) !== JSON.stringify(before.memory)) {
      return refuse('/memory', 'memory cannot change');
    }
    if (next.memory.mode === 'dynamic' && before.memory.mode === 'dynamic') {
      if (next.memory.minMiB > before.memory.minMiB) return refuse('/memory/minMiB', 'minimum memory can only decrease');
      if (next.memory.maxMiB < before.memory.maxMiB) return refuse('/memory/maxMiB', 'maximum memory can only increase');
    }
  }
  const changes = diffSpecs(state.spec, next);
  if (changes.length === 0) return accept();
  return accept({
    type: 'PartitionReconfigured',
    data: {
      partitionId: state.partitionId,
      changes,
      spec: next,
      hostId: isLive(state) ? state.hostId : null,
      incarnation: state.incarnation,
    },
  });
}

/**
 * A daemon's report. It changes the state only when it concerns the current incarnation on the
 * current host and the state expects it; otherwise it is kept as PartitionReportIgnored with the
 * reason, so the log still tells what every daemon saw.
 */
function decideFact(fact: FactReport, state: ExistingPartition): Decision<PartitionEvent> {
  const base = {
    partitionId: state.partitionId,
    hostId: fact.hostId,
    incarnation: fact.incarnation,
    directiveEventId: fact.directiveEventId,
  };
  const ignore = (reason: string) =>
    accept<PartitionEvent>({ type: 'PartitionReportIgnored', data: { ...base, reportedType: fact.type, reason } });
  if (!isLive(state)) return ignore(`partition is ${state.status}, not live`);
  if (fact.incarnation !== state.incarnation) {
    return ignore(`stale incarnation ${fact.incarnation}; current is ${state.incarnation}`);
  }
  if (fact.hostId !== state.hostId) return ignore(`partition runs on ${state.hostId}, not ${fact.hostId}`);
  const expects = (...statuses: string[]) => statuses.includes(state.status);
  switch (fact.type) {
    case 'PartitionStarted':
      if (!expects('Starting') || (state.status === 'Starting' && state.resuming)) return ignore(`state is ${state.status}`);
      return accept({ type: 'PartitionStarted', data: { ...base, memoryAssignedMiB: fact.memoryAssignedMiB ?? 0 } });
    case 'PartitionResumed':
      if (!(state.status === 'Starting' && state.resuming)) return ignore(`state is ${state.status}`);
      return accept({ type: 'PartitionResumed', data: base });
    case 'PartitionStartFailed':
      if (!expects('Starting', 'Stopping')) return ignore(`state is ${state.status}`);
      return accept({
        type: 'PartitionStartFailed',
        data: { ...base, reason: fact.reason ?? 'unknown', code: fact.code ?? 'start-failed' },
      });
    case 'PartitionPaused':
      if (!expects('Pausing')) return ignore(`state is ${state.status}`);
      return accept({ type: 'PartitionPaused', data: base });
    case 'PartitionSaved':
      if (!expects('Saving')) return ignore(`state is ${state.status}`);
      return accept({ type: 'PartitionSaved', data: base });
    case 'PartitionStopped':
      return accept({ type: 'PartitionStopped', data: { ...base, how: fact.how ?? 'guest' } });
    case 'PartitionCrashed':
      return accept({ type: 'PartitionCrashed', data: { ...base, reason: fact.reason ?? 'unknown' } });
    default:
      return unreachable(fact.type);
  }
}

/** The host the partition currently holds, if any. */
export function currentHostId(state: PartitionState): string | null {
  return isLive(state) ? state.hostId : null;
}
