/**
 * Runs one seed (or one explicit step list) through the simulated world, checking the invariants
 * after every step, and shrinks a failing list to a short one that still fails.
 */
import type { ControlPlaneCore } from '../../services/control-plane/server.ts';
import { Invariants, type InvariantStats, type Violation } from './invariants.ts';
import { type Action, type GenerateOptions, type Step, describeStep, generateSteps } from './steps.ts';
import { type CommandRecord, World } from './world.ts';

export type SimOptions = GenerateOptions & {
  /** Full from-scratch replay every this many steps (and at the end). */
  readonly fullReplayEvery: number;
  /** Tests only: breaks each control plane the world starts. */
  readonly sabotage?: (core: ControlPlaneCore) => void;
};

export const defaultSimOptions: SimOptions = { steps: 200, hosts: 4, partitions: 10, fullReplayEvery: 50 };

/** Virtual time given to the system after the last step, with every fault healed, to converge. */
export const settleMs = 120_000;

export type RunResult = {
  readonly seed: number;
  readonly steps: number;
  readonly ok: boolean;
  /** The step after which the first violation was seen (steps.length = after settling). */
  readonly failedAt: number | null;
  readonly violations: readonly Violation[];
  readonly stats: InvariantStats;
  readonly virtualMs: number;
  readonly events: number;
  readonly commands: { readonly accepted: number; readonly rejected: number; readonly failed: number };
};

export async function runSteps(seed: number, steps: readonly Step[], options: SimOptions = defaultSimOptions, onEnd?: (world: World) => Promise<void>): Promise<RunResult> {
  const world = new World({ seed, hosts: options.hosts, ...(options.sabotage ? { sabotage: options.sabotage } : {}) });
  const invariants = new Invariants(world);
  const startMs = world.nowMs;
  let violations: Violation[] = [];
  let failedAt: number | null = null;
  try {
    await world.boot();
    for (let index = 0; index < steps.length; index++) {
      const step = steps[index]!;
      retryFailedCommands(world, steps, index, seed);
      apply(world, step.action, index, seed);
      await world.advance(step.advanceMs);
      violations = await invariants.check({ fullReplay: (index + 1) % options.fullReplayEvery === 0 });
      if (violations.length > 0) {
        failedAt = index;
        break;
      }
    }
    if (failedAt === null) {
      // Heal everything and let the system converge: obligations still open must be met now.
      world.healAll();
      for (let elapsed = 0; elapsed < settleMs && violations.length === 0; elapsed += 10_000) {
        await world.advance(10_000);
        violations = await invariants.check({ fullReplay: elapsed + 10_000 >= settleMs });
      }
      if (violations.length > 0) failedAt = steps.length;
    }
    const events = await world.store.headPosition();
    const count = (outcome: CommandRecord['outcome']) => world.commands.filter((c) => c.outcome === outcome).length;
    return {
      seed,
      steps: steps.length,
      ok: violations.length === 0,
      failedAt,
      violations,
      stats: invariants.stats,
      virtualMs: world.nowMs - startMs,
      events,
      commands: { accepted: count('accepted'), rejected: count('rejected'), failed: count('failed') },
    };
  } finally {
    await onEnd?.(world).catch(() => undefined);
    await world.dispose();
  }
}

/** The log as a timeline (virtual seconds since the start), and what each machine runs: for --trace. */
export async function trace(world: World, partitionId: string | null): Promise<string> {
  const lines: string[] = [];
  const startMs = Date.UTC(2026, 0, 1);
  for (const e of await world.store.readAll({ after: 0, limit: 10_000_000 })) {
    const d = e.data as { partitionId?: string };
    if (partitionId !== null && d.partitionId !== partitionId && !e.type.startsWith('Host')) continue;
    if (e.type === 'HostReservationAdjusted') continue;
    lines.push(`${((Date.parse(e.recordedAt) - startMs) / 1000).toFixed(1).padStart(7)} ${String(e.globalPosition).padStart(5)} ${e.type} ${e.actor} ${JSON.stringify(e.data).slice(0, 240)}`);
  }
  for (const [hostId, machine] of world.machines) {
    const running = (await machine.list()).map((p) => `${p.partitionId}#${p.incarnation}:${p.state}`);
    lines.push(`${hostId}: ${machine.poweredOn ? `on (${machine.bootId()})` : 'off'}; runs ${running.join(', ') || 'nothing'}`);
  }
  return lines.join('\n');
}

export function runSeed(seed: number, options: SimOptions = defaultSimOptions): Promise<RunResult> {
  return runSteps(seed, generateSteps(seed, options), options);
}

/**
 * Shrinks a failing step list: drops chunks (halves, quarters, ... single steps) while the run
 * still violates the same invariant, within a budget of runs. The result replays exactly with
 * runSteps(seed, steps).
 */
