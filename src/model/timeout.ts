// --confirm-timeout (bridged networks: how long the gateway may take to answer), shared by the
// CLI option and the API's query parameter.
import { inputError } from './errors.js';

/** The value as whole seconds from 1 to 600; anything else is refused (exit 2 / 400). */
export function parseConfirmTimeout(raw: string): number {
  const t = Number(raw);
  if (!(raw.trim() !== '' && Number.isInteger(t) && t >= 1 && t <= 600)) {
    throw inputError(
      'invalid-timeout',
      `--confirm-timeout "${raw}" is not a whole number of seconds from 1 to 600`,
      'e.g. --confirm-timeout 20',
    );
  }
  return t;
}
