/**
 * Command handling: read stream → fold → decide → append with the expected version, retried a
 * bounded number of times on a version conflict. The same loop serves every decider.
 */
import { v5 as uuidv5 } from 'uuid';
import { randomId } from '../shared/ids.ts';
import type { Decision, Rejection } from '../domain/index.ts';
import { type AppendResult, type EventStore, type Json, type NewEvent, type RecordedEvent, WrongExpectedVersionError } from '../eventstore/index.ts';

/** Namespace for deterministic event ids (uuid v5), so retried requests append nothing new. */
const eventIdNamespace = '6f1c7b52-4d7e-4c43-9a53-0a5a0f6d2f11';

export type CommandMeta = {
  /** `user:<name>`, `daemon:<hostId>`, `system:<component>`. */
  readonly actor: string;
  readonly correlationId: string;
  readonly causationId: string | null;
  /**
   * Seed for deterministic event ids: a client's Idempotency-Key (scoped by route), a daemon's
   * report id, or a process manager's cause. Null = random ids.
   */
  readonly idSeed: string | null;
};

export type Decider<C, E extends { type: string; data: object }, S> = {
  readonly decide: (command: C, state: S) => Decision<E>;
  readonly evolve: (state: S, event: E) => S;
  readonly initialState: () => S;
};

export type CommandOutcome<S> =
  | { readonly ok: true; readonly state: S; readonly version: number; readonly events: readonly RecordedEvent[]; readonly written: boolean }
  | { readonly ok: false; readonly rejection: Rejection; readonly state: S };

/** How many times a command is re-decided after losing a race on its stream. */
export const conflictRetryCountMax = 8;

export function eventIdFor(seed: string | null, streamId: string, index: number): string {
  return seed === null ? randomId() : uuidv5(`${seed}|${streamId}|${index}`, eventIdNamespace);
}

export function deterministicId(seed: string): string {
  return uuidv5(seed, eventIdNamespace);
}

export function fold<E, S>(decider: { evolve: (s: S, e: E) => S; initialState: () => S }, events: readonly RecordedEvent[]): S {
  let state = decider.initialState();
  // Stored events were produced by this code's deciders; the cast is the store's trust boundary.
  for (const event of events) state = decider.evolve(state, { type: event.type, data: event.data } as E);
  return state;
}

export function toNewEvents<E extends { type: string; data: object }>(
  events: readonly E[],
  streamId: string,
  meta: CommandMeta,
): NewEvent[] {
  return events.map((event, index) => ({
    eventId: eventIdFor(meta.idSeed, streamId, index),
    type: event.type,
    data: event.data as { readonly [key: string]: Json },
    metadata: { actor: meta.actor, causationId: meta.causationId, correlationId: meta.correlationId, schemaVersion: 1 },
  }));
}

export async function loadStream<C, E extends { type: string; data: object }, S>(
  store: EventStore,
  decider: Decider<C, E, S>,
  streamId: string,
): Promise<{ state: S; version: number; events: readonly RecordedEvent[] }> {
  const events = await store.readStream(streamId);
  return { state: fold(decider, events), version: events.length, events };
}

/**
 * Decides a command against the stream's current state and appends the result.
 * With a deterministic idSeed, a command whose first event is already stored is a retry that
 * already took effect: it returns the current state instead of deciding again.
 */
export async function handleCommand<C, E extends { type: string; data: object }, S>(
  store: EventStore,
  decider: Decider<C, E, S>,
  streamId: string,
  command: C,
  meta: CommandMeta,
): Promise<CommandOutcome<S>> {
  if (meta.idSeed !== null) {
    const earlier = await store.getEvent(eventIdFor(meta.idSeed, streamId, 0));
    if (earlier !== null && earlier.streamId === streamId) {
      const { state, version, events } = await loadStream(store, decider, streamId);
      const ours = events.filter((e) => e.correlationId === earlier.correlationId && e.globalPosition >= earlier.globalPosition);
      return { ok: true, state, version, events: ours, written: false };
    }
  }
  return serialized(store, streamId, () => decideAndAppend(store, decider, streamId, command, meta));
}

/** Commands on one stream, per store, one at a time in this process (in arrival order). */
const queues = new WeakMap<EventStore, Map<string, Promise<unknown>>>();

/**
 * Runs `work` after every earlier piece of work on the same stream of the same store. Commands
 * racing in one process (ten starts placed on one host at once) would otherwise lose the
 * optimistic-concurrency race to each other until their retries ran out; now only other processes
 * can make them retry.
 */
function serialized<T>(store: EventStore, streamId: string, work: () => Promise<T>): Promise<T> {
  let byStream = queues.get(store);
  if (!byStream) {
    byStream = new Map();
    queues.set(store, byStream);
  }
  const previous = byStream.get(streamId) ?? Promise.resolve();
  const run = previous.then(work, work);
  const tail = run.then(
    () => undefined,
    () => undefined,
  );
  byStream.set(streamId, tail);
  void tail.then(() => {
    if (byStream.get(streamId) === tail) byStream.delete(streamId);
  });
  return run;
}

async function decideAndAppend<C, E extends { type: string; data: object }, S>(
  store: EventStore,
  decider: Decider<C, E, S>,
  streamId: string,
  command: C,
  meta: CommandMeta,
): Promise<CommandOutcome<S>> {
  for (let attempt = 1; ; attempt++) {
    const { state, version } = await loadStream(store, decider, streamId);
    const decision = decider.decide(command, state);
    if (!decision.ok) return { ok: false, rejection: decision.rejection, state };
    if (decision.events.length === 0) return { ok: true, state, version, events: [], written: false };
    try {
      const result: AppendResult = await store.append(streamId, toNewEvents(decision.events, streamId, meta), version === 0 ? 'no-stream' : version);
      let next = state;
      for (const event of decision.events) next = decider.evolve(next, event);
      return { ok: true, state: next, version: result.streamVersion, events: result.events, written: result.written };
    } catch (error) {
      if (error instanceof WrongExpectedVersionError && attempt < conflictRetryCountMax) continue;
      throw error;
    }
  }
}
