import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  computeEntitlements,
  createQuantumScheduler,
  type EntitlementDemand,
  partitionCounters,
  type QuantumScheduler,
  type SchedulerPartition,
} from '../../services/hypervisor/index.ts';

/** A VM as the reference table describes it (hypervisor-models.md §1.1 and §1.9). */
interface VmSpec {
  readonly id: string;
  readonly vcpus: number;
  readonly reservePct?: number;
  readonly limitPct?: number;
  readonly weight?: number;
  /** % of its vCPUs' capacity the guest wants; default busy (100). */
  readonly demandPct?: number;
}

interface Host {
  readonly logicalProcessors: number;
  readonly parentCpuLp?: number;
  readonly capPeriodMs?: number;
}

const quantumMs = 10;

function setUp(host: Host, vms: readonly VmSpec[]): { scheduler: QuantumScheduler; partitions: SchedulerPartition[] } {
  const scheduler = createQuantumScheduler({
    logicalProcessors: host.logicalProcessors,
    parentCpuLp: host.parentCpuLp ?? 0,
    quantumMs,
    capPeriodMs: host.capPeriodMs ?? quantumMs,
  });
  const partitions = vms.map((vm) => {
    const p = scheduler.createPartition(vm.id, vm.vcpus);
    p.weight = vm.weight ?? 100;
    p.reserveShare = (vm.reservePct ?? 0) / 100;
    p.capShare = (vm.limitPct ?? 100) / 100;
    p.demandShare = (vm.demandPct ?? 100) / 100;
    return p;
  });
  return { scheduler, partitions };
}

function run(scheduler: QuantumScheduler, partitions: readonly SchedulerPartition[], quanta: number, fromQuantum = 0): void {
  for (let k = fromQuantum; k < fromQuantum + quanta; k += 1) scheduler.runQuantum(partitions, k * quantumMs);
}

/** §1.9: u = min(L, n, d), f = min(R, u), over capacity C = LPs − parent CPU. */
function entitlements(host: Host, vms: readonly VmSpec[]): Map<string, number> {
  return computeEntitlements(
    host.logicalProcessors - (host.parentCpuLp ?? 0),
    vms.map((vm): EntitlementDemand => {
      const ceilingLp = (Math.min(vm.limitPct ?? 100, vm.demandPct ?? 100) / 100) * vm.vcpus;
      return {
        id: vm.id,
        weight: vm.weight ?? 100,
        floorLp: Math.min(((vm.reservePct ?? 0) / 100) * vm.vcpus, ceilingLp),
        ceilingLp,
      };
    }),
  );
}

/** LPs each partition received on average over the run. */
function measuredLp(partitions: readonly SchedulerPartition[], quanta: number): Map<string, number> {
  return new Map(partitions.map((p) => [p.id, partitionCounters(p).runTimeMs / (quanta * quantumMs)]));
}

const referenceVectors: [string, Host, VmSpec[]][] = [
  [
    'T1: 1 LP, weights 100/200/700 → 0.1/0.2/0.7',
    { logicalProcessors: 1 },
    [
      { id: 'a', vcpus: 1, weight: 100 },
      { id: 'b', vcpus: 1, weight: 200 },
      { id: 'c', vcpus: 1, weight: 700 },
    ],
  ],
  [
    'T2: 4 LP, c limited to 25 % → 1.5/1.5/1.0',
    { logicalProcessors: 4 },
    [
      { id: 'a', vcpus: 4 },
      { id: 'b', vcpus: 4 },
      { id: 'c', vcpus: 4, weight: 200, limitPct: 25 },
    ],
  ],
  [
    'T3: 4 LP, a reserve 50 %, b w400, c demand 0.5 → 1.0/2.5/0.5',
    { logicalProcessors: 4 },
    [
      { id: 'a', vcpus: 2, reservePct: 50 },
      { id: 'b', vcpus: 4, weight: 400 },
      { id: 'c', vcpus: 1, demandPct: 50 },
    ],
  ],
  [
    'T4: 8 LP, undersubscribed → 2/2',
    { logicalProcessors: 8 },
    [
      { id: 'a', vcpus: 2 },
      { id: 'b', vcpus: 2 },
    ],
  ],
  [
    'T5: 2 LP, a reserve 75 % w1, b w10000 → 1.5/0.5 (floor dominates weight)',
    { logicalProcessors: 2 },
    [
      { id: 'a', vcpus: 2, reservePct: 75, weight: 1 },
      { id: 'b', vcpus: 2, weight: 10_000 },
    ],
  ],
  [
    'mixed: 3 LP less 0.5 LP for the parent, partial demands, a reserve, a limit and an idle partition',
    { logicalProcessors: 3, parentCpuLp: 0.5 },
    [
      { id: 'a', vcpus: 1, demandPct: 50 },
      { id: 'b', vcpus: 2, demandPct: 70, weight: 300 },
      { id: 'c', vcpus: 2, limitPct: 30, weight: 50 },
      { id: 'd', vcpus: 1, reservePct: 40, weight: 10 },
      { id: 'idle', vcpus: 4, demandPct: 0, weight: 10_000 },
    ],
  ],
];

