/**
 * The daemon's part in a live migration. As target: prepare (check the room), then activate the
 * new incarnation at switch-over and report it (the commit point). As source: run the pre-copy
 * rounds (the transfer itself is modelled by the simulated hypervisor's engine, at the
 * migration's bandwidth, in real time), report each round, pause for the final copy and report
 * the switch-over; on failure or cancel, resume; once migrated, discard the old copy.
 */
import type { PartitionSpec } from '../domain/index.ts';
import { sleep } from '../shared/sleep.ts';
import type { Logger } from 'pino';
import { type Hypervisor, HypervisorError, createPreCopy } from '../hypervisor/index.ts';
import type { ControlPlaneClient } from './control-plane-client.ts';

/** What the daemon applies of a partition's spec (as the control plane sends it). */
type Spec = Pick<PartitionSpec, 'vcpus' | 'processor' | 'memory' | 'workload'>;

export type MigrationDirective = {
  readonly eventId: string;
  readonly type: string;
  readonly globalPosition: number;
  readonly data: {
    readonly migrationId: string;
    readonly partitionId: string;
    readonly sourceHostId: string;
    readonly targetHostId: string | null;
    readonly targetIncarnation?: number;
    readonly sourceIncarnation?: number;
    readonly incarnation?: number;
    readonly memoryMiB?: number;
    readonly limits?: {
      readonly bandwidthMiBps: number;
      readonly downtimeMsMax: number;
      readonly roundsMax: number;
      readonly completionTimeoutMsPerGiB: number;
      readonly progressTimeoutMs: number;
      readonly autoConverge: boolean;
      readonly onRoundLimit: 'force-switchover' | 'fail';
    };
  };
};

type Throttling = { setThrottle?(partitionId: string, incarnation: number, throttlePct: number | null): Promise<unknown> };

