/**
 * The commands that run vcp's parts: control-plane, sim-host, node, and `up` (all on one machine).
 * Each loads its service only when run, so the client commands start fast.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KafkaHostClient } from '../messaging/index.ts';
import { type CommandSpec, UsageError, intFlag, labelsFlag, stringFlag } from './args.ts';

const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function logLevelFlag(value: unknown): string {
  const level = stringFlag(value ?? process.env.VCP_LOG_LEVEL, 'log-level', 'info');
  if (!logLevels.includes(level)) throw new UsageError(`--log-level must be one of ${logLevels.join(', ')}`);
  return level;
}

function presetFlag(value: unknown): 'modern' | 'r2' {
  const preset = stringFlag(value, 'limits-preset', 'modern');
  if (preset !== 'modern' && preset !== 'r2') throw new UsageError('--limits-preset must be modern or r2');
  return preset;
}

/** Resolves when SIGINT or SIGTERM arrives. */
function untilSignal(): Promise<string> {
  return new Promise((resolve) => {
    const handler = (signal: string) => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
      resolve(signal);
    };
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
  });
}

export const controlPlaneCommand: CommandSpec = {
  name: 'control-plane',
  summary: 'Run the control plane (HTTP API, event store, projections)',
  help: `Options:
  --port P          HTTP port (default 8080; env VCP_PORT)
  --host ADDR       address to listen on (default 127.0.0.1; env VCP_HOST)
  --data DIR        where the SQLite event store lives (default ./data/control-plane; env VCP_DATA)
  --log-level L     fatal|error|warn|info|debug|trace|silent (default info; env VCP_LOG_LEVEL)
  --migrations-per-host N      simultaneous live migrations per host, in or out (default 2)
  --migrations-per-cluster N   simultaneous live migrations in the cluster (default 5)
  --migration-bandwidth-mibps B  default bandwidth of a migration (default 1000)
  --daemon-window-ms T  a daemon silent this long counts as disconnected (default 5000)`,
  options: {
    port: { type: 'string' },
    host: { type: 'string' },
    data: { type: 'string' },
    'log-level': { type: 'string' },
    'migrations-per-host': { type: 'string' },
    'migrations-per-cluster': { type: 'string' },
    'migration-bandwidth-mibps': { type: 'string' },
    'daemon-window-ms': { type: 'string' },
  },
  async run(values) {
    const { defaultControlPlaneConfig, runControlPlane } = await import('../control-plane/index.ts');
    const migrations = defaultControlPlaneConfig.migrations;
    const config = {
      ...defaultControlPlaneConfig,
      daemonConnectedWindowMs: intFlag(values['daemon-window-ms'], 'daemon-window-ms', 200, 600_000, defaultControlPlaneConfig.daemonConnectedWindowMs),
      migrations: {
        ...migrations,
        perHostMax: intFlag(values['migrations-per-host'], 'migrations-per-host', 1, 100, migrations.perHostMax),
        perClusterMax: intFlag(values['migrations-per-cluster'], 'migrations-per-cluster', 1, 1000, migrations.perClusterMax),
        defaults: {
          ...migrations.defaults,
          bandwidthMiBps: intFlag(values['migration-bandwidth-mibps'], 'migration-bandwidth-mibps', 1, 1_000_000, migrations.defaults.bandwidthMiBps),
        },
      },
      port: intFlag(values.port ?? process.env.VCP_PORT, 'port', 0, 65535, 8080),
      host: stringFlag(values.host ?? process.env.VCP_HOST, 'host', '127.0.0.1'),
      dataDir: resolve(stringFlag(values.data ?? process.env.VCP_DATA, 'data', './data/control-plane')),
      logLevel: logLevelFlag(values['log-level']),
    };
    const { parseKafkaConfig, describeKafkaConfig } = await import('../messaging/index.ts');
    const kafka = parseKafkaConfig(process.env);
    if (!kafka.ok) throw new UsageError(kafka.message);
    for (const warning of kafka.warnings) process.stderr.write(`vcp: ${warning}\n`);
    const handle = await runControlPlane({ ...config, kafka: kafka.config });
    process.stdout.write(`vcp control plane listening on ${handle.url} (data: ${config.dataDir})${kafka.config ? `; Kafka: ${JSON.stringify(describeKafkaConfig(kafka.config))}` : ''}\n`);
    await untilSignal();
    await handle.close();
    return 0;
  },
};

