/**
 * Properties of the domain, checked over random command sequences with fast-check:
 * (a) a host is never overcommitted, and its running totals equal the sum of its reservations;
 * (b) placement and the host decider never disagree;
 * (c) replaying the stored events gives the state that was built live;
 * (d) buildSpec accepts exactly the specs whose every documented range holds.
 */
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type HostCommand,
  type HostEvent,
  type HostState,
  type MemoryInput,
  type PartitionCommand,
  type PartitionEvent,
  type PartitionFactEvent,
  type PartitionSpecInput,
  type PartitionState,
  type PlacementCandidate,
  type PlacementRequest,
  type RegisteredHost,
  type Rejection,
  buildSpec,
  decideHost,
  decidePartition,
  diffSpecs,
  evolveHost,
  evolvePartition,
  initialHostState,
  initialPartitionState,
  isLive,
  partitionFactTypes,
  place,
  specLimits,
  validateSpec,
} from '../../services/domain/index.ts';
import { fold } from './decider-spec.ts';
import { type ReserveCapacity, placementOn, purposes, registerHost } from './fixtures.ts';

// ---------------------------------------------------------------- hosts: arbitraries and oracle

const hostSetupArb = fc
  .record({
    limitsPreset: fc.constantFrom('modern', 'r2'),
    logicalProcessors: fc.integer({ min: 1, max: 16 }),
    memoryMiB: fc.integer({ min: 4096, max: 32_768 }),
    parentReserveMiB: fc.integer({ min: 0, max: 2048 }),
    // Tight overrides sometimes, so that every limit is hit.
    partitionsPerHostMax: fc.oneof(fc.constant(undefined), fc.integer({ min: 0, max: 8 })),
    vcpusPerHostMax: fc.oneof(fc.constant(undefined), fc.constant(undefined), fc.integer({ min: 0, max: 48 })),
  })
  .map(({ partitionsPerHostMax, vcpusPerHostMax, ...rest }) =>
    registerHost({
      ...rest,
      limits: {
        ...(partitionsPerHostMax === undefined ? {} : { partitionsPerHostMax }),
        ...(vcpusPerHostMax === undefined ? {} : { vcpusPerHostMax }),
      },
    }),
  );

const reservationIdArb = fc.constantFrom('r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7', 'r8');
const reserveArb: fc.Arbitrary<ReserveCapacity> = fc.record({
  type: fc.constant('ReserveCapacity' as const),
  reservationId: reservationIdArb,
  partitionId: fc.constantFrom('p1', 'p2', 'p3', 'p4'),
  incarnation: fc.integer({ min: 1, max: 3 }),
  purpose: fc.constantFrom(...purposes),
  // Mostly small requests, so that hosts fill up to their limits; sometimes large ones.
  vcpus: fc.oneof(fc.integer({ min: 1, max: 2 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 20 })),
  reserveLpPct: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 150 }), fc.integer({ min: 0, max: 1500 })),
  memoryMiB: fc.oneof(fc.integer({ min: 0, max: 2048 }), fc.integer({ min: 0, max: 12_000 })),
});
const hostCommandArb: fc.Arbitrary<HostCommand> = fc.oneof(
  { arbitrary: reserveArb, weight: 5 },
  {
    arbitrary: fc.record({
      type: fc.constant('AdjustReservation' as const),
      reservationId: reservationIdArb,
      reserveLpPct: fc.integer({ min: 0, max: 2000 }),
    }),
    weight: 2,
  },
  {
    arbitrary: fc.record({ type: fc.constant('ReleaseReservation' as const), reservationId: reservationIdArb, reason: fc.constant('test') }),
    weight: 2,
  },
  { arbitrary: fc.constantFrom<HostCommand>({ type: 'CordonHost', reason: 'drain' }, { type: 'UncordonHost' }), weight: 1 },
);

