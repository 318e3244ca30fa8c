/*
 * Prints, as JSON, every size, offset, enum value and constant of
 * bpf/xseq.h, plus one header encoded by C, so test/contract.test.ts can
 * prove the TypeScript codec equal to the C header byte for byte.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <endian.h>
#include "xseq.h"

#define FIELD(s, f) printf("%s\"%s\":[%zu,%zu]", first++ ? "," : "", #f, offsetof(struct s, f), sizeof(((struct s *)0)->f))
#define ENUMV(e) printf("%s\"%s\":%d", first++ ? "," : "", #e, (int)(e))

int main(void)
{
	int first;

	printf("{\"hdr\":{\"size\":%zu,\"fields\":{", sizeof(struct xseq_hdr));
	first = 0;
	FIELD(xseq_hdr, magic); FIELD(xseq_hdr, version); FIELD(xseq_hdr, type);
	FIELD(xseq_hdr, flags); FIELD(xseq_hdr, group_id); FIELD(xseq_hdr, sequencer_id);
	FIELD(xseq_hdr, replica_id); FIELD(xseq_hdr, session); FIELD(xseq_hdr, view);
	FIELD(xseq_hdr, seq); FIELD(xseq_hdr, clock_ns); FIELD(xseq_hdr, client_id);
	FIELD(xseq_hdr, request_id); FIELD(xseq_hdr, payload_len); FIELD(xseq_hdr, reserved);
	printf("}},\"group\":{\"size\":%zu,\"fields\":{", sizeof(struct xseq_group));
	first = 0;
	FIELD(xseq_group, mcast_addr); FIELD(xseq_group, mcast_port); FIELD(xseq_group, sequencer_id);
	FIELD(xseq_group, session); FIELD(xseq_group, flags); FIELD(xseq_group, n_members);
	FIELD(xseq_group, quorum); FIELD(xseq_group, weights_version); FIELD(xseq_group, window_base);
	FIELD(xseq_group, members);
	printf("}},\"member\":{\"size\":%zu,\"fields\":{", sizeof(struct xseq_member));
	first = 0;
	FIELD(xseq_member, addr); FIELD(xseq_member, port);
	printf("}},\"slot\":{\"size\":%zu,\"fields\":{", sizeof(struct xseq_slot));
	first = 0;
	FIELD(xseq_slot, seq); FIELD(xseq_slot, acks); FIELD(xseq_slot, stamp_ns); FIELD(xseq_slot, session);
	FIELD(xseq_slot, state); FIELD(xseq_slot, client_addr); FIELD(xseq_slot, client_port);
	FIELD(xseq_slot, client_mac); FIELD(xseq_slot, msg_len); FIELD(xseq_slot, result_len);
	FIELD(xseq_slot, result_view); FIELD(xseq_slot, weights_version); FIELD(xseq_slot, result);
	FIELD(xseq_slot, msg);
	printf("}},\"weights\":{\"size\":%zu,\"fields\":{", sizeof(struct xseq_weights));
	first = 0;
	FIELD(xseq_weights, version); FIELD(xseq_weights, weight);
	printf("}},\"mac_key\":{\"size\":%zu,\"fields\":{", sizeof(struct xseq_mac_key));
	first = 0;
	FIELD(xseq_mac_key, k0); FIELD(xseq_mac_key, k1); FIELD(xseq_mac_key, flags);
	FIELD(xseq_mac_key, c0); FIELD(xseq_mac_key, c1);
	printf("},\"map\":\"%s\",\"rx_map\":\"%s\"},\"client_source\":{", XSEQ_MAP_MAC_KEYS, XSEQ_MAP_RX_MAC_KEYS);
	printf("\"size\":%zu,\"fields\":{", sizeof(struct xseq_client_source));
	first = 0;
	FIELD(xseq_client_source, addr); FIELD(xseq_client_source, port); FIELD(xseq_client_source, pad);
	printf("},\"map\":\"%s\",\"entries\":%d,\"solicit_map\":\"%s\",\"solicit_gap_ns\":%d},\"repair_req\":{",
	       XSEQ_MAP_CLIENT_SOURCES, XSEQ_CLIENT_SOURCES, XSEQ_MAP_SOLICIT_LAST, XSEQ_SOLICIT_GAP_NS);
	printf("\"size\":%zu,\"fields\":{", sizeof(struct xseq_repair_req));
	first = 0;
	FIELD(xseq_repair_req, count);
	printf("}},\"repair_reply\":{\"size\":%zu,\"fields\":{", sizeof(struct xseq_repair_reply));
	first = 0;
	FIELD(xseq_repair_reply, count); FIELD(xseq_repair_reply, n_resent); FIELD(xseq_repair_reply, n_missing);
	printf("}},\"weights_report\":{\"size\":%zu,\"fields\":{", sizeof(struct xseq_weights_report));
	first = 0;
	FIELD(xseq_weights_report, applied); FIELD(xseq_weights_report, refused);
	FIELD(xseq_weights_report, n_members); FIELD(xseq_weights_report, f);
	FIELD(xseq_weights_report, weight);
	printf("}},\"error\":{\"size\":%zu,\"fields\":{", sizeof(struct xseq_error));
	first = 0;
	FIELD(xseq_error, code); FIELD(xseq_error, text_len);
	printf("}},\"group_seq\":{\"size\":%zu,\"fields\":{", sizeof(struct xseq_group_seq));
	first = 0;
	FIELD(xseq_group_seq, seq);
	printf("}},\"load_cfg\":{\"size\":%zu,\"fields\":{", sizeof(struct xseq_load_cfg));
	first = 0;
	FIELD(xseq_load_cfg, port); FIELD(xseq_load_cfg, flags); FIELD(xseq_load_cfg, window_slots);
	FIELD(xseq_load_cfg, max_result); FIELD(xseq_load_cfg, solicit_gap_ns);
	printf("}},\"drop_event\":{\"size\":%zu,\"fields\":{", sizeof(struct xseq_drop_event));
	first = 0;
	FIELD(xseq_drop_event, reason); FIELD(xseq_drop_event, saddr); FIELD(xseq_drop_event, sport);
	FIELD(xseq_drop_event, frame_len);
	printf("}},\"msg\":{");
	first = 0;
	ENUMV(XSEQ_MSG_REQUEST); ENUMV(XSEQ_MSG_SEQUENCED); ENUMV(XSEQ_MSG_ACK); ENUMV(XSEQ_MSG_REPLY);
	ENUMV(XSEQ_MSG_FLUSH); ENUMV(XSEQ_MSG_FLUSH_SOLICIT); ENUMV(XSEQ_MSG_REPAIR_REQUEST);
	ENUMV(XSEQ_MSG_REPAIR_REPLY); ENUMV(XSEQ_MSG_GAP_FIND); ENUMV(XSEQ_MSG_GAP_RECV);
	ENUMV(XSEQ_MSG_GAP_DROP); ENUMV(XSEQ_MSG_GAP_COMMIT); ENUMV(XSEQ_MSG_GAP_COMMIT_REPLY);
	ENUMV(XSEQ_MSG_VIEW_CHANGE_REQUEST); ENUMV(XSEQ_MSG_VIEW_CHANGE); ENUMV(XSEQ_MSG_START_VIEW);
	ENUMV(XSEQ_MSG_STATE_REQUEST); ENUMV(XSEQ_MSG_STATE_REPLY); ENUMV(XSEQ_MSG_SYNC_PREPARE);
	ENUMV(XSEQ_MSG_SYNC_REPLY); ENUMV(XSEQ_MSG_SYNC_COMMIT); ENUMV(XSEQ_MSG_ERROR);
	ENUMV(XSEQ_MSG_NEXTVAL); ENUMV(XSEQ_MSG_NEXTVAL_REPLY); ENUMV(XSEQ_MSG_WEIGHTS);
	ENUMV(XSEQ_MSG_TYPE_MAX);
	printf("},\"ctr\":{");
	first = 0;
	ENUMV(XSEQ_CTR_RX); ENUMV(XSEQ_CTR_SEQUENCED); ENUMV(XSEQ_CTR_DROP_TRUNCATED);
	ENUMV(XSEQ_CTR_DROP_BAD_MAGIC); ENUMV(XSEQ_CTR_DROP_BAD_VERSION); ENUMV(XSEQ_CTR_DROP_BAD_LENGTH);
	ENUMV(XSEQ_CTR_DROP_UNKNOWN_TYPE); ENUMV(XSEQ_CTR_DROP_UNEXPECTED_TYPE);
	ENUMV(XSEQ_CTR_DROP_UNKNOWN_GROUP); ENUMV(XSEQ_CTR_DROP_IP_OPTIONS); ENUMV(XSEQ_CTR_DROP_FRAGMENT);
	ENUMV(XSEQ_CTR_EVENTS_LOST); ENUMV(XSEQ_CTR_ACK_RX); ENUMV(XSEQ_CTR_ACK_COUNTED);
	ENUMV(XSEQ_CTR_ACK_DUPLICATE); ENUMV(XSEQ_CTR_ACK_LATE); ENUMV(XSEQ_CTR_REPLY);
	ENUMV(XSEQ_CTR_DROP_ACK_STRANGER); ENUMV(XSEQ_CTR_DROP_ACK_SESSION); ENUMV(XSEQ_CTR_DROP_ACK_WINDOW);
	ENUMV(XSEQ_CTR_DROP_ACK_STALE_VIEW); ENUMV(XSEQ_CTR_DROP_RESULT_TOO_BIG); ENUMV(XSEQ_CTR_ACK_VIEW_RESET);
	ENUMV(XSEQ_CTR_WINDOW_OVERWRITE); ENUMV(XSEQ_CTR_DROP_BACKPRESSURE); ENUMV(XSEQ_CTR_DROP_NO_WINDOW);
	ENUMV(XSEQ_CTR_FLUSH); ENUMV(XSEQ_CTR_FLUSH_FINAL); ENUMV(XSEQ_CTR_DROP_SOLICIT_STRANGER);
	ENUMV(XSEQ_CTR_DROP_DRAINING);
	ENUMV(XSEQ_CTR_REPLY_GROW_FAILED); ENUMV(XSEQ_CTR_REPLY_HEADROOM);
	ENUMV(XSEQ_CTR_DROP_ACK_WEIGHTS); ENUMV(XSEQ_CTR_DROP_BAD_MAC); ENUMV(XSEQ_CTR_DROP_MAC_ROOM); ENUMV(XSEQ_CTR_BUSY);
	ENUMV(XSEQ_CTR_DROP_CLIENT_MAC); ENUMV(XSEQ_CTR_DROP_CLIENT_SOURCE); ENUMV(XSEQ_CTR_CONTROL_REFUSED);
	ENUMV(XSEQ_CTR_DROP_SOLICIT_RATE);
	ENUMV(XSEQ_CTR_MAX);
	printf("},\"err\":{");
	first = 0;
	ENUMV(XSEQ_ERR_BAD_REQUEST); ENUMV(XSEQ_ERR_NOT_MEMBER); ENUMV(XSEQ_ERR_UNKNOWN_GROUP);
	ENUMV(XSEQ_ERR_WRONG_SESSION); ENUMV(XSEQ_ERR_RANGE_TOO_LARGE); ENUMV(XSEQ_ERR_BUSY);
	ENUMV(XSEQ_ERR_UNAUTHORIZED);
	printf("},\"const\":{");
	first = 0;
	ENUMV(XSEQ_MAGIC); ENUMV(XSEQ_VERSION); ENUMV(XSEQ_DEFAULT_PORT); ENUMV(XSEQ_HDR_LEN);
	ENUMV(XSEQ_MAX_PAYLOAD); ENUMV(XSEQ_MAX_GROUPS); ENUMV(XSEQ_GROUP_F_ENABLED);
	ENUMV(XSEQ_F_RETRANSMIT); ENUMV(XSEQ_F_NOOP); ENUMV(XSEQ_F_RESULT); ENUMV(XSEQ_EVENTS_BYTES);
	ENUMV(XSEQ_MAX_REPLICAS); ENUMV(XSEQ_RESULT_CAP); ENUMV(XSEQ_MSG_CAP); ENUMV(XSEQ_HIST_BUCKETS); ENUMV(XSEQ_HIST_SUM);
	ENUMV(XSEQ_CFG_F_OVERWRITE); ENUMV(XSEQ_SLOT_F_REPLIED); ENUMV(XSEQ_REPAIR_MAX);
	ENUMV(XSEQ_F_FINAL); ENUMV(XSEQ_F_CONTROL); ENUMV(XSEQ_F_STALE); ENUMV(XSEQ_SLOT_F_STALE); ENUMV(XSEQ_GROUP_F_DRAINING); ENUMV(XSEQ_REPLICA_AGENT);
	ENUMV(XSEQ_ACKS_BITMAP); ENUMV(XSEQ_ACKS_GEN_SHIFT); ENUMV(XSEQ_ACKS_GEN_MASK);
	ENUMV(XSEQ_F_MAC); ENUMV(XSEQ_MAC_LEN); ENUMV(XSEQ_KEY_LEN); ENUMV(XSEQ_KEY_F_SET);
	printf("},\"rx_ctr\":{");
	first = 0;
	ENUMV(XSEQ_RX_CTR_RX); ENUMV(XSEQ_RX_CTR_SEQUENCED); ENUMV(XSEQ_RX_CTR_PASS_MALFORMED);
	ENUMV(XSEQ_RX_CTR_PASS_OTHER_TYPE); ENUMV(XSEQ_RX_CTR_PASS_UNTRACKED);
	ENUMV(XSEQ_RX_CTR_PASS_NEWER_SESSION); ENUMV(XSEQ_RX_CTR_DROP_STALE_SESSION);
	ENUMV(XSEQ_RX_CTR_DROP_DUPLICATE); ENUMV(XSEQ_RX_CTR_DROP_RETRANSMIT_OLD);
	ENUMV(XSEQ_RX_CTR_PASS_RETRANSMIT); ENUMV(XSEQ_RX_CTR_GAP_EVENTS); ENUMV(XSEQ_RX_CTR_EVENTS_LOST);
	ENUMV(XSEQ_RX_CTR_DROP_STRANGER); ENUMV(XSEQ_RX_CTR_DROP_BAD_MAC);
	ENUMV(XSEQ_RX_CTR_MAX);
	printf("},\"rx_key\":{\"size\":%zu,\"fields\":{", sizeof(struct xseq_rx_key));
	first = 0;
	FIELD(xseq_rx_key, group_id); FIELD(xseq_rx_key, sequencer_id); FIELD(xseq_rx_key, pad);
	printf("}},\"rx_ctl\":{\"size\":%zu,\"fields\":{", sizeof(struct xseq_rx_ctl));
	first = 0;
	FIELD(xseq_rx_ctl, session); FIELD(xseq_rx_ctl, delivered); FIELD(xseq_rx_ctl, retransmit_keep);
	printf("}},\"rx_state\":{\"size\":%zu,\"fields\":{", sizeof(struct xseq_rx_state));
	first = 0;
	FIELD(xseq_rx_state, session); FIELD(xseq_rx_state, highest_seen); FIELD(xseq_rx_state, dropped_stale);
	FIELD(xseq_rx_state, dropped_duplicate); FIELD(xseq_rx_state, passed_retransmit);
	FIELD(xseq_rx_state, gap_events); FIELD(xseq_rx_state, gap_seqs);
	printf("}},\"gap_event\":{\"size\":%zu,\"fields\":{", sizeof(struct xseq_gap_event));
	first = 0;
	FIELD(xseq_gap_event, group_id); FIELD(xseq_gap_event, sequencer_id); FIELD(xseq_gap_event, session);
	FIELD(xseq_gap_event, from); FIELD(xseq_gap_event, to);
	printf("}},\"rx_cfg\":{\"size\":%zu,\"fields\":{", sizeof(struct xseq_rx_cfg));
	first = 0;
	FIELD(xseq_rx_cfg, port); FIELD(xseq_rx_cfg, check_sources);
	printf("}},\"rx_const\":{");
	first = 0;
	ENUMV(XSEQ_RX_STREAMS); ENUMV(XSEQ_RX_GAPS_BYTES); ENUMV(XSEQ_RX_SOURCES);
	printf("},\"rx_source\":{\"size\":%zu,\"fields\":{", sizeof(struct xseq_rx_source));
	first = 0;
	FIELD(xseq_rx_source, addr); FIELD(xseq_rx_source, port); FIELD(xseq_rx_source, pad);
	printf("}},\"rx_names\":{\"prog\":\"%s\",\"ctl\":\"%s\",\"state\":\"%s\",\"counters\":\"%s\",\"gaps\":\"%s\","
	       "\"sources\":\"%s\"",
	       XSEQ_PROG_REPLICA, XSEQ_MAP_RX_CTL, XSEQ_MAP_RX_STATE, XSEQ_MAP_RX_COUNTERS, XSEQ_MAP_RX_GAPS,
	       XSEQ_MAP_RX_SOURCES);
	printf("},\"nv_req\":{\"size\":%zu,\"fields\":{", sizeof(struct xseq_nv_req));
	first = 0;
	FIELD(xseq_nv_req, count); FIELD(xseq_nv_req, flags); FIELD(xseq_nv_req, name);
	printf("}},\"nv_reply\":{\"size\":%zu,\"fields\":{", sizeof(struct xseq_nv_reply));
	first = 0;
	FIELD(xseq_nv_reply, first); FIELD(xseq_nv_reply, count); FIELD(xseq_nv_reply, increment);
	FIELD(xseq_nv_reply, mark); FIELD(xseq_nv_reply, seq_id); FIELD(xseq_nv_reply, status);
	FIELD(xseq_nv_reply, reserved);
	printf("}},\"nv_seq\":{\"size\":%zu,\"fields\":{", sizeof(struct xseq_nv_seq));
	first = 0;
	FIELD(xseq_nv_seq, next); FIELD(xseq_nv_seq, mark); FIELD(xseq_nv_seq, increment);
	FIELD(xseq_nv_seq, cache); FIELD(xseq_nv_seq, flags); FIELD(xseq_nv_seq, group_id);
	printf("}},\"nv_name\":{\"size\":%zu,\"fields\":{", sizeof(struct xseq_nv_name));
	first = 0;
	FIELD(xseq_nv_name, name);
	printf("}},\"nv_stats\":{\"size\":%zu,\"fields\":{", sizeof(struct xseq_nv_stats));
	first = 0;
	FIELD(xseq_nv_stats, calls); FIELD(xseq_nv_stats, values); FIELD(xseq_nv_stats, refused);
	printf("}},\"nv_ctr\":{");
	first = 0;
	ENUMV(XSEQ_NV_CTR_RX); ENUMV(XSEQ_NV_CTR_REPLY_OK); ENUMV(XSEQ_NV_CTR_VALUES); ENUMV(XSEQ_NV_CTR_REFUSED);
	ENUMV(XSEQ_NV_CTR_UNKNOWN); ENUMV(XSEQ_NV_CTR_DROP_LENGTH); ENUMV(XSEQ_NV_CTR_DROP_FLAGS);
	ENUMV(XSEQ_NV_CTR_DROP_NAME); ENUMV(XSEQ_NV_CTR_DROP_COUNT); ENUMV(XSEQ_NV_CTR_DROP_MAC); ENUMV(XSEQ_NV_CTR_MAX);
	printf("},\"nv_status\":{");
	first = 0;
	ENUMV(XSEQ_NV_OK); ENUMV(XSEQ_NV_UNKNOWN); ENUMV(XSEQ_NV_REFUSED);
	printf("},\"nv_const\":{");
	first = 0;
	ENUMV(XSEQ_NV_NAME_MAX); ENUMV(XSEQ_NV_MAX_SEQS); ENUMV(XSEQ_NV_MAX_COUNT); ENUMV(XSEQ_NV_F_ENABLED); ENUMV(XSEQ_NV_F_KEYED);
	printf("},\"nv_names\":{\"seqs\":\"%s\",\"names\":\"%s\",\"stats\":\"%s\",\"counters\":\"%s\"",
	       XSEQ_MAP_NV_SEQS, XSEQ_MAP_NV_NAMES, XSEQ_MAP_NV_STATS, XSEQ_MAP_NV_COUNTERS);
	printf("},\"names\":{\"prog\":\"%s\",\"groups\":\"%s\",\"group_seq\":\"%s\",\"counters\":\"%s\","
	       "\"events\":\"%s\",\"slots\":\"%s\",\"quorum_hist\":\"%s\",\"pin_root\":\"%s\","
	       "\"released\":\"%s\",\"weights\":\"%s\"}",
	       XSEQ_PROG_SEQUENCER, XSEQ_MAP_GROUPS, XSEQ_MAP_GROUP_SEQ, XSEQ_MAP_COUNTERS,
	       XSEQ_MAP_EVENTS, XSEQ_MAP_SLOTS, XSEQ_MAP_QUORUM_HIST, XSEQ_PIN_ROOT,
	       XSEQ_MAP_RELEASED, XSEQ_MAP_WEIGHTS);

	/* One header encoded the way a C client would, with a distinct value in
	 * every field so a swapped or misplaced field cannot hide. */
	struct xseq_hdr h;
	memset(&h, 0, sizeof(h));
	h.magic = htonl(XSEQ_MAGIC);
	h.version = XSEQ_VERSION;
	h.type = XSEQ_MSG_SEQUENCED;
	h.flags = htons(0x0105);
	h.group_id = htonl(0x0a0b0c0d);
	h.sequencer_id = htons(0x1234);
	h.replica_id = htons(0x2345);
	h.session = htonl(0x3456789a);
	h.view = htonl(0x456789ab);
	h.seq = htobe64(0x0102030405060708ULL);
	h.clock_ns = htobe64(0x1112131415161718ULL);
	h.client_id = htobe64(0x2122232425262728ULL);
	h.request_id = htobe64(0x3132333435363738ULL);
	h.payload_len = htonl(0x00000515);
	printf(",\"sample\":\"");
	for (size_t i = 0; i < sizeof(h); i++)
		printf("%02x", ((unsigned char *)&h)[i]);
	printf("\"}\n");
	return 0;
}