describe('quantum scheduler: converges to the water-filling entitlement', () => {
  it.each(referenceVectors)('%s: within 1 % after 1,000 quanta (10 s)', (_name, host, vms) => {
    const quanta = 1000;
    const { scheduler, partitions } = setUp(host, vms);
    run(scheduler, partitions, quanta);
    const expected = entitlements(host, vms);
    for (const [id, lp] of measuredLp(partitions, quanta)) {
      const target = expected.get(id) ?? Number.NaN;
      expect(Math.abs(lp - target)).toBeLessThanOrEqual(0.01 * target + 1e-9);
    }
  });

  it('property: on random hosts, every share is within 1 % of its entitlement (or 0.2 % of the host) after 3,000 quanta', () => {
    fc.assert(
      fc.property(hostArb, ({ host, vms }) => {
        const quanta = 3000;
        const { scheduler, partitions } = setUp(host, vms);
        run(scheduler, partitions, quanta);
        const capacityLp = host.logicalProcessors - (host.parentCpuLp ?? 0);
        const expected = entitlements(host, vms);
        for (const [id, lp] of measuredLp(partitions, quanta)) {
          const target = expected.get(id) ?? Number.NaN;
          expect(Math.abs(lp - target)).toBeLessThanOrEqual(Math.max(0.01 * target, 0.002 * capacityLp));
        }
      }),
      { numRuns: 25 },
    );
  });
});

/** Random hosts whose reserves are admitted (Σ R <= C, §1.1). */
const hostArb = fc
  .record({
    logicalProcessors: fc.integer({ min: 1, max: 8 }),
    parentShare: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 0.9, noNaN: true })),
    vms: fc.array(
      fc.record({
        vcpuShare: fc.double({ min: 0, max: 1, noNaN: true }),
        limitPct: fc.oneof(fc.constant(100), fc.integer({ min: 0, max: 100 })),
        reserveShare: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 1, noNaN: true })),
        weight: fc.oneof(fc.constant(100), fc.integer({ min: 1, max: 10_000 })),
        demandPct: fc.oneof(fc.constant(100), fc.integer({ min: 0, max: 100 })),
      }),
      { minLength: 1, maxLength: 8 },
    ),
  })
  .map(({ logicalProcessors, parentShare, vms }) => {
    const host: Host = { logicalProcessors, parentCpuLp: Math.round(parentShare * 100) / 100 };
    const capacityLp = logicalProcessors - (host.parentCpuLp ?? 0);
    const raw = vms.map((vm, i) => {
      const vcpus = 1 + Math.floor(vm.vcpuShare * (logicalProcessors - 1));
      return { id: `p${i}`, vcpus, limitPct: vm.limitPct, reservePct: Math.round(vm.reserveShare * vm.limitPct), weight: vm.weight, demandPct: vm.demandPct };
    });
    const reserveLp = raw.reduce((sum, vm) => sum + (vm.reservePct / 100) * vm.vcpus, 0);
    const scale = reserveLp > capacityLp ? capacityLp / reserveLp : 1;
    return { host, vms: raw.map((vm) => ({ ...vm, reservePct: Math.floor(vm.reservePct * scale) })) };
  });

