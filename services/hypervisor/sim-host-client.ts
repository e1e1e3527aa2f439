/**
 * The Hypervisor port over a sim-host's Unix socket (HTTP+JSON, see sim-host.ts).
 *
 * Every response is checked against its schema before it is trusted. Failures map onto the port:
 * the sim-host's error bodies become the same HypervisorError the in-process sim would throw, and
 * anything that means "the machine did not answer properly" (no socket, connection refused or
 * reset, timeout, a malformed or unexpected response, a 5xx) becomes HypervisorError('unavailable'),
 * which a daemon treats like a host it cannot reach.
 */
import { request as httpRequest } from 'node:http';
import { Type } from 'typebox';
import { Compile } from 'typebox/compile';
import {
  type HostInfo,
  type HostUsage,
  type Hypervisor,
  HypervisorError,
  type MemorySettings,
  type PartitionConfig,
  type PartitionStatus,
  type ProcessorSettings,
  type Watchdog,
  type WatchdogStatus,
  type WorkloadProfile,
} from './port.ts';
import {
  ErrorBodySchema,
  HostInfoSchema,
  HostUsageSchema,
  isHypervisorErrorCode,
  ObservationSchema,
  PartitionStatusSchema,
  WatchdogStatusSchema,
} from './schemas.ts';
import type { Observation } from './sim/sim-hypervisor.ts';

export interface SimHostClientOptions {
  readonly socketPath: string;
  /** Whole-request bound, connection to last byte (default 10 s). */
  readonly requestTimeoutMs?: number;
}

export interface SimHostClient extends Hypervisor, Watchdog {
  readonly socketPath: string;
  /** Returns and forgets, oldest first, what happened on the host on its own. */
  drainObservations(): Promise<Observation[]>;
  /** Simulates a guest crash of whatever incarnation of the partition runs. */
  crash(partitionId: string, reason: string): Promise<void>;
  /** Simulates the guest shutting itself down. */
  shutdownFromGuest(partitionId: string): Promise<void>;
  /** Replaces the running partition's simulated guest behaviour (null = defaults). */
  setWorkload(partitionId: string, workload: WorkloadProfile | null): Promise<void>;
  /** Takes throttlePct % of that incarnation's vCPU time away (auto-converge); null lifts it. */
  setThrottle(partitionId: string, incarnation: number, throttlePct: number | null): Promise<void>;
}

export const defaultRequestTimeoutMs = 10_000;
/** The biggest legitimate response is a usage or list of a full host: far below this. */
export const responseBytesMax = 16 * 1024 * 1024;

const checkError = Compile(ErrorBodySchema);
const checkStatus = Compile(PartitionStatusSchema);
const checkStatusList = Compile(Type.Array(PartitionStatusSchema));
const checkInfo = Compile(HostInfoSchema);
const checkUsage = Compile(HostUsageSchema);
const checkObservations = Compile(Type.Array(ObservationSchema));
const checkWatchdog = Compile(WatchdogStatusSchema);

interface Validator<T> {
  Check(value: unknown): value is T;
}

