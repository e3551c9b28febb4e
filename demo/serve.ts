// `npm run demo`: a small static server for the built page. It sends the cross-origin isolation
// headers, without which a browser gives no SharedArrayBuffer (the CPU backend's tensors).
import { createReadStream, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultBuild } from './build.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.json': 'application/json', '.map': 'application/json', '.gz': 'application/octet-stream',
  '.ts': 'text/plain; charset=utf-8', '.md': 'text/plain; charset=utf-8',
};

const ISOLATION = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
  'Cross-Origin-Resource-Policy': 'same-origin',
};

/** Serves `root` on host:port (port 0: any free one); resolves once listening. */
export function serveDemo(root: string, port: number, host = '127.0.0.1'): Promise<{ url: string; server: Server }> {
  const server = createServer((request, response) => {
    const path = decodeURIComponent(new URL(request.url ?? '/', 'http://x').pathname);
    const file = normalize(join(root, path.endsWith('/') ? `${path}index.html` : path));
    let size = -1;
    try {
      if (file.startsWith(root + sep) || file === root) size = statSync(file).isFile() ? statSync(file).size : -1;
    } catch {
      size = -1;
    }
    if (size < 0) {
      response.writeHead(404, { 'Content-Type': 'text/plain', ...ISOLATION }).end(`not found: ${path}\n`);
      return;
    }
    response.writeHead(200, { 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream', 'Content-Length': size, 'Cache-Control': 'no-cache', ...ISOLATION });
    createReadStream(file).pipe(response);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const address = server.address();
      const actual = typeof address === 'object' && address ? address.port : port;
      resolve({ url: `http://${host}:${actual}/`, server });
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const portArg = process.argv.indexOf('--port');
  const port = portArg > 0 ? Number(process.argv[portArg + 1]) : Number(process.env.PORT ?? 8080);
  if (!(Number.isInteger(port) && port >= 0 && port < 65536)) {
    console.error(`--port must be a port number 0..65535, got '${process.argv[portArg + 1]}'`);
    process.exit(2);
  }
  try {
    statSync(join(defaultBuild.outDir, 'index.html'));
  } catch {
    console.error('demo/dist/ has no page yet: run `npm run demo:build` first');
    process.exit(1);
  }
  try {
    const { url } = await serveDemo(defaultBuild.outDir, port);
    console.log(`silentgrad demo: ${url}  (Ctrl-C stops it)`);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    console.error(code === 'EADDRINUSE' ? `port ${port} is in use: pass --port N (or --port 0 for any free port)` : String(error));
    process.exit(1);
  }
}
