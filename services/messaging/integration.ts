/**
 * Kafka for a running control plane, in one call: make sure the topics exist (reporting, not
 * changing, any that differ), relay the event store to vcp.events and vcp.host-directives, carry
 * out the commands of vcp.commands, and (given the daemon gateway) what node daemons report on
 * vcp.host-reports. The control plane's server wires it in when VCP_KAFKA_BROKERS is set
 * (parseKafkaConfig returns null otherwise).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Projections } from '../control-plane/projections.ts';
import type { EventStore } from '../eventstore/index.ts';
import { type EventCodec, createCodec } from './codec.ts';
import { openSqliteCommandOutcomeStore } from './command-outcomes.ts';
import { type CommandCodec, createCommandCodec, loadCommandSchemaSet } from './command-schemas.ts';
import { type HostReportCodec, createHostReportCodec, loadHostReportSchemaSet } from './host-report-schemas.ts';
import { type CommandConsumer, type CommandConsumerStats, type CommandTargets, startCommandConsumer } from './commands.ts';
import { type HostReportConsumer, type HostReportConsumerStats, type HostReportTargets, startHostReportConsumer } from './host-reports.ts';
import { type KafkaConfig, consumerGroups, describeKafkaConfig, resolveReplicationFactor, topicNames, topicSpecs } from './kafka-config.ts';
import type { KafkaClient, Log, TopicReport } from './kafka-port.ts';
import { createKafkajsClient } from './kafkajs-adapter.ts';
import { type Relay, type RelayStats, fileCheckpoint, startRelay } from './relay.ts';
import { registryFraming } from './schema-registry.ts';
import { loadSchemaSet } from './schemas.ts';

export type KafkaIntegrationOptions = CommandTargets & {
  readonly store: EventStore;
  readonly config: KafkaConfig;
  /** The control plane's data dir: the relay's checkpoint and the command outcomes live here. */
  readonly dataDir: string;
  readonly log: Log;
  /** Injected in tests; by default the kafkajs adapter over `config`. */
  readonly client?: KafkaClient;
  /** Consumer group of the command consumer (default `<prefix>vcp-control-plane`). */
  readonly commandGroupId?: string;
  /**
   * The control plane's DaemonGateway: given, the reports of node daemons in Kafka mode
   * (vcp.host-reports) are consumed and carried out through it, as the HTTP routes do.
   */
  readonly gateway?: HostReportTargets;
  /**
   * The control plane's projections: given, the relay publishes an event only once they show it,
   * so a daemon that reads the API on a directive finds it applied (as over HTTP).
   */
  readonly projections?: Pick<Projections, 'waitFor'>;
};

export type KafkaIntegrationStats = {
  readonly relay: RelayStats;
  /** Restarts of the relay after a crash. */
  readonly relayRestarts: number;
  readonly commands: CommandConsumerStats;
  /** The consumer of vcp.host-reports (null without a gateway). */
  readonly hostReports: HostReportConsumerStats | null;
  /** What ensureTopics found at start-up. */
  readonly topics: readonly TopicReport[];
  /** How values are framed: Avro single-object encoding, or Confluent framing with this registry. */
  readonly wire: { readonly framing: 'single-object' | 'confluent'; readonly schemaRegistry: string | null };
};

export type KafkaIntegration = {
  stats(): KafkaIntegrationStats;
  close(): Promise<void>;
};

export const relayCheckpointFile = 'kafka-relay-checkpoint.json';
export const commandOutcomesFile = 'kafka-command-outcomes.db';
/** A crashed relay is restarted after this (doubling per consecutive crash, up to the max). */
const relayRestartDelayMs = 1_000;
const relayRestartDelayMsMax = 30_000;

/**
 * Rejects (having released what it opened) if Kafka cannot be reached to check the topics, or
 * the relay's checkpoint cannot be read: the caller decides whether that stops start-up.
 */
