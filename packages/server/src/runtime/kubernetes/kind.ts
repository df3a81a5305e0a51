/** `MICRO_RUNTIME`: local (default) or kubernetes; anything else stops the server with what to write. */
export function runtimeKind(env: NodeJS.ProcessEnv = process.env): 'local' | 'kubernetes' {
  const kind = (env.MICRO_RUNTIME ?? '').trim() || 'local';
  if (kind !== 'local' && kind !== 'kubernetes') throw new Error(`MICRO_RUNTIME must be local or kubernetes, not "${kind}"`);
  return kind;
}
