// The two native backends, `cpu` and `cuda`: the same op tables (addon.cpu.*, addon.cuda.*, one
// per backend's engines) wrapped by each area's adapter.
import type { Backend, BackendInfo } from '../types.js';
import { loadAddon } from '../../native/addon.js';
import { nativeDistanceOps } from './distance.js';
import { nativeLossOps } from './loss.js';
import { nativeOps } from './ops.js';
import { nativeSelectOps } from './select.js';
import { nativeTrainOps } from './train.js';
import { nativeWarmOps } from './warm.js';

export function nativeBackend(name: 'cpu' | 'cuda'): Backend {
  const ops = nativeOps(name);
  return {
    name,
    ...nativeDistanceOps(ops, name),
    ...nativeLossOps(ops, name),
    ...nativeSelectOps(ops, name),
    ...nativeTrainOps(ops, name),
    ...nativeWarmOps(ops, name),
  };
}

let cudaInfo: BackendInfo | undefined;

/** Availability of the native backends. CUDA is probed once, lazily (it touches the driver). */
export function nativeInfo(name: 'cpu' | 'cuda'): BackendInfo {
  const { addon, reason, origin } = loadAddon();
  if (!addon) return { name, available: false, reason };
  if (name === 'cpu') return { name, available: true, threads: addon.threads, simd: addon.simd };
  if (cudaInfo) return cudaInfo;
  if (!addon.build.cudaBuilt) {
    const why = origin === 'prebuilt' ? 'the prebuilt addon is CPU-only (`npx pairpick build --cuda` adds CUDA)' : 'the addon was built without CUDA (no nvcc was found, or PAIRPICK_CUDA=OFF); `npx pairpick build --cuda` adds it';
    return (cudaInfo = { name, available: false, reason: why });
  }
  const probe = addon.cudaProbe();
  if (!probe.available) return (cudaInfo = { name, available: false, reason: probe.reason });
  const gib = ((probe.memory ?? 0) / 2 ** 30).toFixed(1);
  return (cudaInfo = { name, available: true, device: `${probe.name} (${gib} GiB, compute ${probe.computeCapability})` });
}
