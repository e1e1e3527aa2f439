/**
 * The whole system in one process, on a virtual clock and one seeded random source: the control
 * plane's core (projections, service, HA, migration and maintenance managers), N node daemons, N
 * simulated machines and the event store. Production code runs unchanged; only adapters differ:
 *
 * - time: @sinonjs/fake-timers replaces setTimeout/setInterval/Date for the run, so every timer in
 *   every component fires in virtual time, in a deterministic order;
 * - ids: random ids come from the seed (services/shared/ids.ts);
 * - transport: daemons talk to the control plane's DaemonGateway (the code behind the HTTP daemon
 *   routes) through an in-process client that can cut, delay and duplicate deliveries;
 * - store: the in-memory event store behind a proxy that fails appends on demand (before or after
 *   the write) and that dies with the control-plane "process" using it;
 * - machines: the simulated hypervisor behind a power switch (machine.ts);
 * - a daemon's checkpoint: a map that survives the daemon, as its file would.
 */
import FakeTimers from '@sinonjs/fake-timers';
import pino from 'pino';
import { defaultControlPlaneConfig } from '../../services/control-plane/index.ts';
import type { ControlPlaneCore } from '../../services/control-plane/server.ts';
import { createControlPlaneCore } from '../../services/control-plane/server.ts';
import type { CommandMeta } from '../../services/control-plane/commands.ts';
import { rejectionProblem } from '../../services/control-plane/http/problems.ts';
import type { EventStore, RecordedEvent, Subscription } from '../../services/eventstore/index.ts';
import { openMemoryEventStore } from '../../services/eventstore/index.ts';
import { createSeededRandom, type SeededRandom } from '../../services/hypervisor/sim/random.ts';
import { type NodeDaemonHandle, defaultNodeDaemonConfig, runNodeDaemon } from '../../services/node-daemon/daemon.ts';
import { type ControlPlaneClient, ControlPlaneHttpError, type DirectiveMessage } from '../../services/node-daemon/control-plane-client.ts';
import { useIdSource, uuidFromBytes } from '../../services/shared/ids.ts';
import { sleep } from '../../services/shared/sleep.ts';
import { SimMachine } from './machine.ts';
import { type Action, hostIdOf } from './steps.ts';

export type WorldOptions = {
  readonly seed: number;
  readonly hosts: number;
  /** Each machine's size (default 8 LPs, 16 GiB with 1 GiB for the parent). */
  readonly machine?: { readonly logicalProcessors: number; readonly memoryMiB: number; readonly parentReserveMiB: number };
  /** Tests only: breaks each control plane the world starts (to prove the invariants catch it). */
  readonly sabotage?: (core: ControlPlaneCore) => void;
};

/** The lease terms the simulation runs with: the production defaults. */
export const lease = { leaseMs: defaultNodeDaemonConfig.leaseMs, renewMs: defaultNodeDaemonConfig.heartbeatMs, marginMs: defaultNodeDaemonConfig.marginMs };

const epochMs = Date.UTC(2026, 0, 1);
/** The transport's waits, which nothing cancels (on the virtual clock, like every timer). */
const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
/**
 * Stack frames kept per Error while a world runs. Every refused call (a dead daemon, a cut link, a
 * control plane down, a machine off) throws, thousands of times a seed; full async stacks made
 * that a quarter of the simulation's CPU, and no invariant reads a stack.
 */
const stackFramesInWorld = 4;
const silent = pino({ level: 'silent' });

type Link = { cut: boolean; delayMs: number; duplicate: boolean };
type CpSession = { core: ControlPlaneCore; alive: boolean; ready: boolean; streams: Set<AbortController>; subscriptions: Set<Subscription> };
type DaemonSession = { handle: Promise<NodeDaemonHandle>; alive: boolean; streams: Set<AbortController>; kill: AbortController };