export const simHostCommand: CommandSpec = {
  name: 'sim-host',
  summary: 'Run a simulated physical host (its partitions live in this process)',
  help: `Options:
  --id H                    host id (required)
  --logical-processors N    logical processors (default 16)
  --memory-mib M            physical memory in MiB (default 65536)
  --parent-reserve-mib R    memory kept for the parent partition (default 2048)
  --data DIR                folder for sim-host.sock and sim-host.json (default ./data/hosts/<id>)
  --tick-ms T               accounting tick (default 1000)
  --limits-preset P         modern (default) or r2 (Hyper-V 2008 R2: 64 LPs, 4 vCPUs per partition, 8:1, 384 running, 512 vCPUs)
  --parent-cpu-lp N         CPU the parent partition uses, in LPs (default 0)
  --seed N                  seed of the machine's random source (bursty workloads); default random`,
  options: {
    id: { type: 'string' },
    'logical-processors': { type: 'string' },
    'memory-mib': { type: 'string' },
    'parent-reserve-mib': { type: 'string' },
    data: { type: 'string' },
    'tick-ms': { type: 'string' },
    'limits-preset': { type: 'string' },
    'parent-cpu-lp': { type: 'string' },
    seed: { type: 'string' },
  },
  async run(values) {
    const { runSimHost } = await import('../hypervisor/index.ts');
    const hostId = stringFlag(values.id, 'id');
    const memoryMiB = intFlag(values['memory-mib'], 'memory-mib', 1, 1 << 30, 65536);
    const handle = await runSimHost({
      hostId,
      logicalProcessors: intFlag(values['logical-processors'], 'logical-processors', 1, 2048, 16),
      memoryMiB,
      parentReserveMiB: intFlag(values['parent-reserve-mib'], 'parent-reserve-mib', 0, memoryMiB - 1, Math.min(2048, Math.floor(memoryMiB / 10))),
      dataDir: resolve(stringFlag(values.data, 'data', `./data/hosts/${hostId}`)),
      tickMs: intFlag(values['tick-ms'], 'tick-ms', 10, 60_000, 1000),
      limitsPreset: presetFlag(values['limits-preset']),
      parentCpuLp: intFlag(values['parent-cpu-lp'], 'parent-cpu-lp', 0, 2048, 0),
      ...(values.seed === undefined ? {} : { seed: intFlag(values.seed, 'seed', 0, 2 ** 32 - 1, 0) }),
    });
    process.stdout.write(`vcp sim-host ${hostId} up (boot ${handle.descriptor.bootId}) on ${handle.socketPath}\n`);
    await untilSignal();
    await handle.close();
    return 0;
  },
};

