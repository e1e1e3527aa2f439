/**
 * Simulated hypervisor benchmarks (issue "A faithful simulated hypervisor"):
 *  - benchEntitlement: time per weighted water-filling computation (computeEntitlements) for 1,000
 *    partitions on a 1,024-LP host and 384 partitions on a 64-LP host, beside a bisection solver on λ
 *    over the same inputs (the other method hypervisor-models.md §1.9 names) as the baseline;
 *  - benchScheduler: simulated seconds per wall second of the quantum scheduler on a 64-LP host
 *    running 512 vCPUs (128 partitions × 4 vCPUs, the Hyper-V R2 limits), through the whole sim
 *    (workload patterns, scheduler, memory balancer), beside the scheduler alone as the baseline.
 * Seeded inputs, so every run measures the same work. Figures are printed, not asserted.
 */
import {
  computeEntitlements,
  createQuantumScheduler,
  createSeededRandom,
  createSimHypervisor,
  type EntitlementDemand,
  type PartitionConfig,
  type SeededRandom,
  type WorkloadProfile,
} from '../../services/hypervisor/index.ts';

/** Wall time spent measuring each figure (after a warm-up of a fifth of it). */
const measureMsPerFigure = 2000;

export interface EntitlementBenchResult {
  readonly name: string;
  readonly partitions: number;
  readonly logicalProcessors: number;
  /** Mean time of one computeEntitlements call. */
  readonly usPerComputation: number;
  /** Mean time of one bisection solve (60 halvings of λ) over the same demands. */
  readonly baselineUsPerComputation: number;
  /** baseline ÷ computeEntitlements. */
  readonly speedupOverBaseline: number;
  /** Largest difference between the two, LP (they must agree). */
  readonly maxDifferenceLp: number;
}

export interface SchedulerBenchResult {
  readonly name: string;
  readonly logicalProcessors: number;
  readonly vcpus: number;
  readonly quantumMs: number;
  /** Simulated seconds per wall second through the whole sim (tick of 1 s). */
  readonly simulatedSPerWallS: number;
  /** The same for the scheduler alone (constant demands, no workloads or memory). */
  readonly schedulerOnlySimulatedSPerWallS: number;
  /** Wall time per 1 s tick, ms. */
  readonly wallMsPerTick: number;
}

/** Demands of a busy, mixed host whose reserves fit its capacity (admission, §1.1). */
function entitlementDemands(random: SeededRandom, partitions: number, capacityLp: number, vcpusMax: number): EntitlementDemand[] {
  const raw = Array.from({ length: partitions }, (_, i) => {
    const vcpus = 1 + Math.floor(random.nextFloat() * vcpusMax);
    const limitPct = random.nextFloat() < 0.2 ? 10 + Math.floor(random.nextFloat() * 90) : 100;
    const reservePct = random.nextFloat() < 0.2 ? Math.floor(random.nextFloat() * limitPct) : 0;
    const demandPct = random.nextFloat() < 0.1 ? 0 : Math.floor(random.nextFloat() * 101);
    const weight = random.nextFloat() < 0.5 ? 100 : 1 + Math.floor(random.nextFloat() * 10_000);
    const ceilingLp = (Math.min(limitPct, demandPct) / 100) * vcpus;
    return { id: `p${i}`, weight, floorLp: Math.min((reservePct / 100) * vcpus, ceilingLp), ceilingLp };
  });
  const floorSumLp = raw.reduce((sum, d) => sum + d.floorLp, 0);
  const scale = floorSumLp > 0.9 * capacityLp ? (0.9 * capacityLp) / floorSumLp : 1;
  return raw.map((d) => ({ ...d, floorLp: d.floorLp * scale }));
}

