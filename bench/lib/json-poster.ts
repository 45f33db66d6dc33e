import { Agent, request } from 'node:http';

export interface PostAnswer {
  status: number;
  body: string;
}

/**
 * POSTs JSON bodies to one URL over a pool of keep-alive connections: the client every
 * request-rate figure uses, against the product and its baseline alike.
 */
export class JsonPoster {
  readonly #agent: Agent;
  readonly #options: { hostname: string; port: string; path: string };

  constructor(url: string, connections: number) {
    const { hostname, port, pathname } = new URL(url);
    // FIFO reuses every pooled connection in turn, so none sits idle past the server's
    // keep-alive timeout (5 s) and gets closed just as a request goes out on it (ECONNRESET).
    this.#agent = new Agent({ keepAlive: true, maxSockets: connections, scheduling: 'fifo' });
    this.#options = { hostname, port, path: pathname };
  }

  post(body: string): Promise<PostAnswer> {
    return new Promise((resolve, reject) => {
      const outgoing = request(
        {
          ...this.#options,
          agent: this.#agent,
          method: 'POST',
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (response) => {
          let text = '';
          response.setEncoding('utf8');
          response.on('data', (chunk: string) => (text += chunk));
          response.on('end', () => resolve({ status: response.statusCode ?? 0, body: text }));
          response.on('error', reject);
        },
      );
      outgoing.on('error', reject);
      outgoing.end(body);
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}
