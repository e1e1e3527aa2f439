/**
 * Live migration, the control plane's side: requests, the admission queue (per-host and
 * per-cluster limits), target placement and reservation, and a process manager that moves each
 * saga forward, watches its deadlines and daemons, and fails it cleanly (the partition keeps
 * running on the source) when anything goes wrong before the switch-over.
 *
 * The manager is level-triggered: every pass looks at every unfinished migration and does what
 * its state calls for, so a control-plane restart simply resumes the sagas from the log.
 */
import { SerialPasses } from './serial.ts';
import { randomId } from '../shared/ids.ts';
import {
  type KnownMigration,
  type LivePartition,
  type MigrationCommand,
  type MigrationEvent,
  type MigrationLimitsRecord,
  type MigrationState,
  type PartitionState,
  type PlacementCandidate,
  type Rejection,
  activeMigrationPhases,
  decideMigration,
  endedMigrationPhases,
  evolveMigration,
  hostStreamId,
  initialMigrationState,
  isLive,
  memoryToReserveMiB,
  migrationStreamId,
  partitionStreamId,
  place,
  reserveLpPct,
} from '../domain/index.ts';
import type { EventStore, } from '../eventstore/index.ts';
import { defaultMigrationLimits as engineDefaults } from '../hypervisor/index.ts';
import { type CommandMeta, type Decider, deterministicId, handleCommand } from './commands.ts';
import type { DaemonRegistry } from './daemons.ts';
import type { Projections, TrackedMigration } from './projections.ts';
import { hostDecider, partitionDecider } from './service.ts';

export const migrationDecider: Decider<MigrationCommand, MigrationEvent, MigrationState> = {
  decide: decideMigration,
  evolve: evolveMigration,
  initialState: initialMigrationState,
};

export type MigrationDefaults = Omit<MigrationLimitsRecord, 'perHostMax' | 'perClusterMax'>;

export type MigrationConfig = {
  /** Simultaneous migrations per host, in or out (Hyper-V and KubeVirt: 2). */
  readonly perHostMax: number;
  /** Simultaneous migrations in the cluster (KubeVirt: 5). */
  readonly perClusterMax: number;
  /** The target daemon must confirm it is ready within this. */
  readonly prepareTimeoutMs: number;
  readonly defaults: MigrationDefaults;
};

export const defaultMigrationConfig: MigrationConfig = {
  perHostMax: 2,
  perClusterMax: 5,
  prepareTimeoutMs: 15_000,
  defaults: {
    // About what one 10 GbE link carries; the engine's own default is QEMU's 128 MiB/s cap, which
    // would make every demo migration of a few GiB take a minute.
    bandwidthMiBps: 1000,
    downtimeMsMax: engineDefaults.downtimeMsMax,
    roundsMax: engineDefaults.roundsMax,
    completionTimeoutMsPerGiB: engineDefaults.completionTimeoutMsPerGiB,
    progressTimeoutMs: engineDefaults.progressTimeoutMs,
    autoConverge: engineDefaults.autoConverge,
    onRoundLimit: engineDefaults.onRoundLimit,
  },
};

export type MigrationRequestInput = {
  readonly targetHostId: string | null;
  readonly reason: string | null;
  readonly bandwidthMiBps: number | null;
  readonly downtimeMsMax: number | null;
  readonly roundsMax: number | null;
  readonly autoConverge: boolean | null;
};

export type MigrationReport = {
  readonly reportId: string;
  readonly migrationId: string;
  readonly type: 'TargetPrepared' | 'TargetFailed' | 'Round' | 'Switchover' | 'Activated' | 'SourceFailed';
  readonly round: number | null;
  readonly sentMiB: number | null;
  readonly durationMs: number | null;
  readonly transferredMiB: number | null;
  readonly remainingMiB: number | null;
  readonly dirtyRateMiBps: number | null;
  readonly throttlePct: number | null;
  readonly expectedDowntimeMs: number | null;
  readonly finalCopyMiB: number | null;
  readonly downtimeMs: number | null;
  readonly reason: string | null;
};

type Outcome<V> = { readonly ok: true; readonly value: V } | { readonly ok: false; readonly rejection: Rejection };

