/**
 * The node daemon's view of the control plane's HTTP API (embedded mode).
 */
import type { SseMessage } from '../shared/sse-client.ts';
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

export type ControlPlaneClient = ReturnType<typeof createControlPlaneClient>;

export function createControlPlaneClient(baseUrl: string, hostId: string, requestTimeoutMs: number) {
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
    register: (body: unknown) => call<unknown>('POST', '/v1/hosts', body),
    desired: () => call<Desired>('GET', `/v1/hosts/${host}/desired`),
    report: (reports: readonly Report[]) =>
      call<{ results: { reportId: string; outcome: string; reason: string | null }[] }>('POST', `/v1/hosts/${host}/reports`, { reports }),
    partition: (partitionId: string) => call<{ id: string; state: string; hostId: string | null; incarnation: number; spec: unknown }>('GET', `/v1/partitions/${encodeURIComponent(partitionId)}`),
    migration: (migrationId: string) => call<{ id: string; phase: string }>('GET', `/v1/migrations/${encodeURIComponent(migrationId)}`),
    migrationReport: (reports: readonly Record<string, unknown>[]) =>
      call<{ results: { reportId: string; outcome: string; reason: string | null }[] }>('POST', `/v1/hosts/${host}/migration-reports`, { reports }),
    telemetry: (sample: unknown) => call<unknown>('POST', `/v1/hosts/${host}/telemetry`, sample),
    heartbeat: (bootId: string, checkpointPosition: number, lease: { leaseMs: number; renewMs: number; marginMs: number }) =>
      call<{ position: number }>('POST', `/v1/hosts/${host}/heartbeat`, { bootId, checkpointPosition, ...lease }),
    fenced: (body: { bootId: string; turnedOff: string[]; how: string; reason: string }) => call<unknown>('POST', `/v1/hosts/${host}/fenced`, body),
    /** Opens the directive stream after `position`; the caller iterates until it ends. */
    async directives(after: number, signal: AbortSignal): Promise<AsyncGenerator<SseMessage>> {
      const response = await fetch(new URL(`/v1/hosts/${host}/directives?after=${after}`, baseUrl), {
        headers: { accept: 'text/event-stream', 'x-vcp-actor': actor },
        signal,
      });
      if (!response.ok || !response.body) throw new ControlPlaneHttpError(response.status, await response.text());
      return readSse(response.body);
    },
  };
}
