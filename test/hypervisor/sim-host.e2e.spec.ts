import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { createSimHostClient, HypervisorError, type PartitionConfig } from '../../services/hypervisor/index.ts';
import { profile } from './fixtures/profile.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** tsx compiles on first start; generous, but bounded. */
const readyWaitMsMax = 30_000;
const exitWaitMsMax = 10_000;

interface Descriptor {
  readonly pid: number;
  readonly socketPath: string;
  readonly bootId: string;
}

const children: ChildProcess[] = [];

/** Spawns the sim-host fixture as its own process and waits for its `ready` line. */
async function spawnSimHost(dataDir: string): Promise<{ child: ChildProcess; descriptor: Descriptor }> {
  const child = spawn(
    process.execPath,
    ['bin/run-ts.js', 'test/hypervisor/fixtures/sim-host-main.ts', '--data-dir', dataDir, '--host-id', 'e2e-host'],
    { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  children.push(child);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  const descriptor = await new Promise<Descriptor>((resolveReady, rejectReady) => {
    let stdout = '';
    const timer = setTimeout(() => rejectReady(new Error(`sim-host not ready in ${readyWaitMsMax} ms: ${stderr}`)), readyWaitMsMax);
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      const line = stdout.split('\n').find((l) => l.startsWith('ready '));
      if (line) {
        clearTimeout(timer);
        resolveReady(JSON.parse(line.slice('ready '.length)) as Descriptor);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      rejectReady(new Error(`sim-host exited early (${code ?? signal}): ${stderr}`));
    });
  });
  return { child, descriptor };
}

function waitForExit(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolveExit, rejectExit) => {
    const timer = setTimeout(() => rejectExit(new Error(`child ${child.pid} did not exit in ${exitWaitMsMax} ms`)), exitWaitMsMax);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolveExit({ code, signal });
    });
  });
}

const config: PartitionConfig = {
  partitionId: 'db-1',
  incarnation: 1,
  vcpus: 2,
  processor: { reservePct: 0, limitPct: 100, weight: 100 },
  memory: { mode: 'static', startupMiB: 2048 },
  workload: profile({ cpuDemandPct: 50, memoryDemandMiB: 1500, dirtyMiBps: 10 }),
};

describe('sim-host as a real process', () => {
  afterEach(async () => {
    for (const child of children.splice(0)) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGKILL');
        await waitForExit(child);
      }
    }
  });

  it('keeps partitions across client reconnects, loses them on SIGKILL, and reboots with a new bootId', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'vcp-e2e-'));
    try {
      const first = await spawnSimHost(dataDir);
      expect(first.descriptor.pid).toBe(first.child.pid);
      const client = createSimHostClient({ socketPath: first.descriptor.socketPath });
      expect(await client.start(config)).toMatchObject({ partitionId: 'db-1', state: 'Running' });

      // A daemon restart is just a new client: the partition is still there.
      const reconnected = createSimHostClient({ socketPath: first.descriptor.socketPath });
      expect((await reconnected.list()).map((p) => p.partitionId)).toEqual(['db-1']);
      expect((await reconnected.info()).bootId).toBe(first.descriptor.bootId);

      // Power loss.
      first.child.kill('SIGKILL');
      expect(await waitForExit(first.child)).toEqual({ code: null, signal: 'SIGKILL' });
      const error = await client.list().then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(HypervisorError);
      expect(error).toMatchObject({ code: 'unavailable' });

      // The machine boots again over the stale socket: a new boot, nothing running.
      const second = await spawnSimHost(dataDir);
      expect(second.descriptor.bootId).not.toBe(first.descriptor.bootId);
      expect((await client.info()).bootId).toBe(second.descriptor.bootId);
      expect(await client.list()).toEqual([]);

      // A graceful shutdown removes the socket.
      second.child.kill('SIGTERM');
      expect(await waitForExit(second.child)).toEqual({ code: 0, signal: null });
      await expect(stat(second.descriptor.socketPath)).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 3 * readyWaitMsMax);
});
