import { CancelFlag } from './protocol.ts';

export interface CancelSignal {
  readonly signal: AbortSignal;
  /** Stops watching the flag; call once the task is over. */
  dispose(): void;
}

const reasonFor = () => new DOMException('The task was cancelled', 'AbortError');

/**
 * An AbortSignal driven by a flag in shared memory. The main thread sets the flag and
 * notifies; `Atomics.waitAsync` fires the `abort` event once the task yields, and the
 * overridden `aborted` getter reads the flag directly so a synchronous loop sees it too.
 */
export function createCancelSignal(flag: Int32Array): CancelSignal {
  const controller = new AbortController();
  const signal = controller.signal;
  const nativeAborted = Object.getOwnPropertyDescriptor(AbortSignal.prototype, 'aborted')!.get!;
  const check = () => {
    if (!nativeAborted.call(signal) && Atomics.load(flag, 0) === CancelFlag.cancelRequested) {
      controller.abort(reasonFor());
    }
  };

  Object.defineProperty(signal, 'aborted', {
    get() {
      check();
      return nativeAborted.call(signal) as boolean;
    },
  });
  const nativeThrowIfAborted = signal.throwIfAborted.bind(signal);
  signal.throwIfAborted = () => {
    check();
    nativeThrowIfAborted();
  };

  const waiter = Atomics.waitAsync(flag, 0, CancelFlag.running);
  if (waiter.async) {
    void waiter.value.then(check);
  } else {
    check();
  }

  return {
    signal,
    dispose() {
      // Wake our own waiter so no promise is left pending on a finished job's flag.
      Atomics.compareExchange(flag, 0, CancelFlag.running, CancelFlag.finished);
      Atomics.notify(flag, 0);
    },
  };
}
