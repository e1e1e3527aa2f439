/**
 * Kafka settings from the environment, validated once at start-up: a bad value stops start-up
 * with a message naming the variable. Also the topic names and their specs.
 */
import { readFileSync } from 'node:fs';
import type { TopicSpec } from './kafka-port.ts';
import type { SchemaRegistryConfig } from './schema-registry.ts';

export type SaslMechanism = 'plain' | 'scram-sha-256' | 'scram-sha-512';

export type KafkaConfig = {
  /** host:port of the bootstrap brokers. */
  readonly brokers: readonly string[];
  readonly clientId: string;
  /** null: plaintext. `ca`: PEM of the CA to trust instead of Node's bundled roots (null: the bundled roots). */
  readonly ssl: { readonly ca: string | null; readonly caFile: string | null } | null;
  readonly sasl: { readonly mechanism: SaslMechanism; readonly username: string; readonly password: string } | null;
  /** Prepended to every topic name (e.g. `staging.` → `staging.vcp.events`); '' by default. */
  readonly topicPrefix: string;
  /** Partitions of each topic vcp creates. */
  readonly partitions: number;
  /** Replicas of each topic vcp creates; null = min(3, brokers in the cluster). */
  readonly replicationFactor: number | null;
  /** Given: Confluent schema-registry framing (schema-registry.ts) instead of single-object encoding. */
  readonly schemaRegistry: SchemaRegistryConfig | null;
};

export type KafkaConfigResult =
  /** config null: Kafka is not configured (VCP_KAFKA_BROKERS unset): the control plane runs without it. */
  | { readonly ok: true; readonly config: KafkaConfig | null; readonly warnings: readonly string[] }
  | { readonly ok: false; readonly setting: string; readonly message: string };

export const kafkaEnv = {
  brokers: 'VCP_KAFKA_BROKERS',
  clientId: 'VCP_KAFKA_CLIENT_ID',
  ssl: 'VCP_KAFKA_SSL',
  caFile: 'VCP_KAFKA_CA_FILE',
  saslMechanism: 'VCP_KAFKA_SASL_MECHANISM',
  saslUsername: 'VCP_KAFKA_SASL_USERNAME',
  saslPassword: 'VCP_KAFKA_SASL_PASSWORD',
  topicPrefix: 'VCP_KAFKA_TOPIC_PREFIX',
  partitions: 'VCP_KAFKA_PARTITIONS',
  replicationFactor: 'VCP_KAFKA_REPLICATION_FACTOR',
  schemaRegistryUrl: 'VCP_SCHEMA_REGISTRY_URL',
  schemaRegistryUsername: 'VCP_SCHEMA_REGISTRY_USERNAME',
  schemaRegistryPassword: 'VCP_SCHEMA_REGISTRY_PASSWORD',
} as const;

export const kafkaConfigDefaults = { clientId: 'vcp-control-plane', partitions: 6 } as const;
export const brokersCountMax = 100;
export const partitionsMax = 1000;
export const replicationFactorMax = 7;
/** Kafka's own limit on topic names is 249; the longest suffix is `vcp.command-results`. */
export const topicPrefixLengthMax = 100;

const hostPortPattern = /^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}[A-Za-z0-9])?):([0-9]{1,5})$/;
const clientIdPattern = /^[A-Za-z0-9._-]{1,100}$/;
const topicPrefixPattern = /^[A-Za-z0-9._-]*$/;

class Invalid extends Error {
  constructor(
    readonly setting: string,
    message: string,
  ) {
    super(`${setting}: ${message}`);
  }
}

type Env = { readonly [name: string]: string | undefined };

/** Parses the VCP_KAFKA_* variables of `env`. Never throws. */
export function parseKafkaConfig(env: Env = process.env): KafkaConfigResult {
  try {
    return parse(env);
  } catch (error) {
    if (error instanceof Invalid) return { ok: false, setting: error.setting, message: error.message };
    throw error;
  }
}

