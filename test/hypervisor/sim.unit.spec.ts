import { rejection } from './fixtures/rejection.ts';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type BalancerInput,
  createSeededRandom,
  createSimHypervisor,
  type HostUsage,
  HypervisorError,
  type MemorySettings,
  memoryNeedMiB,
  memoryTargetMiB,
  observationCountMax,
  type PartitionAccounting,
  type PartitionConfig,
  type SimHypervisor,
  type SimHypervisorOptions,
} from '../../services/hypervisor/index.ts';
import { profile } from './fixtures/profile.ts';

function fakeClock(startMs = 1_000_000): { nowMs(): number; advance(ms: number): void } {
  let nowMs = startMs;
  return {
    nowMs: () => nowMs,
    advance: (ms: number) => {
      nowMs += ms;
    },
  };
}

function makeSim(overrides: Partial<SimHypervisorOptions> = {}) {
  const clock = fakeClock();
  const sim = createSimHypervisor({
    hostId: 'host-1',
    logicalProcessors: 4,
    memoryMiB: 8192,
    parentReserveMiB: 1024,
    clock,
    random: createSeededRandom(1),
    bootId: 'boot-1',
    ...overrides,
  });
  return { sim, clock };
}

function config(partitionId: string, overrides: Partial<PartitionConfig> = {}): PartitionConfig {
  return {
    partitionId,
    incarnation: 1,
    vcpus: 2,
    processor: { reservePct: 0, limitPct: 100, weight: 100 },
    memory: { mode: 'static', startupMiB: 1024 },
    workload: null,
    ...overrides,
  };
}

const dynamic = (overrides: Partial<Extract<MemorySettings, { mode: 'dynamic' }>> = {}): MemorySettings => ({
  mode: 'dynamic',
  startupMiB: 1024,
  minMiB: 512,
  maxMiB: 4096,
  bufferPct: 20,
  weight: 5000,
  ...overrides,
});


function rejectionSync(action: () => void): HypervisorError {
  try {
    action();
  } catch (error) {
    if (error instanceof HypervisorError) return error;
    throw error;
  }
  throw new Error('expected a HypervisorError, got success');
}

function expectCloseAll(actual: readonly number[], expected: readonly number[], tolerance: number): void {
  expect(actual).toHaveLength(expected.length);
  actual.forEach((value, i) => {
    expect(Math.abs(value - (expected[i] ?? Number.NaN))).toBeLessThanOrEqual(tolerance);
  });
}

async function ids(sim: SimHypervisor): Promise<string[]> {
  return (await sim.list()).map((p) => `${p.partitionId}#${p.incarnation}:${p.state}`);
}

describe('sim hypervisor: lifecycle', () => {
  it('starts a partition, reporting it Running with its startup memory and start time', async () => {
    const { sim, clock } = makeSim();
    const status = await sim.start(config('a'));
    expect(status).toEqual({
      partitionId: 'a',
      incarnation: 1,
      state: 'Running',
      vcpus: 2,
      processor: { reservePct: 0, limitPct: 100, weight: 100 },
      memory: { mode: 'static', startupMiB: 1024 },
      memoryAssignedMiB: 1024,
      startedAtMs: clock.nowMs(),
    });
    expect(await sim.list()).toEqual([status]);
    expect(await sim.info()).toEqual({
      hostId: 'host-1',
      logicalProcessors: 4,
      memoryMiB: 8192,
      parentReserveMiB: 1024,
      bootId: 'boot-1',
    });
  });

  it('returns the same status for a repeated start of the running incarnation and changes nothing', async () => {
    const { sim, clock } = makeSim();
    const first = await sim.start(config('a'));
    clock.advance(5000);
    const again = await sim.start(config('a', { vcpus: 4, memory: { mode: 'static', startupMiB: 2048 } }));
    expect(again).toEqual(first);
    expect((await sim.usage()).memoryCommittedMiB).toBe(1024);
  });

  it('turns the older incarnation off before starting a newer one', async () => {
    const { sim, clock } = makeSim();
    await sim.start(config('a', { incarnation: 1 }));
    clock.advance(1000);
    const second = await sim.start(config('a', { incarnation: 2 }));
    expect(second.startedAtMs).toBe(clock.nowMs());
    expect(await ids(sim)).toEqual(['a#2:Running']);
    expect((await sim.usage()).memoryCommittedMiB).toBe(1024);
  });

  it('refuses to start an incarnation older than the one running, leaving the newer one alone', async () => {
    const { sim } = makeSim();
    await sim.start(config('a', { incarnation: 5 }));
    const error = await rejection(sim.start(config('a', { incarnation: 4 })));
    expect(error.code).toBe('invalid-state');
    expect(error.message).toContain('newer incarnation 5');
    expect(await ids(sim)).toEqual(['a#5:Running']);
  });

  it('stops and turns off idempotently, and ignores stale incarnations', async () => {
    const { sim } = makeSim();
    await sim.start(config('a', { incarnation: 3 }));
    await sim.start(config('b'));
    await sim.stop('a', 2);
    await sim.turnOff('a', 4);
    expect(await ids(sim)).toEqual(['a#3:Running', 'b#1:Running']);
    await sim.stop('a', 3);
    await sim.stop('a', 3);
    await sim.turnOff('b', 1);
    await sim.turnOff('b', 1);
    await sim.turnOff('never-started', 1);
    expect(await sim.list()).toEqual([]);
    expect((await sim.usage()).memoryCommittedMiB).toBe(0);
  });

  it('pauses and resumes idempotently', async () => {
    const { sim } = makeSim();
    await sim.start(config('a'));
    expect((await sim.pause('a', 1)).state).toBe('Paused');
    expect((await sim.pause('a', 1)).state).toBe('Paused');
    expect(await ids(sim)).toEqual(['a#1:Paused']);
    expect((await sim.resume('a', 1)).state).toBe('Running');
    expect((await sim.resume('a', 1)).state).toBe('Running');
  });

  it.each([
    ['pause', (sim: SimHypervisor, incarnation: number) => sim.pause('a', incarnation)],
    ['resume', (sim: SimHypervisor, incarnation: number) => sim.resume('a', incarnation)],
    ['save', (sim: SimHypervisor, incarnation: number) => sim.save('a', incarnation)],
    [
      'set the processor of',
      (sim: SimHypervisor, incarnation: number) => sim.setProcessor('a', incarnation, { reservePct: 0, limitPct: 50, weight: 1 }),
    ],
    [
      'set the memory of',
      (sim: SimHypervisor, incarnation: number) => sim.setMemory('a', incarnation, { mode: 'static', startupMiB: 512 }),
    ],
  ] as const)('refuses to %s a partition that does not run, or another incarnation', async (action, call) => {
    const { sim } = makeSim();
    const absent = await rejection(call(sim, 1));
    expect(absent.code).toBe('not-found');
    expect(absent.message).toBe(`cannot ${action} a: it does not run on host host-1`);
    await sim.start(config('a', { incarnation: 2 }));
    const stale = await rejection(call(sim, 1));
    expect(stale.code).toBe('not-found');
    expect(stale.message).toBe(`cannot ${action} a incarnation 1: host host-1 runs incarnation 2`);
    expect(await ids(sim)).toEqual(['a#2:Running']);
  });

  it('saves a partition off the host and restores the same incarnation with its start time and memory', async () => {
    const { sim, clock } = makeSim();
    await sim.start(config('a', { memory: dynamic(), workload: profile({ cpuDemandPct: 50, memoryDemandMiB: 2000, dirtyMiBps: 0 }) }));
    sim.tick(1000);
    const before = (await sim.list())[0];
    // 2000 MiB committed × 1.2 = 2400 MiB.
    expect(before?.memoryAssignedMiB).toBe(2400);
    await sim.save('a', 1);
    await sim.save('a', 1);
    expect(await sim.list()).toEqual([]);
    expect((await sim.usage()).memoryCommittedMiB).toBe(0);
    clock.advance(10_000);
    const restored = await sim.start(config('a', { memory: dynamic() }));
    expect(restored.startedAtMs).toBe(before?.startedAtMs);
    expect(restored.memoryAssignedMiB).toBe(2400);
  });

  it('discards saved state on turn-off, so the next start is a fresh boot', async () => {
    const { sim, clock } = makeSim();
    const first = await sim.start(config('a'));
    await sim.save('a', 1);
    await sim.turnOff('a', 1);
    clock.advance(1000);
    const fresh = await sim.start(config('a'));
    expect(fresh.startedAtMs).toBe(first.startedAtMs + 1000);
  });

  it('refuses to start an incarnation older than a saved one', async () => {
    const { sim } = makeSim();
    await sim.start(config('a', { incarnation: 2 }));
    await sim.save('a', 2);
    expect((await rejection(sim.start(config('a', { incarnation: 1 })))).code).toBe('invalid-state');
  });
});

