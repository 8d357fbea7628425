/**
 * Message codec: every message type round-trips (encode -> decode -> encode is
 * byte-identical), hand-checked wire bytes for the fixed-layout messages, error
 * names, multipart reassembly, and typed errors for bad input.
 */
import t from 'tap';
import {
  decodeMessage,
  encodeMessage,
  errorName,
  fieldByName,
  FIELDS,
  FlowSyntaxError,
  FrameSplitter,
  MultipartAssembler,
  OFPBCT,
  OFPCR_ROLE,
  OFPGT,
  OFPMBT,
  OFPMP,
  OFPMPF_MORE,
  OFPP,
  OFP_NO_BUFFER,
  packetInPort,
  OpenFlowDecodeError,
  OpenFlowEncodeError,
  parseFlow,
  parseGroup,
  parseMeter,
  parseInstructions,
  formatFlow,
  formatFieldValue,
  parseFieldValue,
  Writer,
  Reader,
  type OfMessage,
} from '../../../src/openflow/index.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const flow = parseFlow('table=2,priority=7,cookie=0x9,tcp,nw_dst=10.0.0.0/8,tp_dst=22,reg0=0x1 actions=ct(commit,zone=3),output:1');
const port = {
  portNo: 1,
  hwAddr: Buffer.from('020000000001', 'hex'),
  name: 'veth1',
  config: 0,
  state: 4,
  curr: 0x802,
  advertised: 0,
  supported: 0,
  peer: 0,
  currSpeed: 10_000_000,
  maxSpeed: 0,
};

