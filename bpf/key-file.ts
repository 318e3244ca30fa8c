// Reads a group key file (docs/authentication.md): exactly 16 raw bytes, or
// 32 hex digits with an optional trailing newline (`openssl rand -hex 16`).
// A key readable or writable by "other" is refused, not warned about: on a
// shared host such a file is no secret, and a MAC key anyone can read
// protects nothing. Errors carry a stable code and say what to do.
import { readFileSync, statSync } from 'node:fs';
import { groupKey, type GroupKey, XSEQ_KEY_LEN } from './mac.ts';

export type KeyFileErrorCode = 'EKEY_MISSING' | 'EKEY_UNREADABLE' | 'EKEY_SIZE' | 'EKEY_PERMISSIONS';

export class KeyFileError extends Error {
  override readonly name = 'KeyFileError';
  constructor(
    readonly code: KeyFileErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const HEX = /^[0-9a-fA-F]{32}\r?\n?$/;

/** Reads and checks the key file at `path`; throws KeyFileError. */
export function readKeyFile(path: string): GroupKey {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new KeyFileError('EKEY_MISSING', `key file ${path} does not exist; create one with \`openssl rand -hex 16 > ${path}; chmod 600 ${path}\``);
    throw new KeyFileError('EKEY_UNREADABLE', `key file ${path} cannot be read (${code ?? (e as Error).message})`);
  }
  if ((mode & 0o170000) !== 0o100000) throw new KeyFileError('EKEY_UNREADABLE', `key file ${path} is not a regular file`);
  if (mode & 0o007) {
    throw new KeyFileError('EKEY_PERMISSIONS', `key file ${path} has mode ${(mode & 0o777).toString(8).padStart(3, '0')}: other users can read or change it; run \`chmod 600 ${path}\` (or 640 with a group)`);
  }
  let raw: Buffer;
  try {
    raw = readFileSync(path);
  } catch (e) {
    throw new KeyFileError('EKEY_UNREADABLE', `key file ${path} cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (raw.length === XSEQ_KEY_LEN) return groupKey(raw);
  const text = raw.toString('latin1');
  if (HEX.test(text)) return groupKey(Buffer.from(text.slice(0, 32), 'hex'));
  throw new KeyFileError('EKEY_SIZE', `key file ${path} holds ${raw.length} bytes; a key is ${XSEQ_KEY_LEN} raw bytes or 32 hex digits (\`openssl rand -hex 16\`)`);
}
