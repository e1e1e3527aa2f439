/**
 * The six properties the simulation checks after every step. Each check reads what it needs from
 * the log and the machines, not from the component it judges, except invariant 4, which compares
 * the live control plane's projections with a replay of the log.
 *
 * 1. No partition runs on two hosts at once (Running on two powered machines).
 * 2. No host's reservations exceed its capacity.
 * 3. Every acknowledged command's events exist exactly once (and a retried command, acknowledged
 *    twice, got the same events both times).
 * 4. Replaying the log from scratch gives exactly the live projections.
 * 5. Every protected partition of a failed host is running elsewhere within lease + margin +
 *    restart bound of the host's death, or has a PartitionUnplaceable event; an obligation is
 *    excused only by something the check can name (a later fault, a command on the partition, HA
 *    giving up by its counters), and excused obligations are counted apart.
 * 6. No directive is carried out twice by a daemon: on each machine boot, the effective starts,
 *    pauses, resumes and saves of a (partition, incarnation) are at most the directives for it.
 */
import { defaultHaConfig } from '../../services/ha/index.ts';
import { memoryUsableMiB, vcpusHostMax } from '../../services/domain/capacity.ts';
import type { PartitionState } from '../../services/domain/index.ts';
import { Projections } from '../../services/control-plane/projections.ts';
import type { RecordedEvent } from '../../services/eventstore/index.ts';
import { type World, lease } from './world.ts';

export type Violation = { readonly invariant: number; readonly message: string };

/** Restarts after HostFailed must have run within this (priority order, per-host limits, the daemon's start). */
export const restartBoundMs = 30_000;

type Obligation = {
  readonly hostId: string;
  readonly partitionId: string;
  readonly restart: string;
  /** The incarnation that was lost: a restart runs a newer one. */
  readonly incarnation: number;
  /** When the host's lease was last renewed: its death, as far as the control plane can know. */
  readonly failedAtMs: number;
  readonly dueAtMs: number;
};

export type InvariantStats = {
  steps: number;
  obligationsMet: number;
  obligationsExcused: number;
  replaysCompared: number;
  replaysSkipped: number;
  fullReplays: number;
};

function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v instanceof Map) return [...v.entries()].sort(([a], [b]) => (String(a) < String(b) ? -1 : 1));
    if (v instanceof Set) return [...v].sort();
    return v;
  });
}

function projectionsView(p: Projections): string {
  return canonical({ position: p.position, hosts: p.hosts, partitions: p.partitions, migrations: p.migrations });
}

const live = new Set(['Starting', 'Running', 'Pausing', 'Paused', 'Stopping', 'Saving']);

export class Invariants {
  /** The oracle: a projection built from the log alone, from position 0, by this checker. */
  private readonly oracle = new Projections({ haResetAfterMs: defaultHaConfig.resetAfterMs });
  private readonly eventCount = new Map<string, number>();
  private readonly directiveCount = new Map<string, number>();
  private readonly obligations: Obligation[] = [];
  /** The protected partitions each host carried at the last check it was up. */
  private readonly carried = new Map<string, { partitionId: string; restart: string; incarnation: number }[]>();
  /** Host silences already turned into obligations (host@last renewal). */
  private readonly obliged = new Set<string>();
  private lastCompared: { core: object | null; position: number } = { core: null, position: -1 };
  private readonly unplaceable = new Map<string, number[]>();
  private readonly touchedAt = new Map<string, number[]>();
  private readonly gaveUp = new Map<string, number[]>();
  private readonly acceptedBySeed = new Map<string, readonly string[]>();
  readonly stats: InvariantStats = { steps: 0, obligationsMet: 0, obligationsExcused: 0, replaysCompared: 0, replaysSkipped: 0, fullReplays: 0 };

  constructor(private readonly world: World) {}

