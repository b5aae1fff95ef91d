#!/usr/bin/env node
// Entry point of the `sadp` binary. A failing command prints one line,
// `sadp: error CODE: message` (the stable code of a SadpError), and exits 1;
// SADP_DEBUG=1 adds the stack and the cause chain.
import { errorMessage, isSadpError } from '../common/errors.js';
import { buildProgram } from './program.js';

try {
  await buildProgram().parseAsync(process.argv);
} catch (err) {
  const code = isSadpError(err) ? err.code : 'SADP_INTERNAL';
  process.stderr.write(`sadp: error ${code}: ${errorMessage(err)}\n`);
  if (process.env.SADP_DEBUG) console.error(err);
  process.exit(1);
}
