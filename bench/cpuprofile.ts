/**
 * The shape of a V8 `.cpuprofile` (from `node --cpu-prof`) and the walk over its call tree that
 * the area summaries share (`bench/http.ts`, `bench/cluster_profile.ts`).
 * @module
 */

export interface CallFrame {
  functionName: string;
  url: string;
}
export interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
export interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** A profile's nodes by id and each node's parent, and whether a sample's stack is inside node's HTTP server. */
export function profileTree(prof: Profile): { byId: Map<number, ProfileNode>; parent: Map<number, number>; inHttpServer: (leaf: number) => boolean } {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of prof.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const inHttpServer = (leaf: number): boolean => {
    for (let id: number | undefined = leaf; id !== undefined; id = parent.get(id)) if (byId.get(id)!.callFrame.url === 'node:_http_server') return true;
    return false;
  };
  return { byId, parent, inHttpServer };
}

/**
 * Busy time by area (µs) of the samples from the first one inside node's HTTP server on (start-up
 * excluded), and the idle and whole time; `onBusy` sees each busy sample (its leaf node id).
 */
export function tallyAreas(
  prof: Profile,
  inHttpServer: (leaf: number) => boolean,
  areaOf: (leaf: number) => string,
  onBusy?: (leaf: number, area: string, dt: number) => void,
): { byArea: Map<string, number>; idle: number; all: number } {
  const byArea = new Map<string, number>();
  let idle = 0;
  let all = 0;
  let started = false;
  for (let i = 0; i < prof.samples.length; i++) {
    started ||= inHttpServer(prof.samples[i]);
    if (!started) continue;
    const dt = prof.timeDeltas[i] ?? 0;
    all += dt;
    const a = areaOf(prof.samples[i]);
    if (a === '(idle)') {
      idle += dt;
      continue;
    }
    byArea.set(a, (byArea.get(a) ?? 0) + dt);
    onBusy?.(prof.samples[i], a, dt);
  }
  return { byArea, idle, all };
}
