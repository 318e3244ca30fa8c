// The history checks the netns tests and the bench rely on: they must catch
// a value given twice and a call that returned before another started but
// got the larger value, and accept overlapping calls in either order.
import { describe, expect, it } from 'vitest';
import { type Call, checkHistory, formatCalls, parseCalls } from '../sequences/history.ts';

const call = (client: string, s: number, e: number, value?: number, error?: string): Call => ({ client, startNs: BigInt(s), endNs: BigInt(e), ...(value !== undefined ? { value: BigInt(value) } : { error: error! }) });

describe('nextval history checks', () => {
  it('a clean history: sequential and overlapping calls, errors counted apart', () => {
    const h = checkHistory([call('a', 0, 10, 1), call('b', 5, 20, 3), call('a', 11, 19, 2), call('b', 21, 30, 4), call('c', 1, 2, undefined, 'ETIMEOUT')]);
    expect(h).toMatchObject({ calls: 5, values: 4, duplicates: [], orderViolationCount: 0, errors: { ETIMEOUT: 1 }, min: 1n, max: 4n });
  });

  it('catches a value returned twice', () => {
    const h = checkHistory([call('a', 0, 10, 7), call('b', 0, 10, 7)]);
    expect(h.duplicates).toEqual([{ value: '7', clients: ['a', 'b'] }]);
  });

  it('catches a call that returned before another started but has the larger value', () => {
    const h = checkHistory([call('a', 0, 10, 5), call('b', 11, 20, 4)]);
    expect(h.orderViolationCount).toBe(1);
    // Overlapping, the same values are fine.
    expect(checkHistory([call('a', 0, 12, 5), call('b', 11, 20, 4)]).orderViolationCount).toBe(0);
  });

  it('round-trips through the file format the load tool writes', () => {
    const calls = [call('cli/0', 1, 2, 9), call('cli/1', 3, 4, undefined, 'EREFUSED_AT_MARK')];
    expect(parseCalls(formatCalls(calls))).toEqual(calls);
  });
});
