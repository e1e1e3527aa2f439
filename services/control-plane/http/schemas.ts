/**
 * JSON schemas of the HTTP API (TypeBox): validation, serialization, OpenAPI and types from one source.
 */
import { Type } from 'typebox';

const Id = Type.String({ pattern: '^[a-z0-9][a-z0-9-]{0,62}$', description: '1–63 lowercase letters, digits or dashes' });

export const Problem = Type.Object(
  {
    type: Type.String({ description: 'URI naming the kind of problem, e.g. urn:vcp:problem:invalid-transition' }),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    instance: Type.Optional(Type.String()),
    field: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    currentState: Type.Optional(Type.String()),
    details: Type.Optional(Type.Unknown()),
  },
  { $id: 'Problem', description: 'RFC 9457 problem details' },
);

const HostLimits = Type.Object({
  vcpusPerPartitionMax: Type.Integer({ minimum: 0 }),
  partitionsPerHostMax: Type.Integer({ minimum: 0 }),
  vcpusPerHostMax: Type.Integer({ minimum: 0 }),
  vcpusPerLpRatioMax: Type.Integer({ minimum: 0, description: '0 = no VP:LP ratio limit' }),
});

export const HostInput = Type.Object(
  {
    id: Id,
    logicalProcessors: Type.Integer({ minimum: 1, maximum: 4096 }),
    memoryMiB: Type.Integer({ minimum: 1 }),
    parentReserveMiB: Type.Optional(Type.Integer({ minimum: 0, description: 'memory kept for the parent partition; default 2048 or 10 %, whichever is less' })),
    labels: Type.Optional(Type.Record(Type.String({ maxLength: 63 }), Type.String({ maxLength: 255 }))),
    limitsPreset: Type.Optional(Type.Union([Type.Literal('modern'), Type.Literal('r2')], { description: 'modern (default) or r2 (Hyper-V 2008 R2)' })),
    limits: Type.Optional(Type.Partial(HostLimits)),
  },
  { additionalProperties: false },
);

export const HostView = Type.Object({
  id: Type.String(),
  logicalProcessors: Type.Integer(),
  memoryMiB: Type.Integer(),
  parentReserveMiB: Type.Integer(),
  labels: Type.Record(Type.String(), Type.String()),
  limitsPreset: Type.String(),
  limits: HostLimits,
  cordoned: Type.Boolean(),
  cordonReason: Type.Union([Type.String(), Type.Null()]),
  state: Type.String({ description: 'Up, Suspect, Failed, Fenced, Maintenance (draining or in maintenance), or Unknown before its daemon first took a lease' }),
  lease: Type.Union([Type.Object({ bootId: Type.String(), leaseMs: Type.Integer(), renewMs: Type.Integer(), marginMs: Type.Integer() }), Type.Null()]),
  maintenance: Type.Union([Type.Object({ drainId: Type.String(), status: Type.String(), reason: Type.String() }), Type.Null()]),
  capacity: Type.Object({
    vcpusMax: Type.Integer(),
    vcpusReserved: Type.Integer(),
    processorReserveLp: Type.Number(),
    processorReservedLp: Type.Number(),
    memoryUsableMiB: Type.Integer(),
    memoryReservedMiB: Type.Integer(),
    memoryFreeMiB: Type.Integer(),
    partitionsMax: Type.Integer(),
    partitionsReserved: Type.Integer(),
  }),
  reservations: Type.Array(
    Type.Object({
      reservationId: Type.String(),
      partitionId: Type.String(),
      incarnation: Type.Integer(),
      purpose: Type.String(),
      vcpus: Type.Integer(),
      processorReserveLp: Type.Number(),
      memoryMiB: Type.Integer(),
    }),
  ),
  daemon: Type.Object({
    connected: Type.Boolean(),
    lastSeenAt: Type.Union([Type.String(), Type.Null()]),
    bootId: Type.Union([Type.String(), Type.Null()]),
    checkpointPosition: Type.Union([Type.Integer(), Type.Null()]),
    directiveStreams: Type.Integer(),
  }),
  version: Type.Integer(),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});

const ProcessorInput = Type.Object(
  {
    reservePct: Type.Optional(Type.Integer({ minimum: 0, maximum: 100, description: 'guaranteed share of its vCPUs under contention (default 0)' })),
    limitPct: Type.Optional(Type.Integer({ minimum: 0, maximum: 100, description: 'hard cap (default 100), >= reservePct' })),
    weight: Type.Optional(Type.Integer({ minimum: 1, maximum: 10000, description: 'relative weight (default 100)' })),
  },
  { additionalProperties: false },
);