export const nodeCommand: CommandSpec = {
  name: 'node',
  summary: "Run a host's node daemon: apply directives to the hypervisor, report facts",
  help: `Options:
  --host-id H           the host this daemon serves (required)
  --control-plane URL   control plane base URL (default http://127.0.0.1:8080; env VCP_CONTROL_PLANE)
  --data DIR            checkpoint folder, shared with the sim-host (default ./data/hosts/<id>)
  --sim-host-socket S   the simulated machine's socket (default <data>/sim-host.sock)
  --labels k=v,...      host labels used at registration
  --limits-preset P     modern (default) or r2 (Hyper-V 2008 R2 limits)
  --heartbeat-ms T      lease renewal period (default 1000)
  --lease-ms T          lease length (default 10000, as WSFC's same-subnet threshold)
  --margin-ms T         fencing margin: self-fence at lease − margin, declared failed at lease + margin (default 2000)
  --telemetry-ms T      usage sampling period (default 1000)
  --log-level L         (default info)
With VCP_KAFKA_BROKERS (and the other VCP_KAFKA_* settings of the control plane) the daemon takes
its directives from vcp.host-directives and sends its reports to vcp.host-reports; registration,
reads and the lease heartbeat stay on HTTP (--control-plane). With VCP_SCHEMA_REGISTRY_URL too,
its reports use Confluent schema-registry framing.`,
  options: {
    'host-id': { type: 'string' },
    'control-plane': { type: 'string' },
    data: { type: 'string' },
    'sim-host-socket': { type: 'string' },
    labels: { type: 'string' },
    'limits-preset': { type: 'string' },
    'heartbeat-ms': { type: 'string' },
    'lease-ms': { type: 'string' },
    'margin-ms': { type: 'string' },
    'telemetry-ms': { type: 'string' },
    'log-level': { type: 'string' },
  },
  async run(values) {
    const [{ default: pino }, { createSimHostClient, simHostSocketName }, { createControlPlaneClient, defaultNodeDaemonConfig, runNodeDaemon }] = await Promise.all([
      import('pino'),
      import('../hypervisor/index.ts'),
      import('../node-daemon/index.ts'),
    ]);
    const hostId = stringFlag(values['host-id'], 'host-id');
    const dataDir = resolve(stringFlag(values.data, 'data', `./data/hosts/${hostId}`));
    const controlPlaneUrl = stringFlag(values['control-plane'] ?? process.env.VCP_CONTROL_PLANE, 'control-plane', 'http://127.0.0.1:8080');
    try {
      new URL(controlPlaneUrl);
    } catch {
      throw new UsageError(`--control-plane must be a URL, got "${controlPlaneUrl}"`);
    }
    const limitsPreset = presetFlag(values['limits-preset']);
    const log = pino({ level: logLevelFlag(values['log-level']), base: { service: 'node', hostId } });
    const hypervisor = createSimHostClient({ socketPath: stringFlag(values['sim-host-socket'], 'sim-host-socket', join(dataDir, simHostSocketName)) });
    const requestTimeoutMs = defaultNodeDaemonConfig.requestTimeoutMs;
    // Kafka mode (directives and reports over Kafka, what needs an answer over HTTP) when any
    // VCP_KAFKA_* or VCP_SCHEMA_REGISTRY_* variable is set (a registry without brokers is a
    // usage error); otherwise the messaging service is not even loaded, so an embedded daemon
    // starts as fast as ever (a restart races the lease).
    let kafkaClient: KafkaHostClient | null = null;
    if (Object.keys(process.env).some((name) => name.startsWith('VCP_KAFKA_') || name.startsWith('VCP_SCHEMA_REGISTRY_'))) {
      const { parseKafkaConfig, describeKafkaConfig, createKafkaControlPlaneClient, kafkaEnv } = await import('../messaging/index.ts');
      const kafka = parseKafkaConfig(process.env);
      if (!kafka.ok) throw new UsageError(kafka.message);
      for (const warning of kafka.warnings) process.stderr.write(`vcp: ${warning}\n`);
      if (kafka.config !== null) {
        // Each daemon is its own Kafka client (vcp-node-<host>) unless the operator names one.
        const config = process.env[kafkaEnv.clientId]?.trim() ? kafka.config : { ...kafka.config, clientId: `vcp-node-${hostId}` };
        kafkaClient = createKafkaControlPlaneClient(config, hostId, createControlPlaneClient(controlPlaneUrl, hostId, requestTimeoutMs), requestTimeoutMs, log);
        log.info({ kafka: describeKafkaConfig(config) }, 'Kafka mode: directives from vcp.host-directives, reports to vcp.host-reports');
      }
    }
    const handle = await runNodeDaemon(
      {
        ...defaultNodeDaemonConfig,
        hostId,
        controlPlaneUrl,
        dataDir,
        labels: labelsFlag(values.labels),
        limitsPreset,
        heartbeatMs: intFlag(values['heartbeat-ms'], 'heartbeat-ms', 50, 60_000, defaultNodeDaemonConfig.heartbeatMs),
        leaseMs: intFlag(values['lease-ms'], 'lease-ms', 200, 3_600_000, defaultNodeDaemonConfig.leaseMs),
        marginMs: intFlag(values['margin-ms'], 'margin-ms', 0, 600_000, defaultNodeDaemonConfig.marginMs),
        telemetryMs: intFlag(values['telemetry-ms'], 'telemetry-ms', 50, 60_000, defaultNodeDaemonConfig.telemetryMs),
      },
      hypervisor,
      log,
      kafkaClient === null ? {} : { client: kafkaClient },
    );
    await untilSignal();
    await handle.close();
    await kafkaClient?.close();
    return 0;
  },
};

const vcpBin = resolve(dirname(fileURLToPath(import.meta.url)), '../../bin/vcp.js');

type Child = { name: string; args: string[]; process: ChildProcess | null; restart: boolean; restarts: number };