export function createMigrationParticipant(
  hostId: string,
  hypervisor: Hypervisor & Throttling,
  client: ControlPlaneClient,
  log: Logger,
  stopping: AbortSignal,
  /**
   * Throws when this host may not run anything now (its lease lapsed); false when a switch-over
   * at this log position predates the host's last fence or return (it must not activate).
   */
  mayActivate: (position: number) => boolean = () => true,
) {
  /** Pre-copy runs in the background, one per migration, so the directive stream is not blocked. */
  const outgoing = new Map<string, { abort: AbortController; paused: boolean; partitionId: string; incarnation: number }>();

  async function report(entry: Record<string, unknown> & { reportId: string; migrationId: string; type: string }): Promise<void> {
    let delayMs = 100;
    while (!stopping.aborted) {
      try {
        await client.migrationReport([entry]);
        return;
      } catch (error) {
        log.warn({ err: error instanceof Error ? error.message : String(error), report: entry.type }, 'migration report failed; retrying');
        await sleep(delayMs, stopping);
        delayMs = Math.min(delayMs * 2, 5000);
      }
    }
  }

  async function specOf(partitionId: string): Promise<Spec> {
    return (await client.partition(partitionId)).spec as Spec;
  }

  async function stillActive(migrationId: string, phases: readonly string[]): Promise<boolean> {
    try {
      return phases.includes((await client.migration(migrationId)).phase);
    } catch {
      return false;
    }
  }

  async function prepareTarget(d: MigrationDirective): Promise<void> {
    const { migrationId, partitionId } = d.data;
    const base = { reportId: `${d.eventId}:prepare`, migrationId };
    if (!(await stillActive(migrationId, ['Reserved']))) return;
    const spec = await specOf(partitionId);
    const usage = await hypervisor.usage();
    const needMiB = spec.memory.startupMiB;
    if (usage.memoryAvailableMiB < needMiB) {
      await report({ ...base, type: 'TargetFailed', reason: `only ${usage.memoryAvailableMiB} MiB available, ${needMiB} MiB needed` });
      return;
    }
    log.info({ migrationId, partitionId }, 'ready to receive a migration');
    await report({ ...base, type: 'TargetPrepared' });
  }

  async function activateTarget(d: MigrationDirective): Promise<void> {
    const { migrationId, partitionId } = d.data;
    const incarnation = d.data.targetIncarnation!;
    if (!(await stillActive(migrationId, ['SwitchOver']))) return;
    const spec = await specOf(partitionId);
    if (!mayActivate(d.globalPosition)) {
      await report({ reportId: `${d.eventId}:activation-failed`, migrationId, type: 'TargetFailed', reason: `target host ${hostId} fenced itself or was declared failed after the switch-over began` });
      return;
    }
    try {
      await hypervisor.start({ partitionId, incarnation, vcpus: spec.vcpus, processor: spec.processor, memory: spec.memory, workload: spec.workload });
      log.info({ migrationId, partitionId, incarnation }, 'migrated partition activated here');
      await report({ reportId: `${d.eventId}:activated`, migrationId, type: 'Activated' });
    } catch (error) {
      if (!(error instanceof HypervisorError) || error.code === 'unavailable') throw error;
      await report({ reportId: `${d.eventId}:activation-failed`, migrationId, type: 'TargetFailed', reason: `activation failed: ${error.message}` });
    }
  }

  function startPreCopy(d: MigrationDirective): void {
    const { migrationId, partitionId } = d.data;
    const incarnation = d.data.sourceIncarnation!;
    if (outgoing.has(migrationId)) return;
    const abort = new AbortController();
    const entry = { abort, paused: false, partitionId, incarnation };
    outgoing.set(migrationId, entry);
    const signal = AbortSignal.any([abort.signal, stopping]);
    void (async () => {
      if (!(await stillActive(migrationId, ['PreCopy']))) return;
      const running = (await hypervisor.list()).find((p) => p.partitionId === partitionId && p.incarnation === incarnation);
      if (!running) {
        await report({ reportId: `${d.eventId}:not-running`, migrationId, type: 'SourceFailed', reason: `partition ${partitionId} incarnation ${incarnation} does not run here` });
        return;
      }
      const spec = await specOf(partitionId);
      const limits = d.data.limits!;
      const engine = createPreCopy({
        memoryMiB: running.memoryAssignedMiB,
        dirtyMiBps: spec.workload?.dirtyMiBps ?? 0,
        workingSetMiB: spec.workload?.workingSetMiB ?? null,
        limits: {
          bandwidthMiBps: limits.bandwidthMiBps,
          downtimeMsMax: limits.downtimeMsMax,
          roundsMax: limits.roundsMax,
          completionTimeoutMsPerGiB: limits.completionTimeoutMsPerGiB,
          progressTimeoutMs: limits.progressTimeoutMs,
          autoConverge: limits.autoConverge,
          onRoundLimit: limits.onRoundLimit,
        },
      });
      let throttlePct = 0;
      for (;;) {
        if (signal.aborted) return;
        const step = engine.nextRound();
        if (step.kind === 'round') {
          await sleep(step.durationMs, signal);
          if (signal.aborted) return;
          if (step.throttlePct !== throttlePct && hypervisor.setThrottle) {
            throttlePct = step.throttlePct;
            await hypervisor.setThrottle(partitionId, incarnation, throttlePct > 0 ? throttlePct : null).catch(() => undefined);
          }
          await report({
            reportId: `${d.eventId}:round:${step.round}`,
            migrationId,
            type: 'Round',
            round: step.round,
            sentMiB: step.sentMiB,
            durationMs: step.durationMs,
            transferredMiB: step.transferredMiBTotal,
            remainingMiB: step.remainingMiB,
            dirtyRateMiBps: step.dirtyRateMiBps,
            throttlePct: step.throttlePct,
            expectedDowntimeMs: step.expectedDowntimeMs,
          });
          continue;
        }
        if (step.kind === 'switchover') {
          // Stop-and-copy: the source copy pauses (no copy runs now), the last pages go over.
          await hypervisor.pause(partitionId, incarnation);
          entry.paused = true;
          await sleep(step.downtimeMs, signal);
          await report({
            reportId: `${d.eventId}:switchover`,
            migrationId,
            type: 'Switchover',
            round: step.round,
            finalCopyMiB: step.finalCopyMiB,
            transferredMiB: step.transferredMiBTotal,
            downtimeMs: step.downtimeMs,
            reason: step.reason,
          });
          return;
        }
        await report({ reportId: `${d.eventId}:failed`, migrationId, type: 'SourceFailed', reason: step.reason });
        return;
      }
    })()
      .catch((error: unknown) => {
        log.warn({ migrationId, err: error instanceof Error ? error.message : String(error) }, 'pre-copy ended with an error');
        return report({ reportId: `${d.eventId}:error`, migrationId, type: 'SourceFailed', reason: error instanceof Error ? error.message : String(error) });
      })
      .finally(() => {
        if (!entry.paused) outgoing.delete(migrationId);
      });
  }

  /** A migration ended without moving: the source copy runs on (resumed if it was paused). */
  async function ended(d: MigrationDirective): Promise<void> {
    const { migrationId, partitionId, sourceHostId, targetHostId } = d.data;
    const sourceIncarnation = d.data.sourceIncarnation!;
    const targetIncarnation = d.data.targetIncarnation!;
    outgoing.get(migrationId)?.abort.abort();
    outgoing.delete(migrationId);
    // Act only as the log says now: an old, replayed ending must not touch a later placement.
    const now = await client.partition(partitionId).catch(() => null);
    if (sourceHostId === hostId && now?.hostId === hostId && now.incarnation === sourceIncarnation) {
      const running = (await hypervisor.list()).find((p) => p.partitionId === partitionId && p.incarnation === sourceIncarnation);
      if (running?.state === 'Paused' && now.state === 'Running') {
        await hypervisor.resume(partitionId, sourceIncarnation);
        log.warn({ migrationId, partitionId }, 'migration ended during switch-over; the source copy resumed');
      }
      if (running && hypervisor.setThrottle) await hypervisor.setThrottle(partitionId, sourceIncarnation, null).catch(() => undefined);
    }
    if (targetHostId === hostId && !(now?.hostId === hostId && now.incarnation === targetIncarnation)) {
      // A copy the target may have started for this migration never committed: it must not run.
      await hypervisor.turnOff(partitionId, targetIncarnation);
    }
  }

  /** The partition now runs on the target: the paused source copy is discarded. */
  async function migratedAway(d: MigrationDirective): Promise<void> {
    const { migrationId, partitionId } = d.data;
    const incarnation = d.data.sourceIncarnation!;
    outgoing.get(migrationId)?.abort.abort();
    outgoing.delete(migrationId);
    await hypervisor.turnOff(partitionId, incarnation);
    log.info({ migrationId, partitionId, incarnation }, 'migrated away; source copy discarded');
  }

  return {
    async apply(d: MigrationDirective): Promise<void> {
      const isTarget = d.data.targetHostId === hostId;
      const isSource = d.data.sourceHostId === hostId;
      switch (d.type) {
        case 'MigrationTargetReserved':
          if (isTarget) await prepareTarget(d);
          return;
        case 'MigrationPreCopyStarted':
          if (isSource) startPreCopy(d);
          return;
        case 'MigrationSwitchoverStarted':
          if (isTarget) await activateTarget(d);
          return;
        case 'MigrationFailed':
        case 'MigrationCancelled':
          await ended(d);
          return;
        case 'PartitionMigrated':
          if (isSource) await migratedAway(d);
          return;
        default:
          log.warn({ type: d.type }, 'unknown migration directive; skipped');
      }
    },
    close(): void {
      for (const entry of outgoing.values()) entry.abort.abort();
    },
  };
}
