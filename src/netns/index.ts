/** Container ports: a network namespace plugged into br-int (shared by the lab and the agent's netns driver). */
export { plugPort, portBatch, unplugPort, netnsExists, INTEGRATION_BRIDGE, CONTAINER_IFACE, type PortSpec, type PluggedPort } from './port.js';
