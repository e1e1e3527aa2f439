/**
 * The node daemon's view of the control plane's HTTP API (embedded mode).
 */
import { readSse } from '../shared/sse-client.ts';

export type DesiredPartition = {
  readonly partitionId: string;
  readonly state: string;
  readonly hostId: string | null;
  readonly incarnation: number;
  readonly spec: unknown;
  /** Set while the partition is being live-migrated: the host it goes to. */
  readonly migrationTargetHostId: string | null;
};

export type Desired = { readonly position: number; readonly partitions: readonly DesiredPartition[] };

export type Report = {
  readonly reportId: string;
  readonly partitionId: string;
  readonly type: string;
  readonly incarnation: number;
  readonly directiveEventId: string | null;
  readonly reason?: string | null;
  readonly code?: string | null;
  readonly how?: string | null;
  readonly memoryAssignedMiB?: number | null;
};

export class ControlPlaneHttpError extends Error {
  override readonly name = 'ControlPlaneHttpError';
  constructor(
    readonly status: number,
    readonly body: string,
  ) {
    super(`control plane answered ${status}: ${body.slice(0, 500)}`);
  }
}

/** A directive (an event that concerns this host) or a mark that everything up to `position` was sent. */
export type DirectiveMessage =
  | { readonly kind: 'directive'; readonly directive: { readonly eventId: string; readonly type: string; readonly globalPosition: number; readonly data: unknown } }
  | { readonly kind: 'position'; readonly position: number };

type Results = { results: { reportId: string; outcome: string; reason: string | null }[] };

/**
 * Everything a daemon asks of the control plane. Transports: HTTP (createControlPlaneClient), and
 * the deterministic simulation's in-process one (test/simulation). A call the control plane answers
 * with an error throws ControlPlaneHttpError carrying the HTTP status it maps to.
 */
export interface ControlPlaneClient {
  register(body: unknown): Promise<unknown>;
  desired(): Promise<Desired>;
  report(reports: readonly Report[]): Promise<Results>;
  partition(partitionId: string): Promise<{ id: string; state: string; hostId: string | null; incarnation: number; spec: unknown }>;
  migration(migrationId: string): Promise<{ id: string; phase: string }>;
  migrationReport(reports: readonly Record<string, unknown>[]): Promise<Results>;
  telemetry(sample: unknown): Promise<unknown>;
  heartbeat(bootId: string, checkpointPosition: number, lease: { leaseMs: number; renewMs: number; marginMs: number }): Promise<{ position: number; returned?: boolean }>;
  fenced(body: { bootId: string; turnedOff: string[]; how: string; reason: string }): Promise<unknown>;
  /** Opens the directive stream after `position`; the caller iterates until it ends or `signal` aborts. */
  directives(after: number, signal: AbortSignal): Promise<AsyncIterable<DirectiveMessage>>;
}

export function createControlPlaneClient(baseUrl: string, hostId: string, requestTimeoutMs: number): ControlPlaneClient {
  const actor = `daemon:${hostId}`;
  const call = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const response = await fetch(new URL(path, baseUrl), {
      method,
      headers: { 'x-vcp-actor': actor, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(requestTimeoutMs),
    });
    const text = await response.text();
    if (!response.ok) throw new ControlPlaneHttpError(response.status, text);
    return (text.length > 0 ? JSON.parse(text) : null) as T;
  };
  const host = encodeURIComponent(hostId);
  return {
    register: (body) => call<unknown>('POST', '/v1/hosts', body),
    desired: () => call<Desired>('GET', `/v1/hosts/${host}/desired`),
    report: (reports) => call<Results>('POST', `/v1/hosts/${host}/reports`, { reports }),
    partition: (partitionId) => call('GET', `/v1/partitions/${encodeURIComponent(partitionId)}`),
    migration: (migrationId) => call('GET', `/v1/migrations/${encodeURIComponent(migrationId)}`),
    migrationReport: (reports) => call<Results>('POST', `/v1/hosts/${host}/migration-reports`, { reports }),
    telemetry: (sample) => call<unknown>('POST', `/v1/hosts/${host}/telemetry`, sample),
    heartbeat: (bootId, checkpointPosition, lease) => call<{ position: number; returned?: boolean }>('POST', `/v1/hosts/${host}/heartbeat`, { bootId, checkpointPosition, ...lease }),
    fenced: (body) => call<unknown>('POST', `/v1/hosts/${host}/fenced`, body),
    async directives(after, signal) {
      const response = await fetch(new URL(`/v1/hosts/${host}/directives?after=${after}`, baseUrl), {
        headers: { accept: 'text/event-stream', 'x-vcp-actor': actor },
        signal,
      });
      if (!response.ok || !response.body) throw new ControlPlaneHttpError(response.status, await response.text());
      const messages = readSse(response.body);
      return (async function* () {
        for await (const message of messages) {
          if (message.event === 'directive') yield { kind: 'directive', directive: JSON.parse(message.data) } as DirectiveMessage;
          else if (message.event === 'position') yield { kind: 'position', position: (JSON.parse(message.data) as { position: number }).position } as DirectiveMessage;
        }
      })();
    },
  };
}
