// The libbpf binding: public API. Layers, bottom up:
//   ffi.ts      raw koffi declarations of libbpf 1.1 and libc
//   errors.ts   BpfError and its stable codes
//   object.ts   BpfObjectSpec (before load) / BpfObject (loaded)
//   map.ts, program.ts, link.ts, ringbuf.ts, testrun.ts, pin.ts
//   progid.ts   a program by kernel id (an adopted link's program)
//   live-frames.ts  whether the kernel runs BPF_F_TEST_XDP_LIVE_FRAMES
//   host.ts     possible CPUs, interface indexes
//   proginfo.ts a program by kernel id: name, tag, maps
//   netns.ts    withNetns: run code inside a network namespace

export { BpfError, type BpfErrorCode, errnoName } from './errors.ts';
export { recentLibbpfLog, LogLevel, type LogLine } from './ffi.ts';
export { BpfObjectSpec, BpfObject, type LoadOptions } from './object.ts';
export { BpfMap, MapType, mapTypeName, type MapSizes, type UpdateFlag } from './map.ts';
export { BpfProgram } from './program.ts';
export { programById } from './progid.ts';
export {
  XdpLink,
  type XdpLinkInfo,
  type XdpMode,
  attachXdpLegacy,
  detachXdpLegacy,
  type LegacyAttachOptions,
  queryXdp,
  type XdpStatus,
  type XdpAttachMode,
} from './link.ts';
export { RingBuffer } from './ringbuf.ts';
export { BPF_F_TEST_XDP_LIVE_FRAMES, type TestRunOptions, type TestRunResult } from './testrun.ts';
export { liveFramesSupport, type LiveFramesSupport } from './live-frames.ts';
export { possibleCpus, ifindex } from './host.ts';
export { withNetns } from './netns.ts';
export { progInfo, mapIdOfFd, type ProgInfo } from './proginfo.ts';
