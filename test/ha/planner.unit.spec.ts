/**
 * The HA restart policy (WSFC-shaped, control-planes.md §1.6 and §10.2): a host failure restarts
 * its partitions at once, by priority (High 3000, Medium 2000, Low 1000; 0 = no auto start); a
 * guest crash restarts in place after a doubling backoff (10 s → 5 min), at most 3 times in
 * 15 min, then HA gives up; a run of 10 min resets the backoff.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type FailureKind,
  type HaCandidate,
  type HaDecision,
  type HaRecord,
  HaLedger,
  type LoggedEvent,
  defaultHaConfig,
  planRestarts,
} from '../../services/ha/index.ts';

const config = defaultHaConfig;
const T0 = Date.parse('2025-03-01T12:00:00.000Z');
const sec = (n: number) => n * 1000;
const min = (n: number) => n * 60_000;

function record(overrides: Partial<HaRecord> = {}): HaRecord {
  return {
    failure: null,
    restartTimesMs: [],
    consecutiveRestarts: 0,
    runningSinceMs: null,
    plan: null,
    gaveUpCauseId: null,
    unplaceableCauseId: null,
    ...overrides,
  };
}

function failure(kind: FailureKind, o: { atMs?: number; eventId?: string; hostId?: string } = {}): HaRecord['failure'] {
  return { kind, atMs: o.atMs ?? T0, eventId: o.eventId ?? 'ev-fail-1', hostId: o.hostId ?? 'h1' };
}

function candidate(partitionId: string, restart: HaCandidate['restart'], priority: number, r: HaRecord): HaCandidate {
  return { partitionId, restart, priority, record: r };
}

/** A candidate that failed with `kind` on h1 at T0 (unless told otherwise). */
function failedCandidate(
  partitionId: string,
  o: { kind?: FailureKind; restart?: HaCandidate['restart']; priority?: number; atMs?: number; eventId?: string; hostId?: string; record?: Partial<HaRecord> } = {},
): HaCandidate {
  const f = failure(o.kind ?? 'host-lost', { atMs: o.atMs ?? T0, eventId: o.eventId ?? `fail-${partitionId}`, hostId: o.hostId ?? 'h1' });
  return candidate(partitionId, o.restart ?? 'any-host', o.priority ?? 2000, record({ failure: f, ...o.record }));
}

const hostsUp =
  (...up: string[]) =>
  (hostId: string) =>
    up.includes(hostId);
const noneUp = hostsUp();

const ids = (decisions: readonly HaDecision[]) => decisions.map((d) => `${d.kind}:${d.partitionId}`);

describe('defaults', () => {
  it('are the WSFC numbers: 3 restarts in 15 min, backoff 10 s doubling to 5 min, reset after 10 min', () => {
    expect(config).toMatchObject({
      restartsMax: 3,
      windowMs: min(15),
      backoffInitialMs: sec(10),
      backoffMaxMs: min(5),
      resetAfterMs: min(10),
    });
  });
});

