import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { computeEntitlements, type EntitlementDemand } from '../../services/hypervisor/index.ts';

/** A VM as the reference table describes it (hypervisor-models.md §1.1 and §1.9). */
interface VmSpec {
  readonly id: string;
  readonly vcpus: number;
  readonly reservePct?: number;
  readonly limitPct?: number;
  readonly weight?: number;
  /** LP-seconds per second the guest would run unconstrained; default busy (= vcpus). */
  readonly demandLp?: number;
}

/** §1.9: u = min(L, n, d), f = min(R, u). */
function toDemand(vm: VmSpec): EntitlementDemand {
  const limitLp = (vm.vcpus * (vm.limitPct ?? 100)) / 100;
  const reserveLp = (vm.vcpus * (vm.reservePct ?? 0)) / 100;
  const ceilingLp = Math.min(limitLp, vm.vcpus, vm.demandLp ?? vm.vcpus);
  return { id: vm.id, weight: vm.weight ?? 100, floorLp: Math.min(reserveLp, ceilingLp), ceilingLp };
}

function entitle(capacityLp: number, vms: readonly VmSpec[]): number[] {
  const result = computeEntitlements(capacityLp, vms.map(toDemand));
  return vms.map((vm) => result.get(vm.id) ?? Number.NaN);
}

function expectClose(actual: readonly number[], expected: readonly number[]): void {
  expect(actual).toHaveLength(expected.length);
  actual.forEach((value, i) => {
    expect(value).toBeCloseTo(expected[i] ?? Number.NaN, 12);
  });
}

describe('computeEntitlements: the test vectors of hypervisor-models.md §1.9 (clamp policy)', () => {
  it('T1: 1 LP, three 1-vCPU VMs with weights 100/200/700, all busy → 0.1/0.2/0.7 (the TLFS example)', () => {
    const x = entitle(1, [
      { id: 'a', vcpus: 1, weight: 100 },
      { id: 'b', vcpus: 1, weight: 200 },
      { id: 'c', vcpus: 1, weight: 700 },
    ]);
    expect(x).toEqual([0.1, 0.2, 0.7]);
  });

  it('T2: 4 LP; A, B: 4 vCPU w100; C: 4 vCPU w200 limit 25 % (L = 1.0); all busy → 1.5/1.5/1.0', () => {
    const x = entitle(4, [
      { id: 'a', vcpus: 4, weight: 100 },
      { id: 'b', vcpus: 4, weight: 100 },
      { id: 'c', vcpus: 4, weight: 200, limitPct: 25 },
    ]);
    expectClose(x, [1.5, 1.5, 1.0]);
  });

  it('T3: 4 LP; A: 2 vCPU reserve 50 % w100 busy; B: 4 vCPU w400 busy; C: 1 vCPU demand 0.5 w100 → 1.0/2.5/0.5', () => {
    const x = entitle(4, [
      { id: 'a', vcpus: 2, reservePct: 50, weight: 100 },
      { id: 'b', vcpus: 4, weight: 400 },
      { id: 'c', vcpus: 1, weight: 100, demandLp: 0.5 },
    ]);
    expectClose(x, [1.0, 2.5, 0.5]);
  });

  it('T4: 8 LP, two 2-vCPU VMs busy → 2/2 (undersubscribed)', () => {
    const x = entitle(8, [
      { id: 'a', vcpus: 2 },
      { id: 'b', vcpus: 2 },
    ]);
    expect(x).toEqual([2, 2]);
  });

  it('T5: 2 LP; A: 2 vCPU reserve 75 % w1; B: 2 vCPU w10000; both busy → 1.5/0.5 (floor dominates weight)', () => {
    const x = entitle(2, [
      { id: 'a', vcpus: 2, reservePct: 75, weight: 1 },
      { id: 'b', vcpus: 2, weight: 10_000 },
    ]);
    expectClose(x, [1.5, 0.5]);
  });
});

