/** Per-host setup: Open vSwitch, br-phy with the underlay, br-int. Shared by the lab and `tenet host setup` (docs/LAB.md). */
export { setupHost, teardownHost, startVswitchd, vsctl, socketAnswers, HostSetupError, type HostSetupOptions, type HostSetupResult, type HostTeardownOptions, type OvsMode } from './setup.js';
export {
  INTEGRATION_BRIDGE,
  UNDERLAY_BRIDGE,
  OVSDB_TCP_PORT,
  SYSTEM_OVS_RUNDIR,
  DEFAULT_OWN_RUNDIR,
  ovsPaths,
  ovsEnv,
  ovsdbListen,
  parseCidr,
  parseIpAddrLines,
  linkHolding,
  bridgeArgs,
  managersWith,
  type OvsPaths,
  type DatapathType,
  type LinkAddress,
} from './plan.js';
