import { SlotState } from './protocol.ts';

export interface CancelSignal {
  /** Created on first use: a task that never looks at its signal costs no AbortSignal. */
  readonly signal: AbortSignal;
  /** True once the main thread asked this job to stop; reads shared memory directly. */
  readonly requested: boolean;
  /** Marks the job over and releases the waiter, if one was made; call once, at the end. */
  dispose(): void;
}

const reasonFor = () => new DOMException('The task was cancelled', 'AbortError');
const nativeAborted = Object.getOwnPropertyDescriptor(AbortSignal.prototype, 'aborted')!.get!;

/**
 * A job's cancellation, read from its slot in the pool's shared array. The AbortSignal is
 * made only when the task asks for it: then `Atomics.waitAsync` fires its `abort` event
 * once the task yields, and the overridden `aborted` getter reads the slot directly so a
 * synchronous loop sees a cancel too.
 */
export function createCancelSignal(slots: Int32Array, slot: number): CancelSignal {
  let controller: AbortController | undefined;
  const requested = () => Atomics.load(slots, slot) === SlotState.cancelRequested;

  const makeSignal = (): AbortSignal => {
    const made = new AbortController();
    controller = made;
    const signal = made.signal;
    const check = () => {
      if (!nativeAborted.call(signal) && requested()) made.abort(reasonFor());
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
    const waiter = Atomics.waitAsync(slots, slot, SlotState.running);
    if (waiter.async) void waiter.value.then(check);
    else check();
    return signal;
  };

  let signal: AbortSignal | undefined;
  return {
    get signal() {
      return (signal ??= makeSignal());
    },
    get requested() {
      return requested();
    },
    dispose() {
      // Wake our own waiter so no promise is left pending on a finished job's slot. A
      // cancel that came in meanwhile stays: the main thread decides by it.
      Atomics.compareExchange(slots, slot, SlotState.running, SlotState.finished);
      if (controller) Atomics.notify(slots, slot);
    },
  };
}
