// Prometheus families of the sequences, added to the agent's registry
// (agent/metrics.ts): per sequence its last value, kernel and durable marks,
// and what it handed out and refused; the NEXTVAL path's own counters.
import { Counter, Gauge, type Registry } from 'prom-client';
import { NV_COUNTER_NAMES, type NvCounterName } from '../bpf/nextval.ts';
import type { SequenceService } from './sequences.ts';

/** What the families read: the service's status and counters, and the
 * kernel's NEXTVAL counters (bpf/sequences.ts SequenceTable). */
export function registerSequenceMetrics(
  registry: Registry,
  svc: Pick<SequenceService, 'status' | 'counters'>,
  table: { counters(): Record<NvCounterName, bigint> },
): void {
  const registers = [registry];
  const gauge = (name: string, help: string, pick: (s: ReturnType<SequenceService['status']>[number]) => string | null) =>
    new Gauge({
      name,
      help,
      labelNames: ['sequence'],
      registers,
      collect() {
        this.reset();
        for (const s of svc.status()) {
          const v = pick(s);
          if (v !== null) this.set({ sequence: s.name }, Number(v));
        }
      },
    });
  const counter = (name: string, help: string, pick: (s: ReturnType<SequenceService['status']>[number]) => string) =>
    new Counter({
      name,
      help,
      labelNames: ['sequence'],
      registers,
      collect() {
        this.reset();
        for (const s of svc.status()) this.inc({ sequence: s.name }, Number(pick(s)));
      },
    });
  gauge('xseq_sequence_last_value', 'Last value the kernel handed out of the sequence (absent before the first).', (s) => s.lastValue);
  gauge('xseq_sequence_next_value', 'Next value the kernel hands out of the sequence.', (s) => s.next);
  gauge('xseq_sequence_mark', "The kernel's mark: it hands out only values below it.", (s) => s.mark);
  gauge('xseq_sequence_durable_mark', 'The mark fsynced in the state file (always >= the kernel mark).', (s) => s.durableMark);
  counter('xseq_sequence_calls_total', 'NEXTVAL calls answered with a block.', (s) => s.calls);
  counter('xseq_sequence_values_total', 'Values handed out.', (s) => s.values);
  counter('xseq_sequence_refused_total', 'NEXTVAL calls refused at the mark (the agent had not made more values durable).', (s) => s.refused);
  new Counter({
    name: 'xseq_nextval_packets_total',
    help: 'NEXTVAL packets by outcome (bpf/xseq.h enum xseq_nv_counter).',
    labelNames: ['outcome'],
    registers,
    collect() {
      this.reset();
      const c = table.counters();
      for (const n of NV_COUNTER_NAMES) if (n !== 'values') this.inc({ outcome: n }, Number(c[n]));
    },
  });
  new Counter({
    name: 'xseq_sequence_mark_raises_total',
    help: 'Marks raised by the agent (each after its fsync).',
    registers,
    collect() {
      this.reset();
      this.inc(svc.counters().raises);
    },
  });
  new Counter({
    name: 'xseq_sequence_group_errors_total',
    help: 'Replicated sequences: mark reservations the group did not certify (not served here, or no quorum in time); the kernel refused at the old mark meanwhile.',
    registers,
    collect() {
      this.reset();
      this.inc(svc.counters().groupErrors);
    },
  });
  new Counter({
    name: 'xseq_sequence_mark_jumps_total',
    help: 'Replicated sequences: counter jumps past another host\'s reservations (after a failover); each leaves a gap.',
    registers,
    collect() {
      this.reset();
      this.inc(svc.counters().jumps);
    },
  });
}