  /** Reads the events appended since the last check into the oracle and the checker's indexes. */
  private async ingest(): Promise<void> {
    const events = await this.world.store.readAll({ after: this.oracle.position, limit: 1_000_000 });
    for (const event of events) {
      this.eventCount.set(event.eventId, (this.eventCount.get(event.eventId) ?? 0) + 1);
      this.index(event);
      this.oracle.applyBatch([event]);
    }
  }

  private index(event: RecordedEvent): void {
    const d = event.data as { partitionId?: string; incarnation?: number; hostId?: string };
    const atMs = Date.parse(event.recordedAt);
    const count = (key: string) => this.directiveCount.set(key, (this.directiveCount.get(key) ?? 0) + 1);
    switch (event.type) {
      case 'PartitionStartRequested':
        count(`start|${d.partitionId}|${d.incarnation}`);
        break;
      case 'PartitionPauseRequested':
        count(`pause|${d.partitionId}|${d.incarnation}`);
        break;
      case 'PartitionResumeRequested':
        count(`resume|${d.partitionId}|${d.incarnation}`);
        break;
      case 'PartitionSaveRequested':
        count(`save|${d.partitionId}|${d.incarnation}`);
        break;
      case 'PartitionMigrationStarted':
        // A migration activates incarnation + 1 on the target, and may pause and resume the source.
        count(`start|${d.partitionId}|${d.incarnation! + 1}`);
        count(`pause|${d.partitionId}|${d.incarnation}`);
        count(`resume|${d.partitionId}|${d.incarnation}`);
        break;
      case 'PartitionUnplaceable':
        this.unplaceable.set(d.partitionId!, [...(this.unplaceable.get(d.partitionId!) ?? []), atMs]);
        break;
      case 'PartitionRestartGivenUp':
        this.gaveUp.set(d.partitionId!, [...(this.gaveUp.get(d.partitionId!) ?? []), atMs]);
        break;
      default:
        break;
    }
    if (event.actor === 'user:sim' && d.partitionId) this.touchedAt.set(d.partitionId, [...(this.touchedAt.get(d.partitionId) ?? []), atMs]);
  }

  /**
   * Obligations come from what the simulator knows, not from the control plane's verdict (a
   * failure detector that never declared a failure must not pass): a host that is down (machine
   * off, daemon dead or cut off) and has not renewed its lease for lease + margin is dead since its
   * last renewal. Its protected partitions, as the log places them then, must run elsewhere by
   * the deadline.
   */
  private obligeSilentHosts(): void {
    const world = this.world;
    for (const hostId of world.machines.keys()) {
      if (!world.hostDown(hostId)) {
        // Up: remember what it carries, which is what it carried when it dies before the next check.
        this.carried.set(hostId, this.protectedOn(hostId));
        continue;
      }
      const renewedAtMs = world.lastRenewalMs.get(hostId);
      if (renewedAtMs === undefined || world.nowMs - renewedAtMs <= lease.leaseMs + lease.marginMs) continue;
      const key = `${hostId}@${renewedAtMs}`;
      if (this.obliged.has(key)) continue;
      this.obliged.add(key);
      const partitions = new Map([...(this.carried.get(hostId) ?? []), ...this.protectedOn(hostId)].map((o) => [o.partitionId, o]));
      for (const { partitionId, restart, incarnation } of partitions.values()) {
        const waitMs = restart === 'same-host' ? defaultHaConfig.sameHostWaitMs : 0;
        this.obligations.push({
          hostId,
          partitionId,
          restart,
          incarnation,
          failedAtMs: renewedAtMs,
          dueAtMs: renewedAtMs + lease.leaseMs + lease.marginMs + waitMs + restartBoundMs,
        });
      }
    }
  }

