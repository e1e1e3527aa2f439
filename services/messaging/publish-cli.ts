/** Entry point of the schema publisher (see publish.ts). */
import { publishMain } from './publish.ts';

process.exitCode = publishMain(process.argv.slice(2));
