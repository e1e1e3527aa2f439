/**
 * The run loop the control plane's Kafka consumers share (commands, host reports): each message
 * is handled, and only then committed; a message whose handling failed is left uncommitted, so it
 * is delivered again after the consumer restarts (or to the partition's next owner). A consumer
 * that cannot start releases its consumer and producer.
 */
import type { ConsumerOptions, IncomingMessage, KafkaClient, KafkaConsumer, KafkaProducer, Log, OutgoingMessage } from './kafka-port.ts';

/** The headers a dead letter carries besides the original ones: where it came from and why. */
export const dlqHeaders = {
  sourceTopic: 'vcp-dlq-source-topic',
  sourcePartition: 'vcp-dlq-source-partition',
  sourceOffset: 'vcp-dlq-source-offset',
  reason: 'vcp-dlq-reason',
  detail: 'vcp-dlq-detail',
  at: 'vcp-dlq-at',
} as const;

const dlqDetailLengthMax = 1000;

/** The dead letter of `message`: its key, bytes and headers, plus where it came from and why. */
export function deadLetterOf(message: IncomingMessage, dlqTopic: string, reason: string, detail: string, atMs: number): OutgoingMessage {
  return {
    topic: dlqTopic,
    key: message.key?.toString('utf8') ?? null,
    value: message.value ?? Buffer.alloc(0),
    headers: {
      ...message.headers,
      [dlqHeaders.sourceTopic]: message.topic,
      [dlqHeaders.sourcePartition]: String(message.partition),
      [dlqHeaders.sourceOffset]: message.offset,
      [dlqHeaders.reason]: reason,
      [dlqHeaders.detail]: detail.slice(0, dlqDetailLengthMax),
      [dlqHeaders.at]: new Date(atMs).toISOString(),
    },
  };
}

/** A consumer and the producer of its answers and dead letters; neither is left open on failure. */
export async function openHandledConsumer(client: KafkaClient, options: ConsumerOptions): Promise<{ consumer: KafkaConsumer; producer: KafkaProducer }> {
  const producer = await client.producer();
  try {
    return { consumer: await client.consumer(options), producer };
  } catch (error) {
    await producer.close().catch(() => undefined);
    throw error;
  }
}

/** Closes both, logging (not throwing) what fails. */
export async function closeHandledConsumer(consumer: KafkaConsumer, producer: KafkaProducer, what: string, log: Log): Promise<void> {
  await consumer.close().catch((error: unknown) => log.warn({ err: error }, `closing the ${what} consumer failed`));
  await producer.close().catch((error: unknown) => log.warn({ err: error }, `closing the ${what} producer failed`));
}

export const errorText = (error: unknown): string => (error instanceof Error ? `${error.name}: ${error.message}` : String(error));

export async function runHandledConsumer(options: {
  readonly consumer: KafkaConsumer;
  readonly producer: KafkaProducer;
  readonly handle: (message: IncomingMessage) => Promise<void>;
  /** The error the handler throws because the consumer is closing: not a failure. */
  readonly isClosing: (error: unknown) => boolean;
  /** Called with every real failure (for the stats' lastError). */
  readonly onFailure: (error: unknown) => void;
  /** What a message is, for the log line ("command message", "host report"). */
  readonly what: string;
  readonly log: Log;
}): Promise<void> {
  const { consumer, producer, handle, isClosing, onFailure, what, log } = options;
  try {
    await consumer.run({
      eachMessage: async (message) => {
        try {
          await handle(message);
        } catch (error) {
          if (!isClosing(error)) {
            onFailure(error);
            log.error({ err: error, topic: message.topic, partition: message.partition, offset: message.offset }, `${what} not processed; it will be delivered again`);
          }
          throw error;
        }
      },
    });
  } catch (error) {
    await consumer.close().catch(() => undefined);
    await producer.close().catch(() => undefined);
    throw error;
  }
}