describe('computeEntitlements: hand-computed cases', () => {
  it.each([
    [
      // Σ u = 4 + 2 + 4 = 10 > 8. B hits its limit (300λ > 2), A and C split the other 6 by weight:
      // 100λ = 3 each, above A's floor of 2. The idle D (weight 10000) takes nothing.
      '8 LP: a reserve 50 %, b limit 50 % w300, c plain, d idle w10000 → 3 / 2 / 3 / 0',
      8,
      [
        { id: 'a', vcpus: 4, reservePct: 50 },
        { id: 'b', vcpus: 4, limitPct: 50, weight: 300 },
        { id: 'c', vcpus: 4 },
        { id: 'd', vcpus: 4, weight: 10_000, demandLp: 0 },
      ],
      [3, 2, 3, 0],
    ],
    [
      // A's floor 3 binds (100λ = 1/9 < 3); B takes what is left: 1.
      '4 LP: a reserve 75 % w100, b w900 → 3 / 1',
      4,
      [
        { id: 'a', vcpus: 4, reservePct: 75 },
        { id: 'b', vcpus: 4, weight: 900 },
      ],
      [3, 1],
    ],
    [
      // A reserve above demand holds nothing: A wants 0.5 and gets it (f = min(R, u) = 0.5); B and C
      // share 3.5 at 1:2, but C is limited to 25 % of 4 = 1, so B gets 2.5.
      '4 LP: a reserve 100 % demand 0.5, b w100, c w200 limit 25 % → 0.5 / 2.5 / 1',
      4,
      [
        { id: 'a', vcpus: 2, reservePct: 100, demandLp: 0.5 },
        { id: 'b', vcpus: 4 },
        { id: 'c', vcpus: 4, weight: 200, limitPct: 25 },
      ],
      [0.5, 2.5, 1],
    ],
    [
      // Three equal weights, one demand-limited to 0.3: the other two split 1.7 → 0.85 each.
      '2 LP: three 1-vCPU partitions, one wanting 0.3 → 0.3 / 0.85 / 0.85',
      2,
      [
        { id: 'a', vcpus: 1, demandLp: 0.3 },
        { id: 'b', vcpus: 1 },
        { id: 'c', vcpus: 1 },
      ],
      [0.3, 0.85, 0.85],
    ],
    [
      // Weights 1 : 3 over 1 LP with both reserving 10 %: 0.25 / 0.75, both above their floors.
      '1 LP: reserves 10 % each, weights 1 / 3 → 0.25 / 0.75',
      1,
      [
        { id: 'a', vcpus: 1, reservePct: 10, weight: 1 },
        { id: 'b', vcpus: 1, reservePct: 10, weight: 3 },
      ],
      [0.25, 0.75],
    ],
  ] as [string, number, VmSpec[], number[]][])('%s', (_name, capacityLp, vms, expected) => {
    expectClose(entitle(capacityLp, vms), expected);
  });
});

