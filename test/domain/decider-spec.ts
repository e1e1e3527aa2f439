/**
 * Given/when/then over a decider: given these past events (folded with `evolve` over the initial
 * state), when this command, then these new events, or this rejection.
 *
 *   const { given } = deciderSpec(partitionDecider);
 *   given([created]).when({ type: 'RequestStop' }).thenRejects({ kind: 'conflict', code: 'invalid-transition' });
 */
import { expect } from 'vitest';
import type { Decision, Rejection, RejectionKind } from '../../services/domain/index.ts';

export type Decider<C, E, S> = {
  readonly decide: (command: C, state: S) => Decision<E>;
  readonly evolve: (state: S, event: E) => S;
  readonly initialState: () => S;
};

export type ExpectedRejection = {
  readonly kind: RejectionKind;
  readonly code: string;
  /** Checked only when given. */
  readonly field?: string | null;
};

export type Outcome<E, S> = {
  /** The events the decider emitted. */
  readonly events: readonly E[];
  /** The state before the command (the fold of the given events). */
  readonly stateBefore: S;
  /** The state after folding the emitted events too. */
  readonly stateAfter: S;
};

export type When<E, S> = {
  /** Asserts the command is accepted with exactly these events (in order). */
  readonly then: (expected: readonly E[]) => Outcome<E, S>;
  /** Asserts the command is accepted, whatever the events, for assertions of its own. */
  readonly thenAccepts: () => Outcome<E, S>;
  /** Asserts the command is rejected with this kind and code (and field, when given). */
  readonly thenRejects: (expected: ExpectedRejection) => Rejection;
};

export type Given<C, E, S> = {
  readonly state: S;
  readonly when: (command: C) => When<E, S>;
};

export function fold<E, S>(evolve: (state: S, event: E) => S, initial: S, events: readonly E[]): S {
  return events.reduce(evolve, initial);
}

export function deciderSpec<C, E, S>(decider: Decider<C, E, S>): { given: (events: readonly E[]) => Given<C, E, S> } {
  const given = (events: readonly E[]): Given<C, E, S> => {
    const state = fold(decider.evolve, decider.initialState(), events);
    const when = (command: C): When<E, S> => {
      const decision = decider.decide(command, state);
      const accepted = (): Outcome<E, S> => {
        if (!decision.ok) {
          return expect.unreachable(`expected the command to be accepted, got ${JSON.stringify(decision.rejection)}`);
        }
        return { events: decision.events, stateBefore: state, stateAfter: fold(decider.evolve, state, decision.events) };
      };
      return {
        // biome-ignore lint/suspicious/noThenProperty: given/when/then is the vocabulary; this object is never awaited.
        then: (expected) => {
          const outcome = accepted();
          expect(outcome.events).toEqual(expected);
          return outcome;
        },
        thenAccepts: accepted,
        thenRejects: (expected) => {
          if (decision.ok) {
            return expect.unreachable(
              `expected a rejection ${expected.kind}/${expected.code}, got events ${JSON.stringify(decision.events)}`,
            );
          }
          const { rejection } = decision;
          expect({ kind: rejection.kind, code: rejection.code }).toEqual({ kind: expected.kind, code: expected.code });
          if (expected.field !== undefined) expect(rejection.field).toBe(expected.field);
          expect(rejection.message.length).toBeGreaterThan(0);
          return rejection;
        },
      };
    };
    return { state, when };
  };
  return { given };
}
