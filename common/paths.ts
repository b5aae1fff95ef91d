// The package root, found from this file whether it runs from source (tsx)
// or from dist/ (tsc output), so .proto files and fixtures are located the
// same way in both.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findRoot(start: string): string {
  let dir = start;
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'proto'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`sadp-loader package root not found above ${start}`);
    dir = parent;
  }
}

export const packageRoot: string = findRoot(dirname(fileURLToPath(import.meta.url)));
