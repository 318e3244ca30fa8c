/* SPDX-License-Identifier: Apache-2.0 */
/*
 * xseq.h: the one contract between the kernel programs and user space.
 *
 * Wire format, map keys and values, counter enum and pin names live here and
 * nowhere else. The TypeScript side (bpf/wire.ts, bpf/maps.ts) mirrors this
 * file; test/contract.test.ts compiles test/contract/dump.c against it and
 * proves every size, offset and enum value equal.
 *
 * Byte order: every field of struct xseq_hdr is network order (big endian).
 * Map values say per field which order they hold.
 */
#ifndef XSEQ_H
#define XSEQ_H

#include <linux/types.h>

#define XSEQ_MAGIC 0x58534551u /* "XSEQ" */
#define XSEQ_VERSION 1
#define XSEQ_DEFAULT_PORT 7400

/* Message types. Values are stable on the wire; later features use the
 * reserved ones so the header never has to change shape. */
enum xseq_msg_type {
	XSEQ_MSG_REQUEST = 1,            /* client -> sequencer */
	XSEQ_MSG_SEQUENCED = 2,          /* sequencer -> group: request + stamp */
	XSEQ_MSG_ACK = 3,                /* replica -> sequencer */
	XSEQ_MSG_REPLY = 4,              /* sequencer -> client, quorum certified */
	XSEQ_MSG_FLUSH = 5,              /* sequencer -> group: clock + current seq */
	XSEQ_MSG_FLUSH_SOLICIT = 6,      /* replica -> sequencer */
	XSEQ_MSG_REPAIR_REQUEST = 7,     /* replica -> agent */
	XSEQ_MSG_REPAIR_REPLY = 8,       /* agent -> replica */
	XSEQ_MSG_GAP_FIND = 9,           /* replica slow path (NOPaxos) */
	XSEQ_MSG_GAP_RECV = 10,
	XSEQ_MSG_GAP_DROP = 11,
	XSEQ_MSG_GAP_COMMIT = 12,
	XSEQ_MSG_GAP_COMMIT_REPLY = 13,
	XSEQ_MSG_VIEW_CHANGE_REQUEST = 14,
	XSEQ_MSG_VIEW_CHANGE = 15,
	XSEQ_MSG_START_VIEW = 16,
	XSEQ_MSG_STATE_REQUEST = 17,
	XSEQ_MSG_STATE_REPLY = 18,
	XSEQ_MSG_SYNC_PREPARE = 19,
	XSEQ_MSG_SYNC_REPLY = 20,
	XSEQ_MSG_SYNC_COMMIT = 21,
	XSEQ_MSG_ERROR = 22,             /* any -> peer: typed error reply */
	XSEQ_MSG_TYPE_MAX                /* first value that is not a type */
};

/* xseq_hdr.flags bits */
#define XSEQ_F_RETRANSMIT 0x0001 /* a re-sent copy of a stamped packet */
#define XSEQ_F_NOOP 0x0002       /* slot committed as a no-op */
#define XSEQ_F_RESULT 0x0004     /* payload is an application result */

/*
 * The fixed header, right after the UDP header. 64 bytes, all fields
 * naturally aligned, network byte order. payload_len bytes of payload follow
 * and the UDP length must be exactly 8 + 64 + payload_len.
 */
struct xseq_hdr {
	__be32 magic;        /* XSEQ_MAGIC */
	__u8 version;        /* XSEQ_VERSION */
	__u8 type;           /* enum xseq_msg_type */
	__be16 flags;        /* XSEQ_F_* */
	__be32 group_id;     /* replica group; index into xseq_groups */
	__be16 sequencer_id; /* stamped by the sequencer */
	__be16 replica_id;   /* sender or addressee replica (ACK, slow path) */
	__be32 session;      /* stamped; changes when a data path is re-created */
	__be32 view;         /* replica view number (ACK, REPLY, slow path) */
	__be64 seq;          /* stamped; dense per (group, sequencer), first is 1 */
	__be64 clock_ns;     /* stamped; sequencer clock, TAI nanoseconds */
	__be64 client_id;    /* chosen by the client */
	__be64 request_id;   /* chosen by the client, unique per client */
	__be32 payload_len;  /* bytes after this header */
	__be32 reserved;     /* zero; keeps the header 8-byte sized */
};

