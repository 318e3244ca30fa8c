// What `xseq-agent <command> --help` prints. Kept beside each other so the
// commands describe one lifecycle in the same words; test/agent.cli.test.ts
// checks that every flag a parser accepts is listed.
import { COUNTER_NAMES, XSEQ_MAX_REPLICAS, XSEQ_RESULT_CAP } from '../bpf/maps.ts';
import { FINAL_FLUSH_REPEATS } from './flush-frame.ts';
import { DEFAULT_BPFFS, DEFAULT_CONFIG_PATH, DEFAULT_STATE_DIR, ENV_CONFIG_FILE, ENV_OVERRIDES } from './config.ts';
import { DEFAULT_MAX_RTO_MS } from './retransmit.ts';

const envList = Object.entries(ENV_OVERRIDES)
  .map(([name, o]) => `${name} (${o.path.join('.')})`)
  .join(', ');

export const MAIN_HELP = `Usage: xseq-agent <command> [options]

Commands:
  run      create or adopt the pinned XDP data path of an interface and serve
           it: retransmission, repair, counters; leaves it stamping on exit
  status   what is attached and pinned, sessions, groups, last seqs, counters
  detach   remove an interface's XDP link and every pin the agent made
  client-key  print a keyed group's client key (what clients seal REQUESTs with)
  monitor  live drop samples of the running agent: who sends what it drops
  version  the version, commit and BPF object digest (also --version)
  help     this text; "xseq-agent <command> --help" for a command's options`;

