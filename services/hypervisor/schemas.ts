/**
 * JSON schemas (TypeBox) of the Hypervisor port's shapes, as they travel between the sim-host and
 * its client. One source for the server's validation and serialization and for the client's check
 * of every response. The schemas pin shapes and types; value ranges are the hypervisor's to judge
 * (sim/validate.ts), so the HTTP path and the in-process path refuse exactly the same configurations.
 */
import { type Static, Type } from 'typebox';
import type {
  HostInfo,
  HostUsage,
  HypervisorError,
  MemorySettings,
  PartitionConfig,
  PartitionStatus,
  PartitionUsage,
  ProcessorSettings,
  WatchdogStatus,
  WorkloadProfile,
} from './port.ts';
import type { Observation } from './sim/sim-hypervisor.ts';
import { simLimits } from './sim/validate.ts';

const closed = { additionalProperties: false } as const;

export const PartitionIdSchema = Type.String({ minLength: 1, maxLength: simLimits.partitionIdLengthMax });
export const IncarnationSchema = Type.Integer({ minimum: 0 });

export const ProcessorSettingsSchema = Type.Object(
  { reservePct: Type.Number(), limitPct: Type.Number(), weight: Type.Number() },
  closed,
);

export const MemorySettingsSchema = Type.Union([
  Type.Object({ mode: Type.Literal('static'), startupMiB: Type.Number() }, closed),
  Type.Object(
    {
      mode: Type.Literal('dynamic'),
      startupMiB: Type.Number(),
      minMiB: Type.Number(),
      maxMiB: Type.Number(),
      bufferPct: Type.Number(),
      weight: Type.Number(),
    },
    closed,
  ),
]);

export const WorkloadProfileSchema = Type.Object(
  {
    cpuDemandPct: Type.Number(),
    cpuPattern: Type.Union([Type.Literal('constant'), Type.Literal('periodic'), Type.Literal('bursty')]),
    cpuLowPct: Type.Number(),
    cpuPeriodMs: Type.Number(),
    cpuDutyPct: Type.Number(),
    memoryDemandMiB: Type.Number(),
    dirtyMiBps: Type.Number(),
    workingSetMiB: Type.Union([Type.Number(), Type.Null()]),
  },
  closed,
);

export const PartitionConfigSchema = Type.Object(
  {
    partitionId: PartitionIdSchema,
    incarnation: IncarnationSchema,
    vcpus: Type.Number(),
    processor: ProcessorSettingsSchema,
    memory: MemorySettingsSchema,
    workload: Type.Union([WorkloadProfileSchema, Type.Null()]),
  },
  closed,
);

export const PartitionStatusSchema = Type.Object(
  {
    partitionId: Type.String(),
    incarnation: Type.Integer(),
    state: Type.Union([Type.Literal('Running'), Type.Literal('Paused')]),
    vcpus: Type.Integer(),
    processor: ProcessorSettingsSchema,
    memory: MemorySettingsSchema,
    memoryAssignedMiB: Type.Number(),
    startedAtMs: Type.Number(),
  },
  closed,
);

export const PartitionUsageSchema = Type.Object(
  {
    partitionId: Type.String(),
    incarnation: Type.Integer(),
    cpuPct: Type.Number(),
    cpuLp: Type.Number(),
    cpuWaitMsPerS: Type.Number(),
    cpuDemandPct: Type.Number(),
    cpuEntitlementLp: Type.Number(),
    dispatchesPerS: Type.Number(),
    cpuWaitMsPerDispatch: Type.Number(),
    throttlePct: Type.Union([Type.Number(), Type.Null()]),
    memoryAssignedMiB: Type.Number(),
    memoryDemandMiB: Type.Number(),
    memoryPressurePct: Type.Number(),
    memoryBalloonedMiB: Type.Number(),
  },
  closed,
);

export const HostUsageSchema = Type.Object(
  {
    logicalProcessors: Type.Integer(),
    parentCpuLp: Type.Number(),
    memoryMiB: Type.Number(),
    parentReserveMiB: Type.Number(),
    memoryAvailableMiB: Type.Number(),
    memoryCommittedMiB: Type.Number(),
    cpuUsedLp: Type.Number(),
    partitions: Type.Immutable(Type.Array(PartitionUsageSchema)),
    sampledAtMs: Type.Number(),
  },
  closed,
);

