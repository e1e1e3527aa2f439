/**
 * The node daemons' side of the control plane, independent of transport: what a daemon may ask
 * (its desired state, its directives) and tell (facts, lease renewals, fencing, migration facts,
 * telemetry). HTTP (http/app.ts) and the deterministic simulation's in-process transport both call
 * these methods, so a daemon's report is decided by one code path whichever way it travels.
 *
 * Every method is about one host and answers `null` for a host that is not registered; callers map
 * that to their transport's "not found".
 */
import type { Static } from 'typebox';
import { type HostCommand, concernsHost } from '../domain/index.ts';
import type { EventStore, RecordedEvent } from '../eventstore/index.ts';
import type { CommandMeta } from './commands.ts';
import type * as S from './http/schemas.ts';
import type { MigrationManager, MigrationReport } from './migrations.ts';
import type { Projections } from './projections.ts';
import type { ControlPlaneService, Outcome, ReportResult } from './service.ts';
import type { TelemetryStore } from './telemetry.ts';
import type { HostView } from './views.ts';

export type HostRegistration = Static<typeof S.HostInput>;
export type ReportsBody = Static<typeof S.ReportsInput>;
export type HeartbeatBody = Static<typeof S.HeartbeatInput>;
export type FencedBody = Static<typeof S.FencedInput>;
export type MigrationReportsBody = Static<typeof S.MigrationReportsInput>;
export type TelemetryBody = Static<typeof S.TelemetryInput>;

/** Lease terms assumed when a heartbeat does not state them (the documented defaults). */
export const defaultLeaseTerms = { leaseMs: 10_000, renewMs: 1_000, marginMs: 2_000 } as const;

/** Most events read from the store at a time when following the log. */
export const followBatchSizeMax = 500;

/** One step of following the log: a batch read (possibly all filtered out) or an idle wait ended. */
export type FollowStep = { readonly kind: 'batch'; readonly events: readonly RecordedEvent[]; readonly position: number } | { readonly kind: 'idle' };

/**
 * Follows the global log after `after`: catch-up and live are one loop (read after the last
 * position, wait for a newer event, repeat), so there is no gap and no duplicate between them, and
 * a slow consumer only slows its own loop. It never runs ahead of the projections, so whoever
 * reads the API after receiving an event sees that event applied. Yields 'idle' when nothing new
 * came within idleMs.
 */
export async function* followLog(
  store: EventStore,
  projections: Projections,
  after: number,
  idleMs: number,
  signal: AbortSignal,
): AsyncGenerator<FollowStep> {
  let position = after;
  let wake: (() => void) | null = null;
  const unsubscribe = projections.onApplied(() => wake?.());
  const onAbort = () => wake?.();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    while (!signal.aborted) {
      // Only what the projections already show: a consumer that reads the API after an event
      // (a daemon checking a migration's phase on its directive) must find that event applied.
      const applied = projections.position;
      const batch = applied > position ? (await store.readAll({ after: position, limit: followBatchSizeMax })).filter((e) => e.globalPosition <= applied) : [];
      if (batch.length === 0) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, idleMs);
          function done() {
            clearTimeout(timer);
            resolve();
          }
          wake = done;
          // An event applied between the read above and setting `wake` must not wait for the timer.
          if (projections.position > position) done();
        });
        wake = null;
        if (!signal.aborted && projections.position <= position) yield { kind: 'idle' };
        continue;
      }
      position = batch[batch.length - 1]!.globalPosition;
      yield { kind: 'batch', events: batch, position };
    }
  } finally {
    unsubscribe();
    signal.removeEventListener('abort', onAbort);
  }
}

/** The RegisterHost command for a registration, with the API's defaults (HTTP and Kafka share it). */
export function registerHostCommand(b: HostRegistration): Extract<HostCommand, { type: 'RegisterHost' }> {
  return {
    type: 'RegisterHost',
    hostId: b.id,
    logicalProcessors: b.logicalProcessors,
    memoryMiB: b.memoryMiB,
    parentReserveMiB: b.parentReserveMiB ?? Math.min(2048, Math.floor(b.memoryMiB / 10)),
    labels: b.labels ?? {},
    limitsPreset: b.limitsPreset ?? 'modern',
    limits: b.limits ?? {},
  };
}

export class DaemonGateway {
  constructor(
    private readonly store: EventStore,
    private readonly service: ControlPlaneService,
    private readonly migrations: MigrationManager,
    private readonly telemetry: TelemetryStore,
  ) {}

  private known(hostId: string): boolean {
    return this.service.host(hostId) !== null;
  }

  register(b: HostRegistration, meta: CommandMeta): Promise<Outcome<HostView>> {
    return this.service.hostCommand(b.id, registerHostCommand(b), meta);
  }

  desired(hostId: string): ReturnType<ControlPlaneService['desired']> | null {
    return this.known(hostId) ? this.service.desired(hostId) : null;
  }

