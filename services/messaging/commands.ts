/**
 * Commands over Kafka: a consumer of vcp.commands that decodes each message (Avro single-object,
 * schemas/commands/), validates it by the HTTP API's own rules, carries it out through the same
 * ControlPlaneService / MigrationManager / MaintenanceManager methods the HTTP routes call, and
 * publishes the outcome on vcp.command-results (key = the command's correlationId).
 *
 * - Idempotent by commandId: the command's event ids derive from it (CommandMeta.idSeed), so a
 *   repeat appends nothing; its first result is kept (command-outcomes.ts) and published again,
 *   byte for byte, for a repeated id. The same id with another command is refused.
 * - Validation: the HTTP API's TypeBox schemas (control-plane/http/schemas.ts) with the HTTP
 *   API's Ajv options, then the deciders' own rules (buildSpec/validateSpec, host and migration
 *   rules) inside the service calls. A command the rules refuse gets a `rejected` result naming
 *   the field, as the HTTP API's 400 does.
 * - Poison messages, which no result can answer (not single-object Avro, an unknown fingerprint,
 *   an Avro body that does not decode, a schema that is not a command, no usable commandId or
 *   correlationId), go to vcp.dlq with where they came from and why; the consumer moves on.
 * - An internal error (the store failing) is retried dispatchAttemptsMax times; then a `failed`
 *   result, not recorded (re-sending the command retries it), and a copy on the DLQ.
 *
 * Imports reach into two control-plane files: commands.ts (eventIdFor, the derivation of event
 * ids from a seed) and http/schemas.ts (the input rules); both are leaves, so no import cycle
 * appears when the control plane's server wires this module in.
 */
import { createHash } from 'node:crypto';
import { Ajv, type ValidateFunction } from 'ajv';
import type { Static, TSchema } from 'typebox';
import type { CommandMeta } from '../control-plane/commands.ts';
import { registerHostCommand } from '../control-plane/daemon-gateway.ts';
import { eventIdFor } from '../control-plane/commands.ts';
import * as S from '../control-plane/http/schemas.ts';
import type { MaintenanceManager } from '../control-plane/maintenance.ts';
import type { MigrationManager } from '../control-plane/migrations.ts';
import type { ControlPlaneService } from '../control-plane/service.ts';
import { type PartitionCommand, type Rejection, hostStreamId, migrationStreamId } from '../domain/index.ts';
import { EventIdConflictError, type EventStore, type RecordedEvent, WrongExpectedVersionError, appendEventsCountMax } from '../eventstore/index.ts';
import { type UndecodableReason, poisonReason } from './codec.ts';
import type { CommandOutcomeStore } from './command-outcomes.ts';
import { type CommandCodec, type CommandType, commandCodec, commandResultSubject, isCommandType } from './command-schemas.ts';
import { fingerprintHex } from './crc64.ts';
import { closeHandledConsumer, deadLetterOf, errorText, openHandledConsumer, runHandledConsumer } from './consumer-loop.ts';
import type { TopicNames } from './kafka-config.ts';
import type { IncomingMessage, KafkaClient, Log } from './kafka-port.ts';
import { silentLog } from './kafka-port.ts';

/** What commands are carried out by: the control plane's own objects (tests pass the real ones). */
export type CommandTargets = {
  readonly service: Pick<ControlPlaneService, 'createPartition' | 'partitionCommand' | 'reconfigurePartition' | 'startPartition' | 'hostCommand'>;
  readonly migrations: Pick<MigrationManager, 'request' | 'cancel'>;
  readonly maintenance: Pick<MaintenanceManager, 'start' | 'end'>;
};

export const commandHeaders = {
  commandId: 'vcp-command-id',
  commandType: 'vcp-command-type',
  outcome: 'vcp-outcome',
  fingerprint: 'vcp-schema-fingerprint',
  replayed: 'vcp-replayed',
} as const;

export { dlqHeaders } from './consumer-loop.ts';

/** Why a message went to the DLQ (the vcp-dlq-reason header). */
export type DlqReason =
  | 'empty-value'
  /** not-avro-single-object, unknown-schema-fingerprint, unknown-schema-id, undecodable */
  | UndecodableReason
  | 'not-a-command'
  | 'invalid-command-metadata'
  | 'dispatch-failed';

