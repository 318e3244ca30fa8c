// What the kernel says about a program by id: its name, tag and the maps it
// uses. The agent uses it to tell its own data path from a foreign XDP
// program and to prove that pinned maps are the ones the attached program
// stamps with.
import { closeSync, readFileSync } from 'node:fs';
import koffi from 'koffi';
import { ffi } from './ffi.ts';

const PROG_INFO_SIZE = 232; // sizeof(struct bpf_prog_info), libbpf 1.1
const OFF_TAG = 8;
const OFF_NR_MAP_IDS = 52;
const OFF_MAP_IDS = 56;
const OFF_NAME = 64;
const MAX_MAPS = 64;

export interface ProgInfo {
  id: number;
  /** Kernel program name (at most 15 characters). */
  name: string;
  /** Hex digest of the instructions, as `bpftool prog` shows it. */
  tag: string;
  mapIds: number[];
}

/** The program with kernel id `id`, or undefined when it is gone. */
export function progInfo(id: number): ProgInfo | undefined {
  if (!id) return undefined;
  const fd = ffi().bpf.bpf_prog_get_fd_by_id(id);
  if (fd < 0) return undefined;
  const ids = koffi.alloc('uint32_t', MAX_MAPS);
  try {
    const info = new Uint8Array(PROG_INFO_SIZE);
    const v = new DataView(info.buffer);
    v.setUint32(OFF_NR_MAP_IDS, MAX_MAPS, true);
    v.setBigUint64(OFF_MAP_IDS, BigInt(koffi.address(ids)), true);
    const len: [number] = [info.byteLength];
    if (ffi().bpf.bpf_obj_get_info_by_fd(fd, info, len) !== 0) return undefined;
    const n = Math.min(v.getUint32(OFF_NR_MAP_IDS, true), MAX_MAPS);
    return {
      id,
      name: Buffer.from(info.subarray(OFF_NAME, OFF_NAME + 16)).toString('latin1').replace(/\0.*$/s, ''),
      tag: Buffer.from(info.subarray(OFF_TAG, OFF_TAG + 8)).toString('hex'),
      // koffi has no zero-length arrays; a program may use no maps at all.
      mapIds: n === 0 ? [] : [...(koffi.decode(ids, koffi.array('uint32_t', n)) as Uint32Array)],
    };
  } finally {
    koffi.free(ids);
    closeSync(fd);
  }
}

/** Kernel id of the map behind an fd. */
export function mapIdOfFd(fd: number): number | undefined {
  const m = /^map_id:\s*(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  return m ? Number(m[1]) : undefined;
}
