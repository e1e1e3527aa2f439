/**
 * High availability, the control plane's side: a failure detector over the daemons' leases, and
 * a process manager that carries out the HA planner's decisions (services/ha).
 *
 * Safety rests on the lease: a daemon that cannot renew turns its partitions off (and its machine's
 * watchdog does, should the daemon itself be dead) before `leaseMs − marginMs`; this manager
 * declares a host failed only after `leaseMs + marginMs` of silence. So a partition restarted
 * elsewhere never overlaps a copy still running on the failed host.
 */
import { SerialPasses } from './serial.ts';
import { randomId } from '../shared/ids.ts';
import {
  type HaPolicyRecord,
  type PartitionCommand,
  type PartitionEvent,
  hostStreamId,
  isLive,
  partitionStreamId,
} from '../domain/index.ts';
import type { EventStore } from '../eventstore/index.ts';
import { type HaCandidate, type HaConfig, type HaDecision, planRestarts } from '../ha/index.ts';
import { type CommandMeta, handleCommand } from './commands.ts';
import type { DaemonRegistry } from './daemons.ts';
import type { Projections } from './projections.ts';
import { type ControlPlaneService, hostDecider, partitionDecider } from './service.ts';

export type LivenessConfig = {
  /**
   * An Up host that missed this many renewals in a row (by its own lease's period) is Suspect,
   * but never sooner than a third of its lease: a daemon renewing every 100 ms on a busy machine
   * is not suspect after 300 ms of scheduling delay.
   */
  readonly suspectAfterMissedRenewals: number;
};

export const defaultLivenessConfig: LivenessConfig = { suspectAfterMissedRenewals: 3 };

export class HaManager {
  private readonly passes = new SerialPasses(async () => {
    await this.detect();
    await this.markLost();
    await this.restart();
  });
  private readonly startedAtMs: number;

  constructor(
    private readonly store: EventStore,
    private readonly projections: Projections,
    private readonly daemons: DaemonRegistry,
    private readonly service: ControlPlaneService,
    private readonly ha: HaConfig,
    private readonly liveness: LivenessConfig,
    private readonly nowMs: () => number = Date.now,
  ) {
    // Renewals are not in the log: after a restart every host gets a full lease before judgement.
    this.startedAtMs = nowMs();
  }

  advance(): Promise<void> {
    return this.passes.run();
  }

  private policyRecord(restart: string, priority: number): HaPolicyRecord {
    const c = this.ha;
    return { restart, priority, restartsMax: c.restartsMax, windowMs: c.windowMs, backoffInitialMs: c.backoffInitialMs, backoffMaxMs: c.backoffMaxMs, resetAfterMs: c.resetAfterMs };
  }

  /** The failure detector: Up → Suspect → Failed by the lease's own terms. */
  private async detect(): Promise<void> {
    const now = this.nowMs();
    for (const tracked of [...this.projections.hosts.values()]) {
      const h = tracked.state;
      if (h.status !== 'Registered' || !h.lease || (h.liveness !== 'Up' && h.liveness !== 'Suspect')) continue;
      const lastMs = Math.max(this.daemons.lastSeenMs(h.hostId) ?? 0, this.startedAtMs);
      const silentMs = now - lastMs;
      const meta: CommandMeta = { actor: 'system:ha', correlationId: randomId(), causationId: tracked.lastEventId, idSeed: null };
      if (silentMs > h.lease.leaseMs + h.lease.marginMs) {
        await this.exec('host', h.hostId, {
          type: 'DeclareHostFailed',
          silentMs,
          lastRenewedAt: this.daemons.lastSeenMs(h.hostId) === null ? null : new Date(lastMs).toISOString(),
          reason: `no lease renewal for ${silentMs} ms (lease ${h.lease.leaseMs} ms + fencing margin ${h.lease.marginMs} ms)`,
        }, meta);
      } else if (h.liveness === 'Up' && silentMs > Math.max(this.liveness.suspectAfterMissedRenewals * h.lease.renewMs, h.lease.leaseMs / 3)) {
        await this.exec('host', h.hostId, { type: 'SuspectHost', silentMs }, meta);
      }
    }
  }

  /** Partitions the log still places on a failed host run nowhere (it fenced itself): say so. */
  private async markLost(): Promise<void> {
    if (this.projections.hostFailedEvents.size === 0) return;
    for (const tracked of [...this.projections.partitions.values()]) {
      const p = tracked.state;
      if (!isLive(p)) continue;
      const host = this.projections.hosts.get(p.hostId)?.state;
      if (host?.status !== 'Registered' || (host.liveness !== 'Failed' && host.liveness !== 'Fenced')) continue;
      const cause = this.projections.hostFailedEvents.get(p.hostId);
      if (!cause) continue;
      await this.exec('partition', p.partitionId, { type: 'MarkHostLost', hostId: p.hostId, hostFailedEventId: cause }, {
        actor: 'system:ha',
        correlationId: cause,
        causationId: cause,
        idSeed: `ha|lost|${cause}|${p.partitionId}|${p.incarnation}`,
      });
    }
  }

