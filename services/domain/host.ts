/**
 * The host decider: registration, cordon, and capacity reservations. Optimistic concurrency on
 * the host stream serialises concurrent placements, so a host can never be overcommitted.
 */
import {
  type CapacityRequest,
  type HostCapacity,
  type ReservedTotals,
  addToTotals,
  capacityShortfalls,
  emptyTotals,
} from './capacity.ts';
import { type Decision, accept, reject, unreachable } from './decision.ts';
import type { HostCapacityReserved, HostEvent, LeaseTerms, ReservationPurpose } from './events.ts';
import { type HostLimitPreset, type HostLimits, hostLimitPresets, isHostLimitPreset, logicalProcessorsMaxByPreset } from './limits.ts';

export type Reservation = HostCapacityReserved['data'];

export type HostState =
  | { readonly status: 'Unregistered' }
  | (HostCapacity & {
      readonly status: 'Registered';
      readonly hostId: string;
      readonly labels: { readonly [key: string]: string };
      readonly limitsPreset: string;
      readonly cordoned: boolean;
      readonly cordonReason: string | null;
      /** Whether its daemon holds a lease: Unknown until the first one. */
      readonly liveness: HostLiveness;
      readonly lease: (LeaseTerms & { readonly bootId: string }) | null;
      /** Draining (live-migrating its partitions away) or InMaintenance; null when in service. */
      readonly maintenance: { readonly drainId: string; readonly status: 'Draining' | 'InMaintenance'; readonly reason: string } | null;
      /** Keyed by reservationId. */
      readonly reservations: ReadonlyMap<string, Reservation>;
      readonly reserved: ReservedTotals;
    });

export type RegisteredHost = Extract<HostState, { status: 'Registered' }>;

export type HostLiveness = 'Unknown' | 'Up' | 'Suspect' | 'Failed' | 'Fenced';

export type HostCommand =
  | {
      readonly type: 'RegisterHost';
      readonly hostId: string;
      readonly logicalProcessors: number;
      readonly memoryMiB: number;
      readonly parentReserveMiB: number;
      readonly labels: { readonly [key: string]: string };
      readonly limitsPreset: string;
      /** Overrides of single limits on top of the preset. */
      readonly limits: Partial<HostLimits>;
    }
  | { readonly type: 'CordonHost'; readonly reason: string }
  | { readonly type: 'UncordonHost' }
  | ({ readonly type: 'AcquireLease'; readonly bootId: string } & LeaseTerms)
  | { readonly type: 'SuspectHost'; readonly silentMs: number }
  | { readonly type: 'DeclareHostFailed'; readonly silentMs: number; readonly lastRenewedAt: string | null; readonly reason: string }
  | { readonly type: 'ReportFenced'; readonly bootId: string; readonly turnedOff: readonly string[]; readonly how: 'self-fence' | 'watchdog' | 'machine-down'; readonly reason: string }
  | { readonly type: 'RequestMaintenance'; readonly drainId: string; readonly reason: string }
  | { readonly type: 'EnterMaintenance'; readonly drainId: string }
  | { readonly type: 'ExitMaintenance' }
  | ({
      readonly type: 'ReserveCapacity';
      readonly reservationId: string;
      readonly partitionId: string;
      readonly incarnation: number;
      readonly purpose: ReservationPurpose;
    } & CapacityRequest)
  | { readonly type: 'AdjustReservation'; readonly reservationId: string; readonly reserveLpPct: number }
  | { readonly type: 'ReleaseReservation'; readonly reservationId: string; readonly reason: string };

export const initialHostState = (): HostState => ({ status: 'Unregistered' });

export const hostIdPattern = /^[a-z0-9][a-z0-9-]{0,62}$/;

function requestOf(reservation: Reservation): CapacityRequest {
  return { vcpus: reservation.vcpus, reserveLpPct: reservation.reserveLpPct, memoryMiB: reservation.memoryMiB };
}

