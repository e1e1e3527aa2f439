/**
 * Liveness and the HA side of the deciders: a host's lease (Unknown → Up → Suspect → Failed,
 * Fenced from anywhere), the partition losing its host and HA's decisions recorded on it, and the
 * anti-affinity rule of placement (control-planes.md §1.6: soft by default, hard blocks).
 */
import { describe, expect, it } from 'vitest';
import {
  type HaPolicyRecord,
  type HostCommand,
  type HostEvent,
  type HostLiveness,
  type LeaseTerms,
  type PartitionEvent,
  type PlacementCandidate,
  type PlacementRequest,
  emptyTotals,
  hostLimitPresets,
  place,
  softAntiAffinityPenalty,
} from '../../services/domain/index.ts';
import { deciderSpec } from './decider-spec.ts';
import {
  type HistoryName,
  histories,
  hostDecider,
  hostId,
  liveHistoryNames,
  otherHostId,
  p,
  partitionDecider,
  partitionId,
  pm,
  registered,
  statusOf,
} from './fixtures.ts';

// ---------------------------------------------------------------- hosts

const host = deciderSpec(hostDecider);

const terms: LeaseTerms = { leaseMs: 10_000, renewMs: 1_000, marginMs: 2_000 };
const acquire = (bootId = 'boot-1', t: LeaseTerms = terms): HostCommand => ({ type: 'AcquireLease', bootId, ...t });
const leaseAcquired = (previousLiveness: HostLiveness, bootId = 'boot-1', t: LeaseTerms = terms): HostEvent => ({
  type: 'HostLeaseAcquired',
  data: { hostId, bootId, previousLiveness, ...t },
});
const suspected = (silentMs = 3_500): HostEvent => ({ type: 'HostSuspected', data: { hostId, silentMs, renewMs: terms.renewMs } });
const declareFailed = (silentMs = 12_500): HostCommand => ({
  type: 'DeclareHostFailed',
  silentMs,
  lastRenewedAt: '2025-03-01T12:00:00.000Z',
  reason: `no lease renewal for ${silentMs} ms`,
});
const hostFailed = (silentMs = 12_500): HostEvent => ({
  type: 'HostFailed',
  data: { hostId, silentMs, lastRenewedAt: '2025-03-01T12:00:00.000Z', reason: `no lease renewal for ${silentMs} ms`, ...terms },
});
const reportFenced = (bootId = 'boot-1'): HostCommand => ({
  type: 'ReportFenced',
  bootId,
  turnedOff: [`${partitionId}#1`],
  how: 'self-fence',
  reason: 'lease lost',
});
const fenced = (bootId = 'boot-1'): HostEvent => ({
  type: 'HostFenced',
  data: { hostId, bootId, turnedOff: [`${partitionId}#1`], how: 'self-fence', reason: 'lease lost' },
});

const up = [registered(), leaseAcquired('Unknown')];
const suspect = [...up, suspected()];
const hostHistories: Record<HostLiveness, readonly HostEvent[]> = {
  Unknown: [registered()],
  Up: up,
  Suspect: suspect,
  Failed: [...suspect, hostFailed()],
  Fenced: [...suspect, hostFailed(), fenced()],
};
const livenesses = Object.keys(hostHistories) as HostLiveness[];

describe('host liveness histories', () => {
  it.each(livenesses)('%s folds to that liveness', (liveness) => {
    const { state } = host.given(hostHistories[liveness]);
    expect(state).toMatchObject({ status: 'Registered', liveness });
  });
});

