/**
 * The partition rulebook: every transition of the partition decider and every rejection.
 */
import { describe, expect, it } from 'vitest';
import {
  type HaInput,
  type MemoryInput,
  type PartitionCommand,
  type PartitionEvent,
  type PartitionFactEvent,
  type PartitionSpecInput,
  type PartitionState,
  defaultBufferPct,
  defaultHa,
  defaultMemoryWeight,
  defaultProcessor,
  partitionFactTypes,
} from '../../services/domain/index.ts';
import { deciderSpec } from './decider-spec.ts';
import {
  type HistoryName,
  dynamicSpec,
  histories,
  historyNames,
  hostId,
  liveHistoryNames,
  otherHostId,
  p,
  partitionDecider,
  partitionId,
  report,
  requestStart,
  restingHistoryNames,
  staticSpec,
  statusOf,
  validSpec,
} from './fixtures.ts';

const { given } = deciderSpec(partitionDecider);

const create = (spec: PartitionSpecInput, overrides: { partitionId?: string; name?: string } = {}): PartitionCommand => ({
  type: 'CreatePartition',
  partitionId: overrides.partitionId ?? partitionId,
  name: overrides.name ?? 'web',
  spec,
});
const reconfigure = (patch: PartitionSpecInput): PartitionCommand => ({ type: 'ReconfigurePartition', patch });
const others = (allowed: readonly HistoryName[]) => historyNames.filter((name) => !allowed.includes(name));
const statusAfter = (state: PartitionState) => state.status;

