#!/usr/bin/env node
// The `vcp` command. Sources are TypeScript, loaded through tsx (see run-ts.js).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../services/cli/index.ts');
process.exitCode = await main(process.argv.slice(2));
