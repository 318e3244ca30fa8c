// Addresses as they appear on command lines and in config files.

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function isIpv4(s: string): boolean {
  const m = IPV4.exec(s);
  return m !== null && m.slice(1).every((x) => Number(x) <= 255);
}

function port(s: string, what: string): number {
  const n = Number(s);
  if (!/^\d+$/.test(s) || n < 1 || n > 65535) throw new RangeError(`${what}: port "${s}" is not 1..65535`);
  return n;
}

/** "10.0.0.1:7400", or "10.0.0.1" when a default port is given. */
export function parseHostPort(s: string, what: string, defaultPort?: number): HostPort {
  const i = s.lastIndexOf(':');
  const host = i < 0 ? s : s.slice(0, i);
  if (!isIpv4(host)) throw new RangeError(`${what}: "${s}" is not IPV4:PORT`);
  if (i < 0) {
    if (defaultPort === undefined) throw new RangeError(`${what}: "${s}" has no port (IPV4:PORT)`);
    return { host, port: defaultPort };
  }
  return { host, port: port(s.slice(i + 1), what) };
}

/** "ID:10.0.0.1:7700" -> [id, address]. */
export function parseIdHostPort(s: string, what: string): [number, HostPort] {
  const i = s.indexOf(':');
  const id = Number(s.slice(0, i));
  if (i < 1 || !/^\d+$/.test(s.slice(0, i)) || id > 0xffff) throw new RangeError(`${what}: "${s}" is not ID:IPV4:PORT`);
  return [id, parseHostPort(s.slice(i + 1), what)];
}

export function formatHostPort(a: HostPort): string {
  return `${a.host}:${a.port}`;
}
