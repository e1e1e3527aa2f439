/**
 * The simulation's step list: what happens, in order, derived from a seed alone. A step is data
 * (an action and how much virtual time passes after it), so a failing list can be shrunk and the
 * shorter list replayed exactly.
 *
 * Faults come in pairs (crash → return, cut → heal, slow → normal, ...): the generator schedules
 * the healing step a few steps later, so every run also has quiet stretches in which the system
 * must converge.
 */
import { createSeededRandom } from '../../services/hypervisor/sim/random.ts';

export type Action =
  | { readonly kind: 'create'; readonly partitionId: string; readonly vcpus: number; readonly memoryMiB: number; readonly restart: 'none' | 'same-host' | 'any-host'; readonly priority: number; readonly antiAffinityClass: string | null; readonly hard: boolean }
  | { readonly kind: 'start'; readonly partitionId: string }
  | { readonly kind: 'stop'; readonly partitionId: string }
  | { readonly kind: 'turn-off'; readonly partitionId: string }
  | { readonly kind: 'pause'; readonly partitionId: string }
  | { readonly kind: 'resume'; readonly partitionId: string }
  | { readonly kind: 'save'; readonly partitionId: string }
  | { readonly kind: 'delete'; readonly partitionId: string }
  | { readonly kind: 'reconfigure'; readonly partitionId: string; readonly memoryMiB: number; readonly weight: number }
  | { readonly kind: 'migrate'; readonly partitionId: string; readonly targetHostId: string | null }
  | { readonly kind: 'drain'; readonly hostId: string }
  | { readonly kind: 'undrain'; readonly hostId: string }
  | { readonly kind: 'guest-crash'; readonly partitionId: string }
  /** A power failure; with the daemon, the whole host dies (else only its hypervisor: a sim-host crash). */
  | { readonly kind: 'host-crash'; readonly hostId: string; readonly daemonToo: boolean }
  | { readonly kind: 'host-return'; readonly hostId: string }
  | { readonly kind: 'daemon-crash'; readonly hostId: string }
  | { readonly kind: 'daemon-restart'; readonly hostId: string }
  | { readonly kind: 'cp-crash' }
  | { readonly kind: 'cp-restart' }
  | { readonly kind: 'cut'; readonly hostId: string }
  | { readonly kind: 'heal'; readonly hostId: string }
  | { readonly kind: 'slow'; readonly hostId: string; readonly delayMs: number }
  | { readonly kind: 'duplicate'; readonly hostId: string }
  | { readonly kind: 'normal'; readonly hostId: string }
  | { readonly kind: 'store-fail'; readonly mode: 'before-write' | 'after-write'; readonly count: number };

export type Step = { readonly action: Action; readonly advanceMs: number };

export type GenerateOptions = { readonly steps: number; readonly hosts: number; readonly partitions: number };

export const hostIdOf = (index: number) => `h${index + 1}`;
export const partitionIdOf = (index: number) => `p${index + 1}`;

