/**
 * The HA ledger: what HA remembers about each partition, folded from the log. Replaying the same
 * log rebuilds the same records.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type HaRecord, HaLedger, type LoggedEvent, defaultHaConfig } from '../../services/ha/index.ts';

const resetAfterMs = defaultHaConfig.resetAfterMs;
const T0 = Date.parse('2025-03-01T12:00:00.000Z');
const sec = (n: number) => n * 1000;
const min = (n: number) => n * 60_000;

let seq = 0;
function ev(type: string, atMs: number, data: { [key: string]: unknown } = {}, actor = 'system:node', eventId = `ev-${++seq}`): LoggedEvent {
  return { eventId, type, actor, recordedAt: new Date(atMs).toISOString(), data: { partitionId: 'web', hostId: 'h1', ...data } };
}

const userStart = (atMs: number, data: { [key: string]: unknown } = {}) => ev('PartitionStartRequested', atMs, data, 'user:alice');
const haStart = (atMs: number, data: { [key: string]: unknown } = {}) => ev('PartitionStartRequested', atMs, data, 'system:ha');

function fold(events: readonly LoggedEvent[], ledger = new HaLedger(resetAfterMs)): HaLedger {
  for (const e of events) ledger.apply(e);
  return ledger;
}

const empty: HaRecord = {
  failure: null,
  restartTimesMs: [],
  consecutiveRestarts: 0,
  runningSinceMs: null,
  plan: null,
  gaveUpCauseId: null,
  unplaceableCauseId: null,
};

describe('HaLedger', () => {
  it('starts with no records, and record() creates an empty one', () => {
    const ledger = new HaLedger(resetAfterMs);
    expect(ledger.partitions.size).toBe(0);
    expect(ledger.record('web')).toEqual(empty);
    expect(ledger.record('web')).toBe(ledger.record('web'));
  });

  it('ignores events without a partition id, and partition events HA does not care about', () => {
    const ledger = fold([
      { eventId: 'x', type: 'HostFailed', actor: 'system:ha', recordedAt: new Date(T0).toISOString(), data: { hostId: 'h1' } },
      ev('PartitionCrashed', T0, { partitionId: 42 }),
      ev('PartitionCreated', T0),
      ev('PartitionReconfigured', T0),
      ev('PartitionReportIgnored', T0),
      ev('PartitionPaused', T0),
    ]);
    expect(ledger.partitions.size).toBe(0);
  });

  describe('starts', () => {
    it('an HA start counts a restart and clears the plan', () => {
      const ledger = fold([
        ev('PartitionCrashed', T0, {}, 'system:node', 'crash-1'),
        ev('PartitionRestartPlanned', T0, { causeEventId: 'crash-1', notBefore: new Date(T0 + sec(10)).toISOString(), where: 'same-host' }),
        haStart(T0 + sec(10)),
      ]);
      expect(ledger.partitions.get('web')).toEqual({
        ...empty,
        failure: { kind: 'crashed', atMs: T0, eventId: 'crash-1', hostId: 'h1' },
        restartTimesMs: [T0 + sec(10)],
        consecutiveRestarts: 1,
      });
    });

    it('HA starts accumulate', () => {
      const ledger = fold([haStart(T0), haStart(T0 + sec(20)), haStart(T0 + sec(60))]);
      expect(ledger.partitions.get('web')).toMatchObject({ restartTimesMs: [T0, T0 + sec(20), T0 + sec(60)], consecutiveRestarts: 3 });
    });

    it("a user's start resets the counters and the plan, but remembers the past failure and decisions", () => {
      const ledger = fold([
        ev('PartitionCrashed', T0, {}, 'system:node', 'crash-1'),
        haStart(T0 + sec(10)),
        ev('PartitionCrashed', T0 + sec(20), {}, 'system:node', 'crash-2'),
        ev('PartitionRestartGivenUp', T0 + sec(20), { causeEventId: 'crash-2', restartsInWindow: 3 }),
        ev('PartitionRestartPlanned', T0 + sec(21), { causeEventId: 'crash-2', notBefore: new Date(T0 + sec(40)).toISOString(), where: 'same-host' }),
        userStart(T0 + min(1)),
      ]);
      expect(ledger.partitions.get('web')).toEqual({
        ...empty,
        failure: { kind: 'crashed', atMs: T0 + sec(20), eventId: 'crash-2', hostId: 'h1' },
        gaveUpCauseId: 'crash-2',
      });
    });

    it('any actor but system:ha counts as a user', () => {
      for (const actor of ['user:alice', 'system:maintenance', 'anonymous']) {
        const ledger = fold([haStart(T0), ev('PartitionStartRequested', T0 + 1, {}, actor)]);
        expect(ledger.partitions.get('web')).toMatchObject({ restartTimesMs: [], consecutiveRestarts: 0 });
      }
    });

    it('PartitionStarted sets when it started running', () => {
      expect(fold([userStart(T0), ev('PartitionStarted', T0 + sec(2))]).partitions.get('web')?.runningSinceMs).toBe(T0 + sec(2));
    });
  });

  describe('failures', () => {
    it.each([
      ['PartitionCrashed', 'crashed'],
      ['PartitionStartFailed', 'start-failed'],
      ['PartitionHostLost', 'host-lost'],
    ] as const)('%s is a %s failure: remembered with its time, event and host; no longer running; plan cleared', (type, kind) => {
      const ledger = fold([
        userStart(T0),
        ev('PartitionStarted', T0 + sec(1), { hostId: 'h2' }),
        ev('PartitionRestartPlanned', T0 + sec(2), { causeEventId: 'older', notBefore: new Date(T0).toISOString(), where: 'any-host' }),
        ev(type, T0 + sec(30), { hostId: 'h2' }, 'system:node', 'fail-1'),
      ]);
      expect(ledger.partitions.get('web')).toEqual({ ...empty, failure: { kind, atMs: T0 + sec(30), eventId: 'fail-1', hostId: 'h2' } });
    });

    it('the latest failure replaces the previous one', () => {
      const ledger = fold([ev('PartitionCrashed', T0, {}, 'n', 'a'), ev('PartitionStartFailed', T0 + sec(5), { hostId: 'h3' }, 'n', 'b')]);
      expect(ledger.partitions.get('web')?.failure).toEqual({ kind: 'start-failed', atMs: T0 + sec(5), eventId: 'b', hostId: 'h3' });
    });

    it('a failure without a host id records an empty one', () => {
      const ledger = fold([ev('PartitionCrashed', T0, { hostId: undefined }, 'n', 'a')]);
      expect(ledger.partitions.get('web')?.failure).toEqual({ kind: 'crashed', atMs: T0, eventId: 'a', hostId: '' });
    });
  });

  describe('the backoff reset', () => {
    const history = (runMs: number) => [
      userStart(T0),
      ev('PartitionStarted', T0 + sec(1)),
      ev('PartitionCrashed', T0 + sec(20)),
      haStart(T0 + sec(30)),
      ev('PartitionStarted', T0 + sec(31)),
      ev('PartitionCrashed', T0 + sec(40)),
      haStart(T0 + sec(60)),
      ev('PartitionStarted', T0 + sec(61)),
      ev('PartitionCrashed', T0 + sec(61) + runMs),
    ];

    it('a run of resetAfterMs resets consecutiveRestarts at the next failure; the restart times stay (for the window)', () => {
      expect(fold(history(resetAfterMs)).partitions.get('web')).toMatchObject({ consecutiveRestarts: 0, restartTimesMs: [T0 + sec(30), T0 + sec(60)] });
      expect(fold(history(resetAfterMs + min(30))).partitions.get('web')).toMatchObject({ consecutiveRestarts: 0 });
    });

    it('a shorter run does not', () => {
      expect(fold(history(resetAfterMs - 1)).partitions.get('web')).toMatchObject({ consecutiveRestarts: 2 });
    });

    it('is applied only at the failure: a partition still running keeps its counters', () => {
      const ledger = fold(history(resetAfterMs).slice(0, -1));
      expect(ledger.partitions.get('web')).toMatchObject({ consecutiveRestarts: 2, runningSinceMs: T0 + sec(61) });
    });

    it('a failure before the partition ever ran (a failed start) does not reset', () => {
      const ledger = fold([haStart(T0), haStart(T0 + min(20)), ev('PartitionStartFailed', T0 + min(40))]);
      expect(ledger.partitions.get('web')).toMatchObject({ consecutiveRestarts: 2 });
    });

    it('uses the ledger’s own resetAfterMs', () => {
      const ledger = fold(history(sec(30)), new HaLedger(sec(30)));
      expect(ledger.partitions.get('web')).toMatchObject({ consecutiveRestarts: 0 });
    });
  });

  describe('decisions', () => {
    it('PartitionRestartPlanned records the plan', () => {
      const ledger = fold([
        ev('PartitionCrashed', T0, {}, 'n', 'crash-1'),
        ev('PartitionRestartPlanned', T0 + 5, { causeEventId: 'crash-1', notBefore: new Date(T0 + sec(10)).toISOString(), where: 'any-host' }),
      ]);
      expect(ledger.partitions.get('web')?.plan).toEqual({ causeEventId: 'crash-1', notBeforeMs: T0 + sec(10), where: 'any-host' });
    });

    it('PartitionRestartGivenUp and PartitionUnplaceable record their cause; neither clears the failure', () => {
      const ledger = fold([
        ev('PartitionHostLost', T0, {}, 'system:ha', 'lost-1'),
        ev('PartitionUnplaceable', T0 + 1, { causeEventId: 'lost-1' }),
        ev('PartitionRestartGivenUp', T0 + 2, { causeEventId: 'lost-1' }),
      ]);
      expect(ledger.partitions.get('web')).toEqual({
        ...empty,
        failure: { kind: 'host-lost', atMs: T0, eventId: 'lost-1', hostId: 'h1' },
        gaveUpCauseId: 'lost-1',
        unplaceableCauseId: 'lost-1',
      });
    });
  });

  describe('the end of a story', () => {
    it.each(['PartitionStopped', 'PartitionDeleted'])('%s forgets the partition', (type) => {
      const ledger = fold([haStart(T0), ev('PartitionStarted', T0 + 1), ev('PartitionCrashed', T0 + 2), ev(type, T0 + 3)]);
      expect(ledger.partitions.has('web')).toBe(false);
      // A later start begins a new, empty record.
      ledger.apply(userStart(T0 + 4));
      expect(ledger.partitions.get('web')).toEqual(empty);
    });
  });

  it('keeps partitions apart', () => {
    const ledger = fold([
      haStart(T0, { partitionId: 'a' }),
      ev('PartitionCrashed', T0 + 1, { partitionId: 'b' }, 'n', 'crash-b'),
      ev('PartitionStopped', T0 + 2, { partitionId: 'c' }),
    ]);
    expect([...ledger.partitions.keys()].sort()).toEqual(['a', 'b']);
    expect(ledger.partitions.get('a')).toEqual({ ...empty, restartTimesMs: [T0], consecutiveRestarts: 1 });
    expect(ledger.partitions.get('b')).toEqual({ ...empty, failure: { kind: 'crashed', atMs: T0 + 1, eventId: 'crash-b', hostId: 'h1' } });
  });
});

// ---------------------------------------------------------------- properties

const partitionIds = ['p1', 'p2', 'p3'];
const eventTypes = [
  'PartitionStartRequested',
  'PartitionStarted',
  'PartitionCrashed',
  'PartitionStartFailed',
  'PartitionHostLost',
  'PartitionRestartPlanned',
  'PartitionRestartGivenUp',
  'PartitionUnplaceable',
  'PartitionStopped',
  'PartitionDeleted',
  'PartitionPaused',
  'PartitionCreated',
] as const;

/** Random logs: events of three partitions, time moving forward by up to 20 min per event. */
const logArb = fc
  .array(
    fc.record({
      type: fc.constantFrom(...eventTypes),
      partitionId: fc.constantFrom(...partitionIds),
      hostId: fc.constantFrom('h1', 'h2'),
      actor: fc.constantFrom('system:ha', 'system:ha', 'user:alice', 'system:node'),
      stepMs: fc.integer({ min: 0, max: min(20) }),
      notBeforeInMs: fc.integer({ min: 0, max: min(5) }),
      where: fc.constantFrom('same-host' as const, 'any-host' as const),
      causeBack: fc.nat({ max: 5 }),
    }),
    { maxLength: 60 },
  )
  .map((steps) => {
    let at = T0;
    const log: LoggedEvent[] = [];
    steps.forEach((s, i) => {
      at += s.stepMs;
      const causeEventId = log[Math.max(0, log.length - 1 - s.causeBack)]?.eventId ?? 'none';
      const decision =
        s.type === 'PartitionRestartPlanned'
          ? { causeEventId, notBefore: new Date(at + s.notBeforeInMs).toISOString(), where: s.where }
          : s.type === 'PartitionRestartGivenUp' || s.type === 'PartitionUnplaceable'
            ? { causeEventId }
            : {};
      log.push({
        eventId: `e${i}`,
        type: s.type,
        actor: s.actor,
        recordedAt: new Date(at).toISOString(),
        data: { partitionId: s.partitionId, hostId: s.hostId, ...decision },
      });
    });
    return log;
  });

