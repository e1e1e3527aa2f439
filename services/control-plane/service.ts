/**
 * The control plane's operations: each one decides against the current state and appends, and
 * the cross-stream ones (start = reserve on the host stream, then start on the partition stream)
 * compensate on failure so no half-done state is left behind. A reconciler releases reservations
 * no partition holds (after a stop, or orphaned by a crash between the two appends).
 */
import { SerialPasses } from './serial.ts';
import { randomId } from '../shared/ids.ts';
import {
  type FactReport,
  type HostCommand,
  type HostState,
  type PartitionCommand,
  type PartitionSpecInput,
  type PartitionSpecPatch,
  type PartitionState,
  type PlacementCandidate,
  type PlacementRecord,
  type Rejection,
  decideHost,
  decidePartition,
  evolveHost,
  evolvePartition,
  hostStreamId,
  initialHostState,
  initialPartitionState,
  isLive,
  memoryToReserveMiB,
  partitionStreamId,
  place,
  reserveLpPct,
} from '../domain/index.ts';
import type { EventStore, RecordedEvent } from '../eventstore/index.ts';
import { type CommandMeta, type Decider, deterministicId, eventIdFor, handleCommand, loadStream } from './commands.ts';
import type { DaemonRegistry } from './daemons.ts';
import type { Projections, Tracked } from './projections.ts';
import { type HostView, type PartitionView, hostView, partitionView } from './views.ts';

export const hostDecider: Decider<HostCommand, Parameters<typeof evolveHost>[1], HostState> = {
  decide: decideHost,
  evolve: evolveHost,
  initialState: initialHostState,
};

export const partitionDecider: Decider<PartitionCommand, Parameters<typeof evolvePartition>[1], PartitionState> = {
  decide: decidePartition,
  evolve: evolvePartition,
  initialState: initialPartitionState,
};

export type Outcome<V> =
  | { readonly ok: true; readonly value: V; readonly events: readonly RecordedEvent[] }
  | { readonly ok: false; readonly rejection: Rejection };

export type StartConstraints = {
  readonly excludeHostIds: readonly string[];
  readonly antiAffinityClass: string | null;
  readonly antiAffinityMode: 'soft' | 'hard';
};

export type ServiceConfig = {
  /** Placement retries when a chosen host filled up meanwhile. */
  readonly placementAttemptsMax: number;
  /** A reservation whose start never got recorded is released after this long. */
  readonly orphanReservationGraceMs: number;
};

export type ReportInput = {
  readonly reportId: string;
  readonly partitionId: string;
  readonly fact: Omit<FactReport, 'hostId'>;
};

export type ReportResult = {
  readonly reportId: string;
  readonly outcome: 'recorded' | 'ignored' | 'duplicate' | 'rejected';
  readonly eventId: string | null;
  readonly reason: string | null;
};

function rejection(kind: Rejection['kind'], code: string, message: string, details: Rejection['details'] = null): Outcome<never> {
  return { ok: false, rejection: { kind, code, message, field: null, details } };
}

export class ControlPlaneService {
  private readonly reconciler = new SerialPasses(() => this.reconcilePass());

  constructor(
    private readonly store: EventStore,
    readonly projections: Projections,
    readonly daemons: DaemonRegistry,
    private readonly config: ServiceConfig,
  ) {}

  // ------------------------------------------------------------------ reads

  host(hostId: string): HostView | null {
    const tracked = this.projections.hosts.get(hostId);
    return tracked && tracked.state.status === 'Registered' ? hostView(tracked, this.daemons.status(hostId)) : null;
  }

  hosts(): HostView[] {
    return [...this.projections.hosts.keys()].sort().flatMap((id) => this.host(id) ?? []);
  }

  partition(partitionId: string): PartitionView | null {
    const tracked = this.projections.partitions.get(partitionId);
    if (!tracked || tracked.state.status === 'Initial' || tracked.state.status === 'Deleted') return null;
    return partitionView(tracked);
  }

  partitions(filter: { hostId?: string; state?: string }): PartitionView[] {
    return [...this.projections.partitions.keys()]
      .sort()
      .flatMap((id) => this.partition(id) ?? [])
      .filter((p) => (filter.hostId === undefined || p.hostId === filter.hostId) && (filter.state === undefined || p.state === filter.state));
  }