export const HostInfoSchema = Type.Object(
  {
    hostId: Type.String(),
    logicalProcessors: Type.Integer(),
    memoryMiB: Type.Number(),
    parentReserveMiB: Type.Number(),
    bootId: Type.String(),
  },
  closed,
);

export const ObservationSchema = Type.Union([
  Type.Object(
    {
      kind: Type.Literal('crashed'),
      partitionId: Type.String(),
      incarnation: Type.Integer(),
      reason: Type.String(),
      atMs: Type.Number(),
    },
    closed,
  ),
  Type.Object(
    { kind: Type.Literal('stopped-by-guest'), partitionId: Type.String(), incarnation: Type.Integer(), atMs: Type.Number() },
    closed,
  ),
  Type.Object(
    { kind: Type.Literal('fenced'), partitionId: Type.String(), incarnation: Type.Integer(), atMs: Type.Number() },
    closed,
  ),
]);

export const WatchdogStatusSchema = Type.Object(
  {
    armed: Type.Boolean(),
    timeoutMs: Type.Union([Type.Number(), Type.Null()]),
    expiresAtMs: Type.Union([Type.Number(), Type.Null()]),
    firedCount: Type.Integer(),
    lastFiredAtMs: Type.Union([Type.Number(), Type.Null()]),
  },
  closed,
);

export const hypervisorErrorCodes = [
  'insufficient-memory',
  'not-found',
  'invalid-state',
  'invalid-config',
  'unavailable',
] as const satisfies readonly HypervisorError['code'][];

const hypervisorErrorCodeSet: ReadonlySet<string> = new Set(hypervisorErrorCodes);

export function isHypervisorErrorCode(code: string): code is HypervisorError['code'] {
  return hypervisorErrorCodeSet.has(code);
}

/** Error body: RFC 9457 problem details, plus the HypervisorError code and message the client rebuilds. */
export const ErrorBodySchema = Type.Object({
  type: Type.String(),
  title: Type.String(),
  status: Type.Integer(),
  detail: Type.String(),
  code: Type.String(),
  message: Type.String(),
});

export const IncarnationBodySchema = Type.Object({ incarnation: IncarnationSchema }, closed);
export const ProcessorBodySchema = Type.Object(
  { incarnation: IncarnationSchema, processor: ProcessorSettingsSchema },
  closed,
);
export const MemoryBodySchema = Type.Object({ incarnation: IncarnationSchema, memory: MemorySettingsSchema }, closed);
export const ThrottleBodySchema = Type.Object(
  { incarnation: IncarnationSchema, throttlePct: Type.Union([Type.Number(), Type.Null()]) },
  closed,
);
export const WorkloadBodySchema = Type.Object(
  { workload: Type.Union([WorkloadProfileSchema, Type.Null()]) },
  closed,
);
export const CrashBodySchema = Type.Object(
  { reason: Type.String({ maxLength: simLimits.reasonLengthMax }) },
  closed,
);
/** The range of timeoutMs is the hypervisor's to judge (422), like every other value range. */
export const WatchdogArmBodySchema = Type.Object({ timeoutMs: Type.Number() }, closed);
export const PartitionParamsSchema = Type.Object({ id: PartitionIdSchema });

export type ErrorBody = Static<typeof ErrorBodySchema>;

// The schemas must describe exactly the port's types: these fail to compile if the two drift apart.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
type AssertTrue<T extends true> = T;
export type SchemaMatchesPort = [
  AssertTrue<Same<Static<typeof ProcessorSettingsSchema>, ProcessorSettings>>,
  AssertTrue<Same<Static<typeof MemorySettingsSchema>, MemorySettings>>,
  AssertTrue<Same<Static<typeof WorkloadProfileSchema>, WorkloadProfile>>,
  AssertTrue<Same<Static<typeof PartitionConfigSchema>, PartitionConfig>>,
  AssertTrue<Same<Static<typeof PartitionStatusSchema>, PartitionStatus>>,
  AssertTrue<Same<Static<typeof PartitionUsageSchema>, PartitionUsage>>,
  AssertTrue<Same<Static<typeof HostUsageSchema>, HostUsage>>,
  AssertTrue<Same<Static<typeof HostInfoSchema>, HostInfo>>,
  AssertTrue<Same<Static<typeof ObservationSchema>, Observation>>,
  AssertTrue<Same<Static<typeof WatchdogStatusSchema>, WatchdogStatus>>,
  AssertTrue<Same<(typeof hypervisorErrorCodes)[number], HypervisorError['code']>>,
];
