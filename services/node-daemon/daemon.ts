/**
 * The node daemon: one per host. Consumes the directives that concern its host (in order, from
 * a durable checkpoint), applies them to the local hypervisor, and reports what really happened.
 * Level-triggered underneath: on every (re)connection it compares what runs with what the log
 * says and converges, reporting the differences as facts.
 */
import type { PartitionSpec } from '../domain/index.ts';
import { sleep } from '../shared/sleep.ts';
import { mkdirSync } from 'node:fs';
import type { Logger } from 'pino';
import { type Hypervisor, HypervisorError, type PartitionConfig, type PartitionStatus, type Watchdog, watchdogTimeoutMsMin } from '../hypervisor/index.ts';
import { checkpointFileName, readCheckpoint, writeCheckpoint } from './checkpoint.ts';
import { type ControlPlaneClient, ControlPlaneHttpError, type Desired, type DesiredPartition, type Report, createControlPlaneClient } from './control-plane-client.ts';
import { type MigrationDirective, createMigrationParticipant } from './migration.ts';

export type NodeDaemonConfig = {
  readonly hostId: string;
  readonly controlPlaneUrl: string;
  readonly dataDir: string;
  /** Lease renewal period (the heartbeat). */
  readonly heartbeatMs: number;
  /** The lease each renewal extends; the control plane declares the host failed after leaseMs + marginMs of silence. */
  readonly leaseMs: number;
  /** The daemon fences itself (and arms its machine's watchdog) at leaseMs − marginMs without renewal. */
  readonly marginMs: number;
  /** How often usage is sampled and sent to the control plane (the hypervisor's tick). */
  readonly telemetryMs: number;
  readonly observationPollMs: number;
  readonly requestTimeoutMs: number;
  /** Longest pause between reconnection or report attempts. */
  readonly retryDelayMsMax: number;
  readonly labels: { readonly [key: string]: string };
  readonly limitsPreset: string;
};

export const defaultNodeDaemonConfig = {
  heartbeatMs: 1_000,
  leaseMs: 10_000,
  marginMs: 2_000,
  telemetryMs: 1_000,
  observationPollMs: 500,
  requestTimeoutMs: 10_000,
  retryDelayMsMax: 5_000,
  labels: {},
  limitsPreset: 'modern',
} as const;

/**
 * Optional powers of simulated hypervisors: telling what happened on their own (guest crashes,
 * guest shut-downs), and changing a running guest's simulated workload.
 */
export type Observing = {
  drainObservations(): Promise<
    readonly (
      | { kind: 'crashed'; partitionId: string; incarnation: number; reason: string }
      | { kind: 'stopped-by-guest'; partitionId: string; incarnation: number }
      | { kind: 'fenced'; partitionId: string; incarnation: number }
    )[]
  >;
  setWorkload(partitionId: string, workload: PartitionConfig['workload']): Promise<void>;
};

type Directive = {
  readonly eventId: string;
  readonly type: string;
  readonly globalPosition: number;
  readonly data: {
    readonly partitionId: string;
    readonly hostId: string;
    readonly incarnation: number;
    readonly spec?: PartitionSpecLike;
  };
};

/** What the daemon applies of a partition's spec (as the control plane sends it). */
type PartitionSpecLike = Pick<PartitionSpec, 'vcpus' | 'processor' | 'memory' | 'workload'>;

export type NodeDaemonHandle = {
  /** Position of the last directive applied and reported. */
  readonly checkpoint: () => number;
  readonly connected: () => boolean;
  close(): Promise<void>;
};

const liveStates = new Set(['Starting', 'Running', 'Pausing', 'Paused', 'Stopping', 'Saving']);

/** A directive that would run something arrived while the host's lease had lapsed. */
export class LeaseLapsedError extends Error {
  override readonly name = 'LeaseLapsedError';
}