/** commandId and correlationId: 1 to this many characters (as an HTTP Idempotency-Key). */
export const commandIdLengthMax = 255;
/** Attempts at carrying out one command when the store or a projection fails. */
export const dispatchAttemptsMax = 3;
const dispatchRetryDelayMs = 200;
const actorPattern = /^(user|service|daemon|system):[A-Za-z0-9._@-]{1,100}$/;

export type CommandOutcomeKind = 'accepted' | 'rejected' | 'failed';

export type EventRefValue = { eventId: string; type: string; streamId: string; streamVersion: number; globalPosition: number };
export type RejectionValue = { kind: string; code: string; message: string; field: string | null; currentState: string | null; detailsJson: string | null };

/** vcp.command.CommandResult as a value. */
export type CommandResultValue = {
  commandId: string;
  commandType: string;
  correlationId: string;
  actor: string;
  outcome: CommandOutcomeKind;
  resourceId: string | null;
  events: EventRefValue[];
  rejection: RejectionValue | null;
  /** ISO-8601 (timestamp-millis on the wire). */
  processedAt: string;
};

export type CommandConsumerStats = {
  readonly received: number;
  readonly accepted: number;
  readonly rejected: number;
  /** Repeated command ids answered with their first result. */
  readonly replayed: number;
  readonly failed: number;
  readonly deadLettered: number;
  readonly lastError: string | null;
};

export type CommandConsumerOptions = {
  readonly client: KafkaClient;
  readonly topics: Pick<TopicNames, 'commands' | 'commandResults' | 'dlq'>;
  readonly groupId: string;
  readonly targets: CommandTargets;
  readonly store: EventStore;
  readonly outcomes: CommandOutcomeStore;
  readonly log?: Log;
  readonly codec?: CommandCodec;
  /** When offsets are committed: once per fetched batch (default), or after each message (a benchmark's baseline). */
  readonly commit?: 'message' | 'batch';
  readonly nowMs?: () => number;
  /** Delay between dispatch attempts (doubling); tests shorten it. */
  readonly dispatchRetryDelayMs?: number;
};

export type CommandConsumer = {
  stats(): CommandConsumerStats;
  pause(): void;
  resume(): void;
  close(): Promise<void>;
};

// ---------------------------------------------------------------- commands → service calls

type Obj = { readonly [key: string]: unknown };
type DispatchOutcome = { readonly ok: true; readonly events: readonly RecordedEvent[]; readonly resourceId: string } | { readonly ok: false; readonly rejection: Rejection };
type IdField = 'partitionId' | 'hostId' | 'migrationId';
type Body = { readonly ok: true; readonly body: { [key: string]: unknown } } | { readonly ok: false; readonly rejection: Rejection };
const ok = (body: { [key: string]: unknown }): Body => ({ ok: true, body });

type CommandSpec = {
  /** The command field holding the entity id (the HTTP path parameter, or the body's `id`). */
  readonly idField: IdField;
  /** True when the HTTP body carries the id as `id` (create, register): validated by the body schema. */
  readonly idInBody: boolean;
  readonly schema: TSchema;
  /** The HTTP body this command corresponds to (or why there is none). */
  body(command: Obj): Body;
  run(targets: CommandTargets, id: string, body: unknown, meta: CommandMeta, store: EventStore): Promise<DispatchOutcome>;
};

function command<Sch extends TSchema>(def: {
  idField: IdField;
  idInBody?: boolean;
  schema: Sch;
  body: (command: Obj) => Body;
  run: (targets: CommandTargets, id: string, body: Static<Sch>, meta: CommandMeta, store: EventStore) => Promise<DispatchOutcome>;
}): CommandSpec {
  // The body was validated against `schema` by Ajv before run is called: that is what makes it a Static<Sch>.
  return { idField: def.idField, idInBody: def.idInBody ?? false, schema: def.schema, body: def.body, run: (t, id, b, m, s) => def.run(t, id, b as Static<Sch>, m, s) };
}

