/**
 * The broker: fire-and-forget publish/subscribe. Messages go to every subscriber of a
 * topic, except that subscribers sharing a queue group share the messages (each message
 * reaches one member of each group). Nothing is stored: for durable streams use events.
 */

export interface Message {
  topic: string;
  /** headers, e.g. `traceparent`, `content-type` */
  header: Record<string, string>;
  body: unknown;
}

export interface PublishOptions {
  namespace?: string;
  header?: Record<string, string>;
}

export interface SubscribeOptions {
  namespace?: string;
  /** subscribers with the same queue group share the messages */
  queue?: string;
}

export type MessageHandler = (message: Message) => void | Promise<void>;

export interface Subscription {
  readonly topic: string;
  readonly queue?: string;
  unsubscribe(): Promise<void>;
}

export interface Broker {
  readonly name: string;
  publish(topic: string, body: unknown, options?: PublishOptions): Promise<void>;
  subscribe(topic: string, handler: MessageHandler, options?: SubscribeOptions): Promise<Subscription>;
  close?(): Promise<void>;
}

/*
 * Topic names, shared by every broker implementation so a topic that works in memory
 * also works on NATS: dot-separated tokens, `*` matches exactly one token and `>` (last
 * token only) matches one or more tokens. Publishing needs a concrete topic.
 */

export const MAX_TOPIC_LENGTH = 256;
const UNSAFE = /[\s\p{Cc}]/u;

export interface TopicRules {
  /** `*` and `>` allowed (subscribe) or not (publish) */
  wildcards: boolean;
}

/** Why `topic` is not a valid topic name, or undefined when it is. */
export function topicProblem(topic: unknown, rules: TopicRules): string | undefined {
  if (typeof topic !== 'string') return 'topic must be a string';
  if (topic.length === 0) return 'topic is empty';
  if (topic.length > MAX_TOPIC_LENGTH) return `topic is longer than ${MAX_TOPIC_LENGTH} characters`;
  // Control characters (NUL included) and whitespace would break the wire protocols of
  // the distributed brokers, where a space separates the subject from the rest.
  if (UNSAFE.test(topic)) return 'topic contains whitespace or a control character';
  const tokens = topic.split('.');
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i] as string;
    if (token.length === 0) return 'topic has an empty token (a leading, trailing or double dot)';
    const wild = token.includes('*') || token.includes('>');
    if (!wild) continue;
    if (!rules.wildcards) return 'cannot publish to a wildcard topic (* or >)';
    if (token !== '*' && token !== '>') return `wildcard ${token.includes('*') ? '*' : '>'} must be a whole token`;
    if (token === '>' && i !== tokens.length - 1) return 'wildcard > must be the last token';
  }
  return undefined;
}

/** Whether the topic pattern (wildcards allowed) matches a concrete topic, both split on dots. */
export function matchTokens(pattern: readonly string[], topic: readonly string[]): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i];
    if (p === '>') return topic.length > i;
    if (i >= topic.length) return false;
    if (p !== '*' && p !== topic[i]) return false;
  }
  return pattern.length === topic.length;
}

/** Whether the topic pattern matches the concrete topic (both assumed valid). */
export function topicMatches(pattern: string, topic: string): boolean {
  return matchTokens(pattern.split('.'), topic.split('.'));
}
