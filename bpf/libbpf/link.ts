// XDP attachment, both ways the kernel offers:
//   - XdpLink (bpf_link_create, BPF_XDP): owned by an fd, so it goes away
//     with the process unless pinned; pinning it is how the data path
//     survives an agent restart. Cannot be replaced by accident.
//   - legacy netlink attach (bpf_xdp_attach): stays until detached, even
//     after the process dies; used for the 'pass' program on a veth peer.
// Both act in the calling thread's network namespace (see withNetns).

import { closeSync, unlinkSync } from 'node:fs';
import {
  BpfError,
  EBUSY,
  EEXIST,
  ENODEV,
  ENOLINK,
  ENXIO,
  EOPNOTSUPP,
  errnoText,
  isPermission,
  syscallError,
  withLibbpfLog,
} from './errors.ts';
import { ffi, logMark, logSince } from './ffi.ts';
import { ifindex as resolveIfindex } from './host.ts';
import { fdKind, objGet, pinFd } from './pin.ts';

export type XdpMode = 'native' | 'generic';

const XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0;
const XDP_FLAGS_SKB_MODE = 1 << 1;
const XDP_FLAGS_DRV_MODE = 1 << 2;
const BPF_XDP = 37; // enum bpf_attach_type
const BPF_LINK_TYPE_XDP = 6;
const LINK_INFO_SIZE = 48; // sizeof(struct bpf_link_info)
const LINK_CREATE_OPTS_SIZE = 64; // sizeof(struct bpf_link_create_opts)
const XDP_QUERY_OPTS_SIZE = 32; // sizeof(struct bpf_xdp_query_opts)

export function xdpModeFlag(mode: XdpMode): number {
  switch (mode) {
    case 'native':
      return XDP_FLAGS_DRV_MODE;
    case 'generic':
      return XDP_FLAGS_SKB_MODE;
    default:
      throw new BpfError('EBPF_ARGUMENT', `XDP mode must be 'native' or 'generic', got '${String(mode)}'`);
  }
}

function ifaceLabel(iface: string | number): string {
  return typeof iface === 'number' ? `ifindex ${iface}` : `'${iface}'`;
}

function showCommand(iface: string | number): string {
  return typeof iface === 'number' ? '`ip link show`' : `\`ip link show dev ${iface}\``;
}

/** Maps an attach/detach errno to the error an operator can act on. */
function attachError(what: string, iface: string | number, mode: XdpMode | undefined, errno: number, log: string[]): BpfError {
  const details = { errno, libbpfLog: log };
  if (errno === ENODEV || errno === ENXIO) {
    return new BpfError(
      'EBPF_NO_INTERFACE',
      `${what}: no network interface ${ifaceLabel(iface)} in this network namespace; list interfaces with \`ip link\``,
      details,
    );
  }
  if (isPermission(errno)) return syscallError(what, errno, log);
  let hint = '';
  if (errno === EBUSY || errno === EEXIST) {
    hint =
      `; an XDP program is already attached to ${ifaceLabel(iface)} (native and generic cannot be ` +
      `mixed either): see it with ${showCommand(iface)} or \`bpftool net\``;
  } else if (errno === EOPNOTSUPP && mode === 'native') {
    hint = `; the driver of ${ifaceLabel(iface)} has no native XDP: use mode 'generic'`;
  }
  return new BpfError('EBPF_ATTACH', withLibbpfLog(`${what}: ${errnoText(errno)}${hint}`, log), details);
}

export interface XdpLinkInfo {
  /** Kernel link id (as `bpftool link` shows). */
  id: number;
  /** Id of the attached program. */
  progId: number;
  ifindex: number;
}

export class XdpLink {
  #fd: number;
  #pinPath: string | undefined;

  private constructor(fd: number, pinPath?: string) {
    this.#fd = fd;
    this.#pinPath = pinPath;
  }

  /** @internal Use BpfProgram.attachXdp(). */
  static create(progFd: number, iface: string | number, mode: XdpMode, progName: string): XdpLink {
    const flags = xdpModeFlag(mode);
    const index = resolveIfindex(iface);
    const mark = logMark();
    const fd = ffi().bpf.bpf_link_create(progFd, index, BPF_XDP, { sz: LINK_CREATE_OPTS_SIZE, flags });
    if (fd < 0) {
      throw attachError(`attaching program '${progName}' to ${ifaceLabel(iface)} (${mode} XDP)`, iface, mode, -fd, logSince(mark));
    }
    return new XdpLink(fd);
  }