function fileCheckpoints(dataDir: string): CheckpointStore {
  mkdirSync(dataDir, { recursive: true });
  return { read: (hostId) => readCheckpoint(dataDir, hostId), write: (hostId, position) => writeCheckpoint(dataDir, hostId, position) };
}

function configOf(partitionId: string, incarnation: number, spec: PartitionSpecLike): PartitionConfig {
  return { partitionId, incarnation, vcpus: spec.vcpus, processor: spec.processor, memory: spec.memory, workload: spec.workload };
}

/** Where the daemon keeps its checkpoint; a file in its data dir unless another store is given. */
export type CheckpointStore = { read(hostId: string): number; write(hostId: string, position: number): void };

/**
 * Adapters a caller may swap: the simulation runs daemons in-process with an in-memory transport,
 * and kills one with `stop` (which, unlike close(), also works while it is still registering).
 */
export type NodeDaemonAdapters = { readonly client?: ControlPlaneClient; readonly checkpoints?: CheckpointStore; readonly stop?: AbortSignal };

export async function runNodeDaemon(
  config: NodeDaemonConfig,
  hypervisor: Hypervisor & Partial<Observing> & Partial<Watchdog>,
  log: Logger,
  adapters: NodeDaemonAdapters = {},
): Promise<NodeDaemonHandle> {
  if (!(config.heartbeatMs < config.leaseMs - config.marginMs && config.marginMs >= 0)) {
    throw new RangeError(`lease terms: need heartbeatMs (${config.heartbeatMs}) < leaseMs (${config.leaseMs}) − marginMs (${config.marginMs})`);
  }
  const { hostId } = config;
  const checkpoints: CheckpointStore = adapters.checkpoints ?? fileCheckpoints(config.dataDir);
  const client = adapters.client ?? createControlPlaneClient(config.controlPlaneUrl, hostId, config.requestTimeoutMs);
  const stop = new AbortController();
  adapters.stop?.addEventListener('abort', () => stop.abort(), { once: true });
  let checkpoint = checkpoints.read(hostId);
  let connected = false;
  let bootId = 'unknown';
  log.info({ hostId, checkpoint, file: checkpointFileName }, 'node daemon starting');

  /** Retries `work` with capped exponential backoff until it succeeds or the daemon stops. */
  async function persist<T>(what: string, work: () => Promise<T>): Promise<T | undefined> {
    let delayMs = 100;
    while (!stop.signal.aborted) {
      try {
        return await work();
      } catch (error) {
        log.warn({ err: error instanceof Error ? error.message : String(error), what }, 'retrying');
        await sleep(delayMs, stop.signal);
        delayMs = Math.min(delayMs * 2, config.retryDelayMsMax);
      }
    }
    return undefined;
  }

  async function report(reports: readonly Report[]): Promise<void> {
    if (reports.length === 0) return;
    const answer = await persist('report', () => client.report(reports));
    for (const result of answer?.results ?? []) {
      if (result.outcome !== 'recorded') log.info({ ...result }, 'report not applied by the control plane');
    }
  }

  // ---------------------------------------------------------------- registration
  const info = await persist('read host info from the hypervisor', () => hypervisor.info());
  if (!info) return closedHandle();
  bootId = info.bootId;
  await persist('register host', async () => {
    try {
      await client.register({
        id: hostId,
        logicalProcessors: info.logicalProcessors,
        memoryMiB: info.memoryMiB,
        parentReserveMiB: info.parentReserveMiB,
        labels: config.labels,
        limitsPreset: config.limitsPreset,
      });
    } catch (error) {
      // Registered already with other figures: keep serving the host as registered, and say so.
      if (error instanceof ControlPlaneHttpError && error.status === 409) {
        log.warn({ body: error.body }, 'host is registered with different capacity; the registered figures stay in force');
        return;
      }
      throw error;
    }
  });
  if (stop.signal.aborted) return closedHandle();

  // ---------------------------------------------------------------- applying directives
  function isCurrent(directive: Directive, desired: Desired): boolean {
    // A directive newer than the snapshot is current by definition: later ones will follow it.
    if (directive.globalPosition > desired.position) return true;
    const now = desired.partitions.find((p) => p.partitionId === directive.data.partitionId);
    return now !== undefined && now.hostId === hostId && now.incarnation === directive.data.incarnation && liveStates.has(now.state);
  }

  const migrations = createMigrationParticipant(hostId, hypervisor, client, log, stop.signal, (position) => {
    requireLease('activate a migrated partition');
    return position > startBarrier;
  });
  const migrationTypes = new Set(['MigrationTargetReserved', 'MigrationPreCopyStarted', 'MigrationSwitchoverStarted', 'MigrationFailed', 'MigrationCancelled', 'PartitionMigrated']);

  async function apply(directive: Directive, desired: Desired): Promise<void> {
    if (migrationTypes.has(directive.type)) return migrations.apply(directive as unknown as MigrationDirective);
    const { partitionId, incarnation } = directive.data;
    const current = isCurrent(directive, desired);
    const fact = (type: string, extra: Partial<Report> = {}): Report => ({
      reportId: `${directive.eventId}:${type}`,
      partitionId,
      type,
      incarnation,
      directiveEventId: directive.eventId,
      ...extra,
    });
    const attempt = async (work: () => Promise<Report | null>): Promise<void> => {
      try {
        const outcome = await work();
        if (outcome) await report([outcome]);
      } catch (error) {
        if (!(error instanceof HypervisorError) || error.code === 'unavailable') throw error;
        log.warn({ partitionId, incarnation, directive: directive.type, code: error.code, reason: error.message }, 'hypervisor refused a directive');
        if (directive.type === 'PartitionStartRequested') {
          await report([fact('PartitionStartFailed', { reason: error.message, code: error.code })]);
        }
      }
    };
    switch (directive.type) {
      case 'PartitionStartRequested': {
        if (!current) return log.info({ partitionId, incarnation }, 'skipping a start the log has since superseded');
        const spec = directive.data.spec;
        if (!spec) throw new Error(`directive ${directive.eventId} has no spec`);
        requireLease('start');
        if (await startedBeforeBarrier(directive.globalPosition, partitionId, incarnation)) {
          return report([fact('PartitionStartFailed', { reason: `host ${hostId} fenced itself or was declared failed after this start was requested; not started here`, code: 'fenced' })]);
        }
        return attempt(async () => {
          const status = await hypervisor.start(configOf(partitionId, incarnation, spec));
          if (!leaseHeld()) {
            // Fenced while starting: the fence may have listed the host before this copy existed.
            await hypervisor.turnOff(partitionId, incarnation);
            requireLease('start');
          }
          return fact('PartitionStarted', { memoryAssignedMiB: status.memoryAssignedMiB });
        });
      }
      case 'PartitionStopRequested':
      case 'PartitionTurnOffRequested': {
        // Stopping is always safe: a stale incarnation is a no-op in the hypervisor.
        const graceful = directive.type === 'PartitionStopRequested';
        return attempt(async () => {
          if (graceful) await hypervisor.stop(partitionId, incarnation);
          else await hypervisor.turnOff(partitionId, incarnation);
          return current ? fact('PartitionStopped', { how: graceful ? 'shutdown' : 'turn-off' }) : null;
        });
      }
      case 'PartitionPauseRequested':
        if (!current) return;
        return attempt(async () => {
          await hypervisor.pause(partitionId, incarnation);
          return fact('PartitionPaused');
        });
      case 'PartitionResumeRequested':
        if (!current) return;
        requireLease('resume');
        return attempt(async () => {
          await hypervisor.resume(partitionId, incarnation);
          return fact('PartitionResumed');
        });
      case 'PartitionSaveRequested':
        return attempt(async () => {
          await hypervisor.save(partitionId, incarnation);
          return current ? fact('PartitionSaved') : null;
        });
      case 'PartitionReconfigured': {
        const spec = directive.data.spec;
        if (!current || !spec) return;
        return attempt(async () => {
          const running = (await hypervisor.list()).find((p) => p.partitionId === partitionId && p.incarnation === incarnation);
          if (!running) return null;
          await hypervisor.setProcessor(partitionId, incarnation, spec.processor);
          if (JSON.stringify(running.memory) !== JSON.stringify(spec.memory)) await hypervisor.setMemory(partitionId, incarnation, spec.memory);
          await hypervisor.setWorkload?.(partitionId, spec.workload);
          log.info({ partitionId, incarnation }, 'applied reconfiguration live');
          return null;
        });
      }
      default:
        log.warn({ type: directive.type }, 'unknown directive type; skipped');
    }
  }

  // ---------------------------------------------------------------- reconciliation
  /** Converges the machine to the log; true if it reported differences (the log changed). */
  async function reconcile(desired: Desired): Promise<boolean> {
    const actual: readonly PartitionStatus[] = await hypervisor.list();
    const byId = new Map<string, DesiredPartition>(desired.partitions.map((p) => [p.partitionId, p]));
    const reports: Report[] = [];
    for (const running of actual) {
      const should = byId.get(running.partitionId);
      const belongsHere =
        should !== undefined &&
        ((should.hostId === hostId && should.incarnation === running.incarnation && liveStates.has(should.state)) ||
          // The copy this host activates at a migration's switch-over, not yet committed in the log.
          (should.migrationTargetHostId === hostId && should.incarnation + 1 === running.incarnation));
      if (belongsHere) continue;
      log.warn({ partitionId: running.partitionId, incarnation: running.incarnation, logSays: should?.state ?? 'unknown' }, 'turning off a partition the log does not place here');
      await hypervisor.turnOff(running.partitionId, running.incarnation);
      if (should) {
        reports.push({
          reportId: `reconcile:${bootId}:${running.partitionId}:${running.incarnation}:stopped`,
          partitionId: running.partitionId,
          type: 'PartitionStopped',
          incarnation: running.incarnation,
          directiveEventId: null,
          how: 'reconcile',
        });
      }
    }
    const runningIds = new Set(actual.map((p) => `${p.partitionId}:${p.incarnation}`));
    for (const should of desired.partitions) {
      if (should.hostId !== hostId || runningIds.has(`${should.partitionId}:${should.incarnation}`)) continue;
      if (should.state === 'Starting') continue; // its start directive (re)applies it
      const base = { partitionId: should.partitionId, incarnation: should.incarnation, directiveEventId: null };
      if (should.state === 'Stopping' || should.state === 'Saving') {
        reports.push({ ...base, reportId: `reconcile:${bootId}:${should.partitionId}:${should.incarnation}:stopped`, type: 'PartitionStopped', how: 'reconcile' });
      } else if (liveStates.has(should.state)) {
        reports.push({
          ...base,
          reportId: `reconcile:${bootId}:${should.partitionId}:${should.incarnation}:crashed`,
          type: 'PartitionCrashed',
          reason: `not running on host ${hostId} (boot ${bootId}) at reconciliation: the host restarted or the partition was lost`,
        });
      }
    }
    if (reports.length > 0) log.warn({ count: reports.length }, 'reconciliation found differences; reporting them');
    await report(reports);
    return reports.length > 0;
  }

  // ---------------------------------------------------------------- the directive loop
  let currentStream: AbortController | null = null;
  const loop = (async () => {
    let delayMs = 100;
    let lapsed = false;
    while (!stop.signal.aborted) {
      const streamAbort = new AbortController();
      currentStream = streamAbort;
      const onStop = () => streamAbort.abort();
      stop.signal.addEventListener('abort', onStop, { once: true });
      try {
        let desired = await client.desired();
        // What reconciliation reported (a lost partition is Failed now) must decide which old
        // directives are still current: a replayed start must not revive it.
        if (await reconcile(desired)) desired = await client.desired();
        const messages = await client.directives(checkpoint, streamAbort.signal);
        connected = true;
        delayMs = 100;
        log.info({ checkpoint }, 'directive stream open');
        for await (const message of messages) {
          if (message.kind === 'directive') {
            const directive = message.directive as Directive;
            if (directive.globalPosition <= checkpoint) continue;
            await apply(directive, desired);
            checkpoint = directive.globalPosition;
            checkpoints.write(hostId, checkpoint);
          } else if (message.position > checkpoint) {
            checkpoint = message.position;
            checkpoints.write(hostId, checkpoint);
          }
        }
        if (!stop.signal.aborted) log.warn('directive stream ended; reconnecting');
      } catch (error) {
        if (!stop.signal.aborted) log.warn({ err: error instanceof Error ? error.message : String(error) }, 'directive stream failed; reconnecting');
        lapsed = error instanceof LeaseLapsedError;
      } finally {
        connected = false;
        stop.signal.removeEventListener('abort', onStop);
        streamAbort.abort();
      }
      // Without a lease there is nothing to apply: wait for one instead of reconnecting over and over.
      while (lapsed && !leaseHeld() && !stop.signal.aborted) await sleep(config.heartbeatMs, stop.signal);
      lapsed = false;
      await sleep(delayMs, stop.signal);
      delayMs = Math.min(delayMs * 2, config.retryDelayMsMax);
    }
  })();

  // ---------------------------------------------------------------- heartbeat and observations
  // ---------------------------------------------------------------- lease, self-fencing, watchdog
  // Every successful heartbeat renews the lease and pets the machine's watchdog. Without a renewal
  // for leaseMs − marginMs the daemon turns every partition off (self-fencing); the watchdog, armed
  // for leaseMs, does the same should the daemon itself be dead or hung. By the time the control
  // plane declares the host failed (leaseMs + marginMs of silence), nothing runs here.
  const fenceAfterMs = config.leaseMs - config.marginMs;
  const watchdogMs = config.leaseMs;
  let lastRenewedMs = Date.now();
  let fenced: { turnedOff: string[]; how: 'self-fence' | 'watchdog' | 'machine-down'; reason: string } | null = null;
  let machineDown = false;
  let beating = false;
  let fenceReported = '';
  let fencing = false;
  /** Set when a fence was reported; the next renewal then raises the start barrier. */
  let afterFence = false;
  /**
   * Starts requested at or before this log position are not carried out: the host fenced itself
   * or was declared failed after they were requested (see startedBeforeBarrier).
   */
  let startBarrier = 0;
  /** Set by a renewal that came back; cleared by any fence. Without it the daemon runs nothing new. */
  let leaseAcquired = false;
  /** Counts fences, so a renewal sent before one does not count after it. */
  let fenceEpoch = 0;
  /** Ends this daemon's lease on its side: nothing new runs until a renewal sent after now comes back. */
  function voidLease(): void {
    leaseAcquired = false;
    fenceEpoch += 1;
  }
  async function selfFence(reason: string): Promise<void> {
    voidLease();
    const running = await hypervisor.list().catch(() => [] as PartitionStatus[]);
    const turnedOff: string[] = [];
    for (const p of running) {
      await hypervisor.turnOff(p.partitionId, p.incarnation).catch(() => undefined);
      turnedOff.push(`${p.partitionId}#${p.incarnation}`);
    }
    fenced = { turnedOff: [...(fenced?.turnedOff ?? []), ...turnedOff], how: fenced?.how ?? 'self-fence', reason };
    // Count the next lapse from now: nothing runs, and a renewal already in flight is void.
    lastRenewedMs = Date.now();
    log.error({ turnedOff, reason }, 'SELF-FENCED: lease not renewed; every partition on this host is off');
    // Once a lease is held again, reconnecting reconciles with what the log decided meanwhile.
    currentStream?.abort();
  }
  /**
   * A start requested before the host fenced itself or came back from a failure must not be
   * carried out (unless that very copy runs already): the control plane may have restarted the
   * partition elsewhere meanwhile, and this daemon's view of the log may predate that.
   */
  async function startedBeforeBarrier(position: number, partitionId: string, incarnation: number): Promise<boolean> {
    if (position > startBarrier) return false;
    const runs = (await hypervisor.list()).some((p) => p.partitionId === partitionId && p.incarnation === incarnation);
    return !runs;
  }
  /** Whether this host may run partitions now: this daemon renewed its lease, recently enough, and is not fencing. */
  function leaseHeld(): boolean {
    return leaseAcquired && !fenced && !fencing && !machineDown && Date.now() - lastRenewedMs <= fenceAfterMs;
  }
  /**
   * A host whose lease lapsed starts nothing: the control plane may be restarting its partitions
   * elsewhere. The directive is applied again, checked against the log afresh, once the lease is back.
   */
  function requireLease(what: string): void {
    if (!leaseHeld()) throw new LeaseLapsedError(`not allowed to ${what}: this host does not hold its lease (fenced or not renewed for ${Date.now() - lastRenewedMs} ms)`);
  }
  /** What the machine observed by itself (guest crashes, shut-downs), waiting to be reported. */
  const observedReports: Report[] = [];
  /**
   * Drains the machine's observations: watchdog firings make this host fenced (reported before any
   * new lease, by the heartbeat); the rest queue as reports.
   */
  async function readObservations(): Promise<void> {
    if (!hypervisor.drainObservations) return;
    const all = await hypervisor.drainObservations();
    const byWatchdog = all.filter((o) => o.kind === 'fenced');
    if (byWatchdog.length > 0) {
      voidLease();
      fenced = {
        turnedOff: [...(fenced?.turnedOff ?? []), ...byWatchdog.map((o) => `${o.partitionId}#${o.incarnation}`)],
        how: 'watchdog',
        reason: "the machine's watchdog expired: its daemon had not renewed the lease",
      };
    }
    for (const o of all) {
      if (o.kind === 'fenced') continue;
      observedReports.push({
        reportId: `observed:${bootId}:${o.partitionId}:${o.incarnation}:${o.kind}`,
        partitionId: o.partitionId,
        incarnation: o.incarnation,
        directiveEventId: null,
        ...(o.kind === 'crashed' ? { type: 'PartitionCrashed', reason: o.reason } : { type: 'PartitionStopped', how: 'guest' }),
      });
    }
  }
  function beat(): void {
    // Fencing does not wait for a renewal in flight: a connection that hangs must not delay it.
    if (!machineDown && !fenced && !fencing && Date.now() - lastRenewedMs > fenceAfterMs) {
      fencing = true;
      selfFence(`no lease renewal for ${Date.now() - lastRenewedMs} ms`)
        .catch((error: unknown) => log.error({ err: String(error) }, 'self-fencing failed'))
        .finally(() => {
          fencing = false;
        });
    }
    if (beating || fencing) return;
    beating = true;
    (async () => {
      // A machine that does not answer runs nothing of ours: stop renewing, so the host fails over.
      try {
        await hypervisor.info();
        machineDown = false;
      } catch {
        if (!machineDown) {
          machineDown = true;
          voidLease();
          fenced = { turnedOff: fenced?.turnedOff ?? [], how: 'machine-down', reason: 'the machine does not answer its daemon' };
          log.error('the machine is down; lease renewal stopped');
        }
      }
      // A watchdog that fired while no daemon watched (this one just started, or hung) must be
      // known, and reported, before this daemon takes a lease: the control plane reads a fencing
      // report as "everything on the host is off", which must not reach back past a new lease.
      if (!machineDown) await readObservations();
      if (fenced) {
        // Say what was fenced before taking a new lease, so the log has it in that order.
        const key = JSON.stringify(fenced);
        if (key !== fenceReported) {
          await client.fenced({ bootId, ...fenced });
          fenceReported = key;
          log.warn({ ...fenced }, 'reported the fencing to the control plane');
        }
        if (machineDown) return;
        fenced = null;
        fenceReported = '';
        afterFence = true;
      }
      if (machineDown) return;
      // The lease runs from when the renewal was sent, not from when its answer came: the control
      // plane starts counting on receipt, which is later, so a slow network only makes this host
      // fence itself earlier than the control plane expects, never later.
      const sentAtMs = Date.now();
      const epoch = fenceEpoch;
      const renewal = await client.heartbeat(bootId, checkpoint, { leaseMs: config.leaseMs, renewMs: config.heartbeatMs, marginMs: config.marginMs });
      // Fenced while this renewal was in flight: it renews nothing here (the fence is reported first).
      if (epoch !== fenceEpoch) return;
      if (afterFence || renewal.returned === true) {
        // Back from a fence or a failure: every start requested until now was (or may be) given
        // up by the control plane, which restarts such partitions elsewhere. None is carried out.
        startBarrier = Math.max(startBarrier, renewal.position);
        afterFence = false;
        log.warn({ startBarrier }, 'lease taken after a fence or a failure: starts requested before this position will not be carried out');
      }
      lastRenewedMs = sentAtMs;
      leaseAcquired = true;
      if (hypervisor.armWatchdog) {
        // Re-armed to expire leaseMs after the renewal was sent, for the same reason.
        const remainingMs = Math.round(watchdogMs - (Date.now() - sentAtMs));
        if (remainingMs >= watchdogTimeoutMsMin) {
          await hypervisor.armWatchdog(remainingMs);
        }
      }
    })()
      .catch((error: unknown) => log.debug({ err: String(error) }, 'heartbeat failed'))
      .finally(() => {
        beating = false;
      });
  }
  const heartbeat = setInterval(beat, config.heartbeatMs);
  beat();
  let observing = false;
  const observe = setInterval(() => {
    if (observing) return;
    observing = true;
    (async () => {
      // A machine that rebooted lost what ran on it: reconnecting reconciles against the new boot.
      const now = await hypervisor.info();
      if (now.bootId !== bootId) {
        log.warn({ previousBootId: bootId, bootId: now.bootId }, 'the host restarted; reconciling');
        bootId = now.bootId;
        currentStream?.abort();
      }
      await readObservations();
      await report(observedReports.splice(0));
    })()
      .catch((error: unknown) => log.warn({ err: String(error) }, 'could not read observations'))
      .finally(() => {
        observing = false;
      });
  }, config.observationPollMs);

  // Telemetry: a sample per tick; a send still in flight makes the next sample wait (no pile-up).
  let sampling = false;
  const sample = setInterval(() => {
    if (sampling) return;
    sampling = true;
    (async () => {
      const usage = await hypervisor.usage();
      const { partitions, sampledAtMs, ...host } = usage;
      await client.telemetry({ bootId, sampledAtMs: Math.round(sampledAtMs), host, partitions });
    })()
      .catch((error: unknown) => log.debug({ err: String(error) }, 'telemetry not sent'))
      .finally(() => {
        sampling = false;
      });
  }, config.telemetryMs);

  return {
    checkpoint: () => checkpoint,
    connected: () => connected,
    async close() {
      stop.abort();
      // A clean stop hands the partitions over to the machine: they keep running, and the
      // watchdog fences them only if no daemon comes back within the lease.
      migrations.close();
      clearInterval(heartbeat);
      clearInterval(observe);
      clearInterval(sample);
      await loop;
    },
  };

  function closedHandle(): NodeDaemonHandle {
    return { checkpoint: () => checkpoint, connected: () => false, close: async () => undefined };
  }
}
