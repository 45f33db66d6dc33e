// Types of web/server-clock.js, for the tests that import it.
export declare class ServerClock {
  constructor(localNow?: () => number);
  now(): number;
  sample(timestamp: string): void;
  update(): void;
}
