/**
 * The Kafka port: the only Kafka surface vcp code sees. One adapter implements it today
 * (kafkajs-adapter.ts over kafkajs 2.2.4); nothing else may import kafkajs, so moving to
 * @confluentinc/kafka-javascript (librdkafka, KafkaJS-compatible API, maintained) or to
 * @platformatic/kafka (Node >= 22) is a new adapter behind the same interface.
 *
 * Deliberately narrow: what the relay, the command consumer, topic administration and the tests
 * need, no more. Semantics every adapter must keep:
 * - producer: idempotent, acks = all in-sync replicas, at most one request in flight per broker
 *   (so a retried batch cannot overtake the next one), key-hash partitioning compatible with the
 *   Java client's (murmur2), so a key lands on the same partition whatever client produced it;
 * - consumer: a member of a group; offsets are committed only after the handler has processed
 *   the messages (at-least-once); messages of one partition are handled one at a time, in order;
 * - admin: creates missing topics, never alters an existing one: differences are reported.
 */

/** Header values are UTF-8 strings on our topics. */
export type KafkaHeaders = { readonly [name: string]: string };

export type OutgoingMessage = {
  readonly topic: string;
  /** The partitioning key (UTF-8); null = round-robin. */
  readonly key: string | null;
  readonly value: Buffer;
  readonly headers: KafkaHeaders;
};

/** Where one topic-partition's share of a send landed. */
export type DeliveryReport = {
  readonly topic: string;
  readonly partition: number;
  /** Offset of the first message of this send on that partition (a decimal string: offsets are 64-bit). */
  readonly baseOffset: string;
};

export interface KafkaProducer {
  /**
   * Sends the messages as one batch and resolves once every in-sync replica acknowledged all of
   * them (acks = -1). Messages with the same topic and key keep their order. Rejects if the
   * batch could not be written; then some of it may have been written (the caller retries and
   * consumers must tolerate duplicates: our messages carry an id for that).
   */
  send(messages: readonly OutgoingMessage[]): Promise<readonly DeliveryReport[]>;
  close(): Promise<void>;
}

export type IncomingMessage = {
  readonly topic: string;
  readonly partition: number;
  /** Decimal string (64-bit). */
  readonly offset: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: KafkaHeaders;
  readonly timestampMs: number;
};

export type IncomingBatch = {
  readonly topic: string;
  readonly partition: number;
  readonly messages: readonly IncomingMessage[];
};

export type ConsumerOptions = {
  readonly groupId: string;
  readonly topics: readonly string[];
  /** Where a group with no committed offset starts: the earliest message (true) or only new ones. */
  readonly fromBeginning: boolean;
  /** The group coordinator drops a member silent for this long (kafkajs default 30 000). */
  readonly sessionTimeoutMs?: number;
  /**
   * Read only the partition (of each topic) this key lands on with the producer's partitioner
   * (murmur2, as the Java client's): the group assigns no other partition to any member, so
   * nothing else is fetched or committed. For a consumer that wants one key's messages (a node
   * daemon and its host's directives); it still filters by key, as keys share partitions. Every
   * member of the group must pass the same key.
   */
  readonly partitionOfKey?: string;
  /**
   * For eachMessage handlers: commit each message's offset as soon as it resolves ('message', the
   * default), or once per fetched batch ('batch': after the batch's last message, and before
   * giving up on a failed or stopped one, so what was handled is never handled again after a
   * restart except by a crash). Either way nothing is committed before it was handled; 'batch'
   * saves a broker round trip per message.
   */
  readonly commit?: 'message' | 'batch';
};

export type ConsumerHandler =
  /** Called once per message; its offset is committed once it resolves (see ConsumerOptions.commit). */
  | { readonly eachMessage: (message: IncomingMessage) => Promise<void> }
  /** Called once per fetched batch of one partition; the batch is committed once it resolves. */
  | { readonly eachBatch: (batch: IncomingBatch) => Promise<void> };