function failure(kind: Rejection['kind'], code: string, message: string, field: string | null = null): Outcome<never> {
  return { ok: false, rejection: { kind, code, message, field, details: null } };
}

const systemMeta = (tracked: TrackedMigration | undefined, seed: string | null): CommandMeta => ({
  actor: 'system:migrations',
  correlationId: tracked?.lastCorrelationId ?? randomId(),
  causationId: tracked?.lastEventId ?? null,
  idSeed: seed,
});

export class MigrationManager {
  private readonly passes = new SerialPasses(() => this.pass());

  constructor(
    private readonly store: EventStore,
    private readonly projections: Projections,
    private readonly daemons: DaemonRegistry,
    private readonly config: MigrationConfig,
    /** The hosts placement may choose from (the control plane's own view, shared with starts). */
    private readonly candidates: () => PlacementCandidate[],
    private readonly nowMs: () => number = Date.now,
  ) {}

  migration(migrationId: string) {
    const tracked = this.projections.migrations.get(migrationId);
    if (tracked?.state.status !== 'Known') return null;
    return migrationView(tracked, tracked.state, this.queuePosition(tracked.state));
  }

  migrations(filter: { partitionId?: string; hostId?: string; phase?: string }) {
    return [...this.projections.migrations.values()]
      .sort((a, b) => a.requestPosition - b.requestPosition)
      .flatMap((tracked) => (tracked.state.status === 'Known' ? [migrationView(tracked, tracked.state, this.queuePosition(tracked.state))] : []))
      .filter(
        (m) =>
          (filter.partitionId === undefined || m.partitionId === filter.partitionId) &&
          (filter.hostId === undefined || m.sourceHostId === filter.hostId || m.targetHostId === filter.hostId) &&
          (filter.phase === undefined || m.phase === filter.phase),
      );
  }

  /** Position in the admission queue (1 = next), or null when not waiting. */
  private queuePosition(state: KnownMigration): number | null {
    if (state.phase !== 'Requested' && state.phase !== 'Queued') return null;
    const waiting = this.waiting();
    const index = waiting.findIndex((w) => w.migrationId === state.migrationId);
    return index < 0 ? null : index + 1;
  }

  private waiting(): KnownMigration[] {
    return [...this.projections.migrations.values()]
      .sort((a, b) => a.requestPosition - b.requestPosition)
      .flatMap((t) => (t.state.status === 'Known' && (t.state.phase === 'Requested' || t.state.phase === 'Queued') ? [t.state] : []));
  }

