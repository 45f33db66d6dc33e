/** Waits for `promise`, failing with a message naming what it waited for if `ms` pass first. */
export async function withTimeout<T>(promise: Promise<T>, label: string, ms = 10_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms waiting for ${label}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `check` on the event loop (not on a timer race) until it returns true. */
export async function until(check: () => boolean | Promise<boolean>, label: string, ms = 10_000): Promise<void> {
  await withTimeout(
    (async () => {
      while (!(await check())) await new Promise((resolve) => setTimeout(resolve, 5));
    })(),
    label,
    ms,
  );
}