const samples: OfMessage[] = [
  { type: 'hello', xid: 1, versions: [1, 4] },
  { type: 'error', xid: 2, errType: 2, errCode: 4, data: Buffer.from('040e0008deadbeef', 'hex') },
  { type: 'error', xid: 2, errType: 0xffff, errCode: 2313, experimenter: 0x4f4e4600, data: Buffer.alloc(0) },
  { type: 'echo_request', xid: 3, data: Buffer.from('abc') },
  { type: 'echo_reply', xid: 3, data: Buffer.from('abc') },
  { type: 'features_request', xid: 4 },
  { type: 'features_reply', xid: 4, datapathId: 0x0000aabbccddeeffn, nBuffers: 0, nTables: 254, auxiliaryId: 0, capabilities: 0x4f },
  { type: 'get_config_request', xid: 5 },
  { type: 'get_config_reply', xid: 5, flags: 0, missSendLen: 128 },
  { type: 'set_config', xid: 6, flags: 0, missSendLen: 0xffff },
  { type: 'barrier_request', xid: 7 },
  { type: 'barrier_reply', xid: 7 },
  { type: 'flow_mod', xid: 8, ...flow },
  { type: 'group_mod', xid: 9, ...parseGroup('group_id=5,type=select,bucket=weight:3,actions=output:1,bucket=watch_port:2,actions=output:2') },
  { type: 'meter_mod', xid: 10, ...parseMeter('meter=3,pktps,burst,bands=type=dscp_remark,rate=10,burst_size=5,prec_level=2') },
  {
    type: 'packet_in',
    xid: 0,
    bufferId: OFP_NO_BUFFER,
    totalLen: 60,
    reason: 1,
    tableId: 3,
    cookie: 0x55n,
    match: [{ field: fieldByName('in_port')!, value: Buffer.from('00000003', 'hex') }],
    data: Buffer.alloc(60, 7),
  },
  { type: 'packet_out', xid: 11, bufferId: OFP_NO_BUFFER, inPort: OFPP.CONTROLLER, actions: [{ type: 'output', port: 3, maxLen: 0 }], data: Buffer.alloc(42, 1) },
  {
    type: 'flow_removed',
    xid: 0,
    cookie: 1n,
    priority: 5,
    reason: 0,
    tableId: 1,
    durationSec: 2,
    durationNsec: 3,
    idleTimeout: 10,
    hardTimeout: 0,
    packetCount: 4n,
    byteCount: 5n,
    match: flow.match,
  },
  { type: 'port_status', xid: 0, reason: 0, port },
  { type: 'multipart_request', xid: 12, flags: 0, body: { mpType: OFPMP.FLOW, tableId: 0xff, outPort: OFPP.ANY, outGroup: 0xffffffff, cookie: 0n, cookieMask: 0n, match: flow.match } },
  { type: 'multipart_request', xid: 13, flags: 0, body: { mpType: OFPMP.AGGREGATE, tableId: 1, outPort: 2, outGroup: 3, cookie: 4n, cookieMask: 5n, match: [] } },
  { type: 'multipart_request', xid: 14, flags: 0, body: { mpType: OFPMP.TABLE } },
  { type: 'multipart_request', xid: 15, flags: 0, body: { mpType: OFPMP.PORT_STATS, portNo: OFPP.ANY } },
  { type: 'multipart_request', xid: 16, flags: 0, body: { mpType: OFPMP.GROUP, groupId: 0xfffffffc } },
  { type: 'multipart_request', xid: 17, flags: 0, body: { mpType: OFPMP.GROUP_DESC } },
  { type: 'multipart_request', xid: 18, flags: 0, body: { mpType: OFPMP.PORT_DESC } },
  { type: 'multipart_request', xid: 19, flags: 0, body: { mpType: OFPMP.DESC } },
  {
    type: 'multipart_reply',
    xid: 12,
    flags: 0,
    body: {
      mpType: OFPMP.FLOW,
      flows: [
        { tableId: 2, durationSec: 1, durationNsec: 2, priority: 7, idleTimeout: 0, hardTimeout: 0, flags: 0, cookie: 9n, packetCount: 1n, byteCount: 2n, match: flow.match, instructions: flow.instructions },
      ],
    },
  },
  { type: 'multipart_reply', xid: 13, flags: 0, body: { mpType: OFPMP.AGGREGATE, packetCount: 1n, byteCount: 2n, flowCount: 3 } },
  { type: 'multipart_reply', xid: 14, flags: 0, body: { mpType: OFPMP.TABLE, tables: [{ tableId: 0, activeCount: 5, lookupCount: 6n, matchedCount: 7n }] } },
  {
    type: 'multipart_reply',
    xid: 15,
    flags: 0,
    body: { mpType: OFPMP.PORT_STATS, ports: [{ portNo: 1, counters: Array.from({ length: 12 }, (_, i) => BigInt(i)), durationSec: 1, durationNsec: 2 }] },
  },
  {
    type: 'multipart_reply',
    xid: 16,
    flags: 0,
    body: { mpType: OFPMP.GROUP, groups: [{ groupId: 1, refCount: 2, packetCount: 3n, byteCount: 4n, durationSec: 5, durationNsec: 6, buckets: [{ packetCount: 1n, byteCount: 2n }] }] },
  },
  { type: 'multipart_reply', xid: 17, flags: 0, body: { mpType: OFPMP.GROUP_DESC, groups: [{ groupType: OFPGT.FF, groupId: 9, buckets: parseGroup('group_id=9,type=ff,bucket=watch_port:1,actions=output:1').buckets }] } },
  { type: 'multipart_reply', xid: 18, flags: 0, body: { mpType: OFPMP.PORT_DESC, ports: [port] } },
  { type: 'multipart_reply', xid: 19, flags: 0, body: { mpType: OFPMP.DESC, mfr: 'Nicira, Inc.', hw: 'Open vSwitch', sw: '3.1.0', serial: 'None', dp: 'None' } },
  { type: 'role_request', xid: 20, role: OFPCR_ROLE.MASTER, generationId: 7n },
  { type: 'role_reply', xid: 20, role: OFPCR_ROLE.MASTER, generationId: 7n },
  { type: 'bundle_control', xid: 21, bundleId: 1, ctrlType: OFPBCT.OPEN_REQUEST, flags: 3 },
  { type: 'bundle_add', xid: 22, bundleId: 1, flags: 3, message: { type: 'flow_mod', xid: 22, ...flow } },
  { type: 'unknown', xid: 23, msgType: 16, body: Buffer.from('0102030405060708', 'hex') },
];

t.test('every message type round-trips byte-exactly', async (t) => {
  for (const m of samples) {
    const bytes = encodeMessage(m);
    t.equal(bytes.readUInt16BE(2), bytes.length, `${m.type}: header length`);
    const d = decodeMessage(bytes);
    t.equal(d.type, m.type, `${m.type}: type`);
    t.equal(hex(encodeMessage(d)), hex(bytes), `${m.type}: decode -> encode identical`);
  }
});

