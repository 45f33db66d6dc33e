import { errors } from '../errors.ts';
import type { Caller } from '../http/auth.ts';

/**
 * Service-wide operations (pause, the reaper) affect every owner: with keys on, only
 * ADMIN_OWNERS may run them. With authentication off there is no owner, and anyone may.
 */
export function assertAdmin(adminOwners: readonly string[], { owner }: Caller): void {
  if (owner !== undefined && !adminOwners.includes(owner)) {
    throw errors.forbidden(`${owner} may not do this: it affects every owner (see ADMIN_OWNERS)`);
  }
}
