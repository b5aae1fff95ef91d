// Which locations a job's dataset may be read from. A job's dataset URL (and
// absolute URLs inside its manifest) come from whoever created the job, so a
// loader in service mode reads object storage only, plus local directories
// its operator allowed; relative paths (resolved against the loader's working
// directory) are refused outright. Embedded and single-machine setups read
// anything ('any'): there the job creator is the operator.
import { realpathSync } from 'node:fs';
import { isAbsolute, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SadpError, Status } from '../../common/errors.js';

export type DatasetAccess = 'any' | { readonly localRoots: readonly string[] };

function deniedError(url: string, why: string): SadpError {
  return new SadpError(
    'SADP_DATASET_LOCATION_DENIED',
    `dataset location ${url} is not allowed: ${why}; this loader reads object storage (s3://) and only the local directories its operator allowed (--allow-local-root)`,
    { status: Status.PERMISSION_DENIED },
  );
}

/** The real path when it exists (symlinks cannot lead out of a root), else the resolved one. */
function real(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return resolve(path);
  }
}

/**
 * Throws SADP_DATASET_LOCATION_DENIED (PERMISSION_DENIED) unless `url` (a store
 * or object URL, or a path) may be read under `access`. The message repeats
 * the URL as given and never a resolved path.
 */
export function checkDatasetLocation(url: string, access: DatasetAccess): void {
  if (access === 'any' || url.startsWith('s3://')) return;
  let path: string;
  if (url.startsWith('file://')) {
    try {
      path = fileURLToPath(url);
    } catch {
      throw deniedError(url, 'not a valid file:// URL');
    }
  } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) {
    throw deniedError(url, 'unsupported scheme');
  } else if (!isAbsolute(url)) {
    throw deniedError(url, 'a relative path');
  } else {
    path = url;
  }
  const target = real(path);
  for (const root of access.localRoots) {
    const r = real(root);
    if (target === r || target.startsWith(r.endsWith(sep) ? r : r + sep)) return;
  }
  throw deniedError(url, 'outside the allowed local roots');
}
