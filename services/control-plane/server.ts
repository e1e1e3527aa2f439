/**
 * Wires the control plane: store, projections, service, reconciler, HTTP.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { type EventStore, openSqliteEventStore } from '../eventstore/index.ts';
import { DaemonRegistry } from './daemons.ts';
import { buildApp } from './http/app.ts';
import { openIdempotencyStore } from './idempotency.ts';
import { Projections, startProjections } from './projections.ts';
import { type HaConfig, defaultHaConfig } from '../ha/index.ts';
import { HaManager, type LivenessConfig, defaultLivenessConfig } from './ha.ts';
import { MaintenanceManager } from './maintenance.ts';
import { type MigrationConfig, MigrationManager, defaultMigrationConfig } from './migrations.ts';
import { ControlPlaneService } from './service.ts';
import { TelemetryStore } from './telemetry.ts';

export type ControlPlaneConfig = {
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  readonly logLevel: string;
  /** A daemon silent for longer than this counts as disconnected. */
  readonly daemonConnectedWindowMs: number;
  readonly orphanReservationGraceMs: number;
  readonly reconcileIntervalMs: number;
  readonly placementAttemptsMax: number;
  readonly sseConnectionsMax: number;
  readonly migrations: MigrationConfig;
  readonly ha: HaConfig;
  readonly liveness: LivenessConfig;
  /** How often the migration manager checks deadlines and daemons. */
  readonly migrationTickMs: number;
};

export const defaultControlPlaneConfig: Omit<ControlPlaneConfig, 'dataDir'> = {
  port: 8080,
  host: '127.0.0.1',
  logLevel: 'info',
  daemonConnectedWindowMs: 5_000,
  orphanReservationGraceMs: 30_000,
  reconcileIntervalMs: 5_000,
  placementAttemptsMax: 5,
  sseConnectionsMax: 1_000,
  migrations: defaultMigrationConfig,
  ha: defaultHaConfig,
  liveness: defaultLivenessConfig,
  migrationTickMs: 500,
};

export type ControlPlaneHandle = {
  readonly url: string;
  readonly app: FastifyInstance;
  readonly store: EventStore;
  readonly service: ControlPlaneService;
  close(): Promise<void>;
};

export const version = '0.1.0';

export async function runControlPlane(config: ControlPlaneConfig, injected?: { store?: EventStore }): Promise<ControlPlaneHandle> {
  mkdirSync(config.dataDir, { recursive: true });
  const store = injected?.store ?? openSqliteEventStore({ path: join(config.dataDir, 'events.db') });
  const idempotency = openIdempotencyStore(join(config.dataDir, 'control-plane.db'));
  const projections = new Projections({ haResetAfterMs: config.ha.resetAfterMs });
  const daemons = new DaemonRegistry(config.daemonConnectedWindowMs);
  const service = new ControlPlaneService(store, projections, daemons, {
    placementAttemptsMax: config.placementAttemptsMax,
    orphanReservationGraceMs: config.orphanReservationGraceMs,
  });
  const migrations = new MigrationManager(store, projections, daemons, config.migrations, () => service.placementCandidates());
  const ha = new HaManager(store, projections, daemons, service, config.ha, config.liveness);
  const maintenance = new MaintenanceManager(store, projections, migrations);
  let ready = false;
  const app = await buildApp({
    store,
    service,
    migrations,
    maintenance,
    idempotency,
    telemetry: new TelemetryStore(),
    logLevel: config.logLevel,
    sseConnectionsMax: config.sseConnectionsMax,
    ready: () => ready,
    version,
  });
  const subscription = await startProjections(store, projections);
  ready = true;

  // The reservation reconciler reacts to partitions leaving their host, and sweeps periodically
  // for reservations orphaned by a crash between a reservation and its start.
  const releasing = new Set([
    'PartitionStopped',
    'PartitionStartFailed',
    'PartitionCrashed',
    'PartitionSaved',
    'PartitionDeleted',
    'PartitionReconfigured',
    'PartitionMigrated',
    'PartitionMigrationEnded',
  ]);
  // Events that can change what a process manager should do (a reservation or a daemon's report
  // of a routine fact cannot), so a burst of ordinary commands does not run passes for nothing.
  const processManagerTriggers = new Set([
    'HostLeaseAcquired',
    'HostSuspected',
    'HostFailed',
    'HostFenced',
    'HostMaintenanceRequested',
    'HostMaintenanceExited',
    'HostReservationReleased',
    'HostRegistered',
    'PartitionCrashed',
    'PartitionStartFailed',
    'PartitionStopped',
    'PartitionMigrated',
    'PartitionMigrationEnded',
    'PartitionHostLost',
    'PartitionRestartPlanned',
  ]);
  const advanceMigrations = () => {
    ha.advance().catch((error: unknown) => app.log.warn({ err: error }, 'HA pass failed; will retry'));
    migrations.advance().catch((error: unknown) => app.log.warn({ err: error }, 'migration manager pass failed; will retry'));
    maintenance.advance().catch((error: unknown) => app.log.warn({ err: error }, 'maintenance pass failed; will retry'));
  };
  const reconcile = () =>
    service.reconcileReservations().catch((error: unknown) => app.log.warn({ err: error }, 'reservation reconciliation failed; will retry'));
  const unsubscribe = projections.onApplied((events) => {
    if (events.some((e) => releasing.has(e.type))) void reconcile();
    if (events.some((e) => processManagerTriggers.has(e.type) || e.streamId.startsWith('migration-'))) {
      advanceMigrations();
    }
  });
  const timer = setInterval(reconcile, config.reconcileIntervalMs);
  timer.unref();
  const migrationTimer = setInterval(advanceMigrations, config.migrationTickMs);
  migrationTimer.unref();
  void reconcile();
  advanceMigrations();

  const address = await app.listen({ port: config.port, host: config.host });
  let closed = false;
  return {
    url: address.replace('[::1]', 'localhost'),
    app,
    store,
    service,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      clearInterval(migrationTimer);
      unsubscribe();
      await app.close();
      await service.reconcileReservations().catch(() => undefined);
      await migrations.advance().catch(() => undefined);
      await maintenance.advance().catch(() => undefined);
      await ha.advance().catch(() => undefined);
      await subscription.close();
      idempotency.close();
      await store.close();
    },
  };
}