describe('AcquireLease', () => {
  it.each(['Unknown', 'Suspect', 'Failed', 'Fenced'] as const)('from %s: the host is Up, with the lease and where it came from', (from) => {
    const { stateAfter } = host.given(hostHistories[from]).when(acquire('boot-2')).then([leaseAcquired(from, 'boot-2')]);
    expect(stateAfter).toMatchObject({ liveness: 'Up', lease: { bootId: 'boot-2', ...terms } });
  });

  it('the same boot and terms while Up is a no-op (a renewal)', () => {
    host.given(up).when(acquire()).then([]);
  });

  it('the same boot again after being Suspect or Failed is a new lease', () => {
    host.given(suspect).when(acquire()).then([leaseAcquired('Suspect')]);
    host.given(hostHistories.Failed).when(acquire()).then([leaseAcquired('Failed')]);
  });

  it('a new boot while Up is a new lease (the daemon restarted)', () => {
    const { stateAfter } = host.given(up).when(acquire('boot-2')).then([leaseAcquired('Up', 'boot-2')]);
    expect(stateAfter).toMatchObject({ liveness: 'Up', lease: { bootId: 'boot-2' } });
  });

  it('other terms on the same boot while Up are a new lease', () => {
    const longer = { ...terms, leaseMs: 20_000 };
    const { stateAfter } = host.given(up).when(acquire('boot-1', longer)).then([leaseAcquired('Up', 'boot-1', longer)]);
    expect(stateAfter).toMatchObject({ lease: { leaseMs: 20_000 } });
  });

  it.each([
    ['renewMs 0', { renewMs: 0 }],
    ['renewMs negative', { renewMs: -1 }],
    ['leaseMs equal to renewMs', { leaseMs: 1_000 }],
    ['leaseMs below renewMs', { leaseMs: 500 }],
    ['marginMs negative', { marginMs: -1 }],
    ['marginMs equal to leaseMs', { marginMs: 10_000 }],
    ['marginMs above leaseMs', { marginMs: 20_000 }],
    ['renewMs NaN', { renewMs: Number.NaN }],
    ['leaseMs NaN', { leaseMs: Number.NaN }],
    ['marginMs NaN', { marginMs: Number.NaN }],
  ])('rejects invalid terms: %s', (_name, override) => {
    for (const liveness of livenesses) {
      host.given(hostHistories[liveness]).when(acquire('boot-9', { ...terms, ...override })).thenRejects({ kind: 'invalid', code: 'invalid-lease' });
    }
  });

  it('accepts the tightest valid terms', () => {
    const tight = { leaseMs: 2, renewMs: 1, marginMs: 0 };
    host.given([registered()]).when(acquire('boot-1', tight)).then([leaseAcquired('Unknown', 'boot-1', tight)]);
  });

  it('needs a registered host', () => {
    host.given([]).when(acquire()).thenRejects({ kind: 'not-found', code: 'host-not-found' });
  });
});

describe('SuspectHost', () => {
  it('from Up: Suspect, with the silence and the renewal period', () => {
    const { stateAfter } = host.given(up).when({ type: 'SuspectHost', silentMs: 3_500 }).then([suspected(3_500)]);
    expect(stateAfter).toMatchObject({ liveness: 'Suspect', lease: { bootId: 'boot-1' } });
  });

  it.each(['Unknown', 'Suspect', 'Failed', 'Fenced'] as const)('from %s: no-op', (from) => {
    host.given(hostHistories[from]).when({ type: 'SuspectHost', silentMs: 3_500 }).then([]);
  });
});

describe('DeclareHostFailed', () => {
  it.each(['Up', 'Suspect'] as const)('from %s: Failed, with the lease terms it broke', (from) => {
    const { stateAfter } = host.given(hostHistories[from]).when(declareFailed()).then([hostFailed()]);
    expect(stateAfter).toMatchObject({ liveness: 'Failed', lease: { bootId: 'boot-1', ...terms } });
  });

  it('records the terms of the lease in force, not the first one', () => {
    const longer = { leaseMs: 30_000, renewMs: 3_000, marginMs: 5_000 };
    const { events } = host.given([...up, leaseAcquired('Up', 'boot-2', longer)]).when(declareFailed()).thenAccepts();
    expect(events).toEqual([{ type: 'HostFailed', data: expect.objectContaining(longer) }]);
  });

  it.each(['Unknown', 'Failed', 'Fenced'] as const)('from %s: no-op', (from) => {
    host.given(hostHistories[from]).when(declareFailed()).then([]);
  });

  it('without a lease: no-op, even when Suspect', () => {
    // A history the deciders never write (Suspect without a lease), folded all the same.
    const { state } = host.given([registered(), suspected()]);
    expect(state).toMatchObject({ liveness: 'Suspect', lease: null });
    host.given([registered(), suspected()]).when(declareFailed()).then([]);
  });
});

