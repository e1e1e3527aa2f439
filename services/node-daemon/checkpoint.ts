/**
 * The daemon's durable checkpoint: the global position of the last directive it applied and
 * reported. Written atomically (temp file, fsync, rename) so a crash leaves the old or the new.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export const checkpointFileName = 'node-checkpoint.json';

export function readCheckpoint(dataDir: string, hostId: string): number {
  try {
    const parsed = JSON.parse(readFileSync(join(dataDir, checkpointFileName), 'utf8')) as { hostId?: unknown; position?: unknown };
    if (parsed.hostId !== hostId) {
      throw new Error(`checkpoint in ${dataDir} belongs to host ${String(parsed.hostId)}, not ${hostId}`);
    }
    if (typeof parsed.position !== 'number' || !Number.isSafeInteger(parsed.position) || parsed.position < 0) {
      throw new Error(`checkpoint in ${dataDir} is corrupt`);
    }
    return parsed.position;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw error;
  }
}

export function writeCheckpoint(dataDir: string, hostId: string, position: number): void {
  const path = join(dataDir, checkpointFileName);
  const temp = `${path}.tmp`;
  const fd = openSync(temp, 'w');
  try {
    writeSync(fd, JSON.stringify({ hostId, position, writtenAt: new Date().toISOString() }));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, path);
}