/** Decides and folds a command sequence; returns the events and the states after each command. */
function runHost(commands: readonly HostCommand[]): { events: HostEvent[]; states: HostState[]; rejections: Rejection[] } {
  let state = initialHostState();
  const events: HostEvent[] = [];
  const states: HostState[] = [state];
  const rejections: Rejection[] = [];
  for (const command of commands) {
    const decision = decideHost(command, state);
    if (decision.ok) {
      for (const event of decision.events) {
        state = evolveHost(state, event);
        events.push(event);
      }
    } else {
      rejections.push(decision.rejection);
    }
    states.push(state);
  }
  return { events, states, rejections };
}

function registeredOf(state: HostState): RegisteredHost {
  if (state.status !== 'Registered') throw new Error('host is not registered');
  return state;
}

/**
 * What breaks the capacity invariant ([] = nothing), computed here independently of
 * services/domain/capacity.ts. One `expect` per state keeps thousands of runs fast.
 */
function capacityViolations(state: HostState): string[] {
  const host = registeredOf(state);
  const problems: string[] = [];
  const sum = { count: 0, vcpus: 0, reserveLpPct: 0, memoryMiB: 0 };
  for (const [id, r] of host.reservations) {
    if (r.reservationId !== id) problems.push(`reservation ${r.reservationId} is keyed ${id}`);
    if (r.vcpus > host.logicalProcessors) problems.push(`${id}: ${r.vcpus} vCPUs > ${host.logicalProcessors} LPs`);
    if (r.vcpus > host.limits.vcpusPerPartitionMax) problems.push(`${id}: ${r.vcpus} vCPUs > per-partition max`);
    sum.count += 1;
    sum.vcpus += r.vcpus;
    sum.reserveLpPct += r.reserveLpPct;
    sum.memoryMiB += r.memoryMiB;
  }
  const { reserved } = host;
  if (
    reserved.count !== sum.count ||
    reserved.vcpus !== sum.vcpus ||
    reserved.reserveLpPct !== sum.reserveLpPct ||
    reserved.memoryMiB !== sum.memoryMiB
  ) {
    problems.push(`running totals ${JSON.stringify(reserved)} differ from the sum ${JSON.stringify(sum)}`);
  }
  const ratio = host.limits.vcpusPerLpRatioMax;
  const vcpusMax = ratio > 0 ? Math.min(host.logicalProcessors * ratio, host.limits.vcpusPerHostMax) : host.limits.vcpusPerHostMax;
  if (sum.memoryMiB > host.memoryMiB - host.parentReserveMiB) problems.push(`memory ${sum.memoryMiB} MiB over the usable memory`);
  if (sum.reserveLpPct > host.logicalProcessors * 100) problems.push(`processor reserve ${sum.reserveLpPct} over the LPs`);
  if (sum.count > host.limits.partitionsPerHostMax) problems.push(`${sum.count} partitions over the maximum`);
  if (sum.vcpus > vcpusMax) problems.push(`${sum.vcpus} vCPUs over the maximum ${vcpusMax}`);
  return problems;
}

function expectWithinCapacity(state: HostState): void {
  expect(capacityViolations(state)).toEqual([]);
}

// ---------------------------------------------------------------- (a)

