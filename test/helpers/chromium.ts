import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { withTimeout } from './timeout.ts';

/** Debian's chromium package; never a downloaded browser. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/** Where browser tests save their screenshots (kept as CI artifacts). */
export const SCREENSHOTS = fileURLToPath(new URL('../../reports/screenshots/', import.meta.url));

export function launchChromium(): Promise<Browser> {
  return withTimeout(chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS }), 'Chromium to launch', 20_000);
}
