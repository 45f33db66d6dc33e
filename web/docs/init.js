// Starts Swagger UI on the service's own spec. A file rather than an inline script, so the
// page's Content-Security-Policy can keep `script-src 'self'`.

/** This file is served at <mount>/docs/init.js; the spec at <mount>/openapi.yaml. */
const SPEC_URL = new URL('../openapi.yaml', document.currentScript.src).href;

/** The bearer scheme of openapi.yaml (components.securitySchemes). */
const KEY_SCHEME = 'apiKey';
/** Shared with the dashboard: a key given to either is used by both, for this browser session. */
const KEY_STORAGE = 'taskstream.api-key';

function readKey() {
  try {
    return sessionStorage.getItem(KEY_STORAGE) || null;
  } catch {
    return null;
  }
}

function storeKey(key) {
  try {
    if (key) sessionStorage.setItem(KEY_STORAGE, key);
    else sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    // storage disabled: the key lasts as long as the page
  }
}

/**
 * Keeps what Authorize and Logout do to the API key in sessionStorage, not in the
 * localStorage that `persistAuthorization` would use, so the key goes with the browser session.
 */
const KeyInBrowserSession = () => ({
  statePlugins: {
    auth: {
      wrapActions: {
        authorize: (authorize) => (payload) => {
          const value = payload?.[KEY_SCHEME]?.value;
          if (typeof value === 'string') storeKey(value.trim());
          return authorize(payload);
        },
        logout: (logout) => (names) => {
          if (Array.isArray(names) && names.includes(KEY_SCHEME)) storeKey(null);
          return logout(names);
        },
      },
    },
  },
});

window.ui = SwaggerUIBundle({
  // Next to docs/, wherever the service is mounted.
  url: SPEC_URL,
  dom_id: '#swagger-ui',
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  plugins: [KeyInBrowserSession],
  layout: 'BaseLayout',
  // The default would load a validity badge from validator.swagger.io.
  validatorUrl: null,
  // A key entered here or on the dashboard earlier in this browser session: Try it out sends it.
  onComplete: () => {
    const key = readKey();
    if (key) window.ui.preauthorizeApiKey(KEY_SCHEME, key);
  },
});
