// What `run` checks against the host before it touches anything: no bpffs
// mount, no state directory, no lock, no pin until these pass. A mistake
// found here is the configuration's (a typo in the interface name, flushes
// on an interface without an IPv4 address), so it is a ConfigError: exit 2,
// which the systemd unit does not restart into.
import { BpfError, ifindex } from '../bpf/libbpf/index.ts';
import { type AgentConfig, ConfigError, type ConfigIssue } from './config.ts';
import { interfaceAddress } from './flush.ts';

/** Throws ConfigError listing every host-side mistake of `cfg`. */
export function preflight(cfg: AgentConfig, source: string): void {
  const issues: ConfigIssue[] = [];
  let exists = true;
  try {
    ifindex(cfg.interface);
  } catch (e) {
    if (!(e instanceof BpfError) || e.code !== 'EBPF_NO_INTERFACE') throw e;
    exists = false;
    issues.push({
      path: 'interface',
      message: `there is no network interface "${cfg.interface}" in this network namespace (\`ip -br link\` lists them; check the name's spelling)`,
      origin: '--iface, XSEQ_INTERFACE or the file',
    });
  }
  const flushes = cfg.flushIntervalMs > 0 || cfg.groups.some((g) => g.draining === true);
  if (exists && flushes) {
    try {
      interfaceAddress(cfg.interface);
    } catch (e) {
      issues.push({ path: cfg.flushIntervalMs > 0 ? 'flushIntervalMs' : 'groups[].draining', message: (e as Error).message });
    }
  }
  if (issues.length) throw new ConfigError(source, issues);
}
