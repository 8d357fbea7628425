/** Topology hosts as the scheduler sees them. */
import type { TopologyDoc } from '../model/index.js';
import type { PlacementHost } from './types.js';

/** The document's hosts with their labels and declared resources (none declared: not limited). */
export function hostsOf(doc: Pick<TopologyDoc, 'hosts'>): PlacementHost[] {
  return doc.hosts.map((h) => {
    const p: PlacementHost = { name: h.name, labels: h.labels };
    if (h.resources?.cpu !== undefined) p.cpu = h.resources.cpu;
    if (h.resources?.memory !== undefined) p.memory = h.resources.memory;
    return p;
  });
}
