#!/usr/bin/env node
// Entry point of the `sadp` binary. A failing command prints one line,
// `sadp: error CODE: message` (the stable code of a SadpError), and exits 1;
// SADP_DEBUG=1 adds the stack and the cause chain.
import { errorMessage } from '../common/errors.js';
import { errorLines } from './hints.js';
import { buildProgram } from './program.js';

try {
  await buildProgram().parseAsync(process.argv);
} catch (err) {
  process.stderr.write(errorLines('sadp: ', err, errorMessage(err)));
  if (process.env.SADP_DEBUG) console.error(err);
  process.exit(1);
}