/**
 * Thrown by a handler whose consumer is about to close (its close() follows): the adapter leaves
 * the message, and the rest of its batch, uncommitted, stops fetching that partition, and logs
 * nothing, since this is not a failure. Any other error from a handler is one: logged, and the
 * message delivered again.
 */
export class StopConsuming extends Error {
  override readonly name: string = 'StopConsuming';
}

export interface KafkaConsumer {
  /**
   * Starts delivering (returns once the loop runs). A handler that rejects leaves its message
   * uncommitted: the adapter restarts the member and the message is delivered again.
   */
  run(handler: ConsumerHandler): Promise<void>;
  /** Stops fetching from every subscribed topic (the member stays in the group). */
  pause(): void;
  resume(): void;
  /** Leaves the group; resolves once no handler runs. */
  close(): Promise<void>;
}

export type TopicSpec = {
  readonly name: string;
  readonly partitions: number;
  readonly replicationFactor: number;
  /** Topic-level configs, e.g. `retention.ms: '-1'`. */
  readonly config: { readonly [name: string]: string };
};

export type TopicDescription = {
  readonly name: string;
  readonly partitions: number;
  readonly replicationFactor: number;
  /** Only the configs that were asked for. */
  readonly config: { readonly [name: string]: string };
};

export type TopicReport = {
  readonly name: string;
  /** created: it did not exist; ok: it exists as specified; mismatch: it exists but differs (left unchanged). */
  readonly status: 'created' | 'ok' | 'mismatch';
  /** One line per difference, e.g. `partitions: want 6, have 3`. */
  readonly mismatches: readonly string[];
};

export interface KafkaAdmin {
  /**
   * Creates the topics that do not exist; describes the others and reports how they differ
   * from the spec, without changing them (an operator decides: fewer partitions or another
   * retention may be deliberate, and Kafka cannot remove partitions anyway).
   */
  ensureTopics(specs: readonly TopicSpec[]): Promise<readonly TopicReport[]>;
  /** The topics that exist among `names`, with the configs named in `configNames`. */
  describeTopics(names: readonly string[], configNames?: readonly string[]): Promise<readonly TopicDescription[]>;
  /** Brokers in the cluster (to size replication). */
  brokerCount(): Promise<number>;
  /**
   * The offsets `groupId` has committed on `topic`, by partition: the next offset the group
   * reads (so everything before it was processed), or '-1' where it committed nothing.
   */
  committedOffsets(groupId: string, topic: string): Promise<ReadonlyMap<number, string>>;
  /** The end of each partition of `topic` (the offset the next message written there gets). */
  endOffsets(topic: string): Promise<ReadonlyMap<number, string>>;
  close(): Promise<void>;
}

export interface KafkaClient {
  /** A connected idempotent producer. */
  producer(): Promise<KafkaProducer>;
  /** A connected group member subscribed to `options.topics` (not delivering until run). */
  consumer(options: ConsumerOptions): Promise<KafkaConsumer>;
  admin(): Promise<KafkaAdmin>;
}

/** Structured logger (pino's signature); every vcp component takes one. */
export interface Log {
  debug(fields: object, message: string): void;
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export const silentLog: Log = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };

/** The offset after `offset` (offsets are 64-bit decimal strings). */
export const nextOffset = (offset: string): string => (BigInt(offset) + 1n).toString();

/** How an existing topic differs from its spec, one line per difference. */
export function topicMismatches(spec: TopicSpec, found: TopicDescription): string[] {
  const out: string[] = [];
  if (found.partitions !== spec.partitions) out.push(`partitions: want ${spec.partitions}, have ${found.partitions}`);
  if (found.replicationFactor !== spec.replicationFactor) out.push(`replication factor: want ${spec.replicationFactor}, have ${found.replicationFactor}`);
  for (const [name, want] of Object.entries(spec.config)) {
    const have = found.config[name];
    if (have !== want) out.push(`${name}: want ${want}, have ${have ?? 'unset'}`);
  }
  return out;
}
