/**
 * The relay: tails the event store in global order from a durable checkpoint and publishes every
 * event to vcp.events (key = streamId, so one stream's events stay in order on one partition),
 * and each event a node daemon must act on also to vcp.host-directives (key = hostId).
 *
 * Delivery is at-least-once with the duplicates confined to the crash boundary: a batch is
 * published, the checkpoint is written only after Kafka acknowledged the whole batch (acks =
 * all), and the next batch is read only after that (back-pressure: nothing queues in memory). A
 * crash between the acknowledgement and the checkpoint publishes that batch again on restart,
 * with the same event ids (vcp-event-id header, eventId in the value) and in the same order, so
 * a consumer that skips an event id it has seen (or a globalPosition at or below the last it
 * applied) sees every event exactly once in effect.
 *
 * An event that cannot be encoded (no schema for its type, data that does not fit it) is a bug:
 * the relay stops with the error rather than leave a hole in vcp.events.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { concernsHost } from '../domain/index.ts';
import type { EventStore, RecordedEvent, Subscription } from '../eventstore/index.ts';
import { type EventCodec, codec as defaultCodec } from './codec.ts';
import { fingerprintHex } from './crc64.ts';
import type { TopicNames } from './kafka-config.ts';
import type { KafkaClient, KafkaProducer, Log, OutgoingMessage } from './kafka-port.ts';
import { silentLog } from './kafka-port.ts';

/** Where the relay has got to: the global position of the last event Kafka acknowledged. */
export interface CheckpointPort {
  /** 0 when nothing was relayed yet. */
  load(): Promise<number>;
  /** Durable once it resolves. */
  save(position: number): Promise<void>;
}

