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
  const projections = new Projections();
  const daemons = new DaemonRegistry(config.daemonConnectedWindowMs);
  const service = new ControlPlaneService(store, projections, daemons, {
    placementAttemptsMax: config.placementAttemptsMax,
    orphanReservationGraceMs: config.orphanReservationGraceMs,
  });
  let ready = false;
  const app = await buildApp({
    store,
    service,
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
  const releasing = new Set(['PartitionStopped', 'PartitionStartFailed', 'PartitionCrashed', 'PartitionSaved', 'PartitionDeleted', 'PartitionReconfigured']);
  const reconcile = () =>
    service.reconcileReservations().catch((error: unknown) => app.log.warn({ err: error }, 'reservation reconciliation failed; will retry'));
  const unsubscribe = projections.onApplied((events) => {
    if (events.some((e) => releasing.has(e.type))) void reconcile();
  });
  const timer = setInterval(reconcile, config.reconcileIntervalMs);
  timer.unref();
  void reconcile();

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
      unsubscribe();
      await app.close();
      await service.reconcileReservations().catch(() => undefined);
      await subscription.close();
      idempotency.close();
      await store.close();
    },
  };
}