describe('ReportFenced', () => {
  it.each(livenesses)('from %s: Fenced', (from) => {
    const { stateAfter } = host.given(hostHistories[from]).when(reportFenced()).then([fenced()]);
    expect(stateAfter).toMatchObject({ liveness: 'Fenced' });
  });

  it('carries what was turned off and how', () => {
    const command: HostCommand = { type: 'ReportFenced', bootId: 'boot-7', turnedOff: ['a#3', 'b#1'], how: 'watchdog', reason: 'daemon hung' };
    host
      .given(up)
      .when(command)
      .then([{ type: 'HostFenced', data: { hostId, bootId: 'boot-7', turnedOff: ['a#3', 'b#1'], how: 'watchdog', reason: 'daemon hung' } }]);
  });

  it('a fenced host comes back Up with a new lease', () => {
    host.given(hostHistories.Fenced).when(acquire('boot-2')).then([leaseAcquired('Fenced', 'boot-2')]);
  });
});

describe('liveness and the rest of the host', () => {
  it('lease transitions keep the capacity, labels, cordon and reservations', () => {
    const reservedEvent: HostEvent = {
      type: 'HostCapacityReserved',
      data: { hostId, reservationId: 'res-1', partitionId, incarnation: 1, purpose: 'start', vcpus: 2, reserveLpPct: 0, memoryMiB: 2048 },
    };
    const cordoned: HostEvent = { type: 'HostCordoned', data: { hostId, reason: 'rack work' } };
    const before = host.given([registered(), cordoned, reservedEvent]).state;
    const after = host.given([registered(), cordoned, reservedEvent, leaseAcquired('Unknown'), suspected(), hostFailed(), fenced()]).state;
    const { liveness: _l1, lease: _a, ...restBefore } = before as Extract<typeof before, { status: 'Registered' }>;
    const { liveness: _l2, lease: _b, ...restAfter } = after as Extract<typeof after, { status: 'Registered' }>;
    expect(restAfter).toEqual(restBefore);
  });
});

// ---------------------------------------------------------------- partitions

const partition = deciderSpec(partitionDecider);
const markLost = (host = hostId, hostFailedEventId = 'host-ev-7') => ({ type: 'MarkHostLost', hostId: host, hostFailedEventId }) as const;
const hostLost = (o: { host?: string; incarnation?: number } = {}): PartitionEvent => {
  const on = o.host ?? hostId;
  return {
    type: 'PartitionHostLost',
    data: { partitionId, hostId: on, incarnation: o.incarnation ?? 1, hostFailedEventId: 'host-ev-7', reason: `host ${on} failed (lease expired and fenced)` },
  };
};

describe('MarkHostLost', () => {
  it.each(liveHistoryNames)('a %s partition on the failed host is lost: Failed, with the host it was on', (name) => {
    const { stateAfter } = partition.given(histories[name]).when(markLost()).then([hostLost()]);
    expect(stateAfter).toMatchObject({
      status: 'Failed',
      partitionId,
      incarnation: 1,
      lastHostId: hostId,
      reason: `host ${hostId} failed (lease expired and fenced)`,
    });
  });

  it.each(['Off', 'Saved', 'Failed'] as HistoryName[])('a %s partition is not live: no events', (name) => {
    const { stateAfter } = partition.given(histories[name]).when(markLost()).then([]);
    expect(stateAfter).toMatchObject({ status: statusOf(name) });
  });

  it('a partition running on another host is untouched', () => {
    partition.given([p.created(), p.startRequested({ hostId: otherHostId }), p.started({ hostId: otherHostId })]).when(markLost()).then([]);
  });

  it('a partition that already migrated away is untouched; its new host failing loses it', () => {
    const migrated = [...histories.Running, pm.started(), pm.migrated()];
    partition.given(migrated).when(markLost(hostId)).then([]);
    const { stateAfter } = partition.given(migrated).when(markLost(otherHostId)).then([hostLost({ host: otherHostId, incarnation: 2 })]);
    expect(stateAfter).toMatchObject({ status: 'Failed', lastHostId: otherHostId, incarnation: 2 });
  });

  it('a partition migrating off the failed host is lost (the migration lock does not hold it back)', () => {
    const { stateAfter } = partition.given([...histories.Running, pm.started()]).when(markLost()).then([hostLost()]);
    expect(stateAfter).toMatchObject({ status: 'Failed', lastHostId: hostId });
    expect(stateAfter).not.toHaveProperty('migration');
  });

  it('the target of a migration failing does not lose the partition (it still runs on its source)', () => {
    partition.given([...histories.Running, pm.started()]).when(markLost(otherHostId)).then([]);
  });

  it('a restarted partition (new incarnation, another host) is not lost twice', () => {
    const restarted = [...histories.Running, hostLost(), p.startRequested({ hostId: otherHostId, incarnation: 2 }), p.started({ hostId: otherHostId, incarnation: 2 })];
    partition.given(restarted).when(markLost()).then([]);
  });

  it('needs an existing partition', () => {
    partition.given([]).when(markLost()).thenRejects({ kind: 'not-found', code: 'partition-not-found' });
    partition.given([...histories.Off, p.deleted()]).when(markLost()).thenRejects({ kind: 'not-found', code: 'partition-not-found' });
  });
});