export const RUN_HELP = `Usage: xseq-agent run [--config FILE] [options]

Runs the sequencer's data path on one interface. The data path (the XDP
program's maps and its XDP link) is pinned under <bpffs>/xseq/<interface>/,
so it keeps stamping while no agent runs. On start:
  - nothing pinned, nothing attached: loads the program, gives every group a
    new session (one more than the last in <stateDir>/sessions.json), pins
    it and attaches it;
  - a complete pinned data path attached to this interface that can serve
    the configuration: adopts it. Stamping never stopped; seqs, sessions and
    counters continue. Members, quorum and multicast address of a group may
    change (the group map is rewritten); a group no longer configured stops
    stamping, a new one starts with a new session;
  - stale pins (partial, link not attached to this interface, objects of the
    wrong kind), a pinned program that cannot serve the configuration (port,
    window.*, attachMode, sequencerId, a drained group no longer draining),
    or another XDP program on the interface: refuses, says what it found and
    the command that fixes it.
Then it re-sends unacked requests to members, serves repair requests, and
logs JSON lines on stdout: "ready", "counters" every statsIntervalMs, drop
samples, and "stopped" with the final counters. SIGINT or SIGTERM stops the
agent and leaves the data path attached and stamping (same session at the
next start), or with --detach-on-exit detaches it and removes its pins.

Configuration: FILE (YAML, or JSON if it ends in .json; default
${DEFAULT_CONFIG_PATH} when it exists, or $${ENV_CONFIG_FILE}; set it empty for
none), then environment variables, then flags; validated once at start, every
mistake reported with its field (exit 2). Environment: ${envList}.

Options (config field in brackets):
  --config FILE          configuration file
  --iface IF             interface to serve [interface] (required)
  --mode native|generic|auto
                         XDP attach mode [attachMode] (default auto: native,
                         else generic, with the reason logged; on a veth auto
                         takes generic, since native XDP_TX there needs an XDP
                         program on the peer)
  --port N               UDP port clients send requests to [port] (default 7400)
  --group ID:ADDR:PORT   group id (0-255), IPv4 multicast address and UDP port
                         at the receivers [groups[].id, .multicast]; repeat for
                         several groups; replaces the file's groups
  --member GROUP:RID:ADDR:PORT
                         replica RID of GROUP sends its ACKs from ADDR:PORT and
                         gets retransmissions at ADDR and the group's port
                         [groups[].members]; RIDs are 0..n-1, n at most ${XSEQ_MAX_REPLICAS};
                         replica 0 leads view 0; replaces that group's members
                         from the file
  --quorum GROUP:Q       ACKs that certify a request of GROUP, the leader's
                         included [groups[].quorum] (default a majority);
                         not together with --weight or --tolerate
  --weight GROUP:RID:W   voting weight 0-255 of member RID of GROUP
                         [groups[].members[].weight] (default 1): a request
                         is certified once its leader and members holding
                         more than half the total weight acked it
  --tolerate GROUP:F     failures GROUP tolerates [groups[].f] (default
                         (n-1)/2): the F heaviest members must hold less
                         than half the total weight, or the agent refuses
  --sequencer-id N       stamped on every message [sequencerId] (default 1);
                         a group may override it [groups[].sequencerId].
                         With several sequencers per group (Hydra) unique
                         per group, 0..N-1 as the replicas list them
  --flush-interval MS    Hydra: every MS the kernel sends each group a FLUSH
                         (clock and last seq, no seq taken), through the
                         attached program in live-frames test-run mode
                         [flushIntervalMs] (default 0 = off; replicas can
                         still solicit flushes). Failures are logged and
                         counted (xseq_agent_flush_errors_total)
  --drain GROUP          Hydra removal: this sequencer stops stamping GROUP
                         for good (requests dropped, reason "draining"),
                         sends ${FINAL_FLUSH_REPEATS} FINAL flushes at start and
                         answers every later solicit (and flush tick) with
                         one [groups[].draining]; repeat for several groups
  --key-file GROUP:PATH  the group's MAC key [groups[].keyFile]: 16 raw bytes
                         or 32 hex digits (openssl rand -hex 16), mode 600 or
                         640 (readable by "other" is refused). Every
                         SEQUENCED, FLUSH, re-send and repair answer then
                         carries a SipHash-2-4 MAC and ACKs and repair
                         requests must carry one; SIGHUP re-reads it. Without
                         one the agent warns at start: any host on the LAN
                         can forge sequencer traffic
  --role GROUP:active|standby
                         one-sequencer failover: this agent is GROUP's active
                         sequencer, or its standby on a second host (give the
                         standby its own groups[].sequencerId). Both take
                         sessions by the pair rule (2 x seconds since
                         2025-01-01, +1 on the standby; an idle standby moves
                         up every second), so the standby's is above the
                         active's and replicas follow it once clients fail
                         over; an old active that comes back stamps a lower
                         session and is dropped [groups[].role]
  --session N            session of the groups of a data path this run
                         creates, instead of the next from sessions.json
                         [session]; replicas take a repeated session for the
                         old data path, so only for tests and migrations
  --window N             slots per group window, a power of two 2..1048576
                         [window.slots] (default 1024)
  --windows N            windows, one per group with members [window.windows]
                         (default 4)
  --max-result BYTES     largest leader result in a REPLY, 0..${XSEQ_RESULT_CAP}
                         [window.maxResult] (default ${XSEQ_RESULT_CAP})
  --policy backpressure|overwrite
                         a request whose window slot is still unacked is
                         dropped (backpressure, the client retries) or
                         overwrites it [window.policy] (default backpressure).
                         A slot whose re-sends ran out after a quorum with
                         the leader acked counts as acked (a dead member
                         does not stall the group)
  --rto-ms MS            re-send to members that did not ack after MS, then
                         2x, 4x ... [retransmit.timeoutMs] (default 20); MS
                         is the least: the RTO adapts to the measured
                         stamp-to-every-member time, up to ${DEFAULT_MAX_RTO_MS} ms
  --retries N            re-sends per request, 0..100 [retransmit.retries]
                         (default 5)
  --repair-port PORT     UDP port of the repair service, 0 = off [repair.port]
                         (default 7401)
  --metrics-listen ADDR:PORT
                         Prometheus /metrics and /healthz, "" = off
                         [metrics.listen] (default 127.0.0.1:9464)
  --stats-interval MS    how often to log counters, 0 = only at exit
                         [statsIntervalMs] (default 10000)
  --log-level LEVEL      fatal|error|warn|info|debug [log.level] (default info)
  --log-format FORMAT    json (one object per line; string levels, ISO times;
                         journald priorities under systemd) or pretty (for a
                         terminal) [log.format] (default json)
  --bpffs DIR            BPF filesystem for the pins [bpffs] (default
                         ${DEFAULT_BPFFS}; mounted there if it is not)
  --state-dir DIR        sessions.json, sequences.json (the sequences'
                         durable marks: never delete it) and the agent's
                         lock [stateDir] (default ${DEFAULT_STATE_DIR})
  --replace              re-create the data path instead of adopting it or
                         refusing stale pins: new sessions, seq from 1 (also
                         how a new build of the program takes over); never
                         removes another program's XDP attachment
  --detach-on-exit       on SIGINT/SIGTERM detach and remove the pins instead
                         of leaving the data path stamping
  -h, --help             this text

Exit status: 0 after a signal; 2 for a bad command line or configuration;
3 when it refuses what it found (EPIN_STALE, EPIN_CONFIG, EXDP_FOREIGN: a
restart cannot fix these); 1 for anything else (EAGENT_RUNNING, EBPF_*...).
Errors are one "xseq-agent: CODE: message" on stderr.
Sequences (NEXTVAL) come from the file only: \`sequences:\` and
\`sequenceControl.listen\` (default 127.0.0.1:9465, "" = off); change them at
run time with xseq-nextval create|drop|setval (docs/sequences.md).
Needs root (or CAP_BPF, CAP_NET_ADMIN and CAP_SYS_ADMIN to mount bpffs) and
bpf/build/sequencer.bpf.o (make -C bpf).`;

