import { createServer } from "node:net";

/**
 * A TCP port free on the host right now (the OS picks it; a race with other processes is unlikely).
 * Used for listeners chosen at run time: containers bound to fixed host ports (so a restarted one
 * answers where it did), the peer benchmark's Connect REST port, tests' metrics ports.
 */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once("error", reject);
    probe.listen(0, host, resolve);
  });
  const port = (probe.address() as { port: number }).port;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}
