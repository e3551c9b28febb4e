// The WebGPU tuning profile (backends/webgpu/tuning.ts): what each kind of adapter gets by
// default, and how each SILENTGRAD_* variable changes it. Pure functions: no adapter needed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { defaultTuning, describeTuning, frozenTuning, tuningFromEnvironment, type AdapterTraits, type TuningProfile } from '../backends/webgpu/tuning.js';

const lavapipe: AdapterTraits = { software: true, subgroups8: true, maxBindingBytes: 1 << 30 };
const llvmpipeOpenGl: AdapterTraits = { software: true, subgroups8: false, maxBindingBytes: 1 << 27 };
const gpu: AdapterTraits = { software: false, subgroups8: true, maxBindingBytes: 1 << 30 };

test('lavapipe gets every tuned variant; a GPU or an adapter without subgroups no shared rows', () => {
  const expected = (sharedRows: boolean, maxBindingBytes: number): TuningProfile => ({
    kernels: 'tuned', sharedRows,
    winograd: { passes: ['forward', 'input', 'filter'], minChannels: 24, maxBindingBytes },
    silentElbo: { momentsInForward: true, vec4Rows: true, latentWalk: true },
  });
  assert.equal(defaultTuning(lavapipe), expected(true, 1 << 30));
  assert.equal(defaultTuning(llvmpipeOpenGl), expected(false, 1 << 27));
  assert.equal(defaultTuning(gpu), expected(false, 1 << 30));
  assert.equal(tuningFromEnvironment(lavapipe, {}), defaultTuning(lavapipe), 'no variables: the default');
});

test('each SILENTGRAD_* variable changes its field only', () => {
  const base = defaultTuning(lavapipe);
  const cases: [Record<string, string>, Partial<TuningProfile>][] = [
    [{ SILENTGRAD_WEBGPU_KERNELS: 'plain' }, { kernels: 'plain' }],
    [{ SILENTGRAD_WEBGPU_KERNELS: 'tuned' }, {}],
    [{ SILENTGRAD_WEBGPU_SHARED_ROWS: '0' }, { sharedRows: false }],
    [{ SILENTGRAD_WEBGPU_WINOGRAD: '0' }, { winograd: { ...base.winograd, passes: [] } }],
    [{ SILENTGRAD_WEBGPU_WINOGRAD: 'filter,forward' }, { winograd: { ...base.winograd, passes: ['forward', 'filter'] } }],
    [{ SILENTGRAD_SILENT_ELBO_FUSE: '0' }, { silentElbo: { ...base.silentElbo, momentsInForward: false } }],
    [{ SILENTGRAD_SILENT_ELBO_VEC: '0' }, { silentElbo: { ...base.silentElbo, vec4Rows: false } }],
  ];
  for (const [env, change] of cases) assert.equal(tuningFromEnvironment(lavapipe, env), { ...base, ...change }, JSON.stringify(env));
  assert.is(tuningFromEnvironment(gpu, { SILENTGRAD_WEBGPU_SHARED_ROWS: '1' }).sharedRows, false, 'the variable only turns shared rows off');
  assert.throws(() => tuningFromEnvironment(lavapipe, { SILENTGRAD_WEBGPU_KERNELS: 'fast' }), /SILENTGRAD_WEBGPU_KERNELS must be plain or tuned, got "fast"/);
});

test('a profile cannot change once made, and describe() names it', () => {
  const t = frozenTuning(defaultTuning(lavapipe));
  assert.throws(() => { (t as { sharedRows: boolean }).sharedRows = false; });
  assert.throws(() => { (t.winograd.passes as string[]).push('input'); });
  assert.throws(() => { (t.silentElbo as { latentWalk: boolean }).latentWalk = false; });
  assert.is(describeTuning(t), 'tuned kernels (shared rows, Winograd forward+input+filter from 24 channels)');
  assert.is(describeTuning({ ...t, kernels: 'plain' }), 'plain kernels');
});

test.run();
