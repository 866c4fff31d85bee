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
  const { addon, reason } = loadAddon();
  if (!addon) return { name, available: false, reason };
  if (name === 'cpu') return { name, available: true, threads: addon.threads, simd: addon.simd };
  if (cudaInfo) return cudaInfo;
  if (!addon.build.cudaBuilt) {
    return (cudaInfo = { name, available: false, reason: 'the addon was built without CUDA (no nvcc found when it was built)' });
  }
  const probe = addon.cudaProbe();
  if (!probe.available) return (cudaInfo = { name, available: false, reason: probe.reason });
  const gib = ((probe.memory ?? 0) / 2 ** 30).toFixed(1);
  return (cudaInfo = { name, available: true, device: `${probe.name} (${gib} GiB, compute ${probe.computeCapability})` });
}