describe('(a) a host is never overcommitted', () => {
  let reservationsAccepted = 0;
  /** Which limits the random sequences ran into, so that the property is known to test each. */
  const limitsHit = new Set<string>();
  const limitOf: [string, RegExp][] = [
    ['logical processors', /logical processors$/],
    ['per partition', /per partition$/],
    ['partitions per host', /maximum of \d+ partitions$/],
    ['vCPUs per host', /^vCPUs would reach/],
    ['processor reserve', /^processor reserve/],
    ['memory', /MiB is free$/],
  ];

  it('holds over random Reserve / Adjust / Release / cordon sequences', () => {
    fc.assert(
      fc.property(hostSetupArb, fc.array(hostCommandArb, { minLength: 10, maxLength: 60, size: 'max' }), (register, commands) => {
        const { states, events, rejections } = runHost([register, ...commands]);
        expect(events[0]?.type).toBe('HostRegistered');
        expect(states.slice(1).flatMap(capacityViolations)).toEqual([]);
        reservationsAccepted += events.filter((e) => e.type === 'HostCapacityReserved').length;
        for (const rejection of rejections) {
          if (rejection.code === 'host-cordoned') limitsHit.add('cordoned');
          const reasons = (rejection.details?.reasons ?? []) as string[];
          for (const [limit, pattern] of limitOf) if (reasons.some((r) => pattern.test(r))) limitsHit.add(limit);
        }
      }),
      { numRuns: 400 },
    );
  });

  afterAll(() => {
    // The property is not vacuous: many reservations are made, and every limit is run into.
    expect(reservationsAccepted).toBeGreaterThan(500);
    expect([...limitsHit].sort()).toEqual([...limitOf.map(([limit]) => limit), 'cordoned'].sort());
  });
});

// ---------------------------------------------------------------- (b)

type HostScenario = {
  setup: ReturnType<typeof registerHost>;
  reserves: ReserveCapacity[];
  cordoned: boolean;
  daemonConnected: boolean;
  excluded: boolean;
};

const hostScenarioArb: fc.Arbitrary<HostScenario> = fc.record({
  setup: hostSetupArb,
  reserves: fc.array(reserveArb, { maxLength: 8 }),
  cordoned: fc.oneof({ arbitrary: fc.constant(false), weight: 4 }, { arbitrary: fc.constant(true), weight: 1 }),
  daemonConnected: fc.oneof({ arbitrary: fc.constant(true), weight: 4 }, { arbitrary: fc.constant(false), weight: 1 }),
  excluded: fc.oneof({ arbitrary: fc.constant(false), weight: 5 }, { arbitrary: fc.constant(true), weight: 1 }),
});

const placementRequestArb = fc.record({
  vcpus: fc.oneof(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 12 })),
  reservePct: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 100 })),
  memoryMiB: fc.oneof(fc.integer({ min: 0, max: 4096 }), fc.integer({ min: 0, max: 16_000 })),
  /** Index of the required host; indices past the last host name an unknown host. */
  required: fc.oneof({ arbitrary: fc.constant(null), weight: 3 }, { arbitrary: fc.integer({ min: 0, max: 5 }), weight: 1 }),
});

const policyReasons = ['excluded by the request', 'node daemon is not connected'];