export function generateSteps(seed: number, options: GenerateOptions): Step[] {
  const random = createSeededRandom(seed);
  const int = (n: number) => Math.floor(random.nextFloat() * n);
  const chance = (p: number) => random.nextFloat() < p;
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  const hosts = Array.from({ length: options.hosts }, (_, i) => hostIdOf(i));
  const partitions = Array.from({ length: options.partitions }, (_, i) => partitionIdOf(i));
  // Healing steps due at a step index.
  const due = new Map<number, Action[]>();
  const schedule = (at: number, action: Action) => due.set(at, [...(due.get(at) ?? []), action]);
  // Hosts with a fault in progress, so two faults of one host do not overlap (crash while cut, ...).
  const busyUntil = new Map<string, number>();
  let cpBusyUntil = -1;
  const steps: Step[] = [];
  const advance = () => {
    const r = random.nextFloat();
    if (r < 0.6) return 100 + int(900);
    if (r < 0.9) return 1_000 + int(4_000);
    return 5_000 + int(15_000);
  };

  // Every run begins by creating and starting a few partitions, so faults have something to hit.
  for (const partitionId of partitions.slice(0, Math.min(4, partitions.length))) {
    steps.push({ action: createAction(partitionId), advanceMs: 200 });
    steps.push({ action: { kind: 'start', partitionId }, advanceMs: 500 });
  }

  function createAction(partitionId: string): Action {
    const restart = pick(['any-host', 'any-host', 'any-host', 'same-host', 'none'] as const);
    return {
      kind: 'create',
      partitionId,
      vcpus: 1 + int(4),
      memoryMiB: pick([512, 1024, 2048, 4096]),
      restart,
      priority: pick([1000, 2000, 2000, 3000, 0]),
      antiAffinityClass: chance(0.3) ? pick(['db', 'web']) : null,
      hard: chance(0.3),
    };
  }

  while (steps.length < options.steps) {
    const index = steps.length;
    const healing = due.get(index);
    if (healing && healing.length > 0) {
      const [action, ...rest] = healing as [Action, ...Action[]];
      due.delete(index);
      for (const later of rest) schedule(index + 1, later);
      steps.push({ action, advanceMs: advance() });
      continue;
    }
    const freeHosts = hosts.filter((h) => (busyUntil.get(h) ?? -1) < index);
    const r = random.nextFloat();
    let action: Action;
    if (r < 0.55) {
      const partitionId = pick(partitions);
      const c = random.nextFloat();
      if (c < 0.15) action = createAction(partitionId);
      else if (c < 0.4) action = { kind: 'start', partitionId };
      else if (c < 0.5) action = { kind: 'stop', partitionId };
      else if (c < 0.54) action = { kind: 'turn-off', partitionId };
      else if (c < 0.58) action = { kind: 'pause', partitionId };
      else if (c < 0.62) action = { kind: 'resume', partitionId };
      else if (c < 0.65) action = { kind: 'save', partitionId };
      else if (c < 0.7) action = { kind: 'delete', partitionId };
      else if (c < 0.78) action = { kind: 'reconfigure', partitionId, memoryMiB: pick([512, 1024, 2048]), weight: pick([50, 100, 200]) };
      else action = { kind: 'migrate', partitionId, targetHostId: chance(0.5) ? pick(hosts) : null };
    } else if (r < 0.6 && freeHosts.length > 0) {
      const hostId = pick(freeHosts);
      action = { kind: 'drain', hostId };
      busyUntil.set(hostId, index + 10);
      schedule(index + 2 + int(8), { kind: 'undrain', hostId });
    } else if (r < 0.66) {
      action = { kind: 'guest-crash', partitionId: pick(partitions) };
    } else if (r < 0.96 && freeHosts.length > 0) {
      const hostId = pick(freeHosts);
      const f = random.nextFloat();
      // Long enough for a lease to lapse (10 s + 2 s) in many cases, short in others.
      const span = 2 + int(18);
      busyUntil.set(hostId, index + span + 1);
      if (f < 0.3) {
        action = { kind: 'host-crash', hostId, daemonToo: chance(0.5) };
        schedule(index + span, { kind: 'host-return', hostId });
      } else if (f < 0.5) {
        action = { kind: 'daemon-crash', hostId };
        schedule(index + span, { kind: 'daemon-restart', hostId });
      } else if (f < 0.75) {
        action = { kind: 'cut', hostId };
        schedule(index + span, { kind: 'heal', hostId });
      } else if (f < 0.9) {
        action = { kind: 'slow', hostId, delayMs: pick([200, 1_000, 3_000, 6_000]) };
        schedule(index + span, { kind: 'normal', hostId });
      } else {
        action = { kind: 'duplicate', hostId };
        schedule(index + span, { kind: 'normal', hostId });
      }
    } else if (r < 0.98 && cpBusyUntil < index) {
      const span = 1 + int(6);
      cpBusyUntil = index + span + 1;
      action = { kind: 'cp-crash' };
      schedule(index + span, { kind: 'cp-restart' });
    } else {
      action = { kind: 'store-fail', mode: chance(0.5) ? 'before-write' : 'after-write', count: 1 + int(3) };
    }
    steps.push({ action, advanceMs: advance() });
  }
  return steps;
}

export function describeStep(step: Step, index: number): string {
  const { kind, ...rest } = step.action;
  const args = Object.entries(rest)
    .map(([k, v]) => `${k}=${v === null ? '-' : String(v)}`)
    .join(' ');
  return `#${index} ${kind}${args ? ` ${args}` : ''} (+${step.advanceMs} ms)`;
}