describe('sim hypervisor: configuration checks', () => {
  const cases: [string, Partial<PartitionConfig>, RegExp][] = [
    ['zero vCPUs', { vcpus: 0 }, /vcpus/],
    ['more vCPUs than LPs', { vcpus: 5 }, /vcpus must be an integer from 1 to the host's 4/],
    ['fractional vCPUs', { vcpus: 1.5 }, /vcpus/],
    ['limit below reserve', { processor: { reservePct: 50, limitPct: 40, weight: 100 } }, /limitPct/],
    ['reserve above 100', { processor: { reservePct: 101, limitPct: 100, weight: 100 } }, /reservePct/],
    ['weight 0', { processor: { reservePct: 0, limitPct: 100, weight: 0 } }, /processor.weight/],
    ['weight above 10000', { processor: { reservePct: 0, limitPct: 100, weight: 10_001 } }, /processor.weight/],
    ['zero startup memory', { memory: { mode: 'static', startupMiB: 0 } }, /startupMiB/],
    ['min above startup', { memory: dynamic({ minMiB: 2048 }) }, /minMiB <= startupMiB <= maxMiB/],
    ['max below startup', { memory: dynamic({ maxMiB: 512 }) }, /minMiB <= startupMiB <= maxMiB/],
    ['buffer below 5 %', { memory: dynamic({ bufferPct: 4 }) }, /bufferPct/],
    ['memory weight above 10000', { memory: dynamic({ weight: 10_001 }) }, /memory.weight/],
    ['CPU demand above 100 %', { workload: profile({ cpuDemandPct: 101, memoryDemandMiB: 0, dirtyMiBps: 0 }) }, /cpuDemandPct/],
    ['negative memory demand', { workload: profile({ cpuDemandPct: 1, memoryDemandMiB: -1, dirtyMiBps: 0 }) }, /memoryDemandMiB/],
    ['empty id', { partitionId: '' }, /partitionId/],
    ['negative incarnation', { incarnation: -1 }, /incarnation/],
  ];
  it.each(cases)('refuses %s with invalid-config', async (_name, overrides, message) => {
    const { sim } = makeSim();
    const error = await rejection(sim.start(config('a', overrides)));
    expect(error.code).toBe('invalid-config');
    expect(error.message).toMatch(message);
    expect(await sim.list()).toEqual([]);
  });

  it('checks processor changes too', async () => {
    const { sim } = makeSim();
    await sim.start(config('a'));
    const error = await rejection(sim.setProcessor('a', 1, { reservePct: 60, limitPct: 50, weight: 100 }));
    expect(error.code).toBe('invalid-config');
  });

  it('refuses impossible host options', () => {
    expect(() => makeSim({ parentReserveMiB: 8192 })).toThrow(RangeError);
    expect(() => makeSim({ logicalProcessors: 0 })).toThrow(RangeError);
    expect(() => makeSim({ workloadJitterPct: 101 })).toThrow(RangeError);
    const { sim } = makeSim();
    expect(() => sim.tick(-1)).toThrow(RangeError);
  });
});

describe('sim hypervisor: memory admission', () => {
  it('refuses a start whose startup memory does not fit, naming required and available MiB', async () => {
    const { sim } = makeSim();
    await sim.start(config('a', { memory: { mode: 'static', startupMiB: 4096 } }));
    const error = await rejection(sim.start(config('b', { memory: { mode: 'static', startupMiB: 4096 } })));
    expect(error.code).toBe('insufficient-memory');
    expect(error.message).toBe(
      'cannot start b incarnation 1: it needs 4096 MiB, host host-1 has 3072 MiB available ' +
        '(8192 MiB − 1024 MiB parent reserve − 4096 MiB assigned to other partitions)',
    );
    expect(await ids(sim)).toEqual(['a#1:Running']);
    await sim.stop('a', 1);
    expect((await sim.start(config('b', { memory: { mode: 'static', startupMiB: 4096 } }))).state).toBe('Running');
  });

  it('uses the dynamic startup amount for admission and fits exactly up to the guest pool', async () => {
    const { sim } = makeSim();
    await sim.start(config('a', { memory: dynamic({ startupMiB: 3072, maxMiB: 3072 }) }));
    await sim.start(config('b', { memory: { mode: 'static', startupMiB: 4096 } }));
    expect((await sim.usage()).memoryAvailableMiB).toBe(0);
    expect((await rejection(sim.start(config('c', { memory: { mode: 'static', startupMiB: 1 } })))).code).toBe(
      'insufficient-memory',
    );
  });

  it('counts the older incarnation’s memory as free when a newer one replaces it', async () => {
    const { sim } = makeSim();
    await sim.start(config('a', { memory: { mode: 'static', startupMiB: 4096 } }));
    const status = await sim.start(config('a', { incarnation: 2, memory: { mode: 'static', startupMiB: 7168 } }));
    expect(status.memoryAssignedMiB).toBe(7168);
  });

  it('leaves the superseded incarnation off when the newer one does not fit', async () => {
    const { sim } = makeSim();
    await sim.start(config('a', { memory: { mode: 'static', startupMiB: 1024 } }));
    await sim.start(config('b', { memory: { mode: 'static', startupMiB: 4096 } }));
    const error = await rejection(sim.start(config('a', { incarnation: 2, memory: { mode: 'static', startupMiB: 4096 } })));
    expect(error.code).toBe('insufficient-memory');
    expect(await ids(sim)).toEqual(['b#1:Running']);
  });

  it('admits against memory the balancer has handed out', async () => {
    const { sim } = makeSim();
    await sim.start(
      config('a', {
        memory: dynamic({ maxMiB: 7168 }),
        workload: profile({ cpuDemandPct: 10, memoryDemandMiB: 6000, dirtyMiBps: 0 }),
      }),
    );
    sim.tick(1000);
    expect((await sim.usage()).memoryAvailableMiB).toBe(0);
    expect((await rejection(sim.start(config('b', { memory: { mode: 'static', startupMiB: 512 } })))).code).toBe(
      'insufficient-memory',
    );
  });
});

describe('sim hypervisor: run-time memory changes', () => {
  it('resizes static memory when the host has room, and refuses when it has not', async () => {
    const { sim } = makeSim();
    await sim.start(config('a', { memory: { mode: 'static', startupMiB: 1024 } }));
    expect((await sim.setMemory('a', 1, { mode: 'static', startupMiB: 6144 })).memoryAssignedMiB).toBe(6144);
    const error = await rejection(sim.setMemory('a', 1, { mode: 'static', startupMiB: 8192 }));
    expect(error.code).toBe('insufficient-memory');
    expect((await sim.setMemory('a', 1, { mode: 'static', startupMiB: 512 })).memoryAssignedMiB).toBe(512);
  });

  it('follows Hyper-V’s run-time rules for dynamic memory', async () => {
    const { sim } = makeSim();
    await sim.start(config('a', { memory: dynamic() }));
    const refusals: [MemorySettings, RegExp][] = [
      [{ mode: 'static', startupMiB: 1024 }, /switch .* from dynamic to static/],
      [dynamic({ maxMiB: 2048 }), /maximum can only be raised/],
      [dynamic({ minMiB: 768 }), /minimum can only be lowered/],
      [dynamic({ startupMiB: 2048 }), /applies at the next start/],
    ];
    for (const [memory, message] of refusals) {
      const error = await rejection(sim.setMemory('a', 1, memory));
      expect(error.code).toBe('invalid-state');
      expect(error.message).toMatch(message);
    }
    const changed = dynamic({ minMiB: 256, maxMiB: 6144, bufferPct: 50, weight: 9000 });
    expect((await sim.setMemory('a', 1, changed)).memory).toEqual(changed);
  });
});

describe('sim hypervisor: observations', () => {
  it('reports a crash once, and the crashed partition is gone', async () => {
    const { sim, clock } = makeSim();
    await sim.start(config('a', { incarnation: 7 }));
    clock.advance(250);
    sim.crashPartition('a', 'guest kernel panic');
    expect(await sim.list()).toEqual([]);
    expect(sim.drainObservations()).toEqual([
      { kind: 'crashed', partitionId: 'a', incarnation: 7, reason: 'guest kernel panic', atMs: clock.nowMs() },
    ]);
    expect(sim.drainObservations()).toEqual([]);
    expect(rejectionSync(() => sim.crashPartition('a', 'again')).code).toBe('not-found');
  });

  it('reports a guest shutdown', async () => {
    const { sim, clock } = makeSim();
    await sim.start(config('a'));
    sim.shutdownFromGuest('a');
    expect(sim.drainObservations()).toEqual([
      { kind: 'stopped-by-guest', partitionId: 'a', incarnation: 1, atMs: clock.nowMs() },
    ]);
    expect(await sim.list()).toEqual([]);
  });

  it('commanded stops are not observations', async () => {
    const { sim } = makeSim();
    await sim.start(config('a'));
    await sim.stop('a', 1);
    await sim.start(config('b'));
    await sim.start(config('b', { incarnation: 2 }));
    expect(sim.drainObservations()).toEqual([]);
  });

  it('bounds the queue, dropping the oldest and counting what was lost', async () => {
    const { sim } = makeSim();
    for (let i = 0; i <= observationCountMax; i += 1) {
      await sim.start(config('a', { incarnation: i }));
      sim.crashPartition('a', `crash ${i}`);
    }
    expect(sim.lostObservationCount()).toBe(1);
    const drained = sim.drainObservations();
    expect(drained).toHaveLength(observationCountMax);
    expect(drained[0]).toMatchObject({ kind: 'crashed', incarnation: 1 });
    expect(drained.at(-1)).toMatchObject({ kind: 'crashed', incarnation: observationCountMax });
    expect(sim.drainObservations()).toEqual([]);
  });
});

describe('sim hypervisor: CPU usage, measured by the quantum scheduler', () => {
  /** 1,000 quanta of 10 ms: the measured shares are within 1 % of the entitlements (scheduler.unit.spec.ts). */
  const longTickMs = 10_000;

  it('reports nothing measured before the first tick', async () => {
    const { sim } = makeSim();
    await sim.start(config('a', { vcpus: 4 }));
    expect((await sim.usage()).partitions[0]).toMatchObject({
      cpuLp: 0,
      cpuPct: 0,
      cpuWaitMsPerS: 0,
      cpuDemandPct: 0,
      cpuEntitlementLp: 0,
      dispatchesPerS: 0,
      cpuWaitMsPerDispatch: 0,
      throttlePct: null,
    });
  });

  it('reproduces §1.9 T2 through partition settings: 1.5 / 1.5 / 1.0 LP', async () => {
    const { sim, clock } = makeSim();
    await sim.start(config('a', { vcpus: 4 }));
    await sim.start(config('b', { vcpus: 4 }));
    await sim.start(config('c', { vcpus: 4, processor: { reservePct: 0, limitPct: 25, weight: 200 } }));
    sim.tick(longTickMs);
    const usage = await sim.usage();
    expect(usage.sampledAtMs).toBe(clock.nowMs());
    expect(usage.partitions.map((p) => p.cpuEntitlementLp)).toEqual([1.5, 1.5, 1]);
    expectCloseAll(
      usage.partitions.map((p) => p.cpuLp),
      [1.5, 1.5, 1],
      0.01,
    );
    expectCloseAll(
      usage.partitions.map((p) => p.cpuPct),
      [37.5, 37.5, 25],
      0.25,
    );
    // Every vCPU always has work: a and b wait (4 − 1.5) / 4 of the time, c (4 − 1) / 4 (at its cap).
    expectCloseAll(
      usage.partitions.map((p) => p.cpuWaitMsPerS),
      [625, 625, 750],
      5,
    );
    expect(usage.partitions.map((p) => p.cpuDemandPct)).toEqual([100, 100, 100]);
    expect(usage.cpuUsedLp).toBeCloseTo(4, 9);
    expect(usage.parentCpuLp).toBe(0);
  });

  it('reproduces §1.9 T3 through partition settings and a 50 % workload: 1.0 / 2.5 / 0.5 LP', async () => {
    const { sim } = makeSim();
    await sim.start(config('a', { vcpus: 2, processor: { reservePct: 50, limitPct: 100, weight: 100 } }));
    await sim.start(config('b', { vcpus: 4, processor: { reservePct: 0, limitPct: 100, weight: 400 } }));
    await sim.start(config('c', { vcpus: 1, workload: profile({ cpuDemandPct: 50, memoryDemandMiB: 512, dirtyMiBps: 0 }) }));
    sim.tick(longTickMs);
    const usage = await sim.usage();
    expectCloseAll(
      usage.partitions.map((p) => p.cpuEntitlementLp),
      [1.0, 2.5, 0.5],
      1e-12,
    );
    expectCloseAll(
      usage.partitions.map((p) => p.cpuLp),
      [1.0, 2.5, 0.5],
      0.01,
    );
    // c gets all it asks for, so it hardly waits; its demand is reported as offered.
    expect(usage.partitions[2]?.cpuDemandPct).toBe(50);
    expect(usage.partitions[2]?.cpuWaitMsPerS).toBeLessThan(usage.partitions[0]?.cpuWaitMsPerS ?? 0);
  });

  it('gives a paused partition no CPU and no wait, and its share to the others', async () => {
    const { sim } = makeSim();
    await sim.start(config('a', { vcpus: 4 }));
    await sim.start(config('b', { vcpus: 4 }));
    sim.tick(longTickMs);
    expectCloseAll(
      (await sim.usage()).partitions.map((p) => p.cpuLp),
      [2, 2],
      0.01,
    );
    await sim.pause('a', 1);
    sim.tick(1000);
    const usage = await sim.usage();
    expect(usage.partitions.map((p) => p.cpuLp)).toEqual([0, 4]);
    expect(usage.partitions[0]).toMatchObject({ cpuWaitMsPerS: 0, cpuDemandPct: 0, cpuEntitlementLp: 0, dispatchesPerS: 0 });
    await sim.resume('a', 1);
    sim.tick(longTickMs);
    expectCloseAll(
      (await sim.usage()).partitions.map((p) => p.cpuLp),
      [2, 2],
      0.01,
    );
  });

  it('applies processor and workload changes from the next tick', async () => {
    const { sim } = makeSim();
    await sim.start(config('a', { vcpus: 2 }));
    sim.tick(1000);
    expect((await sim.usage()).partitions[0]?.cpuLp).toBe(2);
    await sim.setProcessor('a', 1, { reservePct: 0, limitPct: 50, weight: 100 });
    expect((await sim.usage()).partitions[0]?.cpuLp).toBe(2);
    sim.tick(1000);
    expect((await sim.usage()).partitions[0]).toMatchObject({ cpuLp: 1, cpuEntitlementLp: 1, cpuWaitMsPerS: 500 });
    sim.setWorkload('a', profile({ cpuDemandPct: 20, memoryDemandMiB: 100, dirtyMiBps: 0 }));
    // The first tick also runs the work the cap held back (a quantum's worth per vCPU), then 20 %.
    sim.tick(1000);
    expect((await sim.usage()).partitions[0]?.cpuLp).toBeCloseTo(0.41, 9);
    sim.tick(1000);
    expect((await sim.usage()).partitions[0]?.cpuLp).toBeCloseTo(0.4, 9);
    expect((await sim.usage()).partitions[0]?.cpuWaitMsPerS).toBeCloseTo(0, 9);
    expect(rejectionSync(() => sim.setWorkload('zz', null)).code).toBe('not-found');
    expect(rejectionSync(() => sim.setWorkload('a', profile({ cpuDemandPct: -1 }))).code).toBe('invalid-config');
  });

  it('accumulates CPU time, wait time and dispatches per vCPU over ticks', async () => {
    const { sim, clock } = makeSim({ logicalProcessors: 2 });
    await sim.start(config('a', { vcpus: 2 }));
    await sim.start(config('b', { vcpus: 2, processor: { reservePct: 0, limitPct: 100, weight: 300 } }));
    for (let i = 0; i < 20; i += 1) {
      clock.advance(1000);
      sim.tick(1000);
    }
    // 2 LP split 1:3 → a 0.5 LP, b 1.5 LP over 20 s; a's vCPUs wait (2 − 0.5)/2 = 0.75 s/s, b's 0.25 s/s.
    const [a, b] = sim.accounting();
    expect(a?.cpuTimeLpMs).toBeCloseTo(10_000, -2);
    expect(b?.cpuTimeLpMs).toBeCloseTo(30_000, -2);
    expect((a?.cpuTimeLpMs ?? 0) + (b?.cpuTimeLpMs ?? 0)).toBeCloseTo(40_000, 6);
    expect(a?.cpuWaitMs).toBeCloseTo(15_000, -2);
    expect(b?.cpuWaitMs).toBeCloseTo(5_000, -2);
    for (const partition of [a, b]) {
      expect(partition?.vcpus).toHaveLength(2);
      const vcpus = partition?.vcpus ?? [];
      expect(vcpus.reduce((sum, v) => sum + v.runTimeMs, 0)).toBeCloseTo(partition?.cpuTimeLpMs ?? 0, 6);
      expect(vcpus.reduce((sum, v) => sum + v.dispatches, 0)).toBe(partition?.dispatches);
      for (const vcpu of vcpus) {
        expect(vcpu.dispatches).toBeGreaterThan(0);
        expect(vcpu.waitMsPerDispatch).toBeCloseTo(vcpu.waitTimeMs / vcpu.dispatches, 9);
        // Run + wait fill the 20 s: every vCPU always has work.
        expect(vcpu.runTimeMs + vcpu.waitTimeMs).toBeCloseTo(20_000, 6);
      }
    }
  });

  it('carries time shorter than a quantum over to the next tick', async () => {
    const { sim } = makeSim();
    await sim.start(config('a', { vcpus: 1 }));
    sim.tick(4);
    sim.tick(4);
    expect(sim.accounting()[0]?.cpuTimeLpMs).toBe(0);
    sim.tick(4);
    expect(sim.accounting()[0]?.cpuTimeLpMs).toBe(10);
    sim.tick(1000);
    expect(sim.accounting()[0]?.cpuTimeLpMs).toBe(1010);
  });

  it('fast-forwards a very long tick with the fluid model, with bounded work', async () => {
    const { sim } = makeSim({ logicalProcessors: 2 });
    await sim.start(config('a', { vcpus: 2 }));
    await sim.start(config('b', { vcpus: 2, processor: { reservePct: 0, limitPct: 100, weight: 300 } }));
    const hourMs = 3_600_000;
    const started = performance.now();
    sim.tick(hourMs);
    expect(performance.now() - started).toBeLessThan(5000);
    const [a, b] = sim.accounting();
    expect(((a?.cpuTimeLpMs ?? 0) + (b?.cpuTimeLpMs ?? 0)) / hourMs).toBeCloseTo(2, 6);
    expect((a?.cpuTimeLpMs ?? 0) / hourMs).toBeCloseTo(0.5, 3);
    // The sample covers the whole tick.
    expect((await sim.usage()).partitions[1]?.cpuLp).toBeCloseTo(1.5, 3);
  });

  it('subtracts the parent partition’s CPU from the capacity partitions share', async () => {
    const { sim } = makeSim({ parentCpuLp: 1 });
    await sim.start(config('a', { vcpus: 4 }));
    await sim.start(config('b', { vcpus: 4 }));
    sim.tick(longTickMs);
    const usage = await sim.usage();
    expect(usage.parentCpuLp).toBe(1);
    expect(usage.partitions.map((p) => p.cpuEntitlementLp)).toEqual([1.5, 1.5]);
    expect(usage.cpuUsedLp).toBeCloseTo(3, 9);
    expectCloseAll(
      usage.partitions.map((p) => p.cpuLp),
      [1.5, 1.5],
      0.01,
    );
  });

  it('follows periodic and bursty workloads: average demand and CPU per tick', async () => {
    const { sim } = makeSim();
    await sim.start(
      config('p', {
        vcpus: 1,
        workload: profile({ cpuPattern: 'periodic', cpuDemandPct: 80, cpuLowPct: 10, cpuPeriodMs: 200, cpuDutyPct: 25 }),
      }),
    );
    await sim.start(
      config('q', {
        vcpus: 1,
        workload: profile({ cpuPattern: 'bursty', cpuDemandPct: 100, cpuLowPct: 0, cpuPeriodMs: 100, cpuDutyPct: 30 }),
      }),
    );
    sim.tick(1000);
    const [p, q] = (await sim.usage()).partitions;
    // Periodic: 25 % of the time at 80, the rest at 10 → 27.5 %; the host is idle, so it all runs.
    expect(p?.cpuDemandPct).toBeCloseTo(27.5, 9);
    expect(p?.cpuLp).toBeCloseTo(0.275, 9);
    expect(q?.cpuLp).toBeCloseTo((q?.cpuDemandPct ?? 0) / 100, 9);
    // Bursty over 60 s: busy about 30 % of the time.
    sim.tick(60_000);
    expect((await sim.usage()).partitions[1]?.cpuDemandPct).toBeGreaterThan(20);
    expect((await sim.usage()).partitions[1]?.cpuDemandPct).toBeLessThan(40);
  });
});

describe('sim hypervisor: the throttle hook', () => {
  it('takes a share of vCPU time away (effective limit min(limit, 100 − throttle)) until lifted', async () => {
    const { sim } = makeSim();
    await sim.start(config('a', { vcpus: 2, processor: { reservePct: 0, limitPct: 90, weight: 100 } }));
    await sim.setThrottle('a', 1, 30);
    sim.tick(1000);
    expect((await sim.usage()).partitions[0]).toMatchObject({ throttlePct: 30, cpuPct: 70, cpuEntitlementLp: 1.4 });
    // A throttle gentler than the limit changes nothing: the limit still applies.
    await sim.setThrottle('a', 1, 5);
    sim.tick(1000);
    expect((await sim.usage()).partitions[0]).toMatchObject({ throttlePct: 5, cpuPct: 90 });
    await sim.setThrottle('a', 1, null);
    sim.tick(1000);
    expect((await sim.usage()).partitions[0]).toMatchObject({ throttlePct: null, cpuPct: 90 });
  });

  it('needs that exact incarnation and a throttle from 0 to 100 %', async () => {
    const { sim } = makeSim();
    await sim.start(config('a', { incarnation: 2 }));
    expect((await rejection(sim.setThrottle('a', 1, 50))).code).toBe('not-found');
    expect((await rejection(sim.setThrottle('b', 1, 50))).code).toBe('not-found');
    expect((await rejection(sim.setThrottle('a', 2, 101))).message).toMatch(/throttlePct/);
    expect((await rejection(sim.setThrottle('a', 2, Number.NaN))).code).toBe('invalid-config');
  });

  it('does not survive a save and restore', async () => {
    const { sim } = makeSim();
    await sim.start(config('a'));
    await sim.setThrottle('a', 1, 50);
    await sim.save('a', 1);
    await sim.start(config('a'));
    sim.tick(1000);
    expect((await sim.usage()).partitions[0]).toMatchObject({ throttlePct: null, cpuPct: 100 });
  });
});

describe('sim hypervisor: host limits (hypervisor-models.md §1.3)', () => {
  const tiny = { mode: 'static', startupMiB: 1 } as const;

  it('refuses, under the r2 preset, more than 4 vCPUs per partition, naming the limit', async () => {
    const { sim } = makeSim({ limitsPreset: 'r2', logicalProcessors: 64, memoryMiB: 1 << 20 });
    const error = await rejection(sim.start(config('a', { vcpus: 5 })));
    expect(error.code).toBe('invalid-config');
    expect(error.message).toBe('vcpus 5 is above the r2 limit of 4 vCPUs per partition (vcpusPerPartitionMax)');
    expect((await sim.start(config('a', { vcpus: 4 }))).vcpus).toBe(4);
  });

  it('refuses an r2 host of more than 64 logical processors', () => {
    expect(() => makeSim({ limitsPreset: 'r2', logicalProcessors: 65 })).toThrow(/from 1 to 64 \(the r2 limit logicalProcessorsMax\)/);
    expect(() => makeSim({ limitsPreset: 'modern', logicalProcessors: 2049 })).toThrow(/logicalProcessorsMax/);
  });

  it('refuses the 385th running partition under r2, and counts neither saved partitions nor a replaced incarnation', async () => {
    const { sim } = makeSim({ limitsPreset: 'r2', logicalProcessors: 64, memoryMiB: 1 << 20 });
    for (let i = 0; i < 384; i += 1) await sim.start(config(`p${String(i).padStart(3, '0')}`, { vcpus: 1, memory: tiny }));
    const error = await rejection(sim.start(config('extra', { vcpus: 1, memory: tiny })));
    expect(error.code).toBe('invalid-config');
    expect(error.message).toMatch(/would run 385 partitions, above the r2 limit of 384 running partitions per host \(partitionsPerHostMax\)/);
    // A newer incarnation replaces the older one: still 384.
    expect((await sim.start(config('p000', { incarnation: 2, vcpus: 1, memory: tiny }))).incarnation).toBe(2);
    await sim.save('p001', 1);
    expect((await sim.start(config('extra', { vcpus: 1, memory: tiny }))).state).toBe('Running');
  });

  it('refuses more than 512 vCPUs per host under r2', async () => {
    const { sim } = makeSim({ limitsPreset: 'r2', logicalProcessors: 64, memoryMiB: 1 << 20 });
    for (let i = 0; i < 128; i += 1) await sim.start(config(`p${String(i).padStart(3, '0')}`, { vcpus: 4, memory: tiny }));
    const error = await rejection(sim.start(config('extra', { vcpus: 1, memory: tiny })));
    expect(error.message).toMatch(/would run 513 vCPUs, above the r2 limit of 512 vCPUs per host \(vcpusPerHostMax\)/);
  });

  it('refuses more than 8 vCPUs per logical processor under r2', async () => {
    const { sim } = makeSim({ limitsPreset: 'r2', logicalProcessors: 4, memoryMiB: 1 << 20 });
    for (let i = 0; i < 8; i += 1) await sim.start(config(`p${i}`, { vcpus: 4, memory: tiny }));
    const error = await rejection(sim.start(config('extra', { vcpus: 1, memory: tiny })));
    expect(error.code).toBe('invalid-config');
    expect(error.message).toBe(
      'cannot start extra incarnation 1: host host-1 would run 33 vCPUs on 4 logical processors, above the r2 limit ' +
        'of 8:1 vCPUs per logical processor (vcpusPerLpRatioMax)',
    );
  });

  it('has no ratio under the modern preset, but 240 vCPUs per partition', async () => {
    const { sim } = makeSim({ logicalProcessors: 256, memoryMiB: 1 << 20 });
    for (let i = 0; i < 8; i += 1) await sim.start(config(`p${i}`, { vcpus: 240, memory: tiny }));
    const error = await rejection(sim.start(config('big', { vcpus: 241, memory: tiny })));
    expect(error.message).toMatch(/above the modern limit of 240 vCPUs per partition/);
    const full = await rejection(sim.start(config('more', { vcpus: 240, memory: tiny })));
    expect(full.message).toMatch(/would run 2160 vCPUs, above the modern limit of 2048 vCPUs per host/);
  });
});

describe('sim hypervisor: memory usage and the balancer', () => {
  it('reports static memory pressure as 100 × demand ÷ assigned', async () => {
    const { sim } = makeSim();
    await sim.start(
      config('a', { memory: { mode: 'static', startupMiB: 2048 }, workload: profile({ cpuDemandPct: 0, memoryDemandMiB: 1024, dirtyMiBps: 0 }) }),
    );
    await sim.start(config('b', { memory: { mode: 'static', startupMiB: 2048 } }));
    sim.tick(1000);
    const [a, b] = (await sim.usage()).partitions;
    expect(a).toMatchObject({ memoryAssignedMiB: 2048, memoryDemandMiB: 1024, memoryPressurePct: 50, memoryBalloonedMiB: 0 });
    // Without a workload the guest wants its startup memory.
    expect(b).toMatchObject({ memoryDemandMiB: 2048, memoryPressurePct: 100 });
  });

  it('grows a dynamic partition to demand plus buffer by hot-add, then balloons it down, never below min', async () => {
    const { sim } = makeSim();
    await sim.start(config('a', { memory: dynamic(), workload: profile({ cpuDemandPct: 0, memoryDemandMiB: 1500, dirtyMiBps: 0 }) }));
    expect((await sim.usage()).partitions[0]?.memoryAssignedMiB).toBe(1024);
    sim.tick(1000);
    // 1500 × 1.2 = 1800 MiB: hot-added as 7 chunks of 128 MiB (1920 visible), the last one's unused 120 MiB ballooned.
    expect((await sim.usage()).partitions[0]).toMatchObject({
      memoryAssignedMiB: 1800,
      memoryBalloonedMiB: 120,
      memoryPressurePct: (100 * 1500) / 1800,
    });
    expect((await sim.list())[0]?.memoryAssignedMiB).toBe(1800);
    sim.setWorkload('a', profile({ cpuDemandPct: 0, memoryDemandMiB: 100, dirtyMiBps: 0 }));
    sim.tick(1000);
    expect((await sim.usage()).partitions[0]).toMatchObject({ memoryAssignedMiB: 512, memoryBalloonedMiB: 1408 });
  });

  it('balloons the lowest memory weight first when the host is short', async () => {
    const { sim } = makeSim({ memoryMiB: 5120 });
    const workload = profile({ cpuDemandPct: 0, memoryDemandMiB: 2500, dirtyMiBps: 0 });
    await sim.start(config('light', { memory: dynamic({ weight: 2000 }), workload }));
    await sim.start(config('heavy', { memory: dynamic({ weight: 8000 }), workload }));
    sim.tick(1000);
    const usage = await sim.usage();
    const byId = new Map(usage.partitions.map((p) => [p.partitionId, p]));
    expect(byId.get('heavy')?.memoryAssignedMiB).toBe(2500);
    expect(byId.get('light')?.memoryAssignedMiB).toBe(1596);
    expect(usage.memoryCommittedMiB).toBe(4096);
    expect(usage.memoryAvailableMiB).toBe(0);
  });

  it('leaves static memory and paused guests out of the balancing', async () => {
    const { sim } = makeSim();
    await sim.start(config('s', { memory: { mode: 'static', startupMiB: 3072 } }));
    await sim.start(
      config('d', { memory: dynamic({ maxMiB: 7168 }), workload: profile({ cpuDemandPct: 0, memoryDemandMiB: 6000, dirtyMiBps: 0 }) }),
    );
    sim.tick(1000);
    expect((await sim.list()).map((p) => p.memoryAssignedMiB)).toEqual([4096, 3072]);
    await sim.pause('d', 1);
    sim.setWorkload('d', profile({ cpuDemandPct: 0, memoryDemandMiB: 100, dirtyMiBps: 0 }));
    sim.tick(1000);
    expect((await sim.list())[0]?.memoryAssignedMiB).toBe(4096);
    await sim.resume('d', 1);
    sim.tick(1000);
    expect((await sim.list())[0]?.memoryAssignedMiB).toBe(512);
  });
});

describe('sim hypervisor: memory manager properties', () => {
  const command = fc.oneof(
    fc.record({
      kind: fc.constant('start' as const),
      slot: fc.integer({ min: 0, max: 5 }),
      dynamic: fc.boolean(),
      minMiB: fc.integer({ min: 32, max: 1024 }),
      startupExtraMiB: fc.integer({ min: 0, max: 1024 }),
      maxExtraMiB: fc.integer({ min: 0, max: 4096 }),
      bufferPct: fc.integer({ min: 5, max: 200 }),
      weight: fc.integer({ min: 0, max: 10_000 }),
      demandMiB: fc.integer({ min: 0, max: 6000 }),
    }),
    fc.record({ kind: fc.constant('demand' as const), slot: fc.integer({ min: 0, max: 5 }), demandMiB: fc.integer({ min: 0, max: 6000 }) }),
    fc.record({ kind: fc.constantFrom('pause' as const, 'resume' as const, 'stop' as const), slot: fc.integer({ min: 0, max: 5 }) }),
    fc.record({ kind: fc.constant('tick' as const) }),
  );

  it('keeps assigned >= minimum, Σ assigned <= physical − parent reserve, and never lets a higher weight lose to a lower one', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 1, maxLength: 25 }), async (commands) => {
        const { sim } = makeSim({ memoryMiB: 12_288, parentReserveMiB: 2048 });
        const poolMiB = 12_288 - 2048;
        let incarnation = 0;
        for (const c of commands) {
          const id = `vm${'slot' in c ? c.slot : 0}`;
          const current = (await sim.list()).find((p) => p.partitionId === id);
          if (c.kind === 'start') {
            incarnation += 1;
            const startupMiB = c.minMiB + c.startupExtraMiB;
            const memory: MemorySettings = c.dynamic
              ? { mode: 'dynamic', startupMiB, minMiB: c.minMiB, maxMiB: startupMiB + c.maxExtraMiB, bufferPct: c.bufferPct, weight: c.weight }
              : { mode: 'static', startupMiB };
            await sim.start(config(id, { incarnation, memory, workload: profile({ memoryDemandMiB: c.demandMiB }) })).catch((error: unknown) => {
              if (!(error instanceof HypervisorError) || error.code !== 'insufficient-memory') throw error;
            });
          } else if (c.kind === 'demand' && current) {
            sim.setWorkload(id, profile({ memoryDemandMiB: c.demandMiB }));
          } else if (c.kind === 'pause' && current) {
            await sim.pause(id, current.incarnation);
          } else if (c.kind === 'resume' && current) {
            await sim.resume(id, current.incarnation);
          } else if (c.kind === 'stop' && current) {
            await sim.stop(id, current.incarnation);
          } else if (c.kind === 'tick') {
            sim.tick(1000);
            const statuses = await sim.list();
            const usage = await sim.usage();
            const demandOf = new Map(usage.partitions.map((p) => [p.partitionId, p.memoryDemandMiB]));
            expect(usage.memoryCommittedMiB).toBeLessThanOrEqual(poolMiB);
            expect(usage.memoryAvailableMiB).toBe(poolMiB - usage.memoryCommittedMiB);
            const balanced: { input: BalancerInput; assignedMiB: number }[] = [];
            for (const status of statuses) {
              if (status.memory.mode !== 'dynamic') {
                expect(status.memoryAssignedMiB).toBe(status.memory.startupMiB);
                continue;
              }
              expect(status.memoryAssignedMiB).toBeGreaterThanOrEqual(status.memory.minMiB);
              expect(status.memoryAssignedMiB).toBeLessThanOrEqual(status.memory.maxMiB);
              if (status.state !== 'Running') continue;
              const { minMiB, maxMiB, bufferPct, weight } = status.memory;
              const input = { id: status.partitionId, minMiB, maxMiB, bufferPct, weight, demandMiB: demandOf.get(status.partitionId) ?? 0 };
              balanced.push({ input, assignedMiB: status.memoryAssignedMiB });
            }
            for (const high of balanced) {
              for (const low of balanced) {
                if (high.input.weight <= low.input.weight) continue;
                if (Math.min(low.assignedMiB, memoryNeedMiB(low.input)) > low.input.minMiB) {
                  expect(high.assignedMiB).toBeGreaterThanOrEqual(memoryNeedMiB(high.input));
                }
                if (low.assignedMiB > memoryNeedMiB(low.input)) expect(high.assignedMiB).toBe(memoryTargetMiB(high.input));
              }
            }
          }
        }
      }),
      { numRuns: 60 },
    );
  });
});