  async request(partitionId: string, input: MigrationRequestInput, meta: CommandMeta, drainId: string | null = null): Promise<Outcome<ReturnType<typeof migrationView>>> {
    const tracked = this.projections.partitions.get(partitionId);
    const p = tracked?.state;
    if (!p || p.status === 'Initial' || p.status === 'Deleted') return failure('not-found', 'partition-not-found', `partition ${partitionId} does not exist`);
    if (p.status !== 'Running') {
      return { ok: false, rejection: { kind: 'conflict', code: 'invalid-transition', message: `cannot live-migrate partition ${partitionId}: it is ${p.status}; only a Running partition can be live-migrated`, field: null, details: { currentState: p.status } } };
    }
    if (p.migration) {
      return { ok: false, rejection: { kind: 'conflict', code: 'migration-in-progress', message: `partition ${partitionId} is already being migrated (migration ${p.migration.migrationId})`, field: null, details: { currentState: p.status, migrationId: p.migration.migrationId } } };
    }
    const active = this.migrations({ partitionId }).find((m) => !endedMigrationPhases.includes(m.phase));
    if (active) {
      return { ok: false, rejection: { kind: 'conflict', code: 'migration-in-progress', message: `partition ${partitionId} already has migration ${active.id} (${active.phase})`, field: null, details: { currentState: p.status, migrationId: active.id } } };
    }
    if (input.targetHostId !== null) {
      const target = this.projections.hosts.get(input.targetHostId)?.state;
      if (target?.status !== 'Registered') return failure('not-found', 'host-not-found', `host ${input.targetHostId} does not exist`, '/targetHostId');
      if (input.targetHostId === p.hostId) return failure('invalid', 'invalid-migration', `partition ${partitionId} already runs on ${p.hostId}; choose another target`, '/targetHostId');
    }
    // Refuse at once what no host could ever take; a host that is merely busy makes it wait.
    const probe = place(this.candidates(), {
      vcpus: p.spec.vcpus,
      reserveLpPct: reserveLpPct(p.spec),
      memoryMiB: memoryToReserveMiB(p.spec),
      excludeHostIds: [p.hostId],
      requiredHostId: input.targetHostId,
    });
    if (probe.chosenHostId === null) {
      return { ok: false, rejection: { kind: 'no-capacity', code: 'no-capacity', message: `no host can take partition ${partitionId}`, field: null, details: { placement: probe } } };
    }
    const d = this.config.defaults;
    const limits: MigrationLimitsRecord = {
      ...d,
      bandwidthMiBps: input.bandwidthMiBps ?? d.bandwidthMiBps,
      downtimeMsMax: input.downtimeMsMax ?? d.downtimeMsMax,
      roundsMax: input.roundsMax ?? d.roundsMax,
      autoConverge: input.autoConverge ?? d.autoConverge,
      perHostMax: this.config.perHostMax,
      perClusterMax: this.config.perClusterMax,
    };
    const migrationId = meta.idSeed === null ? randomId() : deterministicId(`${meta.idSeed}|migration`);
    const outcome = await handleCommand(
      this.store,
      migrationDecider,
      migrationStreamId(migrationId),
      {
        type: 'RequestMigration',
        migrationId,
        partitionId,
        sourceHostId: p.hostId,
        targetHostId: input.targetHostId,
        sourceIncarnation: p.incarnation,
        targetIncarnation: p.incarnation + 1,
        memoryMiB: memoryToReserveMiB(p.spec),
        reason: input.reason ?? 'requested',
        drainId,
        limits,
      },
      meta,
    );
    if (!outcome.ok) return outcome;
    await this.projections.caughtUp(outcome.events);
    void this.advance();
    return { ok: true, value: this.migration(migrationId)! };
  }

  async cancel(migrationId: string, reason: string, meta: CommandMeta): Promise<Outcome<ReturnType<typeof migrationView>>> {
    const outcome = await handleCommand(this.store, migrationDecider, migrationStreamId(migrationId), { type: 'CancelMigration', reason }, meta);
    if (!outcome.ok) return outcome;
    await this.projections.caughtUp(outcome.events);
    void this.advance();
    return { ok: true, value: this.migration(migrationId)! };
  }

  /** Facts from a daemon taking part in a migration. */
  async report(hostId: string, reports: readonly MigrationReport[], correlationId: string) {
    const results: { reportId: string; outcome: 'recorded' | 'no-change' | 'duplicate' | 'rejected'; reason: string | null }[] = [];
    for (const r of reports) {
      const idSeed = `migration-report|${hostId}|${r.reportId}`;
      const streamId = migrationStreamId(r.migrationId);
      const command = this.commandFor(hostId, r);
      const outcome = await handleCommand(this.store, migrationDecider, streamId, command, {
        actor: `daemon:${hostId}`,
        correlationId,
        causationId: this.projections.migrations.get(r.migrationId)?.lastEventId ?? null,
        idSeed,
      });
      if (!outcome.ok) {
        results.push({ reportId: r.reportId, outcome: 'rejected', reason: outcome.rejection.message });
        continue;
      }
      await this.projections.caughtUp(outcome.events);
      // A retried report is answered from the events its first delivery recorded (written: false).
      const outcomeName = outcome.events.length === 0 ? 'no-change' : outcome.written ? 'recorded' : 'duplicate';
      results.push({ reportId: r.reportId, outcome: outcomeName, reason: null });
    }
    void this.advance();
    return results;
  }

