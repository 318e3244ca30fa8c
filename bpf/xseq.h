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
	XSEQ_MSG_NEXTVAL = 23,           /* client -> sequencer: values of a named sequence */
	XSEQ_MSG_NEXTVAL_REPLY = 24,     /* sequencer (XDP) -> client: a block, or why not */
	XSEQ_MSG_WEIGHTS = 25,           /* replica -> agent (repair port): committed weight table */
	XSEQ_MSG_TYPE_MAX                /* first value that is not a type */
};

/* xseq_hdr.flags bits */
#define XSEQ_F_RETRANSMIT 0x0001 /* a re-sent copy of a stamped packet */
#define XSEQ_F_NOOP 0x0002       /* slot committed as a no-op */
#define XSEQ_F_RESULT 0x0004     /* payload is an application result */
#define XSEQ_F_FINAL 0x0008      /* FLUSH: this sequencer stopped for good;
				  * seq is its last */
#define XSEQ_F_CONTROL 0x0010    /* REQUEST (kept on its SEQUENCED): a replica-group
				  * control op (Hydra: add a sequencer), executed by
				  * the replica library, not the application */
#define XSEQ_F_MAC 0x0020        /* an XSEQ_MAC_LEN-byte MAC trailer follows the
				  * payload (see "Authentication" below) */
#define XSEQ_F_STALE 0x0040      /* leader's ACK, and the REPLY made of it: the
				  * request id is older than the client's latest
				  * executed one, so it was not executed; no result
				  * (the payload is empty). Completes the slot. */

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

/*
 * Direct ACKs (a group with n_members = 0, no aggregation): a REQUEST may
 * name the client's reply address in two fields it does not otherwise use,
 * view = client IPv4 (network order) and replica_id = client UDP port; both
 * zero = none. The stamp leaves them as they are, so the SEQUENCED carries
 * them and replicas ACK the client there (replica/udp/reply-to.ts).
 */

#define XSEQ_HDR_LEN 64
#define XSEQ_MAX_PAYLOAD 1400 /* fits a 1500-byte MTU with eth/ip/udp/xseq */

/*
 * Authentication (a group with a key; docs/authentication.md). A message
 * with XSEQ_F_MAC carries XSEQ_MAC_LEN bytes after its payload, outside
 * payload_len: the UDP length is then 8 + 64 + payload_len + XSEQ_MAC_LEN.
 * The MAC is SipHash-2-4 under the group's 128-bit key over the header
 * (flags included, XSEQ_F_MAC set) and the payload, written as the 64-bit
 * SipHash output in little-endian byte order (SipHash's own output order).
 * Carried by SEQUENCED and FLUSH (stamped by the sequencer program), by the
 * agent's re-sends and REPAIR_REPLY/ERROR, by replicas' ACKs,
 * REPAIR_REQUESTs and FLUSH_SOLICITs (and the agent's own solicit); never
 * by REPLY.
 *
 * REQUESTs of a keyed group must carry one too, so that only a key holder
 * can speak for a client id (at-most-once is keyed by client id): under the
 * group's *client key* (c0, c1 below: derived from the group key by the
 * agent, bpf/mac.ts clientKeyOf, handed to clients; it cannot make a
 * SEQUENCED), or, for a control op (XSEQ_F_CONTROL), under the group key
 * itself. The sequencer checks it before anything else and re-seals the
 * stamped SEQUENCED with the group key in the same trailer.
 */
#define XSEQ_MAC_LEN 8
#define XSEQ_KEY_LEN 16

/* xseq_mac_key.flags bits */
#define XSEQ_KEY_F_SET 0x1 /* the group has a key: MACs are stamped and required */

/* Value of xseq_mac_keys[group_id] (sequencer, written by the agent) and
 * xseq_rx_mac_keys[group_id] (replica program, written by the replica).
 * Host order: k0 and k1 are key bytes 0..7 and 8..15 read as little-endian
 * u64s, SipHash's k0 and k1. Written as a whole value. */
struct xseq_mac_key {
	__u64 k0;
	__u64 k1;
	__u32 flags;         /* XSEQ_KEY_F_* */
	__u32 pad;
	__u64 c0;            /* the client key, as k0/k1 (sequencer map only; the */
	__u64 c1;            /* replica program leaves them zero) */
};

