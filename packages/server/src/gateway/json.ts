/**
 * Headers on every answer of the gateway: nothing it sends is to be sniffed, framed,
 * cached or embedded elsewhere.
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
  'cross-origin-resource-policy': 'same-origin',
  'cache-control': 'no-store',
});

/** The same as a flat [name, value, ...] list, for writeHead (made once, not per answer). */
export const SECURITY_PAIRS: readonly string[] = Object.freeze(Object.entries(SECURITY_HEADERS).flat());

/** Whether a parsed JSON value nests deeper than `max` (no recursion: a deep value cannot overflow the stack). */
export function tooDeep(value: unknown, max: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop() as [unknown, number];
    if (v === null || typeof v !== 'object') continue;
    if (depth > max) return true;
    for (const child of Array.isArray(v) ? v : Object.values(v)) if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
  }
  return false;
}