  private async restart(): Promise<void> {
    const candidates: HaCandidate[] = [];
    // The ledger knows every partition that failed since its last start: no need to scan them all.
    for (const [partitionId, record] of this.projections.ha.partitions) {
      if (!record.failure) continue;
      const p = this.projections.partitions.get(partitionId)?.state;
      if (p?.status !== 'Failed') continue;
      candidates.push({ partitionId, restart: p.spec.ha.restart, priority: p.spec.ha.priority, record });
    }
    if (candidates.length === 0) return;
    const hostUp = (hostId: string) => {
      const h = this.projections.hosts.get(hostId)?.state;
      return h?.status === 'Registered' && h.liveness === 'Up' && this.daemons.isConnected(hostId);
    };
    const decisions = planRestarts(candidates, hostUp, this.nowMs(), this.ha);
    const inFlight = new Map<string, number>();
    for (const t of this.projections.partitions.values()) {
      const p = t.state;
      if (p.status === 'Starting' && !p.resuming && this.projections.ha.partitions.get(p.partitionId)?.restartTimesMs.length) {
        inFlight.set(p.hostId, (inFlight.get(p.hostId) ?? 0) + 1);
      }
    }
    for (const d of decisions) await this.carryOut(d, hostUp, inFlight);
  }

  private async carryOut(d: HaDecision, hostUp: (hostId: string) => boolean, inFlight: Map<string, number>): Promise<void> {
    const tracked = this.projections.partitions.get(d.partitionId);
    const p = tracked?.state;
    if (tracked === undefined || p?.status !== 'Failed') return;
    const meta: CommandMeta = { actor: 'system:ha', correlationId: tracked.lastCorrelationId, causationId: d.causeEventId, idSeed: `ha|${d.kind}|${d.causeEventId}` };
    const policy = this.policyRecord(p.spec.ha.restart, p.spec.ha.priority);
    if (d.kind === 'plan') {
      const event: PartitionEvent = {
        type: 'PartitionRestartPlanned',
        data: {
          partitionId: d.partitionId,
          causeEventId: d.causeEventId,
          causeType: d.causeType,
          attempt: d.attempt,
          restartsInWindow: d.restartsInWindow,
          delayMs: d.delayMs,
          notBefore: new Date(d.notBeforeMs).toISOString(),
          where: d.where,
          lastHostId: d.lastHostId,
          policy,
        },
      };
      await this.exec('partition', d.partitionId, { type: 'RecordHaDecision', event }, meta);
      return;
    }
    if (d.kind === 'give-up') {
      const event: PartitionEvent = {
        type: 'PartitionRestartGivenUp',
        data: { partitionId: d.partitionId, causeEventId: d.causeEventId, restartsInWindow: d.restartsInWindow, reason: d.reason, policy },
      };
      await this.exec('partition', d.partitionId, { type: 'RecordHaDecision', event }, meta);
      return;
    }
    const down = [...this.projections.hosts.values()].flatMap((t) => (t.state.status === 'Registered' && !hostUp(t.state.hostId) ? [t.state.hostId] : []));
    const saturated = [...inFlight.entries()].filter(([, n]) => n >= this.ha.restartsPerHostMax).map(([h]) => h);
    if (d.hostId !== null && saturated.includes(d.hostId)) return; // its turn comes when a restart there finishes
    const outcome = await this.service.startPartition(d.partitionId, d.hostId, meta, {
      excludeHostIds: [...down, ...saturated, ...(d.avoidHostId ? [d.avoidHostId] : [])],
      antiAffinityClass: p.spec.ha.antiAffinityClass,
      antiAffinityMode: p.spec.ha.antiAffinityMode,
    });
    if (outcome.ok) {
      const target = outcome.value?.hostId;
      if (target) inFlight.set(target, (inFlight.get(target) ?? 0) + 1);
      return;
    }
    if (outcome.rejection.kind === 'no-capacity' && this.projections.ha.partitions.get(d.partitionId)?.unplaceableCauseId !== d.causeEventId) {
      const placement = (outcome.rejection.details as { placement?: unknown } | null)?.placement ?? { policy: 'least-loaded', chosenHostId: null, scores: [], rejected: [] };
      const event: PartitionEvent = {
        type: 'PartitionUnplaceable',
        data: { partitionId: d.partitionId, causeEventId: d.causeEventId, placement: placement as never, reason: outcome.rejection.message },
      };
      await this.exec('partition', d.partitionId, { type: 'RecordHaDecision', event }, { ...meta, idSeed: `ha|unplaceable|${d.causeEventId}` });
    }
  }

  private async exec(kind: 'host' | 'partition', id: string, command: unknown, meta: CommandMeta): Promise<void> {
    const outcome =
      kind === 'host'
        ? await handleCommand(this.store, hostDecider, hostStreamId(id), command as never, meta)
        : await handleCommand(this.store, partitionDecider, partitionStreamId(id), command as PartitionCommand, meta);
    if (outcome.ok) await this.projections.caughtUp(outcome.events);
  }
}