/** The command's fields that are not null, recursively through records (Avro null = "not given"). */
function present(value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || Buffer.isBuffer(value)) return value;
  const out: { [key: string]: unknown } = {};
  for (const [key, v] of Object.entries(value)) if (v !== null) out[key] = present(v);
  return out;
}

function pick(command: Obj, keys: readonly string[]): { [key: string]: unknown } {
  const out: { [key: string]: unknown } = {};
  for (const key of keys) if (command[key] !== null && command[key] !== undefined) out[key] = present(command[key]);
  return out;
}

const specKeys = ['vcpus', 'processor', 'memory', 'ha', 'workload'] as const;
/** Settings ReconfigurePartition can clear: the nullable settings of the HTTP PATCH body. */
export const clearableSettings = ['/workload', '/ha/antiAffinityClass', '/workload/workingSetMiB'] as const;

function invalidInput(field: string, message: string): Rejection {
  return { kind: 'invalid', code: 'invalid-input', message: `${field}: ${message}`, field, details: null };
}

function patchBody(command: Obj): Body {
  const body = pick(command, specKeys);
  const setNull = Array.isArray(command.setNull) ? (command.setNull as unknown[]) : [];
  for (const [index, pointer] of setNull.entries()) {
    if (!(clearableSettings as readonly unknown[]).includes(pointer)) {
      return { ok: false, rejection: invalidInput(`/setNull/${index}`, `${JSON.stringify(pointer)} cannot be cleared (one of ${clearableSettings.join(', ')})`) };
    }
  }
  if (setNull.includes('/workload')) {
    if (body.workload !== undefined || setNull.includes('/workload/workingSetMiB')) return { ok: false, rejection: invalidInput('/setNull', '/workload is cleared and also changed') };
    body.workload = null;
  }
  if (setNull.includes('/workload/workingSetMiB')) {
    const workload = (body.workload ?? {}) as { [key: string]: unknown };
    if (workload.workingSetMiB !== undefined) return { ok: false, rejection: invalidInput('/setNull', '/workload/workingSetMiB is cleared and also set') };
    body.workload = { ...workload, workingSetMiB: null };
  }
  if (setNull.includes('/ha/antiAffinityClass')) {
    const ha = (body.ha ?? {}) as { [key: string]: unknown };
    if (ha.antiAffinityClass !== undefined) return { ok: false, rejection: invalidInput('/setNull', '/ha/antiAffinityClass is cleared and also set') };
    body.ha = { ...ha, antiAffinityClass: null };
  }
  return ok(body);
}

/** The events a seeded command appended to one stream (their ids derive from the seed, in order). */
async function seededEvents(store: EventStore, idSeed: string | null, streamId: string): Promise<RecordedEvent[]> {
  if (idSeed === null) return [];
  const out: RecordedEvent[] = [];
  for (let index = 0; index < appendEventsCountMax; index++) {
    const event = await store.getEvent(eventIdFor(idSeed, streamId, index));
    if (event === null || event.streamId !== streamId) break;
    out.push(event);
  }
  return out;
}

const entityOutcome = async (id: string, run: Promise<{ ok: true; events: readonly RecordedEvent[] } | { ok: false; rejection: Rejection }>): Promise<DispatchOutcome> => {
  const outcome = await run;
  return outcome.ok ? { ok: true, events: outcome.events, resourceId: id } : outcome;
};

const lifecycle = (type: PartitionCommand['type']) =>
  command({
    idField: 'partitionId',
    schema: S.EmptyInput,
    body: () => ok({}),
    run: (t, id, _b, m) => entityOutcome(id, t.service.partitionCommand(id, { type } as PartitionCommand, m)),
  });

