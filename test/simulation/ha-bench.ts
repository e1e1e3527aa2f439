/**
 * HA figures from the deterministic simulation (npm run bench -- ha): a host running N protected
 * partitions dies (power off); how long, in virtual time, until every one of them runs elsewhere,
 * and how much real CPU time the HA manager spent deciding and placing those restarts. Virtual
 * time makes the first figure exact and repeatable: it is what the lease, the margin, the restart
 * concurrency limit and the control plane's ticks add up to, not what this machine's load allows.
 */
import { performance } from 'node:perf_hooks';
import { addToTotals, emptyTotals } from '../../services/domain/capacity.ts';
import { hostLimitPresets } from '../../services/domain/limits.ts';
import { type PlacementCandidate, place } from '../../services/domain/placement.ts';
import { type HaCandidate, defaultHaConfig, planRestarts } from '../../services/ha/planner.ts';
import { World } from './world.ts';

export type HostDeathFigures = {
  readonly partitions: number;
  /** Virtual ms from the power failure to HostFailed. */
  readonly detectMs: number;
  /** Virtual ms from the power failure to the last restarted partition reported Running. */
  readonly allRunningMs: number;
  /** Real CPU ms the whole simulated system (control plane, daemons, machines) spent from the failure to the end. */
  readonly failoverCpuMs: number;
  /** Real ms the HA planner and placement need to decide all N restarts in one pass (pure code, no I/O). */
  readonly planWallMs: number;
};

const big = { logicalProcessors: 256, memoryMiB: 1_048_576, parentReserveMiB: 4_096 };

export async function measureHostDeath(partitions: number, hosts = 6): Promise<HostDeathFigures> {
  const world = new World({ seed: partitions, hosts, machine: big });
  try {
    await world.boot();
    const core = world.core!;
    const meta = (id: string) => world.meta(`bench-${id}`);
    // Every partition starts on h1, with mixed priorities.
    for (let i = 0; i < partitions; i++) {
      const id = `p${i}`;
      const priority = [1000, 2000, 3000][i % 3]!;
      void core.service
        .createPartition(id, id, { vcpus: 1, memory: { mode: 'static', startupMiB: 256 }, ha: { restart: 'any-host', priority } }, meta(`${id}-create`))
        .then(() => core.service.startPartition(id, 'h1', meta(`${id}-start`)));
      if (i % 50 === 49) await world.advance(100);
    }
    for (let waited = 0; core.service.partitions({ hostId: 'h1', state: 'Running' }).length < partitions; waited += 1_000) {
      if (waited > 600_000) throw new Error('partitions did not all start on h1');
      await world.advance(1_000);
    }
    await world.advance(2_000);
    const cpuBefore = process.cpuUsage();
    const diedAtMs = world.nowMs;
    // A power failure: the machine and the daemon running on it die together.
    world.crashHost('h1');
    world.crashDaemon('h1');
    let detectMs = -1;
    const stepMs = 100;
    for (let elapsed = 0; ; elapsed += stepMs) {
      await world.advance(stepMs);
      const h1 = core.service.host('h1');
      if (detectMs < 0 && h1 && (h1.state === 'Failed' || h1.state === 'Fenced')) detectMs = world.nowMs - diedAtMs;
      const elsewhere = core.service.partitions({ state: 'Running' }).filter((p) => p.hostId !== 'h1').length;
      if (elsewhere === partitions) break;
      if (elapsed > 30 * 60_000) throw new Error(`after 30 virtual minutes only ${elsewhere} of ${partitions} run elsewhere`);
    }
    const cpu = process.cpuUsage(cpuBefore);
    return { partitions, detectMs, allRunningMs: world.nowMs - diedAtMs, failoverCpuMs: (cpu.user + cpu.system) / 1000, planWallMs: timePlanning(partitions, hosts - 1) };
  } finally {
    await world.dispose();
  }
}

/**
 * What one HA pass computes for N partitions lost with one host: the planner's decisions (policy,
 * backoff, counters, priority order) and a placement for each restart over the surviving hosts,
 * each placement seeing the reservations of the ones before it. Best of 5 runs.
 */
export function timePlanning(partitions: number, hosts: number): number {
  const nowMs = Date.UTC(2026, 0, 1);
  const candidates: HaCandidate[] = Array.from({ length: partitions }, (_, i) => ({
    partitionId: `p${i}`,
    restart: 'any-host',
    priority: [1000, 2000, 3000][i % 3]!,
    record: {
      failure: { kind: 'host-lost', atMs: nowMs - 1_000, eventId: `lost-${i}`, hostId: 'h0' },
      restartTimesMs: [],
      consecutiveRestarts: 0,
      runningSinceMs: null,
      plan: null,
      gaveUpCauseId: null,
      unplaceableCauseId: null,
    },
  }));
  let best = Number.POSITIVE_INFINITY;
  for (let run = 0; run < 5; run++) {
    const started = performance.now();
    const limits = hostLimitPresets.modern;
    const survivors: PlacementCandidate[] = Array.from({ length: hosts }, (_, i) => ({ hostId: `h${i + 1}`, ...big, limits, reserved: emptyTotals, cordoned: false, daemonConnected: true, antiAffinityClasses: [] }));
    // The planner leaves restarts for a later pass once the per-host limit is reached; a pass plans
    // again with the earlier ones counted, so every restart is decided as the passes would.
    for (const decision of planRestarts(candidates, () => true, nowMs, { ...defaultHaConfig, restartsPerHostMax: partitions })) {
      if (decision.kind !== 'restart') continue;
      const request = { vcpus: 1, reserveLpPct: 0, memoryMiB: 256, excludeHostIds: ['h0'], requiredHostId: null };
      const chosen = place(survivors, request).chosenHostId;
      const index = survivors.findIndex((h) => h.hostId === chosen);
      if (index >= 0) survivors[index] = { ...survivors[index]!, reserved: addToTotals(survivors[index]!.reserved, request) };
    }
    best = Math.min(best, performance.now() - started);
  }
  return best;
}
