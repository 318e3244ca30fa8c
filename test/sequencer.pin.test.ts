// A pinned data path outlives the process that loaded it: adopt() reopens
// the same maps, checked against the contract, with the load-time config.
import { mkdirSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { afterAll, expect, it } from 'vitest';
import { Sequencer } from '../bpf/sequencer.ts';
import { emptyHeader, encodeMessage, MsgType } from '../bpf/wire.ts';
import { buildFrame } from '../tools/frame.ts';
import { describePrivileged } from './helpers/privileged.ts';

const dir = `/sys/fs/bpf/xseq-test-${randomBytes(4).toString('hex')}`;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const frame = () => buildFrame({ payload: encodeMessage({ ...emptyHeader(), type: MsgType.REQUEST, groupId: 2, clientId: 1n, requestId: 1n }, Buffer.from('x')) });

describePrivileged('pinned sequencer maps', () => {
  it('adopt() continues the same seqs and counters with the same load config', () => {
    mkdirSync(dir, { recursive: true });
    const first = Sequencer.load({ windowSlots: 64, windows: 3, maxResult: 100, policy: 'overwrite', port: 7401 });
    first.setGroup(2, { mcastAddr: '239.1.1.1', mcastPort: 7500, sequencerId: 1, session: 5, enabled: true });
    for (let i = 0; i < 3; i++) expect(first.program.testRun({ data: buildFrame({ dstPort: 7401, payload: frame().subarray(42) }) }).retval).toBe(3);
    first.pinMaps(dir);
    const counters = first.counters();
    first.close();

    const again = Sequencer.adopt(dir);
    try {
      expect(again.config).toEqual({ port: 7401, windowSlots: 64, windows: 3, maxResult: 100, policy: 'overwrite' });
      expect(again.lastSeq(2)).toBe(3n);
      expect(again.group(2)).toMatchObject({ session: 5, mcastAddr: '239.1.1.1' });
      expect(again.counters()).toEqual(counters);
      expect(() => again.program).toThrow(/adopted from pins/);
    } finally {
      again.close();
    }
  });

  it('a missing pin is a clear error naming it', () => {
    rmSync(`${dir}/xseq_slots`, { force: true });
    expect(() => Sequencer.adopt(dir)).toThrow(/xseq_slots/);
  });
});