/** The baseline: bisection on λ for Σ clamp(λ·w, f, u) = C (monotone in λ), 60 halvings. */
function bisectEntitlements(capacityLp: number, demands: readonly EntitlementDemand[]): Map<string, number> {
  const result = new Map<string, number>();
  const share = (lambda: number, d: EntitlementDemand): number => Math.min(d.ceilingLp, Math.max(d.floorLp, lambda * d.weight));
  const total = (lambda: number): number => demands.reduce((sum, d) => sum + share(lambda, d), 0);
  if (demands.reduce((sum, d) => sum + d.ceilingLp, 0) <= capacityLp) {
    for (const d of demands) result.set(d.id, d.ceilingLp);
    return result;
  }
  let low = 0;
  let high = Math.max(...demands.map((d) => d.ceilingLp / d.weight));
  for (let i = 0; i < 60; i += 1) {
    const middle = (low + high) / 2;
    if (total(middle) < capacityLp) low = middle;
    else high = middle;
  }
  for (const d of demands) result.set(d.id, share(high, d));
  return result;
}

/** Mean ms per call of fn over about measureMs of wall time, after a warm-up. */
function timePerCall(fn: () => void, measureMs: number): number {
  const warmUpUntil = performance.now() + measureMs / 5;
  while (performance.now() < warmUpUntil) fn();
  let calls = 0;
  const started = performance.now();
  let elapsedMs = 0;
  while (elapsedMs < measureMs) {
    for (let i = 0; i < 10; i += 1) fn();
    calls += 10;
    elapsedMs = performance.now() - started;
  }
  return elapsedMs / calls;
}

export async function benchEntitlement(): Promise<EntitlementBenchResult[]> {
  const scenarios = [
    { name: '1,000 partitions on 1,024 LPs', partitions: 1000, logicalProcessors: 1024, vcpusMax: 4 },
    { name: '384 partitions on 64 LPs (R2)', partitions: 384, logicalProcessors: 64, vcpusMax: 4 },
  ];
  const results: EntitlementBenchResult[] = [];
  for (const scenario of scenarios) {
    const random = createSeededRandom(20_240_601);
    // Half the LPs for partitions (the rest busy elsewhere): contended, Σ ceilings > capacity > Σ floors.
    const capacityLp = scenario.logicalProcessors / 2;
    const demands = entitlementDemands(random, scenario.partitions, capacityLp, scenario.vcpusMax);
    const exact = computeEntitlements(capacityLp, demands);
    const bisected = bisectEntitlements(capacityLp, demands);
    let maxDifferenceLp = 0;
    for (const d of demands) maxDifferenceLp = Math.max(maxDifferenceLp, Math.abs((exact.get(d.id) ?? 0) - (bisected.get(d.id) ?? 0)));
    const msPerComputation = timePerCall(() => computeEntitlements(capacityLp, demands), measureMsPerFigure);
    const baselineMsPerComputation = timePerCall(() => bisectEntitlements(capacityLp, demands), measureMsPerFigure);
    const result: EntitlementBenchResult = {
      name: scenario.name,
      partitions: scenario.partitions,
      logicalProcessors: scenario.logicalProcessors,
      usPerComputation: msPerComputation * 1000,
      baselineUsPerComputation: baselineMsPerComputation * 1000,
      speedupOverBaseline: baselineMsPerComputation / msPerComputation,
      maxDifferenceLp,
    };
    results.push(result);
    console.log(
      `entitlement, ${result.name}: ${result.usPerComputation.toFixed(1)} µs per computation ` +
        `(bisection baseline ${result.baselineUsPerComputation.toFixed(1)} µs, ${result.speedupOverBaseline.toFixed(1)}× faster; ` +
        `results agree within ${result.maxDifferenceLp.toExponential(1)} LP)`,
    );
  }
  return results;
}

