/**
 * The control plane's HTTP API (fastify). Every route declares its schemas; OpenAPI at /docs.
 */
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Ajv } from 'ajv';
import { Type } from 'typebox';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { v4 as uuidv4 } from 'uuid';
import { type PartitionCommand, concernsHost, migrationStreamId, partitionStreamId } from '../../domain/index.ts';
import type { EventStore, RecordedEvent } from '../../eventstore/index.ts';
import type { CommandMeta } from '../commands.ts';
import type { DaemonGateway } from '../daemon-gateway.ts';
import { type IdempotencyStore, idempotencyKeyLengthMax, requestHash } from '../idempotency.ts';
import type { MaintenanceManager } from '../maintenance.ts';
import type { MigrationManager, MigrationView } from '../migrations.ts';
import type { ControlPlaneService, Outcome } from '../service.ts';
import type { TelemetryStore } from '../telemetry.ts';
import type { HostView, PartitionView } from '../views.ts';
import { errorHandler, problem, rejectionProblem, sendProblem } from './problems.ts';
import * as S from './schemas.ts';
import { resumePosition, streamEvents } from './sse.ts';

export type AppOptions = {
  readonly store: EventStore;
  readonly service: ControlPlaneService;
  readonly migrations: MigrationManager;
  readonly maintenance: MaintenanceManager;
  readonly idempotency: IdempotencyStore;
  readonly telemetry: TelemetryStore;
  /** The daemons' surface (shared with other transports). */
  readonly gateway: DaemonGateway;
  /** pino level; 'silent' in tests. */
  readonly logLevel: string;
  /** Most SSE streams open at once; more get 503. */
  readonly sseConnectionsMax: number;
  readonly ready: () => boolean;
  readonly version: string;
  /** The Kafka integration's figures (relay lag, commands, host reports, DLQ counts); null without Kafka. */
  readonly kafkaStats?: () => Promise<unknown> | unknown;
};

const actorPattern = /^(user|service|daemon|system):[A-Za-z0-9._@-]{1,100}$/;
const bodyLimitBytes = 1024 * 1024;

declare module 'fastify' {
  interface FastifyRequest {
    idempotency: { key: string; scope: string; hash: string } | null;
  }
}

function ref(events: readonly RecordedEvent[]) {
  return events.map((e) => ({ eventId: e.eventId, type: e.type, globalPosition: e.globalPosition }));
}