describe('(b) placement and the host decider never disagree', () => {
  const counts = { chosen: 0, none: 0 };

  it('the chosen host accepts the reservation; every host placement rejects for capacity or cordon, rejects it', () => {
    fc.assert(
      fc.property(fc.array(hostScenarioArb, { maxLength: 5, size: 'max' }), placementRequestArb, (scenarios, req) => {
        const hosts = scenarios.map((scenario, i) => {
          const hostId = `h${i}`;
          const commands: HostCommand[] = [
            { ...scenario.setup, hostId },
            ...scenario.reserves,
            ...(scenario.cordoned ? [{ type: 'CordonHost', reason: 'drain' } as const] : []),
          ];
          const { states } = runHost(commands);
          const state = registeredOf(states[states.length - 1] ?? initialHostState());
          return { hostId, state, scenario };
        });
        const candidates: PlacementCandidate[] = hosts.map(({ hostId, state, scenario }) => ({
          hostId,
          logicalProcessors: state.logicalProcessors,
          memoryMiB: state.memoryMiB,
          parentReserveMiB: state.parentReserveMiB,
          limits: state.limits,
          reserved: state.reserved,
          cordoned: state.cordoned,
          daemonConnected: scenario.daemonConnected,
        }));
        const request: PlacementRequest = {
          vcpus: req.vcpus,
          reserveLpPct: req.vcpus * req.reservePct,
          memoryMiB: req.memoryMiB,
          excludeHostIds: hosts.filter((h) => h.scenario.excluded).map((h) => h.hostId),
          requiredHostId: req.required === null ? null : `h${req.required}`,
        };
        const record = place(candidates, request);
        const reserveOn = (state: RegisteredHost) =>
          decideHost(
            {
              type: 'ReserveCapacity',
              reservationId: 'new-reservation',
              partitionId: 'new-partition',
              incarnation: 1,
              purpose: 'start',
              vcpus: request.vcpus,
              reserveLpPct: request.reserveLpPct,
              memoryMiB: request.memoryMiB,
            },
            state,
          );

        const considered = hosts.filter((h) => request.requiredHostId === null || h.hostId === request.requiredHostId);
        for (const { hostId, state } of considered) {
          const scored = record.scores.some((s) => s.hostId === hostId);
          const rejected = record.rejected.find((r) => r.hostId === hostId);
          expect(scored).toBe(rejected === undefined);
          const hostReasons = rejected?.reasons.filter((r) => !policyReasons.includes(r)) ?? [];
          const decision = reserveOn(state);
          // The host decider refuses exactly when placement found a reason the host itself enforces.
          expect(decision.ok).toBe(hostReasons.length === 0);
          if (!decision.ok) {
            if (state.cordoned) {
              expect(decision.rejection.code).toBe('host-cordoned');
              expect(hostReasons[0]).toBe('host is cordoned');
            } else {
              expect(decision.rejection.code).toBe('insufficient-capacity');
              expect(decision.rejection.details).toEqual({ hostId, reasons: hostReasons });
            }
          }
        }
        // Hosts outside the requirement are neither scored nor rejected.
        const mentioned = new Set([...record.scores.map((s) => s.hostId), ...record.rejected.map((r) => r.hostId)]);
        for (const h of hosts) if (!considered.includes(h)) expect(mentioned.has(h.hostId)).toBe(false);

        if (record.chosenHostId === null) {
          counts.none += 1;
          expect(record.scores).toEqual([]);
          for (const { hostId, state } of considered) {
            const reasons = record.rejected.find((r) => r.hostId === hostId)?.reasons ?? [];
            expect(reasons.length).toBeGreaterThan(0);
            if (reasons.every((r) => policyReasons.includes(r))) continue;
            expect(reserveOn(state).ok).toBe(false);
          }
        } else {
          counts.chosen += 1;
          const chosen = hosts.find((h) => h.hostId === record.chosenHostId);
          if (!chosen) return expect.unreachable(`placement chose an unknown host ${record.chosenHostId}`);
          expect(request.excludeHostIds).not.toContain(chosen.hostId);
          expect(chosen.state.cordoned).toBe(false);
          const decision = reserveOn(chosen.state);
          if (!decision.ok) return expect.unreachable(`host refused the placement: ${decision.rejection.message}`);
          expect(decision.events).toHaveLength(1);
          expectWithinCapacity(fold(evolveHost, chosen.state, decision.events));
          // Least loaded, ties to the lowest id.
          const best = Math.max(...record.scores.map((s) => s.score));
          const winners = record.scores.filter((s) => s.score === best).map((s) => s.hostId);
          expect(record.chosenHostId).toBe([...winners].sort()[0]);
        }
      }),
      { numRuns: 400 },
    );
  });

  afterAll(() => {
    expect(counts.chosen).toBeGreaterThan(50);
    expect(counts.none).toBeGreaterThan(50);
  });
});

// ---------------------------------------------------------------- (c)

