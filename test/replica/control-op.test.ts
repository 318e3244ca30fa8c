// The group control ops' one encoding (replica/control-op.ts): what the
// client, the CLI, the replicas and the view change's merge all read.
import { describe, expect, it } from 'vitest';
import { ANY_SESSION, addedBy, addedSequencer, decodeControlOp, encodeControlOp, removalApplies, removedSequencer } from '../../replica/control-op.ts';

describe('control ops', () => {
  it('"add" keeps the bytes replicas already merge', () => {
    const b = encodeControlOp({ kind: 'add', sid: 0x0102 });
    expect([...b]).toEqual([0x48, 1, 1, 2]);
    expect(addedSequencer(b)).toBe(0x0102);
    expect(addedBy({ slot: 1, session: 1, seq: 1, noop: false, clientId: 1n, requestId: 1n, op: b, control: true })).toBe(0x0102);
    expect(addedBy({ slot: 1, session: 1, seq: 1, noop: true, clientId: 1n, requestId: 1n, op: b, control: true })).toBeNull();
    expect(removedSequencer(b)).toBeNull();
  });

  it('"remove" names the sequencer and the session, big-endian', () => {
    const b = encodeControlOp({ kind: 'remove', sid: 7, session: 0x01020304 });
    expect([...b]).toEqual([0x48, 2, 0, 7, 1, 2, 3, 4]);
    expect(decodeControlOp(b)).toEqual({ kind: 'remove', sid: 7, session: 0x01020304 });
    expect(removedSequencer(b)).toEqual({ sid: 7, session: 0x01020304 });
    expect(addedSequencer(b)).toBeNull();
    // Merged, it is no add.
    expect(addedBy({ slot: 1, session: 1, seq: 1, noop: false, clientId: 1n, requestId: 1n, op: b, control: true })).toBeNull();
    // Read from inside a larger buffer (a datagram's payload view).
    const framed = new Uint8Array(20);
    framed.set(b, 9);
    expect(decodeControlOp(framed.subarray(9, 17))).toEqual({ kind: 'remove', sid: 7, session: 0x01020304 });
  });

  it.each([
    ['empty', []],
    ['short', [0x48, 1, 0]],
    ['wrong magic', [0x47, 1, 0, 1]],
    ['unknown kind', [0x48, 3, 0, 1]],
    ['add with a session', [0x48, 1, 0, 1, 0, 0, 0, 1]],
    ['remove without a session', [0x48, 2, 0, 1]],
    ['remove, one byte long', [0x48, 2, 0, 1, 0, 0, 0, 1, 0]],
  ])('%s is no op at all (a malformed control op changes nothing)', (_name, bytes) => {
    expect(decodeControlOp(new Uint8Array(bytes))).toBeNull();
  });

  it('refuses ids and sessions it cannot encode', () => {
    expect(() => encodeControlOp({ kind: 'add', sid: 0x10000 })).toThrow(RangeError);
    expect(() => encodeControlOp({ kind: 'remove', sid: -1, session: 1 })).toThrow(RangeError);
    expect(() => encodeControlOp({ kind: 'remove', sid: 1, session: 2 ** 32 })).toThrow(RangeError);
  });

  it('a removal that names a session applies to that session only; ANY_SESSION to whichever is held', () => {
    expect(removalApplies(5, 5)).toBe(true);
    expect(removalApplies(5, 6)).toBe(false);
    expect(removalApplies(ANY_SESSION, 6)).toBe(true);
  });
});