t.test('fixed layouts checked by hand (OpenFlow 1.3.5 spec)', async (t) => {
  t.equal(hex(encodeMessage({ type: 'hello', xid: 1, versions: [4] })), '0400001000000001' + '00010008' + '00000010', 'HELLO with version bitmap');
  t.equal(hex(encodeMessage({ type: 'echo_request', xid: 0x10203040, data: Buffer.alloc(0) })), '0402000810203040');
  t.equal(hex(encodeMessage({ type: 'barrier_request', xid: 9 })), '0414000800000009');
  t.equal(hex(encodeMessage({ type: 'features_request', xid: 9 })), '0405000800000009');
  t.equal(hex(encodeMessage({ type: 'set_config', xid: 1, flags: 0, missSendLen: 128 })), '0409000c0000000100000080');
  t.equal(hex(encodeMessage({ type: 'role_request', xid: 1, role: 2, generationId: 5n })), '041800180000000100000002000000000000000000000005');
  const h = decodeMessage(Buffer.from('0600001000000001000100080000005e', 'hex'));
  t.same(h.type === 'hello' && h.versions, [1, 2, 3, 4, 6], 'HELLO from OVS (1.0-1.5 minus 1.4? bitmap 0x5e) decoded');
  const plain = decodeMessage(Buffer.from('0100000800000001', 'hex'));
  t.same(plain.type === 'hello' && plain.versions, [1], 'HELLO without elements: the header version');
});

t.test('error names', async (t) => {
  t.same(errorName(2, 4), { type: 'OFPET_BAD_ACTION', code: 'OFPBAC_BAD_OUT_PORT' });
  t.same(errorName(5, 1), { type: 'OFPET_FLOW_MOD_FAILED', code: 'OFPFMFC_TABLE_FULL' });
  t.same(errorName(3, 2), { type: 'OFPET_BAD_INSTRUCTION', code: 'OFPBIC_BAD_TABLE_ID' });
  t.same(errorName(0xffff, 2313, 0x4f4e4600), { type: 'ONF_BUNDLE', code: 'OFPBFC_MSG_FAILED' });
  t.same(errorName(0xffff, 7, 0x2320), { type: 'OFPET_EXPERIMENTER(NX)', code: '7' });
  t.same(errorName(0xffff, 7, 0x1234), { type: 'OFPET_EXPERIMENTER(0x1234)', code: '7' });
  t.same(errorName(99, 1), { type: 'OFPET_99', code: '1' });
  t.same(errorName(1, 99), { type: 'OFPET_BAD_REQUEST', code: '99' });
  const e = decodeMessage(encodeMessage(samples[1]!));
  t.ok(e.type === 'error' && hex(e.data) === '040e0008deadbeef', 'error carries the offending request bytes');
});

t.test('multipart reassembly', async (t) => {
  const a = new MultipartAssembler(5);
  const part = (n: number) => ({ mpType: OFPMP.TABLE, tables: Array.from({ length: n }, (_, i) => ({ tableId: i, activeCount: 0, lookupCount: 0n, matchedCount: 0n })) }) as const;
  t.equal(a.add(1, OFPMPF_MORE, part(2)), undefined, 'first part held');
  t.equal(a.pending, 1);
  const done = a.add(1, 0, part(1));
  t.equal(done?.mpType === OFPMP.TABLE && done.tables.length, 3, 'parts merged');
  t.equal(a.pending, 0);
  a.add(2, OFPMPF_MORE, part(3));
  t.throws(() => a.add(2, OFPMPF_MORE, part(3)), OpenFlowDecodeError, 'bounded');
  a.add(3, OFPMPF_MORE, part(1));
  t.throws(() => a.add(3, 0, { mpType: OFPMP.AGGREGATE, packetCount: 0n, byteCount: 0n, flowCount: 0 }), OpenFlowDecodeError, 'mixed types');
  a.add(4, OFPMPF_MORE, { mpType: OFPMP.AGGREGATE, packetCount: 0n, byteCount: 0n, flowCount: 0 });
  t.throws(() => a.add(4, 0, { mpType: OFPMP.AGGREGATE, packetCount: 0n, byteCount: 0n, flowCount: 0 }), OpenFlowDecodeError, 'non-list type in parts');
  a.add(5, OFPMPF_MORE, part(1));
  a.forget(5);
  t.equal(a.pending, 0);
});