describe('sim hypervisor: determinism', () => {
  async function run(seed: number): Promise<{ usage: HostUsage; accounting: readonly PartitionAccounting[] }[]> {
    const clock = fakeClock();
    const sim = createSimHypervisor({
      hostId: 'h',
      logicalProcessors: 4,
      memoryMiB: 8192,
      parentReserveMiB: 1024,
      clock,
      random: createSeededRandom(seed),
      bootId: 'b',
      workloadJitterPct: 30,
    });
    await sim.start(config('a', { vcpus: 4, workload: profile({ cpuDemandPct: 40, memoryDemandMiB: 2000, dirtyMiBps: 0 }), memory: dynamic() }));
    await sim.start(config('b', { vcpus: 4, workload: profile({ cpuDemandPct: 30, memoryDemandMiB: 1500, dirtyMiBps: 0 }), memory: dynamic() }));
    // Patterned demands on top, so the host is contended part of the time.
    await sim.start(
      config('c', {
        vcpus: 4,
        processor: { reservePct: 20, limitPct: 80, weight: 300 },
        workload: profile({ cpuPattern: 'bursty', cpuDemandPct: 100, cpuLowPct: 10, cpuPeriodMs: 300, cpuDutyPct: 50 }),
      }),
    );
    await sim.start(
      config('d', {
        vcpus: 2,
        workload: profile({ cpuPattern: 'periodic', cpuDemandPct: 90, cpuLowPct: 20, cpuPeriodMs: 700, cpuDutyPct: 40 }),
      }),
    );
    const samples: { usage: HostUsage; accounting: readonly PartitionAccounting[] }[] = [];
    for (let i = 0; i < 20; i += 1) {
      clock.advance(1000);
      sim.tick(1000);
      samples.push({ usage: await sim.usage(), accounting: sim.accounting() });
    }
    return samples;
  }

  it('gives the same usage and the same counters, bit for bit, for the same seed and inputs', async () => {
    const [first, second] = [await run(99), await run(99)];
    expect(first).toEqual(second);
    // And the counters did move.
    expect(first.at(-1)?.accounting.every((p) => p.dispatches > 0)).toBe(true);
  });

  it('varies with the seed, and the noise moves usage between ticks', async () => {
    const [first, second] = [await run(99), await run(100)];
    expect(first).not.toEqual(second);
    const cpuOfA = first.map((sample) => sample.usage.partitions[0]?.cpuLp);
    expect(new Set(cpuOfA).size).toBeGreaterThan(10);
    const memoryOfA = first.map((sample) => sample.usage.partitions[0]?.memoryAssignedMiB);
    expect(new Set(memoryOfA).size).toBeGreaterThan(1);
  });
});