  /** Reopens a pinned XDP link (e.g. after an agent restart). */
  static fromPin(path: string): XdpLink {
    const fd = objGet(path, 'XDP link');
    try {
      const kind = fdKind(fd);
      if (kind !== 'link') throw new BpfError('EBPF_WRONG_TYPE', `${path} is a pinned ${kind}, not a link`);
      const link = new XdpLink(fd, path);
      const type = link.#rawInfo().getUint32(0, true);
      if (type !== BPF_LINK_TYPE_XDP) {
        throw new BpfError('EBPF_WRONG_TYPE', `${path} is a pinned link of type ${type}, not an XDP link`);
      }
      return link;
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  get fd(): number {
    this.#check();
    return this.#fd;
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  get pinPath(): string | undefined {
    return this.#pinPath;
  }

  info(): XdpLinkInfo {
    const v = this.#rawInfo();
    return { id: v.getUint32(4, true), progId: v.getUint32(8, true), ifindex: v.getUint32(16, true) };
  }

  /** Pins the link in bpffs: it then stays attached after close() and exit. */
  pin(path: string): void {
    this.#check();
    pinFd(this.#fd, path, 'XDP link');
    this.#pinPath = path;
  }

  /** Removes the pin; the link detaches once the last fd closes too. */
  unpin(): void {
    if (this.#pinPath === undefined) return;
    try {
      unlinkSync(this.#pinPath);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    this.#pinPath = undefined;
  }

  /**
   * Detaches the program now, even if the link is pinned or open elsewhere,
   * then removes the pin and closes. Idempotent.
   */
  detach(): void {
    if (this.#fd < 0) return;
    const ret = ffi().bpf.bpf_link_detach(this.#fd);
    // ENOLINK: already detached (e.g. its interface was deleted).
    if (ret !== 0 && -ret !== ENOLINK) {
      throw syscallError('detaching XDP link', -ret);
    }
    this.unpin();
    this.close();
  }

  /**
   * Releases this handle. An unpinned link detaches here (the kernel drops
   * it with its last fd); a pinned one stays attached, which is what lets
   * the data path outlive the agent. Use detach() to force removal.
   */
  close(): void {
    if (this.#fd < 0) return;
    closeSync(this.#fd);
    this.#fd = -1;
  }

  #rawInfo(): DataView {
    this.#check();
    const buf = new Uint8Array(LINK_INFO_SIZE);
    const len: [number] = [buf.byteLength];
    const ret = ffi().bpf.bpf_obj_get_info_by_fd(this.#fd, buf, len);
    if (ret !== 0) throw syscallError('reading XDP link info', -ret);
    return new DataView(buf.buffer);
  }

  #check(): void {
    if (this.#fd < 0) throw new BpfError('EBPF_CLOSED', 'XDP link is closed');
  }
}

export interface LegacyAttachOptions {
  /** Replace a program already attached in that mode (default: refuse). */
  replace?: boolean;
}

/**
 * Attaches a program through netlink (bpf_xdp_attach). It stays attached
 * after this process exits until detachXdpLegacy. Refuses to replace an
 * attached program unless `replace` is set.
 */
export function attachXdpLegacy(
  iface: string | number,
  progFd: number,
  mode: XdpMode,
  opts: LegacyAttachOptions = {},
): void {
  const flags = xdpModeFlag(mode) | (opts.replace ? 0 : XDP_FLAGS_UPDATE_IF_NOEXIST);
  const index = resolveIfindex(iface);
  const mark = logMark();
  const ret = ffi().bpf.bpf_xdp_attach(index, progFd, flags, null);
  if (ret !== 0) throw attachError(`attaching XDP (${mode}, netlink) to ${ifaceLabel(iface)}`, iface, mode, -ret, logSince(mark));
}

/** Removes a netlink-attached program in that mode; no-op if none. */
export function detachXdpLegacy(iface: string | number, mode: XdpMode): void {
  const flags = xdpModeFlag(mode);
  const index = resolveIfindex(iface);
  const mark = logMark();
  const ret = ffi().bpf.bpf_xdp_detach(index, flags, null);
  if (ret !== 0) throw attachError(`detaching XDP (${mode}) from ${ifaceLabel(iface)}`, iface, mode, -ret, logSince(mark));
}

export type XdpAttachMode = 'none' | 'native' | 'generic' | 'hw' | 'multi';
const ATTACH_MODES: readonly XdpAttachMode[] = ['none', 'native', 'generic', 'hw', 'multi'];

export interface XdpStatus {
  /** XDP_ATTACHED_*: which modes have a program ('multi': more than one). */
  mode: XdpAttachMode;
  /** Program id per mode; 0 = none. Links and netlink attachments alike. */
  nativeProgId: number;
  genericProgId: number;
  hwProgId: number;
}

/** What is attached to an interface, by bpf_xdp_query (netlink). */
export function queryXdp(iface: string | number): XdpStatus {
  const index = resolveIfindex(iface);
  const opts = { sz: XDP_QUERY_OPTS_SIZE, prog_id: 0, drv_prog_id: 0, hw_prog_id: 0, skb_prog_id: 0, attach_mode: 0 };
  const mark = logMark();
  const ret = ffi().bpf.bpf_xdp_query(index, 0, opts);
  if (ret !== 0) throw attachError(`querying XDP on ${ifaceLabel(iface)}`, iface, undefined, -ret, logSince(mark));
  return {
    mode: ATTACH_MODES[opts.attach_mode] ?? 'multi',
    nativeProgId: opts.drv_prog_id,
    genericProgId: opts.skb_prog_id,
    hwProgId: opts.hw_prog_id,
  };
}