t.test('frame splitter', async (t) => {
  const msgs = samples.slice(0, 12).map(encodeMessage);
  const all = Buffer.concat(msgs);
  for (const step of [1, 3, 7, 64, all.length]) {
    const s = new FrameSplitter();
    const got: string[] = [];
    for (let i = 0; i < all.length; i += step) s.push(all.subarray(i, i + step), (f) => got.push(hex(f)));
    t.same(got, msgs.map(hex), `chunks of ${step}`);
    t.equal(s.buffered, 0);
  }
  const s = new FrameSplitter();
  t.throws(() => s.push(Buffer.from('0400000400000001', 'hex'), () => {}), OpenFlowDecodeError, 'length < 8 rejected');
  t.throws(() => s.push(Buffer.from('0400000800000001', 'hex'), () => {}), OpenFlowDecodeError, 'stays failed');
  const v = new FrameSplitter(new Set([4]));
  t.throws(() => v.push(Buffer.from('0102000800000001', 'hex'), () => {}), OpenFlowDecodeError, 'wrong version rejected');
  const ok = new FrameSplitter(new Set([4]));
  let n = 0;
  ok.push(Buffer.from('0600000800000001', 'hex'), () => n++);
  t.equal(n, 1, 'HELLO of any version passes');
});

t.test('typed decode errors', async (t) => {
  const bad: [string, string][] = [
    ['04', 'shorter than header'],
    ['0400000900000001', 'length mismatch'],
    ['0102000800000001', 'old version non-hello'],
    ['0405000c0000000100000000', 'features_request with body'],
    ['040e00100000000100000000000000', 'truncated flow_mod'],
  ];
  for (const [h, what] of bad) t.throws(() => decodeMessage(Buffer.from(h, 'hex')), OpenFlowDecodeError, what);
  const fm = encodeMessage({ type: 'flow_mod', xid: 1, ...flow });
  // Claim a bigger match than the message holds.
  const lying = Buffer.from(fm);
  lying.writeUInt16BE(0x400, 50);
  t.throws(() => decodeMessage(lying), OpenFlowDecodeError, 'match length past the frame');
  // Unknown OXM field.
  const unk = Buffer.from(fm);
  unk.writeUInt16BE(0x7777, 52);
  t.throws(() => decodeMessage(unk), OpenFlowDecodeError, 'unknown OXM class');
  const d = decodeMessage(Buffer.from('04ff000c0000000101020304', 'hex'));
  t.equal(d.type, 'unknown', 'unknown message types are kept raw, not thrown');
  const exp = decodeMessage(Buffer.from('0404001000000001000023200000000a', 'hex'));
  t.equal(exp.type, 'unknown', 'unknown experimenter kept raw');
});