/** A checkpoint in a small JSON file, replaced atomically (write a temp file, fsync, rename). */
export function fileCheckpoint(path: string): CheckpointPort {
  return {
    async load() {
      let text: string;
      try {
        text = readFileSync(path, 'utf8');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
        throw error;
      }
      const parsed = JSON.parse(text) as { position?: unknown };
      if (typeof parsed.position !== 'number' || !Number.isSafeInteger(parsed.position) || parsed.position < 0) {
        throw new Error(`${path}: not a relay checkpoint (expected {"position": <non-negative integer>})`);
      }
      return parsed.position;
    },
    async save(position) {
      mkdirSync(dirname(path), { recursive: true });
      const temp = `${path}.tmp`;
      const fd = openSync(temp, 'w');
      try {
        writeSync(fd, `${JSON.stringify({ position, savedAt: new Date().toISOString() })}\n`);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(temp, path);
      // The rename itself is durable once the directory is synced.
      const dirFd = openSync(dirname(path), 'r');
      try {
        fsyncSync(dirFd);
      } finally {
        closeSync(dirFd);
      }
    },
  };
}

export const eventHeaders = {
  eventId: 'vcp-event-id',
  eventType: 'vcp-event-type',
  /** Fingerprint (CRC-64-AVRO, little-endian hex) of the value's schema, vcp.Envelope. */
  schemaFingerprint: 'vcp-schema-fingerprint',
  /** Fingerprint of the payload's schema, vcp.<type>. */
  payloadFingerprint: 'vcp-payload-fingerprint',
  streamId: 'vcp-stream-id',
  streamVersion: 'vcp-stream-version',
  globalPosition: 'vcp-global-position',
  correlationId: 'vcp-correlation-id',
  /** vcp.host-directives only: the host the directive is for (also the key). */
  hostId: 'vcp-host-id',
} as const;

/** Most events per Kafka batch. */
export const relayBatchEventsMax = 500;
/**
 * Most bytes (values, keys and headers) per Kafka batch: bounds the relay's memory, and keeps
 * every partition's record batch under Kafka's default max.message.bytes (1 MiB) as well as the
 * event topics' 4 MiB. A single event larger than this still goes, alone.
 */
export const relayBatchBytesMax = 1024 * 1024;
/** Backoff between attempts at sending a batch Kafka refused (doubling from 100 ms). */
export const relaySendRetryDelayMsMax = 5_000;
/** How often the store's head is read for the lag figure. */
export const relayHeadPollMs = 1_000;

/** The hosts whose daemon must act on this event (usually none or one; two for a migration step). */
export function directiveHosts(type: string, data: { readonly [key: string]: unknown }): string[] {
  const candidates = new Set<string>();
  for (const key of ['hostId', 'sourceHostId', 'targetHostId']) {
    const value = data[key];
    if (typeof value === 'string') candidates.add(value);
  }
  return [...candidates].filter((hostId) => concernsHost(type, data, hostId)).sort();
}

/** The Kafka messages of one event: one on vcp.events, one per concerned host on vcp.host-directives. */
export function eventMessages(event: RecordedEvent, topics: Pick<TopicNames, 'events' | 'directives'>, codec: EventCodec): OutgoingMessage[] {
  const value = codec.encodeEnvelope(event);
  const headers = {
    [eventHeaders.eventId]: event.eventId,
    [eventHeaders.eventType]: event.type,
    [eventHeaders.schemaFingerprint]: fingerprintHex(codec.fingerprint('Envelope')),
    [eventHeaders.payloadFingerprint]: fingerprintHex(codec.fingerprint(event.type)),
    [eventHeaders.streamId]: event.streamId,
    [eventHeaders.streamVersion]: String(event.streamVersion),
    [eventHeaders.globalPosition]: String(event.globalPosition),
    [eventHeaders.correlationId]: event.correlationId,
  };
  return [
    { topic: topics.events, key: event.streamId, value, headers },
    ...directiveHosts(event.type, event.data).map((hostId) => ({
      topic: topics.directives,
      key: hostId,
      value,
      headers: { ...headers, [eventHeaders.hostId]: hostId },
    })),
  ];
}

export const messageBytes = (m: OutgoingMessage): number =>
  m.value.length + Buffer.byteLength(m.key ?? '') + Object.entries(m.headers).reduce((sum, [k, v]) => sum + Buffer.byteLength(k) + Buffer.byteLength(v), 0);

export type RelayOptions = {
  readonly store: EventStore;
  readonly client: KafkaClient;
  readonly topics: Pick<TopicNames, 'events' | 'directives'>;
  readonly checkpoint: CheckpointPort;
  /**
   * Resolves once the control plane's read model (its projections) shows every event up to
   * `position`; a batch is published only then. A node daemon reads the API on some directives
   * (a migration's phase, a partition's spec) and must find them applied, as the HTTP directive
   * stream guarantees (followLog). Omitted: no wait (a relay without a control plane).
   */
  readonly applied?: (position: number) => Promise<void>;
  readonly log?: Log;
  readonly codec?: EventCodec;
  readonly batchEventsMax?: number;
  readonly batchBytesMax?: number;
  readonly sendRetryDelayMsMax?: number;
  readonly headPollMs?: number;
};

export type RelayStats = {
  /** running; stopped (closed); crashed (see lastError; a supervisor restarts it). */
  readonly state: 'running' | 'stopped' | 'crashed';
  /** Global position of the last event Kafka acknowledged and the checkpoint holds. */
  readonly relayedPosition: number;
  /** The store's head as last read. */
  readonly headPosition: number;
  /** headPosition − relayedPosition. */
  readonly lag: number;
  readonly eventsPublished: number;
  readonly directivesPublished: number;
  readonly batchesPublished: number;
  readonly bytesPublished: number;
  /** Sends Kafka refused (each retried). */
  readonly sendFailures: number;
  readonly lastError: string | null;
};

export type Relay = {
  stats(): RelayStats;
  /** Reads the store's head now and returns the lag. */
  lag(): Promise<number>;
  /** Resolves when the relay has stopped: null after close(), the error after a crash. */
  readonly ended: Promise<unknown>;
  close(): Promise<void>;
};

class RelayClosing extends Error {}

const errorText = (error: unknown): string => (error instanceof Error ? `${error.name}: ${error.message}` : String(error));

/** Loads the checkpoint and starts relaying; the returned relay runs until closed or crashed. */
export async function startRelay(options: RelayOptions): Promise<Relay> {
  const { store, client, topics, checkpoint } = options;
  const log = options.log ?? silentLog;
  const codec = options.codec ?? defaultCodec();
  const batchEventsMax = options.batchEventsMax ?? relayBatchEventsMax;
  const batchBytesMax = options.batchBytesMax ?? relayBatchBytesMax;
  const retryDelayMsMax = options.sendRetryDelayMsMax ?? relaySendRetryDelayMsMax;

  // With a schema registry: the envelope's and every event's id, before the first message.
  await codec.prepare();
  let relayedPosition = await checkpoint.load();
  let headPosition = await store.headPosition();
  const counters = { eventsPublished: 0, directivesPublished: 0, batchesPublished: 0, bytesPublished: 0, sendFailures: 0 };
  let state: RelayStats['state'] = 'running';
  let lastError: string | null = null;
  let closing = false;
  let producer: KafkaProducer | null = null;
  let wakeSleep: (() => void) | null = null;
  let resolveEnded: (value: unknown) => void = () => {};
  const ended = new Promise<unknown>((resolve) => {
    resolveEnded = resolve;
  });
  log.info({ relayedPosition, headPosition, topics }, 'relay starting');

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wakeSleep = null;
        resolve();
      }
      wakeSleep = done;
    });

  /** Sends until Kafka acknowledges, on a fresh producer after each failure (its idempotence state may be stale). */
  const sendAll = async (messages: readonly OutgoingMessage[]): Promise<void> => {
    for (let attempt = 1; ; attempt++) {
      if (closing) throw new RelayClosing('relay closing');
      try {
        producer ??= await client.producer();
        await producer.send(messages);
        return;
      } catch (error) {
        if (closing) throw new RelayClosing('relay closing');
        counters.sendFailures += 1;
        lastError = errorText(error);
        const delayMs = Math.min(retryDelayMsMax, 100 * 2 ** Math.min(attempt - 1, 16));
        log.warn({ err: error, attempt, delayMs, relayedPosition }, 'Kafka refused a relay batch; sending it again on a new producer');
        const stale = producer;
        producer = null;
        await stale?.close().catch(() => undefined);
        await sleep(delayMs);
      }
    }
  };

  const publish = async (events: readonly RecordedEvent[], messages: OutgoingMessage[], bytes: number): Promise<void> => {
    const last = events[events.length - 1];
    if (last === undefined) return;
    await options.applied?.(last.globalPosition);
    await sendAll(messages);
    // Only now: Kafka holds every message of the batch on every in-sync replica.
    await checkpoint.save(last.globalPosition);
    relayedPosition = last.globalPosition;
    headPosition = Math.max(headPosition, relayedPosition);
    counters.batchesPublished += 1;
    counters.eventsPublished += events.length;
    counters.directivesPublished += messages.length - events.length;
    counters.bytesPublished += bytes;
  };

  const onEvents = async (events: readonly RecordedEvent[]): Promise<void> => {
    let chunk: RecordedEvent[] = [];
    let messages: OutgoingMessage[] = [];
    let bytes = 0;
    for (const event of events) {
      if (event.globalPosition !== relayedPosition + chunk.length + 1) {
        throw new Error(`relay invariant broken: expected global position ${relayedPosition + chunk.length + 1}, got ${event.globalPosition}`);
      }
      const own = eventMessages(event, topics, codec);
      const ownBytes = own.reduce((sum, m) => sum + messageBytes(m), 0);
      if (chunk.length > 0 && bytes + ownBytes > batchBytesMax) {
        await publish(chunk, messages, bytes);
        chunk = [];
        messages = [];
        bytes = 0;
      }
      chunk.push(event);
      messages.push(...own);
      bytes += ownBytes;
    }
    await publish(chunk, messages, bytes);
  };

  const finish = async (error: unknown) => {
    if (state !== 'running') return;
    const crashed = error !== null && !(error instanceof RelayClosing) && !closing;
    state = crashed ? 'crashed' : 'stopped';
    if (crashed) {
      lastError = errorText(error);
      log.error({ err: error, relayedPosition }, 'relay stopped on an error');
    }
    clearInterval(headTimer);
    const stale = producer;
    producer = null;
    await stale?.close().catch(() => undefined);
    resolveEnded(crashed ? error : null);
  };

  const headTimer = setInterval(() => {
    store.headPosition().then(
      (head) => {
        headPosition = Math.max(headPosition, head);
      },
      () => undefined,
    );
  }, options.headPollMs ?? relayHeadPollMs);
  headTimer.unref?.();

  const subscription: Subscription = store.subscribeAll({
    after: relayedPosition,
    batchSizeMax: batchEventsMax,
    onEvents,
    onError: (error) => void finish(error),
  });

  return {
    stats: () => ({ state, relayedPosition, headPosition, lag: Math.max(0, headPosition - relayedPosition), ...counters, lastError }),
    async lag() {
      headPosition = Math.max(headPosition, await store.headPosition());
      return Math.max(0, headPosition - relayedPosition);
    },
    ended,
    async close() {
      closing = true;
      wakeSleep?.();
      await subscription.close();
      await finish(null);
      await ended;
    },
  };
}
