/**
 * The host rulebook: registration, cordon, and capacity reservations.
 */
import { describe, expect, it } from 'vitest';
import { type HostCommand, type HostEvent, emptyTotals, hostLimitPresets } from '../../services/domain/index.ts';
import { deciderSpec } from './decider-spec.ts';
import { hostDecider, hostId, partitionId, purposes, registered, registerHost, reserve, reserved } from './fixtures.ts';

const { given } = deciderSpec(hostDecider);

/** h1: 8 LPs, 64 GiB with 4 GiB for the parent partition (60 GiB usable), modern limits. */
const registeredH1 = registered();
const cordoned: HostEvent = { type: 'HostCordoned', data: { hostId, reason: 'maintenance' } };
const insufficient = { kind: 'no-capacity', code: 'insufficient-capacity' } as const;

describe('RegisterHost', () => {
  it('registers a host with its preset limits', () => {
    const { stateAfter } = given([])
      .when(registerHost({ labels: { rack: 'a1' } }))
      .then([
        {
          type: 'HostRegistered',
          data: {
            hostId,
            logicalProcessors: 8,
            memoryMiB: 65_536,
            parentReserveMiB: 4096,
            labels: { rack: 'a1' },
            limitsPreset: 'modern',
            limits: { vcpusPerPartitionMax: 240, partitionsPerHostMax: 1024, vcpusPerHostMax: 2048, vcpusPerLpRatioMax: 0 },
          },
        },
      ]);
    expect(stateAfter).toEqual({
      status: 'Registered',
      hostId,
      logicalProcessors: 8,
      memoryMiB: 65_536,
      parentReserveMiB: 4096,
      labels: { rack: 'a1' },
      limitsPreset: 'modern',
      limits: hostLimitPresets.modern,
      cordoned: false,
      cordonReason: null,
      liveness: 'Unknown',
      lease: null,
      maintenance: null,
      reservations: new Map(),
      reserved: emptyTotals,
    });
  });

  it('applies single limit overrides on top of the preset', () => {
    const { events } = given([])
      .when(registerHost({ limitsPreset: 'r2', limits: { partitionsPerHostMax: 10 } }))
      .thenAccepts();
    expect(events[0]).toMatchObject({
      data: {
        limitsPreset: 'r2',
        limits: { vcpusPerPartitionMax: 4, partitionsPerHostMax: 10, vcpusPerHostMax: 512, vcpusPerLpRatioMax: 8 },
      },
    });
  });

  it.each([
    ['r2', 64],
    ['modern', 2048],
  ])('accepts the %s preset at its most logical processors (%i)', (limitsPreset, logicalProcessors) => {
    given([])
      .when(registerHost({ limitsPreset, logicalProcessors }))
      .thenAccepts();
  });

  it.each([
    ['r2', 65],
    ['modern', 2049],
  ])('rejects the %s preset above its most logical processors (%i)', (limitsPreset, logicalProcessors) => {
    given([])
      .when(registerHost({ limitsPreset, logicalProcessors }))
      .thenRejects({ kind: 'invalid', code: 'invalid-host', field: '/logicalProcessors' });
  });

  it.each([
    ['hostId uppercase', { hostId: 'H1' }, '/id'],
    ['hostId empty', { hostId: '' }, '/id'],
    ['hostId starting with a dash', { hostId: '-h1' }, '/id'],
    ['hostId with a dot', { hostId: 'h1.example' }, '/id'],
    ['hostId of 64 characters', { hostId: 'h'.repeat(64) }, '/id'],
    ['an unknown preset', { limitsPreset: 'legacy' }, '/limitsPreset'],
    ['a preset named like an Object method', { limitsPreset: 'toString' }, '/limitsPreset'],
    ['0 logical processors', { logicalProcessors: 0 }, '/logicalProcessors'],
    ['fractional logical processors', { logicalProcessors: 2.5 }, '/logicalProcessors'],
    ['0 MiB of memory', { memoryMiB: 0 }, '/memoryMiB'],
    ['fractional memory', { memoryMiB: 1024.5 }, '/memoryMiB'],
    ['a negative parent reserve', { parentReserveMiB: -1 }, '/parentReserveMiB'],
    ['a parent reserve of all the memory', { parentReserveMiB: 65_536 }, '/parentReserveMiB'],
    ['a fractional parent reserve', { parentReserveMiB: 0.5 }, '/parentReserveMiB'],
    ['a negative limit override', { limits: { partitionsPerHostMax: -1 } }, '/limits/partitionsPerHostMax'],
    ['a fractional limit override', { limits: { vcpusPerLpRatioMax: 1.5 } }, '/limits/vcpusPerLpRatioMax'],
  ] satisfies [string, Parameters<typeof registerHost>[0], string][])('rejects %s', (_what, overrides, field) => {
    given([])
      .when(registerHost(overrides))
      .thenRejects({ kind: 'invalid', code: 'invalid-host', field });
  });

  it('accepts a 63-character id and a parent reserve just below the memory', () => {
    given([])
      .when(registerHost({ hostId: `h${'-'.repeat(61)}1`, parentReserveMiB: 65_535 }))
      .thenAccepts();
  });

  it('registering the same machine again is a no-op (a daemon restarting)', () => {
    given([registeredH1]).when(registerHost()).then([]);
  });

  it.each([
    ['logical processors', { logicalProcessors: 16 }],
    ['memory', { memoryMiB: 131_072 }],
    ['parent reserve', { parentReserveMiB: 2048 }],
    ['limits preset', { limitsPreset: 'r2' }],
    ['limit override', { limits: { partitionsPerHostMax: 10 } }],
  ] satisfies [string, Parameters<typeof registerHost>[0]][])('rejects a re-register with other %s', (_what, overrides) => {
    const rejection = given([registeredH1])
      .when(registerHost(overrides))
      .thenRejects({ kind: 'conflict', code: 'host-exists' });
    expect(rejection.details).toEqual({ logicalProcessors: 8, memoryMiB: 65_536, parentReserveMiB: 4096 });
  });

  it('validates a re-register before comparing it', () => {
    given([registeredH1])
      .when(registerHost({ memoryMiB: 0 }))
      .thenRejects({ kind: 'invalid', code: 'invalid-host', field: '/memoryMiB' });
  });
});