t.test('typed encode and syntax errors', async (t) => {
  t.throws(() => encodeMessage({ type: 'hello', xid: 1, versions: [40] }), OpenFlowEncodeError);
  t.throws(() => encodeMessage({ type: 'echo_request', xid: 1, data: Buffer.alloc(70000) }), OpenFlowEncodeError, 'oversized message');
  const f = fieldByName('reg0')!;
  const w = new Writer(16);
  t.throws(() => encodeMessage({ type: 'flow_mod', xid: 1, ...flow, match: [{ field: f, value: Buffer.alloc(3) }] }), OpenFlowEncodeError, 'wrong value size');
  t.throws(
    () => encodeMessage({ type: 'packet_out', xid: 1, bufferId: 0, inPort: 0, data: Buffer.alloc(0), actions: [{ type: 'load', dst: { field: f, ofs: 30, nBits: 4 }, value: 1n }] }),
    OpenFlowEncodeError,
    'subfield out of range',
  );
  void w;
  const bad = [
    'ip,nw_dst=10.0.0.300 actions=drop',
    'tp_dst=80 actions=drop',
    'frobnicate=1 actions=drop',
    'ip',
    'reg0=0x1,reg0=0x2 actions=drop',
    'actions=output:',
    'actions=frob:1',
    'actions=move:NXM_NX_REG0[0..7]->NXM_NX_REG1[0..15]',
    'actions=load:0x100->NXM_NX_REG0[0..7]',
    'actions=resubmit(1,2,3)',
    'actions=conjunction(1,3/2)',
    'actions=ct(zone=NXM_NX_REG0[0..40])',
    'actions=output:1)',
    'actions=goto_table:1,goto_table:2',
    'priority=70000 actions=drop',
    'dl_src=00:11 actions=drop',
    'ipv6,ipv6_src=1::2::3 actions=drop',
    'ct_state=+bogus actions=drop',
    'in_port=1/1 actions=drop',
    'dl_type=0x800,nw_ttl=1/2 actions=drop',
    'nw_proto=6 actions=drop',
    'actions=learn(limit=5)',
    'actions=learn(table=255)',
    'actions=learn(NXM_NX_REG0[0..3]=NXM_NX_REG1[])',
    'actions=learn(load:0x100->NXM_NX_REG0[0..3])',
    'actions=learn(load:NXM_NX_REG0[]->NXM_NX_REG1[0..3])',
    'actions=learn(load:oops)',
    'actions=learn(NXM_NX_REG0[0..3]=0x40)',
    'ip actions=learn(nw_dst=10.0.0.0/8)',
  ];
  for (const b of bad) t.throws(() => parseFlow(b), FlowSyntaxError, b);
  t.throws(() => parseGroup('type=all,bucket=output:1'), FlowSyntaxError);
  t.throws(() => parseGroup('group_id=1,type=bogus'), FlowSyntaxError);
  t.throws(() => parseMeter('kbps,bands=type=drop,rate=1'), FlowSyntaxError);
  t.throws(() => parseMeter('meter=1,bands=rate=1'), FlowSyntaxError);
  t.throws(() => parseMeter('meter=1,bands=type=weird'), FlowSyntaxError);
});

