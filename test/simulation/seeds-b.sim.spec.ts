import { describe } from 'vitest';
import { seedSuite } from './seeds.ts';

describe('deterministic simulation, seeds 251–500', () => seedSuite(251, 250));
