import { describe, expect, it } from 'vitest';
import {
  createSeededRandom,
  createSimHypervisor,
  type HostUsage,
  HypervisorError,
  type MemorySettings,
  observationCountMax,
  type PartitionAccounting,
  type PartitionConfig,
  type SimHypervisor,
  type SimHypervisorOptions,
} from '../../services/hypervisor/index.ts';

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

async function rejection(promise: Promise<unknown>): Promise<HypervisorError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  if (!(error instanceof HypervisorError)) throw new Error(`expected a HypervisorError, got ${String(error)}`);
  return error;
}

function rejectionSync(action: () => void): HypervisorError {
  try {
    action();
  } catch (error) {
    if (error instanceof HypervisorError) return error;
    throw error;
  }
  throw new Error('expected a HypervisorError, got success');
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
    await sim.start(config('a', { memory: dynamic(), workload: { cpuDemandPct: 50, memoryDemandMiB: 2000, dirtyMiBps: 0 } }));
    sim.tick(1000);
    const before = (await sim.list())[0];
    expect(before?.memoryAssignedMiB).toBe(2432);
    await sim.save('a', 1);
    await sim.save('a', 1);
    expect(await sim.list()).toEqual([]);
    expect((await sim.usage()).memoryCommittedMiB).toBe(0);
    clock.advance(10_000);
    const restored = await sim.start(config('a', { memory: dynamic() }));
    expect(restored.startedAtMs).toBe(before?.startedAtMs);
    expect(restored.memoryAssignedMiB).toBe(2432);
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
    ['CPU demand above 100 %', { workload: { cpuDemandPct: 101, memoryDemandMiB: 0, dirtyMiBps: 0 } }, /cpuDemandPct/],
    ['negative memory demand', { workload: { cpuDemandPct: 1, memoryDemandMiB: -1, dirtyMiBps: 0 } }, /memoryDemandMiB/],
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
        workload: { cpuDemandPct: 10, memoryDemandMiB: 6000, dirtyMiBps: 0 },
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

describe('sim hypervisor: CPU usage', () => {
  it('reproduces §1.9 T2 through partition settings: 1.5 / 1.5 / 1.0 LP', async () => {
    const { sim, clock } = makeSim();
    await sim.start(config('a', { vcpus: 4 }));
    await sim.start(config('b', { vcpus: 4 }));
    await sim.start(config('c', { vcpus: 4, processor: { reservePct: 0, limitPct: 25, weight: 200 } }));
    const usage = await sim.usage();
    expect(usage.sampledAtMs).toBe(clock.nowMs());
    expect(usage.partitions.map((p) => p.cpuLp)).toEqual([1.5, 1.5, 1]);
    expect(usage.partitions.map((p) => p.cpuPct)).toEqual([37.5, 37.5, 25]);
    // Wanted 4 LP each: (4 − 1.5) / 4 vCPUs = 0.625 s/s; C: (4 − 1) / 4 = 0.75 s/s.
    expect(usage.partitions.map((p) => p.cpuWaitMsPerS)).toEqual([625, 625, 750]);
    expect(usage.cpuUsedLp).toBe(4);
  });

  it('reproduces §1.9 T3 through partition settings and a 50 % workload: 1.0 / 2.5 / 0.5 LP', async () => {
    const { sim } = makeSim();
    await sim.start(config('a', { vcpus: 2, processor: { reservePct: 50, limitPct: 100, weight: 100 } }));
    await sim.start(config('b', { vcpus: 4, processor: { reservePct: 0, limitPct: 100, weight: 400 } }));
    await sim.start(config('c', { vcpus: 1, workload: { cpuDemandPct: 50, memoryDemandMiB: 512, dirtyMiBps: 0 } }));
    const usage = await sim.usage();
    const cpu = usage.partitions.map((p) => p.cpuLp);
    [1.0, 2.5, 0.5].forEach((expected, i) => {
      expect(cpu[i]).toBeCloseTo(expected, 12);
    });
    expect(usage.partitions[2]?.cpuWaitMsPerS).toBe(0);
  });

  it('gives a paused partition no CPU and its share to the others', async () => {
    const { sim } = makeSim();
    await sim.start(config('a', { vcpus: 4 }));
    await sim.start(config('b', { vcpus: 4 }));
    expect((await sim.usage()).partitions.map((p) => p.cpuLp)).toEqual([2, 2]);
    await sim.pause('a', 1);
    const usage = await sim.usage();
    expect(usage.partitions.map((p) => p.cpuLp)).toEqual([0, 4]);
    expect(usage.partitions[0]?.cpuWaitMsPerS).toBe(0);
  });

  it('applies processor and workload changes immediately', async () => {
    const { sim } = makeSim();
    await sim.start(config('a', { vcpus: 2 }));
    expect((await sim.usage()).partitions[0]?.cpuLp).toBe(2);
    await sim.setProcessor('a', 1, { reservePct: 0, limitPct: 50, weight: 100 });
    expect((await sim.usage()).partitions[0]?.cpuLp).toBe(1);
    sim.setWorkload('a', { cpuDemandPct: 20, memoryDemandMiB: 100, dirtyMiBps: 0 });
    expect((await sim.usage()).partitions[0]?.cpuLp).toBeCloseTo(0.4, 12);
    expect(rejectionSync(() => sim.setWorkload('zz', null)).code).toBe('not-found');
    expect(
      rejectionSync(() => sim.setWorkload('a', { cpuDemandPct: -1, memoryDemandMiB: 0, dirtyMiBps: 0 })).code,
    ).toBe('invalid-config');
  });

  it('accumulates CPU time and wait time over ticks', async () => {
    const { sim, clock } = makeSim({ logicalProcessors: 2 });
    await sim.start(config('a', { vcpus: 2 }));
    await sim.start(config('b', { vcpus: 2, processor: { reservePct: 0, limitPct: 100, weight: 300 } }));
    clock.advance(2000);
    sim.tick(2000);
    // 2 LP split 1:3 → a 0.5 LP, b 1.5 LP; a waits (2 − 0.5)/2 = 0.75 s/s, b (2 − 1.5)/2 = 0.25 s/s.
    expect(sim.accounting()).toEqual([
      { partitionId: 'a', incarnation: 1, cpuTimeLpMs: 1000, cpuWaitMs: 1500 },
      { partitionId: 'b', incarnation: 1, cpuTimeLpMs: 3000, cpuWaitMs: 500 },
    ]);
  });
});

describe('sim hypervisor: memory usage and the balancer', () => {
  it('reports static memory pressure as 100 × demand ÷ assigned', async () => {
    const { sim } = makeSim();
    await sim.start(
      config('a', { memory: { mode: 'static', startupMiB: 2048 }, workload: { cpuDemandPct: 0, memoryDemandMiB: 1024, dirtyMiBps: 0 } }),
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
    await sim.start(config('a', { memory: dynamic(), workload: { cpuDemandPct: 0, memoryDemandMiB: 1500, dirtyMiBps: 0 } }));
    expect((await sim.usage()).partitions[0]?.memoryAssignedMiB).toBe(1024);
    sim.tick(1000);
    // 1500 × 1.2 = 1800 → 1920 (15 chunks).
    expect((await sim.usage()).partitions[0]).toMatchObject({
      memoryAssignedMiB: 1920,
      memoryBalloonedMiB: 0,
      memoryPressurePct: (100 * 1500) / 1920,
    });
    sim.setWorkload('a', { cpuDemandPct: 0, memoryDemandMiB: 100, dirtyMiBps: 0 });
    sim.tick(1000);
    expect((await sim.usage()).partitions[0]).toMatchObject({ memoryAssignedMiB: 512, memoryBalloonedMiB: 1408 });
  });

  it('balloons the lowest memory weight first when the host is short', async () => {
    const { sim } = makeSim({ memoryMiB: 5120 });
    const workload = { cpuDemandPct: 0, memoryDemandMiB: 2500, dirtyMiBps: 0 };
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
      config('d', { memory: dynamic({ maxMiB: 7168 }), workload: { cpuDemandPct: 0, memoryDemandMiB: 6000, dirtyMiBps: 0 } }),
    );
    sim.tick(1000);
    expect((await sim.list()).map((p) => p.memoryAssignedMiB)).toEqual([4096, 3072]);
    await sim.pause('d', 1);
    sim.setWorkload('d', { cpuDemandPct: 0, memoryDemandMiB: 100, dirtyMiBps: 0 });
    sim.tick(1000);
    expect((await sim.list())[0]?.memoryAssignedMiB).toBe(4096);
    await sim.resume('d', 1);
    sim.tick(1000);
    expect((await sim.list())[0]?.memoryAssignedMiB).toBe(512);
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
    await sim.start(config('a', { vcpus: 4, workload: { cpuDemandPct: 40, memoryDemandMiB: 2000, dirtyMiBps: 0 }, memory: dynamic() }));
    await sim.start(config('b', { vcpus: 4, workload: { cpuDemandPct: 30, memoryDemandMiB: 1500, dirtyMiBps: 0 }, memory: dynamic() }));
    const samples: { usage: HostUsage; accounting: readonly PartitionAccounting[] }[] = [];
    for (let i = 0; i < 20; i += 1) {
      clock.advance(1000);
      sim.tick(1000);
      samples.push({ usage: await sim.usage(), accounting: sim.accounting() });
    }
    return samples;
  }

  it('gives the same usage for the same seed and inputs', async () => {
    expect(await run(99)).toEqual(await run(99));
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
