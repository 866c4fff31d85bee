// Prints the native source list for binding.gyp (node-gyp is the CPU-only build: core + binding + the CUDA
// engines over the CUDA stub).
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const list = JSON.parse(readFileSync(join(root, 'native/sources.json'), 'utf8'));
process.stdout.write([...list.core, ...list.binding, ...list.cudaHost, list.cudaStub].join(' ') + '\n');