describe('commands on a host that is not registered', () => {
  const commands: HostCommand[] = [
    { type: 'CordonHost', reason: 'x' },
    { type: 'UncordonHost' },
    reserve(),
    { type: 'AdjustReservation', reservationId: 'res-1', reserveLpPct: 100 },
    { type: 'ReleaseReservation', reservationId: 'res-1', reason: 'x' },
  ];
  it.each(commands.map((c) => [c.type, c] as const))('%s → not-found', (_t, command) => {
    given([]).when(command).thenRejects({ kind: 'not-found', code: 'host-not-found' });
  });
});

describe('CordonHost / UncordonHost', () => {
  it('cordons with a reason', () => {
    const { stateAfter } = given([registeredH1])
      .when({ type: 'CordonHost', reason: 'maintenance' })
      .then([cordoned]);
    expect(stateAfter).toMatchObject({ cordoned: true, cordonReason: 'maintenance' });
  });

  it('cordoning a cordoned host is a no-op', () => {
    given([registeredH1, cordoned]).when({ type: 'CordonHost', reason: 'again' }).then([]);
  });

  it('uncordons', () => {
    const { stateAfter } = given([registeredH1, cordoned])
      .when({ type: 'UncordonHost' })
      .then([{ type: 'HostUncordoned', data: { hostId } }]);
    expect(stateAfter).toMatchObject({ cordoned: false, cordonReason: null });
  });

  it('uncordoning a host that is not cordoned is a no-op', () => {
    given([registeredH1]).when({ type: 'UncordonHost' }).then([]);
    given([registeredH1, cordoned, { type: 'HostUncordoned', data: { hostId } }]).when({ type: 'UncordonHost' }).then([]);
  });
});

