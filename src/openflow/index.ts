/**
 * OpenFlow 1.3 southbound: codec (messages, OXM/NXM fields, actions, bundles),
 * ovs-ofctl-compatible flow text, frame splitter and the switch channel.
 */
export * from './errors.js';
export { Writer, Reader } from './wire.js';
export { FIELDS, fieldByName, fieldByHeader, nxmHeader, type OxmField, type OxmTlv, type Match } from './fields.js';
export * from './actions.js';
export * from './messages.js';
export { FrameSplitter, MAX_FRAME } from './framing.js';
export { errorName } from './errnames.js';
export {
  parseFlow,
  formatFlow,
  formatMatch,
  formatInstructions,
  formatAction,
  parseInstructions,
  parseGroup,
  formatGroup,
  parseMeter,
  formatMeter,
  parseFieldValue,
  formatFieldValue,
  parsePort,
  formatPort,
  type PrintableFlow,
} from './flowtext.js';
export { MultipartAssembler } from './multipart.js';
export {
  OpenFlowServer,
  SwitchConnection,
  BundleError,
  type BundleItem,
  type BundleFailure,
  type BundleTiming,
  type ChannelOptions,
  type ListenOptions,
} from './channel.js';
