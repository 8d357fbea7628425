/** Names for OpenFlow 1.3 error types and codes (spec §A.4.4) and the ONF bundle errors OVS sends. */
const types: Record<number, [string, string[]]> = {
  0: ['OFPET_HELLO_FAILED', ['INCOMPATIBLE', 'EPERM']],
  1: [
    'OFPET_BAD_REQUEST',
    ['BAD_VERSION', 'BAD_TYPE', 'BAD_MULTIPART', 'BAD_EXPERIMENTER', 'BAD_EXP_TYPE', 'EPERM', 'BAD_LEN', 'BUFFER_EMPTY', 'BUFFER_UNKNOWN', 'BAD_TABLE_ID', 'IS_SLAVE', 'BAD_PORT', 'BAD_PACKET', 'MULTIPART_BUFFER_OVERFLOW'],
  ],
  2: [
    'OFPET_BAD_ACTION',
    ['BAD_TYPE', 'BAD_LEN', 'BAD_EXPERIMENTER', 'BAD_EXP_TYPE', 'BAD_OUT_PORT', 'BAD_ARGUMENT', 'EPERM', 'TOO_MANY', 'BAD_QUEUE', 'BAD_OUT_GROUP', 'MATCH_INCONSISTENT', 'UNSUPPORTED_ORDER', 'BAD_TAG', 'BAD_SET_TYPE', 'BAD_SET_LEN', 'BAD_SET_ARGUMENT'],
  ],
  3: ['OFPET_BAD_INSTRUCTION', ['UNKNOWN_INST', 'UNSUP_INST', 'BAD_TABLE_ID', 'UNSUP_METADATA', 'UNSUP_METADATA_MASK', 'BAD_EXPERIMENTER', 'BAD_EXP_TYPE', 'BAD_LEN', 'EPERM']],
  4: [
    'OFPET_BAD_MATCH',
    ['BAD_TYPE', 'BAD_LEN', 'BAD_TAG', 'BAD_DL_ADDR_MASK', 'BAD_NW_ADDR_MASK', 'BAD_WILDCARDS', 'BAD_FIELD', 'BAD_VALUE', 'BAD_MASK', 'BAD_PREREQ', 'DUP_FIELD', 'EPERM'],
  ],
  5: ['OFPET_FLOW_MOD_FAILED', ['UNKNOWN', 'TABLE_FULL', 'BAD_TABLE_ID', 'OVERLAP', 'EPERM', 'BAD_TIMEOUT', 'BAD_COMMAND', 'BAD_FLAGS']],
  6: [
    'OFPET_GROUP_MOD_FAILED',
    ['GROUP_EXISTS', 'INVALID_GROUP', 'WEIGHT_UNSUPPORTED', 'OUT_OF_GROUPS', 'OUT_OF_BUCKETS', 'CHAINING_UNSUPPORTED', 'WATCH_UNSUPPORTED', 'LOOP', 'UNKNOWN_GROUP', 'CHAINED_GROUP', 'BAD_TYPE', 'BAD_COMMAND', 'BAD_BUCKET', 'BAD_WATCH', 'EPERM'],
  ],
  7: ['OFPET_PORT_MOD_FAILED', ['BAD_PORT', 'BAD_HW_ADDR', 'BAD_CONFIG', 'BAD_ADVERTISE', 'EPERM']],
  8: ['OFPET_TABLE_MOD_FAILED', ['BAD_TABLE', 'BAD_CONFIG', 'EPERM']],
  9: ['OFPET_QUEUE_OP_FAILED', ['BAD_PORT', 'BAD_QUEUE', 'EPERM']],
  10: ['OFPET_SWITCH_CONFIG_FAILED', ['BAD_FLAGS', 'BAD_LEN', 'EPERM']],
  11: ['OFPET_ROLE_REQUEST_FAILED', ['STALE', 'UNSUP', 'BAD_ROLE']],
  12: [
    'OFPET_METER_MOD_FAILED',
    ['UNKNOWN', 'METER_EXISTS', 'INVALID_METER', 'UNKNOWN_METER', 'BAD_COMMAND', 'BAD_FLAGS', 'BAD_RATE', 'BAD_BURST', 'BAD_BAND', 'BAD_BAND_VALUE', 'OUT_OF_METERS', 'OUT_OF_BANDS'],
  ],
  13: ['OFPET_TABLE_FEATURES_FAILED', ['BAD_TABLE', 'BAD_METADATA', 'BAD_TYPE', 'BAD_LEN', 'BAD_ARGUMENT', 'EPERM']],
};

const PREFIX = ['OFPHFC', 'OFPBRC', 'OFPBAC', 'OFPBIC', 'OFPBMC', 'OFPFMFC', 'OFPGMFC', 'OFPPMFC', 'OFPTMFC', 'OFPQOFC', 'OFPSCFC', 'OFPRRFC', 'OFPMMFC', 'OFPTFFC'];

const bundleCodes = [
  'UNKNOWN',
  'EPERM',
  'BAD_ID',
  'BUNDLE_EXIST',
  'BUNDLE_CLOSED',
  'OUT_OF_BUNDLES',
  'BAD_TYPE',
  'BAD_FLAGS',
  'MSG_BAD_LEN',
  'MSG_BAD_XID',
  'MSG_UNSUP',
  'MSG_CONFLICT',
  'MSG_TOO_MANY',
  'MSG_FAILED',
  'TIMEOUT',
  'BUNDLE_IN_PROGRESS',
];

/** e.g. { type: 'OFPET_BAD_ACTION', code: 'OFPBAC_BAD_OUT_PORT' } */
export function errorName(errType: number, errCode: number, experimenter?: number): { type: string; code: string } {
  if (errType === 0xffff) {
    if (experimenter === 0x4f4e4600 && errCode >= 2300 && errCode < 2300 + bundleCodes.length) {
      return { type: 'ONF_BUNDLE', code: `OFPBFC_${bundleCodes[errCode - 2300]}` };
    }
    const exp = experimenter === 0x2320 ? 'NX' : experimenter === 0x4f4e4600 ? 'ONF' : `0x${(experimenter ?? 0).toString(16)}`;
    return { type: `OFPET_EXPERIMENTER(${exp})`, code: String(errCode) };
  }
  const t = types[errType];
  if (!t) return { type: `OFPET_${errType}`, code: String(errCode) };
  const prefix = PREFIX[errType]!;
  const c = t[1][errCode];
  return { type: t[0], code: c ? `${prefix}_${c}` : String(errCode) };
}