describe('ReserveCapacity', () => {
  it.each(purposes)('reserves what fits (purpose %s)', (purpose) => {
    const command = reserve({ purpose, vcpus: 4, reserveLpPct: 200, memoryMiB: 8192 });
    const { stateAfter } = given([registeredH1])
      .when(command)
      .then([
        {
          type: 'HostCapacityReserved',
          data: {
            hostId,
            reservationId: 'res-1',
            partitionId,
            incarnation: 1,
            purpose,
            vcpus: 4,
            reserveLpPct: 200,
            memoryMiB: 8192,
          },
        },
      ]);
    expect(stateAfter).toMatchObject({ reserved: { count: 1, vcpus: 4, reserveLpPct: 200, memoryMiB: 8192 } });
  });

  it('reserves exactly up to every limit', () => {
    // 8 LPs: 800 LP-% of reserve; 60 GiB usable; partitions capped at 2.
    const host = registered(registerHost({ limits: { partitionsPerHostMax: 2, vcpusPerHostMax: 16 } }));
    const first = reserve({ reservationId: 'a', vcpus: 8, reserveLpPct: 400, memoryMiB: 30_720 });
    given([host, reserved(first)])
      .when(reserve({ reservationId: 'b', partitionId: 'p2', vcpus: 8, reserveLpPct: 400, memoryMiB: 30_720 }))
      .thenAccepts();
  });

  const shortfall = (events: HostEvent[], command: HostCommand, reasons: string[]) => {
    const rejection = given(events).when(command).thenRejects(insufficient);
    expect(rejection.details).toEqual({ hostId, reasons });
    expect(rejection.message).toBe(`host ${hostId} cannot take it: ${reasons.join('; ')}`);
  };

  it('refuses more vCPUs than the host has logical processors', () => {
    shortfall([registeredH1], reserve({ vcpus: 9 }), ['needs 9 vCPUs but the host has 8 logical processors']);
  });

  it('refuses more vCPUs than the per-partition maximum (r2: 4)', () => {
    const r2 = registered(registerHost({ limitsPreset: 'r2' }));
    given([r2]).when(reserve({ vcpus: 4 })).thenAccepts();
    shortfall([r2], reserve({ vcpus: 5 }), ['needs 5 vCPUs but the host allows 4 per partition']);
  });

  it('refuses a partition beyond the partitions-per-host maximum', () => {
    const host = registered(registerHost({ limits: { partitionsPerHostMax: 2 } }));
    const a = reserved(reserve({ reservationId: 'a', partitionId: 'p1' }));
    const b = reserved(reserve({ reservationId: 'b', partitionId: 'p2' }));
    shortfall([host, a, b], reserve({ reservationId: 'c', partitionId: 'p3' }), [
      'the host already carries its maximum of 2 partitions',
    ]);
  });

  it('refuses vCPUs beyond the VP:LP ratio (r2: 8:1)', () => {
    // 2 LPs at 8:1 → 16 vCPUs on the host.
    const r2 = registered(registerHost({ limitsPreset: 'r2', logicalProcessors: 2 }));
    const eight = Array.from({ length: 8 }, (_, i) =>
      reserved(reserve({ reservationId: `r${i}`, partitionId: `p${i}`, vcpus: 2, memoryMiB: 1024 })),
    );
    shortfall([r2, ...eight], reserve({ reservationId: 'r9', partitionId: 'p9', vcpus: 1, memoryMiB: 1024 }), [
      "vCPUs would reach 17, above the host's limit of 16",
    ]);
  });

  it('refuses vCPUs beyond the per-host vCPU maximum', () => {
    const host = registered(registerHost({ limits: { vcpusPerHostMax: 10 } }));
    const a = reserved(reserve({ reservationId: 'a', partitionId: 'p1', vcpus: 8 }));
    shortfall([host, a], reserve({ reservationId: 'b', partitionId: 'p2', vcpus: 3 }), [
      "vCPUs would reach 11, above the host's limit of 10",
    ]);
  });

  it('refuses a processor reserve beyond the sum of logical processors', () => {
    // 8 LPs → 800 LP-%; 600 already reserved.
    const a = reserved(reserve({ reservationId: 'a', partitionId: 'p1', vcpus: 6, reserveLpPct: 600 }));
    shortfall([registeredH1, a], reserve({ reservationId: 'b', partitionId: 'p2', vcpus: 4, reserveLpPct: 250 }), [
      "processor reserve would reach 8.5 LPs, above the host's 8",
    ]);
  });

  it('refuses memory beyond what is free (the parent reserve is never given out)', () => {
    shortfall([registeredH1], reserve({ memoryMiB: 61_441 }), ['needs 61441 MiB of memory but only 61440 MiB is free']);
    const a = reserved(reserve({ reservationId: 'a', partitionId: 'p1', memoryMiB: 40_960 }));
    shortfall([registeredH1, a], reserve({ reservationId: 'b', partitionId: 'p2', memoryMiB: 20_481 }), [
      'needs 20481 MiB of memory but only 20480 MiB is free',
    ]);
  });

  it('lists every shortfall at once', () => {
    const r2 = registered(registerHost({ limitsPreset: 'r2', logicalProcessors: 2, memoryMiB: 4096, parentReserveMiB: 1024 }));
    shortfall([r2], reserve({ vcpus: 5, reserveLpPct: 500, memoryMiB: 4096 }), [
      'needs 5 vCPUs but the host has 2 logical processors',
      'needs 5 vCPUs but the host allows 4 per partition',
      "processor reserve would reach 5 LPs, above the host's 2",
      'needs 4096 MiB of memory but only 3072 MiB is free',
    ]);
  });

  it.each(['start', 'migration'] as const)('refuses a %s reservation on a cordoned host', (purpose) => {
    const rejection = given([registeredH1, cordoned])
      .when(reserve({ purpose }))
      .thenRejects({ kind: 'no-capacity', code: 'host-cordoned' });
    expect(rejection.details).toEqual({ hostId, reasons: ['host is cordoned'] });
    expect(rejection.message).toContain('maintenance');
  });

  it('accepts a restart reservation on a cordoned host (HA may restart in place)', () => {
    given([registeredH1, cordoned])
      .when(reserve({ purpose: 'restart' }))
      .then([reserved(reserve({ purpose: 'restart' }))]);
  });

  it('still checks capacity for a restart on a cordoned host', () => {
    given([registeredH1, cordoned])
      .when(reserve({ purpose: 'restart', vcpus: 9 }))
      .thenRejects(insufficient);
  });

  it('a retried reservation with the same id is a no-op, even after a cordon or when it would not fit again', () => {
    const history = [registeredH1, reserved(reserve({ memoryMiB: 61_440 }))];
    given(history).when(reserve({ memoryMiB: 61_440 })).then([]);
    given([...history, cordoned])
      .when(reserve({ memoryMiB: 61_440 }))
      .then([]);
  });

  it('refuses a reservation id that belongs to another partition', () => {
    given([registeredH1, reserved(reserve())])
      .when(reserve({ partitionId: 'other-1' }))
      .thenRejects({ kind: 'conflict', code: 'reservation-id-reused' });
  });
});