/** A command the simulation sent and what came of it. */
export type CommandRecord = {
  readonly stepIndex: number;
  readonly action: Action['kind'];
  readonly idSeed: string;
  /** A retry of an earlier command that failed, with the same idempotency seed. */
  readonly retry: boolean;
  outcome: 'pending' | 'accepted' | 'rejected' | 'failed';
  eventIds: readonly string[];
  /** For a migration: the migration it created. */
  migrationId: string | null;
};

export class World {
  readonly clock: FakeTimers.Clock;
  readonly random: SeededRandom;
  /** The durable log (what survives every crash). */
  readonly store: EventStore;
  readonly machines = new Map<string, SimMachine>();
  readonly links = new Map<string, Link>();
  readonly checkpoints = new Map<string, number>();
  /** When each host's lease was last renewed at the control plane (a heartbeat that got through). */
  readonly lastRenewalMs = new Map<string, number>();
  readonly commands: CommandRecord[] = [];
  /** Virtual times at which each kind of disturbance happened (for invariant 5's excuses). */
  readonly disturbances: { atMs: number; kind: string; hostId: string | null }[] = [];
  private cp: CpSession | null = null;
  private readonly daemons = new Map<string, DaemonSession>();
  private storeFailures: { mode: 'before-write' | 'after-write'; remaining: number } | null = null;
  private readonly restoreIds: () => void;
  private readonly previousStackTraceLimit: number;
  private pending = new Set<Promise<unknown>>();

  constructor(readonly options: WorldOptions) {
    this.clock = FakeTimers.withGlobal(globalThis).install({
      now: epochMs,
      toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'],
      loopLimit: 1_000_000,
    });
    this.previousStackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = stackFramesInWorld;
    this.random = createSeededRandom(options.seed);
    const idRandom = createSeededRandom(options.seed ^ 0x5eed);
    this.restoreIds = useIdSource(() => {
      const bytes = new Uint8Array(16);
      for (let i = 0; i < 16; i += 4) new DataView(bytes.buffer).setUint32(i, idRandom.nextUint32());
      return uuidFromBytes(bytes);
    });
    this.store = openMemoryEventStore();
    for (let i = 0; i < options.hosts; i++) {
      const hostId = hostIdOf(i);
      const machine = new SimMachine({ hostId, ...(options.machine ?? { logicalProcessors: 8, memoryMiB: 16_384, parentReserveMiB: 1_024 }) }, options.seed * 16 + i);
      machine.powerOn();
      this.machines.set(hostId, machine);
      this.links.set(hostId, { cut: false, delayMs: 0, duplicate: false });
    }
  }

  get nowMs(): number {
    return Date.now();
  }

  /** The running control plane, if it is up and has replayed the log. */
  get core(): ControlPlaneCore | null {
    return this.cp?.alive && this.cp.ready ? this.cp.core : null;
  }

  daemonUp(hostId: string): boolean {
    return this.daemons.get(hostId)?.alive ?? false;
  }

  /** Whether the host is dead or unreachable as the control plane sees it: machine off, daemon dead, or cut off. */
  hostDown(hostId: string): boolean {
    return !(this.machines.get(hostId)?.poweredOn ?? false) || !this.daemonUp(hostId) || (this.links.get(hostId)?.cut ?? false);
  }

  /** Starts the control plane and every daemon, and lets them settle. */
  async boot(): Promise<void> {
    this.startControlPlane();
    for (const hostId of this.machines.keys()) this.startDaemon(hostId);
    await this.advance(3_000);
  }

  /** Lets virtual time pass; every timer due in it fires, with its promise work, in order. */
  async advance(ms: number): Promise<void> {
    await this.clock.tickAsync(ms);
  }

  // ------------------------------------------------------------------ the control plane

  private startControlPlane(): void {
    const session: CpSession = { core: null as unknown as ControlPlaneCore, alive: true, ready: false, streams: new Set(), subscriptions: new Set() };
    const { port: _p, host: _h, logLevel: _l, sseConnectionsMax: _s, ...config } = defaultControlPlaneConfig;
    session.core = createControlPlaneCore(this.sessionStore(session), config, { warn: () => undefined });
    this.options.sabotage?.(session.core);
    this.cp = session;
    this.track(
      session.core.start().then(() => {
        if (session.alive) session.ready = true;
      }),
    );
  }

