/**
 * The run loop the control plane's Kafka consumers share (commands, host reports): each message
 * is handled, and only then committed; a message whose handling failed is left uncommitted, so it
 * is delivered again after the consumer restarts (or to the partition's next owner). A consumer
 * that cannot start releases its consumer and producer.
 */
import type { IncomingMessage, KafkaConsumer, KafkaProducer, Log } from './kafka-port.ts';

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
