import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { describeKafkaConfig, parseKafkaConfig, resolveReplicationFactor, topicMismatches, topicNames, topicSpecs } from '../../services/messaging/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'vcp-kafka-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const failure = (env: Record<string, string>) => {
  const result = parseKafkaConfig(env);
  if (result.ok) throw new Error(`expected a failure, got ${JSON.stringify(result)}`);
  return result;
};

describe('Kafka settings from the environment', () => {
  it('is off when VCP_KAFKA_BROKERS is unset', () => {
    expect(parseKafkaConfig({})).toEqual({ ok: true, config: null, warnings: [] });
    expect(parseKafkaConfig({ VCP_KAFKA_BROKERS: '  ' })).toEqual({ ok: true, config: null, warnings: [] });
  });

  it('reads the brokers and fills the defaults', () => {
    expect(parseKafkaConfig({ VCP_KAFKA_BROKERS: 'kafka-1:9092, kafka-2.example.com:9093,[::1]:9094' })).toEqual({
      ok: true,
      warnings: [],
      config: {
        brokers: ['kafka-1:9092', 'kafka-2.example.com:9093', '[::1]:9094'],
        clientId: 'vcp-control-plane',
        ssl: null,
        sasl: null,
        topicPrefix: '',
        partitions: 6,
        replicationFactor: null,
        schemaRegistry: null,
      },
    });
  });

  it.each([
    [{ VCP_KAFKA_BROKERS: 'kafka-1' }, 'VCP_KAFKA_BROKERS', /'kafka-1' is not host:port/],
    [{ VCP_KAFKA_BROKERS: 'kafka-1:99999' }, 'VCP_KAFKA_BROKERS', /not host:port/],
    [{ VCP_KAFKA_BROKERS: 'a:1,,b:2' }, 'VCP_KAFKA_BROKERS', /'' is not host:port/],
    [{ VCP_KAFKA_SSL: 'true' }, 'VCP_KAFKA_BROKERS', /required when VCP_KAFKA_SSL is set/],
    [{ VCP_KAFKA_BROKERS: 'k:1', VCP_KAFKA_CLIENT_ID: 'vcp cp' }, 'VCP_KAFKA_CLIENT_ID', /letters, digits/],
    [{ VCP_KAFKA_BROKERS: 'k:1', VCP_KAFKA_SSL: 'yes' }, 'VCP_KAFKA_SSL', /must be true or false, got 'yes'/],
    [{ VCP_KAFKA_BROKERS: 'k:1', VCP_KAFKA_CA_FILE: '/etc/ca.pem' }, 'VCP_KAFKA_CA_FILE', /VCP_KAFKA_SSL is not true/],
    [{ VCP_KAFKA_BROKERS: 'k:1', VCP_KAFKA_SSL: 'true', VCP_KAFKA_CA_FILE: '/nonexistent/ca.pem' }, 'VCP_KAFKA_CA_FILE', /cannot read \/nonexistent\/ca.pem/],
    [{ VCP_KAFKA_BROKERS: 'k:1', VCP_KAFKA_SASL_MECHANISM: 'gssapi', VCP_KAFKA_SASL_USERNAME: 'u', VCP_KAFKA_SASL_PASSWORD: 'p' }, 'VCP_KAFKA_SASL_MECHANISM', /plain, scram-sha-256 or scram-sha-512, got 'gssapi'/],
    [{ VCP_KAFKA_BROKERS: 'k:1', VCP_KAFKA_SASL_MECHANISM: 'scram-sha-512', VCP_KAFKA_SASL_PASSWORD: 'p' }, 'VCP_KAFKA_SASL_USERNAME', /required/],
    [{ VCP_KAFKA_BROKERS: 'k:1', VCP_KAFKA_SASL_MECHANISM: 'plain', VCP_KAFKA_SASL_USERNAME: 'u' }, 'VCP_KAFKA_SASL_PASSWORD', /required/],
    [{ VCP_KAFKA_BROKERS: 'k:1', VCP_KAFKA_SASL_USERNAME: 'u' }, 'VCP_KAFKA_SASL_MECHANISM', /required when VCP_KAFKA_SASL_USERNAME is set/],
    [{ VCP_KAFKA_BROKERS: 'k:1', VCP_KAFKA_TOPIC_PREFIX: 'a/b' }, 'VCP_KAFKA_TOPIC_PREFIX', /letters, digits/],
    [{ VCP_KAFKA_BROKERS: 'k:1', VCP_KAFKA_PARTITIONS: '0' }, 'VCP_KAFKA_PARTITIONS', /from 1 to 1000, got '0'/],
    [{ VCP_KAFKA_BROKERS: 'k:1', VCP_KAFKA_REPLICATION_FACTOR: 'three' }, 'VCP_KAFKA_REPLICATION_FACTOR', /whole number/],
  ])('refuses %j, naming %s', (env, setting, message) => {
    const result = failure(env);
    expect(result.setting).toBe(setting);
    expect(result.message.startsWith(`${setting}: `)).toBe(true);
    expect(result.message).toMatch(message);
  });

  it('reads TLS with a CA file and SASL/SCRAM, and never shows the password', () => {
    const ca = join(dir, 'ca.pem');
    writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    const result = parseKafkaConfig({
      VCP_KAFKA_BROKERS: 'k:9093',
      VCP_KAFKA_SSL: 'true',
      VCP_KAFKA_CA_FILE: ca,
      VCP_KAFKA_SASL_MECHANISM: 'SCRAM-SHA-256',
      VCP_KAFKA_SASL_USERNAME: 'vcp',
      VCP_KAFKA_SASL_PASSWORD: 's3cret',
      VCP_KAFKA_TOPIC_PREFIX: 'staging.',
      VCP_KAFKA_PARTITIONS: '12',
      VCP_KAFKA_REPLICATION_FACTOR: '3',
    });
    if (!result.ok || result.config === null) throw new Error('expected a config');
    expect(result.config).toMatchObject({ ssl: { caFile: ca }, sasl: { mechanism: 'scram-sha-256', username: 'vcp', password: 's3cret' }, topicPrefix: 'staging.', partitions: 12, replicationFactor: 3 });
    expect(result.config.ssl?.ca).toContain('BEGIN CERTIFICATE');
    expect(JSON.stringify(describeKafkaConfig(result.config))).not.toContain('s3cret');
    expect(result.warnings).toEqual([]);
  });

  it('refuses a CA file without a certificate', () => {
    const bad = join(dir, 'bad.pem');
    writeFileSync(bad, 'hello');
    expect(failure({ VCP_KAFKA_BROKERS: 'k:1', VCP_KAFKA_SSL: 'true', VCP_KAFKA_CA_FILE: bad }).message).toMatch(/no PEM certificate/);
  });

  it('warns about SASL/PLAIN without TLS', () => {
    const result = parseKafkaConfig({ VCP_KAFKA_BROKERS: 'k:1', VCP_KAFKA_SASL_MECHANISM: 'plain', VCP_KAFKA_SASL_USERNAME: 'u', VCP_KAFKA_SASL_PASSWORD: 'p' });
    expect(result.ok && result.warnings).toEqual(['VCP_KAFKA_SASL_MECHANISM=plain without VCP_KAFKA_SSL=true sends the password in clear text']);
  });
});

