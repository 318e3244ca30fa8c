// The replica and client cores on real sockets and real time. See README.md,
// "The UDP transport".
export { formatHostPort, isIpv4, parseHostPort, parseIdHostPort, type HostPort } from './addr.ts';
export { CodecError } from './bytes.ts';
export { checkSequencers, UdpClientTransport, UdpGroupChannel, type SequencerAddr, type UdpClientCounters, type UdpClientOptions } from './client-transport.ts';
export { randomRecoverNonce } from './nonce.ts';
export { decodePeerPayload, encodePeerFrame, MAX_PEER_PAYLOAD } from './peer-codec.ts';
export { PeerLink, type PeerLinkCounters, type PeerLinkOptions } from './peer-link.ts';
export { UdpReplicaTransport, type UdpReplicaCounters, type UdpReplicaOptions, type UdpReplicaXdpCounters } from './replica-transport.ts';
export { RealTimeScheduler } from './scheduler.ts';