function parse(env: Env): KafkaConfigResult {
  const get = (name: string): string | undefined => {
    const value = env[name];
    return value === undefined || value.trim() === '' ? undefined : value.trim();
  };
  const brokersText = get(kafkaEnv.brokers);
  if (brokersText === undefined) {
    const stray = Object.values(kafkaEnv).find((name) => name !== kafkaEnv.brokers && get(name) !== undefined);
    if (stray !== undefined) throw new Invalid(kafkaEnv.brokers, `is required when ${stray} is set (a comma-separated list of host:port)`);
    return { ok: true, config: null, warnings: [] };
  }
  const brokers = brokersText.split(',').map((b) => b.trim());
  if (brokers.length > brokersCountMax) throw new Invalid(kafkaEnv.brokers, `at most ${brokersCountMax} brokers, got ${brokers.length}`);
  for (const broker of brokers) {
    const match = hostPortPattern.exec(broker);
    const port = match ? Number(match[1]) : 0;
    if (!match || port < 1 || port > 65535) {
      throw new Invalid(kafkaEnv.brokers, `'${broker}' is not host:port (a comma-separated list such as kafka-1:9092,kafka-2:9092)`);
    }
  }

  const clientId = get(kafkaEnv.clientId) ?? kafkaConfigDefaults.clientId;
  if (!clientIdPattern.test(clientId)) throw new Invalid(kafkaEnv.clientId, `'${clientId}' must be 1 to 100 letters, digits, '.', '_' or '-'`);

  const sslText = get(kafkaEnv.ssl);
  if (sslText !== undefined && sslText !== 'true' && sslText !== 'false') throw new Invalid(kafkaEnv.ssl, `must be true or false, got '${sslText}'`);
  const sslOn = sslText === 'true';
  const caFile = get(kafkaEnv.caFile) ?? null;
  if (caFile !== null && !sslOn) throw new Invalid(kafkaEnv.caFile, `is set but ${kafkaEnv.ssl} is not true: a CA is only used for TLS`);
  let ca: string | null = null;
  if (caFile !== null) {
    try {
      ca = readFileSync(caFile, 'utf8');
    } catch (error) {
      throw new Invalid(kafkaEnv.caFile, `cannot read ${caFile}: ${error instanceof Error ? error.message : String(error)}`);
    }
    if (!ca.includes('-----BEGIN CERTIFICATE-----')) throw new Invalid(kafkaEnv.caFile, `${caFile} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  }

  const mechanismText = get(kafkaEnv.saslMechanism);
  const username = env[kafkaEnv.saslUsername];
  const password = env[kafkaEnv.saslPassword];
  let sasl: KafkaConfig['sasl'] = null;
  if (mechanismText === undefined) {
    if (username !== undefined || password !== undefined) {
      throw new Invalid(kafkaEnv.saslMechanism, `is required when ${username !== undefined ? kafkaEnv.saslUsername : kafkaEnv.saslPassword} is set (plain, scram-sha-256 or scram-sha-512)`);
    }
  } else {
    const mechanism = mechanismText.toLowerCase();
    if (mechanism !== 'plain' && mechanism !== 'scram-sha-256' && mechanism !== 'scram-sha-512') {
      throw new Invalid(kafkaEnv.saslMechanism, `must be plain, scram-sha-256 or scram-sha-512, got '${mechanismText}'`);
    }
    if (username === undefined || username === '') throw new Invalid(kafkaEnv.saslUsername, `is required with ${kafkaEnv.saslMechanism}=${mechanism}`);
    if (password === undefined || password === '') throw new Invalid(kafkaEnv.saslPassword, `is required with ${kafkaEnv.saslMechanism}=${mechanism}`);
    sasl = { mechanism, username, password };
  }

  const topicPrefix = get(kafkaEnv.topicPrefix) ?? '';
  if (topicPrefix.length > topicPrefixLengthMax || !topicPrefixPattern.test(topicPrefix)) {
    throw new Invalid(kafkaEnv.topicPrefix, `'${topicPrefix}' must be at most ${topicPrefixLengthMax} letters, digits, '.', '_' or '-'`);
  }
  const partitions = integerSetting(get(kafkaEnv.partitions), kafkaEnv.partitions, 1, partitionsMax) ?? kafkaConfigDefaults.partitions;
  const replicationFactor = integerSetting(get(kafkaEnv.replicationFactor), kafkaEnv.replicationFactor, 1, replicationFactorMax);

  const warnings: string[] = [];
  if (sasl?.mechanism === 'plain' && !sslOn) {
    warnings.push(`${kafkaEnv.saslMechanism}=plain without ${kafkaEnv.ssl}=true sends the password in clear text`);
  }
  const schemaRegistry = parseSchemaRegistry(get(kafkaEnv.schemaRegistryUrl), env[kafkaEnv.schemaRegistryUsername], env[kafkaEnv.schemaRegistryPassword]);
  if (schemaRegistry?.username != null && schemaRegistry.url.startsWith('http:')) {
    warnings.push(`${kafkaEnv.schemaRegistryUsername} with an http: ${kafkaEnv.schemaRegistryUrl} sends the password in clear text`);
  }
  return {
    ok: true,
    config: { brokers, clientId, ssl: sslOn ? { ca, caFile } : null, sasl, topicPrefix, partitions, replicationFactor, schemaRegistry },
    warnings,
  };
}

function parseSchemaRegistry(urlText: string | undefined, username: string | undefined, password: string | undefined): SchemaRegistryConfig | null {
  if (urlText === undefined) {
    if (username !== undefined || password !== undefined) {
      throw new Invalid(kafkaEnv.schemaRegistryUrl, `is required when ${username !== undefined ? kafkaEnv.schemaRegistryUsername : kafkaEnv.schemaRegistryPassword} is set`);
    }
    return null;
  }
  let url: URL;
  try {
    url = new URL(urlText);
  } catch {
    throw new Invalid(kafkaEnv.schemaRegistryUrl, `'${urlText}' is not a URL (such as http://schema-registry:8081)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Invalid(kafkaEnv.schemaRegistryUrl, `must be http: or https:, got ${url.protocol}`);
  if (url.username !== '' || url.password !== '') {
    throw new Invalid(kafkaEnv.schemaRegistryUrl, `must not carry credentials: set ${kafkaEnv.schemaRegistryUsername} and ${kafkaEnv.schemaRegistryPassword}`);
  }
  if (url.search !== '' || url.hash !== '') throw new Invalid(kafkaEnv.schemaRegistryUrl, 'must have no query or fragment');
  if ((username === undefined || username === '') !== (password === undefined || password === '')) {
    throw new Invalid(username ? kafkaEnv.schemaRegistryPassword : kafkaEnv.schemaRegistryUsername, `is required with ${username ? kafkaEnv.schemaRegistryUsername : kafkaEnv.schemaRegistryPassword} (basic auth)`);
  }
  return { url: url.href.replace(/\/+$/, ''), username: username || null, password: password || null };
}

function integerSetting(text: string | undefined, setting: string, min: number, max: number): number | null {
  if (text === undefined) return null;
  const value = Number(text);
  if (!/^[0-9]+$/.test(text) || value < min || value > max) throw new Invalid(setting, `must be a whole number from ${min} to ${max}, got '${text}'`);
  return value;
}

/** The config without secrets, for logs. */
export function describeKafkaConfig(config: KafkaConfig): object {
  return {
    brokers: config.brokers,
    clientId: config.clientId,
    ssl: config.ssl === null ? false : { caFile: config.ssl.caFile },
    sasl: config.sasl === null ? null : { mechanism: config.sasl.mechanism, username: config.sasl.username, password: '<redacted>' },
    topicPrefix: config.topicPrefix,
    partitions: config.partitions,
    replicationFactor: config.replicationFactor ?? 'min(3, brokers)',
    schemaRegistry: config.schemaRegistry === null ? null : { url: config.schemaRegistry.url, username: config.schemaRegistry.username },
  };
}

// ---------------------------------------------------------------- topics

export type TopicNames = {
  /** Every stored event, in stream order per key (key = streamId). Kept forever. */
  readonly events: string;
  /** Events a node daemon must act on (key = hostId). */
  readonly directives: string;
  /** What node daemons report: facts, migration facts, fencing, telemetry (key = hostId); consumed by the control plane. */
  readonly reports: string;
  /** Commands from platform teams (key = the entity, e.g. partitionId). */
  readonly commands: string;
  /** One result per command (key = correlationId). */
  readonly commandResults: string;
  /** Messages no consumer could process, with why and where they came from. */
  readonly dlq: string;
};

export function topicNames(prefix = ''): TopicNames {
  return {
    events: `${prefix}vcp.events`,
    directives: `${prefix}vcp.host-directives`,
    reports: `${prefix}vcp.host-reports`,
    commands: `${prefix}vcp.commands`,
    commandResults: `${prefix}vcp.command-results`,
    dlq: `${prefix}vcp.dlq`,
  };
}

/**
 * Consumer groups: the control plane's (commands; host reports) and one per node daemon (its
 * host's directives). Prefixed like the topics, so two vcp installations can share a cluster.
 */
export const consumerGroups = (prefix = '') => ({
  commands: `${prefix}vcp-control-plane`,
  hostReports: `${prefix}vcp-control-plane-host-reports`,
  node: (hostId: string) => `${prefix}vcp-node-${hostId}`,
});

const dayMs = 24 * 60 * 60 * 1000;
/**
 * The largest record batch the event topics accept. The store accepts events of up to 1 MiB of
 * data (eventDataBytesMax), more than Kafka's default max.message.bytes (1 MiB including
 * overhead), so the event topics allow 4 MiB: a single largest event always fits.
 */
export const eventTopicMessageBytesMax = 4 * 1024 * 1024;

/** Replicas when VCP_KAFKA_REPLICATION_FACTOR is unset: 3 where the cluster has them, else all brokers. */
export const resolveReplicationFactor = (config: Pick<KafkaConfig, 'replicationFactor'>, brokerCount: number): number =>
  config.replicationFactor ?? Math.max(1, Math.min(3, brokerCount));

/**
 * What vcp creates. vcp.events is the log itself, kept forever (retention.ms = -1, no size
 * limit); the others are working queues: 7 days, the DLQ 30 so someone can look at it.
 * min.insync.replicas 2 once there are 3 replicas, so acks=all survives one broker down.
 */
export function topicSpecs(config: Pick<KafkaConfig, 'topicPrefix' | 'partitions'>, replicationFactor: number): TopicSpec[] {
  const names = topicNames(config.topicPrefix);
  const base = (retentionMs: number, extra: Record<string, string> = {}) => ({
    'cleanup.policy': 'delete',
    'retention.ms': String(retentionMs),
    ...(replicationFactor >= 3 ? { 'min.insync.replicas': '2' } : {}),
    ...extra,
  });
  const big = { 'max.message.bytes': String(eventTopicMessageBytesMax) };
  return [
    { name: names.events, partitions: config.partitions, replicationFactor, config: base(-1, { 'retention.bytes': '-1', ...big }) },
    { name: names.directives, partitions: config.partitions, replicationFactor, config: base(7 * dayMs, big) },
    { name: names.reports, partitions: config.partitions, replicationFactor, config: base(7 * dayMs) },
    { name: names.commands, partitions: config.partitions, replicationFactor, config: base(7 * dayMs) },
    { name: names.commandResults, partitions: config.partitions, replicationFactor, config: base(7 * dayMs) },
    { name: names.dlq, partitions: 1, replicationFactor, config: base(30 * dayMs, big) },
  ];
}
