/**
 * node-sequencer: the sequencer as a plain Node program, the baseline an
 * application team would write first. Same job and checks as
 * bench/baseline/udp-sequencer.c, but one datagram per event and one send
 * per datagram through node:dgram.
 *
 *   tsx bench/baseline/node-sequencer.ts [--port 7400] --group-addr A
 *       [--group-port 7500] [--group-id 1] [--session 1] [--sequencer-id 1]
 *       [--iface-addr IP]
 *
 * Prints {"event":"ready",...} once bound, and one JSON line of counters on
 * SIGTERM/SIGINT.
 */
import dgram from 'node:dgram';
import { parseArgs } from 'node:util';
import { MsgType, XSEQ_DEFAULT_PORT, XSEQ_HDR_LEN, XSEQ_MAGIC, XSEQ_MAX_PAYLOAD, XSEQ_VERSION, MSG_TYPE_MAX } from '../../bpf/wire.ts';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: String(XSEQ_DEFAULT_PORT) },
    'group-addr': { type: 'string' },
    'group-port': { type: 'string', default: '7500' },
    'group-id': { type: 'string', default: '1' },
    session: { type: 'string', default: '1' },
    'sequencer-id': { type: 'string', default: '1' },
    'iface-addr': { type: 'string' },
  },
});

const port = Number(values.port);
const groupAddr = values['group-addr'];
const groupPort = Number(values['group-port']);
const groupId = Number(values['group-id']);
const session = Number(values.session);
const sequencerId = Number(values['sequencer-id']);
if (!groupAddr || !Number.isInteger(port) || !Number.isInteger(groupPort)) {
  console.error('usage: node-sequencer [--port P] --group-addr A [--group-port P] [--group-id G] [--session S] [--sequencer-id I] [--iface-addr IP]');
  process.exit(2);
}

const counters = {
  rx: 0,
  sequenced: 0,
  drop_truncated: 0,
  drop_bad_magic: 0,
  drop_bad_version: 0,
  drop_bad_length: 0,
  drop_unknown_type: 0,
  drop_unexpected_type: 0,
  drop_unknown_group: 0,
  send_errors: 0,
};
type DropReason = Exclude<keyof typeof counters, 'rx' | 'sequenced' | 'send_errors'>;

// Same checks, in the same order, as the XDP program and udp-sequencer.c.
function validate(b: Buffer): DropReason | null {
  if (b.length < XSEQ_HDR_LEN) return 'drop_truncated';
  if (b.readUInt32BE(0) !== XSEQ_MAGIC) return 'drop_bad_magic';
  if (b[4] !== XSEQ_VERSION) return 'drop_bad_version';
  const type = b[5]!;
  if (type === 0 || type >= MSG_TYPE_MAX) return 'drop_unknown_type';
  const payloadLen = b.readUInt32BE(56);
  if (payloadLen > XSEQ_MAX_PAYLOAD || b.length !== XSEQ_HDR_LEN + payloadLen) return 'drop_bad_length';
  if (type !== MsgType.REQUEST) return 'drop_unexpected_type';
  if (b.readUInt32BE(8) !== groupId) return 'drop_unknown_group';
  return null;
}

// The seq is a BigInt-free double: exact up to 2^53, far past any run.
let seq = 0;
const sock = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 << 20, sendBufferSize: 8 << 20 });

sock.on('message', (msg) => {
  counters.rx++;
  const bad = validate(msg);
  if (bad) {
    counters[bad]++;
    return;
  }
  seq++;
  msg[5] = MsgType.SEQUENCED;
  msg.writeUInt16BE(sequencerId, 12);
  msg.writeUInt32BE(session, 16);
  msg.writeUInt32BE(Math.floor(seq / 2 ** 32), 24);
  msg.writeUInt32BE(seq >>> 0, 28);
  // CLOCK_TAI is not exposed to JS; realtime + the kernel's TAI offset
  // would need a syscall. hrtime-anchored realtime keeps it monotonic,
  // which is what receivers' merge needs from a single sequencer.
  msg.writeBigUInt64BE(clockBase + process.hrtime.bigint(), 32);
  sock.send(msg, groupPort, groupAddr, (err) => {
    if (err) counters.send_errors++;
    else counters.sequenced++;
  });
});

const clockBase = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();

sock.bind(port, () => {
  sock.setMulticastTTL(1);
  // The sequencer host is not a receiver: no copy back to itself.
  sock.setMulticastLoopback(false);
  if (values['iface-addr']) sock.setMulticastInterface(values['iface-addr']);
  console.log(JSON.stringify({ event: 'ready', port, group: `${groupAddr}:${groupPort}` }));
});

function shutdown(): void {
  console.log(JSON.stringify({ event: 'stopped', lastSeq: seq, ...counters }));
  sock.close();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