t.test('field values', async (t) => {
  // Every field is reachable by its names and survives the wire: a distinctive value
  // (and mask where maskable) in a flow_mod match decodes to the same field and bytes.
  let n = 0;
  for (const [i, f] of FIELDS.entries()) {
    if (fieldByName(f.name) !== f || fieldByName(f.nxmName) !== f) t.fail(`${f.name}: name lookup`);
    const fill = (k: number) => {
      const b = new Uint8Array(f.bytes).map((_, j) => (i * 37 + j * 11 + k) & 0xff);
      if (f.bits % 8) b[0]! &= (1 << f.bits % 8) - 1; // only the field's bits
      return b;
    };
    const tlv = f.maskable ? { field: f, value: fill(1), mask: fill(2) } : { field: f, value: fill(1) };
    const back = decodeMessage(encodeMessage({ ...parseFlow('actions=drop'), type: 'flow_mod', xid: 1, match: [tlv] }));
    const got = back.type === 'flow_mod' ? back.match[0] : undefined;
    if (got?.field !== f || !Buffer.from(got.value).equals(tlv.value) || (tlv.mask && !Buffer.from(got.mask ?? []).equals(tlv.mask))) {
      t.fail(`${f.name}: wire round trip`);
    } else n++;
  }
  t.equal(n, FIELDS.length, `all ${FIELDS.length} fields round-trip on the wire`);
  const cases: [string, string, string][] = [
    ['ipv6_src', '::ffff:1.2.3.4', '::ffff:1.2.3.4'],
    ['ipv6_src', '::1.2.3.4', '::1.2.3.4'],
    ['ipv6_src', '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ['ipv6_src', '2001:db8::/ffff:ffff::ff', '2001:db8::/ffff:ffff::ff'],
    ['nw_src', '10.1.0.0/255.255.0.0', '10.1.0.0/16'],
    ['nw_src', '10.1.2.3/32', '10.1.2.3'],
    ['ct_state', '0x21/0x21', '+new+trk'],
    ['ct_state', '0', '0'],
    ['ct_zone', '5', '5'],
    ['tun_id', '0x5/0xf', '0x5/0xf'],
    ['metadata', '0', '0'],
    ['in_port', 'CONTROLLER', 'CONTROLLER'],
    ['in_port', '65533', 'CONTROLLER'],
    ['ipv6_label', '0x1/0xf', '0x00001/0x0000f'],
    ['ct_label', '0x5/0xff', '0x5/0xff'],
  ];
  for (const [name, text, want] of cases) {
    const f = fieldByName(name)!;
    const p = parseFieldValue(f, text);
    t.equal(formatFieldValue(f, p.value, p.mask), want, `${name}=${text}`);
  }
  t.equal(formatFlow(parseFlow('vlan_tci=0x1000/0x1000,dl_vlan_pcp=3 actions=drop'.replace('vlan_tci=0x1000/0x1000,', ''))), 'dl_vlan_pcp=3 actions=drop');
  t.same(parseInstructions('drop'), []);
  t.equal(formatFlow({ ...parseFlow('actions=controller'), cookie: 0n }), 'actions=CONTROLLER:65535');
  t.equal(formatFlow(parseFlow('actions=controller:100')), 'actions=CONTROLLER:100');
  t.equal(formatFlow(parseFlow('actions=strip_vlan,ct(commit,alg=tftp),ct(alg=99)')), 'actions=pop_vlan,ct(commit,alg=tftp),ct(alg=99)');
  t.equal(formatFlow(parseFlow('duration=1.2s, n_packets=0, n_bytes=0, priority=1 actions=drop')), 'priority=1 actions=drop', 'dump-flows stats are ignored');
  t.equal(formatFlow(parseFlow('actions=resubmit(LOCAL,)')), 'actions=resubmit:LOCAL');
});

t.test('fields OVS does not print are still printed, never dropped', async (t) => {
  const f = (n: string) => fieldByName(n)!;
  const match = [
    { field: f('in_phy_port'), value: Buffer.from('00000002', 'hex') },
    { field: f('pbb_isid'), value: Buffer.from('000102', 'hex'), mask: Buffer.from('00ffff', 'hex') },
    { field: f('xreg3'), value: Buffer.from('0000000000000005', 'hex') },
    { field: f('tcp_dst'), value: Buffer.from('0050', 'hex') },
  ];
  const bytes = encodeMessage({ type: 'flow_mod', xid: 1, ...flow, match });
  const d = decodeMessage(bytes);
  if (d.type !== 'flow_mod') throw new Error('flow_mod expected');
  t.equal(formatFlow({ ...d, instructions: [] }), 'cookie=0x9, table=2, priority=7,tp_dst=80,in_phy_port=2,pbb_isid=0x102/0xffff,xreg3=0x5 actions=drop');
  t.equal(hex(encodeMessage(d)), hex(bytes));
});

t.test('bundle add rejects an inner frame that lies about its length', async (t) => {
  const b = encodeMessage(samples.find((s) => s.type === 'bundle_add')!);
  const lie = Buffer.from(b);
  lie.writeUInt16BE(4, 16 + 2 + 2 + 4 + 2);
  t.throws(() => decodeMessage(lie), OpenFlowDecodeError);
  void OFPMBT;
});

t.test('Writer.take hands out batches that later writes never touch', async (t) => {
  const w = new Writer(4096);
  const taken: Buffer[] = [];
  for (let batch = 0; batch < 20; batch++) {
    // Batches of varying size, some larger than the writer's initial buffer.
    const n = [100, 1500, 3000, 5000][batch % 4]!;
    for (let i = 0; i < n; i++) w.u8(batch);
    const out = w.take();
    t.equal(out.length, n);
    taken.push(out);
  }
  taken.forEach((out, batch) => t.ok(out.every((b) => b === batch), `batch ${batch} intact`));
});

t.test('Reader: u64 zero and non-zero, views into the frame', async (t) => {
  const b = Buffer.from('00000000000000008000000000000001aabbcc', 'hex');
  const r = new Reader(b.subarray(0), 0, b.length);
  t.equal(r.u64(), 0n);
  t.equal(r.u64(), 0x8000000000000001n);
  const sub = r.sub(3, 'tail');
  t.same([...sub.view(2)], [0xaa, 0xbb]);
  t.same([...sub.view(1)], [0xcc]);
  t.throws(() => sub.view(1), OpenFlowDecodeError);
});

t.test('packet_in: fixed fields at decode, match and data on first access, whole frame checked at decode', async (t) => {
  const inPort = fieldByName('in_port')!;
  const reg0 = fieldByName('reg0')!;
  const m = {
    type: 'packet_in' as const,
    xid: 7,
    bufferId: OFP_NO_BUFFER,
    totalLen: 60,
    reason: 1,
    tableId: 3,
    cookie: 0x55n,
    match: [
      { field: inPort, value: Buffer.from('00000009', 'hex') },
      { field: reg0, value: Buffer.from('00000001', 'hex'), mask: Buffer.from('000000ff', 'hex') },
    ],
    data: Buffer.alloc(60, 7),
  };
  const bytes = encodeMessage(m);
  const d = decodeMessage(bytes);
  if (d.type !== 'packet_in') return t.fail('not a packet_in');
  t.same([d.xid, d.bufferId, d.totalLen, d.reason, d.tableId, d.cookie], [7, OFP_NO_BUFFER, 60, 1, 3, 0x55n], 'fixed fields');
  t.equal(packetInPort(d), 9, 'in_port read from the frame');
  t.same(
    d.match.map((x) => [x.field.name, hex(x.value), x.mask && hex(x.mask)]),
    [
      ['in_port', '00000009', undefined],
      ['reg0', '00000001', '000000ff'],
    ],
    'match built on access',
  );
  t.equal(d.match, d.match, 'built once');
  t.equal(hex(d.data), hex(m.data), 'data is the frame payload');
  bytes[bytes.length - 1] = 8;
  t.equal(d.data[59], 8, 'data is a view into the frame, not a copy');
  d.match = [{ field: inPort, value: Buffer.from('00000002', 'hex') }];
  d.data = Buffer.from([1, 2]);
  t.equal(packetInPort(d), 2, 'assigned match wins over the frame');
  t.equal(hex(encodeMessage(d)), hex(encodeMessage({ ...m, match: d.match, data: d.data })), 'assigned fields are encoded');
  t.equal(packetInPort({ ...m, match: [] }), undefined, 'no in_port in a plain object');
  t.equal(packetInPort(m), 9, 'plain objects work too');
  // The match is checked at decode time, so touching it later cannot throw.
  const unk = encodeMessage(m);
  unk.writeUInt16BE(0x7777, 8 + 16 + 4); // first OXM's class
  t.throws(() => decodeMessage(unk), OpenFlowDecodeError, 'unknown OXM in a packet_in throws at decode');
  const lying = encodeMessage(m);
  lying.writeUInt16BE(0x400, 8 + 16 + 2); // match length past the frame
  t.throws(() => decodeMessage(lying), OpenFlowDecodeError, 'match length past the frame');
  const badMaskLen = encodeMessage(m);
  badMaskLen[8 + 16 + 4 + 8 + 3] = 7; // reg0/mask: OXM length 7
  t.throws(() => decodeMessage(badMaskLen), OpenFlowDecodeError, 'lying OXM length');
});

t.test('packet_out layout: output-only actions (fast path) and mixed actions (generic path)', async (t) => {
  const data = Buffer.from('aabbcc', 'hex');
  const outs = encodeMessage({
    type: 'packet_out',
    xid: 0x01020304,
    bufferId: OFP_NO_BUFFER,
    inPort: 5,
    actions: [
      { type: 'output', port: OFPP.FLOOD, maxLen: 0 },
      { type: 'output', port: 2, maxLen: 0xffe5 },
    ],
    data,
  });
  const act = (port: string, maxLen: string) => '00000010' + port + maxLen + '000000000000';
  t.equal(hex(outs), '040d003b01020304' + 'ffffffff' + '00000005' + '0020' + '000000000000' + act('fffffffb', '0000') + act('00000002', 'ffe5') + 'aabbcc');
  const mixed = encodeMessage({ type: 'packet_out', xid: 1, bufferId: 7, inPort: 1, actions: [{ type: 'pop_vlan' }, { type: 'output', port: 3, maxLen: 0 }], data });
  t.equal(hex(mixed), '040d003300000001' + '00000007' + '00000001' + '0018' + '000000000000' + '0012000800000000' + act('00000003', '0000') + 'aabbcc');
  t.throws(
    () => encodeMessage({ type: 'packet_out', xid: 1, bufferId: 7, inPort: 1, actions: [{ type: 'output', port: 3, maxLen: 0 }], data: Buffer.alloc(0xffff) }),
    OpenFlowEncodeError,
    'too long',
  );
});
