import { rejection } from './fixtures/rejection.ts';
import { describe, expect, it } from 'vitest';
import {
  createSeededRandom,
  createSimHypervisor,
  hasWatchdog,
  type PartitionConfig,
  watchdogTimeoutMsMax,
  watchdogTimeoutMsMin,
} from '../../services/hypervisor/index.ts';

const t0 = 1_000_000;

function makeSim() {
  let nowMs = t0;
  const clock = { nowMs: () => nowMs };
  const sim = createSimHypervisor({
    hostId: 'host-1',
    logicalProcessors: 4,
    memoryMiB: 8192,
    parentReserveMiB: 1024,
    clock,
    random: createSeededRandom(1),
    bootId: 'boot-1',
  });
  /** Moves the clock and ticks by the same amount, as a host process does. */
  const advance = (ms: number): void => {
    nowMs += ms;
    sim.tick(ms);
  };
  /** Moves the clock only: nothing is called on the sim. */
  const advanceClock = (ms: number): void => {
    nowMs += ms;
  };
  return { sim, advance, advanceClock, now: () => nowMs };
}

function config(partitionId: string, overrides: Partial<PartitionConfig> = {}): PartitionConfig {
  return {
    partitionId,
    incarnation: 1,
    vcpus: 1,
    processor: { reservePct: 0, limitPct: 100, weight: 100 },
    memory: { mode: 'static', startupMiB: 512 },
    workload: null,
    ...overrides,
  };
}


const ids = async (sim: ReturnType<typeof makeSim>['sim']): Promise<string[]> =>
  (await sim.list()).map((p) => p.partitionId);