/*
 * Client ids of a group without a key (xseq_client_sources, sequencer):
 * a client id belongs to the IPv4 source address of the first REQUEST that
 * used it, for as long as the LRU map keeps it (a client's every REQUEST
 * refreshes it); a REQUEST under that id from any other address is dropped
 * (XSEQ_CTR_DROP_CLIENT_SOURCE), so a host that overheard a client id
 * cannot speak for it from its own address. The port is not compared (a
 * client restarted with its id comes from another one); it is kept for
 * inspection. Key: the client id, host order. Network order value. A
 * keyed group does not use it (the MAC binds the id).
 */
struct xseq_client_source {
	__be32 addr;
	__be16 port;         /* of that first REQUEST; not compared */
	__u16 pad;
};
#define XSEQ_CLIENT_SOURCES 65536

/*
 * Solicits answered per (group, solicitor): at most one FLUSH per
 * xseq_load_cfg.solicit_gap_ns (default XSEQ_SOLICIT_GAP_NS) for each
 * member's replica id and for the agent
 * (xseq_solicit_last[group * (XSEQ_MAX_REPLICAS + 1) + slot], slot = the
 * replica id, XSEQ_MAX_REPLICAS for the agent; host-order TAI ns of the last
 * answer); the rest are dropped (XSEQ_CTR_DROP_SOLICIT_RATE). Replicas
 * solicit at most once per flushSolicitUs (default 1 ms) per sequencer, so
 * a solicit flood costs a group at most (members + 1) FLUSHes per gap.
 */
#define XSEQ_SOLICIT_GAP_NS 50000

/* Maximum number of groups; a group id is an index below it. */
#define XSEQ_MAX_GROUPS 256

/* xseq_group.flags bits */
#define XSEQ_GROUP_F_ENABLED 0x1
/* Removed from the group (Hydra): requests are refused, ACKs of requests
 * already stamped still count, and every FLUSH carries XSEQ_F_FINAL. */
#define XSEQ_GROUP_F_DRAINING 0x2

/*
 * FLUSH_SOLICIT (replica -> sequencer, payload_len 0): group_id,
 * sequencer_id (the one asked), replica_id, session. Answered only for a
 * configured member (same address and port check as ACKs) or for the
 * agent's own solicit: replica_id XSEQ_REPLICA_AGENT and IPv4 source equal
 * to the destination (the sequencer's own address); in a keyed group only
 * with a valid MAC (group key); at most once per XSEQ_SOLICIT_GAP_NS per
 * solicitor. The solicit is turned
 * into a FLUSH in place: clock first, then an atomic read of the seq, so
 * every later seq of this sequencer carries a clock >= the flush's.
 */
#define XSEQ_REPLICA_AGENT 0xffff

/* Replicas per group; replica ids are 0..n_members-1 and index the ack
 * bitmap. */
#define XSEQ_MAX_REPLICAS 8

/* One configured replica: only ACKs from exactly this address and port
 * count for its replica id. */
struct xseq_member {
	__be32 addr;         /* network order */
	__be16 port;         /* network order: the replica's ACK source port */
	__u16 pad;
};

/* Value of xseq_groups[group_id]. Host order unless marked. */
struct xseq_group {
	__be32 mcast_addr;   /* network order: IPv4 multicast address */
	__be16 mcast_port;   /* network order: UDP port at the receivers */
	__u16 sequencer_id;
	__u32 session;
	__u32 flags;         /* XSEQ_GROUP_F_* */
	__u8 n_members;      /* replicas 0..n_members-1; 0 = no aggregation */
	__u8 quorum;         /* ACKs that certify a request, the leader's included,
			      * when weights_version is 0 */
	__u16 weights_version; /* weight table new requests are stamped under
				* (struct xseq_weights); 0 = none: count quorum */
	__u32 window_base;   /* index of this group's first slot in xseq_slots */
	struct xseq_member members[XSEQ_MAX_REPLICAS];
};

/* Value of xseq_group_seq[group_id]: padded to a cache line so groups
 * stamped on different CPUs do not share one. */
struct xseq_group_seq {
	__u64 seq;     /* host order: last assigned seq (0 = none yet) */
	__u64 pad[7];
};

