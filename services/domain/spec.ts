/**
 * The partition spec: what a platform team asks for, validated once at the boundary.
 * Ranges follow Hyper-V (../shared/reference/control-planes.md §1.3–1.4).
 */
import { type Rejection, type Result, failure } from './decision.ts';

export type ProcessorSpec = {
  /** Guaranteed share of the partition's vCPUs' capacity under contention, whole percent 0–100 (as Hyper-V). */
  readonly reservePct: number;
  /** Hard cap, whole percent 0–100, >= reservePct. */
  readonly limitPct: number;
  /** Relative weight 1–10000. */
  readonly weight: number;
};

export type MemorySpec =
  | { readonly mode: 'static'; readonly startupMiB: number }
  | {
      readonly mode: 'dynamic';
      readonly startupMiB: number;
      readonly minMiB: number;
      readonly maxMiB: number;
      readonly bufferPct: number;
      readonly weight: number;
    };

export type RestartPolicy = 'none' | 'same-host' | 'any-host';

export type HaPolicy = {
  readonly restart: RestartPolicy;
  /** 0 = never auto-start, 1000 Low, 2000 Medium (default), 3000 High (WSFC). */
  readonly priority: number;
  /** Partitions of one class avoid sharing a host. */
  readonly antiAffinityClass: string | null;
  readonly antiAffinityMode: 'soft' | 'hard';
  readonly preferredHostIds: string[];
};

export type CpuPattern = 'constant' | 'periodic' | 'bursty';

/** The simulated guest's behaviour (ignored by real hypervisors). */
export type WorkloadSpec = {
  /** CPU demand (percent of the partition's vCPUs' capacity) when busy; constant pattern: always. */
  readonly cpuDemandPct: number;
  /** constant; periodic (busy for cpuDutyPct of every cpuPeriodMs); bursty (random busy spells from the host's seeded source, busy cpuDutyPct of the time on average, mean cycle cpuPeriodMs). */
  readonly cpuPattern: CpuPattern;
  /** Demand when not busy (periodic and bursty). */
  readonly cpuLowPct: number;
  readonly cpuPeriodMs: number;
  readonly cpuDutyPct: number;
  /** Committed memory the guest wants. */
  readonly memoryDemandMiB: number;
  /** Rate of newly dirtied distinct memory (live migration). */
  readonly dirtyMiBps: number;
  /** Writable working set that bounds the dirty set (null = unbounded, a sequential writer). */
  readonly workingSetMiB: number | null;
};

export type PartitionSpec = {
  readonly vcpus: number;
  readonly processor: ProcessorSpec;
  readonly memory: MemorySpec;
  readonly ha: HaPolicy;
  readonly workload: WorkloadSpec | null;
};

/** Input shapes: everything but vcpus and memory.startupMiB has a default. */
export type ProcessorInput = { reservePct?: number; limitPct?: number; weight?: number };
export type MemoryInput = {
  mode?: 'static' | 'dynamic';
  startupMiB?: number;
  minMiB?: number;
  maxMiB?: number;
  bufferPct?: number;
  weight?: number;
};
export type HaInput = {
  restart?: RestartPolicy;
  priority?: number;
  antiAffinityClass?: string | null;
  antiAffinityMode?: 'soft' | 'hard';
  preferredHostIds?: string[];
};
export type WorkloadInput = {
  cpuDemandPct?: number;
  cpuPattern?: CpuPattern;
  cpuLowPct?: number;
  cpuPeriodMs?: number;
  cpuDutyPct?: number;
  memoryDemandMiB?: number;
  dirtyMiBps?: number;
  workingSetMiB?: number | null;
};
export type PartitionSpecInput = {
  vcpus?: number;
  processor?: ProcessorInput;
  memory?: MemoryInput;
  ha?: HaInput;
  workload?: WorkloadInput | null;
};
export type PartitionSpecPatch = PartitionSpecInput;

export const specLimits = {
  vcpusMax: 2048,
  memoryMiBMax: 256 * 1024 * 1024,
  weightMin: 1,
  weightMax: 10_000,
  memoryWeightMax: 10_000,
  bufferPctMin: 5,
  bufferPctMax: 2000,
  priorityValues: [0, 1000, 2000, 3000],
  nameLengthMax: 100,
  dirtyMiBpsMax: 1_000_000,
} as const;

export const defaultProcessor: ProcessorSpec = { reservePct: 0, limitPct: 100, weight: 100 };
export const defaultHa: HaPolicy = {
  restart: 'any-host',
  priority: 2000,
  antiAffinityClass: null,
  antiAffinityMode: 'soft',
  preferredHostIds: [],
};
export const defaultBufferPct = 20;
export const defaultMemoryWeight = 5000;