export const upCommand: CommandSpec = {
  name: 'up',
  summary: 'Run everything on this machine: control plane, N simulated hosts, their daemons',
  help: `Options:
  --port P                  control plane port (default 8080)
  --data DIR                data folder (default ./data); the log survives restarts
  --hosts N                 simulated hosts (default 3)
  --logical-processors N    per host (default 16)
  --memory-mib M            per host (default 65536)
Logs of every process go to <data>/logs/. Ctrl-C stops everything cleanly.`,
  options: {
    port: { type: 'string' },
    data: { type: 'string' },
    hosts: { type: 'string' },
    'logical-processors': { type: 'string' },
    'memory-mib': { type: 'string' },
  },
  async run(values) {
    const port = intFlag(values.port ?? process.env.VCP_PORT, 'port', 1, 65535, 8080);
    const dataDir = resolve(stringFlag(values.data ?? process.env.VCP_DATA, 'data', './data'));
    const hostCount = intFlag(values.hosts, 'hosts', 1, 64, 3);
    const lps = intFlag(values['logical-processors'], 'logical-processors', 1, 2048, 16);
    const memoryMiB = intFlag(values['memory-mib'], 'memory-mib', 1024, 1 << 30, 65536);
    const url = `http://127.0.0.1:${port}`;
    const logDir = join(dataDir, 'logs');
    mkdirSync(logDir, { recursive: true });
    let stopping = false;

    const children: Child[] = [
      { name: 'control-plane', args: ['control-plane', '--port', String(port), '--data', join(dataDir, 'control-plane')], process: null, restart: true, restarts: 0 },
    ];
    for (let i = 1; i <= hostCount; i++) {
      const id = `host-${i}`;
      const hostDir = join(dataDir, 'hosts', id);
      children.push({
        name: `sim-host ${id}`,
        args: ['sim-host', '--id', id, '--logical-processors', String(lps), '--memory-mib', String(memoryMiB), '--data', hostDir],
        process: null,
        // A simulated machine that dies is a host failure: it stays down, as a real one would.
        restart: false,
        restarts: 0,
      });
      children.push({ name: `node ${id}`, args: ['node', '--host-id', id, '--control-plane', url, '--data', hostDir], process: null, restart: true, restarts: 0 });
    }

    const launch = (child: Child) => {
      const log = createWriteStream(join(logDir, `${child.name.replace(/ /g, '-')}.log`), { flags: 'a' });
      const proc = spawn(process.execPath, [vcpBin, ...child.args], { stdio: ['ignore', 'pipe', 'pipe'] });
      proc.stdout?.pipe(log);
      proc.stderr?.pipe(log);
      child.process = proc;
      proc.on('exit', (code, signal) => {
        child.process = null;
        if (stopping) return;
        process.stdout.write(`${child.name} exited (${signal ?? `code ${code}`})${child.restart ? '; restarting' : '; it stays down (a host failure)'}\n`);
        if (child.restart && child.restarts < 100) {
          child.restarts++;
          setTimeout(() => !stopping && launch(child), Math.min(5000, 250 * child.restarts));
        }
      });
    };

    const [controlPlane, ...rest] = children;
    launch(controlPlane!);
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        const response = await fetch(`${url}/readyz`);
        if (response.ok) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline || controlPlane!.process === null) {
        stopping = true;
        for (const c of children) c.process?.kill('SIGTERM');
        process.stderr.write(`vcp up: the control plane did not become ready on port ${port}; see ${join(logDir, 'control-plane.log')}\n`);
        return 1;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    for (const child of rest) launch(child);
    process.stdout.write(
      [
        `vcp is up: ${hostCount} simulated hosts, ${lps} LPs and ${memoryMiB} MiB each`,
        `  API         ${url}/v1/partitions`,
        `  API docs    ${url}/docs`,
        `  event log   ${url}/v1/events/stream`,
        `  data        ${dataDir}   logs: ${logDir}`,
        `Try: npx vcp partition create web-1 --vcpus 2 --memory-mib 2048 && npx vcp partition start web-1   (then: npx vcp top)`,
        'Ctrl-C stops everything.',
        '',
      ].join('\n'),
    );
    await untilSignal();
    stopping = true;
    process.stdout.write('stopping...\n');
    // Daemons first, then the machines, then the control plane.
    const order = [...children.filter((c) => c.name.startsWith('node')), ...children.filter((c) => c.name.startsWith('sim-host')), controlPlane!];
    for (const child of order) {
      const proc = child.process;
      if (!proc) continue;
      const exited = new Promise<void>((r) => proc.once('exit', () => r()));
      proc.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.process) proc.kill('SIGKILL');
    }
    return 0;
  },
};