  private commandFor(hostId: string, r: MigrationReport): MigrationCommand {
    const n = (v: number | null) => v ?? 0;
    switch (r.type) {
      case 'TargetPrepared':
        return { type: 'ReportTargetPrepared', hostId };
      case 'Round':
        return {
          type: 'ReportRound',
          hostId,
          round: n(r.round),
          sentMiB: n(r.sentMiB),
          durationMs: n(r.durationMs),
          transferredMiB: n(r.transferredMiB),
          remainingMiB: n(r.remainingMiB),
          dirtyRateMiBps: n(r.dirtyRateMiBps),
          throttlePct: n(r.throttlePct),
          expectedDowntimeMs: n(r.expectedDowntimeMs),
        };
      case 'Switchover':
        return {
          type: 'ReportSwitchover',
          hostId,
          round: n(r.round),
          finalCopyMiB: n(r.finalCopyMiB),
          transferredMiB: n(r.transferredMiB),
          downtimeMs: n(r.downtimeMs),
          reason: r.reason ?? 'remaining memory fits the downtime limit',
        };
      case 'Activated':
        return { type: 'ReportActivated', hostId };
      case 'TargetFailed':
        return { type: 'FailMigration', reason: `target host ${hostId}: ${r.reason ?? 'failed'}` };
      case 'SourceFailed':
        return { type: 'FailMigration', reason: `source host ${hostId}: ${r.reason ?? 'failed'}` };
    }
  }

  // ------------------------------------------------------------------ the process manager

  advance(): Promise<void> {
    return this.passes.run();
  }

  private activeCounts(): { perHost: Map<string, number>; cluster: number } {
    const perHost = new Map<string, number>();
    let cluster = 0;
    for (const t of this.projections.migrations.values()) {
      const m = t.state;
      if (m.status !== 'Known' || !activeMigrationPhases.includes(m.phase)) continue;
      cluster++;
      for (const h of [m.sourceHostId, m.targetHostId]) if (h) perHost.set(h, (perHost.get(h) ?? 0) + 1);
    }
    return { perHost, cluster };
  }

  private async pass(): Promise<void> {
    const ordered = [...this.projections.migrations.values()].sort((a, b) => a.requestPosition - b.requestPosition);
    let queueIndex = 0;
    for (const tracked of ordered) {
      const m = tracked.state;
      if (m.status !== 'Known') continue;
      const p = this.projections.partitions.get(m.partitionId)?.state;
      const seed = (step: string) => `${m.migrationId}|${step}`;
      const run = (command: MigrationCommand, step: string | null) =>
        this.exec(migrationDecider, migrationStreamId(m.migrationId), command, systemMeta(tracked, step === null ? null : seed(step)));
      const fail = (reason: string) => run({ type: 'FailMigration', reason }, 'fail');

      if (m.phase === 'Completed') {
        await this.settlePartition(m, p, tracked, 'complete');
        continue;
      }
      if (m.phase === 'Failed' || m.phase === 'Cancelled') {
        await this.settlePartition(m, p, tracked, m.phase === 'Failed' ? 'failed' : 'cancelled');
        continue;
      }
      const onSource = p !== undefined && isLive(p) && p.hostId === m.sourceHostId && p.incarnation === m.sourceIncarnation;
      const lockedByUs = p !== undefined && isLive(p) && p.migration?.migrationId === m.migrationId;
      if (m.phase === 'Requested' || m.phase === 'Queued') {
        if (!onSource || p?.status !== 'Running') {
          await fail(`partition ${m.partitionId} is no longer Running on ${m.sourceHostId} (it is ${p?.status ?? 'gone'})`);
          continue;
        }
        queueIndex++;
        await this.admit(m, tracked, queueIndex, run, fail);
        continue;
      }
      // From here the target holds a reservation and the partition is locked for us.
      if (!lockedByUs) {
        await fail(`partition ${m.partitionId} left ${m.sourceHostId} during the migration (it is ${p?.status ?? 'gone'})`);
        continue;
      }
      const nowMs = this.nowMs();
      const target = m.targetHostId!;
      if (m.phase === 'Reserved') {
        if (!this.daemons.isConnected(target)) await fail(`the node daemon of target host ${target} is not connected`);
        else if (nowMs - tracked.phaseChangedAtMs > this.config.prepareTimeoutMs) {
          await fail(`target host ${target} did not confirm it was ready within ${this.config.prepareTimeoutMs} ms`);
        }
        continue;
      }
      if (m.phase === 'Prepared') {
        await run({ type: 'StartPreCopy' }, 'precopy');
        continue;
      }
      if (m.phase === 'PreCopy') {
        const completionMsMax = Math.max(1, m.memoryMiB / 1024) * m.limits.completionTimeoutMsPerGiB;
        if (!this.daemons.isConnected(m.sourceHostId)) await fail(`the node daemon of source host ${m.sourceHostId} was lost during pre-copy`);
        else if (!this.daemons.isConnected(target)) await fail(`the node daemon of target host ${target} was lost during pre-copy`);
        else if (nowMs - tracked.progressAtMs > m.limits.progressTimeoutMs) await fail(`no progress for ${m.limits.progressTimeoutMs} ms (progress timeout)`);
        else if (nowMs - tracked.phaseChangedAtMs > completionMsMax) {
          await fail(`pre-copy exceeded the completion timeout of ${Math.round(completionMsMax)} ms (${m.limits.completionTimeoutMsPerGiB} ms per GiB)`);
        }
      }
      // SwitchOver: the target's answer decides (activated = committed; failed = the source resumes).
    }
  }

