// Sends copies of stamped messages to a replica, as a network duplicate or a
// stale sequencer would: SEQUENCED for seqs --from..--to of --session (and
// --sequencer-id), optionally flagged XSEQ_F_RETRANSMIT like the agent's
// re-sends. The contents are made up (client id 0xdead...), so a replica
// that logged those seqs finds a different request there and acks nothing;
// what matters is where the copies are discarded. Prints {"sent":N}.
// Replicas take SEQUENCED only from their sequencer's address and port:
// --src ADDR:PORT sends from there (run it on the sequencer host; the
// agent's socket there shares the port, SO_REUSEADDR); without it the
// copies come from a stranger's port and are refused as such.
import { createSocket } from 'node:dgram';
import { parseArgs } from 'node:util';
import { emptyHeader, encodeMessage, Flags, MsgType } from '../bpf/wire.ts';

const { values: v } = parseArgs({
  options: {
    dst: { type: 'string' },
    port: { type: 'string', default: '7500' },
    group: { type: 'string', default: '1' },
    'sequencer-id': { type: 'string', default: '1' },
    session: { type: 'string' },
    from: { type: 'string', default: '1' },
    to: { type: 'string' },
    retransmit: { type: 'boolean', default: false },
    src: { type: 'string' },
  },
});
if (!v.dst || v.session === undefined || v.to === undefined) {
  console.error('usage: sequenced-sender.ts --dst IP --session S --to SEQ [--from 1] [--port 7500] [--group 1] [--sequencer-id 1] [--retransmit] [--src ADDR:PORT]');
  process.exit(2);
}
const from = Number(v.from);
const to = Number(v.to);
if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 1 || to < from || to - from >= 100_000) {
  console.error('sequenced-sender: need 1 <= --from <= --to, at most 100000 seqs');
  process.exit(2);
}
const sock = createSocket({ type: 'udp4', reuseAddr: true });
if (v.src) {
  const i = v.src.lastIndexOf(':');
  await new Promise<void>((res, rej) => {
    sock.once('error', rej);
    sock.bind({ address: v.src!.slice(0, i), port: Number(v.src!.slice(i + 1)) }, () => res());
  });
}
let sent = 0;
for (let seq = from; seq <= to; seq++) {
  const msg = encodeMessage(
    {
      ...emptyHeader(),
      type: MsgType.SEQUENCED,
      flags: v.retransmit ? Flags.RETRANSMIT : 0,
      groupId: Number(v.group),
      sequencerId: Number(v['sequencer-id']),
      session: Number(v.session),
      seq: BigInt(seq),
      clientId: 0xdead0000n + BigInt(seq),
      requestId: BigInt(seq),
    },
    Buffer.from(`copy-${seq}`),
  );
  await new Promise<void>((res, rej) => sock.send(msg, Number(v.port), v.dst!, (e) => (e ? rej(e) : res())));
  sent++;
  // A burst past the receiver's socket buffer would lose copies on the
  // xdp-off run and not on the xdp-on one: pace them.
  if (sent % 50 === 0) await new Promise((r) => setTimeout(r, 5));
}
sock.close();
console.log(JSON.stringify({ sent }));