const policy: HaPolicyRecord = {
  restart: 'same-host',
  priority: 3000,
  restartsMax: 3,
  windowMs: 900_000,
  backoffInitialMs: 10_000,
  backoffMaxMs: 300_000,
  resetAfterMs: 600_000,
};
const haEvents: Record<string, Extract<PartitionEvent, { type: 'PartitionRestartPlanned' | 'PartitionRestartGivenUp' | 'PartitionUnplaceable' }>> = {
  planned: {
    type: 'PartitionRestartPlanned',
    data: {
      partitionId,
      causeEventId: 'crash-1',
      causeType: 'PartitionCrashed',
      attempt: 1,
      restartsInWindow: 0,
      delayMs: 10_000,
      notBefore: '2025-03-01T12:00:10.000Z',
      where: 'same-host',
      lastHostId: hostId,
      policy,
    },
  },
  givenUp: {
    type: 'PartitionRestartGivenUp',
    data: { partitionId, causeEventId: 'crash-4', restartsInWindow: 3, reason: '3 restarts within 15 min (limit 3): left Failed', policy },
  },
  unplaceable: {
    type: 'PartitionUnplaceable',
    data: {
      partitionId,
      causeEventId: 'lost-1',
      placement: { policy: 'least-loaded', chosenHostId: null, scores: [], rejected: [{ hostId: otherHostId, reasons: ['host is cordoned'] }] },
      reason: 'no host can take it',
    },
  },
};
const haEventNames = Object.keys(haEvents);

describe('RecordHaDecision', () => {
  describe.each(haEventNames)('%s', (eventName) => {
    const event = haEvents[eventName]!;

    it.each(liveHistoryNames)('is refused while %s', (name) => {
      partition.given(histories[name]).when({ type: 'RecordHaDecision', event }).thenRejects({ kind: 'conflict', code: 'invalid-transition' });
    });

    it.each(['Failed', 'Off', 'Saved'] as HistoryName[])('is recorded as it is when %s, changing nothing else', (name) => {
      const { stateBefore, stateAfter } = partition.given(histories[name]).when({ type: 'RecordHaDecision', event }).then([event]);
      expect(stateAfter).toEqual(stateBefore);
    });

    it('is recorded after a host loss', () => {
      partition.given([...histories.Running, hostLost()]).when({ type: 'RecordHaDecision', event }).then([event]);
    });
  });

  it('needs an existing partition', () => {
    partition.given([]).when({ type: 'RecordHaDecision', event: haEvents.planned! }).thenRejects({ kind: 'not-found', code: 'partition-not-found' });
  });
});

// ---------------------------------------------------------------- placement anti-affinity

/** 16 LPs, 64 GiB, nothing reserved, schedulable; `load` GiB already reserved. */
function candidate(id: string, o: { load?: number; classes?: string[]; cordoned?: boolean } = {}): PlacementCandidate {
  return {
    hostId: id,
    logicalProcessors: 16,
    memoryMiB: 65_536,
    parentReserveMiB: 0,
    limits: hostLimitPresets.modern,
    reserved: o.load ? { ...emptyTotals, count: 1, memoryMiB: o.load * 1024 } : emptyTotals,
    cordoned: o.cordoned ?? false,
    daemonConnected: true,
    antiAffinityClasses: o.classes ?? [],
  };
}

