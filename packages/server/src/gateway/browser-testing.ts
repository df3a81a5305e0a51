import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { defaultDashboardDir } from './dashboard.js';

/** The Chromium the dashboard's browser tests drive (apt-get install chromium). */
export const CHROMIUM = '/usr/bin/chromium';

/** Chromium and the built dashboard, or a skip with the reason (a failure when MICRO_REQUIRE_ENGINES=1). */
export function browserReady(t: TestContext): boolean {
  const missing = !existsSync(CHROMIUM) ? `${CHROMIUM} is not installed (apt-get install chromium)` : !existsSync(join(defaultDashboardDir(), 'index.html')) ? 'the dashboard is not built (npm run build --workspace @micro/web)' : undefined;
  if (!missing) return true;
  if (process.env.MICRO_REQUIRE_ENGINES === '1') assert.fail(`${missing}, and MICRO_REQUIRE_ENGINES=1`);
  t.skip(missing);
  return false;
}

/** Headless Chromium, quiet (no network of its own). playwright-core is loaded only here: tests without a browser never load it. */
export async function launchChromium(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** Collects a page's script errors, and console errors other than the refusals a test causes on purpose (4xx answers): a test ends with it empty. */
export function watchPage(page: Page): string[] {
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource: the server responded with a status of 4\d\d/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  return problems;
}
