/**
 * Telemetry: what the hypervisors measure (CPU, wait, memory, pressure), sampled by each node
 * daemon every tick. Too chatty for the event log, so it lives here in bounded ring buffers;
 * decisions that matter (a start refused for memory) are events.
 */
export type TelemetryValue = number | string | null;
export type HostSample = { readonly [key: string]: TelemetryValue };
export type PartitionSample = { readonly partitionId: string; readonly incarnation: number; readonly [key: string]: TelemetryValue };

export type TelemetryReport = {
  readonly hostId: string;
  readonly bootId: string;
  /** When the hypervisor took the sample (its clock, ms since epoch). */
  readonly sampledAtMs: number;
  readonly host: HostSample;
  readonly partitions: readonly PartitionSample[];
};

export type HostPoint = { readonly sampledAtMs: number; readonly receivedAt: string } & HostSample;
export type PartitionPoint = { readonly sampledAtMs: number; readonly hostId: string } & PartitionSample;

/** Samples kept per host and per partition (at 1 s per sample: the last five minutes). */
export const telemetryHistoryMax = 300;
/** Partitions without a sample for this long are forgotten (deleted, or long gone). */
export const partitionTelemetryRetentionMs = 15 * 60_000;

class Ring<T> {
  private readonly items: T[] = [];
  constructor(private readonly capacity: number) {}
  push(item: T): void {
    this.items.push(item);
    if (this.items.length > this.capacity) this.items.splice(0, this.items.length - this.capacity);
  }
  last(): T | null {
    return this.items[this.items.length - 1] ?? null;
  }
  all(limit: number): T[] {
    return this.items.slice(-limit);
  }
}

export class TelemetryStore {
  private readonly hosts = new Map<string, Ring<HostPoint>>();
  private readonly lastReports = new Map<string, TelemetryReport>();
  private readonly partitions = new Map<string, { ring: Ring<PartitionPoint>; lastMs: number }>();
  private readonly listeners = new Set<(report: TelemetryReport) => void>();

  constructor(private readonly nowMs: () => number = Date.now) {}

  record(report: TelemetryReport): void {
    let ring = this.hosts.get(report.hostId);
    if (!ring) {
      ring = new Ring(telemetryHistoryMax);
      this.hosts.set(report.hostId, ring);
    }
    ring.push({ ...report.host, sampledAtMs: report.sampledAtMs, receivedAt: new Date(this.nowMs()).toISOString() });
    this.lastReports.set(report.hostId, report);
    const now = this.nowMs();
    for (const sample of report.partitions) {
      let entry = this.partitions.get(sample.partitionId);
      if (!entry) {
        entry = { ring: new Ring(telemetryHistoryMax), lastMs: now };
        this.partitions.set(sample.partitionId, entry);
      }
      entry.ring.push({ ...sample, sampledAtMs: report.sampledAtMs, hostId: report.hostId });
      entry.lastMs = now;
    }
    for (const [id, entry] of this.partitions) if (now - entry.lastMs > partitionTelemetryRetentionMs) this.partitions.delete(id);
    for (const listener of this.listeners) listener(report);
  }

  host(hostId: string, limit = telemetryHistoryMax) {
    const ring = this.hosts.get(hostId);
    return { current: ring?.last() ?? null, history: ring?.all(limit) ?? [], partitions: this.lastReports.get(hostId)?.partitions ?? [] };
  }

  partition(partitionId: string, limit = telemetryHistoryMax) {
    const entry = this.partitions.get(partitionId);
    return { current: entry?.ring.last() ?? null, history: entry?.ring.all(limit) ?? [] };
  }

  onReport(listener: (report: TelemetryReport) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
