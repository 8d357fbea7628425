/** Host switch manager: Tenet's desired OVS configuration on one host, over OVSDB. */
export { HostSwitch, type HostSwitchOptions, type EnsureResult, type Binding, type BindingEvent } from './manager.js';
export {
  planBridge,
  planTunnels,
  tunnelPortName,
  findBridge,
  VswitchError,
  PEER_KEY,
  SWITCH_TABLES,
  type BridgeSpec,
  type TunnelSpec,
  type TunnelPeer,
  type TunnelPlanSummary,
  type SwitchView,
} from './plan.js';
