/**
 * Wires the control plane: store, projections, service, reconciler, HTTP.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { type EventStore, type Subscription, openSqliteEventStore } from '../eventstore/index.ts';
import { DaemonGateway } from './daemon-gateway.ts';
import { type KafkaConfig, type KafkaIntegration, type KafkaIntegrationStats, startKafkaIntegration } from '../messaging/index.ts';
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
  /** Kafka (VCP_KAFKA_*): the log relayed to vcp.events, commands from vcp.commands; null = embedded only. */
  readonly kafka?: KafkaConfig | null;
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
  /** The Kafka integration's counters (relay lag, commands, DLQ), when Kafka is configured. */
  readonly kafka: (() => KafkaIntegrationStats) | null;
  close(): Promise<void>;
};

export const version = '0.1.0';

/** The control plane without its HTTP face: the projections and every process manager on them. */
export type ControlPlaneCore = {
  readonly store: EventStore;
  readonly projections: Projections;
  readonly daemons: DaemonRegistry;
  readonly service: ControlPlaneService;
  readonly migrations: MigrationManager;
  readonly ha: HaManager;
  readonly maintenance: MaintenanceManager;
  readonly telemetry: TelemetryStore;
  readonly gateway: DaemonGateway;
  /** Replays the log into the projections, then follows it and starts the process managers. */
  start(): Promise<void>;
  /**
   * Stops timers and the subscription. `graceful` (the default) first runs one last pass of every
   * process manager; the simulation's crash passes false. The store is not closed.
   */
  stop(options?: { graceful?: boolean }): Promise<void>;
};

export type CoreLog = { warn(object: object, message: string): void };

/** The process managers' configuration: everything of ControlPlaneConfig but the HTTP listener and data dir. */
export type CoreConfig = Omit<ControlPlaneConfig, 'port' | 'host' | 'dataDir' | 'logLevel' | 'sseConnectionsMax' | 'kafka'>;

export function createControlPlaneCore(store: EventStore, config: CoreConfig, log: CoreLog): ControlPlaneCore {
  const projections = new Projections({ haResetAfterMs: config.ha.resetAfterMs });
  const daemons = new DaemonRegistry(config.daemonConnectedWindowMs);
  const service = new ControlPlaneService(store, projections, daemons, {
    placementAttemptsMax: config.placementAttemptsMax,
    orphanReservationGraceMs: config.orphanReservationGraceMs,
  });
  const migrations = new MigrationManager(store, projections, daemons, config.migrations, () => service.placementCandidates());
  const ha = new HaManager(store, projections, daemons, service, config.ha, config.liveness);
  const maintenance = new MaintenanceManager(store, projections, migrations);
  const telemetry = new TelemetryStore();
  const gateway = new DaemonGateway(store, service, migrations, telemetry);

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
  const advance = () => {
    ha.advance().catch((error: unknown) => log.warn({ err: error }, 'HA pass failed; will retry'));
    migrations.advance().catch((error: unknown) => log.warn({ err: error }, 'migration manager pass failed; will retry'));
    maintenance.advance().catch((error: unknown) => log.warn({ err: error }, 'maintenance pass failed; will retry'));
  };
  const reconcile = () =>
    service.reconcileReservations().catch((error: unknown) => log.warn({ err: error }, 'reservation reconciliation failed; will retry'));

  let subscription: Subscription | null = null;
  let unsubscribe: (() => void) | null = null;
  let timers: ReturnType<typeof setInterval>[] = [];
  let stopped = false;
  return {
    store,
    projections,
    daemons,
    service,
    migrations,
    ha,
    maintenance,
    telemetry,
    gateway,
    async start() {
      subscription = await startProjections(store, projections);
      unsubscribe = projections.onApplied((events) => {
        if (events.some((e) => releasing.has(e.type))) void reconcile();
        if (events.some((e) => processManagerTriggers.has(e.type) || e.streamId.startsWith('migration-'))) advance();
      });
      timers = [setInterval(reconcile, config.reconcileIntervalMs), setInterval(advance, config.migrationTickMs)];
      for (const timer of timers) timer.unref?.();
      void reconcile();
      advance();
    },
    async stop(options = {}) {
      if (stopped) return;
      stopped = true;
      for (const timer of timers) clearInterval(timer);
      unsubscribe?.();
      if (options.graceful ?? true) {
        await service.reconcileReservations().catch(() => undefined);
        await migrations.advance().catch(() => undefined);
        await maintenance.advance().catch(() => undefined);
        await ha.advance().catch(() => undefined);
      }
      await subscription?.close();
    },
  };
}

export async function runControlPlane(config: ControlPlaneConfig, injected?: { store?: EventStore }): Promise<ControlPlaneHandle> {
  mkdirSync(config.dataDir, { recursive: true });
  const store = injected?.store ?? openSqliteEventStore({ path: join(config.dataDir, 'events.db') });
  const idempotency = openIdempotencyStore(join(config.dataDir, 'control-plane.db'));
  let log: CoreLog = { warn: () => undefined };
  const core = createControlPlaneCore(store, config, { warn: (object, message) => log.warn(object, message) });
  let ready = false;
  const app = await buildApp({
    store,
    service: core.service,
    migrations: core.migrations,
    maintenance: core.maintenance,
    gateway: core.gateway,
    idempotency,
    telemetry: core.telemetry,
    logLevel: config.logLevel,
    sseConnectionsMax: config.sseConnectionsMax,
    ready: () => ready,
    kafkaStats: () => kafka?.stats() ?? null,
    version,
  });
  log = app.log;
  await core.start();
  let kafka: KafkaIntegration | null = null;
  if (config.kafka) {
    try {
      kafka = await startKafkaIntegration({
        store,
        service: core.service,
        migrations: core.migrations,
        maintenance: core.maintenance,
        gateway: core.gateway,
        projections: core.projections,
        config: config.kafka,
        dataDir: config.dataDir,
        log: app.log,
      });
    } catch (error) {
      // Asked for Kafka and cannot have it: refuse to start rather than run half-connected.
      await app.close();
      await core.stop();
      idempotency.close();
      await store.close();
      throw error;
    }
  }
  ready = true;

  const address = await app.listen({ port: config.port, host: config.host });
  let closed = false;
  return {
    url: address.replace('[::1]', 'localhost'),
    app,
    store,
    service: core.service,
    kafka: kafka ? () => kafka.stats() : null,
    async close() {
      if (closed) return;
      closed = true;
      await app.close();
      await kafka?.close();
      await core.stop();
      idempotency.close();
      await store.close();
    },
  };
}
