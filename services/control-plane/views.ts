/** API representations of the read model. */
import { type HostState, type PartitionState, memoryUsableMiB, vcpusHostMax } from '../domain/index.ts';
import type { DaemonStatus } from './daemons.ts';
import type { Tracked } from './projections.ts';

export function hostView(tracked: Tracked<HostState>, daemon: DaemonStatus) {
  const host = tracked.state;
  if (host.status !== 'Registered') throw new Error('hostView of an unregistered host');
  const usable = memoryUsableMiB(host);
  return {
    id: host.hostId,
    logicalProcessors: host.logicalProcessors,
    memoryMiB: host.memoryMiB,
    parentReserveMiB: host.parentReserveMiB,
    labels: host.labels,
    limitsPreset: host.limitsPreset,
    limits: host.limits,
    cordoned: host.cordoned,
    cordonReason: host.cordonReason,
    state: host.maintenance && (host.liveness === 'Up' || host.liveness === 'Unknown') ? 'Maintenance' : host.liveness,
    lease: host.lease,
    maintenance: host.maintenance,
    capacity: {
      vcpusMax: vcpusHostMax(host),
      vcpusReserved: host.reserved.vcpus,
      processorReserveLp: host.logicalProcessors,
      processorReservedLp: host.reserved.reserveLpPct / 100,
      memoryUsableMiB: usable,
      memoryReservedMiB: host.reserved.memoryMiB,
      memoryFreeMiB: usable - host.reserved.memoryMiB,
      partitionsMax: host.limits.partitionsPerHostMax,
      partitionsReserved: host.reserved.count,
    },
    reservations: [...host.reservations.values()].map((r) => ({
      reservationId: r.reservationId,
      partitionId: r.partitionId,
      incarnation: r.incarnation,
      purpose: r.purpose,
      vcpus: r.vcpus,
      processorReserveLp: r.reserveLpPct / 100,
      memoryMiB: r.memoryMiB,
    })),
    daemon,
    version: tracked.version,
    createdAt: tracked.createdAt,
    updatedAt: tracked.updatedAt,
  };
}

export type HostView = ReturnType<typeof hostView>;

export function partitionView(tracked: Tracked<PartitionState>) {
  const p = tracked.state;
  if (p.status === 'Initial' || p.status === 'Deleted') throw new Error('partitionView of a missing partition');
  return {
    id: p.partitionId,
    name: p.name,
    state: p.status,
    hostId: 'hostId' in p ? p.hostId : null,
    lastHostId: p.status === 'Off' || p.status === 'Failed' ? p.lastHostId : p.status === 'Saved' ? p.savedOnHostId : null,
    incarnation: p.incarnation,
    reason: p.status === 'Failed' ? p.reason : null,
    migration: 'migration' in p && p.migration ? { migrationId: p.migration.migrationId, targetHostId: p.migration.targetHostId } : null,
    spec: p.spec,
    version: tracked.version,
    createdAt: tracked.createdAt,
    updatedAt: tracked.updatedAt,
  };
}

export type PartitionView = ReturnType<typeof partitionView>;
