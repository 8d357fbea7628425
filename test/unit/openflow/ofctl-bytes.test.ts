/**
 * Byte-exact oracle: ovs-ofctl -O OpenFlow13 is pointed at a fake switch of
 * this test; what it sends for each flow / group / meter / bundle must equal
 * Tenet's encoding of the same text, decode -> print -> parse -> encode must be
 * the identity, and Tenet's printing must equal ovs-ofctl's own printing of
 * those bytes (`ovs-ofctl ofp-parse`).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import {
  decodeMessage,
  encodeMessage,
  formatFlow,
  formatGroup,
  formatInstructions,
  formatMatch,
  formatMeter,
  OFPBCT,
  OFPBF,
  OFPFC,
  parseFlow,
  parseGroup,
  parseMeter,
  type OfMessage,
} from '../../../src/openflow/index.js';
import { FLOW_CORPUS } from './corpus.js';
import { captureOfctl } from './fake-switch.js';

const dir = mkdtempSync(join(tmpdir(), 'tenet-ofbytes-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function ofpParse(frames: Buffer[]): string[] {
  const f = join(dir, `frames-${Math.random()}.bin`);
  writeFileSync(f, Buffer.concat(frames));
  // ofp-parse prints one message per entry; continuation lines start without "OFPT_".
  const out = execFileSync('ovs-ofctl', ['ofp-parse', f], { encoding: 'utf8' });
  return out.split(/\n(?=OFPT_|ONFT_)/).map((s) => s.trim());
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

t.test('flow_mod corpus: bytes equal ovs-ofctl, print equals ovs-ofctl, round trip is identity', async (t) => {
  const file = join(dir, 'flows.txt');
  writeFileSync(file, FLOW_CORPUS.join('\n') + '\n');
  const frames = await captureOfctl(['add-flows', file]);
  t.equal(frames.length, FLOW_CORPUS.length, 'one flow_mod per flow');
  const printed = ofpParse(frames);
  FLOW_CORPUS.forEach((text, i) => {
    const theirs = frames[i]!;
    const xid = theirs.readUInt32BE(4);
    const ours = encodeMessage({ type: 'flow_mod', xid, ...parseFlow(text) });
    t.equal(hex(ours), hex(theirs), `bytes: ${text}`);

    const decoded = decodeMessage(theirs);
    if (decoded.type !== 'flow_mod') throw new Error('not a flow_mod');
    const again = encodeMessage({ type: 'flow_mod', xid, ...parseFlow(formatFlow(decoded)) });
    t.equal(hex(again), hex(theirs), `decode->print->parse->encode: ${text}`);
    t.equal(hex(encodeMessage(decoded)), hex(theirs), `decode->encode: ${text}`);

    // ovs-ofctl's flow_mod print: "ADD [table:N ]<match> [cookie:..] [idle:..] [hard:..] [flags ]actions=..."
    const raw = printed[i]!.replace(/^OFPT_FLOW_MOD \(OF1\.3\) \(xid=0x[0-9a-f]+\): ADD /, '');
    const at = raw.indexOf('actions=');
    const head = raw
      .slice(0, at)
      .replace(/(^| )table:\d+ /, '$1')
      .replace(/ ?cookie:0x[0-9a-f]+/, '')
      .replace(/ ?(idle|hard):\d+/g, '')
      .replace(/ ?(send_flow_rem|check_overlap)/g, '')
      .trim();
    const line = [head, raw.slice(at)].filter(Boolean).join(' ');
    const mine = [formatMatch(decoded.match, decoded.priority), `actions=${formatInstructions(decoded.instructions)}`].filter(Boolean).join(' ');
    t.equal(mine, line, `print: ${text}`);
  });
});

t.test('delete / modify commands match ovs-ofctl', async (t) => {
  const cases: [string, string[], number][] = [
    ['table=1,ip,nw_dst=10.0.0.1', ['del-flows'], OFPFC.DELETE],
    ['cookie=0x5/0xff,table=2', ['del-flows'], OFPFC.DELETE],
    ['priority=5,tcp,tp_dst=22', ['--strict', 'del-flows'], OFPFC.DELETE_STRICT],
    ['table=1,ip actions=output:3', ['mod-flows'], OFPFC.MODIFY],
  ];
  for (const [text, cmd, command] of cases) {
    const extra = cmd.slice(0, -1);
    const frames = await captureOfctl([cmd.at(-1)!, text], extra);
    const theirs = frames[0]!;
    const ours = encodeMessage({ type: 'flow_mod', xid: theirs.readUInt32BE(4), ...parseFlow(text, { command }) });
    t.equal(hex(ours), hex(theirs), `${cmd.join(' ')} ${text}`);
  }
});

const GROUPS = [
  'group_id=1,type=select,bucket=weight:100,actions=output:1,bucket=weight:50,actions=output:2',
  'group_id=2,type=all,bucket=actions=output:1,bucket=actions=output:2',
  'group_id=3,type=indirect,bucket=actions=set_field:0x5->reg0,output:3',
  'group_id=4,type=ff,bucket=watch_port:1,actions=output:1,bucket=watch_port:2,watch_group:4,actions=output:2',
  'group_id=5,type=select,bucket=actions=set_field:00:00:00:00:00:01->eth_dst,output:1,bucket=actions=output:2',
];

t.test('group_mod: bytes and print equal ovs-ofctl', async (t) => {
  const file = join(dir, 'groups.txt');
  writeFileSync(file, GROUPS.join('\n') + '\n');
  const frames = await captureOfctl(['add-groups', file]);
  t.equal(frames.length, GROUPS.length);
  const printed = ofpParse(frames);
  GROUPS.forEach((text, i) => {
    const theirs = frames[i]!;
    const ours = encodeMessage({ type: 'group_mod', xid: theirs.readUInt32BE(4), ...parseGroup(text) });
    t.equal(hex(ours), hex(theirs), `bytes: ${text}`);
    const d = decodeMessage(theirs);
    if (d.type !== 'group_mod') throw new Error('not a group_mod');
    t.equal(formatGroup(d), printed[i]!.split('\n')[1]!.trim().replace(/^ADD /, ''), `print: ${text}`);
    t.equal(formatGroup(d), text, 'print is the input text');
  });
});

const METERS = [
  'meter=1,kbps,burst,stats,bands=type=drop,rate=1000,burst_size=100',
  'meter=2,pktps,bands=type=dscp_remark,rate=500,prec_level=1',
  'meter=3,kbps,bands=type=drop,rate=100,type=drop,rate=200',
];

t.test('meter_mod: bytes equal ovs-ofctl', async (t) => {
  for (const text of METERS) {
    const [theirs] = await captureOfctl(['add-meter', text]);
    const ours = encodeMessage({ type: 'meter_mod', xid: theirs!.readUInt32BE(4), ...parseMeter(text) });
    t.equal(hex(ours), hex(theirs!), `bytes: ${text}`);
    const d = decodeMessage(theirs!);
    if (d.type !== 'meter_mod') throw new Error('not a meter_mod');
    t.equal(formatMeter(d), text, `print: ${text}`);
  }
});

t.test('bundle: open / add / commit bytes equal ovs-ofctl --bundle', async (t) => {
  const flows = ['table=1,priority=10,ip,nw_dst=10.0.0.1 actions=output:1', 'table=2,tcp,tp_dst=80 actions=drop', 'reg3=0x7 actions=resubmit(,2)'];
  const file = join(dir, 'bundle.txt');
  writeFileSync(file, flows.join('\n') + '\n');
  const frames = await captureOfctl(['add-flows', file], ['--bundle']);
  const msgs = frames.map((f) => decodeMessage(f));
  t.same(
    msgs.map((m) => (m.type === 'bundle_control' ? `ctl:${m.ctrlType}` : m.type)),
    ['ctl:0', 'bundle_add', 'bundle_add', 'bundle_add', 'ctl:4'],
    'open, 3 adds, commit',
  );
  const open = msgs[0] as Extract<OfMessage, { type: 'bundle_control' }>;
  t.equal(open.flags, OFPBF.ATOMIC | OFPBF.ORDERED, 'ovs-ofctl opens atomic+ordered');
  t.equal(hex(encodeMessage({ type: 'bundle_control', xid: open.xid, bundleId: open.bundleId, ctrlType: OFPBCT.OPEN_REQUEST, flags: 3 })), hex(frames[0]!));
  flows.forEach((text, i) => {
    const theirs = frames[i + 1]!;
    const xid = theirs.readUInt32BE(4);
    const ours = encodeMessage({
      type: 'bundle_add',
      xid,
      bundleId: open.bundleId,
      flags: 3,
      message: { type: 'flow_mod', xid, ...parseFlow(text) },
    });
    t.equal(hex(ours), hex(theirs), `bundle_add: ${text}`);
    t.equal(hex(encodeMessage(msgs[i + 1]!)), hex(theirs), 'decode->encode of bundle_add');
  });
  const commit = msgs[4] as Extract<OfMessage, { type: 'bundle_control' }>;
  t.equal(hex(encodeMessage({ type: 'bundle_control', xid: commit.xid, bundleId: open.bundleId, ctrlType: OFPBCT.COMMIT_REQUEST, flags: 3 })), hex(frames[4]!));
});