export async function shrink(seed: number, steps: readonly Step[], invariant: number, options: SimOptions, runsMax = 200): Promise<{ steps: Step[]; runs: number }> {
  let current = [...steps];
  let runs = 0;
  const fails = async (candidate: Step[]) => {
    runs += 1;
    const result = await runSteps(seed, candidate, options);
    return !result.ok && result.violations.some((v) => v.invariant === invariant);
  };
  // A failure before the end needs nothing after the failing step.
  let chunk = Math.max(1, Math.floor(current.length / 2));
  while (chunk >= 1 && runs < runsMax) {
    let removed = false;
    for (let start = 0; start < current.length && runs < runsMax; start += chunk) {
      const candidate = [...current.slice(0, start), ...current.slice(start + chunk)];
      if (candidate.length > 0 && (await fails(candidate))) {
        current = candidate;
        removed = true;
        start -= chunk;
      }
    }
    if (!removed) chunk = Math.floor(chunk / 2);
  }
  return { steps: current, runs };
}

export function formatSteps(steps: readonly Step[]): string {
  return steps.map((s, i) => `  ${describeStep(s, i)}`).join('\n');
}

// ------------------------------------------------------------------ actions

function apply(world: World, action: Action, index: number, seed: number, retryOf: string | null = null) {
  const idSeed = retryOf ?? `sim-${seed}-step-${index}`;
  const record = (kind: Action['kind']): CommandRecord => ({ stepIndex: index, action: kind, idSeed, retry: retryOf !== null, outcome: 'pending', eventIds: [], migrationId: null });
  const send = (run: (core: ControlPlaneCore) => Promise<{ ok: boolean; events?: readonly import('../../services/eventstore/index.ts').RecordedEvent[]; migrationId?: string }>) =>
    world.command(record(action.kind), run);
  const meta = world.meta(idSeed);
  const simple = { stop: 'RequestStop', 'turn-off': 'RequestTurnOff', pause: 'RequestPause', resume: 'RequestResume', save: 'RequestSave', delete: 'DeletePartition' } as const;
  switch (action.kind) {
    case 'create':
      return send((core) =>
        core.service.createPartition(
          action.partitionId,
          action.partitionId,
          {
            vcpus: action.vcpus,
            memory: { mode: 'static', startupMiB: action.memoryMiB },
            ha: { restart: action.restart, priority: action.priority, antiAffinityClass: action.antiAffinityClass, antiAffinityMode: action.hard ? 'hard' : 'soft' },
          },
          meta,
        ),
      );
    case 'start':
      return send((core) => core.service.startPartition(action.partitionId, null, meta));
    case 'stop':
    case 'turn-off':
    case 'pause':
    case 'resume':
    case 'save':
    case 'delete':
      return send((core) => core.service.partitionCommand(action.partitionId, { type: simple[action.kind] } as never, meta));
    case 'reconfigure':
      return send((core) => core.service.reconfigurePartition(action.partitionId, { memory: { startupMiB: action.memoryMiB }, processor: { weight: action.weight } }, meta));
    case 'migrate':
      return send(async (core) => {
        const outcome = await core.migrations.request(
          action.partitionId,
          { targetHostId: action.targetHostId, reason: 'simulation', bandwidthMiBps: null, downtimeMsMax: null, roundsMax: null, autoConverge: null },
          meta,
        );
        return outcome.ok ? { ok: true, migrationId: outcome.value.id } : { ok: false };
      });
    case 'drain':
      return send(async (core) => core.maintenance.start(action.hostId, 'simulation', meta));
    case 'undrain':
      return send(async (core) => core.maintenance.end(action.hostId, meta));
    case 'guest-crash':
      for (const machine of world.machines.values()) machine.crashGuest(action.partitionId);
      world.disturbances.push({ atMs: world.nowMs, kind: 'guest-crash', hostId: null });
      return;
    case 'host-crash':
      world.crashHost(action.hostId);
      if (action.daemonToo) world.crashDaemon(action.hostId);
      return;
    case 'host-return':
      world.returnHost(action.hostId);
      // A host that boots starts its daemon (a no-op if the daemon survived).
      world.startDaemon(action.hostId);
      return;
    case 'daemon-crash':
      return world.crashDaemon(action.hostId);
    case 'daemon-restart':
      return world.startDaemon(action.hostId);
    case 'cp-crash':
      return world.crashControlPlane();
    case 'cp-restart':
      return world.restartControlPlane();
    case 'cut':
      return world.setLink(action.hostId, { cut: true });
    case 'heal':
      return world.setLink(action.hostId, { cut: false });
    case 'slow':
      return world.setLink(action.hostId, { delayMs: action.delayMs });
    case 'duplicate':
      return world.setLink(action.hostId, { duplicate: true });
    case 'normal':
      return world.setLink(action.hostId, { delayMs: 0, duplicate: false });
    case 'store-fail':
      return world.failStoreAppends(action.mode, action.count);
  }
}

/**
 * An operator whose command failed (no answer: the control plane crashed, the store refused)
 * retries it once at the next step, with the same idempotency seed: if the first attempt was
 * written after all, the retry must find it, not write it again (invariant 3 checks).
 */
function retryFailedCommands(world: World, steps: readonly Step[], index: number, seed: number): void {
  const failed = world.commands.filter((c) => c.outcome === 'failed' && c.stepIndex === index - 1 && !c.retry);
  for (const command of failed) apply(world, steps[command.stepIndex]!.action, index, seed, command.idSeed);
}