describe('CreatePartition', () => {
  it('creates an Off partition with a static spec, filling the defaults', () => {
    const { stateAfter } = given([])
      .when(create({ vcpus: 2, memory: { startupMiB: 2048 } }))
      .then([
        {
          type: 'PartitionCreated',
          data: {
            partitionId,
            name: 'web',
            spec: {
              vcpus: 2,
              processor: { reservePct: 0, limitPct: 100, weight: 100 },
              memory: { mode: 'static', startupMiB: 2048 },
              ha: { restart: 'any-host', priority: 2000, antiAffinityClass: null, antiAffinityMode: 'soft', preferredHostIds: [] },
              workload: null,
            },
          },
        },
      ]);
    expect(stateAfter).toEqual({ status: 'Off', partitionId, name: 'web', spec: staticSpec, incarnation: 0, lastHostId: null });
  });

  it('creates a dynamic-memory partition: min and max default to startup, buffer 20 %, weight 5000', () => {
    given([])
      .when(create({ vcpus: 4, memory: { mode: 'dynamic', startupMiB: 2048 } }))
      .then([
        {
          type: 'PartitionCreated',
          data: {
            partitionId,
            name: 'web',
            spec: {
              vcpus: 4,
              processor: defaultProcessor,
              memory: { mode: 'dynamic', startupMiB: 2048, minMiB: 2048, maxMiB: 2048, bufferPct: 20, weight: 5000 },
              ha: defaultHa,
              workload: null,
            },
          },
        },
      ]);
    expect(defaultBufferPct).toBe(20);
    expect(defaultMemoryWeight).toBe(5000);
  });

  it('keeps explicit dynamic settings and fills the workload defaults from the spec', () => {
    const { events } = given([])
      .when(
        create({
          vcpus: 4,
          processor: { reservePct: 10, limitPct: 80, weight: 200 },
          memory: { mode: 'dynamic', startupMiB: 2048, minMiB: 512, maxMiB: 8192, bufferPct: 50, weight: 0 },
          ha: { restart: 'same-host', priority: 3000, antiAffinityClass: 'db', antiAffinityMode: 'hard' },
          workload: {},
        }),
      )
      .thenAccepts();
    expect(events[0]).toMatchObject({
      data: {
        spec: {
          processor: { reservePct: 10, limitPct: 80, weight: 200 },
          memory: { mode: 'dynamic', startupMiB: 2048, minMiB: 512, maxMiB: 8192, bufferPct: 50, weight: 0 },
          ha: { restart: 'same-host', priority: 3000, antiAffinityClass: 'db', antiAffinityMode: 'hard', preferredHostIds: [] },
          workload: { cpuDemandPct: 100, memoryDemandMiB: 2048, dirtyMiBps: 0 },
        },
      },
    });
  });

  it.each([
    ['vcpus missing', { vcpus: undefined }, '/vcpus'],
    ['vcpus 0', { vcpus: 0 }, '/vcpus'],
    ['vcpus 2049', { vcpus: 2049 }, '/vcpus'],
    ['vcpus fractional', { vcpus: 1.5 }, '/vcpus'],
    ['processor.reservePct below 0', { processor: { reservePct: -1 } }, '/processor/reservePct'],
    ['processor.reservePct above 100', { processor: { reservePct: 101 } }, '/processor/reservePct'],
    ['processor.limitPct above 100', { processor: { limitPct: 101 } }, '/processor/limitPct'],
    ['processor.limitPct below 0', { processor: { limitPct: -1, reservePct: 0 } }, '/processor/limitPct'],
    ['processor.limitPct < reservePct', { processor: { reservePct: 50, limitPct: 40 } }, '/processor/limitPct'],
    ['processor.weight 0', { processor: { weight: 0 } }, '/processor/weight'],
    ['processor.weight 10001', { processor: { weight: 10_001 } }, '/processor/weight'],
    ['processor.weight fractional', { processor: { weight: 1.5 } }, '/processor/weight'],
  ] satisfies [string, PartitionSpecInput, string][])('rejects %s', (_what, input, field) => {
    const spec: PartitionSpecInput = { vcpus: 2, memory: { startupMiB: 2048 }, ...input };
    given([]).when(create(spec)).thenRejects({ kind: 'invalid', code: 'invalid-spec', field });
  });

  it.each([
    ['startupMiB missing', {}, '/memory/startupMiB'],
    ['startupMiB 0', { startupMiB: 0 }, '/memory/startupMiB'],
    ['startupMiB fractional', { startupMiB: 1.5 }, '/memory/startupMiB'],
    ['dynamic startupMiB missing', { mode: 'dynamic' }, '/memory/startupMiB'],
    ['dynamic minMiB > startupMiB', { mode: 'dynamic', startupMiB: 2048, minMiB: 2049, maxMiB: 4096 }, '/memory/minMiB'],
    ['dynamic minMiB 0', { mode: 'dynamic', startupMiB: 2048, minMiB: 0 }, '/memory/minMiB'],
    ['dynamic startupMiB > maxMiB', { mode: 'dynamic', startupMiB: 2048, maxMiB: 2047 }, '/memory/maxMiB'],
    ['dynamic bufferPct 4', { mode: 'dynamic', startupMiB: 2048, bufferPct: 4 }, '/memory/bufferPct'],
    ['dynamic bufferPct 2001', { mode: 'dynamic', startupMiB: 2048, bufferPct: 2001 }, '/memory/bufferPct'],
    ['dynamic bufferPct fractional', { mode: 'dynamic', startupMiB: 2048, bufferPct: 10.5 }, '/memory/bufferPct'],
    ['dynamic weight -1', { mode: 'dynamic', startupMiB: 2048, weight: -1 }, '/memory/weight'],
    ['dynamic weight 10001', { mode: 'dynamic', startupMiB: 2048, weight: 10_001 }, '/memory/weight'],
    ['static with minMiB', { startupMiB: 2048, minMiB: 1024 }, '/memory/minMiB'],
    ['static with maxMiB', { mode: 'static', startupMiB: 2048, maxMiB: 4096 }, '/memory/maxMiB'],
    ['static with bufferPct', { startupMiB: 2048, bufferPct: 20 }, '/memory/bufferPct'],
    ['static with weight', { startupMiB: 2048, weight: 5000 }, '/memory/weight'],
  ] satisfies [string, MemoryInput, string][])('rejects memory: %s', (_what, memory, field) => {
    given([])
      .when(create({ vcpus: 2, memory }))
      .thenRejects({ kind: 'invalid', code: 'invalid-spec', field });
  });

  it.each([5, 2000])('accepts bufferPct %i, and memory weights 0 and 10000 (the bounds)', (bufferPct) => {
    for (const weight of [0, 10_000]) {
      given([])
        .when(create({ vcpus: 2, memory: { mode: 'dynamic', startupMiB: 2048, bufferPct, weight } }))
        .thenAccepts();
    }
  });

  it.each([1, 2048])('accepts vcpus %i (the bounds)', (vcpus) => {
    given([])
      .when(create({ vcpus, memory: { startupMiB: 2048 } }))
      .thenAccepts();
  });

  it('accepts reserve = limit, and the processor bounds', () => {
    for (const processor of [
      { reservePct: 0, limitPct: 0, weight: 1 },
      { reservePct: 100, limitPct: 100, weight: 10_000 },
      { reservePct: 12, limitPct: 12 },
    ]) {
      given([])
        .when(create({ vcpus: 2, memory: { startupMiB: 2048 }, processor }))
        .thenAccepts();
    }
  });

  it.each([0, 1000, 2000, 3000])('accepts ha.priority %i', (priority) => {
    const { events } = given([])
      .when(create({ vcpus: 2, memory: { startupMiB: 2048 }, ha: { priority } }))
      .thenAccepts();
    expect(events[0]).toMatchObject({ data: { spec: { ha: { priority } } } });
  });

  it.each([-1, 1, 500, 1500, 2500, 4000, 1000.5])('rejects ha.priority %d', (priority) => {
    given([])
      .when(create({ vcpus: 2, memory: { startupMiB: 2048 }, ha: { priority } }))
      .thenRejects({ kind: 'invalid', code: 'invalid-spec', field: '/ha/priority' });
  });

  it.each([
    ['ha.restart unknown', { restart: 'sometimes' } as unknown as HaInput, '/ha/restart'],
    ['ha.antiAffinityClass empty', { antiAffinityClass: '' }, '/ha/antiAffinityClass'],
    ['ha.antiAffinityClass too long', { antiAffinityClass: 'x'.repeat(101) }, '/ha/antiAffinityClass'],
  ] satisfies [string, HaInput, string][])('rejects %s', (_what, ha, field) => {
    given([])
      .when(create({ vcpus: 2, memory: { startupMiB: 2048 }, ha }))
      .thenRejects({ kind: 'invalid', code: 'invalid-spec', field });
  });

  it.each([
    ['cpuDemandPct 101', { cpuDemandPct: 101 }, '/workload/cpuDemandPct'],
    ['memoryDemandMiB -1', { memoryDemandMiB: -1 }, '/workload/memoryDemandMiB'],
    ['dirtyMiBps -1', { dirtyMiBps: -1 }, '/workload/dirtyMiBps'],
  ])('rejects workload %s', (_what, workload, field) => {
    given([])
      .when(create({ vcpus: 2, memory: { startupMiB: 2048 }, workload }))
      .thenRejects({ kind: 'invalid', code: 'invalid-spec', field });
  });

  it.each(['', 'Web-1', '-web', 'web_1', 'web 1', 'wéb', 'a'.repeat(64)])('rejects the id %j', (id) => {
    given([])
      .when(create({ vcpus: 2, memory: { startupMiB: 2048 } }, { partitionId: id }))
      .thenRejects({ kind: 'invalid', code: 'invalid-partition', field: '/id' });
  });

  it.each(['a', '0', 'web-1', `a${'-'.repeat(62)}`, 'a'.repeat(63)])('accepts the id %j', (id) => {
    given([])
      .when(create({ vcpus: 2, memory: { startupMiB: 2048 } }, { partitionId: id }))
      .thenAccepts();
  });

  it.each(['', 'x'.repeat(101), 'line\nbreak', 'nul\u0000', 'tab\there', 'esc\u001b'])('rejects the name %j', (name) => {
    given([])
      .when(create({ vcpus: 2, memory: { startupMiB: 2048 } }, { name }))
      .thenRejects({ kind: 'invalid', code: 'invalid-partition', field: '/name' });
  });

  it.each(['x', 'x'.repeat(100), 'Web Server (prod) – ünïcode'])('accepts the name %j', (name) => {
    given([])
      .when(create({ vcpus: 2, memory: { startupMiB: 2048 } }, { name }))
      .thenAccepts();
  });

  it.each(historyNames)('rejects a second create of an existing partition (%s)', (name) => {
    const rejection = given(histories[name])
      .when(create({ vcpus: 2, memory: { startupMiB: 2048 } }))
      .thenRejects({ kind: 'conflict', code: 'partition-exists' });
    expect(rejection.details).toEqual({ currentState: statusOf(name) });
  });

  it('rejects a create after delete: ids are not reused', () => {
    const rejection = given([p.created(), p.deleted()])
      .when(create({ vcpus: 2, memory: { startupMiB: 2048 } }))
      .thenRejects({ kind: 'conflict', code: 'partition-exists' });
    expect(rejection.message).toContain('deleted');
  });
});