/** One entry per command type: the HTTP body it stands for, and the call the HTTP route makes. */
export const commandSpecs: { readonly [T in CommandType]: CommandSpec } = {
  CreatePartition: command({
    idField: 'partitionId',
    idInBody: true,
    schema: S.PartitionInput,
    body: (c) => ok({ id: c.partitionId, ...pick(c, ['name', ...specKeys]) }),
    run: (t, _id, b, m) => {
      const { id, name, ...spec } = b;
      return entityOutcome(id, t.service.createPartition(id, name ?? id, spec, m));
    },
  }),
  ReconfigurePartition: command({
    idField: 'partitionId',
    schema: S.PartitionPatch,
    body: patchBody,
    run: (t, id, b, m) => entityOutcome(id, t.service.reconfigurePartition(id, b, m)),
  }),
  StartPartition: command({
    idField: 'partitionId',
    schema: S.StartInput,
    body: (c) => ok(pick(c, ['hostId'])),
    run: (t, id, b, m) => entityOutcome(id, t.service.startPartition(id, b.hostId ?? null, m)),
  }),
  StopPartition: lifecycle('RequestStop'),
  TurnOffPartition: lifecycle('RequestTurnOff'),
  PausePartition: lifecycle('RequestPause'),
  ResumePartition: lifecycle('RequestResume'),
  SavePartition: lifecycle('RequestSave'),
  DeletePartition: lifecycle('DeletePartition'),
  MigratePartition: command({
    idField: 'partitionId',
    schema: S.MigrationInput,
    body: (c) => ok(pick(c, ['targetHostId', 'reason', 'bandwidthMiBps', 'downtimeMsMax', 'roundsMax', 'autoConverge'])),
    run: async (t, id, b, m, store) => {
      const outcome = await t.migrations.request(
        id,
        {
          targetHostId: b.targetHostId ?? null,
          reason: b.reason ?? null,
          bandwidthMiBps: b.bandwidthMiBps ?? null,
          downtimeMsMax: b.downtimeMsMax ?? null,
          roundsMax: b.roundsMax ?? null,
          autoConverge: b.autoConverge ?? null,
        },
        m,
      );
      if (!outcome.ok) return outcome;
      return { ok: true, events: await seededEvents(store, m.idSeed, migrationStreamId(outcome.value.id)), resourceId: outcome.value.id };
    },
  }),
  CancelMigration: command({
    idField: 'migrationId',
    schema: S.CancelInput,
    body: (c) => ok(pick(c, ['reason'])),
    run: async (t, id, b, m, store) => {
      const outcome = await t.migrations.cancel(id, b?.reason ?? 'cancelled by operator', m);
      if (!outcome.ok) return outcome;
      return { ok: true, events: await seededEvents(store, m.idSeed, migrationStreamId(id)), resourceId: id };
    },
  }),
  RegisterHost: command({
    idField: 'hostId',
    idInBody: true,
    schema: S.HostInput,
    body: (c) => ok({ id: c.hostId, ...pick(c, ['logicalProcessors', 'memoryMiB', 'parentReserveMiB', 'labels', 'limitsPreset', 'limits']) }),
    // The defaults of POST /v1/hosts.
    run: (t, _id, b, m) => entityOutcome(b.id, t.service.hostCommand(b.id, registerHostCommand(b), m)),
  }),
  CordonHost: command({
    idField: 'hostId',
    schema: S.CordonInput,
    body: (c) => ok(pick(c, ['reason'])),
    run: (t, id, b, m) => entityOutcome(id, t.service.hostCommand(id, { type: 'CordonHost', reason: b.reason ?? 'cordoned by operator' }, m)),
  }),
  UncordonHost: command({
    idField: 'hostId',
    schema: S.EmptyInput,
    body: () => ok({}),
    run: (t, id, _b, m) => entityOutcome(id, t.service.hostCommand(id, { type: 'UncordonHost' }, m)),
  }),
  StartMaintenance: command({
    idField: 'hostId',
    schema: S.MaintenanceInput,
    body: (c) => ok(pick(c, ['reason'])),
    run: async (t, id, b, m, store) => {
      const outcome = await t.maintenance.start(id, b?.reason ?? 'maintenance', m);
      if (!outcome.ok) return outcome;
      return { ok: true, events: await seededEvents(store, m.idSeed, hostStreamId(id)), resourceId: outcome.value.drainId ?? id };
    },
  }),
  EndMaintenance: command({
    idField: 'hostId',
    schema: S.EmptyInput,
    body: () => ok({}),
    run: async (t, id, _b, m, store) => {
      const outcome = await t.maintenance.end(id, m);
      if (!outcome.ok) return outcome;
      return { ok: true, events: await seededEvents(store, m.idSeed, hostStreamId(id)), resourceId: id };
    },
  }),
};

