/**
 * HA and simulation figures (issue 5), from the deterministic simulation:
 * - host death → every protected partition running elsewhere, for 10, 100 and 1,000 partitions,
 *   in virtual time (exact: lease, margin, restart concurrency and control-plane ticks, not load);
 * - the real time the HA planner and placement need to decide those restarts;
 * - simulation speed (steps per second of the whole system on a virtual clock).
 */
import { measureHostDeath } from '../simulation/ha-bench.ts';
import { defaultSimOptions, runSeed } from '../simulation/run.ts';

export async function benchHaFailover(): Promise<void> {
  console.log('host death (power off, daemon included) → all its protected partitions Running elsewhere; 6 hosts, lease 10 s, margin 2 s, 4 restarts per host at once');
  for (const partitions of [10, 100, 1_000]) {
    const started = performance.now();
    const f = await measureHostDeath(partitions);
    console.log(
      `  ${String(partitions).padStart(5)} partitions: failure declared after ${(f.detectMs / 1000).toFixed(1)} s, all running elsewhere after ${(f.allRunningMs / 1000).toFixed(1)} s (virtual); ` +
        `planning + placement of the ${partitions} restarts ${f.planWallMs.toFixed(2)} ms (real); whole failover simulated in ${f.failoverCpuMs.toFixed(0)} ms CPU; run ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
  }
}

export async function benchSimulation(): Promise<void> {
  const seeds = 20;
  const started = performance.now();
  let steps = 0;
  let virtualMs = 0;
  for (let seed = 1; seed <= seeds; seed++) {
    const r = await runSeed(seed, defaultSimOptions);
    steps += r.steps;
    virtualMs += r.virtualMs;
    if (!r.ok) console.log(`  seed ${seed} FAILED: ${r.violations[0]?.message}`);
  }
  const wallS = (performance.now() - started) / 1000;
  console.log(
    `  ${seeds} seeds × ${defaultSimOptions.steps} steps (${defaultSimOptions.hosts} hosts, invariants checked after every step): ${(steps / wallS).toFixed(0)} steps/s, ` +
      `${(virtualMs / 1000 / wallS).toFixed(0)}× real time (${(virtualMs / 1000).toFixed(0)} s virtual in ${wallS.toFixed(1)} s)`,
  );
}