#define XSEQ_HDR_LEN 64
#define XSEQ_MAX_PAYLOAD 1400 /* fits a 1500-byte MTU with eth/ip/udp/xseq */

/* Maximum number of groups; a group id is an index below it. */
#define XSEQ_MAX_GROUPS 256

/* xseq_group.flags bits */
#define XSEQ_GROUP_F_ENABLED 0x1

/* Value of xseq_groups[group_id]. */
struct xseq_group {
	__be32 mcast_addr;   /* network order: IPv4 multicast address */
	__be16 mcast_port;   /* network order: UDP port at the receivers */
	__u16 sequencer_id;  /* host order */
	__u32 session;       /* host order */
	__u32 flags;         /* host order: XSEQ_GROUP_F_* */
};

/* Value of xseq_group_seq[group_id]: padded to a cache line so groups
 * stamped on different CPUs do not share one. */
struct xseq_group_seq {
	__u64 seq;     /* host order: last assigned seq (0 = none yet) */
	__u64 pad[7];
};

/* Load-time configuration, the program's .rodata (set before load). */
struct xseq_load_cfg {
	__be16 port;   /* network order: UDP port the sequencer serves */
	__u16 pad;
	__u32 flags;   /* reserved, zero */
};

/* Index into the per-CPU counter array xseq_counters. */
enum xseq_counter {
	XSEQ_CTR_RX = 0,                /* packets to the xseq port */
	XSEQ_CTR_SEQUENCED,             /* stamped and sent to a group */
	XSEQ_CTR_DROP_TRUNCATED,        /* frame ends before the header or stated length */
	XSEQ_CTR_DROP_BAD_MAGIC,
	XSEQ_CTR_DROP_BAD_VERSION,
	XSEQ_CTR_DROP_BAD_LENGTH,       /* UDP length != 8 + 64 + payload_len, or payload too big */
	XSEQ_CTR_DROP_UNKNOWN_TYPE,     /* not an enum xseq_msg_type value */
	XSEQ_CTR_DROP_UNEXPECTED_TYPE,  /* a valid type the sequencer does not accept */
	XSEQ_CTR_DROP_UNKNOWN_GROUP,    /* id out of range or group not enabled */
	XSEQ_CTR_DROP_IP_OPTIONS,
	XSEQ_CTR_DROP_FRAGMENT,
	XSEQ_CTR_EVENTS_LOST,           /* drop events the ring buffer had no room for */
	XSEQ_CTR_MAX
};

/* One record in the xseq_events ring buffer: a sample of a dropped packet,
 * so the agent can say who sends bad traffic. */
struct xseq_drop_event {
	__u32 reason;        /* enum xseq_counter (a DROP_ value) */
	__be32 saddr;        /* network order */
	__be16 sport;        /* network order */
	__u16 pad;
	__u32 frame_len;     /* bytes in the frame */
};

/* Names of the maps and programs in sequencer.bpf.o; user space looks them
 * up by these and pins them under XSEQ_PIN_ROOT/<ifname>/. */
#define XSEQ_PROG_SEQUENCER "xseq_sequencer"
#define XSEQ_MAP_GROUPS "xseq_groups"
#define XSEQ_MAP_GROUP_SEQ "xseq_group_seq"
#define XSEQ_MAP_COUNTERS "xseq_counters"
#define XSEQ_MAP_EVENTS "xseq_events"
#define XSEQ_PIN_ROOT "/sys/fs/bpf/xseq"
#define XSEQ_EVENTS_BYTES (64 * 1024)

#endif /* XSEQ_H */