describe('quantum scheduler: invariants in every quantum', () => {
  it('never hands out more than the capacity or more than a quantum per vCPU, leaves an LP idle only when nothing can use it, and honours reserves', () => {
    fc.assert(
      fc.property(hostArb, ({ host, vms }) => {
        const { scheduler, partitions } = setUp(host, vms);
        const capacityMs = (host.logicalProcessors - (host.parentCpuLp ?? 0)) * quantumMs;
        for (let k = 0; k < 200; k += 1) {
          scheduler.runQuantum(partitions, k * quantumMs);
          let usedMs = 0;
          for (const p of partitions) {
            for (const vcpu of p.vcpus) {
              const ranMs = vcpu.runThisQuantumMs;
              usedMs += ranMs;
              expect(ranMs).toBeLessThanOrEqual(quantumMs + 1e-9);
              expect(ranMs).toBeLessThanOrEqual(p.capShare * quantumMs + 1e-9);
              // Reserve: it got its reserve, or all the work it had.
              const hadMs = ranMs + vcpu.pendingMs;
              expect(ranMs).toBeGreaterThanOrEqual(Math.min(p.reserveShare * quantumMs, hadMs) - 1e-9);
            }
          }
          expect(usedMs).toBeLessThanOrEqual(capacityMs + 1e-9);
          if (usedMs < capacityMs - 1e-6) {
            // Work-conserving: every vCPU that still has work is at its cap.
            for (const p of partitions) {
              for (const vcpu of p.vcpus) {
                if (vcpu.pendingMs > 1e-9) expect(vcpu.runThisQuantumMs).toBeCloseTo(p.capShare * quantumMs, 9);
              }
            }
          }
        }
      }),
      { numRuns: 40 },
    );
  });

  it('never lets a capped vCPU exceed its cap in any window of one cap period (sliding, on quantum boundaries)', () => {
    fc.assert(
      fc.property(hostArb, fc.integer({ min: 1, max: 6 }), fc.integer({ min: 0, max: 100 }), ({ host, vms }, periodQuanta, throttlePct) => {
        const capPeriodMs = periodQuanta * quantumMs;
        const { scheduler, partitions } = setUp({ ...host, capPeriodMs }, vms);
        const history = partitions.map((p) => p.vcpus.map((): number[] => []));
        for (let k = 0; k < 300; k += 1) {
          // Midway a throttle lowers one partition's cap, as auto-converge would.
          const first = partitions[0];
          if (k === 150 && first) first.capShare = Math.min(first.capShare, 1 - throttlePct / 100);
          scheduler.runQuantum(partitions, k * quantumMs);
          partitions.forEach((p, i) => {
            p.vcpus.forEach((vcpu, j) => {
              history[i]?.[j]?.push(vcpu.runThisQuantumMs);
            });
          });
        }
        partitions.forEach((p, i) => {
          for (const runs of history[i] ?? []) {
            for (let end = periodQuanta; end <= runs.length; end += 1) {
              // Before the throttle the original cap applies; windows reaching past quantum 150 use the lower one
              // only once they start after it (a window straddling the change may hold the old allowance).
              const start = end - periodQuanta;
              if (i === 0 && start < 150 && end > 150) continue;
              const capShare = i === 0 && start < 150 ? (vms[0]?.limitPct ?? 100) / 100 : p.capShare;
              const windowMs = runs.slice(start, end).reduce((sum, ms) => sum + ms, 0);
              expect(windowMs).toBeLessThanOrEqual(capShare * capPeriodMs + 1e-9);
            }
          }
        });
      }),
      { numRuns: 40 },
    );
  });
});

describe('quantum scheduler: wait time and dispatches (hypervisor-models.md §1.4)', () => {
  it('shows no wait on an idle host, and a busy vCPU runs on without new dispatches', () => {
    const { scheduler, partitions } = setUp({ logicalProcessors: 4 }, [
      { id: 'busy', vcpus: 2 },
      { id: 'half', vcpus: 1, demandPct: 50 },
    ]);
    run(scheduler, partitions, 500);
    const [busy, half] = partitions.map(partitionCounters);
    expect(busy).toEqual({ runTimeMs: 10_000, waitTimeMs: 0, dispatches: 2 });
    // Half busy: runs 5 ms of every quantum, a new dispatch each time, never waiting.
    expect(half).toEqual({ runTimeMs: 2500, waitTimeMs: 0, dispatches: 500 });
  });

  it('grows wait time as contention grows: k busy 4-vCPU partitions on 4 LPs wait 1000 × (1 − 1/k) ms/s', () => {
    const waitMsPerS: number[] = [];
    for (let k = 1; k <= 6; k += 1) {
      const vms = Array.from({ length: k }, (_, i) => ({ id: `p${i}`, vcpus: 4 }));
      const { scheduler, partitions } = setUp({ logicalProcessors: 4 }, vms);
      run(scheduler, partitions, 1000);
      const counters = partitions.map(partitionCounters);
      const averageWaitMsPerS = counters.reduce((sum, c) => sum + c.waitTimeMs, 0) / (k * 4) / 10;
      waitMsPerS.push(averageWaitMsPerS);
      expect(averageWaitMsPerS).toBeCloseTo(1000 * (1 - 1 / k), 6);
    }
    for (let i = 1; i < waitMsPerS.length; i += 1) expect(waitMsPerS[i]).toBeGreaterThan(waitMsPerS[i - 1] ?? 0);
  });

  it('matches the §1.4 cross-check: k busy vCPUs sharing one LP wait (k − 1) quanta per dispatch', () => {
    for (let k = 1; k <= 5; k += 1) {
      const vms = Array.from({ length: k }, (_, i) => ({ id: `p${i}`, vcpus: 1 }));
      const { scheduler, partitions } = setUp({ logicalProcessors: 1 }, vms);
      run(scheduler, partitions, 100 * k);
      for (const p of partitions) {
        const { waitTimeMs, dispatches } = partitionCounters(p);
        if (k === 1) expect(dispatches).toBe(1);
        else expect(waitTimeMs / dispatches).toBeCloseTo((k - 1) * quantumMs, 6);
      }
    }
  });

  it('counts a capped vCPU’s parked time as wait', () => {
    const { scheduler, partitions } = setUp({ logicalProcessors: 2 }, [{ id: 'capped', vcpus: 1, limitPct: 30 }]);
    run(scheduler, partitions, 100);
    expect(partitionCounters(partitions[0] as SchedulerPartition)).toEqual({ runTimeMs: 300, waitTimeMs: 700, dispatches: 100 });
  });
});