type Step =
  | { kind: 'create'; valid: boolean }
  | { kind: 'reconfigure'; patch: PartitionSpecInput }
  | { kind: 'start'; host: string; incarnationDelta: number }
  | { kind: 'simple'; type: 'RequestStop' | 'RequestTurnOff' | 'RequestPause' | 'RequestResume' | 'RequestSave' | 'DeletePartition' }
  | { kind: 'fact'; type: PartitionFactEvent['type']; host: string; incarnationDelta: number }
  /** The daemon reports what the current state waits for (so random walks get past transitions). */
  | { kind: 'progress'; fail: boolean };

const hostChoiceArb = fc.constantFrom('current', 'current', 'current', 'h1', 'h2');
const patches: PartitionSpecInput[] = [
  {},
  { vcpus: 4 },
  { processor: { weight: 300 } },
  { processor: { reservePct: 20, limitPct: 80 } },
  { processor: { weight: 0 } },
  { memory: { mode: 'dynamic', minMiB: 512, maxMiB: 8192 } },
  { memory: { mode: 'static' } },
  { memory: { minMiB: 256 } },
  { memory: { maxMiB: 16_384 } },
  { memory: { startupMiB: 4096 } },
  { ha: { priority: 3000, antiAffinityClass: 'db' } },
  { workload: { cpuDemandPct: 50 } },
];
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('create' as const), valid: fc.boolean() }), weight: 2 },
  { arbitrary: fc.record({ kind: fc.constant('reconfigure' as const), patch: fc.constantFrom(...patches) }), weight: 4 },
  {
    arbitrary: fc.record({
      kind: fc.constant('start' as const),
      host: fc.constantFrom('h1', 'h2'),
      incarnationDelta: fc.constantFrom(1, 1, 1, 0, 2),
    }),
    weight: 6,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('simple' as const),
      type: fc.constantFrom('RequestStop', 'RequestTurnOff', 'RequestPause', 'RequestPause', 'RequestResume', 'RequestResume', 'RequestSave'),
    }),
    weight: 12,
  },
  // Deleting ends a walk, so it is rare.
  { arbitrary: fc.constant<Step>({ kind: 'simple', type: 'DeletePartition' }), weight: 1 },
  {
    arbitrary: fc.record({
      kind: fc.constant('fact' as const),
      type: fc.constantFrom(...partitionFactTypes),
      host: hostChoiceArb,
      incarnationDelta: fc.constantFrom(0, 0, 0, 0, -1, 1),
    }),
    weight: 4,
  },
  {
    arbitrary: fc.record({
      kind: fc.constant('progress' as const),
      fail: fc.oneof({ arbitrary: fc.constant(false), weight: 15 }, { arbitrary: fc.constant(true), weight: 1 }),
    }),
    weight: 10,
  },
);

function toCommand(step: Step, state: PartitionState): PartitionCommand {
  const incarnation = 'incarnation' in state ? state.incarnation : 0;
  switch (step.kind) {
    case 'create':
      return {
        type: 'CreatePartition',
        partitionId: 'p1',
        name: 'p one',
        spec: step.valid ? { vcpus: 2, memory: { startupMiB: 2048 } } : { vcpus: 0, memory: { startupMiB: 2048 } },
      };
    case 'reconfigure':
      return { type: 'ReconfigurePartition', patch: step.patch };
    case 'start':
      return {
        type: 'RequestStart',
        hostId: step.host,
        incarnation: incarnation + step.incarnationDelta,
        reservationId: `res-${incarnation + step.incarnationDelta}`,
        placement: placementOn(step.host),
      };
    case 'simple':
      return { type: step.type };
    case 'fact':
      return {
        type: 'ReportFact',
        fact: {
          type: step.type,
          hostId: step.host === 'current' ? (isLive(state) ? state.hostId : 'h1') : step.host,
          incarnation: incarnation + step.incarnationDelta,
          directiveEventId: null,
          reason: step.type === 'PartitionCrashed' || step.type === 'PartitionStartFailed' ? 'boom' : null,
          code: null,
          how: step.type === 'PartitionStopped' ? 'shutdown' : null,
          memoryAssignedMiB: step.type === 'PartitionStarted' ? 2048 : null,
        },
      };
    case 'progress':
      return toCommand(
        { kind: 'fact', type: step.fail ? failureFact(state) : awaitedFact(state), host: 'current', incarnationDelta: 0 },
        state,
      );
    default: {
      const unreachable: never = step;
      return unreachable;
    }
  }
}