  /** The store as one control-plane process sees it: dead when the process is. */
  private sessionStore(session: CpSession): EventStore {
    const store = this.store;
    const world = this;
    const check = () => {
      if (!session.alive) throw new Error('the control-plane process is gone');
    };
    return {
      async append(streamId, events, expected) {
        check();
        const failure = world.storeFailures;
        if (failure && failure.remaining > 0) {
          failure.remaining -= 1;
          if (failure.remaining === 0) world.storeFailures = null;
          if (failure.mode === 'after-write') await store.append(streamId, events, expected);
          throw new Error(`injected store failure (${failure.mode})`);
        }
        return store.append(streamId, events, expected);
      },
      async readStream(streamId, options) {
        check();
        return store.readStream(streamId, options);
      },
      async streamVersion(streamId) {
        check();
        return store.streamVersion(streamId);
      },
      async readAll(options) {
        check();
        return store.readAll(options);
      },
      async headPosition() {
        check();
        return store.headPosition();
      },
      async getEvent(eventId) {
        check();
        return store.getEvent(eventId);
      },
      subscribeAll(options) {
        check();
        const subscription = store.subscribeAll({
          ...options,
          onEvents: (events) => {
            if (session.alive) return options.onEvents(events);
          },
        });
        session.subscriptions.add(subscription);
        return subscription;
      },
      async close() {
        // The durable store outlives every control-plane process.
      },
    };
  }

  crashControlPlane(): void {
    const session = this.cp;
    if (!session?.alive) return;
    session.alive = false;
    for (const stream of session.streams) stream.abort();
    for (const subscription of session.subscriptions) this.track(subscription.close());
    this.track(session.core.stop({ graceful: false }));
    this.disturbances.push({ atMs: this.nowMs, kind: 'cp-crash', hostId: null });
  }

  restartControlPlane(): void {
    if (this.cp?.alive) return;
    this.startControlPlane();
  }

  // ------------------------------------------------------------------ daemons

  startDaemon(hostId: string): void {
    if (this.daemons.get(hostId)?.alive) return;
    const machine = this.machines.get(hostId)!;
    const session: DaemonSession = { handle: null as unknown as Promise<NodeDaemonHandle>, alive: true, streams: new Set(), kill: new AbortController() };
    const client = this.clientFor(hostId, session);
    session.handle = runNodeDaemon(
      {
        ...defaultNodeDaemonConfig,
        hostId,
        controlPlaneUrl: 'inproc://control-plane',
        dataDir: '/nonexistent (the simulation keeps checkpoints in memory)',
        // Telemetry is not what the simulation checks; one sample every 5 s keeps the path exercised.
        telemetryMs: 5_000,
      },
      machine.port,
      silent,
      {
        client,
        stop: session.kill.signal,
        checkpoints: {
          read: (id) => this.checkpoints.get(id) ?? 0,
          write: (id, position) => {
            if (session.alive) this.checkpoints.set(id, position);
          },
        },
      },
    );
    this.track(session.handle);
    this.daemons.set(hostId, session);
  }

  /** kill -9 of the daemon: its calls in flight fail, its loops stop; the machine keeps running. */
  crashDaemon(hostId: string): void {
    const session = this.daemons.get(hostId);
    if (!session?.alive) return;
    session.alive = false;
    for (const stream of session.streams) stream.abort();
    session.kill.abort();
    this.track(session.handle.then((handle) => handle.close()));
    this.disturbances.push({ atMs: this.nowMs, kind: 'daemon-crash', hostId });
  }

  // ------------------------------------------------------------------ machines and links

  crashHost(hostId: string): void {
    const machine = this.machines.get(hostId);
    if (!machine?.poweredOn) return;
    machine.powerOff();
    this.disturbances.push({ atMs: this.nowMs, kind: 'host-crash', hostId });
  }