  /** What the log says should be on this host: the daemon reconciles against it. */
  desired(hostId: string) {
    const partitions = [...this.projections.partitions.values()].flatMap((tracked) => {
      const p = tracked.state;
      if (p.status === 'Initial') return [];
      if (p.status === 'Deleted') return [{ partitionId: p.partitionId, state: 'Deleted', hostId: null, incarnation: 0, spec: null, migrationTargetHostId: null }];
      const onThisHost = isLive(p) && p.hostId === hostId;
      return [
        {
          partitionId: p.partitionId,
          state: p.status as string,
          hostId: isLive(p) ? p.hostId : null,
          incarnation: p.incarnation,
          spec: onThisHost ? p.spec : null,
          migrationTargetHostId: isLive(p) ? (p.migration?.targetHostId ?? null) : null,
        },
      ];
    });
    return { position: this.projections.position, partitions };
  }

  // ------------------------------------------------------------------ hosts

  async hostCommand(hostId: string, command: HostCommand, meta: CommandMeta): Promise<Outcome<HostView>> {
    const outcome = await handleCommand(this.store, hostDecider, hostStreamId(hostId), command, meta);
    if (!outcome.ok) return outcome;
    await this.projections.caughtUp(outcome.events);
    const view = this.host(hostId);
    if (!view) return rejection('not-found', 'host-not-found', `host ${hostId} does not exist`);
    return { ok: true, value: view, events: outcome.events };
  }

  // ------------------------------------------------------------------ partitions

  async createPartition(partitionId: string, name: string, spec: PartitionSpecInput, meta: CommandMeta): Promise<Outcome<PartitionView | null>> {
    return this.partitionCommand(partitionId, { type: 'CreatePartition', partitionId, name, spec }, meta);
  }

  /** The value is the partition after the command, or null once it is deleted. */
  async partitionCommand(partitionId: string, command: PartitionCommand, meta: CommandMeta): Promise<Outcome<PartitionView | null>> {
    const outcome = await handleCommand(this.store, partitionDecider, partitionStreamId(partitionId), command, meta);
    if (!outcome.ok) return outcome;
    await this.projections.caughtUp(outcome.events);
    return { ok: true, value: this.partition(partitionId), events: outcome.events };
  }

  /**
   * Reconfigure. A live change of the processor reserve first adjusts the host reservation (so
   * the host can refuse it), then records the change; if that fails the adjustment is undone.
   */
  async reconfigurePartition(partitionId: string, patch: PartitionSpecPatch, meta: CommandMeta): Promise<Outcome<PartitionView | null>> {
    const streamId = partitionStreamId(partitionId);
    const { state } = await loadStream(this.store, partitionDecider, streamId);
    const dry = decidePartition({ type: 'ReconfigurePartition', patch }, state);
    if (!dry.ok) return dry;
    const change = dry.events[0];
    if (change && change.type === 'PartitionReconfigured' && isLive(state)) {
      const before = reserveLpPct(state.spec);
      const after = reserveLpPct(change.data.spec);
      if (before !== after) {
        const adjust = await handleCommand(
          this.store,
          hostDecider,
          hostStreamId(state.hostId),
          { type: 'AdjustReservation', reservationId: state.reservationId, reserveLpPct: after },
          meta,
        );
        if (!adjust.ok) return adjust;
        const result = await this.partitionCommand(partitionId, { type: 'ReconfigurePartition', patch }, meta);
        if (!result.ok) {
          await handleCommand(
            this.store,
            hostDecider,
            hostStreamId(state.hostId),
            { type: 'AdjustReservation', reservationId: state.reservationId, reserveLpPct: before },
            { ...meta, idSeed: null, actor: 'system:compensation' },
          );
        }
        return result;
      }
    }
    return this.partitionCommand(partitionId, { type: 'ReconfigurePartition', patch }, meta);
  }

