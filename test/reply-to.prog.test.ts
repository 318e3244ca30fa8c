// The direct-ACK reply address (replica/udp/reply-to.ts) rides in a
// REQUEST's view and replica_id fields; this proves on the compiled
// sequencer (BPF_PROG_TEST_RUN) that the stamp carries both into the
// SEQUENCED unchanged, with a correct UDP checksum, so replicas read what
// the client wrote.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Sequencer } from '../bpf/sequencer.ts';
import { decodeMessage, MsgType, readHeader } from '../bpf/wire.ts';
import { replyToOf, setReplyTo } from '../replica/udp/reply-to.ts';
import { requestToWire } from '../replica/wire-map.ts';
import { buildFrame, parseFrame, udpChecksum } from '../tools/frame.ts';
import { describePrivileged } from './helpers/privileged.ts';

const XDP_TX = 3;

describePrivileged('reply address through sequencer.bpf.o', () => {
  let seq: Sequencer;
  beforeAll(() => {
    seq = Sequencer.load({ port: 7400 });
    seq.setGroup(1, { mcastAddr: '239.7.7.1', mcastPort: 7500, sequencerId: 2, session: 9, enabled: true });
  });
  afterAll(() => seq?.close());

  it('view and replica_id of a REQUEST arrive in the SEQUENCED as written', () => {
    const replyTo = { host: '10.77.0.1', port: 40_123 };
    const req = setReplyTo(requestToWire({ type: 'REQUEST', clientId: 5n, requestId: 6n, op: Buffer.from('op') }, { groupId: 1 }), replyTo);
    const input = buildFrame({ srcMac: '02:00:00:00:00:01', dstMac: '02:00:00:00:00:02', srcIp: '10.77.0.1', dstIp: '10.77.0.2', srcPort: 40_123, dstPort: 7400, payload: req });
    const r = seq.program.testRun({ data: input });
    expect(r.retval).toBe(XDP_TX);
    const out = Buffer.from(r.data);
    const h = readHeader(out, 42);
    expect(h.type).toBe(MsgType.SEQUENCED);
    expect([h.sequencerId, h.session, h.seq, h.clientId, h.requestId]).toEqual([2, 9, 1n, 5n, 6n]);
    expect(replyToOf(h)).toEqual(replyTo);
    expect(parseFrame(out).udpCheck).toBe(udpChecksum(out));
    const d = decodeMessage(out.subarray(42));
    expect(d.ok && Buffer.from(d.message.payload).toString()).toBe('op');
  });
});