function request(overrides: Partial<PlacementRequest> = {}): PlacementRequest {
  return { vcpus: 2, reserveLpPct: 0, memoryMiB: 8192, excludeHostIds: [], requiredHostId: null, ...overrides };
}

const dbHard = { antiAffinityClass: 'db', antiAffinityMode: 'hard' } as const;
const dbSoft = { antiAffinityClass: 'db', antiAffinityMode: 'soft' } as const;

describe('placement anti-affinity', () => {
  it('hard rejects a host running a partition of the same class, naming the class', () => {
    const record = place([candidate('h1', { classes: ['db'] }), candidate('h2', { load: 32 })], request(dbHard));
    expect(record).toEqual({
      policy: 'least-loaded',
      chosenHostId: 'h2',
      scores: [{ hostId: 'h2', score: 37.5 }],
      rejected: [{ hostId: 'h1', reasons: ['anti-affinity: a partition of class db runs there'] }],
    });
  });

  it('hard places nowhere when every host runs the class', () => {
    const record = place([candidate('h1', { classes: ['web', 'db'] }), candidate('h2', { classes: ['db'] })], request(dbHard));
    expect(record.chosenHostId).toBeNull();
    expect(record.scores).toEqual([]);
    expect(record.rejected.map((r) => r.hostId)).toEqual(['h1', 'h2']);
    for (const r of record.rejected) expect(r.reasons.join('; ')).toContain('class db');
  });

  it('hard lists the class alongside the host’s other shortfalls', () => {
    const record = place([candidate('h1', { classes: ['db'], cordoned: true })], request(dbHard));
    expect(record.rejected).toEqual([{ hostId: 'h1', reasons: ['host is cordoned', 'anti-affinity: a partition of class db runs there'] }]);
  });

  it('hard holds for a requested host too', () => {
    const record = place([candidate('h1', { classes: ['db'] }), candidate('h2')], request({ ...dbHard, requiredHostId: 'h1' }));
    expect(record).toMatchObject({ policy: 'requested', chosenHostId: null, rejected: [{ hostId: 'h1', reasons: [expect.stringContaining('class db')] }] });
  });

  it('soft prefers another host, even a busier one', () => {
    const record = place([candidate('h1', { classes: ['db'] }), candidate('h2', { load: 48 })], request(dbSoft));
    expect(record).toEqual({
      policy: 'least-loaded',
      chosenHostId: 'h2',
      scores: [
        { hostId: 'h1', score: 87.5 - softAntiAffinityPenalty },
        { hostId: 'h2', score: 12.5 },
      ],
      rejected: [],
    });
  });

  it('soft still places on a same-class host when nothing else fits', () => {
    const record = place([candidate('h1', { classes: ['db'] }), candidate('h2', { cordoned: true }), candidate('h3', { load: 60 })], request(dbSoft));
    expect(record.chosenHostId).toBe('h1');
    expect(record.rejected.map((r) => r.hostId)).toEqual(['h2', 'h3']);
  });

  it('soft among same-class hosts only: the least loaded of them', () => {
    const record = place([candidate('h1', { classes: ['db'], load: 16 }), candidate('h2', { classes: ['db'] })], request(dbSoft));
    expect(record.chosenHostId).toBe('h2');
  });

  it('is soft when no mode is given', () => {
    const record = place([candidate('h1', { classes: ['db'] })], request({ antiAffinityClass: 'db' }));
    expect(record.chosenHostId).toBe('h1');
    expect(record.rejected).toEqual([]);
  });

  it('another class, or no class in the request, is no conflict', () => {
    const hosts = [candidate('h1', { classes: ['db'] }), candidate('h2', { load: 8 })];
    expect(place(hosts, request({ antiAffinityClass: 'web', antiAffinityMode: 'hard' })).chosenHostId).toBe('h1');
    expect(place(hosts, request({ antiAffinityClass: null, antiAffinityMode: 'hard' })).chosenHostId).toBe('h1');
    expect(place(hosts, request()).chosenHostId).toBe('h1');
  });

  it('a host without class information counts as running none', () => {
    const { antiAffinityClasses: _c, ...bare } = candidate('h1');
    expect(place([bare], request(dbHard)).chosenHostId).toBe('h1');
  });
});

