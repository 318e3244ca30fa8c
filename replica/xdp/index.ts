// The optional replica-side XDP program (bpf/replica.bpf.c). See
// replica/README.md, "Replica-side XDP".
export { DEFAULT_RETRANSMIT_KEEP, REPLICA_OBJECT, ReplicaXdp, ReplicaXdpError, type ReplicaXdpErrorCode, type ReplicaXdpLoadOptions } from './replica-xdp.ts';
export { interfaceOf, openReplicaXdp, XDP_MODES, XDP_SETTINGS, type ReplicaXdpConfig, type XdpModeSetting, type XdpOutcome, type XdpSetting } from './setup.ts';
