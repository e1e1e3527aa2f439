/**
 * A subscription error nobody listens for must not vanish: it is raised as an uncaught
 * exception. That can only be observed from outside the process, hence the child processes.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

function runFixture(mode: string): { status: number | null; stderr: string } {
  const result = spawnSync(process.execPath, ['bin/run-ts.js', 'test/eventstore/fixtures/subscription-error.ts', mode], {
    cwd: repoRoot,
    encoding: 'utf8',
    timeout: 20_000,
  });
  return { status: result.status, stderr: result.stderr };
}

describe('subscription errors without a listener', () => {
  it('crash the process when there is no onError', () => {
    const result = runFixture('no-onerror');
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain('handler exploded');
  });

  it('crash the process when onError itself throws', () => {
    const result = runFixture('onerror-throws');
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain('onError exploded too');
  });
});