describe('topics', () => {
  it('names the six topics under the prefix', () => {
    expect(topicNames('staging.')).toEqual({
      events: 'staging.vcp.events',
      directives: 'staging.vcp.host-directives',
      reports: 'staging.vcp.host-reports',
      commands: 'staging.vcp.commands',
      commandResults: 'staging.vcp.command-results',
      dlq: 'staging.vcp.dlq',
    });
  });

  it('keeps vcp.events forever, the queues a week, and asks two in-sync replicas once there are three', () => {
    const [events, directives, , , , dlq] = topicSpecs({ topicPrefix: '', partitions: 6 }, 3);
    expect(events).toMatchObject({ name: 'vcp.events', partitions: 6, replicationFactor: 3, config: { 'retention.ms': '-1', 'retention.bytes': '-1', 'min.insync.replicas': '2' } });
    expect(directives?.config['retention.ms']).toBe(String(7 * 24 * 3600 * 1000));
    expect(dlq).toMatchObject({ partitions: 1, config: { 'retention.ms': String(30 * 24 * 3600 * 1000) } });
    expect(topicSpecs({ topicPrefix: '', partitions: 1 }, 1)[0]?.config['min.insync.replicas']).toBeUndefined();
  });

  it('sizes replication to the cluster unless told', () => {
    expect(resolveReplicationFactor({ replicationFactor: null }, 1)).toBe(1);
    expect(resolveReplicationFactor({ replicationFactor: null }, 5)).toBe(3);
    expect(resolveReplicationFactor({ replicationFactor: 2 }, 5)).toBe(2);
  });

  it('lists every difference of an existing topic', () => {
    const spec = { name: 't', partitions: 6, replicationFactor: 3, config: { 'retention.ms': '-1', 'cleanup.policy': 'delete' } };
    expect(topicMismatches(spec, { name: 't', partitions: 6, replicationFactor: 3, config: { 'retention.ms': '-1', 'cleanup.policy': 'delete' } })).toEqual([]);
    expect(topicMismatches(spec, { name: 't', partitions: 3, replicationFactor: 1, config: { 'retention.ms': '604800000' } })).toEqual([
      'partitions: want 6, have 3',
      'replication factor: want 3, have 1',
      'retention.ms: want -1, have 604800000',
      'cleanup.policy: want delete, have unset',
    ]);
  });
});
