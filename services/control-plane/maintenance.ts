/**
 * Host maintenance: a drain cordons the host, live-migrates every Running partition away within
 * the migration limits (each migration carries the drain as its cause and the requester as its
 * actor), reports what cannot move and why, and puts the host in Maintenance once nothing is
 * placed on it. Level-triggered, like the migration manager it drives.
 */
import { SerialPasses } from './serial.ts';
import { type Rejection, endedMigrationPhases, hostStreamId, isLive } from '../domain/index.ts';
import type { EventStore } from '../eventstore/index.ts';
import { type CommandMeta, deterministicId, handleCommand } from './commands.ts';
import type { MigrationManager, MigrationView } from './migrations.ts';
import type { Projections } from './projections.ts';
import { hostDecider } from './service.ts';
import { randomId } from '../shared/ids.ts';

export type DrainView = {
  readonly hostId: string;
  readonly state: 'InService' | 'Draining' | 'InMaintenance';
  readonly drainId: string | null;
  readonly reason: string | null;
  /** Partitions still placed on the host. */
  readonly remaining: number;
  readonly migrations: MigrationView[];
  /** Partitions that cannot move, and why. */
  readonly blocked: { partitionId: string; reason: string }[];
};

export class MaintenanceManager {
  private readonly passes = new SerialPasses(() => this.pass());
  /** Migrations a drain could not even request (no host can take the partition): retried later. */
  private readonly refusals = new Map<string, { reason: string; atMs: number }>();
  static readonly refusalRetryMs = 10_000;

  constructor(
    private readonly store: EventStore,
    private readonly projections: Projections,
    private readonly migrations: MigrationManager,
  ) {}

  view(hostId: string): DrainView | null {
    const host = this.projections.hosts.get(hostId)?.state;
    if (host?.status !== 'Registered') return null;
    const m = host.maintenance;
    const placed = [...this.projections.partitions.values()].filter((t) => isLive(t.state) && t.state.hostId === hostId);
    const migrations = m ? this.migrations.migrations({ hostId }).filter((v) => v.drainId === m.drainId) : [];
    const blocked: { partitionId: string; reason: string }[] = [];
    if (m?.status === 'Draining') {
      for (const t of placed) {
        const p = t.state;
        if (!isLive(p)) continue;
        const mine = migrations.filter((v) => v.partitionId === p.partitionId);
        const last = mine[mine.length - 1];
        if (p.status !== 'Running' && !p.migration) {
          blocked.push({ partitionId: p.partitionId, reason: `it is ${p.status}; only Running partitions can be live-migrated (resume, save or turn it off)` });
        } else if (this.refusals.has(`${m.drainId}|${p.partitionId}`) && !last) {
          blocked.push({ partitionId: p.partitionId, reason: this.refusals.get(`${m.drainId}|${p.partitionId}`)!.reason });
        } else if (last && (last.phase === 'Failed' || last.phase === 'Cancelled') && !p.migration) {
          blocked.push({ partitionId: p.partitionId, reason: `migration ${last.id} ${last.phase.toLowerCase()}: ${last.failureReason ?? ''}`.trim() });
        }
      }
    }
    return {
      hostId,
      state: m === null ? 'InService' : m.status,
      drainId: m?.drainId ?? null,
      reason: m?.reason ?? null,
      remaining: placed.length,
      migrations,
      blocked,
    };
  }

  async start(hostId: string, reason: string, meta: CommandMeta): Promise<{ ok: true; value: DrainView } | { ok: false; rejection: Rejection }> {
    const drainId = meta.idSeed === null ? randomId() : deterministicId(`${meta.idSeed}|drain`);
    const outcome = await handleCommand(this.store, hostDecider, hostStreamId(hostId), { type: 'RequestMaintenance', drainId, reason }, meta);
    if (!outcome.ok) return outcome;
    await this.projections.caughtUp(outcome.events);
    await this.advance();
    return { ok: true, value: this.view(hostId)! };
  }

  async end(hostId: string, meta: CommandMeta): Promise<{ ok: true; value: DrainView } | { ok: false; rejection: Rejection }> {
    const before = this.view(hostId);
    const outcome = await handleCommand(this.store, hostDecider, hostStreamId(hostId), { type: 'ExitMaintenance' }, meta);
    if (!outcome.ok) return outcome;
    // Migrations of the drain that have not started moving are no longer wanted.
    for (const m of before?.migrations ?? []) {
      if (m.phase === 'Requested' || m.phase === 'Queued') {
        await this.migrations.cancel(m.id, `maintenance of ${hostId} ended`, { ...meta, idSeed: null });
      }
    }
    await this.projections.caughtUp(outcome.events);
    return { ok: true, value: this.view(hostId)! };
  }

  advance(): Promise<void> {
    return this.passes.run();
  }

  private async pass(): Promise<void> {
    for (const tracked of [...this.projections.hosts.values()]) {
      const host = tracked.state;
      if (host.status !== 'Registered' || host.maintenance?.status !== 'Draining') continue;
      const drainId = host.maintenance.drainId;
      const cause = this.projections.drains.get(drainId);
      const meta = (partitionId: string): CommandMeta => ({
        actor: cause?.actor ?? 'system:maintenance',
        correlationId: cause?.correlationId ?? drainId,
        causationId: cause?.eventId ?? null,
        idSeed: `drain|${drainId}|${partitionId}`,
      });
      const mine = this.migrations.migrations({ hostId: host.hostId }).filter((m) => m.drainId === drainId);
      for (const t of [...this.projections.partitions.values()]) {
        const p = t.state;
        if (!isLive(p) || p.hostId !== host.hostId || p.status !== 'Running' || p.migration) continue;
        // One attempt per partition and drain: a failed one is reported as blocked, not retried in a loop.
        if (mine.some((m) => m.partitionId === p.partitionId)) continue;
        if (this.migrations.migrations({ partitionId: p.partitionId }).some((m) => !endedMigrationPhases.includes(m.phase as never))) continue;
        const key = `${drainId}|${p.partitionId}`;
        const refused = this.refusals.get(key);
        if (refused && Date.now() - refused.atMs < MaintenanceManager.refusalRetryMs) continue;
        const requested = await this.migrations.request(
          p.partitionId,
          { targetHostId: null, reason: `drain of host ${host.hostId} for maintenance`, bandwidthMiBps: null, downtimeMsMax: null, roundsMax: null, autoConverge: null },
          meta(p.partitionId),
          drainId,
        );
        if (requested.ok) this.refusals.delete(key);
        else this.refusals.set(key, { reason: requested.rejection.message + reasonsOf(requested.rejection), atMs: Date.now() });
      }
      if (host.reserved.count === 0) {
        await handleCommand(this.store, hostDecider, hostStreamId(host.hostId), { type: 'EnterMaintenance', drainId }, { ...meta('enter'), actor: 'system:maintenance' });
      }
    }
  }
}

function reasonsOf(rejection: Rejection): string {
  const placement = (rejection.details as { placement?: { rejected?: { hostId: string; reasons: string[] }[] } } | null)?.placement;
  const rejected = placement?.rejected?.filter((r) => !r.reasons.includes('excluded by the request')) ?? [];
  return rejected.length > 0 ? `: ${rejected.map((r) => `${r.hostId}: ${r.reasons.join('; ')}`).join(' | ')}` : '';
}