describe('AdjustReservation', () => {
  const base = [registeredH1, reserved(reserve({ vcpus: 4, reserveLpPct: 100 }))];
  const adjust = (reserveLpPct: number, reservationId = 'res-1'): HostCommand => ({
    type: 'AdjustReservation',
    reservationId,
    reserveLpPct,
  });

  it('changes the processor reserve when it fits', () => {
    const { stateAfter } = given(base)
      .when(adjust(400))
      .then([{ type: 'HostReservationAdjusted', data: { hostId, reservationId: 'res-1', partitionId, reserveLpPct: 400 } }]);
    expect(stateAfter).toMatchObject({ reserved: { count: 1, vcpus: 4, reserveLpPct: 400, memoryMiB: 2048 } });
    expect(stateAfter.status === 'Registered' && stateAfter.reservations.get('res-1')?.reserveLpPct).toBe(400);
  });

  it('may use the whole host, its own old reserve not counted twice', () => {
    given(base).when(adjust(800)).thenAccepts();
  });

  it('refuses a reserve that does not fit', () => {
    const other = reserved(reserve({ reservationId: 'b', partitionId: 'p2', reserveLpPct: 500 }));
    const rejection = given([...base, other])
      .when(adjust(400))
      .thenRejects(insufficient);
    expect(rejection.details).toEqual({ hostId, reasons: ["processor reserve would reach 9 LPs, above the host's 8"] });
  });

  it('adjusting to the same reserve is a no-op', () => {
    given(base).when(adjust(100)).then([]);
  });

  it('refuses an unknown reservation', () => {
    given(base)
      .when(adjust(100, 'nope'))
      .thenRejects({ kind: 'not-found', code: 'reservation-not-found' });
  });

  it('can lower a reserve on a host that is full by another dimension', () => {
    const full = [registeredH1, reserved(reserve({ vcpus: 4, reserveLpPct: 100, memoryMiB: 61_440 }))];
    given(full).when(adjust(0)).thenAccepts();
  });
});

