import { createServer } from "node:net";

/** A TCP port free on 127.0.0.1 right now (the OS picks it; a race with other processes is unlikely). */
export async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const port = (probe.address() as { port: number }).port;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}
