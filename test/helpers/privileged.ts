// Tests that need the real kernel (BPF, network namespaces) need root.
// Locally they are skipped with a reason when not root; in CI (CI=true)
// they always run, so a misconfigured runner fails instead of going green.
import { describe } from 'vitest';

export const privileged = process.getuid?.() === 0;

export function describePrivileged(name: string, fn: () => void): void {
  if (privileged || process.env.CI === 'true') {
    describe(name, fn);
    return;
  }
  console.warn(
    `skipping "${name}": needs root for BPF and network namespaces (run as root, or set CI=true to force it)`,
  );
  describe.skip(name, fn);
}
