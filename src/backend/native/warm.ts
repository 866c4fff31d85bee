// Adapter: addon.{cpu,cuda}.openGradient (native/binding/warm.cc) → WarmOps. The native object
// keeps its inputs alive and refuses overlapping calls; this wrapper adds the closed check and
// turns native errors into PairpickErrors.
import { PairpickError } from '../../errors.js';
import { callNative } from '../../native/addon.js';
import type { GradientContext, GradientLoadResult, GradientSampleResult, GradientSpec, WarmOps } from '../ops-warm.js';
import type { NativeGradient, NativeOps } from './ops.js';

class NativeGradientContext implements GradientContext {
  private closed = false;
  constructor(
    private readonly native: NativeGradient,
    private readonly where: string,
    readonly rows: number,
  ) {}

  private call<T>(op: (g: NativeGradient) => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new PairpickError('E_STATE', 'gradient context used after close()'));
    return callNative(() => op(this.native), this.where);
  }

  load(start: number, count: number, features: Float32Array[]): Promise<GradientLoadResult> {
    return this.call((g) => g.load(start, count, features));
  }

  dots(a: Int32Array, b: Int32Array): Promise<Float64Array> {
    return this.call((g) => g.dots(a, b));
  }

  sampleInit(exclude: Uint8Array): Promise<void> {
    return this.call((g) => g.sampleInit(exclude));
  }

  sampleStep(steps: number, uniforms: Float64Array): Promise<GradientSampleResult> {
    return this.call((g) => g.sampleStep(steps, uniforms));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.native.close();
  }
}

export function nativeWarmOps(ops: NativeOps, name: 'cpu' | 'cuda'): WarmOps {
  return {
    async openGradient(spec: GradientSpec): Promise<GradientContext> {
      const where = `gradient embedding (${name})`;
      const native = await callNative(() => ops.openGradient(spec), where);
      return new NativeGradientContext(native, where, spec.rows);
    },
  };
}