/*
 * Value of xseq_released[group_id]: a __u64, host order, the group's
 * released seq. Written by the agent only (a whole-value map update: no
 * atomics needed); read by the stamp path. Every seq <= released is one
 * the agent stopped waiting for: every member acked it, or its re-sends ran
 * out (retries exhausted) after a quorum including the leader of the acks'
 * view had acked it, so its REPLY was due and a member that still lacks it
 * is dead or was recovered by state transfer (it never acks old seqs) and
 * catches up through repair or the replicas' slow path. Under backpressure
 * a slot frees when every member acked its seq OR its seq (of the group's
 * current session) is <= released; without this, one silent member stalls
 * the group after W requests. It only grows within a session and is zeroed
 * with the group's seq when a new session starts (Sequencer.resetSeq).
 */

/* xseq_load_cfg.flags bits */
#define XSEQ_CFG_F_OVERWRITE 0x1 /* a busy slot is overwritten; default: the
				  * request is dropped (backpressure) */

/* Load-time configuration, the program's .rodata (set before load). */
struct xseq_load_cfg {
	__be16 port;         /* network order: UDP port the sequencer serves */
	__u16 pad;
	__u32 flags;         /* XSEQ_CFG_F_* */
	__u32 window_slots;  /* W: slots per group window, a power of two */
	__u32 max_result;    /* largest result a leader may return, <= XSEQ_RESULT_CAP */
	__u32 solicit_gap_ns; /* a solicitor is answered at most once per this many ns;
			       * XSEQ_SOLICIT_GAP_NS unless a test sets it; 0 = no gap */
};

/* Largest result a slot can hold, and the largest stamped message. */
#define XSEQ_RESULT_CAP 256
#define XSEQ_MSG_CAP (XSEQ_HDR_LEN + XSEQ_MAX_PAYLOAD)

/* xseq_slot.state bits */
#define XSEQ_SLOT_F_REPLIED 0x1 /* the REPLY for this seq has been sent */
#define XSEQ_SLOT_F_STALE 0x2   /* the leader's stored answer is a stale mark
				 * (XSEQ_F_STALE), not a result */

/*
 * xseq_slot.acks, one 64-bit word changed only by compare-and-swap (and by
 * the stamp path's plain store when it takes the slot):
 *   bits 63..32  view of the acks counted
 *   bits 31..8   generation: seq mod 2^24 of the seq the acks are for
 *   bits  7..0   bitmap of the replicas that acked (XSEQ_MAX_REPLICAS)
 * The generation makes the slot's identity part of every CAS: an ACK for
 * seq can never set a bit once the slot was taken for seq + k*W (k*W not a
 * multiple of 2^24; with W <= 2^20, any k < 16).
 */
#define XSEQ_ACKS_BITMAP 0xffu
#define XSEQ_ACKS_GEN_SHIFT 8
#define XSEQ_ACKS_GEN_MASK 0xffffffu

/*
 * One window slot, xseq_slots[window_base + (seq & (W - 1))]. Written by
 * the stamp path (everything but acks/state/result), the ack path (acks,
 * state, result) and read by the agent through mmap for retransmission and
 * repair. The stamp path writes seq first, so late ACKs for the slot's
 * previous seq stop matching at once, then the acks word with the new
 * seq's generation (which fails their CAS if one is under way), then the
 * rest. The agent only reads slots (it writes xseq_released instead). A
 * reader copies what it needs and checks seq, session and the copied
 * header's seq and clock again (agent/window.ts).
 */
struct xseq_slot {
	__u64 seq;           /* seq held; 0 = never used */
	__u64 acks;          /* atomic: (view << 32) | (generation << 8) | bitmap of
			      * replicas that acked; see XSEQ_ACKS_* */
	__u64 stamp_ns;      /* TAI at stamping */
	__u32 session;
	__u32 state;         /* atomic: XSEQ_SLOT_F_* */
	__be32 client_addr;  /* network order: where the REPLY goes */
	__be16 client_port;  /* network order */
	__u8 client_mac[6];
	__u16 msg_len;       /* bytes used in msg */
	__u16 result_len;    /* bytes used in result; valid when result_view is the ack view */
	__u32 result_view;   /* view of the leader's stored result, +1 (0 = none) */
	__u32 weights_version; /* the group's weights_version when stamped */
	__u8 result[XSEQ_RESULT_CAP];
	__u8 msg[XSEQ_MSG_CAP]; /* the SEQUENCED message as multicast: header + payload */
};