  returnHost(hostId: string): void {
    this.machines.get(hostId)?.powerOn();
  }

  setLink(hostId: string, change: Partial<Link>): void {
    const link = this.links.get(hostId);
    if (!link) return;
    Object.assign(link, change);
    if (change.cut === true) {
      for (const stream of this.daemons.get(hostId)?.streams ?? []) stream.abort();
    }
    if (change.cut || change.delayMs || change.duplicate) this.disturbances.push({ atMs: this.nowMs, kind: 'link', hostId });
  }

  failStoreAppends(mode: 'before-write' | 'after-write', count: number): void {
    this.storeFailures = { mode, remaining: count };
    this.disturbances.push({ atMs: this.nowMs, kind: 'store-fail', hostId: null });
  }

  /** Heals every fault: machines on, daemons and control plane up, links normal, store healthy. */
  healAll(): void {
    this.storeFailures = null;
    if (!this.cp?.alive) this.restartControlPlane();
    for (const hostId of this.machines.keys()) {
      this.returnHost(hostId);
      this.setLink(hostId, { cut: false, delayMs: 0, duplicate: false });
      this.startDaemon(hostId);
    }
  }

  // ------------------------------------------------------------------ the in-process transport

  /**
   * What one daemon process uses to reach the control plane. A call fails as a network call would:
   * at once when the control plane is down (connection refused) or this daemon is dead; after a
   * while when the link is cut (a timeout); late when the link is slow; twice when it duplicates.
   */
  private clientFor(hostId: string, daemon: DaemonSession): ControlPlaneClient {
    const world = this;
    const link = this.links.get(hostId)!;
    const actor = `daemon:${hostId}`;
    const correlation = () => `sim-${this.random.nextUint32().toString(16)}`;
    async function reach(): Promise<ControlPlaneCore> {
      if (!daemon.alive) throw new Error('this daemon process is gone');
      if (link.cut) {
        await delay(1_000 + Math.floor(world.random.nextFloat() * 9_000));
        throw new Error('request timed out (link cut)');
      }
      if (link.delayMs > 0) await delay(link.delayMs);
      const core = world.core;
      if (!core || !daemon.alive || link.cut) throw new Error('connect ECONNREFUSED (control plane down)');
      return core;
    }
    async function answer<T>(value: T): Promise<T> {
      if (link.delayMs > 0) await delay(link.delayMs);
      if (!daemon.alive) throw new Error('this daemon process is gone');
      if (link.cut) throw new Error('connection reset (link cut)');
      return value;
    }
    const fail = (status: number, detail: string): never => {
      throw new ControlPlaneHttpError(status, JSON.stringify({ status, detail }));
    };
    const notFound = () => fail(404, `host ${hostId} does not exist`);
    async function deliver<T>(call: (core: ControlPlaneCore) => Promise<T>, duplicable: boolean): Promise<T> {
      const core = await reach();
      const result = await call(core);
      if (duplicable && link.duplicate) await call(core).catch(() => undefined);
      return answer(result);
    }
    const outcome = <V>(o: { ok: true; value: V } | { ok: false; rejection: Parameters<typeof rejectionProblem>[0] }): V => {
      if (!o.ok) {
        const problem = rejectionProblem(o.rejection);
        return fail(problem.status, problem.detail ?? problem.title);
      }
      return o.value;
    };
    return {
      register: (body) =>
        deliver(async (core) => outcome(await core.gateway.register(body as Parameters<ControlPlaneCore['gateway']['register']>[0], { actor, correlationId: correlation(), causationId: null, idSeed: null })), true),
      desired: () => deliver(async (core) => core.gateway.desired(hostId) ?? notFound(), false),
      report: (reports) =>
        deliver(async (core) => ({ results: (await core.gateway.reports(hostId, { reports: reports as never }, correlation())) ?? notFound() }), true),
      partition: (partitionId) => deliver(async (core) => (core.service.partition(partitionId) as never) ?? fail(404, `partition ${partitionId} does not exist`), false),
      migration: (migrationId) => deliver(async (core) => (core.migrations.migration(migrationId) as never) ?? fail(404, `migration ${migrationId} does not exist`), false),
      migrationReport: (reports) =>
        deliver(async (core) => ({ results: (await (core.gateway.migrationReports(hostId, { reports: reports as never }, correlation()) ?? notFound())) as never }), true),
      telemetry: (sample) => deliver(async (core) => core.gateway.telemetrySample(hostId, sample as never) || notFound(), false),
      heartbeat: (bootId, checkpointPosition, terms) =>
        deliver(async (core) => {
          const value = outcome((await core.gateway.heartbeat(hostId, { bootId, checkpointPosition, ...terms }, correlation())) ?? notFound());
          world.lastRenewalMs.set(hostId, world.nowMs);
          return value;
        }, true),
      fenced: (body) => deliver(async (core) => outcome(await core.gateway.fenced(hostId, body as never, { actor, correlationId: correlation(), causationId: null, idSeed: null })), true),
      async directives(after, signal) {
        const core = await reach();
        const cp = world.cp!;
        const stream = new AbortController();
        const onAbort = () => stream.abort();
        signal.addEventListener('abort', onAbort, { once: true });
        cp.streams.add(stream);
        daemon.streams.add(stream);
        const messages = core.gateway.directives(hostId, after, 15_000, stream.signal) ?? notFound();
        return (async function* (): AsyncGenerator<DirectiveMessage> {
          try {
            for await (const message of messages) {
              if (stream.signal.aborted) return;
              if (link.delayMs > 0) await sleep(link.delayMs, stream.signal);
              if (stream.signal.aborted) return;
              if (message.kind === 'directive') {
                const e = message.event;
                const directive = { kind: 'directive', directive: { eventId: e.eventId, type: e.type, globalPosition: e.globalPosition, data: e.data } } as const;
                yield directive;
                if (link.duplicate) yield directive;
              } else if (message.kind === 'position') {
                yield { kind: 'position', position: message.position };
              }
            }
          } finally {
            signal.removeEventListener('abort', onAbort);
            cp.streams.delete(stream);
            daemon.streams.delete(stream);
          }
        })();
      },
    };
  }

