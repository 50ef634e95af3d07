// Asking a server for an answer that must not predate the question: callers that arrive while a
// request is under way share the next request rather than the current one, and callers that arrive
// together share one request. So every answer was asked for after its caller asked, and at most
// two requests exist at a time (the one under way and the one queued behind it).
export function freshAnswers<T>(ask: () => Promise<T>): () => Promise<T> {
  let current: Promise<T> | null = null;
  let queued: Promise<T> | null = null;
  const fresh = (): Promise<T> => {
    if (current === null) {
      const started = ask().finally(() => {
        if (current === started) current = null;
      });
      current = started;
      return started;
    }
    queued ??= current
      .catch(() => {})
      .then(() => {
        queued = null;
        return fresh();
      });
    return queued;
  };
  return fresh;
}