const snapshot = (ledger: HaLedger) => new Map([...ledger.partitions].map(([id, r]) => [id, structuredClone(r)]));

describe('HaLedger properties', () => {
  it('replaying the same events into a fresh ledger gives the same records', () => {
    fc.assert(
      fc.property(logArb, fc.nat(), (log, cut) => {
        const live = new HaLedger(resetAfterMs);
        const at = log.length === 0 ? 0 : cut % (log.length + 1);
        // Built live, in two sittings, while someone looks at the records in between.
        for (const e of log.slice(0, at)) live.apply(e);
        const midway = snapshot(live);
        for (const e of log.slice(at)) live.apply(e);
        const replayed = fold(log);
        expect(replayed.partitions).toEqual(live.partitions);
        // And replaying the prefix gives what was seen midway.
        expect(fold(log.slice(0, at)).partitions).toEqual(midway);
      }),
      { numRuns: 500 },
    );
  });

  it('two ledgers share no state', () => {
    fc.assert(
      fc.property(logArb, (log) => {
        const a = fold(log);
        const b = fold(log);
        const before = snapshot(b);
        for (const r of a.partitions.values()) {
          r.restartTimesMs.push(0);
          r.consecutiveRestarts += 100;
          if (r.plan) r.plan.notBeforeMs = 0;
          if (r.failure) r.failure.eventId = 'mutated';
        }
        a.partitions.set('intruder', { ...empty });
        expect(b.partitions).toEqual(before);
      }),
      { numRuns: 200 },
    );
  });

  it('each record matches the log: restarts since the last user start, last failure, counters bounded', () => {
    fc.assert(
      fc.property(logArb, (log) => {
        const ledger = fold(log);
        for (const id of partitionIds) {
          const own = log.filter((e) => e.data.partitionId === id);
          const lastEndAt = own.findLastIndex((e) => e.type === 'PartitionStopped' || e.type === 'PartitionDeleted');
          const story = own.slice(lastEndAt + 1);
          const r = ledger.partitions.get(id);
          if (story.length === 0 || story.every((e) => e.type === 'PartitionPaused' || e.type === 'PartitionCreated')) {
            expect(r).toBeUndefined();
            continue;
          }
          expect(r).toBeDefined();
          if (!r) continue;
          const starts = story.filter((e) => e.type === 'PartitionStartRequested');
          const lastUserStart = starts.findLastIndex((e) => e.actor !== 'system:ha');
          const haStartTimes = starts.slice(lastUserStart + 1).map((e) => Date.parse(e.recordedAt));
          expect(r.restartTimesMs).toEqual(haStartTimes);
          expect(r.consecutiveRestarts).toBeGreaterThanOrEqual(0);
          expect(r.consecutiveRestarts).toBeLessThanOrEqual(r.restartTimesMs.length);
          const failures = story.filter((e) => ['PartitionCrashed', 'PartitionStartFailed', 'PartitionHostLost'].includes(e.type));
          expect(r.failure?.eventId ?? null).toBe(failures.at(-1)?.eventId ?? null);
          // The plan is the last PartitionRestartPlanned, unless a start or a failure came after it.
          const clears = ['PartitionStartRequested', 'PartitionCrashed', 'PartitionStartFailed', 'PartitionHostLost'];
          const last = story.findLast((e) => e.type === 'PartitionRestartPlanned' || clears.includes(e.type));
          expect(r.plan?.causeEventId ?? null).toBe(last?.type === 'PartitionRestartPlanned' ? last.data.causeEventId : null);
          // Running since the last start, unless a failure came after it.
          const lastRun = story.findLast((e) => ['PartitionStarted', ...clears.slice(1)].includes(e.type));
          expect(r.runningSinceMs).toBe(lastRun && !clears.includes(lastRun.type) ? Date.parse(lastRun.recordedAt) : null);
        }
      }),
      { numRuns: 500 },
    );
  });
});