  private async admit(
    m: KnownMigration,
    tracked: TrackedMigration,
    queueIndex: number,
    run: (command: MigrationCommand, step: string | null) => Promise<unknown>,
    fail: (reason: string) => Promise<unknown>,
  ): Promise<void> {
    const counts = this.activeCounts();
    const full = (hostId: string) => (counts.perHost.get(hostId) ?? 0) >= m.limits.perHostMax;
    let why: string | null = null;
    if (counts.cluster >= m.limits.perClusterMax) why = `${counts.cluster} migrations under way in the cluster (limit ${m.limits.perClusterMax})`;
    else if (full(m.sourceHostId)) why = `source host ${m.sourceHostId} has ${m.limits.perHostMax} migrations under way (limit per host)`;
    else if (m.targetHostId !== null && full(m.targetHostId)) why = `target host ${m.targetHostId} has ${m.limits.perHostMax} migrations under way (limit per host)`;
    const p = this.projections.partitions.get(m.partitionId)!.state as LivePartition;
    const request = {
      vcpus: p.spec.vcpus,
      reserveLpPct: reserveLpPct(p.spec),
      memoryMiB: memoryToReserveMiB(p.spec),
      requiredHostId: m.targetHostId,
    };
    // A pass that reserved and locked but crashed (or failed to append) before ReserveTarget: the
    // partition is locked for this migration with its target; finish that step, never place anew
    // (a second target would leave the log and the machines disagreeing on where it runs).
    if (p.migration?.migrationId === m.migrationId) {
      const lock = p.migration;
      const placement = { policy: 'resumed', chosenHostId: lock.targetHostId, scores: [], rejected: [] };
      await run({ type: 'ReserveTarget', targetHostId: lock.targetHostId, reservationId: lock.targetReservationId, placement }, 'reserve-target');
      return;
    }
    let placement = null;
    if (why === null) {
      const busy = [...counts.perHost.keys()].filter(full);
      placement = place(this.candidates(), { ...request, excludeHostIds: [m.sourceHostId, ...busy] });
      if (placement.chosenHostId === null) {
        // Would a host take it once its migrations finish? Then wait; otherwise no host ever can.
        const unbusy = place(this.candidates(), { ...request, excludeHostIds: [m.sourceHostId] });
        if (unbusy.chosenHostId !== null) {
          why = `host ${unbusy.chosenHostId} could take it but has ${m.limits.perHostMax} migrations under way (limit per host)`;
        } else {
          const reasons = unbusy.rejected.filter((r) => r.hostId !== m.sourceHostId).map((r) => `${r.hostId}: ${r.reasons.join('; ')}`);
          await fail(`no host can take partition ${m.partitionId}: ${reasons.join(' | ') || 'no other host is registered'}`);
          return;
        }
      }
    }
    if (why !== null || placement === null || placement.chosenHostId === null) {
      // Queued is recorded once, with the position and reason at that time; the live position is
      // computed for the API (recording every shift would write O(n²) events for a long queue).
      if (m.phase !== 'Queued') await run({ type: 'QueueMigration', position: queueIndex, why: why ?? 'waiting' }, 'queue');
      return;
    }
    const targetHostId = placement.chosenHostId;
    const reservationId = deterministicId(`${m.migrationId}|reservation|${targetHostId}`);
    const meta = systemMeta(tracked, `${m.migrationId}|reserve|${targetHostId}`);
    const reserved = await this.exec(
      hostDecider,
      hostStreamId(targetHostId),
      { type: 'ReserveCapacity', reservationId, partitionId: m.partitionId, incarnation: m.targetIncarnation, purpose: 'migration', vcpus: request.vcpus, reserveLpPct: request.reserveLpPct, memoryMiB: request.memoryMiB },
      meta,
    );
    if (!reserved.ok) {
      if (m.targetHostId !== null) await fail(`target host ${targetHostId} cannot take it: ${reserved.rejection.message}`);
      return; // the projection was behind; the next pass places again
    }
    const locked = await this.exec(
      partitionDecider,
      partitionStreamId(m.partitionId),
      { type: 'LockForMigration', migrationId: m.migrationId, targetHostId, targetReservationId: reservationId, sourceIncarnation: m.sourceIncarnation },
      { ...meta, idSeed: `${m.migrationId}|lock` },
    );
    if (!locked.ok) {
      await this.exec(hostDecider, hostStreamId(targetHostId), { type: 'ReleaseReservation', reservationId, reason: `migration ${m.migrationId} could not start: ${locked.rejection.message}` }, { ...meta, idSeed: null });
      await fail(locked.rejection.message);
      return;
    }
    await run({ type: 'ReserveTarget', targetHostId, reservationId, placement }, 'reserve-target');
  }

