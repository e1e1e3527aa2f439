/**
 * Catch-up-then-live subscription over any adapter's readAll, shared by the adapters.
 *
 * One loop per subscription reads the next batch after the last delivered position, awaits the
 * handler, and only then reads again (back-pressure: a slow handler slows the reads, nothing
 * queues up in memory). Because the next read always starts right after the last delivered
 * event, delivery has no gap and no duplicate by construction; the loop also asserts it.
 * When caught up, it sleeps until an in-process append notifies it or the poll interval
 * elapses (the poll is what sees appends made by other processes on the same store).
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { RecordedEvent, SubscribeOptions, Subscription } from './port.ts';
import { optionCount } from './rules.ts';

/** Wakes live subscriptions once an append has committed. */
export class AppendNotifier {
  /** Bumped on every notify, so a loop can tell whether an append committed during its read. */
  generation = 0;
  readonly #listeners = new Set<() => void>();

  notify(): void {
    this.generation += 1;
    for (const listener of [...this.#listeners]) listener();
  }

  listen(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

export interface SubscriptionSource {
  /** Reads events with globalPosition > after, at most limit, in global order. */
  readonly readAll: (after: number, limit: number) => Promise<readonly RecordedEvent[]>;
  readonly notifier: AppendNotifier;
  /** How often a caught-up subscription re-reads without a notification; null: never. */
  readonly pollIntervalMs: number | null;
  /** The adapter's cap on one batch. */
  readonly batchSizeMax: number;
}

/** A subscription as the store tracks it, so that store.close() can end it quietly. */
export interface TrackedSubscription extends Subscription {
  /** Resolves once the loop has ended, whatever the reason. */
  readonly ended: Promise<void>;
}

export function startSubscription(source: SubscriptionSource, options: SubscribeOptions): TrackedSubscription {
  if (typeof options !== 'object' || options === null) throw new TypeError('subscribe options must be an object');
  const { onEvents, onError } = options;
  if (typeof onEvents !== 'function') throw new TypeError('subscribe onEvents must be a function');
  if (onError !== undefined && typeof onError !== 'function') {
    throw new TypeError('subscribe onError must be a function when given');
  }
  let position = optionCount(options.after, 'subscribe after', 0, 0);
  const batchSizeMax = Math.min(
    optionCount(options.batchSizeMax, 'subscribe batchSizeMax', source.batchSizeMax, 1),
    source.batchSizeMax,
  );
  let stopping = false;
  let wake: (() => void) | null = null;

  const sleep = (): Promise<void> =>
    new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        if (timer !== undefined) clearTimeout(timer);
        unlisten();
        wake = null;
        resolve();
      };
      const unlisten = source.notifier.listen(done);
      wake = done;
      if (source.pollIntervalMs !== null) timer = setTimeout(done, source.pollIntervalMs);
    });

  const run = async (): Promise<void> => {
    while (!stopping) {
      const generationSeen = source.notifier.generation;
      const events = await source.readAll(position, batchSizeMax);
      if (stopping) return;
      if (events.length === 0) {
        // An append that committed while we were reading has already notified; re-read at
        // once instead of sleeping through it.
        if (source.notifier.generation === generationSeen) await sleep();
        continue;
      }
      for (const [index, event] of events.entries()) {
        if (event.globalPosition !== position + 1 + index) {
          throw new Error(
            `subscription invariant broken: expected global position ${position + 1 + index}, read ${event.globalPosition}`,
          );
        }
      }
      const positionLast = events[events.length - 1]!.globalPosition;
      await onEvents(events);
      // Advanced only once the handler has succeeded, so position() is a safe checkpoint:
      // resuming after it redelivers a batch whose handling failed, never skips it.
      position = positionLast;
      // Let timers and I/O run between batches: the reads of a synchronous adapter and a
      // synchronous handler would otherwise hold the event loop for a whole catch-up.
      await yieldToEventLoop();
    }
  };

  const ended = run().then(
    () => undefined,
    (error: unknown) => {
      stopping = true;
      reportError(error, onError);
    },
  );

  return {
    position: () => position,
    close: async () => {
      stopping = true;
      wake?.();
      await ended;
    },
    ended,
  };
}

/**
 * The live subscriptions of one store: started with the store's reader, woken by its appends,
 * and ended quietly (running handlers awaited) when the store closes.
 */
export class SubscriptionHub {
  readonly notifier = new AppendNotifier();
  readonly #subscriptions = new Set<TrackedSubscription>();
  readonly #source: SubscriptionSource;

  constructor(source: Omit<SubscriptionSource, 'notifier'>) {
    this.#source = { ...source, notifier: this.notifier };
  }

  subscribe(options: SubscribeOptions): Subscription {
    const subscription = startSubscription(this.#source, options);
    this.#subscriptions.add(subscription);
    void subscription.ended.then(() => this.#subscriptions.delete(subscription));
    return { position: subscription.position, close: subscription.close };
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.#subscriptions].map((subscription) => subscription.close()));
  }
}

function reportError(error: unknown, onError: ((error: unknown) => void) | undefined): void {
  if (onError === undefined) {
    // Nobody asked to hear about it, but a subscription must not die silently (its consumer
    // would go stale forever): surface it as an uncaught error.
    queueMicrotask(() => {
      throw error;
    });
    return;
  }
  try {
    onError(error);
  } catch (secondary) {
    queueMicrotask(() => {
      throw secondary;
    });
  }
}
