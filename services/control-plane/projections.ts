/**
 * The read model: every host and partition folded from the global log with the deciders' own
 * evolve functions, so replayed and live state cannot drift. Kept in memory, rebuilt at start.
 */
import {
  type HostEvent,
  type HostState,
  type MigrationEvent,
  type MigrationState,
  evolveMigration,
  initialMigrationState,
  migrationEventTypes,
  type PartitionEvent,
  type PartitionState,
  evolveHost,
  evolvePartition,
  hostEventTypes,
  initialHostState,
  initialPartitionState,
  partitionEventTypes,
} from '../domain/index.ts';
import type { EventStore, RecordedEvent, Subscription } from '../eventstore/index.ts';
import { HaLedger, defaultHaConfig } from '../ha/index.ts';

export type Tracked<S> = {
  readonly state: S;
  readonly version: number;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly lastGlobalPosition: number;
  readonly lastEventId: string;
  readonly lastCorrelationId: string;
};

const hostTypes = new Set<string>(hostEventTypes);
const partitionTypes = new Set<string>(partitionEventTypes);
const migrationTypes = new Set<string>(migrationEventTypes);

export type TrackedMigration = Tracked<MigrationState> & {
  /** Global position of the request: the queue's order. */
  readonly requestPosition: number;
  /** When the migration entered its current phase (ms since epoch, store time). */
  readonly phaseChangedAtMs: number;
  /** When it last made progress (a phase change or a round). */
  readonly progressAtMs: number;
};

/** Longest a caller may wait for the projection to reach a position. */
export const catchUpWaitMsMax = 10_000;

export class Projections {
  constructor(options: { haResetAfterMs?: number } = {}) {
    this.ha = new HaLedger(options.haResetAfterMs ?? defaultHaConfig.resetAfterMs);
  }

  readonly hosts = new Map<string, Tracked<HostState>>();
  readonly partitions = new Map<string, Tracked<PartitionState>>();
  readonly migrations = new Map<string, TrackedMigration>();
  /** HA's memory of each partition's failures, restarts and decisions. */
  readonly ha: HaLedger;
  /** The HostFailed event of each host that failed last (the cause of its partitions' restarts). */
  readonly hostFailedEvents = new Map<string, string>();
  /** Who asked for each drain (maintenance), so its migrations carry the cause and the actor. */
  readonly drains = new Map<string, { readonly eventId: string; readonly actor: string; readonly correlationId: string; readonly hostId: string }>();
  /** When each reservation was made (ms since epoch), to age out orphans. */
  readonly reservationMadeAtMs = new Map<string, number>();
  private positionValue = 0;
  private waiters: { position: number; resolve: () => void }[] = [];
  private listeners = new Set<(events: readonly RecordedEvent[]) => void>();

  get position(): number {
    return this.positionValue;
  }

  apply(event: RecordedEvent): void {
    if (event.globalPosition <= this.positionValue) return;
    if (hostTypes.has(event.type) && event.streamId.startsWith('host-')) {
      const id = event.streamId.slice('host-'.length);
      const before = this.hosts.get(id);
      const state = evolveHost(before?.state ?? initialHostState(), { type: event.type, data: event.data } as HostEvent);
      this.hosts.set(id, track(before, state, event));
      // The cause of its partitions' restarts: the failure (or a fencing report) since its last lease.
      if (event.type === 'HostFailed' || event.type === 'HostFenced') this.hostFailedEvents.set(id, event.eventId);
      if (event.type === 'HostLeaseAcquired') this.hostFailedEvents.delete(id);
      if (event.type === 'HostMaintenanceRequested') {
        this.drains.set(String(event.data.drainId), { eventId: event.eventId, actor: event.actor, correlationId: event.correlationId, hostId: id });
      }
      if (event.type === 'HostCapacityReserved') {
        this.reservationMadeAtMs.set(String(event.data.reservationId), Date.parse(event.recordedAt));
      } else if (event.type === 'HostReservationReleased') {
        this.reservationMadeAtMs.delete(String(event.data.reservationId));
      }
    } else if (partitionTypes.has(event.type) && event.streamId.startsWith('partition-')) {
      const id = event.streamId.slice('partition-'.length);
      const before = this.partitions.get(id);
      const state = evolvePartition(before?.state ?? initialPartitionState(), { type: event.type, data: event.data } as PartitionEvent);
      this.partitions.set(id, track(before, state, event));
      this.ha.apply(event);
    } else if (migrationTypes.has(event.type) && event.streamId.startsWith('migration-')) {
      const id = event.streamId.slice('migration-'.length);
      const before = this.migrations.get(id);
      const state = evolveMigration(before?.state ?? initialMigrationState(), { type: event.type, data: event.data } as MigrationEvent);
      const atMs = Date.parse(event.recordedAt);
      this.migrations.set(id, {
        ...track(before, state, event),
        requestPosition: before?.requestPosition ?? event.globalPosition,
        // Rounds are progress within a phase, not a new phase.
        phaseChangedAtMs: event.type === 'MigrationRoundCompleted' ? (before?.phaseChangedAtMs ?? atMs) : atMs,
        progressAtMs: atMs,
      });
    }
    this.positionValue = event.globalPosition;
  }

  applyBatch(events: readonly RecordedEvent[]): void {
    for (const event of events) this.apply(event);
    this.waiters = this.waiters.filter((w) => {
      if (w.position > this.positionValue) return true;
      w.resolve();
      return false;
    });
    for (const listener of this.listeners) listener(events);
  }

  /** Called after each applied batch (the SSE streams and process managers use it). */
  onApplied(listener: (events: readonly RecordedEvent[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves once the projection shows these (just appended) events. */
  caughtUp(events: readonly RecordedEvent[]): Promise<void> {
    return this.waitFor(events.reduce((max, e) => Math.max(max, e.globalPosition), 0));
  }

  /** Resolves once every event up to `position` is applied (read-your-writes for the API). */
  waitFor(position: number): Promise<void> {
    if (position <= this.positionValue) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(new Error(`projection did not reach position ${position} within ${catchUpWaitMsMax} ms`));
      }, catchUpWaitMsMax);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      this.waiters.push({ position, resolve: done });
    });
  }
}

function track<S>(before: Tracked<S> | undefined, state: S, event: RecordedEvent): Tracked<S> {
  return {
    state,
    version: event.streamVersion,
    createdAt: before?.createdAt ?? event.recordedAt,
    updatedAt: event.recordedAt,
    lastGlobalPosition: event.globalPosition,
    lastEventId: event.eventId,
    lastCorrelationId: event.correlationId,
  };
}

/** Folds the whole log, then follows it live. */
export async function startProjections(store: EventStore, projections: Projections): Promise<Subscription> {
  const head = await store.headPosition();
  const subscription = store.subscribeAll({
    after: projections.position,
    onEvents: (events) => projections.applyBatch(events),
  });
  await projections.waitFor(head).catch(async () => {
    // A large log may take longer than one wait: keep waiting until caught up.
    while (projections.position < head) await new Promise((r) => setTimeout(r, 50));
  });
  return subscription;
}