  /** After the saga ends, the partition follows: moved to the target, or unlocked on the source. */
  private async settlePartition(m: KnownMigration, p: PartitionState | undefined, tracked: TrackedMigration, how: 'complete' | 'failed' | 'cancelled') {
    if (!p || !isLive(p) || p.migration?.migrationId !== m.migrationId) return;
    const command =
      how === 'complete'
        ? ({ type: 'CompleteMigration', migrationId: m.migrationId } as const)
        : ({ type: 'EndMigration', migrationId: m.migrationId, outcome: how, reason: m.failureReason ?? how } as const);
    await this.exec(partitionDecider, partitionStreamId(m.partitionId), command, systemMeta(tracked, `${m.migrationId}|settle`));
  }

  /**
   * A command of the process manager, and then the wait for the projection to show it: the next
   * decision of the same pass (admission counts, above all) must see this one's effect.
   */
  private async exec<C, E extends { type: string; data: object }, S>(decider: Decider<C, E, S>, streamId: string, command: C, meta: CommandMeta) {
    const outcome = await handleCommand(this.store, decider, streamId, command, meta);
    if (outcome.ok) await this.projections.caughtUp(outcome.events);
    return outcome;
  }

}

export function migrationView(tracked: TrackedMigration, m: KnownMigration, queuePosition: number | null) {
  return {
    id: m.migrationId,
    partitionId: m.partitionId,
    sourceHostId: m.sourceHostId,
    targetHostId: m.targetHostId,
    phase: m.phase,
    reason: m.reason,
    drainId: m.drainId,
    queuePosition,
    round: m.round,
    memoryMiB: m.memoryMiB,
    transferredMiB: m.transferredMiB,
    remainingMiB: m.remainingMiB,
    dirtyRateMiBps: m.dirtyRateMiBps,
    throttlePct: m.throttlePct,
    expectedDowntimeMs: m.expectedDowntimeMs,
    downtimeMs: m.downtimeMs,
    failureReason: m.failureReason,
    limits: m.limits,
    placement: m.placement,
    version: tracked.version,
    createdAt: tracked.createdAt,
    updatedAt: tracked.updatedAt,
  };
}

export type MigrationView = ReturnType<typeof migrationView>;