describe('commands on a partition that does not exist', () => {
  const commands: PartitionCommand[] = [
    reconfigure({ vcpus: 4 }),
    requestStart(1),
    { type: 'RequestStop' },
    { type: 'RequestTurnOff' },
    { type: 'RequestPause' },
    { type: 'RequestResume' },
    { type: 'RequestSave' },
    { type: 'DeletePartition' },
    report('PartitionStarted'),
  ];
  it.each(commands.map((command) => [command.type, command] as const))('%s on a never-created partition → not-found', (_t, command) => {
    given([]).when(command).thenRejects({ kind: 'not-found', code: 'partition-not-found' });
  });
  it.each(commands.map((command) => [command.type, command] as const))('%s on a deleted partition → not-found', (_t, command) => {
    given([p.created(), p.deleted()]).when(command).thenRejects({ kind: 'not-found', code: 'partition-not-found' });
  });
});

describe('RequestStart', () => {
  it('starts an Off partition as incarnation 1 on the placed host', () => {
    const { stateAfter } = given(histories.Off)
      .when(requestStart(1))
      .then([p.startRequested({ incarnation: 1, fromSaved: false })]);
    expect(stateAfter).toEqual({
      status: 'Starting',
      partitionId,
      name: 'web',
      spec: staticSpec,
      incarnation: 1,
      hostId,
      reservationId: 'res-1',
      resuming: false,
      migration: null,
    });
  });

  it('restores a Saved partition as a new incarnation (fromSaved)', () => {
    const { stateAfter } = given(histories.Saved)
      .when(requestStart(2))
      .then([p.startRequested({ incarnation: 2, fromSaved: true })]);
    expect(stateAfter).toMatchObject({ status: 'Starting', incarnation: 2, resuming: false });
  });

  it('refuses to restore a Saved partition on another host than the one holding its saved state', () => {
    given(histories.Saved).when(requestStart(2, otherHostId)).thenRejects({ kind: 'conflict', code: 'saved-on-another-host' });
  });

  it('refuses a fractional processor reserve (whole percent, as Hyper-V)', () => {
    given([])
      .when(create({ vcpus: 2, memory: { startupMiB: 2048 }, processor: { reservePct: 12.5, limitPct: 50 } }))
      .thenRejects({ kind: 'invalid', code: 'invalid-spec', field: '/processor/reservePct' });
  });

  it('restarts a Failed partition as a new incarnation', () => {
    const { stateAfter } = given(histories.Failed)
      .when(requestStart(2, otherHostId))
      .then([p.startRequested({ incarnation: 2, hostId: otherHostId })]);
    expect(stateAfter).toMatchObject({ status: 'Starting', incarnation: 2, hostId: otherHostId });
  });

  it('starts an Off partition that ran before with the next incarnation', () => {
    given([...histories.Running, p.stopRequested(), p.stopped()])
      .when(requestStart(2))
      .then([p.startRequested({ incarnation: 2 })]);
  });

  it('carries the spec in force at this start (after a reconfigure)', () => {
    const wider = validSpec({ vcpus: 4, memory: { startupMiB: 2048 } });
    const { events } = given([
      p.created(),
      {
        type: 'PartitionReconfigured',
        data: { partitionId, changes: [{ field: '/vcpus', from: '2', to: '4' }], spec: wider, hostId: null, incarnation: 0 },
      },
    ])
      .when(requestStart(1))
      .thenAccepts();
    expect(events).toEqual([p.startRequested({ incarnation: 1, spec: wider })]);
  });

  it('records the placement it was given', () => {
    const placement = { policy: 'least-loaded', chosenHostId: 'h3', scores: [{ hostId: 'h3', score: 75 }], rejected: [] };
    const { events } = given(histories.Off)
      .when({ type: 'RequestStart', hostId: 'h3', incarnation: 1, reservationId: 'r', placement })
      .thenAccepts();
    expect(events[0]).toMatchObject({ data: { placement, hostId: 'h3', reservationId: 'r' } });
  });

  it.each([
    ['Off', 0],
    ['Off', 2],
    ['Saved', 1],
    ['Saved', 3],
    ['Failed', 1],
  ] satisfies [HistoryName, number][])('rejects a stale incarnation from %s (%i)', (name, incarnation) => {
    const rejection = given(histories[name])
      .when(requestStart(incarnation))
      .thenRejects({ kind: 'conflict', code: 'stale-incarnation' });
    expect(rejection.details).toEqual({ currentState: name });
  });

  it.each(liveHistoryNames)('rejects a start from %s', (name) => {
    const rejection = given(histories[name])
      .when(requestStart(2))
      .thenRejects({ kind: 'conflict', code: 'invalid-transition' });
    expect(rejection.details).toEqual({ currentState: statusOf(name) });
  });
});