describe('a partition that lost its host', () => {
  it('restarts at once, High (3000) before Medium (2000) before Low (1000); priority 0 and restart none never', () => {
    const decisions = planRestarts(
      [
        failedCandidate('low', { priority: 1000 }),
        failedCandidate('high', { priority: 3000 }),
        failedCandidate('unprotected', { priority: 3000, restart: 'none' }),
        failedCandidate('disabled', { priority: 0 }),
        failedCandidate('medium', { priority: 2000 }),
      ],
      noneUp,
      T0,
      config,
    );
    expect(decisions).toEqual([
      { kind: 'restart', partitionId: 'high', causeEventId: 'fail-high', where: 'any-host', hostId: null, priority: 3000 },
      { kind: 'restart', partitionId: 'medium', causeEventId: 'fail-medium', where: 'any-host', hostId: null, priority: 2000 },
      { kind: 'restart', partitionId: 'low', causeEventId: 'fail-low', where: 'any-host', hostId: null, priority: 1000 },
    ]);
  });

  it('breaks priority ties by failure time (longest waiting first), then by partition id', () => {
    const decisions = planRestarts(
      [
        failedCandidate('b', { atMs: T0 + sec(1) }),
        failedCandidate('late-high', { atMs: T0 + sec(5), priority: 3000 }),
        failedCandidate('a', { atMs: T0 + sec(1) }),
        failedCandidate('z', { atMs: T0 }),
      ],
      noneUp,
      T0 + sec(10),
      config,
    );
    expect(ids(decisions)).toEqual(['restart:late-high', 'restart:z', 'restart:a', 'restart:b']);
  });

  it('orders the same way whatever order the candidates come in', () => {
    const pool = [
      failedCandidate('p1', { priority: 1000, atMs: T0 }),
      failedCandidate('p2', { priority: 3000, atMs: T0 + 2 }),
      failedCandidate('p3', { priority: 3000, atMs: T0 + 1 }),
      failedCandidate('p4', { priority: 2000, atMs: T0 + 1 }),
      failedCandidate('p5', { priority: 2000, atMs: T0 + 1 }),
      failedCandidate('p6', { priority: 0, atMs: T0 }),
      failedCandidate('p7', { priority: 3000, restart: 'none' }),
    ];
    const expected = ['p3', 'p2', 'p4', 'p5', 'p1'];
    fc.assert(
      fc.property(fc.shuffledSubarray(pool, { minLength: pool.length }), (shuffled) => {
        const decisions = planRestarts(shuffled, noneUp, T0 + sec(1), config);
        expect(decisions.map((d) => d.partitionId)).toEqual(expected);
      }),
      { numRuns: 200 },
    );
  });

  it('decides nothing without a failure, nor for a failure HA already gave up on', () => {
    const decisions = planRestarts(
      [
        candidate('never-failed', 'any-host', 3000, record()),
        failedCandidate('given-up', { eventId: 'ev-9', record: { gaveUpCauseId: 'ev-9' } }),
      ],
      noneUp,
      T0,
      config,
    );
    expect(decisions).toEqual([]);
  });

  it('is a failover, not a restart in place: the 3-in-15-min limit and the backoff do not hold it back', () => {
    const c = failedCandidate('web', { record: { restartTimesMs: [T0 - min(3), T0 - min(2), T0 - min(1)], consecutiveRestarts: 3 } });
    expect(planRestarts([c], noneUp, T0, config)).toEqual([
      { kind: 'restart', partitionId: 'web', causeEventId: 'fail-web', where: 'any-host', hostId: null, priority: 2000 },
    ]);
  });

  it('restart any-host never pins the partition to its old host, even when that host is back', () => {
    const c = failedCandidate('web', { restart: 'any-host' });
    expect(planRestarts([c], hostsUp('h1'), T0, config)).toEqual([
      { kind: 'restart', partitionId: 'web', causeEventId: 'fail-web', where: 'any-host', hostId: null, priority: 2000 },
    ]);
  });

  describe('with restart same-host', () => {
    const c = failedCandidate('db', { restart: 'same-host', priority: 3000, hostId: 'h1' });

    it('waits for its host while within sameHostWaitMs', () => {
      expect(planRestarts([c], noneUp, T0, config)).toEqual([]);
      expect(planRestarts([c], hostsUp('h2', 'h3'), T0 + config.sameHostWaitMs - 1, config)).toEqual([]);
    });

    it('restarts on its host as soon as that host is up again', () => {
      expect(planRestarts([c], hostsUp('h1'), T0 + sec(30), config)).toEqual([
        { kind: 'restart', partitionId: 'db', causeEventId: 'fail-db', where: 'same-host', hostId: 'h1', priority: 3000 },
      ]);
    });

    it('still prefers its host after the wait when the host is up', () => {
      expect(planRestarts([c], hostsUp('h1'), T0 + config.sameHostWaitMs + min(1), config)).toEqual([
        { kind: 'restart', partitionId: 'db', causeEventId: 'fail-db', where: 'same-host', hostId: 'h1', priority: 3000 },
      ]);
    });

    it('falls back to any host once the wait is over', () => {
      for (const now of [T0 + config.sameHostWaitMs, T0 + config.sameHostWaitMs + min(10)]) {
        expect(planRestarts([c], hostsUp('h2'), now, config)).toEqual([
          { kind: 'restart', partitionId: 'db', causeEventId: 'fail-db', where: 'any-host', hostId: null, priority: 3000 },
        ]);
      }
    });

    it('honours a configured wait', () => {
      const shortWait = { ...config, sameHostWaitMs: sec(5) };
      expect(planRestarts([c], noneUp, T0 + sec(4), shortWait)).toEqual([]);
      expect(ids(planRestarts([c], noneUp, T0 + sec(5), shortWait))).toEqual(['restart:db']);
    });

    it('a waiting partition does not hold back the others', () => {
      const other = failedCandidate('web', { priority: 1000 });
      expect(ids(planRestarts([c, other], noneUp, T0 + sec(1), config))).toEqual(['restart:web']);
    });
  });
});

