/**
 * Durability of the SQLite store against a writer killed with SIGKILL (no chance to flush or
 * close anything): every append it saw acknowledged must be in the file afterwards, whole,
 * with contiguous positions and an intact hash chain. Also: several processes writing one
 * stream of one file with optimistic concurrency lose no update.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSqliteEventStore, type RecordedEvent, verifyChain } from '../../services/eventstore/index.ts';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const writerScript = 'test/eventstore/fixtures/append-writer.ts';

interface Writer {
  readonly child: ChildProcess;
  /** Resolves with how the process ended, plus its stderr for the failure message. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>;
}

interface WriterOutput {
  /** An event id whose append has resolved in the writer. */
  readonly onAck: (eventId: string) => void;
  readonly onReady?: () => void;
  readonly onConflict?: () => void;
}

/** Starts a writer process and dispatches the lines it prints. */
function startWriter(args: readonly string[], output: WriterOutput): Writer {
  const child = spawn(process.execPath, ['bin/run-ts.js', writerScript, ...args], {
    cwd: repoRoot,
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const lines = createInterface({ input: child.stdout! });
  lines.on('line', (line) => {
    const match = /^ack (\S+)$/.exec(line);
    if (match !== null) output.onAck(match[1]!);
    else if (line === 'ready') output.onReady?.();
    else if (line === 'conflict') output.onConflict?.();
    else throw new Error(`unexpected line from writer: ${line}`);
  });
  // Wait for stdout to be fully read too, so that no acknowledgement is still in flight.
  const stdoutClosed = new Promise<void>((resolve) => lines.once('close', resolve));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve({ code, signal }));
  }).then(async (result) => {
    await stdoutClosed;
    return { ...result, stderr };
  });
  return { child, exited };
}

async function readEverything(path: string): Promise<RecordedEvent[]> {
  const store = openSqliteEventStore({ path });
  try {
    const all: RecordedEvent[] = [];
    for (;;) {
      const page = await store.readAll({ after: all[all.length - 1]?.globalPosition ?? 0, limit: 1000 });
      if (page.length === 0) return all;
      all.push(...page);
    }
  } finally {
    await store.close();
  }
}

/** Checks the file with a raw connection, independently of the adapter's own reading code. */
function checkFileRaw(path: string): number {
  const raw = new Database(path, { readonly: true });
  try {
    expect(raw.pragma('integrity_check', { simple: true })).toBe('ok');
    const rows = raw.prepare('SELECT global_position, data FROM events ORDER BY global_position').all() as Array<{
      global_position: number;
      data: string;
    }>;
    rows.forEach((row, index) => {
      expect(row.global_position).toBe(index + 1);
      expect(() => JSON.parse(row.data)).not.toThrow();
    });
    return rows.length;
  } finally {
    raw.close();
  }
}