describe('RequestStop', () => {
  it('asks the host to stop a Running partition', () => {
    const { stateAfter } = given(histories.Running)
      .when({ type: 'RequestStop' })
      .then([p.stopRequested()]);
    expect(stateAfter).toMatchObject({ status: 'Stopping', hostId, incarnation: 1, reservationId: 'res-1' });
  });

  it.each(others(['Running']))('rejects a stop from %s', (name) => {
    const rejection = given(histories[name])
      .when({ type: 'RequestStop' })
      .thenRejects({ kind: 'conflict', code: 'invalid-transition' });
    expect(rejection.details).toEqual({ currentState: statusOf(name) });
  });
});

describe('RequestTurnOff', () => {
  it.each(liveHistoryNames)('turns off from %s', (name) => {
    const { stateAfter } = given(histories[name])
      .when({ type: 'RequestTurnOff' })
      .then([p.turnOffRequested()]);
    expect(stateAfter).toMatchObject({ status: 'Stopping', hostId, incarnation: 1 });
  });

  it.each(restingHistoryNames)('rejects a turn-off from %s', (name) => {
    given(histories[name]).when({ type: 'RequestTurnOff' }).thenRejects({ kind: 'conflict', code: 'invalid-transition' });
  });
});

describe('RequestPause', () => {
  it('pauses a Running partition', () => {
    const { stateAfter } = given(histories.Running)
      .when({ type: 'RequestPause' })
      .then([p.pauseRequested()]);
    expect(statusAfter(stateAfter)).toBe('Pausing');
  });

  it.each(others(['Running']))('rejects a pause from %s', (name) => {
    given(histories[name]).when({ type: 'RequestPause' }).thenRejects({ kind: 'conflict', code: 'invalid-transition' });
  });
});

describe('RequestResume', () => {
  it('resumes a Paused partition: Starting, resuming, same incarnation and host', () => {
    const { stateAfter } = given(histories.Paused)
      .when({ type: 'RequestResume' })
      .then([p.resumeRequested()]);
    expect(stateAfter).toEqual({
      status: 'Starting',
      partitionId,
      name: 'web',
      spec: staticSpec,
      incarnation: 1,
      hostId,
      reservationId: 'res-1',
      resuming: true,
      migration: null,
    });
  });

  it.each(others(['Paused']))('rejects a resume from %s', (name) => {
    given(histories[name]).when({ type: 'RequestResume' }).thenRejects({ kind: 'conflict', code: 'invalid-transition' });
  });
});