describe('a guest crash', () => {
  it('is planned with a 10 s backoff, in place', () => {
    const c = failedCandidate('web', { kind: 'crashed', restart: 'same-host' });
    expect(planRestarts([c], hostsUp('h1'), T0 + 5, config)).toEqual([
      {
        kind: 'plan',
        partitionId: 'web',
        causeEventId: 'fail-web',
        causeType: 'PartitionCrashed',
        attempt: 1,
        restartsInWindow: 0,
        delayMs: sec(10),
        notBeforeMs: T0 + sec(10),
        where: 'same-host',
        lastHostId: 'h1',
      },
    ]);
  });

  it('a failed start is planned the same way, with its own cause type, elsewhere under an any-host policy', () => {
    const sameHost = failedCandidate('web', { kind: 'start-failed', hostId: 'h2', restart: 'same-host' });
    expect(planRestarts([sameHost], hostsUp('h2'), T0, config)).toEqual([
      expect.objectContaining({ kind: 'plan', causeType: 'PartitionStartFailed', causeEventId: 'fail-web', lastHostId: 'h2', where: 'same-host' }),
    ]);
    // The host refused it (no room): an any-host policy tries the others, avoiding that host.
    const anyHost = failedCandidate('web', { kind: 'start-failed', hostId: 'h2', restart: 'any-host' });
    expect(planRestarts([anyHost], hostsUp('h2'), T0, config)).toEqual([expect.objectContaining({ kind: 'plan', where: 'any-host' })]);
    const planned = { ...anyHost, record: { ...anyHost.record, plan: { causeEventId: 'fail-web', notBeforeMs: T0, where: 'any-host' as const } } };
    expect(planRestarts([planned], hostsUp('h2'), T0 + sec(1), config)).toEqual([expect.objectContaining({ kind: 'restart', where: 'any-host', avoidHostId: 'h2' })]);
  });

  it.each([
    [0, sec(10)],
    [1, sec(20)],
    [2, sec(40)],
    [3, sec(80)],
    [4, sec(160)],
    [5, min(5)],
    [6, min(5)],
    [20, min(5)],
    [2000, min(5)],
  ])('after %i consecutive restarts the backoff is %i ms (doubling, capped at 5 min)', (consecutiveRestarts, delayMs) => {
    const c = failedCandidate('web', { kind: 'crashed', record: { consecutiveRestarts } });
    expect(planRestarts([c], hostsUp('h1'), T0, config)).toEqual([
      expect.objectContaining({ kind: 'plan', attempt: consecutiveRestarts + 1, delayMs, notBeforeMs: T0 + delayMs }),
    ]);
  });

  it('counts the backoff from the failure, not from when the planner runs', () => {
    const c = failedCandidate('web', { kind: 'crashed', record: { consecutiveRestarts: 1 } });
    expect(planRestarts([c], hostsUp('h1'), T0 + min(2), config)).toEqual([
      expect.objectContaining({ kind: 'plan', delayMs: sec(20), notBeforeMs: T0 + sec(20) }),
    ]);
  });

  it.each([
    ['same-host', true, 'same-host'],
    ['same-host', false, 'same-host'],
    ['any-host', true, 'same-host'],
    ['any-host', false, 'any-host'],
  ] as const)('restart %s with its host up=%s is planned %s', (restart, up, where) => {
    const c = failedCandidate('web', { kind: 'crashed', restart });
    expect(planRestarts([c], up ? hostsUp('h1') : noneUp, T0, config)).toEqual([expect.objectContaining({ kind: 'plan', where })]);
  });

  it('is not planned twice for the same cause', () => {
    const c = failedCandidate('web', {
      kind: 'crashed',
      eventId: 'ev-crash',
      record: { plan: { causeEventId: 'ev-crash', notBeforeMs: T0 + sec(10), where: 'same-host' } },
    });
    expect(planRestarts([c], hostsUp('h1'), T0 + sec(1), config)).toEqual([]);
    expect(planRestarts([c], hostsUp('h1'), T0 + sec(10) - 1, config)).toEqual([]);
  });

  it('a plan for an earlier cause does not count: the new failure is planned', () => {
    const c = failedCandidate('web', {
      kind: 'crashed',
      eventId: 'ev-crash-2',
      record: { consecutiveRestarts: 1, plan: { causeEventId: 'ev-crash-1', notBeforeMs: T0 - sec(10), where: 'same-host' } },
    });
    expect(planRestarts([c], hostsUp('h1'), T0, config)).toEqual([expect.objectContaining({ kind: 'plan', causeEventId: 'ev-crash-2', delayMs: sec(20) })]);
  });

  describe('once planned', () => {
    const planned = (restart: HaCandidate['restart'], where: 'same-host' | 'any-host') =>
      failedCandidate('web', {
        kind: 'crashed',
        restart,
        priority: 1000,
        eventId: 'ev-crash',
        record: { plan: { causeEventId: 'ev-crash', notBeforeMs: T0 + sec(10), where } },
      });

    it('restarts on its host once now ≥ notBefore and the host is up', () => {
      expect(planRestarts([planned('same-host', 'same-host')], hostsUp('h1'), T0 + sec(10), config)).toEqual([
        { kind: 'restart', partitionId: 'web', causeEventId: 'ev-crash', where: 'same-host', hostId: 'h1', priority: 1000 },
      ]);
      expect(ids(planRestarts([planned('same-host', 'same-host')], hostsUp('h1'), T0 + min(30), config))).toEqual(['restart:web']);
    });

    it('restart same-host waits for its host up to sameHostWaitMs, then falls back to any host', () => {
      expect(planRestarts([planned('same-host', 'same-host')], hostsUp('h2'), T0 + sec(10), config)).toEqual([]);
      for (const now of [T0 + config.sameHostWaitMs, T0 + min(60)]) {
        expect(planRestarts([planned('same-host', 'same-host')], hostsUp('h2'), now, config)).toEqual([
          { kind: 'restart', partitionId: 'web', causeEventId: 'ev-crash', where: 'any-host', hostId: null, priority: 1000 },
        ]);
      }
    });

    it('restart any-host falls back to any host when its host is down', () => {
      expect(planRestarts([planned('any-host', 'same-host')], hostsUp('h2'), T0 + sec(10), config)).toEqual([
        { kind: 'restart', partitionId: 'web', causeEventId: 'ev-crash', where: 'any-host', hostId: null, priority: 1000 },
      ]);
    });

    it('a plan made for any host restarts on any host', () => {
      expect(planRestarts([planned('any-host', 'any-host')], hostsUp('h1'), T0 + sec(10), config)).toEqual([
        { kind: 'restart', partitionId: 'web', causeEventId: 'ev-crash', where: 'any-host', hostId: null, priority: 1000 },
      ]);
    });

    it('joins the host-lost restarts in priority order, after the plans and give-ups', () => {
      const decisions = planRestarts(
        [
          planned('same-host', 'same-host'),
          failedCandidate('lost', { priority: 3000, atMs: T0 + sec(5) }),
          failedCandidate('fresh', { kind: 'crashed', atMs: T0 + sec(9) }),
          failedCandidate('looping', { kind: 'crashed', record: { restartTimesMs: [T0 - min(3), T0 - min(2), T0 - min(1)] } }),
        ],
        hostsUp('h1'),
        T0 + sec(10),
        config,
      );
      expect(ids(decisions)).toEqual(['plan:fresh', 'give-up:looping', 'restart:lost', 'restart:web']);
    });
  });

  describe('the restart limit', () => {
    it('gives up after 3 restarts within 15 min, with the counters', () => {
      const c = failedCandidate('web', {
        kind: 'crashed',
        record: { restartTimesMs: [T0 - min(10), T0 - min(5), T0 - sec(30)], consecutiveRestarts: 3 },
      });
      expect(planRestarts([c], hostsUp('h1'), T0, config)).toEqual([
        {
          kind: 'give-up',
          partitionId: 'web',
          causeEventId: 'fail-web',
          restartsInWindow: 3,
          reason: '3 restarts within 15 min (limit 3): left Failed',
        },
      ]);
    });

    it('gives up even when a plan for the cause exists', () => {
      const c = failedCandidate('web', {
        kind: 'crashed',
        eventId: 'ev-crash',
        record: { restartTimesMs: [T0 - min(2), T0 - min(1), T0 - sec(1)], plan: { causeEventId: 'ev-crash', notBeforeMs: T0, where: 'same-host' } },
      });
      expect(ids(planRestarts([c], hostsUp('h1'), T0, config))).toEqual(['give-up:web']);
    });

    it('gives up once per cause', () => {
      const c = failedCandidate('web', {
        kind: 'crashed',
        eventId: 'ev-crash-4',
        record: { restartTimesMs: [T0 - min(3), T0 - min(2), T0 - min(1)], gaveUpCauseId: 'ev-crash-4' },
      });
      expect(planRestarts([c], hostsUp('h1'), T0, config)).toEqual([]);
      expect(planRestarts([c], hostsUp('h1'), T0 + min(30), config)).toEqual([]);
    });

    it('a give-up for an earlier cause does not silence a new failure', () => {
      const c = failedCandidate('web', {
        kind: 'crashed',
        eventId: 'ev-crash-5',
        record: { restartTimesMs: [T0 - min(3), T0 - min(2), T0 - min(1)], gaveUpCauseId: 'ev-crash-4' },
      });
      expect(ids(planRestarts([c], hostsUp('h1'), T0, config))).toEqual(['give-up:web']);
    });

    it('counts only the restarts within the last 15 min', () => {
      const c = failedCandidate('web', {
        kind: 'crashed',
        record: { restartTimesMs: [T0 - min(15), T0 - min(10), T0 - min(5)], consecutiveRestarts: 3 },
      });
      expect(planRestarts([c], hostsUp('h1'), T0, config)).toEqual([
        expect.objectContaining({ kind: 'plan', restartsInWindow: 2, attempt: 4, delayMs: sec(80) }),
      ]);
    });

    it('honours a configured limit', () => {
      const c = failedCandidate('web', { kind: 'crashed', record: { restartTimesMs: [T0 - min(1)] } });
      expect(planRestarts([c], hostsUp('h1'), T0, { ...config, restartsMax: 1, windowMs: min(60) })).toEqual([
        expect.objectContaining({ kind: 'give-up', restartsInWindow: 1, reason: '1 restarts within 60 min (limit 1): left Failed' }),
      ]);
    });
  });
});

