/**
 * The control plane's side of vcp.host-reports: what node daemons in Kafka mode report (facts,
 * migration facts, fencing, telemetry; key = hostId, Avro single-object, schemas/host-reports/),
 * carried out through the same DaemonGateway methods the HTTP routes call, so a report is decided
 * by one code path whichever way it travelled.
 *
 * - Validation: the key must equal the report's hostId (a daemon reports only about its own
 *   host), and the body must pass the HTTP route's own TypeBox schema (same Ajv options as
 *   commands.ts: no coercion, no defaults).
 * - Poison messages (empty, not single-object Avro, an unknown fingerprint such as a command's or
 *   an event's, undecodable, key ≠ hostId, invalid body, unknown host) go to vcp.dlq with the original bytes and
 *   headers plus where they came from and why; the consumer moves on. `deadLettered` counts them.
 * - Offsets are committed only after the gateway call resolved (the adapter commits after the
 *   handler): a control plane that stops or crashes resumes at the first report it had not
 *   finished, and a report delivered again is recorded once, its event ids deriving from the
 *   host and report id (fencing: from host, boot, how and what was turned off).
 * - An internal error (the store failing) is not the message's fault: it is retried in place,
 *   then the handler rejects and the report is delivered again (never dead-lettered, never lost).
 * - Telemetry is not history: a sample at or before the last one recorded for its host and boot
 *   (a redelivery), or older than telemetryAgeMsMax when it arrives (a backlog after an outage),
 *   is dropped and counted.
 */
import { Ajv, type ValidateFunction } from 'ajv';
import type { Static } from 'typebox';
import type { DaemonGateway } from '../control-plane/daemon-gateway.ts';
import * as S from '../control-plane/http/schemas.ts';
import { type UndecodableReason, poisonReason } from './codec.ts';
import { type HostReportCodec, type HostReportKind, hostReportCodec, isHostReportKind } from './host-report-schemas.ts';
import { closeHandledConsumer, deadLetterOf, errorText, openHandledConsumer, runHandledConsumer } from './consumer-loop.ts';
import type { TopicNames } from './kafka-config.ts';
import type { IncomingMessage, KafkaClient, Log } from './kafka-port.ts';
import { StopConsuming, silentLog } from './kafka-port.ts';

/** The gateway methods reports are carried out by (the control plane passes its DaemonGateway). */
export type HostReportTargets = Pick<DaemonGateway, 'reports' | 'migrationReports' | 'fenced' | 'telemetrySample'>;

/** Why a report went to the DLQ (the vcp-dlq-reason header). */
export type HostReportDlqReason =
  | 'empty-value'
  /** not-avro-single-object, unknown-schema-fingerprint, unknown-schema-id, undecodable */
  | UndecodableReason
  | 'key-mismatch'
  | 'invalid-report'
  | 'unknown-host';

/** Attempts at one gateway call before the handler gives the message back (delivered again). */
export const hostReportAttemptsMax = 5;
const hostReportRetryDelayMs = 100;
/** A telemetry sample older than this when it arrives is dropped: the live view wants now, not a backlog. */
export const telemetryAgeMsMax = 60_000;

export type HostReportConsumerStats = {
  /** Messages handled (each once, redeliveries included). */
  readonly received: number;
  readonly partitionReports: number;
  readonly migrationReports: number;
  readonly fencingReports: number;
  readonly telemetrySamples: number;
  /** Partition facts by the gateway's outcome (as HTTP answers them). */
  readonly factsRecorded: number;
  readonly factsIgnored: number;
  readonly factsDuplicate: number;
  readonly factsRejected: number;
  /** Telemetry samples dropped: a redelivery, or too old on arrival. */
  readonly telemetryDropped: number;
  readonly deadLettered: number;
  /** Gateway calls that failed and were tried again. */
  readonly retries: number;
  readonly lastError: string | null;
};