describe('ReleaseReservation', () => {
  const release = (reservationId = 'res-1'): HostCommand => ({ type: 'ReleaseReservation', reservationId, reason: 'stopped' });

  it('releases a reservation and its capacity', () => {
    const { stateAfter } = given([registeredH1, reserved(reserve({ vcpus: 4, reserveLpPct: 100 }))])
      .when(release())
      .then([{ type: 'HostReservationReleased', data: { hostId, reservationId: 'res-1', partitionId, reason: 'stopped' } }]);
    expect(stateAfter).toMatchObject({ reserved: emptyTotals, reservations: new Map() });
  });

  it('releasing twice is a no-op', () => {
    const releasedOnce: HostEvent = {
      type: 'HostReservationReleased',
      data: { hostId, reservationId: 'res-1', partitionId, reason: 'stopped' },
    };
    given([registeredH1, reserved(), releasedOnce]).when(release()).then([]);
  });

  it('releasing an unknown reservation is a no-op', () => {
    given([registeredH1]).when(release('nope')).then([]);
  });

  it('frees room for the next partition', () => {
    const full = [registeredH1, reserved(reserve({ memoryMiB: 61_440 }))];
    given(full)
      .when(reserve({ reservationId: 'b', partitionId: 'p2' }))
      .thenRejects(insufficient);
    const { events } = given(full).when(release()).thenAccepts();
    given([...full, ...events])
      .when(reserve({ reservationId: 'b', partitionId: 'p2' }))
      .thenAccepts();
  });
});

describe('Maintenance', () => {
  const requested: HostEvent = { type: 'HostMaintenanceRequested', data: { hostId, drainId: 'd1', reason: 'firmware' } };
  const entered: HostEvent = { type: 'HostMaintenanceEntered', data: { hostId, drainId: 'd1' } };

  it('a maintenance request cordons the host and starts draining; a second request is a no-op', () => {
    const { stateAfter } = given([registeredH1]).when({ type: 'RequestMaintenance', drainId: 'd1', reason: 'firmware' }).then([requested]);
    expect(stateAfter).toMatchObject({ cordoned: true, maintenance: { drainId: 'd1', status: 'Draining', reason: 'firmware' } });
    given([registeredH1, requested]).when({ type: 'RequestMaintenance', drainId: 'd2', reason: 'again' }).then([]);
  });

  it('enters maintenance only once nothing is reserved on the host, and only for its own drain', () => {
    given([registeredH1, requested, reserved()]).when({ type: 'EnterMaintenance', drainId: 'd1' }).thenRejects({ kind: 'conflict', code: 'host-not-empty' });
    given([registeredH1, requested]).when({ type: 'EnterMaintenance', drainId: 'other' }).then([]);
    const { stateAfter } = given([registeredH1, requested]).when({ type: 'EnterMaintenance', drainId: 'd1' }).then([entered]);
    expect(stateAfter).toMatchObject({ maintenance: { status: 'InMaintenance' } });
    given([registeredH1, requested, entered]).when({ type: 'EnterMaintenance', drainId: 'd1' }).then([]);
  });

  it('refuses new placements while draining or in maintenance', () => {
    given([registeredH1, requested]).when(reserve()).thenRejects({ kind: 'no-capacity', code: 'host-cordoned' });
    given([registeredH1, requested, entered]).when(reserve()).thenRejects({ kind: 'no-capacity', code: 'host-cordoned' });
  });

  it('ends maintenance (uncordons); uncordon alone is refused while in maintenance', () => {
    given([registeredH1, requested]).when({ type: 'UncordonHost' }).thenRejects({ kind: 'conflict', code: 'in-maintenance' });
    const { stateAfter } = given([registeredH1, requested, entered])
      .when({ type: 'ExitMaintenance' })
      .then([{ type: 'HostMaintenanceExited', data: { hostId, drainId: 'd1' } }]);
    expect(stateAfter).toMatchObject({ cordoned: false, maintenance: null });
    given([registeredH1]).when({ type: 'ExitMaintenance' }).thenRejects({ kind: 'conflict', code: 'not-in-maintenance' });
  });
});