// ---------------------------------------------------------------- validation (the HTTP API's rules)

type AjvError = { instancePath?: string; keyword?: string; params?: { [key: string]: unknown }; message?: string };

/** Compiles the HTTP input schemas with the HTTP API's body options (no coercion, no defaults). */
function compileValidators(): { body: Map<TSchema, ValidateFunction>; id: ValidateFunction } {
  const ajv = new Ajv({ removeAdditional: false, useDefaults: false, coerceTypes: false, allErrors: false, strict: false });
  const body = new Map<TSchema, ValidateFunction>();
  for (const spec of Object.values(commandSpecs)) if (!body.has(spec.schema)) body.set(spec.schema, ajv.compile(spec.schema));
  return { body, id: ajv.compile(S.IdParams) };
}

/** As the HTTP API's problem for a validation error, with the field as a pointer into the command. */
function validationRejection(error: AjvError | undefined, idField: IdField): Rejection {
  const params = error?.params ?? {};
  const child = params.missingProperty ?? params.additionalProperty;
  const base = error?.instancePath ?? '';
  const raw = typeof child === 'string' ? `${base}/${child}` : base || '/';
  const field = commandField(raw, idField);
  const what =
    error?.keyword === 'additionalProperties'
      ? `unknown property ${String(params.additionalProperty)}`
      : error?.keyword === 'required'
        ? `${String(params.missingProperty)} is required`
        : (error?.message ?? 'is invalid');
  return invalidInput(field, what);
}

/** The HTTP body's `/id` is the command's `/partitionId` (or `/hostId`). */
const commandField = (field: string, idField: IdField): string => (field === '/id' || field.startsWith('/id/') ? `/${idField}${field.slice(3)}` : field);

// ---------------------------------------------------------------- the consumer

class PoisonMessage extends Error {
  constructor(
    readonly reason: DlqReason,
    message: string,
  ) {
    super(message);
  }
}

class Closing extends Error {}


export function requestHash(subject: string, value: unknown): string {
  return createHash('sha256').update(`${subject}\n${JSON.stringify(value)}`).digest('hex');
}