export function evolveHost(state: HostState, event: HostEvent): HostState {
  switch (event.type) {
    case 'HostRegistered': {
      const d = event.data;
      return {
        status: 'Registered',
        hostId: d.hostId,
        logicalProcessors: d.logicalProcessors,
        memoryMiB: d.memoryMiB,
        parentReserveMiB: d.parentReserveMiB,
        labels: d.labels,
        limitsPreset: d.limitsPreset,
        limits: d.limits,
        cordoned: false,
        cordonReason: null,
        liveness: 'Unknown',
        lease: null,
        maintenance: null,
        reservations: new Map(),
        reserved: emptyTotals,
      };
    }
    case 'HostCordoned':
      return state.status === 'Registered' ? { ...state, cordoned: true, cordonReason: event.data.reason } : state;
    case 'HostUncordoned':
      return state.status === 'Registered' ? { ...state, cordoned: false, cordonReason: null } : state;
    case 'HostLeaseAcquired': {
      if (state.status !== 'Registered') return state;
      const { hostId: _h, previousLiveness: _p, ...lease } = event.data;
      return { ...state, liveness: 'Up', lease };
    }
    case 'HostSuspected':
      return state.status === 'Registered' ? { ...state, liveness: 'Suspect' } : state;
    case 'HostFailed':
      return state.status === 'Registered' ? { ...state, liveness: 'Failed' } : state;
    case 'HostFenced':
      return state.status === 'Registered' ? { ...state, liveness: 'Fenced' } : state;
    case 'HostMaintenanceRequested':
      return state.status === 'Registered'
        ? {
            ...state,
            cordoned: true,
            cordonReason: `maintenance: ${event.data.reason}`,
            maintenance: { drainId: event.data.drainId, status: 'Draining', reason: event.data.reason },
          }
        : state;
    case 'HostMaintenanceEntered':
      return state.status === 'Registered' && state.maintenance ? { ...state, maintenance: { ...state.maintenance, status: 'InMaintenance' } } : state;
    case 'HostMaintenanceExited':
      return state.status === 'Registered' ? { ...state, cordoned: false, cordonReason: null, maintenance: null } : state;
    case 'HostCapacityReserved': {
      if (state.status !== 'Registered') return state;
      const reservations = new Map(state.reservations);
      reservations.set(event.data.reservationId, event.data);
      return { ...state, reservations, reserved: addToTotals(state.reserved, requestOf(event.data)) };
    }
    case 'HostReservationAdjusted': {
      if (state.status !== 'Registered') return state;
      const before = state.reservations.get(event.data.reservationId);
      if (!before) return state;
      const after = { ...before, reserveLpPct: event.data.reserveLpPct };
      const reservations = new Map(state.reservations);
      reservations.set(after.reservationId, after);
      const reserved = addToTotals(addToTotals(state.reserved, requestOf(before), -1), requestOf(after));
      return { ...state, reservations, reserved };
    }
    case 'HostReservationReleased': {
      if (state.status !== 'Registered') return state;
      const before = state.reservations.get(event.data.reservationId);
      if (!before) return state;
      const reservations = new Map(state.reservations);
      reservations.delete(before.reservationId);
      return { ...state, reservations, reserved: addToTotals(state.reserved, requestOf(before), -1) };
    }
    default:
      return unreachable(event);
  }
}