export function createSimHostClient(options: SimHostClientOptions): SimHostClient {
  const { socketPath } = options;
  const requestTimeoutMs = options.requestTimeoutMs ?? defaultRequestTimeoutMs;
  if (!Number.isInteger(requestTimeoutMs) || requestTimeoutMs <= 0) {
    throw new RangeError(`requestTimeoutMs must be a positive integer, got ${requestTimeoutMs}`);
  }

  const unavailable = (what: string): HypervisorError =>
    new HypervisorError('unavailable', `sim-host at ${socketPath} is unavailable: ${what}`);

  /** One HTTP exchange; resolves with the status and the parsed body (undefined when empty). */
  const exchange = (method: string, path: string, body: unknown): Promise<{ status: number; body: unknown }> =>
    new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const headers: Record<string, string | number> = { accept: 'application/json' };
      if (payload !== undefined) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = Buffer.byteLength(payload);
      }
      // agent: false opens a fresh connection per call: a kept-alive socket to a sim-host that has
      // since restarted would fail a request that a new connection would serve.
      const req = httpRequest({ socketPath, path, method, headers, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        let receivedBytes = 0;
        res.on('data', (chunk: Buffer) => {
          receivedBytes += chunk.length;
          if (receivedBytes > responseBytesMax) {
            req.destroy(unavailable(`${method} ${path} response exceeds ${responseBytesMax} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('error', (error) => reject(error instanceof HypervisorError ? error : unavailable(error.message)));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (text.length === 0) {
            resolve({ status: res.statusCode ?? 0, body: undefined });
            return;
          }
          try {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as unknown });
          } catch {
            reject(unavailable(`${method} ${path} answered ${res.statusCode} with a body that is not JSON`));
          }
        });
      });
      req.setTimeout(requestTimeoutMs, () => {
        req.destroy(unavailable(`${method} ${path} got no answer within ${requestTimeoutMs} ms`));
      });
      req.on('error', (error: NodeJS.ErrnoException) => {
        reject(error instanceof HypervisorError ? error : unavailable(`${method} ${path}: ${error.code ?? error.message}`));
      });
      req.end(payload);
    });

  /** Calls the sim-host and returns the checked body, or throws the HypervisorError it stands for. */
  async function call<T>(method: string, path: string, body: unknown, validator: Validator<T> | null): Promise<T | undefined> {
    const response = await exchange(method, path, body);
    if (response.status >= 200 && response.status < 300) {
      if (validator === null) return undefined;
      if (!validator.Check(response.body)) {
        throw unavailable(`${method} ${path} answered ${response.status} with a body that does not match its schema`);
      }
      return response.body;
    }
    if (checkError.Check(response.body) && isHypervisorErrorCode(response.body.code) && response.status < 500) {
      throw new HypervisorError(response.body.code, response.body.message);
    }
    const detail = checkError.Check(response.body) ? `: ${response.body.message}` : '';
    throw unavailable(`${method} ${path} answered ${response.status}${detail}`);
  }

  async function expect<T>(method: string, path: string, body: unknown, validator: Validator<T>): Promise<T> {
    const result = await call(method, path, body, validator);
    if (result === undefined) throw unavailable(`${method} ${path} answered without a body`);
    return result;
  }

  const partitionPath = (partitionId: string, action: string): string =>
    `/partitions/${encodeURIComponent(partitionId)}/${action}`;

  return {
    socketPath,
    info: (): Promise<HostInfo> => expect('GET', '/info', undefined, checkInfo),
    start: (config: PartitionConfig): Promise<PartitionStatus> =>
      expect('POST', partitionPath(config.partitionId, 'start'), config, checkStatus),
    stop: async (partitionId: string, incarnation: number): Promise<void> => {
      await call('POST', partitionPath(partitionId, 'stop'), { incarnation }, null);
    },
    turnOff: async (partitionId: string, incarnation: number): Promise<void> => {
      await call('POST', partitionPath(partitionId, 'turn-off'), { incarnation }, null);
    },
    save: async (partitionId: string, incarnation: number): Promise<void> => {
      await call('POST', partitionPath(partitionId, 'save'), { incarnation }, null);
    },
    pause: (partitionId: string, incarnation: number): Promise<PartitionStatus> =>
      expect('POST', partitionPath(partitionId, 'pause'), { incarnation }, checkStatus),
    resume: (partitionId: string, incarnation: number): Promise<PartitionStatus> =>
      expect('POST', partitionPath(partitionId, 'resume'), { incarnation }, checkStatus),
    setProcessor: (partitionId: string, incarnation: number, processor: ProcessorSettings): Promise<PartitionStatus> =>
      expect('PUT', partitionPath(partitionId, 'processor'), { incarnation, processor }, checkStatus),
    setMemory: (partitionId: string, incarnation: number, memory: MemorySettings): Promise<PartitionStatus> =>
      expect('PUT', partitionPath(partitionId, 'memory'), { incarnation, memory }, checkStatus),
    list: (): Promise<readonly PartitionStatus[]> => expect('GET', '/partitions', undefined, checkStatusList),
    usage: (): Promise<HostUsage> => expect('GET', '/usage', undefined, checkUsage),
    drainObservations: (): Promise<Observation[]> =>
      expect('POST', '/observations/drain', undefined, checkObservations),
    crash: async (partitionId: string, reason: string): Promise<void> => {
      await call('POST', partitionPath(partitionId, 'crash'), { reason }, null);
    },
    shutdownFromGuest: async (partitionId: string): Promise<void> => {
      await call('POST', partitionPath(partitionId, 'guest-shutdown'), undefined, null);
    },
    setWorkload: async (partitionId: string, workload: WorkloadProfile | null): Promise<void> => {
      await call('PUT', partitionPath(partitionId, 'workload'), { workload }, null);
    },
    setThrottle: async (partitionId: string, incarnation: number, throttlePct: number | null): Promise<void> => {
      await call('PUT', partitionPath(partitionId, 'throttle'), { incarnation, throttlePct }, null);
    },
    armWatchdog: (timeoutMs: number): Promise<WatchdogStatus> =>
      expect('POST', '/watchdog/arm', { timeoutMs }, checkWatchdog),
    petWatchdog: (): Promise<WatchdogStatus> => expect('POST', '/watchdog/pet', undefined, checkWatchdog),
    disarmWatchdog: (): Promise<WatchdogStatus> => expect('POST', '/watchdog/disarm', undefined, checkWatchdog),
    watchdogStatus: (): Promise<WatchdogStatus> => expect('GET', '/watchdog', undefined, checkWatchdog),
  };
}