  async reports(hostId: string, body: ReportsBody, correlationId: string): Promise<ReportResult[] | null> {
    if (!this.known(hostId)) return null;
    return this.service.report(
      hostId,
      body.reports.map((r) => ({
        reportId: r.reportId,
        partitionId: r.partitionId,
        fact: {
          type: r.type,
          incarnation: r.incarnation,
          directiveEventId: r.directiveEventId,
          reason: r.reason ?? null,
          code: r.code ?? null,
          how: r.how ?? null,
          memoryAssignedMiB: r.memoryAssignedMiB ?? null,
        },
      })),
      correlationId,
    );
  }

  /**
   * Renews the lease in memory; taking a lease (a new daemon, a new boot, a return, new terms) is
   * an event. `returned` says the host came back from Failed or Fenced: HA may be restarting its
   * partitions elsewhere, so the daemon must not carry out starts requested before `position`.
   */
  async heartbeat(hostId: string, b: HeartbeatBody, correlationId: string): Promise<Outcome<{ position: number; leaseMs: number; returned: boolean }> | null> {
    if (!this.known(hostId)) return null;
    this.service.daemons.heartbeat(hostId, b.bootId, b.checkpointPosition);
    const lease = {
      leaseMs: b.leaseMs ?? defaultLeaseTerms.leaseMs,
      renewMs: b.renewMs ?? defaultLeaseTerms.renewMs,
      marginMs: b.marginMs ?? defaultLeaseTerms.marginMs,
    };
    const host = this.service.host(hostId)!;
    const same =
      (host.state === 'Up' || host.state === 'Maintenance') &&
      host.lease?.bootId === b.bootId &&
      host.lease.leaseMs === lease.leaseMs &&
      host.lease.renewMs === lease.renewMs &&
      host.lease.marginMs === lease.marginMs;
    let returned = false;
    if (!same) {
      const outcome = await this.service.hostCommand(hostId, { type: 'AcquireLease', bootId: b.bootId, ...lease }, { actor: `daemon:${hostId}`, correlationId, causationId: null, idSeed: null });
      if (!outcome.ok) return outcome;
      const acquired = outcome.events.find((e) => e.type === 'HostLeaseAcquired');
      const previous = (acquired?.data as { previousLiveness?: string } | undefined)?.previousLiveness;
      returned = previous === 'Failed' || previous === 'Fenced';
    }
    return { ok: true, value: { position: this.service.projections.position, leaseMs: lease.leaseMs, returned }, events: [] };
  }

  /** The host decider rejects a report about a host that is not registered. */
  fenced(hostId: string, b: FencedBody, meta: CommandMeta): Promise<Outcome<HostView>> {
    return this.service.hostCommand(
      hostId,
      { type: 'ReportFenced', bootId: b.bootId, turnedOff: b.turnedOff, how: b.how, reason: b.reason },
      { ...meta, actor: `daemon:${hostId}`, idSeed: `fenced|${hostId}|${b.bootId}|${b.how}|${b.turnedOff.join(',')}` },
    );
  }

  migrationReports(hostId: string, body: MigrationReportsBody, correlationId: string) {
    if (!this.known(hostId)) return null;
    const reports: MigrationReport[] = body.reports.map((r) => ({
      reportId: r.reportId,
      migrationId: r.migrationId,
      type: r.type as MigrationReport['type'],
      round: r.round ?? null,
      sentMiB: r.sentMiB ?? null,
      durationMs: r.durationMs ?? null,
      transferredMiB: r.transferredMiB ?? null,
      remainingMiB: r.remainingMiB ?? null,
      dirtyRateMiBps: r.dirtyRateMiBps ?? null,
      throttlePct: r.throttlePct ?? null,
      expectedDowntimeMs: r.expectedDowntimeMs ?? null,
      finalCopyMiB: r.finalCopyMiB ?? null,
      downtimeMs: r.downtimeMs ?? null,
      reason: r.reason ?? null,
    }));
    return this.migrations.report(hostId, reports, correlationId);
  }

  telemetrySample(hostId: string, b: TelemetryBody): boolean {
    if (!this.known(hostId)) return false;
    this.telemetry.record({ hostId, ...b });
    return true;
  }

  /**
   * The directives for one host after `after`, each batch followed by a position mark so a
   * filtered consumer can checkpoint past events that were not for it. Counts as an open stream
   * in the daemon registry while iterated. Null for an unknown host.
   */
  directives(hostId: string, after: number, idleMs: number, signal: AbortSignal): AsyncGenerator<DirectiveMessage> | null {
    if (!this.known(hostId)) return null;
    const { store, service } = this;
    return (async function* () {
      service.daemons.streamOpened(hostId);
      try {
        for await (const step of followLog(store, service.projections, after, idleMs, signal)) {
          if (step.kind === 'idle') {
            yield { kind: 'idle' };
            continue;
          }
          for (const event of step.events) {
            if (signal.aborted) return;
            if (concernsHost(event.type, event.data, hostId)) yield { kind: 'directive', event };
          }
          if (!signal.aborted) yield { kind: 'position', position: step.position };
        }
      } finally {
        service.daemons.streamClosed(hostId);
      }
    })();
  }
}

export type DirectiveMessage =
  | { readonly kind: 'directive'; readonly event: RecordedEvent }
  | { readonly kind: 'position'; readonly position: number }
  | { readonly kind: 'idle' };