export type HostReportConsumerOptions = {
  readonly client: KafkaClient;
  readonly topics: Pick<TopicNames, 'reports' | 'dlq'>;
  readonly groupId: string;
  readonly gateway: HostReportTargets;
  readonly log?: Log;
  readonly codec?: HostReportCodec;
  /** When offsets are committed: once per fetched batch (default), or after each message (a benchmark's baseline). */
  readonly commit?: 'message' | 'batch';
  readonly nowMs?: () => number;
  /** Delay between attempts at a gateway call (doubling); tests shorten it. */
  readonly retryDelayMs?: number;
};

export type HostReportConsumer = {
  stats(): HostReportConsumerStats;
  close(): Promise<void>;
};

type Obj = { readonly [key: string]: unknown };

class PoisonReport extends Error {
  constructor(
    readonly reason: HostReportDlqReason,
    message: string,
  ) {
    super(message);
  }
}

class Closing extends StopConsuming {}

type DecodedReport = { readonly hostId: string; readonly correlationId: string | null } & (
  | { readonly kind: 'PartitionReports'; readonly body: Static<typeof S.ReportsInput> }
  | { readonly kind: 'MigrationReports'; readonly body: Static<typeof S.MigrationReportsInput> }
  | { readonly kind: 'FencingReport'; readonly body: Static<typeof S.FencedInput> }
  | { readonly kind: 'TelemetrySample'; readonly body: Static<typeof S.TelemetryInput> }
);


/** The HTTP body a decoded report stands for (validated against the route's schema afterwards). */
export function gatewayBody(kind: HostReportKind, value: Obj): unknown {
  switch (kind) {
    case 'PartitionReports':
    case 'MigrationReports':
      return { reports: value.reports };
    case 'FencingReport':
      return { bootId: value.bootId, turnedOff: value.turnedOff, how: value.how, reason: value.reason };
    case 'TelemetrySample': {
      const partitions = Array.isArray(value.partitions) ? (value.partitions as { partitionId: unknown; incarnation: unknown; figures: Obj }[]) : [];
      return {
        bootId: value.bootId,
        sampledAtMs: value.sampledAtMs,
        host: value.host,
        partitions: partitions.map(({ partitionId, incarnation, figures }) => ({ ...figures, partitionId, incarnation })),
      };
    }
    default: {
      const unreachable: never = kind;
      throw new Error(`unknown host report ${String(unreachable)}`);
    }
  }
}

type Validators = {
  readonly hostId: ValidateFunction;
  readonly PartitionReports: ValidateFunction<Static<typeof S.ReportsInput>>;
  readonly MigrationReports: ValidateFunction<Static<typeof S.MigrationReportsInput>>;
  readonly FencingReport: ValidateFunction<Static<typeof S.FencedInput>>;
  readonly TelemetrySample: ValidateFunction<Static<typeof S.TelemetryInput>>;
};

/** The HTTP routes' body schemas, with the HTTP API's body options (no coercion, no defaults). */
function compileValidators(): Validators {
  const ajv = new Ajv({ removeAdditional: false, useDefaults: false, coerceTypes: false, allErrors: false, strict: false });
  return {
    hostId: ajv.compile(S.IdParams),
    PartitionReports: ajv.compile<Static<typeof S.ReportsInput>>(S.ReportsInput),
    MigrationReports: ajv.compile<Static<typeof S.MigrationReportsInput>>(S.MigrationReportsInput),
    FencingReport: ajv.compile<Static<typeof S.FencedInput>>(S.FencedInput),
    TelemetrySample: ajv.compile<Static<typeof S.TelemetryInput>>(S.TelemetryInput),
  };
}

const firstError = (validate: ValidateFunction): string => {
  const error = validate.errors?.[0];
  return error ? `${error.instancePath || '/'} ${error.message ?? 'is invalid'}` : 'is invalid';
};