const MemoryInput = Type.Object(
  {
    mode: Type.Optional(Type.Union([Type.Literal('static'), Type.Literal('dynamic')], { description: 'static (default) or dynamic' })),
    startupMiB: Type.Optional(Type.Integer({ minimum: 1 })),
    minMiB: Type.Optional(Type.Integer({ minimum: 1, description: 'dynamic only; default startupMiB' })),
    maxMiB: Type.Optional(Type.Integer({ minimum: 1, description: 'dynamic only; default startupMiB' })),
    bufferPct: Type.Optional(Type.Integer({ minimum: 5, maximum: 2000, description: 'dynamic only; default 20' })),
    weight: Type.Optional(Type.Integer({ minimum: 0, maximum: 10000, description: 'dynamic only; default 5000' })),
  },
  { additionalProperties: false },
);

const HaInput = Type.Object(
  {
    restart: Type.Optional(Type.Union([Type.Literal('none'), Type.Literal('same-host'), Type.Literal('any-host')])),
    priority: Type.Optional(Type.Union([Type.Literal(0), Type.Literal(1000), Type.Literal(2000), Type.Literal(3000)])),
    antiAffinityClass: Type.Optional(Type.Union([Type.String({ minLength: 1, maxLength: 100 }), Type.Null()])),
    antiAffinityMode: Type.Optional(Type.Union([Type.Literal('soft'), Type.Literal('hard')])),
    preferredHostIds: Type.Optional(Type.Array(Id, { maxItems: 64 })),
  },
  { additionalProperties: false },
);

const WorkloadInput = Type.Object(
  {
    cpuDemandPct: Type.Optional(Type.Number({ minimum: 0, maximum: 100, description: 'CPU demand when busy, % of its vCPUs (default 100)' })),
    cpuPattern: Type.Optional(Type.Union([Type.Literal('constant'), Type.Literal('periodic'), Type.Literal('bursty')], { description: 'default constant' })),
    cpuLowPct: Type.Optional(Type.Number({ minimum: 0, maximum: 100, description: 'demand when not busy (default 0)' })),
    cpuPeriodMs: Type.Optional(Type.Integer({ minimum: 10, maximum: 86_400_000, description: 'cycle length (default 10000)' })),
    cpuDutyPct: Type.Optional(Type.Number({ minimum: 0, maximum: 100, description: 'share of the cycle spent busy (default 50)' })),
    memoryDemandMiB: Type.Optional(Type.Integer({ minimum: 0, description: 'committed memory the guest wants (default startupMiB)' })),
    dirtyMiBps: Type.Optional(Type.Number({ minimum: 0, description: 'newly dirtied memory per second (default 0)' })),
    workingSetMiB: Type.Optional(Type.Union([Type.Integer({ minimum: 1 }), Type.Null()], { description: 'writable working set bounding the dirty set (default null)' })),
  },
  { additionalProperties: false },
);

const specInputProperties = {
  vcpus: Type.Optional(Type.Integer({ minimum: 1, maximum: 2048 })),
  processor: Type.Optional(ProcessorInput),
  memory: Type.Optional(MemoryInput),
  ha: Type.Optional(HaInput),
  workload: Type.Optional(Type.Union([WorkloadInput, Type.Null()])),
};

export const PartitionInput = Type.Object(
  {
    id: Id,
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 100, description: 'default: the id' })),
    ...specInputProperties,
    vcpus: Type.Integer({ minimum: 1, maximum: 2048 }),
    memory: MemoryInput,
  },
  { additionalProperties: false },
);

export const PartitionPatch = Type.Object(specInputProperties, { additionalProperties: false, minProperties: 1 });

const Spec = Type.Object({
  vcpus: Type.Integer(),
  processor: Type.Object({ reservePct: Type.Number(), limitPct: Type.Number(), weight: Type.Integer() }),
  memory: Type.Object({
    mode: Type.String(),
    startupMiB: Type.Integer(),
    minMiB: Type.Optional(Type.Integer()),
    maxMiB: Type.Optional(Type.Integer()),
    bufferPct: Type.Optional(Type.Integer()),
    weight: Type.Optional(Type.Integer()),
  }),
  ha: Type.Object({
    restart: Type.String(),
    priority: Type.Integer(),
    antiAffinityClass: Type.Union([Type.String(), Type.Null()]),
    antiAffinityMode: Type.String(),
    preferredHostIds: Type.Array(Type.String()),
  }),
  workload: Type.Union([
    Type.Object({
      cpuDemandPct: Type.Number(),
      cpuPattern: Type.String(),
      cpuLowPct: Type.Number(),
      cpuPeriodMs: Type.Integer(),
      cpuDutyPct: Type.Number(),
      memoryDemandMiB: Type.Integer(),
      dirtyMiBps: Type.Number(),
      workingSetMiB: Type.Union([Type.Integer(), Type.Null()]),
    }),
    Type.Null(),
  ]),
});

