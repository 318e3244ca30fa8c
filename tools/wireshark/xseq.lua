-- Wireshark / tshark dissector for the xseq wire protocol (docs/PROTOCOL.md;
-- the layouts are bpf/xseq.h's). Every message type, the flags, the
-- REQUEST's reply address, the leader's result, and the REPAIR_REQUEST,
-- REPAIR_REPLY and ERROR payloads.
--
-- Use: tshark -X lua_script:tools/wireshark/xseq.lua -r capture.pcap -Y xseq
-- or copy it to ~/.local/lib/wireshark/plugins/. UDP ports 7400 (sequencer)
-- and 7401 (repair) are decoded by port (Preferences > Protocols > XSEQ to
-- change them); any other UDP datagram that starts with the magic "XSEQ"
-- and version 1 (SEQUENCED and FLUSH to a group port, REPLY to a client) is
-- found by a heuristic. test/wireshark.test.ts checks every field with
-- tshark on frames built by tools/frame.ts.

local xseq = Proto("xseq", "xseq sequencer protocol")

local HDR_LEN = 64
local MAGIC = 0x58534551

local TYPES = {
  [1] = "REQUEST", [2] = "SEQUENCED", [3] = "ACK", [4] = "REPLY", [5] = "FLUSH",
  [6] = "FLUSH_SOLICIT", [7] = "REPAIR_REQUEST", [8] = "REPAIR_REPLY",
  [9] = "GAP_FIND", [10] = "GAP_RECV", [11] = "GAP_DROP", [12] = "GAP_COMMIT",
  [13] = "GAP_COMMIT_REPLY", [14] = "VIEW_CHANGE_REQUEST", [15] = "VIEW_CHANGE",
  [16] = "START_VIEW", [17] = "STATE_REQUEST", [18] = "STATE_REPLY",
  [19] = "SYNC_PREPARE", [20] = "SYNC_REPLY", [21] = "SYNC_COMMIT", [22] = "ERROR",
  [23] = "NEXTVAL", [24] = "NEXTVAL_REPLY", [25] = "WEIGHTS",
}
local ERRORS = {
  [1] = "BAD_REQUEST", [2] = "NOT_MEMBER", [3] = "UNKNOWN_GROUP",
  [4] = "WRONG_SESSION", [5] = "RANGE_TOO_LARGE", [6] = "BUSY", [7] = "UNAUTHORIZED",
}
local T_REQUEST, T_ACK, T_REPLY, T_FLUSH_SOLICIT = 1, 3, 4, 6
local T_REPAIR_REQUEST, T_REPAIR_REPLY, T_ERROR = 7, 8, 22
local F_RESULT = 0x0004
local REPLICA_AGENT = 0xffff

local f = xseq.fields
f.magic = ProtoField.uint32("xseq.magic", "Magic", base.HEX)
f.version = ProtoField.uint8("xseq.version", "Version", base.DEC)
f.type = ProtoField.uint8("xseq.type", "Type", base.DEC, TYPES)
f.flags = ProtoField.uint16("xseq.flags", "Flags", base.HEX)
f.flag_retransmit = ProtoField.bool("xseq.flags.retransmit", "RETRANSMIT", 16, nil, 0x0001)
f.flag_noop = ProtoField.bool("xseq.flags.noop", "NOOP", 16, nil, 0x0002)
f.flag_result = ProtoField.bool("xseq.flags.result", "RESULT", 16, nil, 0x0004)
f.flag_final = ProtoField.bool("xseq.flags.final", "FINAL", 16, nil, 0x0008)
f.flag_control = ProtoField.bool("xseq.flags.control", "CONTROL", 16, nil, 0x0010)
f.group_id = ProtoField.uint32("xseq.group_id", "Group", base.DEC)
f.sequencer_id = ProtoField.uint16("xseq.sequencer_id", "Sequencer id", base.DEC)
f.replica_id = ProtoField.uint16("xseq.replica_id", "Replica id", base.DEC)
f.session = ProtoField.uint32("xseq.session", "Session", base.DEC)
f.view = ProtoField.uint32("xseq.view", "View", base.DEC)
f.seq = ProtoField.uint64("xseq.seq", "Seq", base.DEC)
f.clock_ns = ProtoField.uint64("xseq.clock_ns", "Clock (TAI ns)", base.DEC)
f.client_id = ProtoField.uint64("xseq.client_id", "Client id", base.DEC)
f.request_id = ProtoField.uint64("xseq.request_id", "Request id", base.DEC)
f.payload_len = ProtoField.uint32("xseq.payload_len", "Payload length", base.DEC)
f.reserved = ProtoField.uint32("xseq.reserved", "Reserved", base.HEX)
f.payload = ProtoField.bytes("xseq.payload", "Payload")
f.result = ProtoField.bytes("xseq.result", "Result")
f.reply_addr = ProtoField.ipv4("xseq.reply_addr", "Reply address (view)")
f.reply_port = ProtoField.uint16("xseq.reply_port", "Reply port (replica_id)", base.DEC)
f.agent = ProtoField.bool("xseq.agent_solicit", "Agent's own solicit")
f.repair_count = ProtoField.uint32("xseq.repair.count", "Count", base.DEC)
f.repair_resent = ProtoField.uint32("xseq.repair.n_resent", "Re-sent", base.DEC)
f.repair_n_missing = ProtoField.uint32("xseq.repair.n_missing", "Missing", base.DEC)
f.repair_pad = ProtoField.uint32("xseq.repair.pad", "Pad", base.HEX)
f.repair_missing = ProtoField.uint64("xseq.repair.missing_seq", "Missing seq", base.DEC)
f.error_code = ProtoField.uint16("xseq.error.code", "Error code", base.DEC, ERRORS)
f.error_text_len = ProtoField.uint16("xseq.error.text_len", "Text length", base.DEC)
f.error_text = ProtoField.string("xseq.error.text", "Text", base.UNICODE)

local e_magic = ProtoExpert.new("xseq.bad_magic", "Not XSEQ magic", expert.group.MALFORMED, expert.severity.ERROR)
local e_length = ProtoExpert.new("xseq.bad_length", "UDP length is not 8 + 64 + payload_len", expert.group.MALFORMED, expert.severity.WARN)
local e_payload = ProtoExpert.new("xseq.bad_payload", "Payload does not have this type's layout", expert.group.MALFORMED, expert.severity.WARN)
xseq.experts = { e_magic, e_length, e_payload }

xseq.prefs.sequencer_port = Pref.uint("Sequencer port", 7400, "UDP port of the XDP sequencer")
xseq.prefs.repair_port = Pref.uint("Repair port", 7401, "UDP port of the agent's repair service")

local function payload_tree(tree, buf, off, len, ty, flags)
  local p = buf(off, len)
  if ty == T_REPAIR_REQUEST then
    if len ~= 4 then tree:add_proto_expert_info(e_payload); return end
    tree:add(f.repair_count, p(0, 4))
  elseif ty == T_REPAIR_REPLY then
    if len < 16 then tree:add_proto_expert_info(e_payload); return end
    tree:add(f.repair_count, p(0, 4))
    tree:add(f.repair_resent, p(4, 4))
    local n = p(8, 4):uint()
    tree:add(f.repair_n_missing, p(8, 4))
    tree:add(f.repair_pad, p(12, 4))
    if len ~= 16 + 8 * n then tree:add_proto_expert_info(e_payload) end
    local i = 0
    while i < n and 16 + 8 * i + 8 <= len do
      tree:add(f.repair_missing, p(16 + 8 * i, 8))
      i = i + 1
    end
  elseif ty == T_ERROR then
    if len < 4 then tree:add_proto_expert_info(e_payload); return end
    tree:add(f.error_code, p(0, 2))
    local tl = p(2, 2):uint()
    tree:add(f.error_text_len, p(2, 2))
    if tl > 0 and 4 + tl <= len then tree:add(f.error_text, p(4, tl)) end
  elseif (ty == T_ACK or ty == T_REPLY) and bit.band(flags, F_RESULT) ~= 0 then
    tree:add(f.result, p)
  else
    tree:add(f.payload, p)
  end
end

function xseq.dissector(buf, pinfo, tree)
  if buf:len() < HDR_LEN then return 0 end
  local ty = buf(5, 1):uint()
  local flags = buf(6, 2):uint()
  local plen = buf(56, 4):uint()
  pinfo.cols.protocol = "XSEQ"
  local name = TYPES[ty] or ("type " .. ty)
  local t = tree:add(xseq, buf(0, math.min(buf:len(), HDR_LEN + plen)), "xseq " .. name)
  local m = t:add(f.magic, buf(0, 4))
  if buf(0, 4):uint() ~= MAGIC then m:add_proto_expert_info(e_magic) end
  t:add(f.version, buf(4, 1))
  t:add(f.type, buf(5, 1))
  local ft = t:add(f.flags, buf(6, 2))
  ft:add(f.flag_retransmit, buf(6, 2))
  ft:add(f.flag_noop, buf(6, 2))
  ft:add(f.flag_result, buf(6, 2))
  ft:add(f.flag_final, buf(6, 2))
  ft:add(f.flag_control, buf(6, 2))
  t:add(f.group_id, buf(8, 4))
  t:add(f.sequencer_id, buf(12, 2))
  t:add(f.replica_id, buf(14, 2))
  t:add(f.session, buf(16, 4))
  t:add(f.view, buf(20, 4))
  -- A REQUEST to a group without members may name the client's reply
  -- address in view (IPv4) and replica_id (UDP port); both zero = none.
  if ty == T_REQUEST and (buf(20, 4):uint() ~= 0 or buf(14, 2):uint() ~= 0) then
    t:add(f.reply_addr, buf(20, 4))
    t:add(f.reply_port, buf(14, 2))
  end
  if ty == T_FLUSH_SOLICIT and buf(14, 2):uint() == REPLICA_AGENT then
    t:add(f.agent, buf(14, 2), true)
  end
  t:add(f.seq, buf(24, 8))
  t:add(f.clock_ns, buf(32, 8))
  t:add(f.client_id, buf(40, 8))
  t:add(f.request_id, buf(48, 8))
  t:add(f.payload_len, buf(56, 4))
  t:add(f.reserved, buf(60, 4))
  if buf:len() ~= HDR_LEN + plen then t:add_proto_expert_info(e_length) end
  local avail = math.min(plen, buf:len() - HDR_LEN)
  if avail > 0 then payload_tree(t, buf, HDR_LEN, avail, ty, flags) end

  local info = name .. " group=" .. buf(8, 4):uint()
  if ty ~= T_REQUEST then info = info .. " session=" .. buf(16, 4):uint() end
  info = info .. " seq=" .. buf(24, 8):uint64()
  if ty == T_ACK or ty == T_REPLY then info = info .. " view=" .. buf(20, 4):uint() .. " replica=" .. buf(14, 2):uint() end
  if bit.band(flags, 0x0001) ~= 0 then info = info .. " [RETRANSMIT]" end
  if bit.band(flags, 0x0008) ~= 0 then info = info .. " [FINAL]" end
  if ty == T_ERROR and avail >= 2 then info = info .. " " .. (ERRORS[buf(HDR_LEN, 2):uint()] or "?") end
  pinfo.cols.info = info
  return buf:len()
end

local function heuristic(buf, pinfo, tree)
  if buf:len() < HDR_LEN or buf(0, 4):uint() ~= MAGIC or buf(4, 1):uint() ~= 1 then return false end
  xseq.dissector(buf, pinfo, tree)
  return true
end

local udp = DissectorTable.get("udp.port")
local registered = {}
local function register_ports()
  for _, port in ipairs(registered) do udp:remove(port, xseq) end
  registered = { xseq.prefs.sequencer_port, xseq.prefs.repair_port }
  for _, port in ipairs(registered) do udp:add(port, xseq) end
end
xseq.prefs_changed = register_ports
register_ports()
xseq:register_heuristic("udp", heuristic)