/** 128 partitions × 4 vCPUs: a third constant, a third periodic, a third bursty; mixed settings. */
function r2HostPartitions(random: SeededRandom): PartitionConfig[] {
  const patterns: WorkloadProfile['cpuPattern'][] = ['constant', 'periodic', 'bursty'];
  return Array.from({ length: 128 }, (_, i): PartitionConfig => {
    const limitPct = random.nextFloat() < 0.2 ? 50 : 100;
    return {
      partitionId: `vm-${String(i).padStart(3, '0')}`,
      incarnation: 1,
      vcpus: 4,
      processor: {
        reservePct: random.nextFloat() < 0.2 ? 10 : 0,
        limitPct,
        weight: random.nextFloat() < 0.5 ? 100 : 1 + Math.floor(random.nextFloat() * 1000),
      },
      memory: { mode: 'dynamic', startupMiB: 1024, minMiB: 512, maxMiB: 4096, bufferPct: 20, weight: 5000 },
      workload: {
        cpuDemandPct: 20 + Math.floor(random.nextFloat() * 81),
        cpuPattern: patterns[i % 3] ?? 'constant',
        cpuLowPct: Math.floor(random.nextFloat() * 20),
        cpuPeriodMs: 200 + Math.floor(random.nextFloat() * 2000),
        cpuDutyPct: 20 + Math.floor(random.nextFloat() * 60),
        memoryDemandMiB: 512 + Math.floor(random.nextFloat() * 2048),
        dirtyMiBps: 0,
        workingSetMiB: null,
      },
    };
  });
}

export async function benchScheduler(): Promise<SchedulerBenchResult> {
  const logicalProcessors = 64;
  const random = createSeededRandom(7);
  const configs = r2HostPartitions(random);
  let nowMs = 0;
  const sim = createSimHypervisor({
    hostId: 'bench',
    logicalProcessors,
    memoryMiB: 512 * 1024,
    parentReserveMiB: 4096,
    clock: { nowMs: () => nowMs },
    random,
    bootId: 'bench',
    limitsPreset: 'r2',
  });
  for (const config of configs) await sim.start(config);
  const tick = (): void => {
    nowMs += 1000;
    sim.tick(1000);
  };
  const wallMsPerTick = timePerCall(tick, 2 * measureMsPerFigure);
  const usage = await sim.usage();

  // Baseline: the scheduler alone on the same host, every partition at its nominal constant demand.
  const scheduler = createQuantumScheduler({ logicalProcessors, parentCpuLp: 0, quantumMs: 10, capPeriodMs: 10 });
  const partitions = configs.map((config) => {
    const p = scheduler.createPartition(config.partitionId, config.vcpus);
    p.weight = config.processor.weight;
    p.reserveShare = config.processor.reservePct / 100;
    p.capShare = config.processor.limitPct / 100;
    p.demandShare = (config.workload?.cpuDemandPct ?? 100) / 100;
    return p;
  });
  let quantum = 0;
  const schedulerMsPerSecond = timePerCall(
    () => {
      for (let i = 0; i < 100; i += 1) {
        scheduler.runQuantum(partitions, quantum * 10);
        quantum += 1;
      }
    },
    measureMsPerFigure,
  );

  const result: SchedulerBenchResult = {
    name: '64 LPs, 512 vCPUs (128 × 4, R2 limits), 10 ms quanta',
    logicalProcessors,
    vcpus: configs.reduce((sum, c) => sum + c.vcpus, 0),
    quantumMs: 10,
    simulatedSPerWallS: 1000 / wallMsPerTick,
    schedulerOnlySimulatedSPerWallS: 1000 / schedulerMsPerSecond,
    wallMsPerTick,
  };
  console.log(
    `scheduler, ${result.name}: ${result.simulatedSPerWallS.toFixed(1)} simulated s per wall s through the sim ` +
      `(${result.wallMsPerTick.toFixed(2)} ms per 1 s tick: workloads, ${(100).toFixed(0)} quanta, memory balancer); ` +
      `scheduler alone ${result.schedulerOnlySimulatedSPerWallS.toFixed(1)} s/s ` +
      `(the sim keeps ${((100 * result.simulatedSPerWallS) / result.schedulerOnlySimulatedSPerWallS).toFixed(0)} % of it); ` +
      `host busy ${usage.cpuUsedLp.toFixed(1)} of ${logicalProcessors} LPs`,
  );
  return result;
}
