// The agent's group keys (docs/authentication.md). Each group's key file
// is read at start and again on SIGHUP, and written whole into the
// sequencer's xseq_mac_keys map (the agent is its only writer), so the
// kernel stamps and checks MACs with the same key this process seals its
// re-sends and repair answers with and checks repair requests against.
//
// A reload that fails for a group (file gone, bad size, loose mode) keeps
// that group's current key and logs the error: a typo during a rotation
// must not switch authentication off. Removing keyFile from the config
// needs a restart (the config is read once); SIGHUP only re-reads files.
import { KeyFileError, readKeyFile } from '../bpf/key-file.ts';
import { checkMac, type GroupKey, type MacCheck, seal } from '../bpf/mac.ts';
import type { Sequencer } from '../bpf/sequencer.ts';
import { Flags } from '../bpf/wire.ts';
import type { Log } from './log.ts';

/** Where the re-send and repair paths find a group's key. */
export interface KeySource {
  key(groupId: number): GroupKey | undefined;
}

export const NO_KEYS: KeySource = { key: () => undefined };

/**
 * The message as it goes out: sealed with the group's key, or without a
 * key with a stale MAC flag cleared (a slot stamped before the key went
 * away), so a receiver never looks for a trailer that is not there.
 */
export function sealFor(keys: KeySource, groupId: number, msg: Buffer): Buffer {
  const key = keys.key(groupId);
  if (key) return seal(msg, key);
  if (msg.readUInt16BE(6) & Flags.MAC) msg.writeUInt16BE(msg.readUInt16BE(6) & ~Flags.MAC, 6);
  return msg;
}

/** Checks a datagram's MAC when the group has a key; 'ok' when it has none. */
export function checkFor(keys: KeySource, groupId: number, buf: Uint8Array): MacCheck {
  const key = keys.key(groupId);
  return key ? checkMac(buf, key) : 'ok';
}

export interface KeySpec {
  id: number;
  keyFile?: string | undefined;
}

export class GroupKeys implements KeySource {
  readonly #keys = new Map<number, GroupKey>();
  readonly #specs: readonly KeySpec[];
  readonly #seq: Sequencer;
  readonly #log: Log;

  /** Reads every key file (the config check already did; a file changed
   * since is an error here too) and writes the kernel's key map. */
  constructor(specs: readonly KeySpec[], seq: Sequencer, log: Log) {
    this.#specs = specs;
    this.#seq = seq;
    this.#log = log;
    for (const s of specs) {
      const key = s.keyFile ? readKeyFile(s.keyFile) : null;
      seq.setKey(s.id, key);
      if (key) this.#keys.set(s.id, key);
    }
    const keyless = specs.filter((s) => !s.keyFile).map((s) => s.id);
    if (keyless.length) {
      log.warn(
        { event: 'auth', code: 'WNOKEY', groups: keyless },
        `group(s) ${keyless.join(', ')} have no key file (groups[].keyFile, --key-file GROUP:PATH): any host on the LAN can forge their SEQUENCED, FLUSH, ACK and repair traffic; a client id is only bound to the first source address that used it, so a host that can forge that source can still speak for the client; control ops are accepted from any member's address (or this host's); see docs/authentication.md`,
      );
    }
    const keyed = specs.filter((s) => s.keyFile).map((s) => s.id);
    if (keyed.length) log.info({ event: 'auth', groups: keyed }, `MACs on for group(s) ${keyed.join(', ')} (SipHash-2-4); REQUESTs must be sealed with the client key (xseq-agent client-key), control ops with the group key; SIGHUP re-reads the key files`);
  }

  key(groupId: number): GroupKey | undefined {
    return this.#keys.get(groupId);
  }

  /** Re-reads every key file; a group whose file fails keeps its key. */
  reload(): { reloaded: number[]; failed: number[] } {
    const reloaded: number[] = [];
    const failed: number[] = [];
    for (const s of this.#specs) {
      if (!s.keyFile) continue;
      try {
        const key = readKeyFile(s.keyFile);
        this.#seq.setKey(s.id, key);
        this.#keys.set(s.id, key);
        reloaded.push(s.id);
      } catch (e) {
        failed.push(s.id);
        const code = e instanceof KeyFileError ? e.code : 'EKEY_UNREADABLE';
        this.#log.error({ event: 'auth', code, group: s.id, err: (e as Error).message }, `group ${s.id}: key not reloaded, the current one stays: ${(e as Error).message}`);
      }
    }
    this.#log.info({ event: 'auth', reloaded, failed }, `key files re-read (SIGHUP): ${reloaded.length} reloaded, ${failed.length} kept`);
    return { reloaded, failed };
  }
}