const LOCATION_HELP = `  --config FILE          read bpffs, stateDir and interface from FILE (default
                         ${DEFAULT_CONFIG_PATH} when it exists, or $${ENV_CONFIG_FILE})
  --bpffs DIR            BPF filesystem of the pins (default ${DEFAULT_BPFFS})
  --state-dir DIR        where sessions.json and agent locks are (default
                         ${DEFAULT_STATE_DIR})`;

export const STATUS_HELP = `Usage: xseq-agent status [--iface IF | --all] [--json] [options]

Reads the pinned data paths under <bpffs>/xseq/ and the interfaces in this
network namespace, whether an agent runs or not, and prints for each: the
verdict (attached, stale with what is wrong and the fix, or none), the XDP
program on the interface (mode, program id, link id), the pins, whether an
agent runs it (pid), the program's load config (port, window, policy), every
group (session, last seq, multicast, members, quorum, window), the kernel
counters, and the sessions recorded in <stateDir>/sessions.json. Changes
nothing.

Options:
  --iface IF             only this interface (default: the configured
                         interface, if a config file names one, else all)
  --all                  every interface with a pin directory
  --json                 one JSON document instead of text
${LOCATION_HELP}
  -h, --help             this text

Exit status: 0 when every data path shown is attached and ours (or nothing is
pinned with --all), 1 when one is stale or another program is attached, 3
when the interface asked for has no data path, 2 for a bad command line.`;

export const DETACH_HELP = `Usage: xseq-agent detach --iface IF [options]

Removes the data path of IF: detaches its pinned XDP link (stamping stops at
once) and removes every pin the agent creates under <bpffs>/xseq/IF/ (the
maps and the link), then that directory and <bpffs>/xseq/ if they are left
empty. Touches nothing else: another program's XDP attachment, other names in
the directory, and <stateDir>/sessions.json stay (the next data path takes a
new session). Says what it removed; with nothing to remove it says so and
exits 0, so it can be repeated.

Refuses while an agent runs the data path (its lock in <stateDir>/run/):
stop the agent first, or pass --force.

Options:
  --iface IF             interface whose data path to remove (or interface
                         from --config)
  --force                detach even while an agent runs it
${LOCATION_HELP}
  -h, --help             this text`;

export const MONITOR_HELP = `Usage: xseq-agent monitor [options]

Prints what the running agent's XDP program drops, as it happens: the
reason, the source address and port, the frame size. The agent serves the
samples on its metrics address (GET /drops); at most 4 monitors at once, each
at most --rate samples per second (the rest are counted). Ctrl-C stops.

  --listen ADDR:PORT     the agent's metrics address (default: metrics.listen
                         of the config, else 127.0.0.1:9464)
  --config FILE          the agent's config, for its metrics.listen
  --reason R[,R...]      only these reasons (repeatable): ${COUNTER_NAMES.filter((n) => n.startsWith('drop_')).map((n) => n.slice(5)).join(', ')}
  --source IP            only drops from this IPv4 source
                         (there is no --group: a drop sample carries no group
                         id, only the reason, source and size; many drops
                         happen before the header's group is read)
  --rate N               samples per second at most (default 100, max 10000)
  --count N              stop after N samples
  --json                 one JSON object per line instead of text
  -h, --help             this text`;

export const CLIENT_KEY_HELP = `Usage: xseq-agent client-key --key-file PATH

Prints the client key of the group key in PATH (the file named by
groups[].keyFile) as 32 hex digits. A keyed group's sequencer stamps only
REQUESTs sealed with it (control ops: with the group key itself), so only
its holders can speak for a client id. It is derived one way from the group
key: a client holding it cannot make a SEQUENCED, FLUSH or ACK. Give it to
clients as a file of their own, mode 600:

  xseq-agent client-key --key-file /etc/xseq/group1.key > /etc/xseq/group1.client.key
  chmod 600 /etc/xseq/group1.client.key

See docs/authentication.md.`;
