import { errors, type Handlers } from '@micro/sdk';
import { publicService } from '@micro/services-kit';
import { CLASSES, PASSWORD_LENGTH, password, type CharClass } from './definition.js';
import { generatePassword } from './generate.js';

const SERVICE = 'password';
const ALL = Object.keys(CLASSES) as CharClass[];

/**
 * The classes a request asks for: those set true; when none is, every class not set false
 * (so `{}` is every class, as M3O's, and `{"special":false}` every class but special).
 */
export function classesOf(req: Partial<Record<CharClass, boolean>>): CharClass[] {
  const chosen = ALL.filter((c) => req[c] === true);
  if (chosen.length > 0) return chosen;
  const left = ALL.filter((c) => req[c] !== false);
  if (left.length === 0) throw errors.BadRequest(SERVICE, `no character class left: set at least one of ${ALL.join(', ')} to true (or leave them out for all)`);
  return left;
}

/** The length asked for; the least (4) leaves room for one of each of the four classes. */
function lengthOf(value: number | undefined): number {
  const length = value === undefined || value === 0 ? PASSWORD_LENGTH.default : value;
  if (length < PASSWORD_LENGTH.min || length > PASSWORD_LENGTH.max) throw errors.BadRequest(SERVICE, `length: must be from ${PASSWORD_LENGTH.min} to ${PASSWORD_LENGTH.max} (got ${value})`);
  return length;
}

export const passwordHandlers: Handlers<typeof password> = {
  Generate(req) {
    const classes = classesOf(req);
    return { password: generatePassword(lengthOf(req.length), classes) };
  },
};

export const service = publicService(password, () => passwordHandlers);