export function decideHost(command: HostCommand, state: HostState): Decision<HostEvent> {
  if (command.type === 'RegisterHost') return decideRegister(command, state);
  if (state.status !== 'Registered') {
    return reject('not-found', 'host-not-found', 'host is not registered');
  }
  switch (command.type) {
    case 'CordonHost':
      return state.cordoned
        ? accept()
        : accept({ type: 'HostCordoned', data: { hostId: state.hostId, reason: command.reason } });
    case 'UncordonHost':
      if (state.maintenance) {
        return reject('conflict', 'in-maintenance', `host ${state.hostId} is ${state.maintenance.status === 'Draining' ? 'draining' : 'in maintenance'}; end maintenance instead`, {
          details: { currentState: state.maintenance.status },
        });
      }
      return state.cordoned ? accept({ type: 'HostUncordoned', data: { hostId: state.hostId } }) : accept();
    case 'AcquireLease': {
      const same =
        state.liveness === 'Up' &&
        state.lease?.bootId === command.bootId &&
        state.lease.leaseMs === command.leaseMs &&
        state.lease.renewMs === command.renewMs &&
        state.lease.marginMs === command.marginMs;
      if (same) return accept();
      if (!(command.renewMs > 0 && command.leaseMs > command.renewMs && command.marginMs >= 0 && command.marginMs < command.leaseMs)) {
        return reject('invalid', 'invalid-lease', 'a lease needs 0 < renewMs < leaseMs and 0 <= marginMs < leaseMs');
      }
      const { type: _type, ...terms } = command;
      return accept({ type: 'HostLeaseAcquired', data: { hostId: state.hostId, previousLiveness: state.liveness, ...terms } });
    }
    case 'SuspectHost':
      if (state.liveness !== 'Up') return accept();
      return accept({ type: 'HostSuspected', data: { hostId: state.hostId, silentMs: command.silentMs, renewMs: state.lease?.renewMs ?? 0 } });
    case 'DeclareHostFailed':
      if (state.liveness !== 'Up' && state.liveness !== 'Suspect') return accept();
      if (!state.lease) return accept();
      return accept({
        type: 'HostFailed',
        data: {
          hostId: state.hostId,
          silentMs: command.silentMs,
          lastRenewedAt: command.lastRenewedAt,
          reason: command.reason,
          leaseMs: state.lease.leaseMs,
          renewMs: state.lease.renewMs,
          marginMs: state.lease.marginMs,
        },
      });
    case 'ReportFenced':
      return accept({
        type: 'HostFenced',
        data: { hostId: state.hostId, bootId: command.bootId, turnedOff: command.turnedOff, how: command.how, reason: command.reason },
      });
    case 'RequestMaintenance':
      if (state.maintenance) return accept();
      return accept({ type: 'HostMaintenanceRequested', data: { hostId: state.hostId, drainId: command.drainId, reason: command.reason } });
    case 'EnterMaintenance':
      if (state.maintenance?.drainId !== command.drainId || state.maintenance.status !== 'Draining') return accept();
      if (state.reserved.count > 0) {
        return reject('conflict', 'host-not-empty', `host ${state.hostId} still holds ${state.reserved.count} reservations`, { details: { currentState: 'Draining' } });
      }
      return accept({ type: 'HostMaintenanceEntered', data: { hostId: state.hostId, drainId: command.drainId } });
    case 'ExitMaintenance':
      if (!state.maintenance) return reject('conflict', 'not-in-maintenance', `host ${state.hostId} is not in maintenance`, { details: { currentState: 'Up' } });
      return accept({ type: 'HostMaintenanceExited', data: { hostId: state.hostId, drainId: state.maintenance.drainId } });
    case 'ReserveCapacity': {
      const existing = state.reservations.get(command.reservationId);
      if (existing) {
        // A retried reservation with the same id is the same reservation: nothing to do.
        return existing.partitionId === command.partitionId
          ? accept()
          : reject('conflict', 'reservation-id-reused', `reservation ${command.reservationId} belongs to another partition`);
      }
      if (!Number.isInteger(command.vcpus) || command.vcpus < 1 || !(command.reserveLpPct >= 0) || !Number.isInteger(command.memoryMiB) || command.memoryMiB < 0) {
        return reject('invalid', 'invalid-reservation', 'a reservation needs vcpus >= 1, reserveLpPct >= 0 and a whole memoryMiB >= 0');
      }
      if (state.cordoned && command.purpose !== 'restart') {
        return reject('no-capacity', 'host-cordoned', `host ${state.hostId} is cordoned: ${state.cordonReason ?? ''}`.trim(), {
          details: { hostId: state.hostId, reasons: ['host is cordoned'] },
        });
      }
      const reasons = capacityShortfalls(state, state.reserved, command);
      if (reasons.length > 0) {
        return reject('no-capacity', 'insufficient-capacity', `host ${state.hostId} cannot take it: ${reasons.join('; ')}`, {
          details: { hostId: state.hostId, reasons },
        });
      }
      return accept({
        type: 'HostCapacityReserved',
        data: {
          hostId: state.hostId,
          reservationId: command.reservationId,
          partitionId: command.partitionId,
          incarnation: command.incarnation,
          purpose: command.purpose,
          vcpus: command.vcpus,
          reserveLpPct: command.reserveLpPct,
          memoryMiB: command.memoryMiB,
        },
      });
    }
    case 'AdjustReservation': {
      const existing = state.reservations.get(command.reservationId);
      if (!existing) return reject('not-found', 'reservation-not-found', `no reservation ${command.reservationId}`);
      if (!(command.reserveLpPct >= 0)) return reject('invalid', 'invalid-reservation', 'reserveLpPct must be >= 0');
      if (existing.reserveLpPct === command.reserveLpPct) return accept();
      const others = addToTotals(state.reserved, requestOf(existing), -1);
      const reasons = capacityShortfalls(state, others, { ...requestOf(existing), reserveLpPct: command.reserveLpPct });
      if (reasons.length > 0) {
        return reject('no-capacity', 'insufficient-capacity', `host ${state.hostId} cannot take it: ${reasons.join('; ')}`, {
          details: { hostId: state.hostId, reasons },
        });
      }
      return accept({
        type: 'HostReservationAdjusted',
        data: {
          hostId: state.hostId,
          reservationId: existing.reservationId,
          partitionId: existing.partitionId,
          reserveLpPct: command.reserveLpPct,
        },
      });
    }
    case 'ReleaseReservation': {
      const existing = state.reservations.get(command.reservationId);
      // Releasing twice is harmless: the second release has nothing to do.
      if (!existing) return accept();
      return accept({
        type: 'HostReservationReleased',
        data: {
          hostId: state.hostId,
          reservationId: existing.reservationId,
          partitionId: existing.partitionId,
          reason: command.reason,
        },
      });
    }
    default:
      return unreachable(command);
  }
}