  /**
   * Start: place, reserve capacity on the chosen host's stream, then record the start on the
   * partition's stream. A lost race on the host (it filled up) re-places; a lost race on the
   * partition releases the reservation.
   */
  async startPartition(
    partitionId: string,
    requiredHostId: string | null,
    meta: CommandMeta,
    constraints: StartConstraints = { excludeHostIds: [], antiAffinityClass: null, antiAffinityMode: 'soft' },
  ): Promise<Outcome<PartitionView | null>> {
    const streamId = partitionStreamId(partitionId);
    if (meta.idSeed !== null) {
      // A retried request whose start is already recorded (the first answer was lost): answer
      // with the current state instead of starting again.
      for (let attempt = 1; attempt <= this.config.placementAttemptsMax; attempt++) {
        const earlier = await this.store.getEvent(eventIdFor(`${meta.idSeed}|attempt${attempt}`, streamId, 0));
        if (earlier) {
          await this.projections.waitFor(earlier.globalPosition);
          return { ok: true, value: this.partition(partitionId), events: [earlier] };
        }
      }
    }
    let lastPlacement: PlacementRecord | null = null;
    for (let attempt = 1; attempt <= this.config.placementAttemptsMax; attempt++) {
      const attemptMeta: CommandMeta = { ...meta, idSeed: meta.idSeed === null ? null : `${meta.idSeed}|attempt${attempt}` };
      const { state } = await loadStream(this.store, partitionDecider, streamId);
      if (state.status === 'Initial' || state.status === 'Deleted') return rejection('not-found', 'partition-not-found', 'partition does not exist');
      // A saved state lives on the host that saved it: restore it there unless told otherwise
      // (the decider refuses another host with a reason).
      const target = requiredHostId ?? (state.status === 'Saved' ? state.savedOnHostId : null);
      const incarnation = state.incarnation + 1;
      const dry = decidePartition({ type: 'RequestStart', hostId: target ?? '-', incarnation, reservationId: '-', placement: noPlacement }, state);
      if (!dry.ok) return dry;
      const request = {
        vcpus: state.spec.vcpus,
        reserveLpPct: reserveLpPct(state.spec),
        memoryMiB: memoryToReserveMiB(state.spec),
        excludeHostIds: constraints.excludeHostIds,
        requiredHostId: target,
        antiAffinityClass: constraints.antiAffinityClass,
        antiAffinityMode: constraints.antiAffinityMode,
      };
      const placement = place(this.placementCandidates(request.antiAffinityClass !== null), request);
      lastPlacement = placement;
      if (placement.chosenHostId === null) {
        if (target !== null && !this.host(target)) {
          return rejection('not-found', 'host-not-found', `host ${target} does not exist`);
        }
        return rejection('no-capacity', 'no-capacity', 'no host can take this partition', { placement });
      }
      const hostId = placement.chosenHostId;
      const reservationId = attemptMeta.idSeed === null ? randomId() : deterministicId(`${attemptMeta.idSeed}|reservation`);
      const reserved = await handleCommand(
        this.store,
        hostDecider,
        hostStreamId(hostId),
        { type: 'ReserveCapacity', reservationId, partitionId, incarnation, purpose: 'start', ...request },
        attemptMeta,
      );
      if (!reserved.ok) {
        // The projection was behind the host stream: someone else took the room. Place again.
        if (reserved.rejection.kind === 'no-capacity' && target === null) continue;
        return { ok: false, rejection: { ...reserved.rejection, details: { ...reserved.rejection.details, placement } } };
      }
      const started = await handleCommand(
        this.store,
        partitionDecider,
        streamId,
        { type: 'RequestStart', hostId, incarnation, reservationId, placement },
        attemptMeta,
      );
      if (started.ok) {
        await this.projections.caughtUp([...reserved.events, ...started.events]);
        return { ok: true, value: this.partition(partitionId), events: [...reserved.events, ...started.events] };
      }
      await handleCommand(
        this.store,
        hostDecider,
        hostStreamId(hostId),
        { type: 'ReleaseReservation', reservationId, reason: `start not recorded: ${started.rejection.message}` },
        { ...attemptMeta, actor: 'system:compensation', idSeed: attemptMeta.idSeed === null ? null : `${attemptMeta.idSeed}|compensate` },
      );
      return started;
    }
    return rejection('no-capacity', 'no-capacity', `no host could take this partition after ${this.config.placementAttemptsMax} attempts`, {
      placement: lastPlacement,
    });
  }

  /** Hosts placement may choose from; with the anti-affinity classes on each only when asked for. */
  placementCandidates(withClasses = true): PlacementCandidate[] {
    const classes = new Map<string, string[]>();
    for (const t of withClasses ? this.projections.partitions.values() : []) {
      const p = t.state;
      if (!isLive(p) || p.spec.ha.antiAffinityClass === null) continue;
      classes.set(p.hostId, [...(classes.get(p.hostId) ?? []), p.spec.ha.antiAffinityClass]);
    }
    return [...this.projections.hosts.values()].flatMap((tracked) => {
      const h = tracked.state;
      if (h.status !== 'Registered') return [];
      // A host whose lease lapsed is not a candidate, whatever its last heartbeat says.
      const alive = h.liveness === 'Up' || h.liveness === 'Unknown';
      return [{ ...h, hostId: h.hostId, reserved: h.reserved, cordoned: h.cordoned, daemonConnected: alive && this.daemons.isConnected(h.hostId), antiAffinityClasses: classes.get(h.hostId) ?? [] }];
    });
  }

