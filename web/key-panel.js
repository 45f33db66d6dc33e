// The API key form, shown instead of the dashboard when the service needs a key the page
// does not have (or no longer accepts).

import { isUnauthorized } from './api-client.js';
import { $ } from './dom.js';

export class KeyPanel {
  #api;
  #onKey;

  /** `onKey(key)` is told of a key the service accepted. */
  constructor({ api, onKey }) {
    this.#api = api;
    this.#onKey = onKey;
    $('key-form').addEventListener('submit', (event) => this.#submit(event));
    $('api-key').addEventListener('input', () => this.#showError(null));
  }

  /** Shows the form instead of the dashboard, with `message` (why) if any. */
  show(message) {
    this.#showError(message);
    if (!$('key-panel').hidden) return;
    $('key-status').textContent = '';
    $('key-panel').hidden = false;
    $('dashboard').hidden = true;
    $('api-key').value = '';
    $('api-key').focus();
  }

  /** Back to the dashboard. */
  hide() {
    $('api-key').value = '';
    this.#showError(null);
    $('key-panel').hidden = true;
    $('dashboard').hidden = false;
  }

  /** A line under the form, such as why it shows. */
  say(text) {
    $('key-status').textContent = text;
  }

  #showError(message) {
    $('key-error').textContent = message ?? '';
    $('key-error').hidden = !message;
    if (message) $('api-key').setAttribute('aria-invalid', 'true');
    else $('api-key').removeAttribute('aria-invalid');
  }

  /** Tries the key on a request that changes nothing, and keeps it if the service accepts it. */
  async #submit(event) {
    event.preventDefault();
    const key = $('api-key').value.trim();
    if (!key) {
      this.#showError('Enter the API key.');
      $('api-key').focus();
      return;
    }
    const button = $('key-form').querySelector('button[type="submit"]');
    button.disabled = true;
    this.#showError(null);
    this.say('Checking the key…');
    try {
      await this.#api.request('api/tasks/stats', { key });
    } catch (error) {
      this.say('');
      button.disabled = false;
      this.#showError(
        isUnauthorized(error) ? 'The service did not accept this key. Check it and try again.' : `Could not check the key: ${error.message}`,
      );
      $('api-key').select();
      $('api-key').focus();
      return;
    }
    this.say('');
    button.disabled = false;
    this.#onKey(key);
  }
}
