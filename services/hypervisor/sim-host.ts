/**
 * The simulated machine as its own process: a SimHypervisor on real time, served as HTTP+JSON on a
 * Unix socket at <dataDir>/sim-host.sock, described by <dataDir>/sim-host.json.
 *
 * The partitions live in this process, like guests on a real machine: a node daemon that restarts
 * finds them still running (and reconciles), while killing this process is a power loss that takes
 * them all down. A new process is a new boot, so it gets a new bootId.
 */
import { randomInt, randomUUID } from 'node:crypto';
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { type TypeBoxTypeProvider, TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyError, type FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { HypervisorError } from './port.ts';
import {
  CrashBodySchema,
  type ErrorBody,
  ErrorBodySchema,
  HostInfoSchema,
  HostUsageSchema,
  IncarnationBodySchema,
  MemoryBodySchema,
  ObservationSchema,
  PartitionConfigSchema,
  PartitionParamsSchema,
  PartitionStatusSchema,
  ProcessorBodySchema,
  ThrottleBodySchema,
  WatchdogArmBodySchema,
  WatchdogStatusSchema,
  WorkloadBodySchema,
} from './schemas.ts';
import type { HostLimitsPreset } from './sim/limits.ts';
import { createSimHypervisor, type SimHypervisor } from './sim/sim-hypervisor.ts';
import { createSeededRandom } from './sim/random.ts';

export interface SimHostOptions {
  readonly hostId: string;
  readonly logicalProcessors: number;
  readonly memoryMiB: number;
  readonly parentReserveMiB: number;
  /** Holds sim-host.sock and sim-host.json; created if missing. */
  readonly dataDir: string;
  /** Interval between accounting ticks (default 1000 ms, the Dynamic Memory balancer's period). */
  readonly tickMs?: number;
  /** PRNG seed (default: from crypto). Logged in sim-host.json so a run's noise can be replayed. */
  readonly seed?: number;
  /** ± noise on workload demands per tick, percent (default 0). */
  readonly workloadJitterPct?: number;
  /** Structured request logs (fastify/pino) on stdout; off by default. */
  readonly logger?: boolean;
  /** Host scale limits checked at start (default 'modern'; 'r2' = Hyper-V 2008 R2). */
  readonly limitsPreset?: HostLimitsPreset;
  /** CPU the parent partition uses, in LPs (default 0). */
  readonly parentCpuLp?: number;
}

/** What sim-host.json holds: how to reach this machine and which boot it is. */
export interface SimHostDescriptor {
  readonly hostId: string;
  readonly pid: number;
  readonly socketPath: string;
  readonly bootId: string;
  readonly logicalProcessors: number;
  readonly memoryMiB: number;
  readonly parentReserveMiB: number;
  readonly parentCpuLp: number;
  readonly limitsPreset: HostLimitsPreset;
  readonly seed: number;
}

export interface SimHostHandle {
  readonly socketPath: string;
  readonly descriptorPath: string;
  readonly descriptor: SimHostDescriptor;
  /** The in-process hypervisor, for tests that want to look behind the HTTP surface. */
  readonly hypervisor: SimHypervisor;
  /** Stops ticking, closes the server and removes the socket and descriptor. Idempotent. */
  close(): Promise<void>;
}

export const simHostSocketName = 'sim-host.sock';
export const simHostDescriptorName = 'sim-host.json';
export const defaultTickMs = 1000;
/** Bounds for tickMs: below 10 ms the timer is the bottleneck, above a minute the balancer is useless. */
export const tickMsMin = 10;
export const tickMsMax = 60_000;
/** sun_path holds 108 bytes on Linux including the terminating NUL. */
export const socketPathBytesMax = 107;
/** Request bodies are small JSON documents; anything bigger is not a Hypervisor call. */
export const requestBodyBytesMax = 64 * 1024;
/**
 * How often the watchdog is checked between calls and accounting ticks (or every tick, if ticks are
 * more frequent), so a fence comes at most about this late after the expiry, event-loop lag aside.
 * The check is a comparison unless the watchdog fires.
 */
export const watchdogCheckMsMax = 50;
/** How long to wait for a probe connection to a possibly stale socket. */
const staleProbeMsMax = 1000;

export async function runSimHost(options: SimHostOptions): Promise<SimHostHandle> {
  const tickMs = options.tickMs ?? defaultTickMs;
  if (!Number.isInteger(tickMs) || tickMs < tickMsMin || tickMs > tickMsMax) {
    throw new RangeError(`tickMs must be an integer from ${tickMsMin} to ${tickMsMax}, got ${tickMs}`);
  }
  const socketPath = join(options.dataDir, simHostSocketName);
  if (Buffer.byteLength(socketPath) > socketPathBytesMax) {
    throw new RangeError(
      `dataDir is too long for a Unix socket: ${socketPath} is over ${socketPathBytesMax} bytes; use a shorter dataDir`,
    );
  }
  const descriptorPath = join(options.dataDir, simHostDescriptorName);
  const seed = options.seed ?? randomInt(0, 2 ** 32);
  const bootId = randomUUID();
  const clock = { nowMs: () => Date.now() };
  const hypervisor = createSimHypervisor({
    hostId: options.hostId,
    logicalProcessors: options.logicalProcessors,
    memoryMiB: options.memoryMiB,
    parentReserveMiB: options.parentReserveMiB,
    clock,
    random: createSeededRandom(seed),
    bootId,
    workloadJitterPct: options.workloadJitterPct ?? 0,
    parentCpuLp: options.parentCpuLp ?? 0,
    limitsPreset: options.limitsPreset ?? 'modern',
  });

  await mkdir(options.dataDir, { recursive: true });
  await removeStaleSocket(socketPath);
  const app = buildSimHostApp(hypervisor, { logger: options.logger ?? false });
  await app.listen({ path: socketPath });

  // Tick by measured elapsed time, not by the nominal interval: timers drift and stall under load,
  // and the accounting must add up to wall time.
  let lastTickAtMs = clock.nowMs();
  const ticker = setInterval(() => {
    const nowMs = clock.nowMs();
    hypervisor.tick(Math.max(0, nowMs - lastTickAtMs));
    lastTickAtMs = nowMs;
  }, tickMs);
  // The watchdog belongs to the machine: it fires on time whether or not anyone calls in. (A real
  // hardware watchdog also fires if the host OS hangs; this one is as live as the sim-host process.)
  const watchdogChecker = setInterval(() => hypervisor.checkWatchdog(), Math.min(tickMs, watchdogCheckMsMax));

  const descriptor: SimHostDescriptor = {
    hostId: options.hostId,
    pid: process.pid,
    socketPath,
    bootId,
    logicalProcessors: options.logicalProcessors,
    memoryMiB: options.memoryMiB,
    parentReserveMiB: options.parentReserveMiB,
    parentCpuLp: options.parentCpuLp ?? 0,
    limitsPreset: options.limitsPreset ?? 'modern',
    seed,
  };
  try {
    // Write-then-rename, so a reader never sees half a descriptor.
    const temporaryPath = `${descriptorPath}.${process.pid}.tmp`;
    await writeFile(temporaryPath, `${JSON.stringify(descriptor, null, 2)}\n`);
    await rename(temporaryPath, descriptorPath);
  } catch (error) {
    clearInterval(ticker);
    clearInterval(watchdogChecker);
    await app.close();
    throw error;
  }

  let closing: Promise<void> | null = null;
  return {
    socketPath,
    descriptorPath,
    descriptor,
    hypervisor,
    close: () => {
      closing ??= (async () => {
        clearInterval(ticker);
        clearInterval(watchdogChecker);
        await app.close();
        await rm(descriptorPath, { force: true });
        await rm(socketPath, { force: true });
      })();
      return closing;
    },
  };
}

/**
 * A socket file left by a dead sim-host blocks listen() with EADDRINUSE, so remove it, but only
 * after checking nothing answers on it: a live sim-host there means a second machine with the same
 * data directory, which is a configuration error, not something to paper over.
 */
async function removeStaleSocket(socketPath: string): Promise<void> {
  const exists = await stat(socketPath).then(
    () => true,
    (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return false;
      throw error;
    },
  );
  if (!exists) return;
  const live = await new Promise<boolean>((resolve) => {
    const probe = connect({ path: socketPath });
    const timer = setTimeout(() => {
      probe.destroy();
      resolve(false);
    }, staleProbeMsMax);
    probe.once('connect', () => {
      clearTimeout(timer);
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
  if (live) throw new Error(`another sim-host is already listening on ${socketPath}`);
  await rm(socketPath, { force: true });
}

const statusByCode: Record<HypervisorError['code'], number> = {
  'not-found': 404,
  'invalid-state': 409,
  'insufficient-memory': 409,
  'invalid-config': 422,
  // Never raised by the in-process sim; mapped for completeness.
  unavailable: 503,
};

function errorBody(status: number, code: string, message: string): ErrorBody {
  return { type: `urn:vcp:hypervisor:${code}`, title: code, status, detail: message, code, message };
}

const errorResponses = {
  400: ErrorBodySchema,
  404: ErrorBodySchema,
  409: ErrorBodySchema,
  413: ErrorBodySchema,
  415: ErrorBodySchema,
  422: ErrorBodySchema,
  500: ErrorBodySchema,
  503: ErrorBodySchema,
};

/** The HTTP surface over a SimHypervisor. Exported so tests can drive it with app.inject(). */
export function buildSimHostApp(hypervisor: SimHypervisor, options: { logger: boolean }): FastifyInstance {
  const app = Fastify({ logger: options.logger, bodyLimit: requestBodyBytesMax }).withTypeProvider<TypeBoxTypeProvider>();
  // TypeBox's own validator: no type coercion of bodies, the same checks the client runs on responses.
  app.setValidatorCompiler(TypeBoxValidatorCompiler);

  app.setErrorHandler((error: FastifyError | HypervisorError | Error, request, reply) => {
    if (error instanceof HypervisorError) {
      const status = statusByCode[error.code];
      return reply.status(status).type('application/problem+json').send(errorBody(status, error.code, error.message));
    }
    const fastifyStatus = 'statusCode' in error && typeof error.statusCode === 'number' ? error.statusCode : 500;
    if (fastifyStatus >= 400 && fastifyStatus < 500) {
      // Schema violations, malformed JSON, oversized bodies: the caller's request is invalid.
      const status = [400, 413, 415].includes(fastifyStatus) ? fastifyStatus : 400;
      return reply.status(status).type('application/problem+json').send(errorBody(status, 'invalid-config', error.message));
    }
    request.log.error({ err: error }, 'sim-host request failed');
    return reply.status(500).type('application/problem+json').send(errorBody(500, 'internal', error.message));
  });
  app.setNotFoundHandler((request, reply) =>
    reply
      .status(404)
      .type('application/problem+json')
      .send(errorBody(404, 'not-found', `no route ${request.method} ${request.url}`)),
  );

  const params = PartitionParamsSchema;

  app.get('/info', { schema: { response: { 200: HostInfoSchema, ...errorResponses } } }, () => hypervisor.info());
  app.get('/partitions', { schema: { response: { 200: Type.Immutable(Type.Array(PartitionStatusSchema)), ...errorResponses } } }, () =>
    hypervisor.list(),
  );
  app.get('/usage', { schema: { response: { 200: HostUsageSchema, ...errorResponses } } }, () => hypervisor.usage());
  // POST, not GET: draining changes state, and a GET may be retried or prefetched by intermediaries.
  app.post(
    '/observations/drain',
    { schema: { response: { 200: Type.Array(ObservationSchema), ...errorResponses } } },
    async () => hypervisor.drainObservations(),
  );

  // The watchdog (HA self-fencing): arm, pet on every lease renewal, disarm; it fences when it expires.
  const watchdogReply = { response: { 200: WatchdogStatusSchema, ...errorResponses } };
  app.get('/watchdog', { schema: watchdogReply }, () => hypervisor.watchdogStatus());
  app.post('/watchdog/arm', { schema: { body: WatchdogArmBodySchema, ...watchdogReply } }, (request) =>
    hypervisor.armWatchdog(request.body.timeoutMs),
  );
  app.post('/watchdog/pet', { schema: watchdogReply }, () => hypervisor.petWatchdog());
  app.post('/watchdog/disarm', { schema: watchdogReply }, () => hypervisor.disarmWatchdog());

  app.post(
    '/partitions/:id/start',
    { schema: { params, body: PartitionConfigSchema, response: { 200: PartitionStatusSchema, ...errorResponses } } },
    async (request) => {
      if (request.body.partitionId !== request.params.id) {
        throw new HypervisorError(
          'invalid-config',
          `body partitionId ${request.body.partitionId} does not match the path's ${request.params.id}`,
        );
      }
      return hypervisor.start(request.body);
    },
  );

  const noContent = { params, body: IncarnationBodySchema, response: { 204: Type.Null(), ...errorResponses } };
  app.post('/partitions/:id/stop', { schema: noContent }, async (request, reply) => {
    await hypervisor.stop(request.params.id, request.body.incarnation);
    return reply.status(204).send(null);
  });
  app.post('/partitions/:id/turn-off', { schema: noContent }, async (request, reply) => {
    await hypervisor.turnOff(request.params.id, request.body.incarnation);
    return reply.status(204).send(null);
  });
  app.post('/partitions/:id/save', { schema: noContent }, async (request, reply) => {
    await hypervisor.save(request.params.id, request.body.incarnation);
    return reply.status(204).send(null);
  });

  const withStatus = { params, body: IncarnationBodySchema, response: { 200: PartitionStatusSchema, ...errorResponses } };
  app.post('/partitions/:id/pause', { schema: withStatus }, (request) =>
    hypervisor.pause(request.params.id, request.body.incarnation),
  );
  app.post('/partitions/:id/resume', { schema: withStatus }, (request) =>
    hypervisor.resume(request.params.id, request.body.incarnation),
  );

  app.put(
    '/partitions/:id/processor',
    { schema: { params, body: ProcessorBodySchema, response: { 200: PartitionStatusSchema, ...errorResponses } } },
    (request) => hypervisor.setProcessor(request.params.id, request.body.incarnation, request.body.processor),
  );
  app.put(
    '/partitions/:id/memory',
    { schema: { params, body: MemoryBodySchema, response: { 200: PartitionStatusSchema, ...errorResponses } } },
    (request) => hypervisor.setMemory(request.params.id, request.body.incarnation, request.body.memory),
  );

  // Simulation controls: what a guest does on its own, for tests and demos.
  app.put(
    '/partitions/:id/workload',
    { schema: { params, body: WorkloadBodySchema, response: { 204: Type.Null(), ...errorResponses } } },
    async (request, reply) => {
      hypervisor.setWorkload(request.params.id, request.body.workload);
      return reply.status(204).send(null);
    },
  );
  // Throttling hook (auto-converge): takes throttlePct % of that incarnation's vCPU time away; null lifts it.
  app.put(
    '/partitions/:id/throttle',
    { schema: { params, body: ThrottleBodySchema, response: { 204: Type.Null(), ...errorResponses } } },
    async (request, reply) => {
      await hypervisor.setThrottle(request.params.id, request.body.incarnation, request.body.throttlePct);
      return reply.status(204).send(null);
    },
  );
  app.post(
    '/partitions/:id/crash',
    { schema: { params, body: CrashBodySchema, response: { 204: Type.Null(), ...errorResponses } } },
    async (request, reply) => {
      hypervisor.crashPartition(request.params.id, request.body.reason);
      return reply.status(204).send(null);
    },
  );
  app.post(
    '/partitions/:id/guest-shutdown',
    { schema: { params, response: { 204: Type.Null(), ...errorResponses } } },
    async (request, reply) => {
      hypervisor.shutdownFromGuest(request.params.id);
      return reply.status(204).send(null);
    },
  );

  return app;
}