// ---------------------------------------------------------------- the planner over the ledger

/** A partition's log as the control plane writes it, folded into a ledger, with HA's decisions carried out. */
class Story {
  readonly ledger = new HaLedger(config.resetAfterMs);
  readonly log: LoggedEvent[] = [];
  private seq = 0;

  constructor(
    readonly partitionId: string,
    readonly restart: HaCandidate['restart'] = 'same-host',
    readonly priority = 2000,
  ) {}

  emit(type: string, atMs: number, data: { [key: string]: unknown } = {}, actor = 'system:node'): string {
    const event: LoggedEvent = {
      eventId: `ev-${++this.seq}`,
      type,
      actor,
      recordedAt: new Date(atMs).toISOString(),
      data: { partitionId: this.partitionId, hostId: 'h1', ...data },
    };
    this.log.push(event);
    this.ledger.apply(event);
    return event.eventId;
  }

  decide(nowMs: number, hostUp: (hostId: string) => boolean = hostsUp('h1')): HaDecision[] {
    const r = this.ledger.partitions.get(this.partitionId);
    return r ? planRestarts([candidate(this.partitionId, this.restart, this.priority, r)], hostUp, nowMs, config) : [];
  }

  /** Records (or carries out) a decision as HaManager does. */
  carryOut(d: HaDecision, atMs: number): void {
    if (d.kind === 'plan') {
      this.emit('PartitionRestartPlanned', atMs, { causeEventId: d.causeEventId, notBefore: new Date(d.notBeforeMs).toISOString(), where: d.where }, 'system:ha');
    } else if (d.kind === 'give-up') {
      this.emit('PartitionRestartGivenUp', atMs, { causeEventId: d.causeEventId, restartsInWindow: d.restartsInWindow }, 'system:ha');
    } else {
      this.emit('PartitionStartRequested', atMs, { hostId: d.hostId ?? 'h2' }, 'system:ha');
    }
  }

