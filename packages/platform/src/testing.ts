/**
 * The platform's test kit (`@micro/platform/testing`), for the tests of the packages that
 * use the platform (the CLI's end-to-end tests): a real SMTP server and a mail parser, a
 * local stand-in for Stripe's API, and the metering crash tests' calls of a gateway. Left
 * out of the published package.
 */
export { startSmtpServer, parseMail, recordingLogger, tempHome, dkimKeyPair, verifyDkim } from './mail/testing.js';
export type { Received, TestSmtp, TestSmtpOptions } from './mail/testing.js';
export { FakeStripe } from './payments/stripe-fake.js';
export type { FakeStripeOptions, Delivery } from './payments/stripe-fake.js';
export { gatewayCaller } from './metering/testing.js';
export type { GatewayAnswer, GatewayCaller } from './metering/testing.js';
