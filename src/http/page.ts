import { readFileSync } from 'node:fs';
import type { Context } from 'hono';
import type { BasePathEnv } from './base-path.ts';

const escapeAttribute = (text: string) => text.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

/**
 * An HTML page whose links are relative, made to work at `/` and under a mount path such as
 * `/jobs`: `base` adds a `<base href="/jobs/">`; `prefix` instead turns each relative `href` and
 * `src` (`docs/…`) into a path (`/jobs/docs/…`), for a page that writes fragments into its URL (a `<base>`
 * would send `#…` links to the base path). Read once, on first use.
 */
export function pageHandler(file: string, mode: 'base' | 'prefix' = 'base') {
  let html: string | undefined;
  return (c: Context<BasePathEnv>) => {
    html ??= readFileSync(file, 'utf8');
    const basePath = escapeAttribute(c.get('basePath'));
    if (mode === 'prefix') return c.html(html.replace(/\b(href|src)="(?=[a-z])/g, `$1="${basePath}/`));
    return c.html(html.replace('<head>', `<head>\n    <base href="${basePath}/">`));
  };
}