  // ------------------------------------------------------------------ commands (what operators do)

  meta(idSeed: string): CommandMeta {
    return { actor: 'user:sim', correlationId: `sim-${idSeed}`, causationId: null, idSeed };
  }

  /** Sends a command in the background; its outcome lands in `commands`. */
  command(record: CommandRecord, run: (core: ControlPlaneCore) => Promise<{ ok: boolean; events?: readonly RecordedEvent[]; migrationId?: string }>): void {
    this.commands.push(record);
    const core = this.core;
    if (!core) {
      record.outcome = 'failed';
      return;
    }
    this.track(
      run(core).then(
        (result) => {
          record.outcome = result.ok ? 'accepted' : 'rejected';
          record.eventIds = (result.events ?? []).map((e) => e.eventId);
          record.migrationId = result.migrationId ?? null;
        },
        () => {
          record.outcome = 'failed';
        },
      ),
    );
  }


  private track(promise: Promise<unknown>): void {
    const settled = promise.then(
      () => undefined,
      () => undefined,
    );
    this.pending.add(settled);
    void settled.then(() => this.pending.delete(settled));
  }

  /** Stops everything and gives the real timers back. */
  async dispose(): Promise<void> {
    this.crashControlPlane();
    for (const hostId of this.daemons.keys()) this.crashDaemon(hostId);
    for (const machine of this.machines.values()) machine.powerOff();
    try {
      // Long enough for every loop to see its stop signal; timers left after that die with the clock.
      await this.clock.tickAsync(20_000);
    } finally {
      this.clock.uninstall();
      this.restoreIds();
      Error.stackTraceLimit = this.previousStackTraceLimit;
    }
  }
}
