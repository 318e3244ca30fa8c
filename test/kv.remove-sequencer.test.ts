// `cli.ts remove-sequencer`: the control op goes, flagged XSEQ_F_CONTROL,
// through the sequencers given except the one it removes (that host is
// dead), with the encoding of replica/control-op.ts. Loopback only: the
// "sequencer" is a socket that records what reaches it and never answers,
// so every attempt is seen and the command ends in ETIMEDOUT, exit 1.
import { execFile } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeMessage, Flags, MsgType } from '../bpf/wire.ts';
import { decodeControlOp } from '../replica/control-op.ts';

const ROOT = join(import.meta.dirname, '..');
const CLI = join(ROOT, 'examples', 'kv', 'cli.ts');
const socks: Socket[] = [];
afterAll(async () => {
  for (const s of socks) await new Promise<void>((r) => s.close(() => r()));
});

async function recorder(): Promise<{ port: number; got: { type: number; flags: number; payload: Uint8Array }[] }> {
  const sock = createSocket('udp4');
  socks.push(sock);
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
  const got: { type: number; flags: number; payload: Uint8Array }[] = [];
  sock.on('message', (b) => {
    const d = decodeMessage(b);
    if (d.ok) got.push({ type: d.message.header.type, flags: d.message.header.flags, payload: new Uint8Array(d.message.payload) });
  });
  return { port: sock.address().port, got };
}

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', CLI, ...args], { cwd: ROOT, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? -1) : 0, stdout, stderr });
    });
  });
}

describe('kv cli remove-sequencer', () => {
  it('sends the remove op, flagged control, only through the survivors', async () => {
    const dead = await recorder();
    const survivor = await recorder();
    const seqs = ['--sequencer', `0:127.0.0.1:${survivor.port}`, '--sequencer', `1:127.0.0.1:${dead.port}`];
    const r = await cli(['remove-sequencer', '--id', '1', '--session', '9', ...seqs, '--retry-ms', '100', '--timeout-ms', '350']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('remove-sequencer: no certified answer');
    expect(dead.got).toEqual([]);
    expect(survivor.got.length).toBeGreaterThan(0);
    for (const m of survivor.got) {
      expect(m.type).toBe(MsgType.REQUEST);
      expect(m.flags & Flags.CONTROL).toBe(Flags.CONTROL);
      expect(decodeControlOp(m.payload)).toEqual({ kind: 'remove', sid: 1, session: 9 });
    }
  }, 40_000);

  it.each([
    [['remove-sequencer'], 'remove-sequencer needs --id N'],
    [['remove-sequencer', '--id', '70000'], '--id must be 0..65535'],
    [['remove-sequencer', '--id', '1', '--session', '4294967295'], '--session must be 0..4294967294'],
    [['get', 'k', '--session', '3'], '--session is for remove-sequencer only'],
    [['remove-sequencer', '--id', '0'], 'give at least one member sequencer other than 0'],
  ])('%j is refused: %s', async (args, msg) => {
    const r = await cli([...args, '--sequencer', '0:127.0.0.1:9']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(msg);
  }, 40_000);
});