describe('computeEntitlements: edge cases', () => {
  it('returns an empty map for no demands', () => {
    expect(computeEntitlements(4, []).size).toBe(0);
  });

  it('gives nothing when capacity is 0', () => {
    const result = computeEntitlements(0, [{ id: 'a', weight: 100, floorLp: 0, ceilingLp: 2 }]);
    expect(result.get('a')).toBe(0);
  });

  it('scales over-committed floors down proportionally, never above capacity', () => {
    const result = computeEntitlements(2, [
      { id: 'a', weight: 100, floorLp: 3, ceilingLp: 4 },
      { id: 'b', weight: 100, floorLp: 1, ceilingLp: 4 },
    ]);
    expect(result.get('a')).toBeCloseTo(1.5, 12);
    expect(result.get('b')).toBeCloseTo(0.5, 12);
  });

  it('gives exactly the floors when they fill capacity exactly', () => {
    const result = computeEntitlements(2, [
      { id: 'a', weight: 1, floorLp: 1.5, ceilingLp: 2 },
      { id: 'b', weight: 10_000, floorLp: 0.5, ceilingLp: 2 },
    ]);
    expect([result.get('a'), result.get('b')]).toEqual([1.5, 0.5]);
  });

  it.each([
    ['negative capacity', -1, [{ id: 'a', weight: 1, floorLp: 0, ceilingLp: 1 }]],
    ['NaN capacity', Number.NaN, [{ id: 'a', weight: 1, floorLp: 0, ceilingLp: 1 }]],
    ['zero weight', 1, [{ id: 'a', weight: 0, floorLp: 0, ceilingLp: 1 }]],
    ['floor above ceiling', 1, [{ id: 'a', weight: 1, floorLp: 2, ceilingLp: 1 }]],
    ['negative floor', 1, [{ id: 'a', weight: 1, floorLp: -1, ceilingLp: 1 }]],
    [
      'duplicate ids',
      1,
      [
        { id: 'a', weight: 1, floorLp: 0, ceilingLp: 1 },
        { id: 'a', weight: 1, floorLp: 0, ceilingLp: 1 },
      ],
    ],
  ] as const)('rejects %s', (_name, capacityLp, demands) => {
    expect(() => computeEntitlements(capacityLp, demands)).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------------------------
// Properties (§1.9 "Invariants to property-test").

const demandArb = fc
  .record({
    weight: fc.integer({ min: 1, max: 10_000 }),
    ceilingLp: fc.double({ min: 0, max: 16, noNaN: true }),
    floorShare: fc.double({ min: 0, max: 1, noNaN: true }),
  })
  .map(({ weight, ceilingLp, floorShare }) => ({ weight, ceilingLp, floorLp: ceilingLp * floorShare }));

/** Demands whose floors fit the capacity, as admission (Σ R ≤ C) guarantees. */
const admittedArb = fc
  .record({ capacityLp: fc.double({ min: 0, max: 64, noNaN: true }), raw: fc.array(demandArb, { maxLength: 10 }) })
  .map(({ capacityLp, raw }) => {
    const floorSumLp = raw.reduce((total, d) => total + d.floorLp, 0);
    const scale = floorSumLp > capacityLp ? capacityLp / floorSumLp : 1;
    const demands: EntitlementDemand[] = raw.map((d, i) => ({
      id: `vm${i}`,
      weight: d.weight,
      floorLp: d.floorLp * scale,
      ceilingLp: d.ceilingLp,
    }));
    return { capacityLp, demands };
  });

const tolerance = (capacityLp: number): number => 1e-9 * Math.max(1, capacityLp);
const total = (result: Map<string, number>): number => [...result.values()].reduce((a, b) => a + b, 0);

describe('computeEntitlements: properties', () => {
  it('never hands out more than the capacity, even with over-committed floors', () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 64, noNaN: true }), fc.array(demandArb, { maxLength: 10 }), (capacityLp, raw) => {
        const demands = raw.map((d, i) => ({ id: `vm${i}`, ...d }));
        const result = computeEntitlements(capacityLp, demands);
        expect(total(result)).toBeLessThanOrEqual(capacityLp + tolerance(capacityLp));
        for (const d of demands) expect(result.get(d.id)).toBeLessThanOrEqual(d.ceilingLp + tolerance(capacityLp));
      }),
    );
  });

  it('keeps every partition between its floor and its ceiling', () => {
    fc.assert(
      fc.property(admittedArb, ({ capacityLp, demands }) => {
        const result = computeEntitlements(capacityLp, demands);
        for (const d of demands) {
          const x = result.get(d.id) ?? Number.NaN;
          expect(x).toBeGreaterThanOrEqual(d.floorLp - tolerance(capacityLp));
          expect(x).toBeLessThanOrEqual(d.ceilingLp + tolerance(capacityLp));
        }
      }),
    );
  });

  it('is work-conserving: Σ x = min(capacity, Σ ceilings)', () => {
    fc.assert(
      fc.property(admittedArb, ({ capacityLp, demands }) => {
        const result = computeEntitlements(capacityLp, demands);
        const ceilingSumLp = demands.reduce((sum, d) => sum + d.ceilingLp, 0);
        expect(Math.abs(total(result) - Math.min(capacityLp, ceilingSumLp))).toBeLessThanOrEqual(
          tolerance(capacityLp) * 10,
        );
      }),
    );
  });

  it('gives partitions strictly between floor and ceiling the same share per unit of weight', () => {
    fc.assert(
      fc.property(admittedArb, ({ capacityLp, demands }) => {
        const result = computeEntitlements(capacityLp, demands);
        const eps = tolerance(capacityLp) * 100;
        const ratios = demands
          .filter((d) => {
            const x = result.get(d.id) ?? Number.NaN;
            return x > d.floorLp + eps && x < d.ceilingLp - eps;
          })
          .map((d) => (result.get(d.id) ?? Number.NaN) / d.weight);
        for (const ratio of ratios) expect(ratio).toBeCloseTo(ratios[0] ?? ratio, 9);
      }),
    );
  });

  it('never lowers a partition’s share when its weight rises', () => {
    fc.assert(
      fc.property(admittedArb, fc.nat(), fc.integer({ min: 1, max: 10_000 }), ({ capacityLp, demands }, pick, extra) => {
        fc.pre(demands.length > 0);
        const index = pick % demands.length;
        const target = demands[index]!;
        const before = computeEntitlements(capacityLp, demands).get(target.id) ?? Number.NaN;
        const raised = demands.map((d, i) => (i === index ? { ...d, weight: d.weight + extra } : d));
        const after = computeEntitlements(capacityLp, raised).get(target.id) ?? Number.NaN;
        expect(after).toBeGreaterThanOrEqual(before - tolerance(capacityLp));
      }),
    );
  });

  it('is unchanged by idle partitions and by scaling every weight', () => {
    fc.assert(
      fc.property(admittedArb, fc.integer({ min: 2, max: 50 }), ({ capacityLp, demands }, factor) => {
        const base = computeEntitlements(capacityLp, demands);
        const withIdle = computeEntitlements(capacityLp, [
          ...demands,
          { id: 'idle1', weight: 10_000, floorLp: 0, ceilingLp: 0 },
          { id: 'idle2', weight: 1, floorLp: 0, ceilingLp: 0 },
        ]);
        const scaled = computeEntitlements(
          capacityLp,
          demands.map((d) => ({ ...d, weight: d.weight * factor })),
        );
        expect(withIdle.get('idle1')).toBe(0);
        for (const d of demands) {
          expect(withIdle.get(d.id)).toBeCloseTo(base.get(d.id) ?? Number.NaN, 9);
          expect(scaled.get(d.id)).toBeCloseTo(base.get(d.id) ?? Number.NaN, 9);
        }
      }),
    );
  });
});
