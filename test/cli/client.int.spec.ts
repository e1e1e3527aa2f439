/**
 * The client commands end to end: a real control plane in this process, `vcp` as a child process.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ControlPlaneHandle, defaultControlPlaneConfig, runControlPlane } from '../../services/control-plane/index.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
type Run = { code: number; stdout: string; stderr: string };

let handle: ControlPlaneHandle;
let dataDir: string;

function env(url: string): NodeJS.ProcessEnv {
  return { ...process.env, VCP_URL: url, USER: 'tester' };
}

function vcp(...args: string[]): Promise<Run> {
  return new Promise((done) => {
    execFile(process.execPath, ['bin/vcp.js', ...args], { cwd: root, env: env(handle.url), timeout: 30_000 }, (error, stdout, stderr) => {
      done({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

/** Cells of a table line (columns are separated by two or more spaces). */
const cells = (line: string | undefined) => (line ?? '').trim().split(/\s{2,}/);
const rowOf = (table: string, id: string) => table.split('\n').find((l) => l.startsWith(`${id} `));

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  await new Promise((r) => server.close(r));
  return typeof address === 'object' && address ? address.port : 9;
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'vcp-cli-'));
  // A long connected window: one heartbeat keeps the host placeable for the whole file.
  handle = await runControlPlane({ ...defaultControlPlaneConfig, port: 0, dataDir, logLevel: 'silent', daemonConnectedWindowMs: 600_000 });
});

