// The stranger's frame generator: bench/build/pktgen (AF_PACKET, so the
// frames carry whatever source addresses the test wrote), built by
// `make -C bench` as every CI run does.
import { join } from 'node:path';

export const BENCH_BUILD_PKTGEN = join(import.meta.dirname, '..', '..', 'bench', 'build', 'pktgen');