describe('RequestSave', () => {
  it.each(['Running', 'Paused'] satisfies HistoryName[])('saves from %s', (name) => {
    const { stateAfter } = given(histories[name])
      .when({ type: 'RequestSave' })
      .then([p.saveRequested()]);
    expect(statusAfter(stateAfter)).toBe('Saving');
  });

  it.each(others(['Running', 'Paused']))('rejects a save from %s', (name) => {
    given(histories[name]).when({ type: 'RequestSave' }).thenRejects({ kind: 'conflict', code: 'invalid-transition' });
  });
});

describe('DeletePartition', () => {
  it.each(restingHistoryNames)('deletes from %s', (name) => {
    const { stateAfter } = given(histories[name])
      .when({ type: 'DeletePartition' })
      .then([p.deleted()]);
    expect(stateAfter).toEqual({ status: 'Deleted', partitionId });
  });

  it.each(liveHistoryNames)('rejects a delete from %s: turn it off first', (name) => {
    const rejection = given(histories[name])
      .when({ type: 'DeletePartition' })
      .thenRejects({ kind: 'conflict', code: 'invalid-transition' });
    expect(rejection.details).toEqual({ currentState: statusOf(name) });
  });
});

describe('ReconfigurePartition', () => {
  const reconfigured = (
    changes: { field: string; from: string; to: string }[],
    spec = staticSpec,
    live: { hostId: string | null; incarnation: number } = { hostId: null, incarnation: 0 },
  ): PartitionEvent => ({ type: 'PartitionReconfigured', data: { partitionId, changes, spec, ...live } });

  it('changes everything while Off, listing each change', () => {
    const next = validSpec({ vcpus: 8, memory: { mode: 'dynamic', startupMiB: 4096, minMiB: 1024, maxMiB: 8192 } });
    const { stateAfter } = given(histories.Off)
      .when(reconfigure({ vcpus: 8, memory: { mode: 'dynamic', startupMiB: 4096, minMiB: 1024, maxMiB: 8192 } }))
      .then([
        reconfigured(
          [
            { field: '/memory/bufferPct', from: 'null', to: '20' },
            { field: '/memory/maxMiB', from: 'null', to: '8192' },
            { field: '/memory/minMiB', from: 'null', to: '1024' },
            { field: '/memory/mode', from: '"static"', to: '"dynamic"' },
            { field: '/memory/startupMiB', from: '2048', to: '4096' },
            { field: '/memory/weight', from: 'null', to: '5000' },
            { field: '/vcpus', from: '2', to: '8' },
          ],
          next,
        ),
      ]);
    expect(stateAfter).toMatchObject({ status: 'Off', spec: next });
  });

  it('changes everything while Failed', () => {
    const { events } = given(histories.Failed)
      .when(reconfigure({ vcpus: 4, memory: { startupMiB: 4096 } }))
      .thenAccepts();
    expect(events).toEqual([
      reconfigured(
        [
          { field: '/memory/startupMiB', from: '2048', to: '4096' },
          { field: '/vcpus', from: '2', to: '4' },
        ],
        validSpec({ vcpus: 4, memory: { startupMiB: 4096 } }),
        { hostId: null, incarnation: 1 },
      ),
    ]);
  });

  it('changes a dynamic partition back to static while Off', () => {
    given([p.created(dynamicSpec)])
      .when(reconfigure({ memory: { mode: 'static' } }))
      .thenAccepts();
  });

  it('rejects an invalid patch with the spec rejection', () => {
    given(histories.Off)
      .when(reconfigure({ processor: { weight: 0 } }))
      .thenRejects({ kind: 'invalid', code: 'invalid-spec', field: '/processor/weight' });
  });

  it.each(['Off', 'Running', 'Paused', 'Saved', 'Failed'] satisfies HistoryName[])('a no-op patch while %s gives no events', (name) => {
    given(histories[name]).when(reconfigure({})).then([]);
    given(histories[name])
      .when(reconfigure({ vcpus: 2, memory: { startupMiB: 2048 }, processor: { weight: 100 } }))
      .then([]);
  });

  it.each(['Running', 'Paused'] satisfies HistoryName[])('carries the host and incarnation while %s, so its daemon applies it live', (name) => {
    const next = validSpec({ vcpus: 2, memory: { startupMiB: 2048 }, processor: { reservePct: 10, limitPct: 50 } });
    given(histories[name])
      .when(reconfigure({ processor: { reservePct: 10, limitPct: 50 } }))
      .then([
        reconfigured(
          [
            { field: '/processor/limitPct', from: '100', to: '50' },
            { field: '/processor/reservePct', from: '0', to: '10' },
          ],
          next,
          { hostId, incarnation: 1 },
        ),
      ]);
  });

  it('changes the processor and HA policy while Saved, without a host (nothing runs)', () => {
    given(histories.Saved)
      .when(reconfigure({ processor: { weight: 300 }, ha: { priority: 3000 } }))
      .then([
        reconfigured(
          [
            { field: '/ha/priority', from: '2000', to: '3000' },
            { field: '/processor/weight', from: '100', to: '300' },
          ],
          validSpec({ vcpus: 2, memory: { startupMiB: 2048 }, processor: { weight: 300 }, ha: { priority: 3000 } }),
          { hostId: null, incarnation: 1 },
        ),
      ]);
  });

  describe.each(['Running', 'Paused', 'Saved'] satisfies HistoryName[])('while %s', (name) => {
    it('refuses a vCPU change', () => {
      given(histories[name])
        .when(reconfigure({ vcpus: 4 }))
        .thenRejects({ kind: 'conflict', code: 'not-changeable-now', field: '/vcpus' });
    });
    it('refuses a memory mode change', () => {
      given(histories[name])
        .when(reconfigure({ memory: { mode: 'dynamic' } }))
        .thenRejects({ kind: 'conflict', code: 'not-changeable-now', field: '/memory/mode' });
    });
    it('refuses a static memory change', () => {
      given(histories[name])
        .when(reconfigure({ memory: { startupMiB: 4096 } }))
        .thenRejects({ kind: 'conflict', code: 'not-changeable-now', field: '/memory/startupMiB' });
    });
    it('refuses a dynamic startup memory change', () => {
      const history = restamp(histories[name], dynamicSpec);
      given(history)
        .when(reconfigure({ memory: { startupMiB: 3072 } }))
        .thenRejects({ kind: 'conflict', code: 'not-changeable-now', field: '/memory/startupMiB' });
    });
  });

  describe.each(['Running', 'Paused'] satisfies HistoryName[])('dynamic memory while %s', (name) => {
    const history = () => restamp(histories[name], dynamicSpec);
    it('lowers the minimum', () => {
      const { events } = given(history())
        .when(reconfigure({ memory: { minMiB: 512 } }))
        .thenAccepts();
      expect(events[0]).toMatchObject({
        data: { changes: [{ field: '/memory/minMiB', from: '1024', to: '512' }], hostId, incarnation: 1 },
      });
    });
    it('refuses to raise the minimum', () => {
      given(history())
        .when(reconfigure({ memory: { minMiB: 1536 } }))
        .thenRejects({ kind: 'conflict', code: 'not-changeable-now', field: '/memory/minMiB' });
    });
    it('raises the maximum', () => {
      const { events } = given(history())
        .when(reconfigure({ memory: { maxMiB: 8192 } }))
        .thenAccepts();
      expect(events[0]).toMatchObject({ data: { changes: [{ field: '/memory/maxMiB', from: '4096', to: '8192' }] } });
    });
    it('refuses to lower the maximum', () => {
      given(history())
        .when(reconfigure({ memory: { maxMiB: 3072 } }))
        .thenRejects({ kind: 'conflict', code: 'not-changeable-now', field: '/memory/maxMiB' });
    });
    it('changes buffer and weight', () => {
      const { events } = given(history())
        .when(reconfigure({ memory: { bufferPct: 50, weight: 9000 } }))
        .thenAccepts();
      expect(events[0]).toMatchObject({
        data: {
          changes: [
            { field: '/memory/bufferPct', from: '20', to: '50' },
            { field: '/memory/weight', from: '5000', to: '9000' },
          ],
        },
      });
    });
  });

  it('refuses any dynamic memory change while Saved (the saved state holds the memory layout)', () => {
    for (const memory of [{ minMiB: 512 }, { maxMiB: 8192 }, { bufferPct: 50 }, { weight: 1 }] satisfies MemoryInput[]) {
      given(restamp(histories.Saved, dynamicSpec))
        .when(reconfigure({ memory }))
        .thenRejects({ kind: 'conflict', code: 'not-changeable-now', field: '/memory' });
    }
  });

  it.each(['Starting', 'Resuming', 'Pausing', 'Stopping', 'Saving'] satisfies HistoryName[])('refuses any change while %s (transitional)', (name) => {
    const rejection = given(histories[name])
      .when(reconfigure({ processor: { weight: 300 } }))
      .thenRejects({ kind: 'conflict', code: 'invalid-transition' });
    expect(rejection.details).toEqual({ currentState: statusOf(name) });
  });
});

