/**
 * The standalone debug adapter: `node dist/adapter.js` speaks DAP on stdio;
 * `--server=PORT` listens on 127.0.0.1 only and serves one session per
 * connection (for debugging the adapter itself, or any DAP client).
 */
import * as net from 'node:net';
import { VirtioDebugSession } from './debugSession';

const arg = process.argv.slice(2).find((a) => a.startsWith('--server='));
if (arg) {
  const port = Number(arg.slice('--server='.length));
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    process.stderr.write(`bad --server port '${arg}'\n`);
    process.exit(2);
  }
  const server = net.createServer((socket) => {
    socket.on('end', () => socket.destroy());
    const session = new VirtioDebugSession();
    session.setRunAsServer(true);
    session.start(socket, socket);
  });
  server.listen(port, '127.0.0.1', () => {
    const addr = server.address() as net.AddressInfo;
    process.stdout.write(`virtio-debug adapter listening on 127.0.0.1:${addr.port}\n`);
  });
} else {
  const session = new VirtioDebugSession();
  process.on('SIGTERM', () => session.shutdown());
  session.start(process.stdin, process.stdout);
}