afterAll(async () => {
  await handle?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('vcp client commands', { timeout: 60_000 }, () => {
  it('registers a host and lists it', async () => {
    const created = await vcp('host', 'create', 'host-1', '--logical-processors', '16', '--memory-mib', '65536', '--labels', 'zone=a');
    expect(created).toMatchObject({ code: 0, stderr: '' });
    expect(created.stdout).toMatch(/^host host-1: 16 LPs, 65536 MiB, schedulable/);

    const beat = await fetch(`${handle.url}/v1/hosts/host-1/heartbeat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      // A lease as long as the file runs: no daemon renews it here.
      body: JSON.stringify({ bootId: 'boot-1', checkpointPosition: 0, leaseMs: 3_600_000, renewMs: 600_000, marginMs: 0 }),
    });
    expect(beat.status).toBe(200);

    const [hosts, show] = await Promise.all([vcp('hosts'), vcp('host', 'show', 'host-1')]);
    expect(hosts.code).toBe(0);
    expect(cells(hosts.stdout.split('\n')[0])).toEqual(['ID', 'LPS', 'MEMORY(MiB)', 'FREE(MiB)', 'RESERVED(vCPUs)', 'PARTITIONS', 'CORDONED', 'DAEMON']);
    expect(cells(rowOf(hosts.stdout, 'host-1'))).toEqual(['host-1', '16', '65536', '63488', '0/2048', '0/1024', 'no', 'connected']);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/^labels: +zone=a$/m);
    expect(show.stdout).toMatch(/^daemon: +connected, .*boot boot-1/m);
  });

  it('creates, shows and lists a partition', async () => {
    const created = await vcp('partition', 'create', 'web-1', '--vcpus', '2', '--memory-mib', '2048', '--reserve-pct', '25', '--cpu-demand-pct', '12.5', '--restart', 'same-host');
    expect(created).toMatchObject({ code: 0, stderr: '' });
    expect(created.stdout).toBe('partition web-1: Off, incarnation 0 (events: PartitionCreated)\n');

    const [show, list] = await Promise.all([vcp('partition', 'show', 'web-1'), vcp('partitions')]);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/^state: +Off$/m);
    expect(show.stdout).toMatch(/^processor: +reserve 25 %, limit 100 %, weight 100$/m);
    expect(show.stdout).toMatch(/^workload: +cpu 12\.5 %, memory 2048 MiB, dirty 0 MiB\/s$/m);
    expect(show.stdout).toMatch(/^ha: +restart same-host, priority 2000/m);
    expect(list.code).toBe(0);
    expect(cells(list.stdout.split('\n')[0])).toEqual(['ID', 'NAME', 'STATE', 'HOST', 'INCARNATION', 'VCPUS', 'MEMORY', 'REASON']);
    expect(cells(rowOf(list.stdout, 'web-1'))).toEqual(['web-1', 'web-1', 'Off', '-', '0', '2', '2048 MiB', '-']);
  });

  it('starts a partition on a host; a second start is one 409 line and exit 1', async () => {
    const started = await vcp('partition', 'start', 'web-1', '--host', 'host-1');
    expect(started).toMatchObject({ code: 0, stderr: '' });
    expect(started.stdout).toMatch(/^partition web-1: Starting on host-1, incarnation 1 \(events: .*PartitionStartRequested/);

    const [again, json] = await Promise.all([vcp('partition', 'start', 'web-1'), vcp('partitions', '--host', 'host-1', '--state', 'Starting', '--json')]);
    expect(again.code).toBe(1);
    expect(again.stdout).toBe('');
    expect(again.stderr).toMatch(/^vcp partition start: 409 invalid-transition: cannot start partition web-1: it is Starting; [^\n]+\n$/);
    const body = JSON.parse(json.stdout) as { partitions: { id: string; state: string; hostId: string }[] };
    expect(body.partitions).toEqual([expect.objectContaining({ id: 'web-1', state: 'Starting', hostId: 'host-1' })]);
  });

  it('prints the log and a history; sends the actor and the idempotency key', async () => {
    const createArgs = ['partition', 'create', 'web-2', '--vcpus', '1', '--memory-mib', '512', '--idempotency-key', 'fixed-key', '--json'];
    const first = await vcp(...createArgs);
    const [replay, events, history] = await Promise.all([vcp(...createArgs), vcp('events'), vcp('partition', 'events', 'web-1')]);
    expect(first.code).toBe(0);
    expect(replay.code).toBe(0);
    // The same key and body: the recorded answer again, not a second create.
    expect(JSON.parse(replay.stdout)).toEqual(JSON.parse(first.stdout));

    expect(cells(events.stdout.split('\n')[0])).toEqual(['POS', 'TIME', 'STREAM', 'TYPE', 'ACTOR']);
    expect(cells(events.stdout.split('\n')[1])).toEqual(['1', expect.stringMatching(/^\d{4}-/), 'host-host-1', 'HostRegistered', 'user:tester']);
    expect(cells(history.stdout.split('\n')[0])).toEqual(['POS', 'TIME', 'TYPE', 'ACTOR', 'DATA']);
    expect(history.stdout).toMatch(/^\d+ +\S+ +PartitionCreated +user:tester +name=web-1 /m);
    expect(history.stdout).toMatch(/ PartitionStartRequested +user:tester +.*hostId=host-1/);
  });

  it('usage errors exit 2, an unreachable server exits 1, each with one line; help exits 0', async () => {
    const port = await closedPort();
    const [unknown, stray, badNumber, unreachable, help, partitionHelp] = await Promise.all([
      vcp('partition', 'create', 'x', '--vcpus', '2', '--memory-mib', '512', '--bogus'),
      vcp('partition', 'start', 'web-1', '--vcpus', '2'),
      vcp('partition', 'set', 'web-1', '--cpu-demand-pct', 'lots'),
      vcp('hosts', '--url', `http://127.0.0.1:${port}`),
      vcp('--help'),
      vcp('partition', '--help'),
    ]);
    for (const run of [unknown, stray, badNumber]) {
      expect(run.code).toBe(2);
      expect(run.stdout).toBe('');
      expect(run.stderr).toMatch(/^vcp partition: [^\n]+\n$/);
    }
    expect(unknown.stderr).toContain("'--bogus'");
    expect(stray.stderr).toBe('vcp partition: --vcpus does not apply to partition start\n');
    expect(badNumber.stderr).toBe('vcp partition: --cpu-demand-pct must be a number, got "lots"\n');
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(new RegExp(`^vcp hosts: cannot reach the control plane at http://127\\.0\\.0\\.1:${port}: [^\\n]+\\n$`));
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^ {2}partitions +List partitions/m);
    expect(partitionHelp.code).toBe(0);
    expect(partitionHelp.stdout).toMatch(/^ {2}turn-off <id> +power off at once/m);
    expect(partitionHelp.stdout).toContain('--idempotency-key K');
  });

  it('follows the log live until interrupted', async () => {
    const child = spawn(process.execPath, ['bin/vcp.js', 'events', '--follow', '--json'], { cwd: root, env: env(handle.url) });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const until = async (text: string) => {
      for (const deadline = Date.now() + 20_000; !stdout.includes(text); await new Promise((r) => setTimeout(r, 50))) {
        if (Date.now() > deadline) throw new Error(`no "${text}" in: ${stdout} ${stderr}`);
      }
    };
    try {
      await until('"HostRegistered"');
      const created = await fetch(`${handle.url}/v1/partitions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ id: 'live-1', vcpus: 1, memory: { startupMiB: 256 } }),
      });
      expect(created.status).toBe(201);
      await until('"partition-live-1"');
    } finally {
      child.kill('SIGINT');
    }
    expect(await exited).toBe(0);
    expect(stderr).toBe('');
    const events = stdout.trim().split('\n').map((line) => JSON.parse(line) as { globalPosition: number; streamId: string });
    expect(events.map((e) => e.globalPosition)).toEqual(events.map((_, i) => i + 1));
    expect(events.at(-1)?.streamId).toBe('partition-live-1');
  });
});
