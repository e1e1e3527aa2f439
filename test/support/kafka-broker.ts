/**
 * A throw-away single-node Kafka broker through infra/kafka/kafka.sh (KRaft, Java 17, the jars
 * from Maven Central, cached in ~/.cache/vcp after the first fetch): on free ports, in a temp
 * data dir, stopped and deleted by stop(). Shared by the vitest global setup and the benchmarks.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const kafkaScript = resolve(import.meta.dirname, '../../infra/kafka/kafka.sh');

/** kafka.sh's own readiness wait; generous for a loaded 2-core machine. */
const brokerStartTimeoutS = 120;
/** The whole start (format + JVM start + readiness), with the first jar fetch (about 25 s) inside. */
const startCommandTimeoutMs = 300_000;
const stopCommandTimeoutMs = 60_000;
const portPairAttemptsMax = 20;

export type KafkaBroker = {
  /** host:port */
  readonly brokers: string;
  readonly dataDir: string;
  /** Stops the broker and deletes its data dir. */
  stop(): Promise<void>;
};

/** Runs one of the infra/ scripts; rejects with the last lines of its stderr. */
export function runScript(script: string, args: string[], timeoutMs: number): Promise<{ stdout: string; stderr: string }> {
  const name = script.slice(script.lastIndexOf('/infra/') + 1);
  return new Promise((resolveRun, reject) => {
    execFile('bash', [script, ...args], { timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) {
        const lines = `${stderr}`.trim().split('\n');
        reject(new Error(`${name} ${args[0]} failed (${error.message.split('\n')[0]}):\n${lines.slice(-15).join('\n')}`));
      } else resolveRun({ stdout, stderr });
    });
  });
}

const run = (args: string[], timeoutMs: number) => runScript(kafkaScript, args, timeoutMs);

function listenable(port: number): Promise<boolean> {
  return new Promise((resolvePort) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolvePort(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolvePort(true)));
  });
}

export function ephemeralPort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no port'))));
    });
  });
}

/** A port P with P+1 free too (kafka.sh puts the KRaft controller on P+1). */
async function freePortPair(): Promise<number> {
  for (let attempt = 0; attempt < portPairAttemptsMax; attempt++) {
    const port = await ephemeralPort();
    if (port < 65535 && (await listenable(port + 1))) return port;
  }
  throw new Error(`no two consecutive free ports on 127.0.0.1 after ${portPairAttemptsMax} attempts`);
}

/**
 * If this process dies without running stop() (Ctrl-C), do not leave a JVM behind: the infra
 * scripts run their server detached (setsid), so kill it by the pid they recorded. Returns the
 * function that kills it now and forgets it.
 */
export function killOnExit(pidFile: string): () => void {
  const kill = () => {
    try {
      const pid = Number(readFileSync(pidFile, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0) process.kill(pid, 'SIGKILL');
    } catch {
      // not running (or already stopped): nothing to do
    }
  };
  process.once('exit', kill);
  return () => {
    kill();
    process.removeListener('exit', kill);
  };
}

export async function startKafkaBroker(): Promise<KafkaBroker> {
  const dataDir = mkdtempSync(join(tmpdir(), 'vcp-kafka-'));
  const pidFile = join(dataDir, 'kafka.pid');
  const onExit = killOnExit(pidFile);
  try {
    const port = await freePortPair();
    await run(['start', '--port', String(port), '--data', dataDir, '--timeout', String(brokerStartTimeoutS)], startCommandTimeoutMs);
    let stopped = false;
    return {
      brokers: `127.0.0.1:${port}`,
      dataDir,
      async stop() {
        if (stopped) return;
        stopped = true;
        try {
          await run(['stop', '--data', dataDir], stopCommandTimeoutMs);
        } finally {
          onExit();
          rmSync(dataDir, { recursive: true, force: true });
        }
      },
    };
  } catch (error) {
    onExit();
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
}