function integerIn(value: unknown, min: number, max: number, field: string): Rejection | null {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    return invalid(field, `${field} must be an integer`);
  }
  if (value < min || value > max) return invalid(field, `${field} must be between ${min} and ${max}, got ${value}`);
  return null;
}

function numberIn(value: unknown, min: number, max: number, field: string): Rejection | null {
  if (typeof value !== 'number' || !Number.isFinite(value)) return invalid(field, `${field} must be a number`);
  if (value < min || value > max) return invalid(field, `${field} must be between ${min} and ${max}, got ${value}`);
  return null;
}

function invalid(field: string, message: string): Rejection {
  return { kind: 'invalid', code: 'invalid-spec', message, field, details: null };
}

function firstRejection(...checks: (Rejection | null)[]): Rejection | null {
  for (const check of checks) if (check) return check;
  return null;
}

/** Builds a full, valid spec from input over a base (defaults, or the current spec for a patch). */
export function buildSpec(input: PartitionSpecInput, base: PartitionSpec | null): Result<PartitionSpec> {
  const vcpus = input.vcpus ?? base?.vcpus;
  if (vcpus === undefined) return failure('invalid', 'invalid-spec', 'vcpus is required', { field: '/vcpus' });
  const processor: ProcessorSpec = { ...(base?.processor ?? defaultProcessor), ...definedOnly(input.processor) };
  const memory = buildMemory(input.memory, base?.memory ?? null);
  if (!memory.ok) return memory;
  const memorySpec = memory.value;
  const ha: HaPolicy = { ...(base?.ha ?? defaultHa), ...definedOnly(input.ha) };
  const workload =
    input.workload === null
      ? null
      : input.workload === undefined
        ? (base?.workload ?? null)
        : buildWorkload(input.workload, base?.workload ?? null, memorySpec.startupMiB);
  const spec: PartitionSpec = { vcpus, processor, memory: memorySpec, ha, workload };
  const problem = validateSpec(spec);
  return problem ? { ok: false, rejection: problem } : { ok: true, value: spec };
}

export const defaultWorkload: Omit<WorkloadSpec, 'memoryDemandMiB'> = {
  cpuDemandPct: 100,
  cpuPattern: 'constant',
  cpuLowPct: 0,
  cpuPeriodMs: 10_000,
  cpuDutyPct: 50,
  dirtyMiBps: 0,
  workingSetMiB: null,
};

function buildWorkload(input: WorkloadInput, base: WorkloadSpec | null, startupMiB: number): WorkloadSpec {
  return { ...defaultWorkload, memoryDemandMiB: startupMiB, ...base, ...definedOnly(input) };
}

/**
 * An input field set to `undefined` means absent (keep the base), as it does for vcpus and memory;
 * spread as is, it would overwrite the base with `undefined` (and `ha.antiAffinityClass:
 * undefined` made validateSpec throw a TypeError instead of rejecting).
 */
function definedOnly<T extends object>(input: T | undefined): Partial<T> {
  return Object.fromEntries(Object.entries(input ?? {}).filter(([, value]) => value !== undefined)) as Partial<T>;
}

function buildMemory(input: MemoryInput | undefined, base: MemorySpec | null): Result<MemorySpec> {
  const mode = input?.mode ?? base?.mode ?? 'static';
  const startupMiB = input?.startupMiB ?? base?.startupMiB;
  if (startupMiB === undefined) {
    return failure('invalid', 'invalid-spec', 'memory.startupMiB is required', { field: '/memory/startupMiB' });
  }
  if (mode === 'static') {
    for (const key of ['minMiB', 'maxMiB', 'bufferPct', 'weight'] as const) {
      if (input?.[key] !== undefined) {
        return failure('invalid', 'invalid-spec', `memory.${key} applies only to dynamic memory (mode: "dynamic")`, {
          field: `/memory/${key}`,
        });
      }
    }
    return { ok: true, value: { mode: 'static', startupMiB } };
  }
  const dynamicBase = base?.mode === 'dynamic' ? base : null;
  return {
    ok: true,
    value: {
    mode: 'dynamic',
    startupMiB,
    minMiB: input?.minMiB ?? dynamicBase?.minMiB ?? startupMiB,
    maxMiB: input?.maxMiB ?? dynamicBase?.maxMiB ?? startupMiB,
    bufferPct: input?.bufferPct ?? dynamicBase?.bufferPct ?? defaultBufferPct,
    weight: input?.weight ?? dynamicBase?.weight ?? defaultMemoryWeight,
    },
  };
}