export const PartitionState = Type.Union(
  ['Off', 'Starting', 'Running', 'Pausing', 'Paused', 'Stopping', 'Saving', 'Saved', 'Failed'].map((s) => Type.Literal(s)),
);

export const PartitionView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  state: Type.String(),
  hostId: Type.Union([Type.String(), Type.Null()]),
  lastHostId: Type.Union([Type.String(), Type.Null()]),
  incarnation: Type.Integer(),
  reason: Type.Union([Type.String(), Type.Null()]),
  migration: Type.Union([Type.Object({ migrationId: Type.String(), targetHostId: Type.String() }), Type.Null()], { description: 'the live migration under way, if any' }),
  spec: Spec,
  version: Type.Integer(),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});

export const EventView = Type.Object({
  eventId: Type.String(),
  type: Type.String(),
  streamId: Type.String(),
  streamVersion: Type.Integer(),
  globalPosition: Type.Integer(),
  recordedAt: Type.String(),
  actor: Type.String(),
  causationId: Type.Union([Type.String(), Type.Null()]),
  correlationId: Type.String(),
  schemaVersion: Type.Integer(),
  hash: Type.String(),
  data: Type.Record(Type.String(), Type.Unknown()),
});

export const EventRef = Type.Object({ eventId: Type.String(), type: Type.String(), globalPosition: Type.Integer() });

export const PartitionResult = Type.Object({
  partition: Type.Union([PartitionView, Type.Null()], { description: 'the partition after the command (null once deleted)' }),
  events: Type.Array(EventRef, { description: 'events this command appended' }),
});

export const HostResult = Type.Object({ host: HostView, events: Type.Array(EventRef) });

export const StartInput = Type.Object(
  { hostId: Type.Optional(Id) },
  { additionalProperties: false, description: 'hostId: run it there; omitted: placement chooses' },
);

export const CordonInput = Type.Object({ reason: Type.Optional(Type.String({ maxLength: 500 })) }, { additionalProperties: false });

export const IdParams = Type.Object({ id: Type.String({ maxLength: 200 }) });

export const EventsQuery = Type.Object(
  {
    after: Type.Optional(Type.Integer({ minimum: 0, description: 'exclusive global position; default 0' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'default 100' })),
  },
  { additionalProperties: false },
);

export const PartitionsQuery = Type.Object(
  { hostId: Type.Optional(Type.String({ maxLength: 63 })), state: Type.Optional(PartitionState) },
  { additionalProperties: false },
);

export const FactType = Type.Union(
  ['PartitionStarted', 'PartitionStartFailed', 'PartitionStopped', 'PartitionPaused', 'PartitionResumed', 'PartitionSaved', 'PartitionCrashed'].map((t) =>
    Type.Literal(t),
  ),
);

export const ReportsInput = Type.Object(
  {
    reports: Type.Array(
      Type.Object(
        {
          reportId: Type.String({ minLength: 1, maxLength: 200, description: 'unique per fact; a retried report is recorded once' }),
          partitionId: Id,
          type: FactType,
          incarnation: Type.Integer({ minimum: 0 }),
          directiveEventId: Type.Union([Type.String({ maxLength: 100 }), Type.Null()]),
          reason: Type.Optional(Type.Union([Type.String({ maxLength: 2000 }), Type.Null()])),
          code: Type.Optional(Type.Union([Type.String({ maxLength: 100 }), Type.Null()])),
          how: Type.Optional(
            Type.Union([Type.Literal('shutdown'), Type.Literal('turn-off'), Type.Literal('guest'), Type.Literal('reconcile'), Type.Null()]),
          ),
          memoryAssignedMiB: Type.Optional(Type.Union([Type.Integer({ minimum: 0 }), Type.Null()])),
        },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: 100 },
    ),
  },
  { additionalProperties: false },
);

export const ReportsResult = Type.Object({
  results: Type.Array(
    Type.Object({
      reportId: Type.String(),
      outcome: Type.String(),
      eventId: Type.Union([Type.String(), Type.Null()]),
      reason: Type.Union([Type.String(), Type.Null()]),
    }),
  ),
});