function failureFact(state: PartitionState): PartitionFactEvent['type'] {
  return state.status === 'Starting' ? 'PartitionStartFailed' : 'PartitionCrashed';
}

function awaitedFact(state: PartitionState): PartitionFactEvent['type'] {
  switch (state.status) {
    case 'Starting':
      return state.resuming ? 'PartitionResumed' : 'PartitionStarted';
    case 'Pausing':
      return 'PartitionPaused';
    case 'Saving':
      return 'PartitionSaved';
    case 'Stopping':
      return 'PartitionStopped';
    default:
      // Nothing is awaited in a steady state: a duplicate Started report, kept as ignored.
      return 'PartitionStarted';
  }
}

function runPartition(steps: readonly Step[]): { events: PartitionEvent[]; states: PartitionState[] } {
  let state = initialPartitionState();
  const events: PartitionEvent[] = [];
  const states: PartitionState[] = [state];
  for (const step of steps) {
    const decision = decidePartition(toCommand(step, state), state);
    if (!decision.ok) continue;
    for (const event of decision.events) {
      state = evolvePartition(state, event);
      events.push(event);
      states.push(state);
    }
  }
  return { events, states };
}

/** The store keeps events as JSON: replay what it would give back. */
const throughJson = <E>(events: readonly E[]): E[] => JSON.parse(JSON.stringify(events)) as E[];