/** Every invariant of a spec, checked on the full spec (so patches and creates share it). */
export function validateSpec(spec: PartitionSpec): Rejection | null {
  const { vcpus, processor, memory, ha, workload } = spec;
  return firstRejection(
    integerIn(vcpus, 1, specLimits.vcpusMax, '/vcpus'),
    integerIn(processor.reservePct, 0, 100, '/processor/reservePct'),
    integerIn(processor.limitPct, 0, 100, '/processor/limitPct'),
    processor.limitPct < processor.reservePct
      ? invalid(
          '/processor/limitPct',
          `processor.limitPct (${processor.limitPct}) must be >= processor.reservePct (${processor.reservePct})`,
        )
      : null,
    integerIn(processor.weight, specLimits.weightMin, specLimits.weightMax, '/processor/weight'),
    integerIn(memory.startupMiB, 1, specLimits.memoryMiBMax, '/memory/startupMiB'),
    memory.mode === 'dynamic' ? validateDynamic(memory) : null,
    ha.restart === 'none' || ha.restart === 'same-host' || ha.restart === 'any-host'
      ? null
      : invalid('/ha/restart', 'ha.restart must be one of none, same-host, any-host'),
    (specLimits.priorityValues as readonly number[]).includes(ha.priority)
      ? null
      : invalid('/ha/priority', 'ha.priority must be 0 (never auto-start), 1000 (Low), 2000 (Medium) or 3000 (High)'),
    ha.antiAffinityClass !== null && (ha.antiAffinityClass.length === 0 || ha.antiAffinityClass.length > 100)
      ? invalid('/ha/antiAffinityClass', 'ha.antiAffinityClass must be 1 to 100 characters, or null')
      : null,
    workload
      ? firstRejection(
          numberIn(workload.cpuDemandPct, 0, 100, '/workload/cpuDemandPct'),
          integerIn(workload.memoryDemandMiB, 0, specLimits.memoryMiBMax, '/workload/memoryDemandMiB'),
          numberIn(workload.dirtyMiBps, 0, specLimits.dirtyMiBpsMax, '/workload/dirtyMiBps'),
          ['constant', 'periodic', 'bursty'].includes(workload.cpuPattern)
            ? null
            : invalid('/workload/cpuPattern', 'workload.cpuPattern must be constant, periodic or bursty'),
          numberIn(workload.cpuLowPct, 0, 100, '/workload/cpuLowPct'),
          integerIn(workload.cpuPeriodMs, 10, 86_400_000, '/workload/cpuPeriodMs'),
          numberIn(workload.cpuDutyPct, 0, 100, '/workload/cpuDutyPct'),
          workload.workingSetMiB === null ? null : integerIn(workload.workingSetMiB, 1, specLimits.memoryMiBMax, '/workload/workingSetMiB'),
        )
      : null,
  );
}

function validateDynamic(memory: Extract<MemorySpec, { mode: 'dynamic' }>): Rejection | null {
  return firstRejection(
    integerIn(memory.minMiB, 1, specLimits.memoryMiBMax, '/memory/minMiB'),
    integerIn(memory.maxMiB, 1, specLimits.memoryMiBMax, '/memory/maxMiB'),
    memory.minMiB > memory.startupMiB
      ? invalid('/memory/minMiB', `memory.minMiB (${memory.minMiB}) must be <= memory.startupMiB (${memory.startupMiB})`)
      : null,
    memory.startupMiB > memory.maxMiB
      ? invalid(
          '/memory/maxMiB',
          `memory.maxMiB (${memory.maxMiB}) must be >= memory.startupMiB (${memory.startupMiB})`,
        )
      : null,
    integerIn(memory.bufferPct, specLimits.bufferPctMin, specLimits.bufferPctMax, '/memory/bufferPct'),
    integerIn(memory.weight, 0, specLimits.memoryWeightMax, '/memory/weight'),
  );
}

/** Processor reserve of a partition in LP-percent (vcpus × reservePct), the unit hosts account in. */
export function reserveLpPct(spec: PartitionSpec): number {
  return spec.vcpus * spec.processor.reservePct;
}

/** Memory a placement must reserve: the startup amount (a start needs it available). */
export function memoryToReserveMiB(spec: PartitionSpec): number {
  return spec.memory.startupMiB;
}

export type SpecChange = { readonly field: string; readonly from: string; readonly to: string };

/** The leaf-level differences between two specs, for the audit trail. */
export function diffSpecs(before: PartitionSpec, after: PartitionSpec): SpecChange[] {
  const changes: SpecChange[] = [];
  const walk = (a: unknown, b: unknown, path: string): void => {
    if (isRecord(a) && isRecord(b) && !Array.isArray(a) && !Array.isArray(b)) {
      const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
      for (const key of keys) walk(a[key], b[key], `${path}/${key}`);
      return;
    }
    const from = JSON.stringify(a ?? null);
    const to = JSON.stringify(b ?? null);
    if (from !== to) changes.push({ field: path, from, to });
  };
  walk(before, after, '');
  return changes;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}