describe('quantum scheduler: bounded idle credit, round robin, determinism', () => {
  it('gives a partition waking from a long idle spell at most a quantum of its vCPUs ahead, then its fair share', () => {
    const { scheduler, partitions } = setUp({ logicalProcessors: 2 }, [
      { id: 'a', vcpus: 2 },
      { id: 'b', vcpus: 2, demandPct: 0 },
    ]);
    const [a, b] = partitions as [SchedulerPartition, SchedulerPartition];
    run(scheduler, partitions, 1000);
    b.demandShare = 1;
    const before = { a: partitionCounters(a).runTimeMs, b: partitionCounters(b).runTimeMs };
    run(scheduler, partitions, 2, 1000);
    // Two quanta: without a bound b would take both LPs for both (it banked 10 s of credit).
    expect(partitionCounters(b).runTimeMs - before.b).toBeLessThanOrEqual(30 + 1e-9);
    run(scheduler, partitions, 98, 1002);
    // Then an even split: over 100 quanta b is ahead by at most its one quantum of credit (2 vCPUs × 10 ms).
    expect(partitionCounters(a).runTimeMs - before.a).toBeGreaterThanOrEqual(1000 - 20);
    expect(partitionCounters(b).runTimeMs - before.b).toBeLessThanOrEqual(1000 + 20);
  });

  it('shares a partition’s time evenly among its vCPUs', () => {
    const { scheduler, partitions } = setUp({ logicalProcessors: 2 }, [
      { id: 'a', vcpus: 2 },
      { id: 'b', vcpus: 2, weight: 300 },
    ]);
    run(scheduler, partitions, 1000);
    for (const p of partitions) {
      const [first, second] = p.vcpus;
      expect(Math.abs((first?.runTimeMs ?? 0) - (second?.runTimeMs ?? 0))).toBeLessThanOrEqual(quantumMs);
    }
  });

  it('gives identical counters for identical inputs', () => {
    const once = (): unknown => {
      const { scheduler, partitions } = setUp({ logicalProcessors: 3, parentCpuLp: 0.25 }, referenceVectors[5]?.[2] ?? []);
      run(scheduler, partitions, 777);
      return partitions.map((p) => ({ vtime: p.vtime, vcpus: p.vcpus.map((v) => [v.runTimeMs, v.waitTimeMs, v.dispatches]) }));
    };
    expect(once()).toEqual(once());
  });

  it('refuses impossible options', () => {
    const base = { logicalProcessors: 2, parentCpuLp: 0, quantumMs: 10, capPeriodMs: 10 };
    expect(() => createQuantumScheduler({ ...base, parentCpuLp: 2 })).toThrow(/parentCpuLp/);
    expect(() => createQuantumScheduler({ ...base, capPeriodMs: 15 })).toThrow(/capPeriodMs/);
    expect(() => createQuantumScheduler({ ...base, quantumMs: 0 })).toThrow(/quantumMs/);
    expect(() => createQuantumScheduler({ ...base, logicalProcessors: 0 })).toThrow(/logicalProcessors/);
  });
});