/** The same history with another spec at creation (and in the start request). */
function restamp(history: readonly PartitionEvent[], spec: typeof staticSpec): PartitionEvent[] {
  return history.map((event) => {
    if (event.type === 'PartitionCreated') return { ...event, data: { ...event.data, spec } };
    if (event.type === 'PartitionStartRequested') return { ...event, data: { ...event.data, spec } };
    return event;
  });
}

describe('ReportFact', () => {
  /** Which live state each fact applies in, and the status it leads to. */
  const rules: Record<PartitionFactEvent['type'], { appliesIn: HistoryName[]; leadsTo: PartitionState['status'] }> = {
    PartitionStarted: { appliesIn: ['Starting'], leadsTo: 'Running' },
    PartitionResumed: { appliesIn: ['Resuming'], leadsTo: 'Running' },
    PartitionStartFailed: { appliesIn: ['Starting', 'Resuming', 'Stopping'], leadsTo: 'Failed' },
    PartitionPaused: { appliesIn: ['Pausing'], leadsTo: 'Paused' },
    PartitionSaved: { appliesIn: ['Saving'], leadsTo: 'Saved' },
    PartitionStopped: { appliesIn: liveHistoryNames, leadsTo: 'Off' },
    PartitionCrashed: { appliesIn: liveHistoryNames, leadsTo: 'Failed' },
  };
  const matrix = partitionFactTypes.flatMap((type) => liveHistoryNames.map((name) => [type, name] as const));

  it.each(matrix)('%s while %s: applied in the states that expect it, otherwise ignored', (type, name) => {
    const rule = rules[type];
    const { events, stateAfter, stateBefore } = given(histories[name])
      .when(report(type, { directiveEventId: 'evt-9' }))
      .thenAccepts();
    expect(events).toHaveLength(1);
    if (rule.appliesIn.includes(name)) {
      expect(events[0]).toMatchObject({ type, data: { partitionId, hostId, incarnation: 1, directiveEventId: 'evt-9' } });
      expect(stateAfter.status).toBe(rule.leadsTo);
      expect(stateAfter).toMatchObject({ incarnation: 1 });
    } else {
      expect(events).toEqual([
        {
          type: 'PartitionReportIgnored',
          data: {
            partitionId,
            hostId,
            incarnation: 1,
            directiveEventId: 'evt-9',
            reportedType: type,
            reason: `state is ${statusOf(name)}`,
          },
        },
      ]);
      expect(stateAfter).toEqual(stateBefore);
    }
  });

  it('Started: Starting → Running, with the memory assigned', () => {
    const { stateAfter } = given(histories.Starting)
      .when(report('PartitionStarted', { memoryAssignedMiB: 2000 }))
      .then([p.started({ memoryAssignedMiB: 2000 })]);
    expect(stateAfter).toEqual({
      status: 'Running',
      partitionId,
      name: 'web',
      spec: staticSpec,
      incarnation: 1,
      hostId,
      reservationId: 'res-1',
      migration: null,
    });
  });

  it('Started without the memory assigned records 0', () => {
    given(histories.Starting)
      .when(report('PartitionStarted'))
      .then([p.started({ memoryAssignedMiB: 0 })]);
  });

  it('Resumed: a resume (Starting, resuming) → Running with the same incarnation', () => {
    const { stateAfter } = given(histories.Resuming)
      .when(report('PartitionResumed'))
      .then([p.resumed()]);
    expect(stateAfter).toMatchObject({ status: 'Running', incarnation: 1, hostId, reservationId: 'res-1' });
  });

  it('a Started report while resuming is ignored: a resume is not a boot', () => {
    given(histories.Resuming)
      .when(report('PartitionStarted'))
      .then([ignored('PartitionStarted', 'state is Starting')]);
  });

  it('a Resumed report while booting is ignored: a boot is not a resume', () => {
    given(histories.Starting)
      .when(report('PartitionResumed'))
      .then([ignored('PartitionResumed', 'state is Starting')]);
  });

  it('StartFailed → Failed with the reason, remembering the host', () => {
    const { stateAfter } = given(histories.Starting)
      .when(report('PartitionStartFailed', { reason: 'no disk', code: 'vhd-missing' }))
      .then([p.startFailed({ reason: 'no disk', code: 'vhd-missing' })]);
    expect(stateAfter).toEqual({
      status: 'Failed',
      partitionId,
      name: 'web',
      spec: staticSpec,
      incarnation: 1,
      reason: 'start failed: no disk',
      lastHostId: hostId,
    });
  });

  it('StartFailed without reason or code records unknown / start-failed', () => {
    given(histories.Starting)
      .when(report('PartitionStartFailed'))
      .then([p.startFailed({ reason: 'unknown', code: 'start-failed' })]);
  });

  it('StartFailed while Stopping (turned off during the start) → Failed', () => {
    const { stateAfter } = given([...histories.Starting, p.turnOffRequested()])
      .when(report('PartitionStartFailed', { reason: 'aborted' }))
      .thenAccepts();
    expect(stateAfter).toMatchObject({ status: 'Failed', reason: 'start failed: aborted' });
  });

  it.each(liveHistoryNames)('Crashed while %s → Failed', (name) => {
    const { stateAfter } = given(histories[name])
      .when(report('PartitionCrashed', { reason: 'triple fault' }))
      .then([p.crashed({ reason: 'triple fault' })]);
    expect(stateAfter).toEqual({
      status: 'Failed',
      partitionId,
      name: 'web',
      spec: staticSpec,
      incarnation: 1,
      reason: 'crashed: triple fault',
      lastHostId: hostId,
    });
  });

  it('Crashed without a reason records unknown', () => {
    given(histories.Running)
      .when(report('PartitionCrashed'))
      .then([p.crashed({ reason: 'unknown' })]);
  });

  it.each(liveHistoryNames)('Stopped while %s → Off, remembering the host', (name) => {
    const { stateAfter } = given(histories[name])
      .when(report('PartitionStopped', { how: 'turn-off' }))
      .then([p.stopped({ how: 'turn-off' })]);
    expect(stateAfter).toEqual({ status: 'Off', partitionId, name: 'web', spec: staticSpec, incarnation: 1, lastHostId: hostId });
  });

  it('Stopped without how records guest (the guest shut itself down)', () => {
    given(histories.Running)
      .when(report('PartitionStopped'))
      .then([p.stopped({ how: 'guest' })]);
  });

  it('Paused: Pausing → Paused', () => {
    const { stateAfter } = given(histories.Pausing)
      .when(report('PartitionPaused'))
      .then([p.paused()]);
    expect(stateAfter).toMatchObject({ status: 'Paused', hostId, reservationId: 'res-1', incarnation: 1 });
  });

  it('Saved: Saving → Saved, remembering where the state is saved', () => {
    const { stateAfter } = given(histories.Saving)
      .when(report('PartitionSaved'))
      .then([p.saved()]);
    expect(stateAfter).toEqual({ status: 'Saved', partitionId, name: 'web', spec: staticSpec, incarnation: 1, savedOnHostId: hostId });
  });

  describe.each(partitionFactTypes)('%s reports that no longer apply are kept as ignored', (type) => {
    it('stale incarnation', () => {
      const { stateAfter, stateBefore } = given([...histories.Failed, p.startRequested({ incarnation: 2 })])
        .when(report(type, { incarnation: 1 }))
        .then([ignored(type, 'stale incarnation 1; current is 2', { incarnation: 1 })]);
      expect(stateAfter).toEqual(stateBefore);
    });
    it('a future incarnation', () => {
      given(histories.Running)
        .when(report(type, { incarnation: 2 }))
        .then([ignored(type, 'stale incarnation 2; current is 1', { incarnation: 2 })]);
    });
    it('another host', () => {
      given(histories.Running)
        .when(report(type, { hostId: otherHostId }))
        .then([ignored(type, `partition runs on ${hostId}, not ${otherHostId}`, { hostId: otherHostId })]);
    });
    it.each(restingHistoryNames)('partition not live (%s)', (name) => {
      const { stateAfter, stateBefore } = given(histories[name])
        .when(report(type))
        .then([ignored(type, `partition is ${name}, not live`)]);
      expect(stateAfter).toEqual(stateBefore);
    });
  });

  it('checks liveness before incarnation, and incarnation before host', () => {
    given(histories.Off)
      .when(report('PartitionStopped', { incarnation: 7, hostId: otherHostId }))
      .then([ignored('PartitionStopped', 'partition is Off, not live', { incarnation: 7, hostId: otherHostId })]);
    given(histories.Running)
      .when(report('PartitionStopped', { incarnation: 7, hostId: otherHostId }))
      .then([ignored('PartitionStopped', 'stale incarnation 7; current is 1', { incarnation: 7, hostId: otherHostId })]);
  });

  it('a report for the previous incarnation on the new host is still stale', () => {
    given([...histories.Running, p.stopRequested(), p.stopped(), p.startRequested({ incarnation: 2, hostId: otherHostId })])
      .when(report('PartitionCrashed', { incarnation: 1, hostId: otherHostId }))
      .then([ignored('PartitionCrashed', 'stale incarnation 1; current is 2', { incarnation: 1, hostId: otherHostId })]);
  });
});

