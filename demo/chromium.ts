// Where the demo's test and benchmark find a browser: Debian's chromium package (never a
// downloaded one), or CHROMIUM_PATH.
import { existsSync } from 'node:fs';

export const CHROMIUM_PATHS = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

export function findChromium(): string | undefined {
  return process.env.CHROMIUM_PATH ?? CHROMIUM_PATHS.find((p) => existsSync(p));
}

/** Headless, no sandbox (containers lack user namespaces), and WebGPU on where it is off by default. */
export const CHROMIUM_ARGS = ['--no-sandbox', '--enable-unsafe-webgpu'];