describe('sim watchdog (fake clock)', () => {
  it('is a Watchdog, and starts disarmed', async () => {
    const { sim } = makeSim();
    expect(hasWatchdog(sim)).toBe(true);
    expect(hasWatchdog({ list: async () => [] })).toBe(false);
    expect(await sim.watchdogStatus()).toEqual({
      armed: false,
      timeoutMs: null,
      expiresAtMs: null,
      firedCount: 0,
      lastFiredAtMs: null,
    });
  });

  it('fires exactly at expiry, not a millisecond before: every partition off, one fenced observation each', async () => {
    const { sim, advance } = makeSim();
    await sim.start(config('b', { incarnation: 7 }));
    await sim.start(config('a', { incarnation: 3 }));
    await sim.pause('b', 7);
    expect(await sim.armWatchdog(1000)).toEqual({
      armed: true,
      timeoutMs: 1000,
      expiresAtMs: t0 + 1000,
      firedCount: 0,
      lastFiredAtMs: null,
    });

    advance(999);
    expect(sim.checkWatchdog()).toBe(false);
    expect(await ids(sim)).toEqual(['a', 'b']);
    expect(sim.drainObservations()).toEqual([]);

    advance(1); // tick() fires it
    expect(await ids(sim)).toEqual([]);
    expect(sim.drainObservations()).toEqual([
      { kind: 'fenced', partitionId: 'a', incarnation: 3, atMs: t0 + 1000 },
      { kind: 'fenced', partitionId: 'b', incarnation: 7, atMs: t0 + 1000 },
    ]);
    expect(await sim.watchdogStatus()).toEqual({
      armed: false,
      timeoutMs: null,
      expiresAtMs: null,
      firedCount: 1,
      lastFiredAtMs: t0 + 1000,
    });
    expect((await sim.usage()).memoryCommittedMiB).toBe(0);
    // It fired once: it is disarmed now, so time passing does nothing more.
    advance(10_000);
    expect((await sim.watchdogStatus()).firedCount).toBe(1);
    expect(sim.drainObservations()).toEqual([]);
  });

  it('fires on whatever call comes first after the expiry, stamped with that time', async () => {
    const { sim, advanceClock } = makeSim();
    await sim.start(config('a'));
    await sim.armWatchdog(500);
    advanceClock(700);
    expect(await sim.list()).toEqual([]);
    expect(sim.drainObservations()).toEqual([{ kind: 'fenced', partitionId: 'a', incarnation: 1, atMs: t0 + 700 }]);

    await sim.start(config('b'));
    await sim.armWatchdog(500);
    advanceClock(500);
    expect(sim.checkWatchdog()).toBe(true);
    expect(sim.checkWatchdog()).toBe(false);
    expect(await ids(sim)).toEqual([]);
    expect((await sim.watchdogStatus()).firedCount).toBe(2);
  });

  it('petting pushes the expiry out by the timeout, across many timeouts', async () => {
    const { sim, advance, now } = makeSim();
    await sim.start(config('a'));
    await sim.armWatchdog(1000);
    for (let i = 0; i < 10; i += 1) {
      advance(800);
      expect(await sim.petWatchdog()).toMatchObject({ armed: true, timeoutMs: 1000, expiresAtMs: now() + 1000 });
    }
    expect(await ids(sim)).toEqual(['a']);
    advance(999);
    expect(await ids(sim)).toEqual(['a']);
    advance(1);
    expect(await ids(sim)).toEqual([]);
    expect(sim.drainObservations()).toEqual([{ kind: 'fenced', partitionId: 'a', incarnation: 1, atMs: t0 + 9000 }]);
  });

  it('a late pet saves nothing: the watchdog fires first, then the pet is refused', async () => {
    const { sim, advanceClock } = makeSim();
    await sim.start(config('a'));
    await sim.armWatchdog(1000);
    advanceClock(1000);
    const error = await rejection(sim.petWatchdog());
    expect(error.code).toBe('invalid-state');
    expect(error.message).toBe(
      `cannot pet the watchdog of host host-1: it is not armed (it last fired at ${t0 + 1000}); arm it first`,
    );
    expect(await ids(sim)).toEqual([]);
    expect(sim.drainObservations()).toHaveLength(1);
  });

  it('disarming stops it; pet needs it armed', async () => {
    const { sim, advance } = makeSim();
    await sim.start(config('a'));
    expect((await rejection(sim.petWatchdog())).message).toBe(
      'cannot pet the watchdog of host host-1: it is not armed; arm it first',
    );
    await sim.armWatchdog(1000);
    advance(900);
    expect(await sim.disarmWatchdog()).toEqual({
      armed: false,
      timeoutMs: null,
      expiresAtMs: null,
      firedCount: 0,
      lastFiredAtMs: null,
    });
    expect((await sim.disarmWatchdog()).armed).toBe(false);
    advance(3_600_000);
    expect(await ids(sim)).toEqual(['a']);
    expect((await rejection(sim.petWatchdog())).code).toBe('invalid-state');
    expect(sim.drainObservations()).toEqual([]);
  });

  it('re-arming replaces the timeout, and works again after a firing', async () => {
    const { sim, advance, now } = makeSim();
    await sim.start(config('a'));
    await sim.armWatchdog(1000);
    advance(500);
    expect(await sim.armWatchdog(200)).toMatchObject({ timeoutMs: 200, expiresAtMs: now() + 200 });
    advance(200);
    expect(await ids(sim)).toEqual([]);
    sim.drainObservations();

    await sim.start(config('a', { incarnation: 2 }));
    await sim.armWatchdog(300);
    advance(200);
    await sim.petWatchdog();
    advance(299);
    expect(await ids(sim)).toEqual(['a']);
    advance(1);
    expect(await ids(sim)).toEqual([]);
    expect(sim.drainObservations()).toEqual([{ kind: 'fenced', partitionId: 'a', incarnation: 2, atMs: now() }]);
    expect(await sim.watchdogStatus()).toMatchObject({ armed: false, firedCount: 2, lastFiredAtMs: now() });
  });

  it('firing on an empty host only counts', async () => {
    const { sim, advance } = makeSim();
    await sim.armWatchdog(watchdogTimeoutMsMin);
    advance(watchdogTimeoutMsMin);
    expect(await sim.watchdogStatus()).toMatchObject({ armed: false, firedCount: 1 });
    expect(sim.drainObservations()).toEqual([]);
  });

  it('keeps saved partitions (they do not run), which can be restored after the fence', async () => {
    const { sim, advance } = makeSim();
    await sim.start(config('a'));
    await sim.start(config('s', { incarnation: 4 }));
    await sim.save('s', 4);
    await sim.armWatchdog(1000);
    advance(1000);
    expect(sim.drainObservations()).toEqual([{ kind: 'fenced', partitionId: 'a', incarnation: 1, atMs: t0 + 1000 }]);
    expect((await sim.start(config('s', { incarnation: 4 }))).state).toBe('Running');
  });

  it('refuses timeouts outside 100 ms – 10 min or not whole milliseconds', async () => {
    const { sim } = makeSim();
    for (const timeoutMs of [99, watchdogTimeoutMsMax + 1, 150.5, 0, -1000, Number.NaN, Number.POSITIVE_INFINITY]) {
      const error = await rejection(sim.armWatchdog(timeoutMs));
      expect(error.code).toBe('invalid-config');
      expect(error.message).toMatch(/watchdog timeoutMs must be an integer from 100 to 600000/);
    }
    expect((await sim.watchdogStatus()).armed).toBe(false);
    expect((await sim.armWatchdog(watchdogTimeoutMsMin)).timeoutMs).toBe(100);
    expect((await sim.armWatchdog(watchdogTimeoutMsMax)).timeoutMs).toBe(600_000);
  });

  it('is deterministic: the same calls give the same observations and status', async () => {
    const run = async () => {
      const { sim, advance } = makeSim();
      await sim.start(config('x'));
      await sim.start(config('y', { incarnation: 2 }));
      await sim.armWatchdog(250);
      advance(200);
      await sim.petWatchdog();
      advance(260);
      return { observations: sim.drainObservations(), status: await sim.watchdogStatus() };
    };
    expect(await run()).toEqual(await run());
  });
});