function ignored(
  reportedType: string,
  reason: string,
  on: { incarnation?: number; hostId?: string } = {},
): PartitionEvent {
  return {
    type: 'PartitionReportIgnored',
    data: {
      partitionId,
      hostId: on.hostId ?? hostId,
      incarnation: on.incarnation ?? 1,
      directiveEventId: null,
      reportedType,
      reason,
    },
  };
}

describe('a whole life, start to delete', () => {
  it('runs, pauses, resumes, saves, restores, crashes, restarts elsewhere, turns off and is deleted', () => {
    const steps: [PartitionCommand, PartitionState['status']][] = [
      [create({ vcpus: 2, memory: { startupMiB: 2048 } }), 'Off'],
      [requestStart(1), 'Starting'],
      [report('PartitionStarted'), 'Running'],
      [{ type: 'RequestPause' }, 'Pausing'],
      [report('PartitionPaused'), 'Paused'],
      [{ type: 'RequestResume' }, 'Starting'],
      [report('PartitionResumed'), 'Running'],
      [{ type: 'RequestSave' }, 'Saving'],
      [report('PartitionSaved'), 'Saved'],
      [requestStart(2), 'Starting'],
      [report('PartitionStarted', { incarnation: 2 }), 'Running'],
      [report('PartitionCrashed', { incarnation: 2 }), 'Failed'],
      [requestStart(3, otherHostId), 'Starting'],
      [report('PartitionStarted', { incarnation: 3, hostId: otherHostId }), 'Running'],
      [{ type: 'RequestTurnOff' }, 'Stopping'],
      [report('PartitionStopped', { incarnation: 3, hostId: otherHostId, how: 'turn-off' }), 'Off'],
      [{ type: 'DeletePartition' }, 'Deleted'],
    ];
    let history: PartitionEvent[] = [];
    for (const [command, status] of steps) {
      const { events, stateAfter } = given(history).when(command).thenAccepts();
      expect(events.map((e) => e.type)).not.toContain('PartitionReportIgnored');
      expect(stateAfter.status).toBe(status);
      history = [...history, ...events];
    }
    expect(history).toHaveLength(steps.length);
  });
});