export async function startKafkaIntegration(options: KafkaIntegrationOptions): Promise<KafkaIntegration> {
  const { store, config, dataDir, log } = options;
  const client = options.client ?? createKafkajsClient(config, log);
  const topics = topicNames(config.topicPrefix);
  log.info({ kafka: describeKafkaConfig(config) }, 'starting the Kafka integration');

  let reports: readonly TopicReport[];
  try {
    const admin = await client.admin();
    try {
      const replicationFactor = resolveReplicationFactor(config, await admin.brokerCount());
      reports = await admin.ensureTopics(topicSpecs(config, replicationFactor));
    } finally {
      await admin.close().catch(() => undefined);
    }
  } catch (error) {
    const why = error instanceof Error ? error.message : String(error);
    throw new Error(`Kafka at ${config.brokers.join(',')} (VCP_KAFKA_BROKERS): cannot check the topics: ${why}`, { cause: error });
  }
  for (const report of reports) {
    if (report.status === 'mismatch') log.warn({ topic: report.name, mismatches: report.mismatches }, 'Kafka topic differs from what vcp expects; left unchanged');
    else log.info({ topic: report.name, status: report.status }, 'Kafka topic ready');
  }

  // Confluent framing when a schema registry is configured: every schema vcp writes is
  // registered now, so a registry that refuses one (an incompatible change) stops start-up.
  const codecs: { events?: EventCodec; commands?: CommandCodec; reports?: HostReportCodec } = {};
  const registry = registryFraming(config.schemaRegistry);
  if (registry !== null) {
    codecs.events = createCodec(loadSchemaSet(), registry);
    codecs.commands = createCommandCodec(loadCommandSchemaSet(), registry);
    codecs.reports = createHostReportCodec(loadHostReportSchemaSet(), registry);
    try {
      await codecs.events.prepare();
      await codecs.commands.prepare();
      await codecs.reports.prepare();
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      throw new Error(`schema registry at ${registry.url} (VCP_SCHEMA_REGISTRY_URL): ${why}`, { cause: error });
    }
    log.info({ schemaRegistry: registry.url }, 'schemas registered: messages use Confluent schema-registry framing');
  }

  mkdirSync(dataDir, { recursive: true });
  const checkpoint = fileCheckpoint(join(dataDir, relayCheckpointFile));
  const projections = options.projections;
  const relayOptions = {
    store,
    client,
    topics,
    checkpoint,
    log,
    ...(codecs.events === undefined ? {} : { codec: codecs.events }),
    ...(projections === undefined ? {} : { applied: (position: number) => projections.waitFor(position) }),
  };
  let relay: Relay = await startRelay(relayOptions);
  let relayRestarts = 0;
  let closing = false;
  let restartTimer: ReturnType<typeof setTimeout> | null = null;

  // A crashed relay (its checkpoint could not be written, the store failed) starts again from
  // its checkpoint after a pause, longer after each crash that made no progress; at most the
  // unacknowledged batch is published twice.
  const watch = (current: Relay, crashesWithoutProgress: number) => {
    const startedAt = current.stats().relayedPosition;
    void current.ended.then((error) => {
      if (error === null || closing) return;
      restart(current.stats().relayedPosition > startedAt ? 0 : crashesWithoutProgress + 1);
    });
  };
  const restart = (crashesWithoutProgress: number) => {
    const delayMs = Math.min(relayRestartDelayMsMax, relayRestartDelayMs * 2 ** Math.min(crashesWithoutProgress, 16));
    log.warn({ delayMs }, 'restarting the relay after a crash');
    restartTimer = setTimeout(() => {
      restartTimer = null;
      if (closing) return;
      startRelay(relayOptions).then(
        (next) => {
          relay = next;
          relayRestarts += 1;
          if (closing) void next.close();
          else watch(next, crashesWithoutProgress);
        },
        (error: unknown) => {
          log.error({ err: error }, 'the relay could not restart');
          restart(crashesWithoutProgress + 1);
        },
      );
    }, delayMs);
    restartTimer.unref?.();
  };
  watch(relay, 0);

  const outcomes = openSqliteCommandOutcomeStore(join(dataDir, commandOutcomesFile));
  let commands: CommandConsumer;
  try {
    commands = await startCommandConsumer({
      client,
      topics,
      groupId: options.commandGroupId ?? consumerGroups(config.topicPrefix).commands,
      targets: { service: options.service, migrations: options.migrations, maintenance: options.maintenance },
      store,
      outcomes,
      log,
      ...(codecs.commands === undefined ? {} : { codec: codecs.commands }),
    });
  } catch (error) {
    closing = true;
    await relay.close();
    outcomes.close();
    throw error;
  }

  let hostReports: HostReportConsumer | null = null;
  if (options.gateway !== undefined) {
    try {
      hostReports = await startHostReportConsumer({
        client,
        topics,
        groupId: consumerGroups(config.topicPrefix).hostReports,
        gateway: options.gateway,
        log,
        ...(codecs.reports === undefined ? {} : { codec: codecs.reports }),
      });
    } catch (error) {
      closing = true;
      await commands.close();
      await relay.close();
      outcomes.close();
      throw error;
    }
  }

  let closed: Promise<void> | null = null;
  return {
    stats: () => ({
      relay: relay.stats(),
      relayRestarts,
      commands: commands.stats(),
      hostReports: hostReports?.stats() ?? null,
      topics: reports,
      wire: { framing: registry === null ? 'single-object' : 'confluent', schemaRegistry: registry?.url ?? null },
    }),
    close() {
      closed ??= (async () => {
        closing = true;
        if (restartTimer !== null) clearTimeout(restartTimer);
        await hostReports?.close();
        await commands.close();
        await relay.close();
        outcomes.close();
      })();
      return closed;
    },
  };
}