function decideRegister(command: Extract<HostCommand, { type: 'RegisterHost' }>, state: HostState): Decision<HostEvent> {
  if (!hostIdPattern.test(command.hostId)) {
    return reject('invalid', 'invalid-host', 'hostId must be 1–63 lowercase letters, digits or dashes, starting with a letter or digit', {
      field: '/id',
    });
  }
  if (!isHostLimitPreset(command.limitsPreset)) {
    return reject('invalid', 'invalid-host', `limitsPreset must be one of ${Object.keys(hostLimitPresets).join(', ')}`, {
      field: '/limitsPreset',
    });
  }
  const preset: HostLimitPreset = command.limitsPreset;
  const limits: HostLimits = { ...hostLimitPresets[preset], ...command.limits };
  const lpMax = logicalProcessorsMaxByPreset[preset];
  if (!Number.isInteger(command.logicalProcessors) || command.logicalProcessors < 1 || command.logicalProcessors > lpMax) {
    return reject('invalid', 'invalid-host', `logicalProcessors must be an integer from 1 to ${lpMax} (preset ${preset})`, {
      field: '/logicalProcessors',
    });
  }
  if (!Number.isInteger(command.memoryMiB) || command.memoryMiB < 1) {
    return reject('invalid', 'invalid-host', 'memoryMiB must be a positive integer', { field: '/memoryMiB' });
  }
  if (!Number.isInteger(command.parentReserveMiB) || command.parentReserveMiB < 0 || command.parentReserveMiB >= command.memoryMiB) {
    return reject('invalid', 'invalid-host', 'parentReserveMiB must be an integer from 0 to below memoryMiB', {
      field: '/parentReserveMiB',
    });
  }
  for (const [key, value] of Object.entries(limits)) {
    if (!Number.isInteger(value) || value < 0) {
      return reject('invalid', 'invalid-host', `limits.${key} must be a non-negative integer`, { field: `/limits/${key}` });
    }
  }
  const data = {
    hostId: command.hostId,
    logicalProcessors: command.logicalProcessors,
    memoryMiB: command.memoryMiB,
    parentReserveMiB: command.parentReserveMiB,
    labels: command.labels,
    limitsPreset: preset,
    limits,
  };
  if (state.status === 'Registered') {
    // Limits count as capacity: accepting other limits as a no-op would silently keep the old ones.
    const same =
      state.logicalProcessors === data.logicalProcessors &&
      state.memoryMiB === data.memoryMiB &&
      state.parentReserveMiB === data.parentReserveMiB &&
      state.limitsPreset === data.limitsPreset &&
      (Object.keys(limits) as (keyof HostLimits)[]).every((key) => state.limits[key] === limits[key]);
    // Registering the same machine again (a node daemon restarting) is a no-op.
    return same
      ? accept()
      : reject('conflict', 'host-exists', `host ${command.hostId} is already registered with other capacity`, {
          details: {
            logicalProcessors: state.logicalProcessors,
            memoryMiB: state.memoryMiB,
            parentReserveMiB: state.parentReserveMiB,
          },
        });
  }
  return accept({ type: 'HostRegistered', data });
}