export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const { store, service, migrations, maintenance, idempotency, telemetry, gateway } = options;
  const app = Fastify({
    logger: { level: options.logLevel },
    bodyLimit: bodyLimitBytes,
    requestIdHeader: 'x-correlation-id',
    genReqId: () => uuidv4(),
    ajv: { customOptions: { removeAdditional: false, allErrors: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  // Bodies are validated without type coercion ("2" is not a vCPU count); query strings and
  // path parameters are text and are coerced.
  const strictAjv = new Ajv({ removeAdditional: false, useDefaults: false, coerceTypes: false, allErrors: false, strict: false });
  const looseAjv = new Ajv({ removeAdditional: false, useDefaults: true, coerceTypes: true, allErrors: false, strict: false });
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? strictAjv : looseAjv).compile(schema));

  app.setErrorHandler(errorHandler);
  // JSON only: other media types get a 415 instead of failing validation as a string.
  app.removeContentTypeParser('text/plain');
  app.setNotFoundHandler((request, reply) => sendProblem(reply, request, problem(404, 'no-route', `no route ${request.method} ${request.url}`)));
  app.decorateRequest('idempotency', null);
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-correlation-id', request.id);
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'vcp control plane',
        version: options.version,
        description:
          'Event-sourced control plane for virtual machines (partitions). Every command appends immutable events; errors are RFC 9457 problem+json. Send `Idempotency-Key` on any POST to make retries safe, and `X-Vcp-Actor: user:<name>` to say who acts.',
      },
      tags: [{ name: 'hosts' }, { name: 'partitions' }, { name: 'migrations' }, { name: 'events' }, { name: 'daemon' }, { name: 'health' }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  // ---------------------------------------------------------------- idempotency
  app.addHook('preHandler', async (request, reply) => {
    if (request.method !== 'POST') return;
    const key = request.headers['idempotency-key'];
    if (key === undefined) return;
    if (typeof key !== 'string' || key.length === 0 || key.length > idempotencyKeyLengthMax) {
      return sendProblem(reply, request, problem(400, 'invalid-idempotency-key', `Idempotency-Key must be 1 to ${idempotencyKeyLengthMax} characters`, { field: '/headers/idempotency-key' }));
    }
    const scope = `${request.method} ${request.url}`;
    const hash = requestHash(request.method, request.url, request.body);
    const found = idempotency.lookup(scope, key, hash);
    if (found.kind === 'mismatch') {
      return sendProblem(reply, request, problem(422, 'idempotency-key-reused', 'this Idempotency-Key was used with a different request body', { field: '/headers/idempotency-key' }));
    }
    if (found.kind === 'replay') {
      return reply.code(found.response.statusCode).header('content-type', found.response.contentType).header('idempotent-replayed', 'true').send(found.response.body);
    }
    request.idempotency = { key, scope, hash };
  });
  app.addHook('onSend', async (request, reply, payload) => {
    const idem = request.idempotency;
    if (idem && reply.statusCode < 500 && typeof payload === 'string') {
      idempotency.record(idem.scope, idem.key, idem.hash, {
        statusCode: reply.statusCode,
        body: payload,
        contentType: String(reply.getHeader('content-type') ?? 'application/json'),
      });
    }
    return payload;
  });

  function meta(request: FastifyRequest): CommandMeta | string {
    const header = request.headers['x-vcp-actor'];
    const actor = typeof header === 'string' ? header : 'user:anonymous';
    if (!actorPattern.test(actor)) return 'X-Vcp-Actor must look like user:<name> or service:<name>';
    return {
      actor,
      correlationId: request.id,
      causationId: null,
      idSeed: request.idempotency ? `${request.idempotency.scope}|${request.idempotency.key}` : null,
    };
  }

  const problemResponses = { 400: S.Problem, 404: S.Problem, 409: S.Problem, 422: S.Problem };

  async function respondPartition(
    request: FastifyRequest,
    reply: FastifyReply,
    successStatus: number,
    run: (m: CommandMeta) => Promise<Outcome<PartitionView | null>>,
  ) {
    const m = meta(request);
    if (typeof m === 'string') return sendProblem(reply, request, problem(400, 'invalid-actor', m, { field: '/headers/x-vcp-actor' }));
    const outcome = await run(m);
    if (!outcome.ok) return sendProblem(reply, request, rejectionProblem(outcome.rejection));
    return reply.code(successStatus).send({ partition: outcome.value, events: ref(outcome.events) });
  }

  async function respondHost(request: FastifyRequest, reply: FastifyReply, successStatus: number, run: (m: CommandMeta) => Promise<Outcome<HostView>>) {
    const m = meta(request);
    if (typeof m === 'string') return sendProblem(reply, request, problem(400, 'invalid-actor', m, { field: '/headers/x-vcp-actor' }));
    const outcome = await run(m);
    if (!outcome.ok) return sendProblem(reply, request, rejectionProblem(outcome.rejection));
    return reply.code(successStatus).send({ host: outcome.value, events: ref(outcome.events) });
  }

  // ---------------------------------------------------------------- health
  app.get('/healthz', { schema: { tags: ['health'], response: { 200: S.HealthView } } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { tags: ['health'], response: { 200: S.HealthView, 503: S.Problem } } }, async (request, reply) => {
    if (!options.ready()) return sendProblem(reply, request, problem(503, 'not-ready', 'the control plane is still replaying the log'));
    return { status: 'ready', position: service.projections.position };
  });

  app.get('/v1/kafka', { schema: { tags: ['health'], summary: "The Kafka integration's figures: relay position and lag, commands handled, host reports, dead letters" } }, async (request, reply) => {
    const stats = await options.kafkaStats?.();
    if (stats === undefined || stats === null) return sendProblem(reply, request, problem(404, 'kafka-not-configured', 'this control plane runs without Kafka (VCP_KAFKA_BROKERS is not set)'));
    return stats;
  });

  // ---------------------------------------------------------------- hosts
  app.post('/v1/hosts', { schema: { tags: ['hosts'], summary: 'Register a host', body: S.HostInput, response: { 201: S.HostResult, ...problemResponses } } }, async (request, reply) =>
    respondHost(request, reply, 201, (m) => gateway.register(request.body, m)),
  );
  app.get('/v1/hosts', { schema: { tags: ['hosts'], summary: 'List hosts', response: { 200: S.HostList } } }, async () => ({ hosts: service.hosts() }));
  app.get('/v1/hosts/:id', { schema: { tags: ['hosts'], summary: 'One host with capacity, reservations and daemon state', params: S.IdParams, response: { 200: S.HostView, 404: S.Problem } } }, async (request, reply) => {
    const host = service.host(request.params.id);
    return host ?? sendProblem(reply, request, problem(404, 'host-not-found', `host ${request.params.id} does not exist`));
  });
  app.post('/v1/hosts/:id/cordon', { schema: { tags: ['hosts'], summary: 'Stop placing partitions on a host', params: S.IdParams, body: S.CordonInput, response: { 200: S.HostResult, ...problemResponses } } }, async (request, reply) =>
    respondHost(request, reply, 200, (m) => service.hostCommand(request.params.id, { type: 'CordonHost', reason: request.body?.reason ?? 'cordoned by operator' }, m)),
  );
  app.post('/v1/hosts/:id/uncordon', { schema: { tags: ['hosts'], summary: 'Allow placements again', params: S.IdParams, response: { 200: S.HostResult, ...problemResponses } } }, async (request, reply) =>
    respondHost(request, reply, 200, (m) => service.hostCommand(request.params.id, { type: 'UncordonHost' }, m)),
  );

  // ---------------------------------------------------------------- partitions
  app.post('/v1/partitions', { schema: { tags: ['partitions'], summary: 'Create a partition (Off)', body: S.PartitionInput, response: { 201: S.PartitionResult, ...problemResponses } } }, async (request, reply) => {
    const { id, name, ...spec } = request.body;
    const result = await respondPartition(request, reply, 201, (m) => service.createPartition(id, name ?? id, spec, m));
    if (reply.statusCode === 201) reply.header('location', `/v1/partitions/${id}`);
    return result;
  });
  app.get('/v1/partitions', { schema: { tags: ['partitions'], summary: 'List partitions', querystring: S.PartitionsQuery, response: { 200: S.PartitionList } } }, async (request) => ({
    partitions: service.partitions({ hostId: request.query.hostId, state: request.query.state }),
  }));
  app.get('/v1/partitions/:id', { schema: { tags: ['partitions'], summary: 'One partition', params: S.IdParams, response: { 200: S.PartitionView, 404: S.Problem } } }, async (request, reply) => {
    const p = service.partition(request.params.id);
    return p ?? sendProblem(reply, request, problem(404, 'partition-not-found', `partition ${request.params.id} does not exist`));
  });
  app.patch('/v1/partitions/:id', { schema: { tags: ['partitions'], summary: 'Reconfigure processor, memory, HA policy or workload (live where Hyper-V allows it)', params: S.IdParams, body: S.PartitionPatch, response: { 200: S.PartitionResult, ...problemResponses } } }, async (request, reply) =>
    respondPartition(request, reply, 200, (m) => service.reconfigurePartition(request.params.id, request.body, m)),
  );
  app.delete('/v1/partitions/:id', { schema: { tags: ['partitions'], summary: 'Delete an Off, Saved or Failed partition', params: S.IdParams, response: { 200: S.PartitionResult, ...problemResponses } } }, async (request, reply) =>
    respondPartition(request, reply, 200, (m) => service.partitionCommand(request.params.id, { type: 'DeletePartition' }, m)),
  );
  app.post('/v1/partitions/:id/start', { schema: { tags: ['partitions'], summary: 'Start (or restore) on a host: the given one, or placement chooses', params: S.IdParams, body: S.StartInput, response: { 202: S.PartitionResult, ...problemResponses } } }, async (request, reply) =>
    respondPartition(request, reply, 202, (m) => service.startPartition(request.params.id, request.body?.hostId ?? null, m)),
  );
  const simple: [string, PartitionCommand['type'], string][] = [
    ['stop', 'RequestStop', 'Shut down gracefully (Running only)'],
    ['turn-off', 'RequestTurnOff', 'Power off at once (any live state)'],
    ['pause', 'RequestPause', 'Pause a Running partition'],
    ['resume', 'RequestResume', 'Resume a Paused partition'],
    ['save', 'RequestSave', 'Save state and release the host (Running or Paused)'],
  ];
  for (const [path, type, summary] of simple) {
    app.post(`/v1/partitions/:id/${path}`, { schema: { tags: ['partitions'], summary, params: S.IdParams, body: S.EmptyInput, response: { 202: S.PartitionResult, ...problemResponses } } }, async (request, reply) =>
      respondPartition(request, reply, 202, (m) => service.partitionCommand(request.params.id, { type } as PartitionCommand, m)),
    );
  }
  app.get('/v1/partitions/:id/events', { schema: { tags: ['partitions', 'events'], summary: "A partition's whole history", params: S.IdParams, response: { 200: S.EventList, 404: S.Problem } } }, async (request, reply) => {
    const events = await store.readStream(partitionStreamId(request.params.id));
    if (events.length === 0) return sendProblem(reply, request, problem(404, 'partition-not-found', `partition ${request.params.id} does not exist`));
    return { events: [...events] };
  });

  // ---------------------------------------------------------------- events
  app.get('/v1/events', { schema: { tags: ['events'], summary: 'The global log, in order, a page at a time', querystring: S.EventsQuery, response: { 200: S.EventPage } } }, async (request) => {
    const after = request.query.after ?? 0;
    const events = await store.readAll({ after, limit: request.query.limit ?? 100 });
    return { events: [...events], next: events.length > 0 ? events[events.length - 1]!.globalPosition : after };
  });
  let sseOpen = 0;
  // Open event streams end when the server closes, so shutdown does not wait for their clients.
  const streamClosers = new Set<() => void>();
  const registerCloser = (close: () => void) => {
    streamClosers.add(close);
    return () => streamClosers.delete(close);
  };
  app.addHook('preClose', async () => {
    for (const close of streamClosers) close();
  });
  const sseGuard = (request: FastifyRequest, reply: FastifyReply): boolean => {
    if (sseOpen < options.sseConnectionsMax) return true;
    sendProblem(reply, request, problem(503, 'too-many-streams', `at most ${options.sseConnectionsMax} event streams may be open`));
    return false;
  };
  app.get('/v1/events/stream', { schema: { tags: ['events'], summary: 'Server-sent events of the global log; resumable with Last-Event-ID or ?after=', querystring: S.StreamQuery } }, async (request, reply) => {
    const after = resumePosition(request, request.query.after);
    if (typeof after === 'string') return sendProblem(reply, request, problem(400, 'invalid-input', after, { field: '/headers/last-event-id' }));
    if (!sseGuard(request, reply)) return reply;
    await streamEvents(request, reply, store, service.projections, {
      after,
      filter: () => true,
      eventName: (e) => e.type,
      sendPositions: false,
      onOpen: () => sseOpen++,
      onClose: () => sseOpen--,
      registerCloser,
      extra: request.query.telemetry ? (send) => telemetry.onReport((report) => send('telemetry', JSON.stringify(report))) : undefined,
    });
    return reply;
  });

  // ---------------------------------------------------------------- node daemon surface
  app.get('/v1/hosts/:id/directives', { schema: { tags: ['daemon'], summary: "Server-sent stream of the directives for one host's daemon, with position marks", params: S.IdParams, querystring: S.StreamQuery } }, async (request, reply) => {
    const hostId = request.params.id;
    if (!service.host(hostId)) return sendProblem(reply, request, problem(404, 'host-not-found', `host ${hostId} does not exist`));
    const after = resumePosition(request, request.query.after);
    if (typeof after === 'string') return sendProblem(reply, request, problem(400, 'invalid-input', after, { field: '/headers/last-event-id' }));
    if (!sseGuard(request, reply)) return reply;
    await streamEvents(request, reply, store, service.projections, {
      after,
      filter: (e) => concernsHost(e.type, e.data, hostId),
      eventName: () => 'directive',
      sendPositions: true,
      registerCloser,
      onOpen: () => {
        sseOpen++;
        service.daemons.streamOpened(hostId);
      },
      onClose: () => {
        sseOpen--;
        service.daemons.streamClosed(hostId);
      },
    });
    return reply;
  });
  const hostNotFound = (request: FastifyRequest, reply: FastifyReply, hostId: string) =>
    sendProblem(reply, request, problem(404, 'host-not-found', `host ${hostId} does not exist`));
  app.get('/v1/hosts/:id/desired', { schema: { tags: ['daemon'], summary: 'What the log says should run on this host (for reconciliation)', params: S.IdParams, response: { 200: S.DesiredView, 404: S.Problem } } }, async (request, reply) =>
    gateway.desired(request.params.id) ?? hostNotFound(request, reply, request.params.id),
  );
  app.post('/v1/hosts/:id/reports', { schema: { tags: ['daemon'], summary: 'Facts observed by the host daemon', params: S.IdParams, body: S.ReportsInput, response: { 200: S.ReportsResult, 404: S.Problem } } }, async (request, reply) => {
    const results = await gateway.reports(request.params.id, request.body, request.id);
    return results ? { results } : hostNotFound(request, reply, request.params.id);
  });
  app.post('/v1/hosts/:id/heartbeat', { schema: { tags: ['daemon'], summary: "The daemon's liveness signal", params: S.IdParams, body: S.HeartbeatInput, response: { 200: S.HeartbeatResult, 404: S.Problem } } }, async (request, reply) => {
    const outcome = await gateway.heartbeat(request.params.id, request.body, request.id);
    if (!outcome) return hostNotFound(request, reply, request.params.id);
    if (!outcome.ok) return sendProblem(reply, request, rejectionProblem(outcome.rejection));
    return outcome.value;
  });

  // ---------------------------------------------------------------- migrations
  async function respondMigration(
    request: FastifyRequest,
    reply: FastifyReply,
    run: (m: CommandMeta) => Promise<{ ok: true; value: MigrationView } | { ok: false; rejection: import('../../domain/index.ts').Rejection }>,
  ) {
    const m = meta(request);
    if (typeof m === 'string') return sendProblem(reply, request, problem(400, 'invalid-actor', m, { field: '/headers/x-vcp-actor' }));
    const outcome = await run(m);
    if (!outcome.ok) return sendProblem(reply, request, rejectionProblem(outcome.rejection));
    return reply.code(202).header('location', `/v1/migrations/${outcome.value.id}`).send(outcome.value);
  }
  app.post('/v1/partitions/:id/migrations', { schema: { tags: ['migrations'], summary: 'Live-migrate a Running partition (to the given host, or where placement chooses)', params: S.IdParams, body: S.MigrationInput, response: { 202: S.MigrationView, ...problemResponses } } }, async (request, reply) => {
    const b = request.body ?? {};
    return respondMigration(request, reply, (m) =>
      migrations.request(
        request.params.id,
        {
          targetHostId: b.targetHostId ?? null,
          reason: b.reason ?? null,
          bandwidthMiBps: b.bandwidthMiBps ?? null,
          downtimeMsMax: b.downtimeMsMax ?? null,
          roundsMax: b.roundsMax ?? null,
          autoConverge: b.autoConverge ?? null,
        },
        m,
      ),
    );
  });
  app.get('/v1/migrations', { schema: { tags: ['migrations'], summary: 'Migrations, oldest first (filters: partitionId, hostId, phase)', querystring: S.MigrationsQuery, response: { 200: S.MigrationList } } }, async (request) => ({
    migrations: migrations.migrations(request.query),
  }));
  app.get('/v1/migrations/:id', { schema: { tags: ['migrations'], summary: 'One migration: phase, round, transferred, remaining, dirty rate, expected and actual downtime, limits in force', params: S.IdParams, response: { 200: S.MigrationView, 404: S.Problem } } }, async (request, reply) => {
    return migrations.migration(request.params.id) ?? sendProblem(reply, request, problem(404, 'migration-not-found', `migration ${request.params.id} does not exist`));
  });
  app.get('/v1/migrations/:id/events', { schema: { tags: ['migrations', 'events'], summary: "A migration's every step", params: S.IdParams, response: { 200: S.EventList, 404: S.Problem } } }, async (request, reply) => {
    const events = await store.readStream(migrationStreamId(request.params.id));
    if (events.length === 0) return sendProblem(reply, request, problem(404, 'migration-not-found', `migration ${request.params.id} does not exist`));
    return { events: [...events] };
  });
  app.post('/v1/migrations/:id/cancel', { schema: { tags: ['migrations'], summary: 'Cancel a migration before its switch-over (the partition stays on the source)', params: S.IdParams, body: S.CancelInput, response: { 202: S.MigrationView, ...problemResponses } } }, async (request, reply) =>
    respondMigration(request, reply, (m) => migrations.cancel(request.params.id, request.body?.reason ?? 'cancelled by operator', m)),
  );
  app.post('/v1/hosts/:id/migration-reports', { schema: { tags: ['daemon'], summary: 'Migration facts from a source or target daemon', params: S.IdParams, body: S.MigrationReportsInput, response: { 200: S.MigrationReportsResult, 404: S.Problem } } }, async (request, reply) => {
    const results = gateway.migrationReports(request.params.id, request.body, request.id);
    return results ? { results: await results } : hostNotFound(request, reply, request.params.id);
  });

  // ---------------------------------------------------------------- maintenance
  app.post('/v1/hosts/:id/maintenance', { schema: { tags: ['hosts'], summary: 'Drain a host for maintenance: cordon it and live-migrate its partitions away', params: S.IdParams, body: S.MaintenanceInput, response: { 202: S.DrainView, ...problemResponses } } }, async (request, reply) => {
    const m = meta(request);
    if (typeof m === 'string') return sendProblem(reply, request, problem(400, 'invalid-actor', m, { field: '/headers/x-vcp-actor' }));
    const outcome = await maintenance.start(request.params.id, request.body?.reason ?? 'maintenance', m);
    if (!outcome.ok) return sendProblem(reply, request, rejectionProblem(outcome.rejection));
    return reply.code(202).send(outcome.value);
  });
  app.get('/v1/hosts/:id/maintenance', { schema: { tags: ['hosts'], summary: "A drain's progress: its migrations, what cannot move and why", params: S.IdParams, response: { 200: S.DrainView, 404: S.Problem } } }, async (request, reply) => {
    return maintenance.view(request.params.id) ?? sendProblem(reply, request, problem(404, 'host-not-found', `host ${request.params.id} does not exist`));
  });
  app.delete('/v1/hosts/:id/maintenance', { schema: { tags: ['hosts'], summary: 'End maintenance: the host takes placements again', params: S.IdParams, response: { 200: S.DrainView, ...problemResponses } } }, async (request, reply) => {
    const m = meta(request);
    if (typeof m === 'string') return sendProblem(reply, request, problem(400, 'invalid-actor', m, { field: '/headers/x-vcp-actor' }));
    const outcome = await maintenance.end(request.params.id, m);
    if (!outcome.ok) return sendProblem(reply, request, rejectionProblem(outcome.rejection));
    return outcome.value;
  });

  app.post('/v1/hosts/:id/fenced', { schema: { tags: ['daemon'], summary: 'A daemon (or its machine\'s watchdog) turned off its partitions because its lease lapsed', params: S.IdParams, body: S.FencedInput, response: { 200: S.HostResult, 404: S.Problem } } }, async (request, reply) => {
    if (!service.host(request.params.id)) return hostNotFound(request, reply, request.params.id);
    return respondHost(request, reply, 200, (m) => gateway.fenced(request.params.id, request.body, m));
  });

  // ---------------------------------------------------------------- telemetry
  app.post('/v1/hosts/:id/telemetry', { schema: { tags: ['daemon'], summary: "A host's usage sample (CPU, wait, memory, pressure), sent every tick by its daemon", params: S.IdParams, body: S.TelemetryInput, response: { 204: Type.Null(), 404: S.Problem } } }, async (request, reply) =>
    gateway.telemetrySample(request.params.id, request.body) ? reply.code(204).send(null) : hostNotFound(request, reply, request.params.id),
  );
  app.get('/v1/hosts/:id/telemetry', { schema: { tags: ['hosts'], summary: "A host's current usage and recent history", params: S.IdParams, querystring: S.TelemetryQuery, response: { 200: S.TelemetryView, 404: S.Problem } } }, async (request, reply) => {
    const hostId = request.params.id;
    if (!service.host(hostId)) return sendProblem(reply, request, problem(404, 'host-not-found', `host ${hostId} does not exist`));
    const found = telemetry.host(hostId, request.query.limit ?? 60);
    return { ...found, partitions: [...found.partitions] };
  });
  app.get('/v1/partitions/:id/telemetry', { schema: { tags: ['partitions'], summary: "A partition's current CPU and memory figures and recent history", params: S.IdParams, querystring: S.TelemetryQuery, response: { 200: S.TelemetryView, 404: S.Problem } } }, async (request, reply) => {
    const partition = service.partition(request.params.id);
    if (!partition) return sendProblem(reply, request, problem(404, 'partition-not-found', `partition ${request.params.id} does not exist`));
    const found = telemetry.partition(partition.id, request.query.limit ?? 60);
    // Only a sample of the incarnation that runs now is current.
    const current = found.current && partition.hostId !== null && found.current.incarnation === partition.incarnation ? found.current : null;
    return { current, history: found.history };
  });

  return app;
}