/*
 * Weighted quorums. Value of xseq_weights[2 * group_id + (version & 1)],
 * host order, written by the agent only, as a whole value. A slot keeps
 * the version it was stamped under (xseq_slot.weights_version) and its ACKs
 * are counted against exactly that table: a REPLY is certified once the
 * leader of the ACK's view acked and the acked weight is more than half of
 * the members' total. The agent writes a new version into the other entry
 * before it switches xseq_group.weights_version to it, so requests stamped
 * before the switch keep the old table; an ACK whose table was replaced
 * meanwhile (two switches within its request's life) is dropped, counted
 * (drop_ack_weights), never counted under a mix of tables.
 */
struct xseq_weights {
	__u32 version;       /* = the slot's weights_version it serves; 0 = empty */
	__u32 pad;
	__u8 weight[XSEQ_MAX_REPLICAS]; /* by replica id */
};

/* Buckets of the stamp-to-quorum histogram: bucket i counts requests whose
 * quorum came after [2^i, 2^(i+1)) nanoseconds (bucket 0 also holds 0).
 * Entry XSEQ_HIST_SUM (after the buckets) holds the sum of those times in
 * nanoseconds, so user space can export a true histogram sum. */
#define XSEQ_HIST_BUCKETS 40
#define XSEQ_HIST_SUM XSEQ_HIST_BUCKETS

/*
 * Repair service (agent, UDP). A REPAIR_REQUEST names group_id, session,
 * replica_id (the requester) and seq (the first wanted); its payload is
 * struct xseq_repair_req. The agent answers with every message it still
 * holds, re-sent as SEQUENCED with XSEQ_F_RETRANSMIT, then one REPAIR_REPLY
 * (same group, session, seq) whose payload is struct xseq_repair_reply
 * followed by n_missing big-endian u64 seqs it no longer has. A bad
 * request gets an ERROR whose payload is struct xseq_error + text.
 *
 * The sequencer answers a REQUEST it refuses under backpressure the same
 * way, from XDP: the REQUEST turned around into an ERROR (same group,
 * client and request id) whose payload is struct xseq_error with code
 * XSEQ_ERR_BUSY and no text. The request took no seq, so a client that
 * re-sends it after BUSY gets exactly one REPLY for it. (No
 * amplification: the answer is never larger than the request.)
 */
#define XSEQ_REPAIR_MAX 128
struct xseq_repair_req {
	__be32 count;        /* seqs wanted from header.seq on, 1..XSEQ_REPAIR_MAX */
};
struct xseq_repair_reply {
	__be32 count;        /* as requested */
	__be32 n_resent;     /* messages re-sent before this reply */
	__be32 n_missing;    /* __be64 seqs that follow */
	__be32 pad;
};

/*
 * Weight reassignment (user space only; docs/PROTOCOL.md "WEIGHTS"). Each
 * replica reports the group's committed weight table to every sequencer's
 * agent, at the repair port, when it commits a new one and every few
 * seconds: header.replica_id = the sender, header.seq = the table's version
 * in the replicas' ledger, payload struct xseq_weights_report. The agent
 * accepts it only from a configured member at its exact address and port
 * (and, in a keyed group, with a valid MAC), switches the kernel to the
 * table once f + 1 members reported the same version and weights, and
 * never answers it.
 */
struct xseq_weights_report {
	__be32 applied;      /* changes the ledger applied so far */
	__be32 refused;      /* changes it committed as no-op changes */
	__u8 n_members;      /* weights that count, by replica id */
	__u8 f;              /* failures the group tolerates */
	__u8 weight[XSEQ_MAX_REPLICAS];
	__u8 pad[2];
};

