import { formatDollars } from '../billing/amounts.js';

/** The bounds of the balance service, in units (10^-6 USD). */
export interface BalanceConfig {
  /** below it a balance is low (default $1); 0: only zero is announced */
  lowBalance: number;
  /** the least top-up (default $5; at least Stripe's $0.50) */
  topUpMin: number;
  /** the most one top-up may be (default $10,000; at most Stripe's $999,999.99) */
  topUpMax: number;
}

export const DEFAULT_BALANCE_CONFIG: BalanceConfig = { lowBalance: 1_000_000, topUpMin: 5_000_000, topUpMax: 10_000_000_000 };
const CENT = 10_000;
const STRIPE_MIN = 500_000;
const STRIPE_MAX = 999_999_990_000;

/**
 * `MICRO_BILLING_LOW_BALANCE`, `MICRO_BILLING_TOPUP_MIN`, `MICRO_BILLING_TOPUP_MAX`: whole
 * numbers of units (the top-up bounds in whole cents, within what a card payment may be).
 * A wrong value stops micro server saying what to write.
 */
export function balanceConfigFromEnv(env: NodeJS.ProcessEnv = process.env): BalanceConfig {
  const units = (name: string, fallback: number): number => {
    const raw = env[name]?.trim();
    if (!raw) return fallback;
    if (!/^\d{1,16}$/.test(raw) || !Number.isSafeInteger(Number(raw))) throw new Error(`${name} must be a whole number of units (10^-6 USD: $1 = 1000000), not ${JSON.stringify(raw.slice(0, 40))}`);
    return Number(raw);
  };
  const config = { lowBalance: units('MICRO_BILLING_LOW_BALANCE', DEFAULT_BALANCE_CONFIG.lowBalance), topUpMin: units('MICRO_BILLING_TOPUP_MIN', DEFAULT_BALANCE_CONFIG.topUpMin), topUpMax: units('MICRO_BILLING_TOPUP_MAX', DEFAULT_BALANCE_CONFIG.topUpMax) };
  for (const [name, value] of [['MICRO_BILLING_TOPUP_MIN', config.topUpMin], ['MICRO_BILLING_TOPUP_MAX', config.topUpMax]] as const) {
    if (value % CENT !== 0 || value < STRIPE_MIN || value > STRIPE_MAX) throw new Error(`${name} must be whole cents from ${formatDollars(STRIPE_MIN)} to ${formatDollars(STRIPE_MAX)} (${STRIPE_MIN} to ${STRIPE_MAX} units), not ${value}`);
  }
  if (config.topUpMin > config.topUpMax) throw new Error(`MICRO_BILLING_TOPUP_MIN (${formatDollars(config.topUpMin)}) is above MICRO_BILLING_TOPUP_MAX (${formatDollars(config.topUpMax)})`);
  return config;
}
