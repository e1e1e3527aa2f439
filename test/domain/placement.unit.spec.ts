/**
 * Placement: least loaded host that fits, deterministic tie-break by host id, and a record of
 * why every other host was not chosen.
 */
import { describe, expect, it } from 'vitest';
import {
  type PlacementCandidate,
  type PlacementRequest,
  emptyTotals,
  hostLimitPresets,
  place,
} from '../../services/domain/index.ts';

/** 16 LPs, 64 GiB all usable, modern limits, nothing reserved, schedulable. */
function candidate(hostId: string, overrides: Partial<PlacementCandidate> = {}): PlacementCandidate {
  return {
    hostId,
    logicalProcessors: 16,
    memoryMiB: 65_536,
    parentReserveMiB: 0,
    limits: hostLimitPresets.modern,
    reserved: emptyTotals,
    cordoned: false,
    daemonConnected: true,
    ...overrides,
  };
}

function request(overrides: Partial<PlacementRequest> = {}): PlacementRequest {
  return { vcpus: 2, reserveLpPct: 0, memoryMiB: 8192, excludeHostIds: [], requiredHostId: null, ...overrides };
}

const usingMemory = (memoryMiB: number) => ({ ...emptyTotals, count: 1, memoryMiB });

describe('place', () => {
  it('chooses the least loaded host and records every score', () => {
    const record = place(
      [candidate('h1', { reserved: usingMemory(32_768) }), candidate('h2'), candidate('h3', { reserved: usingMemory(16_384) })],
      request(),
    );
    // Memory dominates: h1 (32 + 8) / 64, h2 8 / 64, h3 (16 + 8) / 64.
    expect(record).toEqual({
      policy: 'least-loaded',
      chosenHostId: 'h2',
      scores: [
        { hostId: 'h1', score: 37.5 },
        { hostId: 'h2', score: 87.5 },
        { hostId: 'h3', score: 62.5 },
      ],
      rejected: [],
    });
  });

  it('scores a host by its most used dimension (memory, vCPUs or processor reserve)', () => {
    const reserveHeavy = candidate('a', { reserved: { count: 1, vcpus: 8, reserveLpPct: 1200, memoryMiB: 0 } });
    const vcpuHeavy = candidate('b', {
      limits: { ...hostLimitPresets.modern, vcpusPerHostMax: 20 },
      reserved: { count: 1, vcpus: 14, reserveLpPct: 0, memoryMiB: 0 },
    });
    const memoryLight = candidate('c', { reserved: usingMemory(24_576) });
    const record = place([reserveHeavy, vcpuHeavy, memoryLight], request({ vcpus: 2, reserveLpPct: 100, memoryMiB: 8192 }));
    // a: reserve 1300 / 1600 → 18.75; b: vCPUs 16 / 20 → 20; c: memory 32 / 64 → 50.
    expect(record.scores).toEqual([
      { hostId: 'a', score: 18.75 },
      { hostId: 'b', score: 20 },
      { hostId: 'c', score: 50 },
    ]);
    expect(record.chosenHostId).toBe('c');
  });

  it('breaks ties by host id, whatever the order hosts are given in', () => {
    const hosts = [candidate('h3'), candidate('h1'), candidate('h2')];
    expect(place(hosts, request()).chosenHostId).toBe('h1');
    expect(place([...hosts].reverse(), request()).chosenHostId).toBe('h1');
    expect(place(hosts, request()).scores.map((s) => s.hostId)).toEqual(['h1', 'h2', 'h3']);
  });

  it('treats loads equal to 0.01 of a point as a tie (scores are rounded), so the lower id wins', () => {
    // 1 MiB more on h1 changes its load by 1/65536: the same score after rounding.
    const record = place([candidate('h2'), candidate('h1', { reserved: usingMemory(1) })], request());
    expect(record.scores).toEqual([
      { hostId: 'h1', score: 87.5 },
      { hostId: 'h2', score: 87.5 },
    ]);
    expect(record.chosenHostId).toBe('h1');
  });

  it('is deterministic: the same input gives the same record', () => {
    const hosts = [candidate('b', { reserved: usingMemory(100) }), candidate('a', { cordoned: true }), candidate('c')];
    expect(place(hosts, request())).toEqual(place([...hosts].reverse(), request()));
  });

  it('rejects a cordoned host', () => {
    const record = place([candidate('h1', { cordoned: true }), candidate('h2', { reserved: usingMemory(40_000) })], request());
    expect(record.chosenHostId).toBe('h2');
    expect(record.rejected).toEqual([{ hostId: 'h1', reasons: ['host is cordoned'] }]);
  });

  it('rejects a host whose node daemon is not connected', () => {
    const record = place([candidate('h1', { daemonConnected: false }), candidate('h2')], request());
    expect(record.chosenHostId).toBe('h2');
    expect(record.rejected).toEqual([{ hostId: 'h1', reasons: ['node daemon is not connected'] }]);
  });

  it('rejects excluded hosts (e.g. a migration source)', () => {
    const record = place([candidate('h1'), candidate('h2', { reserved: usingMemory(40_000) })], request({ excludeHostIds: ['h1'] }));
    expect(record.chosenHostId).toBe('h2');
    expect(record.rejected).toEqual([{ hostId: 'h1', reasons: ['excluded by the request'] }]);
  });

  it('rejects a host without the capacity, with the same reasons the host decider gives', () => {
    const small = candidate('h1', { logicalProcessors: 2, memoryMiB: 4096, parentReserveMiB: 1024 });
    const record = place([small, candidate('h2', { reserved: usingMemory(50_000) })], request({ vcpus: 4, memoryMiB: 8192 }));
    expect(record.chosenHostId).toBe('h2');
    expect(record.rejected).toEqual([
      {
        hostId: 'h1',
        reasons: ['needs 4 vCPUs but the host has 2 logical processors', 'needs 8192 MiB of memory but only 3072 MiB is free'],
      },
    ]);
  });

  it('lists every reason of a host at once, policy reasons first', () => {
    const record = place(
      [candidate('h1', { cordoned: true, daemonConnected: false, memoryMiB: 4096 })],
      request({ excludeHostIds: ['h1'] }),
    );
    expect(record.rejected).toEqual([
      {
        hostId: 'h1',
        reasons: [
          'excluded by the request',
          'host is cordoned',
          'node daemon is not connected',
          'needs 8192 MiB of memory but only 4096 MiB is free',
        ],
      },
    ]);
  });

  it('chooses no host when none fits, listing all with reasons', () => {
    const record = place(
      [candidate('h2', { cordoned: true }), candidate('h1', { reserved: usingMemory(60_000) })],
      request(),
    );
    expect(record).toEqual({
      policy: 'least-loaded',
      chosenHostId: null,
      scores: [],
      rejected: [
        { hostId: 'h1', reasons: ['needs 8192 MiB of memory but only 5536 MiB is free'] },
        { hostId: 'h2', reasons: ['host is cordoned'] },
      ],
    });
  });

  it('chooses no host when there are none', () => {
    expect(place([], request())).toEqual({ policy: 'least-loaded', chosenHostId: null, scores: [], rejected: [] });
  });

  describe('requiredHostId', () => {
    it('considers only the required host, even when another is less loaded', () => {
      const record = place(
        [candidate('h1'), candidate('h2', { reserved: usingMemory(40_000) })],
        request({ requiredHostId: 'h2' }),
      );
      expect(record).toEqual({
        policy: 'requested',
        chosenHostId: 'h2',
        scores: [{ hostId: 'h2', score: Math.round(10_000 * (1 - 48_192 / 65_536)) / 100 }],
        rejected: [],
      });
    });

    it('rejects the required host when it does not fit, choosing no other', () => {
      const record = place([candidate('h1'), candidate('h2', { cordoned: true })], request({ requiredHostId: 'h2' }));
      expect(record).toEqual({
        policy: 'requested',
        chosenHostId: null,
        scores: [],
        rejected: [{ hostId: 'h2', reasons: ['host is cordoned'] }],
      });
    });

    it('does not require a connected node daemon on the required host (explicit placement by the caller)', () => {
      const record = place([candidate('h1', { daemonConnected: false })], request({ requiredHostId: 'h1' }));
      expect(record.chosenHostId).toBe('h1');
    });

    it('still honours the exclusions', () => {
      const record = place([candidate('h1')], request({ requiredHostId: 'h1', excludeHostIds: ['h1'] }));
      expect(record.chosenHostId).toBeNull();
      expect(record.rejected).toEqual([{ hostId: 'h1', reasons: ['excluded by the request'] }]);
    });

    it('reports an unknown required host as "no such host"', () => {
      expect(place([candidate('h1')], request({ requiredHostId: 'h9' }))).toEqual({
        policy: 'requested',
        chosenHostId: null,
        scores: [],
        rejected: [{ hostId: 'h9', reasons: ['no such host'] }],
      });
    });
  });
});
