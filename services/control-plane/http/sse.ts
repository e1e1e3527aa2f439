/**
 * Server-sent event streams read straight from the store: catch-up and live are one loop
 * (read after the last position sent, wait for a newer event, repeat), so there is no gap and
 * no duplicate between the two, and a slow client only slows its own loop (back-pressure).
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { EventStore, RecordedEvent } from '../../eventstore/index.ts';
import { followLog } from '../daemon-gateway.ts';
import type { Projections } from '../projections.ts';

/** Comment line sent when idle so proxies and clients know the stream is alive. */
export const keepAliveMs = 15_000;
/** Above this much unsent output, pushed (extra) messages are dropped for that client. */
export const extraBufferBytesMax = 1024 * 1024;

export type SseOptions = {
  readonly after: number;
  /** Which events to send; the others only advance the position. */
  readonly filter: (event: RecordedEvent) => boolean;
  /** SSE `event:` name for each sent event. */
  readonly eventName: (event: RecordedEvent) => string;
  /** Send `event: position` after each batch, so a filtered consumer can checkpoint past it. */
  readonly sendPositions: boolean;
  readonly onOpen?: () => void;
  /** Registers a function that ends the stream (server shutdown); returns an unregister. */
  readonly registerCloser?: (close: () => void) => () => void;
  /** Other messages pushed while the stream is open (no id: not replayed); returns an unsubscribe. */
  readonly extra?: ((send: (event: string, data: string) => void) => () => void) | undefined;
  readonly onClose?: () => void;
};

export async function streamEvents(
  request: FastifyRequest,
  reply: FastifyReply,
  store: EventStore,
  projections: Projections,
  options: SseOptions,
): Promise<void> {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  let open = true;
  const ended = new AbortController();
  const close = () => {
    open = false;
    ended.abort();
  };
  const unregisterCloser = options.registerCloser?.(close);
  request.raw.on('close', close);
  res.on('close', close);
  res.on('error', close);
  options.onOpen?.();
  // Pushed messages are dropped, not queued, while the client is slow: telemetry is a live view.
  const stopExtra = options.extra?.((event, data) => {
    if (open && res.writableLength < extraBufferBytesMax) res.write(`event: ${event}\ndata: ${data}\n\n`);
  });
  const write = async (chunk: string): Promise<void> => {
    if (!open) return;
    if (!res.write(chunk)) await new Promise<void>((resolve) => {
      const done = () => {
        res.off('drain', done);
        res.off('close', done);
        resolve();
      };
      res.on('drain', done);
      res.on('close', done);
    });
  };
  try {
    await write(`retry: 1000\n: connected at position ${options.after}\n\n`);
    for await (const step of followLog(store, projections, options.after, keepAliveMs, ended.signal)) {
      if (step.kind === 'idle') {
        await write(': keep-alive\n\n');
        continue;
      }
      for (const event of step.events) {
        if (!open) break;
        if (options.filter(event)) {
          await write(`id: ${event.globalPosition}\nevent: ${options.eventName(event)}\ndata: ${JSON.stringify(event)}\n\n`);
        }
      }
      if (options.sendPositions && open) await write(`id: ${step.position}\nevent: position\ndata: {"position":${step.position}}\n\n`);
    }
  } catch (error) {
    request.log.warn({ err: error }, 'event stream ended with an error');
  } finally {
    unregisterCloser?.();
    stopExtra?.();
    options.onClose?.();
    if (!res.writableEnded) res.end();
  }
}

/** The resume position: Last-Event-ID (a reconnecting EventSource) wins over ?after=. */
export function resumePosition(request: FastifyRequest, after: number | undefined): number | string {
  const header = request.headers['last-event-id'];
  if (typeof header === 'string' && header.length > 0) {
    const value = Number(header);
    return Number.isSafeInteger(value) && value >= 0 ? value : 'Last-Event-ID must be a non-negative integer';
  }
  return after ?? 0;
}
