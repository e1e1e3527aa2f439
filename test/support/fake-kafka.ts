/**
 * An in-memory KafkaClient for unit tests of what sits on the port (relay, command consumer):
 * sends are recorded (and can be made to fail or to wait), consumers receive what the test
 * delivers, one message at a time, as a real group member would.
 */
import type {
  ConsumerHandler,
  DeliveryReport,
  IncomingMessage,
  KafkaAdmin,
  KafkaClient,
  KafkaConsumer,
  KafkaHeaders,
  KafkaProducer,
  OutgoingMessage,
} from '../../services/messaging/index.ts';

export type FakeKafka = {
  readonly client: KafkaClient;
  /** Every message a send delivered, in order. */
  readonly sent: OutgoingMessage[];
  /** The same, one array per successful send. */
  readonly batches: OutgoingMessage[][];
  /** Sends so far (successful or not). */
  sendCalls(): number;
  /** The next `count` sends reject with `error`. */
  failNextSends(count: number, error?: Error): void;
  /** Sends wait until the returned function is called. */
  holdSends(): () => void;
  producersCreated(): number;
  /** Delivers a message to the consumer subscribed to `topic`; resolves once it was handled (rejects if the handler did). */
  deliver(topic: string, message: { key?: string | null; value: Buffer | null; headers?: KafkaHeaders }): Promise<IncomingMessage>;
  /** Offsets committed per topic-partition (the next offset to read). */
  readonly committed: Map<string, string>;
};

export function fakeKafka(): FakeKafka {
  const sent: OutgoingMessage[] = [];
  const batches: OutgoingMessage[][] = [];
  const committed = new Map<string, string>();
  const handlers = new Map<string, ConsumerHandler>();
  const offsets = new Map<string, number>();
  const produced = new Map<string, number>();
  let failures: { count: number; error: Error } = { count: 0, error: new Error('broker unavailable') };
  let hold: Promise<void> | null = null;
  let calls = 0;
  let producers = 0;

  const producer = (): KafkaProducer => ({
    async send(messages): Promise<readonly DeliveryReport[]> {
      calls += 1;
      if (hold) await hold;
      if (failures.count > 0) {
        failures = { ...failures, count: failures.count - 1 };
        throw failures.error;
      }
      sent.push(...messages);
      batches.push([...messages]);
      // Every topic has one partition; offsets count the messages sent to it.
      return messages.map((m) => {
        const offset = produced.get(m.topic) ?? 0;
        produced.set(m.topic, offset + 1);
        return { topic: m.topic, partition: 0, baseOffset: String(offset) };
      });
    },
    close: async () => {},
  });

  const client: KafkaClient = {
    async producer() {
      producers += 1;
      return producer();
    },
    async consumer(options): Promise<KafkaConsumer> {
      return {
        async run(handler) {
          for (const topic of options.topics) handlers.set(topic, handler);
        },
        pause() {},
        resume() {},
        async close() {
          for (const topic of options.topics) handlers.delete(topic);
        },
      };
    },
    async admin(): Promise<KafkaAdmin> {
      // Topics always exist as asked: the fake keeps no topic metadata.
      return {
        ensureTopics: async (specs) => specs.map((s) => ({ name: s.name, status: 'created' as const, mismatches: [] })),
        describeTopics: async () => [],
        brokerCount: async () => 1,
        // One group's view: the fake keeps commits per topic-partition, whoever consumed.
        committedOffsets: async (_groupId, topic) => new Map([[0, committed.get(`${topic}/0`) ?? '-1']]),
        endOffsets: async () => new Map([[0, '0']]),
        close: async () => {},
      };
    },
  };

  return {
    client,
    sent,
    batches,
    sendCalls: () => calls,
    failNextSends(count, error = new Error('broker unavailable')) {
      failures = { count, error };
    },
    holdSends() {
      let release = () => {};
      hold = new Promise<void>((resolve) => {
        release = () => {
          hold = null;
          resolve();
        };
      });
      return release;
    },
    producersCreated: () => producers,
    async deliver(topic, m) {
      const handler = handlers.get(topic);
      if (handler === undefined) throw new Error(`no consumer runs on ${topic}`);
      const offset = offsets.get(topic) ?? 0;
      offsets.set(topic, offset + 1);
      const message: IncomingMessage = {
        topic,
        partition: 0,
        offset: String(offset),
        key: m.key === undefined || m.key === null ? null : Buffer.from(m.key),
        value: m.value,
        headers: m.headers ?? {},
        timestampMs: Date.now(),
      };
      if ('eachMessage' in handler) await handler.eachMessage(message);
      else await handler.eachBatch({ topic, partition: 0, messages: [message] });
      committed.set(`${topic}/0`, String(offset + 1));
      return message;
    },
    committed,
  };
}