describe('sqlite event store under SIGKILL', () => {
  let dir: string;
  const running: ChildProcess[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'vcp-eventstore-crash-'));
  });

  afterEach(() => {
    for (const child of running.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps every acknowledged append, whole and chained, across three kills on one file', async () => {
    const path = join(dir, 'events.db');
    const acknowledged: string[] = [];
    const roundCount = 3;
    for (let round = 0; round < roundCount; round += 1) {
      // Kill at a different point each round, after some hundreds of acknowledged events, and
      // a little later than the acknowledgement itself, so the kill lands inside an append.
      const ackCountKill = 300 + round * 70;
      const killDelayMs = [0, 2, 5][round]!;
      let ackCountRound = 0;
      const writer = startWriter([path, `writer-${round}`, 'batches', '1000000'], {
        onAck: (eventId) => {
          acknowledged.push(eventId);
          ackCountRound += 1;
          if (ackCountRound === ackCountKill) setTimeout(() => writer.child.kill('SIGKILL'), killDelayMs);
        },
      });
      running.push(writer.child);
      const ended = await writer.exited;
      expect(ended.signal, `writer ended by itself: code ${ended.code}, stderr: ${ended.stderr}`).toBe('SIGKILL');
      expect(ackCountRound).toBeGreaterThanOrEqual(ackCountKill);

      const rowCount = checkFileRaw(path);
      const all = await readEverything(path);
      expect(all).toHaveLength(rowCount);
      expect(all.map((event) => event.globalPosition)).toEqual(Array.from({ length: rowCount }, (_, i) => i + 1));
      expect(verifyChain(all)).toBeNull();

      const storedIds = new Set(all.map((event) => event.eventId));
      expect(storedIds.size).toBe(all.length);
      const missing = acknowledged.filter((eventId) => !storedIds.has(eventId));
      expect(missing).toEqual([]);

      // Atomicity: each batch is stored whole or not at all, at consecutive stream versions.
      const batches = new Map<string, RecordedEvent[]>();
      for (const event of all) {
        const batchId = String(event.data.batchId);
        batches.set(batchId, [...(batches.get(batchId) ?? []), event]);
      }
      for (const [batchId, batch] of batches) {
        expect(batch.length, `batch ${batchId}`).toBe(batch[0]!.data.batchSize);
        expect(batch.map((event) => event.data.indexInBatch)).toEqual(batch.map((_, index) => index));
        expect(batch.map((event) => event.streamVersion - batch[0]!.streamVersion)).toEqual(batch.map((_, i) => i));
      }
      const streams = new Map<string, number[]>();
      for (const event of all) streams.set(event.streamId, [...(streams.get(event.streamId) ?? []), event.streamVersion]);
      for (const versions of streams.values()) expect(versions).toEqual(versions.map((_, index) => index + 1));
    }
    expect(acknowledged.length).toBeGreaterThanOrEqual(300 + 370 + 440);
  }, 120_000);

  it('loses no update when three processes race on one stream with exact expected versions', async () => {
    const path = join(dir, 'events.db');
    // Create the file first, so the writers do not race on creating the schema.
    await openSqliteEventStore({ path }).close();
    const writerCount = 3;
    const appendsPerWriter = 80;
    const acknowledged: string[] = [];
    let readyCount = 0;
    let conflictCount = 0;
    let resolveAllReady: () => void = () => undefined;
    const allReady = new Promise<void>((resolve) => {
      resolveAllReady = resolve;
    });
    const writers = Array.from({ length: writerCount }, (_, index) =>
      startWriter([path, `racer-${index}`, 'race', String(appendsPerWriter)], {
        onAck: (eventId) => acknowledged.push(eventId),
        onReady: () => {
          readyCount += 1;
          if (readyCount === writerCount) resolveAllReady();
        },
        onConflict: () => {
          conflictCount += 1;
        },
      }),
    );
    running.push(...writers.map((writer) => writer.child));
    const exitedEarly = writers.map((writer) =>
      writer.exited.then((ended) => {
        throw new Error(`racer exited before the start: code ${ended.code}, stderr: ${ended.stderr}`);
      }),
    );
    // These reject when the writers end normally too, once nobody is listening: mute that.
    for (const promise of exitedEarly) promise.catch(() => undefined);
    await Promise.race([allReady, ...exitedEarly]);
    for (const writer of writers) writer.child.stdin!.end('go\n');
    for (const writer of writers) {
      const ended = await writer.exited;
      expect(ended.code, ended.stderr).toBe(0);
    }
    const total = writerCount * appendsPerWriter;
    const all = await readEverything(path);
    expect(all.map((event) => event.streamVersion)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    // Every decision was taken on the latest state: counter n sits at version n.
    expect(all.map((event) => event.data.counter)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect(all.map((event) => event.eventId).sort()).toEqual([...acknowledged].sort());
    expect(new Set(all.map((event) => event.data.writerId)).size).toBe(writerCount);
    expect(verifyChain(all)).toBeNull();
    // The writers really raced: some decisions were refused and re-taken.
    expect(conflictCount).toBeGreaterThan(0);
  }, 120_000);
});