  // ------------------------------------------------------------------ daemon reports

  async report(hostId: string, reports: readonly ReportInput[], correlationId: string): Promise<ReportResult[]> {
    const results: ReportResult[] = [];
    for (const report of reports) {
      const idSeed = `report|${hostId}|${report.reportId}`;
      const streamId = partitionStreamId(report.partitionId);
      // The report's id seeds its event ids, so handleCommand answers a retry with the events
      // the first delivery recorded (written: false) instead of deciding it again.
      const outcome = await handleCommand(
        this.store,
        partitionDecider,
        streamId,
        { type: 'ReportFact', fact: { ...report.fact, hostId } },
        { actor: `daemon:${hostId}`, correlationId, causationId: report.fact.directiveEventId, idSeed },
      );
      if (!outcome.ok) {
        results.push({ reportId: report.reportId, outcome: 'rejected', eventId: null, reason: outcome.rejection.message });
        continue;
      }
      await this.projections.caughtUp(outcome.events);
      const first = outcome.events[0];
      if (!outcome.written && first) {
        results.push({ reportId: report.reportId, outcome: 'duplicate', eventId: first.eventId, reason: null });
        continue;
      }
      const ignored = first?.type === 'PartitionReportIgnored';
      results.push({
        reportId: report.reportId,
        outcome: ignored ? 'ignored' : 'recorded',
        eventId: first?.eventId ?? null,
        reason: ignored ? String(first?.data.reason ?? '') : null,
      });
    }
    return results;
  }

  // ------------------------------------------------------------------ reservations reconciler

  /** Runs the reservation reconciler now (or once more after the running pass). */
  reconcileReservations(): Promise<void> {
    return this.reconciler.run();
  }

  private async reconcilePass(): Promise<void> {
    const nowMs = Date.now();
    // A migration's target reservation is free again as soon as its migration ended without moving.
    const endedMigrationReservations = new Set<string>();
    for (const t of this.projections.migrations.values()) {
      const m = t.state;
      if (m.status === 'Known' && m.reservationId !== null && (m.phase === 'Failed' || m.phase === 'Cancelled')) endedMigrationReservations.add(m.reservationId);
    }
    for (const tracked of [...this.projections.hosts.values()]) {
      const host = tracked.state;
      if (host.status !== 'Registered') continue;
      for (const r of [...host.reservations.values()]) {
        const owner: Tracked<PartitionState> | undefined = this.projections.partitions.get(r.partitionId);
        const p = owner?.state;
        const meta = (cause: string | null, correlationId: string): CommandMeta => ({
          actor: 'system:reservations',
          correlationId,
          causationId: cause,
          idSeed: null,
        });
        if (p && isLive(p) && p.migration?.targetReservationId === r.reservationId) continue; // the target's, mid-migration
        if (p && isLive(p) && p.reservationId === r.reservationId) {
          const wanted = reserveLpPct(p.spec);
          if (wanted !== r.reserveLpPct) {
            await handleCommand(this.store, hostDecider, hostStreamId(host.hostId), { type: 'AdjustReservation', reservationId: r.reservationId, reserveLpPct: wanted }, meta(owner?.lastEventId ?? null, owner?.lastCorrelationId ?? randomId()));
          }
          continue;
        }
        const pending =
          p !== undefined && p.status !== 'Initial' && p.status !== 'Deleted' && p.incarnation < r.incarnation && !endedMigrationReservations.has(r.reservationId);
        const madeAtMs = this.projections.reservationMadeAtMs.get(r.reservationId) ?? 0;
        if (pending && nowMs - madeAtMs < this.config.orphanReservationGraceMs) continue;
        const reason = pending
          ? `orphaned: the start of incarnation ${r.incarnation} was never recorded`
          : endedMigrationReservations.has(r.reservationId)
            ? 'the migration it was made for ended without moving the partition'
          : p === undefined || p.status === 'Deleted' || p.status === 'Initial'
            ? 'partition no longer exists'
            : `partition is ${p.status}`;
        await handleCommand(
          this.store,
          hostDecider,
          hostStreamId(host.hostId),
          { type: 'ReleaseReservation', reservationId: r.reservationId, reason },
          { ...meta(owner?.lastEventId ?? null, owner?.lastCorrelationId ?? randomId()), idSeed: `release|${r.reservationId}` },
        );
      }
    }
  }

}

const noPlacement: PlacementRecord = { policy: 'none', chosenHostId: null, scores: [], rejected: [] };
