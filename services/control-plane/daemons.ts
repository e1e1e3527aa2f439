/**
 * What the control plane knows of each host's node daemon: its last heartbeat and stream.
 * Connection state is volatile (not an event); leases as events come with HA.
 */
export type DaemonStatus = {
  readonly connected: boolean;
  readonly lastSeenAt: string | null;
  readonly bootId: string | null;
  readonly checkpointPosition: number | null;
  readonly directiveStreams: number;
};

export class DaemonRegistry {
  private readonly seen = new Map<string, { atMs: number; bootId: string; checkpointPosition: number }>();
  private readonly streams = new Map<string, number>();

  constructor(
    /** A daemon is connected if it beat within this window (or has a directive stream open). */
    private readonly connectedWindowMs: number,
    private readonly nowMs: () => number = Date.now,
  ) {}

  heartbeat(hostId: string, bootId: string, checkpointPosition: number): void {
    this.seen.set(hostId, { atMs: this.nowMs(), bootId, checkpointPosition });
  }

  streamOpened(hostId: string): void {
    this.streams.set(hostId, (this.streams.get(hostId) ?? 0) + 1);
  }

  streamClosed(hostId: string): void {
    const count = (this.streams.get(hostId) ?? 1) - 1;
    if (count <= 0) this.streams.delete(hostId);
    else this.streams.set(hostId, count);
  }

  /** When the daemon last renewed (ms since epoch), or null if not since this process started. */
  lastSeenMs(hostId: string): number | null {
    return this.seen.get(hostId)?.atMs ?? null;
  }

  isConnected(hostId: string): boolean {
    const last = this.seen.get(hostId);
    const recent = last !== undefined && this.nowMs() - last.atMs <= this.connectedWindowMs;
    return recent || (this.streams.get(hostId) ?? 0) > 0;
  }

  status(hostId: string): DaemonStatus {
    const last = this.seen.get(hostId);
    return {
      connected: this.isConnected(hostId),
      lastSeenAt: last ? new Date(last.atMs).toISOString() : null,
      bootId: last?.bootId ?? null,
      checkpointPosition: last?.checkpointPosition ?? null,
      directiveStreams: this.streams.get(hostId) ?? 0,
    };
  }
}
