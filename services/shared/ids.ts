/**
 * Where random ids (uuid v4) come from. Production draws them from the platform's CSPRNG; the
 * deterministic simulation (test/simulation) swaps in a seeded source so a seed replays exactly,
 * ids included. Ids that must be stable across retries are not random: they are derived from a
 * seed (uuid v5, see control-plane/commands.ts).
 */
import { v4 as uuidv4 } from 'uuid';

type IdSource = () => string;

let source: IdSource = () => uuidv4();

/** A new random uuid (v4 format). */
export function randomId(): string {
  return source();
}

/**
 * Replaces the id source until the returned function is called. For the simulation only: the
 * process runs one simulated world at a time.
 */
export function useIdSource(next: IdSource): () => void {
  const previous = source;
  source = next;
  return () => {
    source = previous;
  };
}

/** A uuid v4-shaped id from 16 random bytes (version and variant bits set as RFC 9562 says). */
export function uuidFromBytes(bytes: Uint8Array): string {
  if (bytes.length !== 16) throw new RangeError(`a uuid needs 16 bytes, got ${bytes.length}`);
  return uuidv4({ random: bytes });
}