export const HeartbeatInput = Type.Object(
  {
    bootId: Type.String({ minLength: 1, maxLength: 100 }),
    checkpointPosition: Type.Integer({ minimum: 0 }),
    leaseMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 3_600_000, description: 'the lease this heartbeat renews (default 10000)' })),
    renewMs: Type.Optional(Type.Integer({ minimum: 10, maximum: 600_000, description: 'how often the daemon renews (default 1000)' })),
    marginMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 600_000, description: 'fencing safety margin (default 2000)' })),
  },
  { additionalProperties: false },
);

export const DesiredView = Type.Object({
  position: Type.Integer(),
  partitions: Type.Array(
    Type.Object({
      partitionId: Type.String(),
      state: Type.String(),
      hostId: Type.Union([Type.String(), Type.Null()]),
      incarnation: Type.Integer(),
      spec: Type.Union([Spec, Type.Null()]),
      migrationTargetHostId: Type.Union([Type.String(), Type.Null()]),
    }),
  ),
});

export const HostList = Type.Object({ hosts: Type.Array(HostView) });
export const PartitionList = Type.Object({ partitions: Type.Array(PartitionView) });
export const EventList = Type.Object({ events: Type.Array(EventView) });
export const EventPage = Type.Object({
  events: Type.Array(EventView),
  next: Type.Integer({ description: 'pass as ?after= for the next page' }),
});
export const StreamQuery = Type.Object(
  {
    after: Type.Optional(Type.Integer({ minimum: 0 })),
    telemetry: Type.Optional(Type.Boolean({ description: 'also send `telemetry` messages (no id; not replayed) as hosts report them' })),
  },
  { additionalProperties: false },
);
export const EmptyInput = Type.Union([Type.Object({}, { additionalProperties: false }), Type.Null()]);
export const HealthView = Type.Object({ status: Type.String(), position: Type.Optional(Type.Integer()) });
export const HeartbeatResult = Type.Object({
  position: Type.Integer({ description: "the log's position when the heartbeat was answered" }),
  leaseMs: Type.Integer(),
  returned: Type.Boolean({
    description: 'this heartbeat took the lease of a host the control plane held Failed or Fenced: starts requested up to `position` must not be carried out',
  }),
});

const TelemetryValue = Type.Union([Type.Number(), Type.String(), Type.Null()]);

export const TelemetryInput = Type.Object(
  {
    bootId: Type.String({ minLength: 1, maxLength: 100 }),
    sampledAtMs: Type.Integer({ minimum: 0 }),
    host: Type.Record(Type.String({ maxLength: 100 }), TelemetryValue, { maxProperties: 100 }),
    partitions: Type.Array(
      Type.Object(
        { partitionId: Type.String({ minLength: 1, maxLength: 63 }), incarnation: Type.Integer({ minimum: 0 }) },
        { additionalProperties: TelemetryValue, maxProperties: 100 },
      ),
      { maxItems: 4096 },
    ),
  },
  { additionalProperties: false },
);

const Sample = Type.Object({}, { additionalProperties: true });

export const TelemetryView = Type.Object({
  current: Type.Union([Sample, Type.Null()], { description: 'the latest sample (null when nothing runs or nothing was sampled yet)' }),
  history: Type.Array(Sample, { description: 'recent samples, oldest first (bounded)' }),
  partitions: Type.Optional(Type.Array(Sample, { description: "hosts only: every partition's figures in the latest sample" })),
});

export const TelemetryQuery = Type.Object(
  { limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 300, description: 'history samples (default 60)' })) },
  { additionalProperties: false },
);

export const MigrationInput = Type.Object(
  {
    targetHostId: Type.Optional(Id),
    reason: Type.Optional(Type.String({ minLength: 1, maxLength: 500 })),
    bandwidthMiBps: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1_000_000, description: 'per-migration override of the bandwidth limit' })),
    downtimeMsMax: Type.Optional(Type.Integer({ minimum: 1, maximum: 2_000_000, description: 'per-migration override of the downtime limit (default 300)' })),
    roundsMax: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'per-migration override of the pre-copy round limit' })),
    autoConverge: Type.Optional(Type.Boolean({ description: 'throttle the vCPUs (20 % + 10 % steps, up to 99 %) when pre-copy does not converge' })),
  },
  { additionalProperties: false },
);