  /** A crash at `atMs`; returns the planned delay after restarting at notBefore, or the give-up. */
  crashAndRecover(atMs: number, runMs: number): { decision: HaDecision; restartedAtMs: number | null; crashId: string } {
    const crashId = this.emit('PartitionCrashed', atMs, { reason: 'bugcheck' });
    const [decision, ...rest] = this.decide(atMs);
    expect(rest).toEqual([]);
    if (!decision) throw new Error('expected a decision');
    this.carryOut(decision, atMs);
    if (decision.kind !== 'plan') return { decision, restartedAtMs: null, crashId };
    expect(this.decide(atMs)).toEqual([]);
    expect(this.decide(decision.notBeforeMs - 1)).toEqual([]);
    const [restart] = this.decide(decision.notBeforeMs);
    expect(restart).toMatchObject({ kind: 'restart', causeEventId: crashId });
    this.carryOut(restart!, decision.notBeforeMs);
    this.emit('PartitionStarted', decision.notBeforeMs + sec(1));
    return { decision, restartedAtMs: decision.notBeforeMs + sec(1) + runMs, crashId };
  }
}

describe('the planner over the ledger', () => {
  it('a crash loop is restarted after 10 s, 20 s, 40 s, then given up once, with the counters', () => {
    const story = new Story('web');
    story.emit('PartitionStartRequested', T0, {}, 'user:alice');
    story.emit('PartitionStarted', T0 + sec(1));
    const delays: number[] = [];
    let at = T0 + sec(30);
    for (let i = 0; i < 3; i++) {
      const { decision, restartedAtMs } = story.crashAndRecover(at, sec(30));
      expect(decision).toMatchObject({ kind: 'plan', attempt: i + 1, restartsInWindow: i });
      if (decision.kind === 'plan') delays.push(decision.delayMs);
      at = restartedAtMs!;
    }
    expect(delays).toEqual([sec(10), sec(20), sec(40)]);
    const { decision, crashId } = story.crashAndRecover(at, sec(30));
    expect(decision).toEqual({
      kind: 'give-up',
      partitionId: 'web',
      causeEventId: crashId,
      restartsInWindow: 3,
      reason: '3 restarts within 15 min (limit 3): left Failed',
    });
    expect(story.ledger.partitions.get('web')).toMatchObject({ gaveUpCauseId: crashId, consecutiveRestarts: 3 });
    // Given up for this cause: nothing more, even long after the window.
    expect(story.decide(at + sec(1))).toEqual([]);
    expect(story.decide(at + min(60))).toEqual([]);
  });

  it('a partition that crashes every 9 min backs off 10 s, 20 s … up to 5 min, never more than 2 restarts in the window', () => {
    const story = new Story('web', 'any-host');
    story.emit('PartitionStartRequested', T0, {}, 'user:alice');
    story.emit('PartitionStarted', T0 + sec(1));
    let at = T0 + min(9);
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      const { decision, restartedAtMs } = story.crashAndRecover(at, min(9));
      expect(decision.kind).toBe('plan');
      if (decision.kind === 'plan') {
        expect(decision.restartsInWindow).toBeLessThanOrEqual(2);
        delays.push(decision.delayMs);
      }
      at = restartedAtMs!;
    }
    expect(delays).toEqual([sec(10), sec(20), sec(40), sec(80), sec(160), min(5), min(5), min(5)]);
  });

  it('a run of 10 min resets the backoff (but a run 1 ms shorter does not)', () => {
    const run = (runMs: number) => {
      const story = new Story('web');
      story.emit('PartitionStartRequested', T0, {}, 'user:alice');
      story.emit('PartitionStarted', T0 + sec(1));
      const first = story.crashAndRecover(T0 + sec(30), sec(5));
      const second = story.crashAndRecover(first.restartedAtMs!, runMs);
      return story.crashAndRecover(second.restartedAtMs!, sec(5)).decision;
    };
    // The window: the two earlier restarts are within 15 min either way.
    expect(run(config.resetAfterMs)).toMatchObject({ kind: 'plan', attempt: 1, delayMs: sec(10), restartsInWindow: 2 });
    expect(run(config.resetAfterMs - 1)).toMatchObject({ kind: 'plan', attempt: 3, delayMs: sec(40), restartsInWindow: 2 });
  });

  it('an operator start after a give-up begins afresh: 10 s backoff and a full restart budget', () => {
    const story = new Story('web');
    story.emit('PartitionStartRequested', T0, {}, 'user:alice');
    story.emit('PartitionStarted', T0 + sec(1));
    let at = T0 + sec(10);
    for (let i = 0; i < 3; i++) at = story.crashAndRecover(at, sec(5)).restartedAtMs!;
    expect(story.crashAndRecover(at, sec(5)).decision.kind).toBe('give-up');
    story.emit('PartitionStartRequested', at + sec(10), {}, 'user:bob');
    story.emit('PartitionStarted', at + sec(11));
    expect(story.crashAndRecover(at + sec(20), sec(5)).decision).toMatchObject({ kind: 'plan', attempt: 1, restartsInWindow: 0, delayMs: sec(10) });
  });

  it('a host failure restarts at once; a crash right after the failover is backed off 20 s (the failover counts)', () => {
    const story = new Story('web', 'any-host', 3000);
    story.emit('PartitionStartRequested', T0, {}, 'user:alice');
    story.emit('PartitionStarted', T0 + sec(1));
    const lost = story.emit('PartitionHostLost', T0 + min(1), { hostFailedEventId: 'host-ev-1' });
    const [restart] = story.decide(T0 + min(1), noneUp);
    expect(restart).toEqual({ kind: 'restart', partitionId: 'web', causeEventId: lost, where: 'any-host', hostId: null, priority: 3000 });
    story.carryOut(restart!, T0 + min(1));
    story.emit('PartitionStarted', T0 + min(1) + sec(2), { hostId: 'h2' });
    story.emit('PartitionCrashed', T0 + min(2), { hostId: 'h2' });
    expect(story.decide(T0 + min(2), hostsUp('h2'))).toEqual([
      expect.objectContaining({ kind: 'plan', attempt: 2, delayMs: sec(20), restartsInWindow: 1, lastHostId: 'h2', where: 'same-host' }),
    ]);
  });
});