describe('(c) replay = live', () => {
  const typesSeen = new Set<string>();

  it('for partitions: replaying the events from scratch, or from any snapshot, gives the live state', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 10, maxLength: 80, size: 'max' }), (steps) => {
        const { events, states } = runPartition([{ kind: 'create', valid: true }, ...steps]);
        for (const e of events) typesSeen.add(e.type);
        const live = states[states.length - 1];
        expect(fold(evolvePartition, initialPartitionState(), events)).toEqual(live);
        expect(fold(evolvePartition, initialPartitionState(), throughJson(events))).toEqual(live);
        states.forEach((snapshot, i) => {
          expect(fold(evolvePartition, snapshot, events.slice(i))).toEqual(live);
        });
        // Along the way: incarnations only grow, by one per start, and a live partition always holds a host.
        for (let i = 1; i < states.length; i++) {
          const before = states[i - 1];
          const after = states[i];
          const event = events[i - 1];
          if (!before || !after || !event) continue;
          const inc = (s: PartitionState) => ('incarnation' in s ? s.incarnation : 0);
          if (after.status !== 'Deleted') {
            expect(inc(after) - inc(before)).toBe(event.type === 'PartitionStartRequested' ? 1 : 0);
          }
          if (isLive(after)) {
            expect(after.hostId.length).toBeGreaterThan(0);
            expect(after.reservationId.length).toBeGreaterThan(0);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('for hosts: replaying the events from scratch, or from any snapshot, gives the live state', () => {
    fc.assert(
      fc.property(hostSetupArb, fc.array(hostCommandArb, { minLength: 10, maxLength: 60, size: 'max' }), (register, commands) => {
        const { events, states } = runHost([register, ...commands]);
        const live = states[states.length - 1];
        expect(fold(evolveHost, initialHostState(), events)).toEqual(live);
        expect(fold(evolveHost, initialHostState(), throughJson(events))).toEqual(live);
      }),
      { numRuns: 300 },
    );
  });

  afterAll(() => {
    // The random walks reach every kind of partition event.
    expect([...typesSeen].sort()).toEqual(
      [
        'PartitionCreated',
        'PartitionDeleted',
        'PartitionReconfigured',
        'PartitionReportIgnored',
        'PartitionStartRequested',
        'PartitionStopRequested',
        'PartitionTurnOffRequested',
        'PartitionPauseRequested',
        'PartitionResumeRequested',
        'PartitionSaveRequested',
        ...partitionFactTypes,
      ].sort(),
    );
  });
});

// ---------------------------------------------------------------- (d)

const { memoryMiBMax } = specLimits;
/** Each bound, one below and one above. */
const around = (...bounds: number[]) => bounds.flatMap((b) => [b - 1, b, b + 1]);
/** Absent (undefined) or a value, in the ratio absentWeight : presentWeight. */
const maybe = <T>(arb: fc.Arbitrary<T>, absentWeight = 1, presentWeight = 3) =>
  fc.oneof({ arbitrary: fc.constant(undefined), weight: absentWeight }, { arbitrary: arb, weight: presentWeight });
/** Mostly a value well inside the range, sometimes one at, just past, or far outside its bounds. */
const edgy = <T>(inside: fc.Arbitrary<T>, edges: readonly T[]) =>
  fc.oneof({ arbitrary: inside, weight: 5 }, { arbitrary: fc.constantFrom(...edges), weight: 2 });
const oddNumbers = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY];

const pctArb = edgy(fc.oneof(fc.integer({ min: 0, max: 100 }), fc.double({ min: 0, max: 100, noNaN: true })), [
  ...around(0, 100),
  ...oddNumbers,
  -0.001,
  100.001,
]);
const sizeArb = edgy(fc.integer({ min: 1, max: 65_536 }), [...around(1, memoryMiBMax), 1.5, Number.NaN]);
const memoryArb: fc.Arbitrary<MemoryInput> = fc
  .record({ mode: maybe(fc.constantFrom('static' as const, 'dynamic' as const)), startupMiB: maybe(sizeArb, 1, 15) })
  .chain(({ mode, startupMiB }) => {
    const near = typeof startupMiB === 'number' && Number.isFinite(startupMiB) ? around(startupMiB) : [1];
    // Dynamic-only fields are mostly absent for static memory, so that static specs are often valid.
    const absent = mode === 'dynamic' ? 1 : 12;
    return fc
      .record({
        minMiB: maybe(fc.oneof(fc.constantFrom(...near), sizeArb), absent),
        maxMiB: maybe(fc.oneof(fc.constantFrom(...near), sizeArb), absent),
        bufferPct: maybe(edgy(fc.integer({ min: 5, max: 2000 }), [...around(5, 2000), 7.5]), absent),
        weight: maybe(edgy(fc.integer({ min: 0, max: 10_000 }), [...around(0, 10_000), 0.5]), absent),
      })
      .map((rest) => ({ mode, startupMiB, ...rest }));
  });

const specInputArb: fc.Arbitrary<PartitionSpecInput> = fc.record({
  vcpus: maybe(edgy(fc.integer({ min: 1, max: 64 }), [...around(1, specLimits.vcpusMax), 1.5, Number.NaN]), 1, 30),
  processor: maybe(
    fc.record({
      reservePct: maybe(pctArb),
      limitPct: maybe(pctArb, 3, 1),
      weight: maybe(edgy(fc.integer({ min: 1, max: 10_000 }), [...around(1, 10_000), 2.5])),
    }),
  ),
  memory: maybe(memoryArb, 1, 30),
  ha: maybe(
    fc.record({
      priority: maybe(edgy(fc.constantFrom(0, 1000, 2000, 3000), [-1, 1, 999, 1001, 1999, 2001, 2999, 3001, 4000, 1000.5])),
      antiAffinityClass: maybe(edgy(fc.constantFrom(null, 'db', 'x'.repeat(100)), ['', 'x'.repeat(101)])),
    }),
  ),
  workload: maybe(fc.oneof(fc.constant(null), fc.record({ cpuDemandPct: maybe(pctArb) }))),
});

/** Which fields break a documented range (empty = valid), computed from the documentation, not the code. */
function violations(input: PartitionSpecInput): Set<string> {
  const bad = new Set<string>();
  const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);
  const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
  const intIn = (v: unknown, min: number, max: number) => isInt(v) && v >= min && v <= max;
  const numIn = (v: unknown, min: number, max: number) => isNum(v) && v >= min && v <= max;

  if (!intIn(input.vcpus, 1, 2048)) bad.add('/vcpus');
  const reservePct = input.processor?.reservePct ?? 0;
  const limitPct = input.processor?.limitPct ?? 100;
  if (!intIn(reservePct, 0, 100)) bad.add('/processor/reservePct');
  if (!intIn(limitPct, 0, 100) || limitPct < reservePct) bad.add('/processor/limitPct');
  if (!intIn(input.processor?.weight ?? 100, 1, 10_000)) bad.add('/processor/weight');

  const memory = input.memory ?? {};
  const startupMiB = memory.startupMiB;
  if (!intIn(startupMiB, 1, memoryMiBMax)) bad.add('/memory/startupMiB');
  if ((memory.mode ?? 'static') === 'static') {
    for (const key of ['minMiB', 'maxMiB', 'bufferPct', 'weight'] as const) {
      if (memory[key] !== undefined) bad.add(`/memory/${key}`);
    }
  } else if (startupMiB !== undefined) {
    const minMiB = memory.minMiB ?? startupMiB;
    const maxMiB = memory.maxMiB ?? startupMiB;
    if (!intIn(minMiB, 1, memoryMiBMax) || minMiB > startupMiB) bad.add('/memory/minMiB');
    if (!intIn(maxMiB, 1, memoryMiBMax) || startupMiB > maxMiB) bad.add('/memory/maxMiB');
    if (!intIn(memory.bufferPct ?? 20, 5, 2000)) bad.add('/memory/bufferPct');
    if (!intIn(memory.weight ?? 5000, 0, 10_000)) bad.add('/memory/weight');
  }

  if (![0, 1000, 2000, 3000].includes(input.ha?.priority ?? 2000)) bad.add('/ha/priority');
  const antiAffinityClass = input.ha?.antiAffinityClass ?? null;
  if (antiAffinityClass !== null && (antiAffinityClass.length < 1 || antiAffinityClass.length > 100)) {
    bad.add('/ha/antiAffinityClass');
  }
  if (input.workload && !numIn(input.workload.cpuDemandPct ?? 100, 0, 100)) bad.add('/workload/cpuDemandPct');
  return bad;
}

describe('(d) spec validation', () => {
  const outcomes = { valid: 0, invalid: 0 };

  it('buildSpec accepts a spec iff every documented range holds, and blames a field that breaks one', () => {
    fc.assert(
      fc.property(specInputArb, (input) => {
        const expected = violations(input);
        const built = buildSpec(input, null);
        if (built.ok) {
          outcomes.valid += 1;
          expect([...expected]).toEqual([]);
          expect(validateSpec(built.value)).toBeNull();
          // A valid spec is its own fixed point: rebuilding it, or patching it with nothing, changes nothing.
          expect(buildSpec(throughJson([built.value])[0] as PartitionSpecInput, null)).toEqual(built);
          const patched = buildSpec({}, built.value);
          expect(patched.ok && diffSpecs(built.value, patched.value)).toEqual([]);
        } else {
          outcomes.invalid += 1;
          expect(built.rejection).toMatchObject({ kind: 'invalid', code: 'invalid-spec' });
          expect([...expected]).toContain(built.rejection.field);
        }
      }),
      { numRuns: 2000 },
    );
  });

  afterAll(() => {
    expect(outcomes.valid).toBeGreaterThan(150);
    expect(outcomes.invalid).toBeGreaterThan(150);
  });
});