export async function startHostReportConsumer(options: HostReportConsumerOptions): Promise<HostReportConsumer> {
  const { client, topics, gateway } = options;
  const log = options.log ?? silentLog;
  const codec = options.codec ?? hostReportCodec();
  const nowMs = options.nowMs ?? Date.now;
  const retryDelayMs = options.retryDelayMs ?? hostReportRetryDelayMs;
  const validators = compileValidators();
  const counters = {
    received: 0,
    partitionReports: 0,
    migrationReports: 0,
    fencingReports: 0,
    telemetrySamples: 0,
    factsRecorded: 0,
    factsIgnored: 0,
    factsDuplicate: 0,
    factsRejected: 0,
    telemetryDropped: 0,
    deadLettered: 0,
    retries: 0,
  };
  let lastError: string | null = null;
  let closing = false;
  /** Last telemetry sample recorded per host (one entry per registered host). */
  const lastSample = new Map<string, { bootId: string; sampledAtMs: number }>();

  // From the beginning for a group that never committed: reports a daemon sent before the
  // control plane first consumed must not be lost.
  const { consumer, producer } = await openHandledConsumer(client, { groupId: options.groupId, topics: [topics.reports], fromBeginning: true, commit: options.commit ?? 'batch' });

  const deadLetter = async (message: IncomingMessage, reason: HostReportDlqReason, detail: string): Promise<void> => {
    counters.deadLettered += 1;
    log.warn({ topic: message.topic, partition: message.partition, offset: message.offset, key: message.key?.toString('utf8') ?? null, reason, detail }, 'host report sent to the dead-letter topic');
    await producer.send([deadLetterOf(message, topics.dlq, reason, detail, nowMs())]);
  };

  /** Decodes and validates one message, or throws PoisonReport. */
  const decode = async (message: IncomingMessage): Promise<DecodedReport> => {
    if (message.value === null || message.value.length === 0) throw new PoisonReport('empty-value', 'the message has no value');
    let decoded: { subject: string; value: unknown };
    try {
      decoded = await codec.decodeAsync(message.value);
    } catch (error) {
      const poison = poisonReason(error);
      // The schema registry is out of reach: not the message's fault, so it is delivered again.
      if (poison === null) throw error;
      throw new PoisonReport(poison.reason, poison.detail);
    }
    // The codec knows only the kinds (loadHostReportSchemaSet refuses any other schema).
    if (!isHostReportKind(decoded.subject)) throw new Error(`vcp.report.${decoded.subject} decoded, but it is not a kind of host report`);
    const value = decoded.value as Obj;
    const hostId = String(value.hostId);
    const key = message.key?.toString('utf8') ?? null;
    if (key !== hostId) throw new PoisonReport('key-mismatch', `the key (${key ?? 'none'}) is not the report's host (${hostId}): a daemon reports only about its own host`);
    if (!validators.hostId({ id: hostId })) throw new PoisonReport('invalid-report', `hostId ${firstError(validators.hostId)}`);
    const correlationId = typeof value.correlationId === 'string' ? value.correlationId : null;
    const report = validated(decoded.subject, hostId, correlationId, gatewayBody(decoded.subject, value));
    if (typeof report === 'string') throw new PoisonReport('invalid-report', report);
    return report;
  };

  /** The report with its body checked by the HTTP route's schema, or what is wrong with it. */
  const validated = (kind: HostReportKind, hostId: string, correlationId: string | null, body: unknown): DecodedReport | string => {
    const base = { hostId, correlationId };
    switch (kind) {
      case 'PartitionReports':
        return validators.PartitionReports(body) ? { ...base, kind, body } : `${kind}: ${firstError(validators.PartitionReports)}`;
      case 'MigrationReports':
        return validators.MigrationReports(body) ? { ...base, kind, body } : `${kind}: ${firstError(validators.MigrationReports)}`;
      case 'FencingReport':
        return validators.FencingReport(body) ? { ...base, kind, body } : `${kind}: ${firstError(validators.FencingReport)}`;
      case 'TelemetrySample':
        return validators.TelemetrySample(body) ? { ...base, kind, body } : `${kind}: ${firstError(validators.TelemetrySample)}`;
      default: {
        const unreachable: never = kind;
        throw new Error(`unknown host report ${String(unreachable)}`);
      }
    }
  };

  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms).unref?.());

  /** One gateway call, tried again on an internal error; false when the host is not registered. */
  const carryOut = async (report: DecodedReport, correlationId: string): Promise<boolean> => {
    const logFields = { hostId: report.hostId, correlationId, kind: report.kind };
    for (let attempt = 1; ; attempt++) {
      if (closing) throw new Closing('the host report consumer is closing');
      try {
        return await dispatch(report, correlationId);
      } catch (error) {
        lastError = errorText(error);
        if (attempt >= hostReportAttemptsMax) {
          log.error({ ...logFields, err: error, attempt }, 'host report not carried out; it will be delivered again');
          throw error;
        }
        counters.retries += 1;
        log.warn({ ...logFields, err: error, attempt }, 'host report failed; retrying');
        await sleep(retryDelayMs * 2 ** (attempt - 1));
      }
    }
  };

  const dispatch = async (report: DecodedReport, correlationId: string): Promise<boolean> => {
    const { hostId } = report;
    switch (report.kind) {
      case 'PartitionReports': {
        const results = await gateway.reports(hostId, report.body, correlationId);
        if (results === null) return false;
        counters.partitionReports += 1;
        for (const r of results) {
          if (r.outcome === 'recorded') counters.factsRecorded += 1;
          else if (r.outcome === 'ignored') counters.factsIgnored += 1;
          else if (r.outcome === 'duplicate') counters.factsDuplicate += 1;
          else counters.factsRejected += 1;
          if (r.outcome !== 'recorded' && r.outcome !== 'duplicate') log.info({ hostId, correlationId, ...r }, 'report not applied');
        }
        return true;
      }
      case 'MigrationReports': {
        const results = gateway.migrationReports(hostId, report.body, correlationId);
        if (results === null) return false;
        counters.migrationReports += 1;
        for (const r of await results) if (r.outcome !== 'recorded') log.info({ hostId, correlationId, ...r }, 'migration report not applied');
        return true;
      }
      case 'FencingReport': {
        const { body } = report;
        const outcome = await gateway.fenced(hostId, body, { actor: `daemon:${hostId}`, correlationId, causationId: null, idSeed: null });
        if (!outcome.ok && outcome.rejection.kind === 'not-found') return false;
        counters.fencingReports += 1;
        if (!outcome.ok) log.warn({ hostId, correlationId, rejection: outcome.rejection }, 'fencing report refused');
        else log.warn({ hostId, correlationId, how: body.how, turnedOff: body.turnedOff.length }, 'host fenced (reported over Kafka)');
        return true;
      }
      case 'TelemetrySample': {
        const { body } = report;
        const last = lastSample.get(hostId);
        if ((last !== undefined && last.bootId === body.bootId && body.sampledAtMs <= last.sampledAtMs) || nowMs() - body.sampledAtMs > telemetryAgeMsMax) {
          counters.telemetryDropped += 1;
          return true;
        }
        if (!gateway.telemetrySample(hostId, body)) return false;
        lastSample.set(hostId, { bootId: body.bootId, sampledAtMs: body.sampledAtMs });
        counters.telemetrySamples += 1;
        return true;
      }
      default: {
        const unreachable: never = report;
        throw new Error(`unknown host report ${JSON.stringify(unreachable)}`);
      }
    }
  };

  const handle = async (message: IncomingMessage): Promise<void> => {
    if (closing) throw new Closing('the host report consumer is closing');
    counters.received += 1;
    let report: DecodedReport;
    try {
      report = await decode(message);
    } catch (error) {
      if (!(error instanceof PoisonReport)) throw error;
      await deadLetter(message, error.reason, error.message);
      return;
    }
    // Telemetry causes no events; the other kinds carry the id their events record.
    const correlationId = report.correlationId ?? `kafka:${message.topic}:${message.partition}:${message.offset}`;
    if (!(await carryOut(report, correlationId))) {
      await deadLetter(message, 'unknown-host', `host ${report.hostId} is not registered`);
    }
  };

  await runHandledConsumer({
    consumer,
    producer,
    handle,
    isClosing: (error) => error instanceof Closing,
    onFailure: (error) => {
      lastError = errorText(error);
    },
    what: 'host report',
    log,
  });

  let closed: Promise<void> | null = null;
  return {
    stats: () => ({ ...counters, lastError }),
    close() {
      closed ??= (async () => {
        closing = true;
        await closeHandledConsumer(consumer, producer, 'host report', log);
      })();
      return closed;
    },
  };
}
