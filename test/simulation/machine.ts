/**
 * A simulated physical machine for the deterministic simulation: the production simulated
 * hypervisor (services/hypervisor/sim) behind a power switch. Powered off, every call fails as an
 * unreachable host does ('unavailable') and everything that ran is gone; powered on again, it boots
 * a fresh hypervisor with a new boot id. It ticks the hypervisor and checks its watchdog on the
 * (virtual) timers, as the sim-host process does on real ones.
 *
 * It also keeps the record invariant 6 needs: every effective start, pause, resume and save, per
 * boot, partition and incarnation ("effective": the call changed what runs, not an idempotent
 * repeat).
 */
import { type Hypervisor, HypervisorError, type PartitionStatus, type Watchdog } from '../../services/hypervisor/index.ts';
import { createSeededRandom } from '../../services/hypervisor/sim/random.ts';
import { type SimHypervisor, createSimHypervisor } from '../../services/hypervisor/sim/sim-hypervisor.ts';
import type { Observing } from '../../services/node-daemon/daemon.ts';

export type MachineSpec = { readonly hostId: string; readonly logicalProcessors: number; readonly memoryMiB: number; readonly parentReserveMiB: number };

export type Effect = { readonly bootId: string; readonly op: 'start' | 'pause' | 'resume' | 'save'; readonly partitionId: string; readonly incarnation: number };

/** How often the machine advances its hypervisor's accounting, and checks its watchdog. */
const tickMs = 1_000;
const watchdogCheckMs = 250;
/** Coarse scheduler quanta: the simulation checks control, not CPU shares, so it need not pay for 10 ms ones. */
const quantumMs = 250;

export class SimMachine {
  private sim: SimHypervisor | null = null;
  private boots = 0;
  private timers: ReturnType<typeof setInterval>[] = [];
  readonly effects: Effect[] = [];
  /** The port the daemon sees: a proxy that follows power cycles. */
  readonly port: Hypervisor & Observing & Watchdog;

  constructor(
    readonly spec: MachineSpec,
    private readonly seed: number,
  ) {
    const tracked = new Set(['start', 'pause', 'resume', 'save']);
    this.port = new Proxy({} as Hypervisor & Observing & Watchdog, {
      get: (_target, name) => {
        if (typeof name !== 'string' || name === 'then') return undefined;
        return async (...args: unknown[]) => {
          const sim = this.running();
          const method = (sim as unknown as Record<string, (...a: unknown[]) => unknown>)[name];
          if (typeof method !== 'function') throw new TypeError(`the simulated hypervisor has no ${name}`);
          if (!tracked.has(name)) return method.apply(sim, args);
          const [first, second] = args as [unknown, unknown];
          const partitionId = name === 'start' ? (first as { partitionId: string }).partitionId : (first as string);
          const incarnation = name === 'start' ? (first as { incarnation: number }).incarnation : (second as number);
          const before = await this.stateOf(sim, partitionId, incarnation);
          const result = await method.apply(sim, args);
          // The machine may have been switched off while the call was in flight.
          if (this.sim === sim && (await this.stateOf(sim, partitionId, incarnation)) !== before) {
            this.effects.push({ bootId: this.bootId(), op: name as Effect['op'], partitionId, incarnation });
          }
          return result;
        };
      },
    });
  }

  private async stateOf(sim: SimHypervisor, partitionId: string, incarnation: number): Promise<string> {
    const found = (await sim.list()).find((a) => a.partitionId === partitionId && a.incarnation === incarnation);
    return found?.state ?? 'absent';
  }

  private running(): SimHypervisor {
    if (!this.sim) throw new HypervisorError('unavailable', `machine ${this.spec.hostId} is powered off`);
    return this.sim;
  }

  get poweredOn(): boolean {
    return this.sim !== null;
  }

  bootId(): string {
    return `${this.spec.hostId}-boot-${this.boots}`;
  }

  powerOn(): void {
    if (this.sim) return;
    this.boots += 1;
    const sim = createSimHypervisor({
      ...this.spec,
      clock: { nowMs: () => Date.now() },
      random: createSeededRandom(this.seed * 1000 + this.boots),
      bootId: this.bootId(),
      quantumMs,
    });
    this.sim = sim;
    let lastMs = Date.now();
    this.timers = [
      setInterval(() => {
        const now = Date.now();
        sim.tick(now - lastMs);
        lastMs = now;
      }, tickMs),
      setInterval(() => sim.checkWatchdog(), watchdogCheckMs),
    ];
  }

  /** Power failure: what ran is gone at once. */
  powerOff(): void {
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    this.sim = null;
  }

  /** What runs now (empty when off). */
  async list(): Promise<readonly PartitionStatus[]> {
    return this.sim ? this.sim.list() : [];
  }

  crashGuest(partitionId: string): boolean {
    if (!this.sim) return false;
    const runs = this.sim.accounting().some((a) => a.partitionId === partitionId);
    if (runs) this.sim.crashPartition(partitionId, 'simulated guest crash');
    return runs;
  }
}