const MigrationLimits = Type.Object({
  bandwidthMiBps: Type.Number(),
  downtimeMsMax: Type.Integer(),
  roundsMax: Type.Integer(),
  completionTimeoutMsPerGiB: Type.Integer(),
  progressTimeoutMs: Type.Integer(),
  autoConverge: Type.Boolean(),
  onRoundLimit: Type.String(),
  perHostMax: Type.Integer(),
  perClusterMax: Type.Integer(),
});

export const MigrationView = Type.Object({
  id: Type.String(),
  partitionId: Type.String(),
  sourceHostId: Type.String(),
  targetHostId: Type.Union([Type.String(), Type.Null()]),
  phase: Type.String({ description: 'Requested, Queued, Reserved, Prepared, PreCopy, SwitchOver, Completed, Failed, Cancelled' }),
  reason: Type.String(),
  drainId: Type.Union([Type.String(), Type.Null()]),
  queuePosition: Type.Union([Type.Integer(), Type.Null()]),
  round: Type.Integer(),
  memoryMiB: Type.Number(),
  transferredMiB: Type.Number(),
  remainingMiB: Type.Union([Type.Number(), Type.Null()]),
  dirtyRateMiBps: Type.Union([Type.Number(), Type.Null()]),
  throttlePct: Type.Number(),
  expectedDowntimeMs: Type.Union([Type.Number(), Type.Null()]),
  downtimeMs: Type.Union([Type.Number(), Type.Null()]),
  failureReason: Type.Union([Type.String(), Type.Null()]),
  limits: MigrationLimits,
  placement: Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()]),
  version: Type.Integer(),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});

export const MigrationList = Type.Object({ migrations: Type.Array(MigrationView) });

export const MigrationsQuery = Type.Object(
  { partitionId: Type.Optional(Type.String({ maxLength: 63 })), hostId: Type.Optional(Type.String({ maxLength: 63 })), phase: Type.Optional(Type.String({ maxLength: 20 })) },
  { additionalProperties: false },
);

export const CancelInput = Type.Union([Type.Object({ reason: Type.Optional(Type.String({ maxLength: 500 })) }, { additionalProperties: false }), Type.Null()]);

const Num = Type.Optional(Type.Union([Type.Number(), Type.Null()]));
export const MigrationReportsInput = Type.Object(
  {
    reports: Type.Array(
      Type.Object(
        {
          reportId: Type.String({ minLength: 1, maxLength: 200 }),
          migrationId: Type.String({ minLength: 1, maxLength: 100 }),
          type: Type.Union(['TargetPrepared', 'TargetFailed', 'Round', 'Switchover', 'Activated', 'SourceFailed'].map((t) => Type.Literal(t))),
          round: Num,
          sentMiB: Num,
          durationMs: Num,
          transferredMiB: Num,
          remainingMiB: Num,
          dirtyRateMiBps: Num,
          throttlePct: Num,
          expectedDowntimeMs: Num,
          finalCopyMiB: Num,
          downtimeMs: Num,
          reason: Type.Optional(Type.Union([Type.String({ maxLength: 2000 }), Type.Null()])),
        },
        { additionalProperties: false },
      ),
      { minItems: 1, maxItems: 100 },
    ),
  },
  { additionalProperties: false },
);

export const MigrationReportsResult = Type.Object({
  results: Type.Array(Type.Object({ reportId: Type.String(), outcome: Type.String(), reason: Type.Union([Type.String(), Type.Null()]) })),
});

export const DrainView = Type.Object({
  hostId: Type.String(),
  state: Type.String({ description: 'InService, Draining or InMaintenance' }),
  drainId: Type.Union([Type.String(), Type.Null()]),
  reason: Type.Union([Type.String(), Type.Null()]),
  remaining: Type.Integer({ description: 'partitions still placed on the host' }),
  migrations: Type.Array(MigrationView),
  blocked: Type.Array(Type.Object({ partitionId: Type.String(), reason: Type.String() })),
});

export const MaintenanceInput = Type.Union([Type.Object({ reason: Type.Optional(Type.String({ minLength: 1, maxLength: 500 })) }, { additionalProperties: false }), Type.Null()]);

export const FencedInput = Type.Object(
  {
    bootId: Type.String({ minLength: 1, maxLength: 100 }),
    turnedOff: Type.Array(Type.String({ maxLength: 200 }), { maxItems: 4096 }),
    how: Type.Union([Type.Literal('self-fence'), Type.Literal('watchdog'), Type.Literal('machine-down')]),
    reason: Type.String({ maxLength: 2000 }),
  },
  { additionalProperties: false },
);