enum xseq_error_code {
	XSEQ_ERR_BAD_REQUEST = 1,    /* malformed payload */
	XSEQ_ERR_NOT_MEMBER = 2,     /* source is not the named replica of the group */
	XSEQ_ERR_UNKNOWN_GROUP = 3,
	XSEQ_ERR_WRONG_SESSION = 4,  /* the session is not the group's current one */
	XSEQ_ERR_RANGE_TOO_LARGE = 5,
	XSEQ_ERR_BUSY = 6,           /* sequencer -> client: backpressure, the request's
				      * window slot is busy and it was NOT stamped;
				      * re-send it (same request id) after a pause */
	XSEQ_ERR_UNAUTHORIZED = 7,   /* sequencer -> client: a control op (XSEQ_F_CONTROL)
				      * that is not authenticated (keyed group: no valid
				      * group-key MAC; no key: not from a member's
				      * address nor the sequencer's own); NOT stamped */
};
struct xseq_error {
	__be16 code;         /* enum xseq_error_code */
	__be16 text_len;     /* bytes of UTF-8 text that follow */
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
	XSEQ_CTR_ACK_RX,                /* ACKs to the xseq port */
	XSEQ_CTR_ACK_COUNTED,           /* ACKs that set a new bit in a slot */
	XSEQ_CTR_ACK_DUPLICATE,         /* ACKs whose bit was already set (view unchanged) */
	XSEQ_CTR_ACK_LATE,              /* counted ACKs for a slot already replied */
	XSEQ_CTR_REPLY,                 /* REPLYs sent: quorum reached */
	XSEQ_CTR_DROP_ACK_STRANGER,     /* replica id out of range or source not that member */
	XSEQ_CTR_DROP_ACK_SESSION,      /* session is not the group's */
	XSEQ_CTR_DROP_ACK_WINDOW,       /* seq not held in the window */
	XSEQ_CTR_DROP_ACK_STALE_VIEW,   /* view lower than the slot's */
	XSEQ_CTR_DROP_RESULT_TOO_BIG,   /* leader result over max_result */
	XSEQ_CTR_ACK_VIEW_RESET,        /* a higher view reset a slot's acks */
	XSEQ_CTR_WINDOW_OVERWRITE,      /* a slot not acked by all was overwritten */
	XSEQ_CTR_DROP_BACKPRESSURE,     /* request dropped: its slot is not acked by all */
	XSEQ_CTR_DROP_NO_WINDOW,        /* group has members but its slot is out of range */
	XSEQ_CTR_FLUSH,                 /* FLUSH sent (solicited by a member or the agent) */
	XSEQ_CTR_FLUSH_FINAL,           /* of those, FINAL (the group is draining) */
	XSEQ_CTR_DROP_SOLICIT_STRANGER, /* FLUSH_SOLICIT from no member and not the agent */
	XSEQ_CTR_DROP_DRAINING,         /* request refused: the group is draining */
	XSEQ_CTR_REPLY_GROW_FAILED,     /* the quorum-completing ACK could not grow into
					 * the REPLY (no tail- nor headroom): the leader's
					 * ack was undone (as if lost), so the agent re-sends
					 * to the leader, whose re-ACK carries the result */
	XSEQ_CTR_REPLY_HEADROOM,        /* REPLYs that grew (partly) in front: the
					 * frame had too little tailroom */
	XSEQ_CTR_DROP_ACK_WEIGHTS,      /* the slot's weight table was replaced (two
					 * switches within the request's life) */
	XSEQ_CTR_DROP_BAD_MAC,          /* keyed group: an ACK or FLUSH_SOLICIT without a
					 * valid MAC; a group without a key: a REQUEST or
					 * FLUSH_SOLICIT carrying XSEQ_F_MAC */
	XSEQ_CTR_DROP_MAC_ROOM,         /* keyed group: the frame could not grow by the
					 * MAC (no seq taken) */
	XSEQ_CTR_BUSY,                  /* of drop_backpressure: turned into an ERROR
					 * BUSY to the client (the rest were too short
					 * to grow into one and only dropped) */
	XSEQ_CTR_DROP_CLIENT_MAC,       /* keyed group: a REQUEST without a valid
					 * client-key MAC (not a control op) */
	XSEQ_CTR_DROP_CLIENT_SOURCE,    /* no key: a REQUEST under a client id bound to
					 * another source address */
	XSEQ_CTR_CONTROL_REFUSED,       /* control op not authenticated: answered ERROR
					 * UNAUTHORIZED, not stamped */
	XSEQ_CTR_DROP_SOLICIT_RATE,     /* FLUSH_SOLICIT within XSEQ_SOLICIT_GAP_NS of
					 * the last one answered for that solicitor */
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
#define XSEQ_MAP_SLOTS "xseq_slots"
#define XSEQ_MAP_QUORUM_HIST "xseq_quorum_hist"
#define XSEQ_MAP_RELEASED "xseq_released"
#define XSEQ_MAP_WEIGHTS "xseq_weights"
#define XSEQ_MAP_MAC_KEYS "xseq_mac_keys"
#define XSEQ_MAP_CLIENT_SOURCES "xseq_client_sources"
#define XSEQ_MAP_SOLICIT_LAST "xseq_solicit_last"
#define XSEQ_PIN_ROOT "/sys/fs/bpf/xseq"
#define XSEQ_EVENTS_BYTES (64 * 1024)

/*
 * Sequences (NEXTVAL). A client asks the sequencer host for the next values
 * of a named sequence; the XDP program answers straight back (XDP_TX, source
 * and destination swapped) with one atomic add on the sequence's counter.
 * The header is an ordinary struct xseq_hdr (type XSEQ_MSG_NEXTVAL,
 * client_id and request_id chosen by the client and echoed); payload_len is
 * exactly sizeof(struct xseq_nv_req). The reply keeps the header, type
 * XSEQ_MSG_NEXTVAL_REPLY, and overwrites the payload with a struct
 * xseq_nv_reply of the same size, so the frame never changes length.
 * Both payloads are network order.
 *
 * Authentication: when group_id names a group with a key (xseq_mac_keys),
 * the NEXTVAL must carry XSEQ_F_MAC and a valid MAC under the group's
 * client key (c0, c1, as a client's REQUEST: header and payload,
 * XSEQ_MAC_LEN trailer), and the reply is sealed with the client key in the
 * same trailer. A sequence bound to a
 * keyed group (XSEQ_NV_F_KEYED) answers only such requests naming its
 * group: anything else is dropped unanswered (XSEQ_NV_CTR_DROP_MAC).
 */
#define XSEQ_NV_NAME_MAX 32          /* name bytes, NUL-padded; at least one */
#define XSEQ_NV_MAX_SEQS 1024        /* sequences per host; an id is below it */
#define XSEQ_NV_MAX_COUNT (1u << 20) /* values one call may take */

struct xseq_nv_req {
	__be32 count;                    /* values wanted; 0 = the sequence's cache */
	__be32 flags;                    /* zero */
	char name[XSEQ_NV_NAME_MAX];     /* the sequence, NUL-padded */
};

/* xseq_nv_reply.status */
enum xseq_nv_status {
	XSEQ_NV_OK = 0,                  /* first, count, increment are the block */
	XSEQ_NV_UNKNOWN = 1,             /* no such sequence (never created, or dropped) */
	XSEQ_NV_REFUSED = 2,             /* the block would reach the durable mark: the
					  * agent has not made more values durable (it is
					  * gone, or behind); nothing was handed out */
};

struct xseq_nv_reply {
	__be64 first;                    /* the block is first + i * increment, i < count */
	__be32 count;
	__be32 increment;
	__be64 mark;                     /* the durable mark when answered (exclusive) */
	__be32 seq_id;                   /* the sequence's id (0 unless known) */
	__be16 status;                   /* enum xseq_nv_status */
	__be16 pad;
	__be64 reserved;                 /* zero; keeps the size equal to the request's */
};

/* xseq_nv_seq.flags bits */
#define XSEQ_NV_F_ENABLED 0x1
#define XSEQ_NV_F_KEYED 0x2 /* only NEXTVALs MAC'd under group_id's key */

/*
 * Value of xseq_nv_seqs[id]: one cache line per sequence, host order,
 * read and written by the agent through mmap (BPF_F_MMAPABLE). Values are
 * 0..2^63-1. The kernel hands out [next, next + count * increment) only
 * while that end is <= mark: every value it gives is below a mark the agent
 * wrote to its state file and fsync'ed BEFORE it stored the mark here (one
 * aligned 8-byte store). A restarted agent whose data path is gone starts
 * next at the file's mark: values never repeat, and the ones between the
 * last handed out and the mark are a gap. next is the kernel's (atomic
 * add); the agent stores it only while the sequence is disabled.
 */
struct xseq_nv_seq {
	__u64 next;                      /* next value to hand out */
	__u64 mark;                      /* durable mark: values below it may be handed out */
	__u64 increment;                 /* 1..2^31 */
	__u32 cache;                     /* block size of a count-0 call, 1..XSEQ_NV_MAX_COUNT */
	__u32 flags;                     /* XSEQ_NV_F_* */
	__u32 group_id;                  /* XSEQ_NV_F_KEYED: the group whose key it needs */
	__u32 pad0;
	__u64 pad[3];
};

/* Key of xseq_nv_names: the name, NUL-padded (the bytes of the request). */
struct xseq_nv_name {
	char name[XSEQ_NV_NAME_MAX];
};

/* Value of xseq_nv_stats[id], per CPU: what each sequence handed out. */
struct xseq_nv_stats {
	__u64 calls;                     /* NEXTVAL answered with a block */
	__u64 values;                    /* values in those blocks */
	__u64 refused;                   /* answered XSEQ_NV_REFUSED */
	__u64 pad;
};

/* Index into the per-CPU counter array xseq_nv_counters. */
enum xseq_nv_counter {
	XSEQ_NV_CTR_RX = 0,              /* well-formed-header NEXTVALs */
	XSEQ_NV_CTR_REPLY_OK,            /* answered with a block */
	XSEQ_NV_CTR_VALUES,              /* values handed out */
	XSEQ_NV_CTR_REFUSED,             /* answered XSEQ_NV_REFUSED (at the mark) */
	XSEQ_NV_CTR_UNKNOWN,             /* answered XSEQ_NV_UNKNOWN */
	XSEQ_NV_CTR_DROP_LENGTH,         /* payload_len is not sizeof(struct xseq_nv_req) */
	XSEQ_NV_CTR_DROP_FLAGS,          /* request flags not zero */
	XSEQ_NV_CTR_DROP_NAME,           /* empty name */
	XSEQ_NV_CTR_DROP_COUNT,          /* count over XSEQ_NV_MAX_COUNT */
	XSEQ_NV_CTR_DROP_MAC,            /* keyed group or sequence: no valid MAC, or a
					  * MAC where no key is set (never answered) */
	XSEQ_NV_CTR_MAX
};

#define XSEQ_MAP_NV_SEQS "xseq_nv_seqs"
#define XSEQ_MAP_NV_NAMES "xseq_nv_names"
#define XSEQ_MAP_NV_STATS "xseq_nv_stats"
#define XSEQ_MAP_NV_COUNTERS "xseq_nv_counters"

/*
 * Replica side (replica.bpf.c): an optional XDP program on a replica host.
 * It drops SEQUENCED packets the replica would discard anyway (an older
 * session than the replica's, or a seq it already delivered) and posts a
 * gap event when a seq skips ahead, so the slow path starts without a scan.
 * A stream is one (group, sequencer): Hydra's sequencers each stamp their
 * own seqs, so every one of them is tracked on its own.
 */

/* Key of xseq_rx_ctl and xseq_rx_state. Host order. */
struct xseq_rx_key {
	__u32 group_id;
	__u16 sequencer_id;
	__u16 pad;           /* zero: part of the hash key */
};

/* Value of xseq_rx_ctl: what the replica has, per (group, sequencer)
 * stream. Written only by user space, always as a whole value; the program
 * reads session before delivered. A preallocated HASH element can be
 * recycled by a later update while the program reads it, and then the
 * later fields are the newer ones: an older session with a newer delivered
 * (a new session starts low: it drops less), never a newer session with an
 * older delivered. With one sequencer every stream of a group gets the same
 * values, so a recycled element never carries another stream's position.
 * With several, each stream has its own; the element the program holds
 * can then (for the length of one packet, when two updates land within it)
 * carry another stream's position, and the packet may pass or be dropped
 * wrongly. A wrong drop is a loss like any other: the replica's drop
 * recovery gets the seq again (repair, or its leader). Host order. */
struct xseq_rx_ctl {
	__u32 session;           /* the replica's current session */
	__u32 pad;
	__u64 delivered;         /* highest seq of that session in the replica's log */
	__u64 retransmit_keep;   /* XSEQ_F_RETRANSMIT copies at most this far below
				  * delivered still pass (their re-ACK may be needed) */
};

/* Value of xseq_rx_state: what the program saw. Written only by the
 * program (atomics: several CPUs), created zeroed by user space beside its
 * xseq_rx_ctl entry; kept apart from it so that user-space updates never
 * overwrite the program's fields. Host order. */
struct xseq_rx_state {
	__u32 session;           /* session highest_seen belongs to */
	__u32 pad;
	__u64 highest_seen;      /* highest seq of that session seen (or delivered) */
	__u64 dropped_stale;     /* older session than xseq_rx_ctl.session */
	__u64 dropped_duplicate; /* seq <= delivered, not needed for a re-ACK */
	__u64 passed_retransmit; /* retransmitted copies of delivered seqs, passed */
	__u64 gap_events;        /* events posted */
	__u64 gap_seqs;          /* seqs those events named */
};

/* One record of the xseq_rx_gaps ring buffer: seqs from..to (inclusive)
 * of the stream never reached this host before a later seq did. A hint:
 * the packet may only be late (reordered), which the replica checks. */
struct xseq_gap_event {
	__u32 group_id;
	__u16 sequencer_id;
	__u16 pad;
	__u32 session;
	__u32 pad2;
	__u64 from;
	__u64 to;
};

/* Key of xseq_rx_sources: a configured sequencer's address and xseq port,
 * the source of its SEQUENCED and FLUSH (XDP-sent, and the agent's
 * re-sends and socket flushes). With xseq_rx_cfg.check_sources set, a
 * SEQUENCED or FLUSH to the group port from anywhere else is dropped.
 * Network order. The value is a __u32, 1. */
struct xseq_rx_source {
	__be32 addr;
	__be16 port;
	__u16 pad;           /* zero: part of the hash key */
};

/* Load-time configuration of replica.bpf.c, its .rodata. */
struct xseq_rx_cfg {
	__be16 port;         /* network order: the group's UDP port on this host */
	__u8 check_sources;  /* 1: SEQUENCED and FLUSH only from xseq_rx_sources */
	__u8 pad;
};

/* Index into the per-CPU counter array xseq_rx_counters. */
enum xseq_rx_counter {
	XSEQ_RX_CTR_RX = 0,                /* UDP packets to the group port */
	XSEQ_RX_CTR_SEQUENCED,             /* well-formed SEQUENCED among them */
	XSEQ_RX_CTR_PASS_MALFORMED,        /* not a well-formed xseq message: passed,
					    * user space counts and ignores it */
	XSEQ_RX_CTR_PASS_OTHER_TYPE,       /* xseq, not SEQUENCED (FLUSH ...) */
	XSEQ_RX_CTR_PASS_UNTRACKED,        /* SEQUENCED of a stream user space has not set up */
	XSEQ_RX_CTR_PASS_NEWER_SESSION,    /* the replica starts a view change on it */
	XSEQ_RX_CTR_DROP_STALE_SESSION,
	XSEQ_RX_CTR_DROP_DUPLICATE,        /* delivered, and not a retransmission */
	XSEQ_RX_CTR_DROP_RETRANSMIT_OLD,   /* retransmission further below delivered than retransmit_keep */
	XSEQ_RX_CTR_PASS_RETRANSMIT,       /* retransmission of a delivered seq: the replica re-ACKs it */
	XSEQ_RX_CTR_GAP_EVENTS,
	XSEQ_RX_CTR_EVENTS_LOST,           /* gap events the ring buffer had no room for */
	XSEQ_RX_CTR_DROP_STRANGER,         /* SEQUENCED or FLUSH not from a configured
					    * sequencer's address and port */
	XSEQ_RX_CTR_DROP_BAD_MAC,          /* keyed group: SEQUENCED or FLUSH without a
					    * valid MAC (forged, corrupted or truncated) */
	XSEQ_RX_CTR_MAX
};

/* Names in replica.bpf.o. Nothing of it is pinned: the program must not
 * outlive the replica, or a restarted replica (its log gone) would have
 * what it needs dropped as duplicates of what its previous life delivered. */
#define XSEQ_PROG_REPLICA "xseq_replica"
#define XSEQ_MAP_RX_CTL "xseq_rx_ctl"
#define XSEQ_MAP_RX_STATE "xseq_rx_state"
#define XSEQ_MAP_RX_COUNTERS "xseq_rx_counters"
#define XSEQ_MAP_RX_GAPS "xseq_rx_gaps"
#define XSEQ_MAP_RX_SOURCES "xseq_rx_sources"
#define XSEQ_MAP_RX_MAC_KEYS "xseq_rx_mac_keys"
#define XSEQ_RX_STREAMS 1024          /* (group, sequencer) pairs per host */
#define XSEQ_RX_GAPS_BYTES (64 * 1024)
#define XSEQ_RX_SOURCES 64            /* configured sequencer addresses per host */

#endif /* XSEQ_H */