  /** The protected partitions the log places on a host now. */
  private protectedOn(hostId: string): { partitionId: string; restart: string; incarnation: number }[] {
    const found: { partitionId: string; restart: string; incarnation: number }[] = [];
    for (const [partitionId, tracked] of this.oracle.partitions) {
      const p = tracked.state as PartitionState & { hostId?: string; incarnation?: number; spec?: { ha: { restart: string; priority: number } } };
      if (!live.has(p.status) || p.hostId !== hostId || !p.spec) continue;
      if (p.spec.ha.restart === 'none' || p.spec.ha.priority === 0) continue;
      found.push({ partitionId, restart: p.spec.ha.restart, incarnation: p.incarnation ?? 0 });
    }
    return found;
  }

  async check(options: { fullReplay: boolean }): Promise<Violation[]> {
    this.stats.steps += 1;
    await this.ingest();
    const violations: Violation[] = [];
    const world = this.world;

    // 1. one running copy
    const runningOn = new Map<string, string[]>();
    for (const [hostId, machine] of world.machines) {
      for (const p of await machine.list()) {
        if (p.state === 'Running') runningOn.set(p.partitionId, [...(runningOn.get(p.partitionId) ?? []), `${hostId}#${p.incarnation}`]);
      }
    }
    for (const [partitionId, where] of runningOn) {
      if (where.length > 1) violations.push({ invariant: 1, message: `partition ${partitionId} runs on ${where.join(' and ')}` });
    }

    // 2. reservations within capacity
    for (const [hostId, tracked] of this.oracle.hosts) {
      const h = tracked.state;
      if (h.status !== 'Registered') continue;
      const r = h.reserved;
      const over: string[] = [];
      if (r.memoryMiB > memoryUsableMiB(h)) over.push(`memory ${r.memoryMiB} > ${memoryUsableMiB(h)} MiB`);
      if (r.reserveLpPct > h.logicalProcessors * 100) over.push(`CPU reserve ${r.reserveLpPct}% > ${h.logicalProcessors * 100}%`);
      if (r.vcpus > vcpusHostMax(h)) over.push(`vCPUs ${r.vcpus} > ${vcpusHostMax(h)}`);
      if (r.count > h.limits.partitionsPerHostMax) over.push(`partitions ${r.count} > ${h.limits.partitionsPerHostMax}`);
      if (over.length > 0) violations.push({ invariant: 2, message: `host ${hostId} reserves beyond its capacity: ${over.join(', ')}` });
    }

    // 3. acknowledged commands' events, exactly once
    for (const command of world.commands) {
      if (command.outcome !== 'accepted') continue;
      for (const eventId of command.eventIds) {
        const n = this.eventCount.get(eventId) ?? 0;
        if (n !== 1) violations.push({ invariant: 3, message: `step ${command.stepIndex} (${command.action}) was acknowledged with event ${eventId}, which the log holds ${n} times` });
      }
      if (command.migrationId !== null && (await world.store.streamVersion(`migration-${command.migrationId}`)) === 0) {
        violations.push({ invariant: 3, message: `step ${command.stepIndex} (migrate) was acknowledged with migration ${command.migrationId}, which has no events` });
      }
      const earlier = this.acceptedBySeed.get(command.idSeed);
      if (earlier === undefined) this.acceptedBySeed.set(command.idSeed, command.eventIds);
      else if (canonical(earlier) !== canonical(command.eventIds)) {
        violations.push({ invariant: 3, message: `command ${command.idSeed} was acknowledged twice with different events: applied twice` });
      }
    }

    // 4. replay equals live
    const core = world.core;
    const moved = core !== this.lastCompared.core || this.oracle.position !== this.lastCompared.position;
    if (core && core.projections.position === this.oracle.position && (moved || options.fullReplay)) {
      // Compared once per (control plane, position), and again with every full replay.
      this.lastCompared = { core, position: this.oracle.position };
      this.stats.replaysCompared += 1;
      if (projectionsView(core.projections) !== projectionsView(this.oracle)) {
        violations.push({ invariant: 4, message: `the live projections differ from the replay at position ${this.oracle.position}${firstDifference(core.projections, this.oracle)}` });
      }
    } else if (!core || core.projections.position !== this.oracle.position) {
      this.stats.replaysSkipped += 1;
    }
    if (options.fullReplay) {
      this.stats.fullReplays += 1;
      const scratch = new Projections({ haResetAfterMs: defaultHaConfig.resetAfterMs });
      scratch.applyBatch(await world.store.readAll({ after: 0, limit: 10_000_000 }));
      if (projectionsView(scratch) !== projectionsView(this.oracle)) {
        violations.push({ invariant: 4, message: `a replay from scratch differs from the incremental one at position ${scratch.position}${firstDifference(scratch, this.oracle)}` });
      }
    }

    // 5. HA obligations that fell due
    this.obligeSilentHosts();
    const now = world.nowMs;
    for (let i = this.obligations.length - 1; i >= 0; i--) {
      const o = this.obligations[i]!;
      if (o.dueAtMs > now) continue;
      this.obligations.splice(i, 1);
      const verdict = this.judge(o);
      if (verdict === 'met') this.stats.obligationsMet += 1;
      else if (verdict === 'excused') this.stats.obligationsExcused += 1;
      else violations.push({ invariant: 5, message: verdict });
    }

    // 6. no directive carried out twice
    for (const machine of world.machines.values()) {
      const seen = new Map<string, number>();
      for (const e of machine.effects) {
        const key = `${e.op}|${e.partitionId}|${e.incarnation}`;
        const perBoot = `${e.bootId}|${key}`;
        const n = (seen.get(perBoot) ?? 0) + 1;
        seen.set(perBoot, n);
        const allowed = this.directiveCount.get(key) ?? 0;
        if (n > allowed) {
          violations.push({ invariant: 6, message: `${e.bootId} carried out ${e.op} of ${e.partitionId}#${e.incarnation} ${n} times; the log asked ${allowed}` });
          break;
        }
      }
    }
    return violations;
  }