export async function startCommandConsumer(options: CommandConsumerOptions): Promise<CommandConsumer> {
  const { client, topics, targets, store, outcomes } = options;
  const log = options.log ?? silentLog;
  const codec = options.codec ?? commandCodec();
  const nowMs = options.nowMs ?? Date.now;
  const retryDelayMs = options.dispatchRetryDelayMs ?? dispatchRetryDelayMs;
  const validators = compileValidators();
  const resultFingerprint = fingerprintHex(codec.fingerprint(commandResultSubject));
  const counters = { received: 0, accepted: 0, rejected: 0, replayed: 0, failed: 0, deadLettered: 0 };
  let lastError: string | null = null;
  let closing = false;

  // With a schema registry: CommandResult's id (and the commands'), before the first result.
  await codec.prepare();
  const { consumer, producer } = await openHandledConsumer(client, { groupId: options.groupId, topics: [topics.commands], fromBeginning: true, commit: options.commit ?? 'batch' });

  const deadLetter = async (message: IncomingMessage, reason: DlqReason, detail: string): Promise<void> => {
    counters.deadLettered += 1;
    log.warn({ topic: message.topic, partition: message.partition, offset: message.offset, reason, detail }, 'command message sent to the dead-letter topic');
    await producer.send([deadLetterOf(message, topics.dlq, reason, detail, nowMs())]);
  };

  const publishResult = async (result: Buffer, value: Pick<CommandResultValue, 'commandId' | 'commandType' | 'correlationId' | 'outcome'>, replayed: boolean) => {
    await producer.send([
      {
        topic: topics.commandResults,
        key: value.correlationId,
        value: result,
        headers: {
          [commandHeaders.commandId]: value.commandId,
          [commandHeaders.commandType]: value.commandType,
          [commandHeaders.outcome]: value.outcome,
          [commandHeaders.fingerprint]: resultFingerprint,
          ...(replayed ? { [commandHeaders.replayed]: 'true' } : {}),
        },
      },
    ]);
  };

  const decode = async (message: IncomingMessage): Promise<{ type: CommandType; command: Obj }> => {
    if (message.value === null || message.value.length === 0) throw new PoisonMessage('empty-value', 'the message has no value');
    let decoded: { subject: string; value: unknown };
    try {
      decoded = await codec.decodeAsync(message.value);
    } catch (error) {
      const poison = poisonReason(error);
      // The schema registry is out of reach: not the message's fault, so it is delivered again.
      if (poison === null) throw error;
      throw new PoisonMessage(poison.reason, poison.detail);
    }
    if (!isCommandType(decoded.subject)) throw new PoisonMessage('not-a-command', `vcp.command.${decoded.subject} is not a command`);
    const command = decoded.value as Obj;
    for (const key of ['commandId', 'correlationId'] as const) {
      const v = command[key];
      if (typeof v !== 'string' || v.length === 0 || v.length > commandIdLengthMax) {
        throw new PoisonMessage('invalid-command-metadata', `${key} must be 1 to ${commandIdLengthMax} characters`);
      }
    }
    return { type: decoded.subject, command };
  };

  /** Validates and carries out one command; never throws for a refusal, only for an internal error. */
  const execute = async (type: CommandType, command: Obj, meta: CommandMeta): Promise<DispatchOutcome> => {
    const spec = commandSpecs[type];
    if (!actorPattern.test(meta.actor)) {
      return { ok: false, rejection: { kind: 'invalid', code: 'invalid-actor', message: 'actor must look like user:<name> or service:<name>', field: '/actor', details: null } };
    }
    const id = command[spec.idField];
    if (!spec.idInBody && !validators.id({ id })) return { ok: false, rejection: validationRejection(validators.id.errors?.[0], spec.idField) };
    const built = spec.body(command);
    if (!built.ok) return built;
    const validate = validators.body.get(spec.schema);
    if (validate === undefined) throw new Error(`no validator for ${type}`);
    if (!validate(built.body)) return { ok: false, rejection: validationRejection(validate.errors?.[0], spec.idField) };
    try {
      const outcome = await spec.run(targets, String(id), built.body, meta, store);
      if (!outcome.ok && outcome.rejection.field !== null) {
        return { ok: false, rejection: { ...outcome.rejection, field: commandField(outcome.rejection.field, spec.idField) } };
      }
      return outcome;
    } catch (error) {
      // As the HTTP API answers them: a lost race on a stream is a 409, not an internal error.
      if (error instanceof WrongExpectedVersionError) {
        return { ok: false, rejection: { kind: 'conflict', code: 'version-conflict', message: `${error.message}; too many concurrent changes, retry`, field: null, details: null } };
      }
      if (error instanceof EventIdConflictError) return { ok: false, rejection: { kind: 'conflict', code: 'event-id-conflict', message: error.message, field: null, details: null } };
      throw error;
    }
  };

  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms).unref?.());

  const handle = async (message: IncomingMessage): Promise<void> => {
    if (closing) throw new Closing('the command consumer is closing');
    counters.received += 1;
    let decoded: { type: CommandType; command: Obj };
    try {
      decoded = await decode(message);
    } catch (error) {
      if (!(error instanceof PoisonMessage)) throw error;
      await deadLetter(message, error.reason, error.message);
      return;
    }
    const { type, command } = decoded;
    const commandId = command.commandId as string;
    const correlationId = command.correlationId as string;
    const actor = typeof command.actor === 'string' ? command.actor : '';
    const hash = requestHash(type, command);
    const logFields = { correlationId, commandId, commandType: type };

    const earlier = outcomes.get(commandId);
    if (earlier !== null) {
      if (earlier.requestHash === hash) {
        counters.replayed += 1;
        const first = (await codec.decodeAsync(earlier.result)).value as CommandResultValue;
        log.info({ ...logFields, outcome: first.outcome }, 'repeated command id: publishing its first result again');
        await publishResult(earlier.result, first, true);
        return;
      }
      counters.rejected += 1;
      log.warn(logFields, 'command id reused for another command: refused');
      const refusal = resultValue(type, command, actor, { ok: false, rejection: { kind: 'conflict', code: 'command-id-reused', message: `command id ${commandId} was used for another command`, field: '/commandId', details: null } });
      await publishResult(codec.encode(commandResultSubject, refusal), refusal, false);
      return;
    }

    const meta: CommandMeta = { actor, correlationId, causationId: null, idSeed: `kafka-command|${commandId}` };
    let outcome: DispatchOutcome | null = null;
    let failure: unknown = null;
    for (let attempt = 1; attempt <= dispatchAttemptsMax && outcome === null; attempt++) {
      try {
        outcome = await execute(type, command, meta);
      } catch (error) {
        failure = error;
        lastError = errorText(error);
        log.warn({ ...logFields, err: error, attempt }, 'command failed; retrying');
        if (closing) throw new Closing('the command consumer is closing');
        if (attempt < dispatchAttemptsMax) await sleep(retryDelayMs * 2 ** (attempt - 1));
      }
    }
    if (outcome === null) {
      counters.failed += 1;
      const failed = resultValue(type, command, actor, null, errorText(failure));
      log.error({ ...logFields, err: failure }, 'command failed after every attempt');
      await publishResult(codec.encode(commandResultSubject, failed), failed, false);
      await deadLetter(message, 'dispatch-failed', errorText(failure));
      return;
    }
    const value = resultValue(type, command, actor, outcome);
    const encoded = codec.encode(commandResultSubject, value);
    // Recorded before it is published: a crash in between publishes the recorded result on redelivery.
    outcomes.put(commandId, { requestHash: hash, result: encoded });
    if (outcome.ok) counters.accepted += 1;
    else counters.rejected += 1;
    log.info({ ...logFields, outcome: value.outcome, events: value.events.length, code: value.rejection?.code }, 'command processed');
    await publishResult(encoded, value, false);
  };

  const resultValue = (type: CommandType, command: Obj, actor: string, outcome: DispatchOutcome | null, failure?: string): CommandResultValue => {
    const base = {
      commandId: command.commandId as string,
      commandType: type,
      correlationId: command.correlationId as string,
      actor,
      processedAt: new Date(nowMs()).toISOString(),
    };
    if (outcome === null) {
      return { ...base, outcome: 'failed', resourceId: null, events: [], rejection: { kind: 'internal', code: 'internal', message: failure ?? 'internal error', field: null, currentState: null, detailsJson: null } };
    }
    if (outcome.ok) {
      return {
        ...base,
        outcome: 'accepted',
        resourceId: outcome.resourceId,
        events: outcome.events.map((e) => ({ eventId: e.eventId, type: e.type, streamId: e.streamId, streamVersion: e.streamVersion, globalPosition: e.globalPosition })),
        rejection: null,
      };
    }
    const { currentState, ...rest } = (outcome.rejection.details ?? {}) as { currentState?: unknown; [key: string]: unknown };
    const id = command[commandSpecs[type].idField];
    return {
      ...base,
      outcome: 'rejected',
      resourceId: typeof id === 'string' ? id : null,
      events: [],
      rejection: {
        kind: outcome.rejection.kind,
        code: outcome.rejection.code,
        message: outcome.rejection.message,
        field: outcome.rejection.field,
        currentState: typeof currentState === 'string' ? currentState : null,
        detailsJson: Object.keys(rest).length > 0 ? JSON.stringify(rest) : null,
      },
    };
  };

  await runHandledConsumer({
    consumer,
    producer,
    handle,
    isClosing: (error) => error instanceof Closing,
    onFailure: (error) => {
      lastError = errorText(error);
    },
    what: 'command message',
    log,
  });

  let closed: Promise<void> | null = null;
  return {
    stats: () => ({ ...counters, lastError }),
    pause: () => consumer.pause(),
    resume: () => consumer.resume(),
    close() {
      closed ??= (async () => {
        closing = true;
        await closeHandledConsumer(consumer, producer, 'command', log);
      })();
      return closed;
    },
  };
}
