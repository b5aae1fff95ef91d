// Self time of a V8 CPU profile (`node --cpu-prof`) grouped by package: npm
// packages by name, Node's internals by module (node:http2, node:buffer, ...),
// this project's files by folder, and V8's own buckets ((garbage collector),
// (program): native code outside JS, e.g. nghttp2 and syscalls). Idle time is
// left out, so the shares are of the CPU the process used.
import { readFile } from 'node:fs/promises';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileGroup {
  group: string;
  ms: number;
  share: number;
}

function groupOf(frame: ProfileNode['callFrame']): string {
  const { url, functionName } = frame;
  if (url === '') return functionName.startsWith('(') ? functionName : `(native) ${functionName}`;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1] as string;
  const internal = /^node:internal\/([^/]+)/.exec(url);
  if (internal) return `node:${(internal[1] as string).replace(/\.js$/, '')}`;
  if (url.startsWith('node:')) return url;
  const own = /\/dist[^/]*\/(.+)\/[^/]+$/.exec(url);
  if (own) return `sadp:${own[1]}`;
  return url;
}

/** Busy milliseconds and the groups by self time, largest first. */
export async function summarizeProfile(path: string): Promise<{ busyMs: number; groups: ProfileGroup[] }> {
  const profile = JSON.parse(await readFile(path, 'utf8')) as CpuProfile;
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const byGroup = new Map<string, number>();
  let busy = 0;
  profile.samples.forEach((id, i) => {
    const node = nodes.get(id);
    if (!node) return;
    const group = groupOf(node.callFrame);
    if (group === '(idle)') return;
    const us = profile.timeDeltas[i] ?? 0;
    busy += us;
    byGroup.set(group, (byGroup.get(group) ?? 0) + us);
  });
  const groups = [...byGroup]
    .map(([group, us]) => ({ group, ms: us / 1000, share: busy > 0 ? us / busy : 0 }))
    .sort((a, b) => b.ms - a.ms);
  return { busyMs: busy / 1000, groups };
}