  private judge(o: Obligation): 'met' | 'excused' | string {
    const p = this.oracle.partitions.get(o.partitionId)?.state as (PartitionState & { hostId?: string; incarnation?: number }) | undefined;
    if (p && p.status === 'Running' && (p.incarnation ?? 0) > o.incarnation) return 'met';
    const after = (times: readonly number[] | undefined) => (times ?? []).some((t) => t >= o.failedAtMs);
    if (after(this.unplaceable.get(o.partitionId))) return 'met';
    if (!p || p.status === 'Deleted') return 'excused';
    if (after(this.touchedAt.get(o.partitionId)) || after(this.gaveUp.get(o.partitionId))) return 'excused';
    // Any fault elsewhere between the death and the deadline may stand in the way (the chosen host
    // failing too, the control plane down, a store refusing writes): excused, and counted. The
    // failed host's own faults excuse nothing: they are why it failed.
    if (this.world.disturbances.some((d) => d.atMs > o.failedAtMs && d.atMs <= o.dueAtMs && d.hostId !== o.hostId)) return 'excused';
    return `partition ${o.partitionId} (restart ${o.restart}) of host ${o.hostId}, which died at ${new Date(o.failedAtMs).toISOString()}, is ${p.status}${p.hostId ? ` on ${p.hostId}` : ''} at the deadline ${new Date(o.dueAtMs).toISOString()}, with no PartitionUnplaceable`;
  }
}

function firstDifference(a: Projections, b: Projections): string {
  for (const name of ['hosts', 'partitions', 'migrations'] as const) {
    const left = a[name] as Map<string, unknown>;
    const right = b[name] as Map<string, unknown>;
    for (const id of new Set([...left.keys(), ...right.keys()])) {
      const x = canonical(left.get(id));
      const y = canonical(right.get(id));
      if (x !== y) return `: ${name} ${id}: ${x?.slice(0, 400)} vs ${y?.slice(0, 400)}`;
    }
  }
  return '';
}
