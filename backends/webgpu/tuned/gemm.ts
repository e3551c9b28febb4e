// One register-blocked GEMM template, C[M,N] = sum_k A[m,k] B[k,n], that matmul and all three
// convolutions instantiate by saying how to load an element of A and B and where C goes.
// Each invocation keeps a block of C in vec4 registers (8 x 8 for small products, 16 x 8 for
// big ones: see `tilings`); no workgroup memory and no barriers (on lavapipe/llvmpipe barriers
// cost more than they save: docs/performance-log.md, "Software drivers: register blocking
// against workgroup-memory tiles").
// Big products (>= 2^20 multiply-adds, which a training step repeats) get their sizes baked
// in as literals; small ones share one dynamic-size pipeline per spec.
// Long, thin products (a filter gradient: 32 x 288 outputs, 50k terms each) split K over
// the grid's z axis into a scratch [splits, M, N] summed afterwards by the reduce kernel.
// A batched spec instead gives the z axis to a batch of same-sized products (Winograd's 36
// per pass, winograd.ts), one dispatch for all; its snippets read the product's index
// as `batch` and place their operands with per-batch strides of their own.
//
// Shared rows (software adapters with subgroups of 8): llvmpipe runs 8 invocations as the
// lanes of one SIMD register and (Mesa 25.0) loads every storage element lane by lane, with a
// bounds check and a lane-active test each: ~10 instructions per lane per element, more than
// the multiply-adds they feed. In the classic layout every lane loads the same A elements as
// its neighbours. With `shareRows`, the invocations of a workgroup share its rows: lane l
// loads the A elements of rows l, l + 8, ... and subgroupBroadcast hands them to the others,
// so A costs 1/8 of the loads; each lane still loads its own B columns. That roughly doubled
// the kernel's rate at 512^3; A as vec4 along k and unrolled k were tried and dropped, and
// summing 2 steps per update (`kSum`) is kept (docs/performance-log.md, "GEMM: rows shared
// across a subgroup").
// Loads are still over half of what the baked 512^3 kernel spends, and no other load path
// (uniform bindings, textures, vec4 shared rows) helped (docs/performance-log.md, "GEMM at
// 512^3: where the time goes"). Why a uniform address is no cheaper (Mesa's lp_bld_nir.c, read,
// not measured): llvmpipe loads once and broadcasts only where NIR's
// nir_src_is_always_uniform holds, i.e. for addresses built from constants and push constants;
// a loop index or a word read from P never qualifies, so every load goes lane by lane.
// Bigger blocks per lane, fma() and 16-lane subgroups were measured at 512^3 and dropped too
// (docs/performance-log.md, "GEMM at 512^3: bigger blocks, fma() and 16-lane subgroups").
// TuningProfile.sharedRows chooses them (SILENTGRAD_WEBGPU_SHARED_ROWS=0 turns them off).
import type { Dispatch } from '../queue.js';
import type { TuningProfile } from '../tuning.js';
import { bakeWords, cachedSource, entry, header, range, type BufferDecl } from '../kernels/wgsl.js';
import { BAKE_MIN_WORK, SUBGROUP_DIRECTIVES } from './wgsl.js';

/**
 * Rows and vec4 column groups per invocation, and the workgroup's shape. With `shareRows`
 * the workgroup is one row of wgX lanes (wgY = 1, wgX and rows multiples of 8) that all
 * compute the same `rows` rows, A coming through subgroupBroadcast (see the header).
 */
export interface Tiling {
  rows: number; colVecs: number; wgX: number; wgY: number; shareRows?: boolean;
  /**
   * k steps summed into each accumulator per update (1 when absent): llvmpipe masks every
   * write in a loop (a blend) and spills big blocks, so an update costs load, mul, add, blend,
   * store; summing two steps first halves the blends and spills. Used only where the chunk of
   * K each invocation walks is a multiple (gemmDispatch falls back to 1).
   */
  kSum?: number;
}

/**
 * Without shared rows: shared dynamic-size pipelines (small products, the tests' odd shapes) use
 * 8 x 8 blocks; baked big ones 16 x 8, faster on lavapipe but about twice the cold LLVM
 * compile, paid once per shape (docs/performance-log.md, "GEMM: rows shared across a
 * subgroup").
 */
const tilings: { readonly dynamic: Tiling; readonly baked: Tiling } = {
  dynamic: { rows: 8, colVecs: 2, wgX: 4, wgY: 4 }, baked: { rows: 16, colVecs: 2, wgX: 4, wgY: 2 },
};
const isBaked = (M: number, N: number, K: number): boolean => M > 0 && N > 0 && M * N * K >= BAKE_MIN_WORK;

/**
 * Shared-row tilings (8 lanes each); a product takes the one of its list that pads its M x N
 * least (a 200-column product in 64-column tiles computes 56 columns for nothing), weighted
 * towards more rows (tilingFor), the first on a tie. 32 rows beat 16 end to end, and kSum 2
 * beat 1 and 4 (docs/performance-log.md, "GEMM: rows shared across a subgroup").
 * Dynamic-size pipelines (small products, the tests' odd shapes) take 16 x 4 blocks: 256
 * accumulators cost seconds of LLVM compile, paid once per baked shape but not worth it for
 * small ones.
 */
const sharedTilings: { readonly dynamic: readonly Tiling[]; readonly baked: readonly Tiling[] } = {
  dynamic: [{ rows: 16, colVecs: 1, wgX: 8, wgY: 1, shareRows: true }],
  baked: [
    { rows: 32, colVecs: 2, wgX: 8, wgY: 1, shareRows: true, kSum: 2 },
    { rows: 32, colVecs: 1, wgX: 8, wgY: 1, shareRows: true, kSum: 2 },
    { rows: 16, colVecs: 2, wgX: 8, wgY: 1, shareRows: true, kSum: 2 },
    { rows: 16, colVecs: 1, wgX: 8, wgY: 1, shareRows: true, kSum: 2 },
  ],
};

function tilingFor(tuning: TuningProfile, M: number, N: number, K: number): Tiling {
  const baked = isBaked(M, N, K);
  if (!tuning.sharedRows) return baked ? tilings.baked : tilings.dynamic;
  // Padded outputs, weighted by the loads per multiply-add: each lane loads its B columns once
  // per `rows` rows, so more rows can beat less padding (M=200 N=25088 K=64 in a training step:
  // docs/performance-log.md, "GEMM: rows shared across a subgroup").
  const cost = (t: Tiling): number => Math.ceil(M / tileM(t)) * tileM(t) * Math.ceil(N / tileN(t)) * tileN(t) * (1 + 8 / t.rows);
  return (baked ? sharedTilings.baked : sharedTilings.dynamic).reduce((best, t) => (cost(t) < cost(best) ? t : best));
}

const tileM = (t: Tiling): number => t.rows * t.wgY;
const tileN = (t: Tiling): number => 4 * t.colVecs * t.wgX;

/**
 * How one product reads and writes. WGSL snippets see: M, N, K (u32), `k` in the loop,
 * `col_t` (clamped scalar column t) or `cg_c` (clamped vec4 column group c). Parameters of
 * the spec start at P[4].
 */
export interface GemmSpec {
  /** Identifies the spec's code in the shader (e.g. 'matmul tA'). */
  readonly name: string;
  /**
   * A batch of products of the same sizes, one per workgroup z (`batch`, a u32, in every
   * snippet); never split over K.
   */
  readonly batched?: boolean;
  /** Every binding but the output, which is always `O` (f32 or vec4 per `store4`). */
  readonly inputs: readonly BufferDecl[];
  readonly functions?: string;
  /** Statements at the top of each k iteration. */
  readonly kSetup?: string;
  /** Statements before the loop for scalar column t (0..4 * COL_VECS - 1). */
  readonly colSetup?: (t: number) => string;
  /** Scalar A element of `row` (a clamped u32 expression) at k. */
  readonly aAt: (row: string) => string;
  /** Either a vec4 of B for column group c at k, or a scalar for column t. */
  readonly bVec?: (c: number) => string;
  readonly bAt?: (t: number) => string;
  /**
   * Or a vec4 of B for scalar column t at k .. k + 3 (k a multiple of 4; K and every chunk of K
   * are then multiples of 4, which the caller guarantees): a transposed B read 4 steps a load.
   */
  readonly bAlongK?: (t: number) => string;
  /** Store the scalar `v` at (row, col), both u32 expressions in range. */
  readonly store: (row: string, col: string, v: string) => string;
  /** If given, O is vec4: store a whole group (N % 4 == 0 guaranteed by the caller). */
  readonly store4?: (row: string, group: string, v: string) => string;
}

/**
 * P[4], P[5] are the operands' offsets: never baked, since they change with slicing (a
 * minibatch sliced out of a dataset would compile a pipeline per step).
 */
const OFFSET_WORDS = [4, 5];


/**
 * With `baked` (the dispatch's parameter words), every P[i] of the body but the operand
 * offsets becomes a literal: sizes, strides and offsets are then WGSL constants, so LLVM folds the index
 * arithmetic, turns divisions by sizes into multiplies and knows the loop's trip count.
 */
export function gemmSource(spec: GemmSpec, split: boolean, tiling: Tiling, baked: Uint32Array | null = null): string {
  if (split && spec.batched) throw new Error(`gemm: ${spec.name} is batched and cannot split K`);
  const vectorOut = !!spec.store4 && !split;
  const out: BufferDecl = { name: 'O', access: 'read_write', type: vectorOut ? 'vec4<f32>' : 'f32' };
  const { rows: ROWS, colVecs: COL_VECS, wgX: WG_X, wgY: WG_Y } = tiling;
  const share = !!tiling.shareRows;
  if (share && (WG_Y !== 1 || ROWS % 8 !== 0 || WG_X % 8 !== 0)) throw new Error(`gemm: a shared-row tiling needs wgY 1 and rows, wgX multiples of 8 (${JSON.stringify(tiling)})`);
  const rows = range(ROWS), groups = range(COL_VECS), cols = range(4 * COL_VECS), loaders = range(ROWS / 8);
  const acc = (r: number, c: number): string => `acc_${r}_${c}`;
  // An iteration walks KSTEP steps of k (kSum, or 4 when B comes as vec4 along k), summed into
  // the accumulators kSum at a time. Step u: `k` becomes k + u and every name kSetup defines
  // gets the suffix _u, so the steps' loads can live side by side.
  const KSUM = tiling.kSum ?? 1;
  const KSTEP = spec.bAlongK ? 4 : KSUM;
  if (KSTEP % KSUM !== 0) throw new Error(`gemm: kSum ${KSUM} does not divide the ${KSTEP} steps of an iteration`);
  const kNames = [...(spec.kSetup ?? '').matchAll(/\blet (\w+)\s*=/g)].map((m) => m[1]!);
  const kPattern = new RegExp(`\\b(k|${kNames.join('|') || 'k'})\\b`, 'g');
  const atStep = (u: number, code: string): string =>
    KSTEP === 1 ? code : code.replace(kPattern, (name) => (name === 'k' ? `(k + ${u}u)` : `${name}_${u}`));
  const v = (name: string, u: number): string => (KSTEP === 1 ? name : `${name}_${u}`);
  // B along k: one vec4 per column covers the iteration's 4 steps.
  const loadB4 = spec.bAlongK ? cols.map((t) => `let bk_${t} = ${spec.bAlongK!(t)};`).join(' ') : '';
  const step = (u: number): string[] => {
    const loadB = spec.bAlongK
      ? groups.map((c) => `let ${v(`b_${c}`, u)} = vec4<f32>(${range(4).map((e) => `bk_${4 * c + e}[${u}]`).join(', ')});`)
      : spec.bVec
        ? groups.map((c) => `let ${v(`b_${c}`, u)} = ${spec.bVec!(c)};`)
        : groups.map((c) => `let ${v(`b_${c}`, u)} = vec4<f32>(${range(4).map((e) => spec.bAt!(4 * c + e)).join(', ')});`);
    // Shared rows: lane l loads rows l, l + 8, ... (rowL_j); row r comes from lane r % 8.
    const loadA = share
      ? [...loaders.map((j) => `let ${v(`s_${j}`, u)} = ${spec.aAt(`rowL_${j}`)};`), ...rows.map((r) => `let ${v(`a_${r}`, u)} = subgroupBroadcast(${v(`s_${Math.floor(r / 8)}`, u)}, ${r % 8}u);`)]
      : rows.map((r) => `let ${v(`a_${r}`, u)} = ${spec.aAt(`row_${r}`)};`);
    return [atStep(u, spec.kSetup ?? ''), atStep(u, loadA.join(' ')), spec.bAlongK ? loadB.join(' ') : atStep(u, loadB.join(' '))];
  };
  const steps = range(KSTEP);
  const updates = range(KSTEP / KSUM).flatMap((g) => rows.flatMap((r) => groups.map((c) =>
    `${acc(r, c)} += ${range(KSUM).map((i) => `${v(`a_${r}`, g * KSUM + i)} * ${v(`b_${c}`, g * KSUM + i)}`).join(' + ')};`)));
  const stores: string[] = [];
  for (const r of rows) {
    const row = `(row0 + ${r}u)`;
    const inner: string[] = [];
    for (const c of groups) {
      if (vectorOut) inner.push(`if (col0 + ${4 * c}u < N) { ${spec.store4!(row, `(col0 / 4u + ${c}u)`, acc(r, c))} }`);
      else for (const e of range(4)) {
        const col = `(col0 + ${4 * c + e}u)`;
        const v = `${acc(r, c)}[${e}]`;
        inner.push(`if (${col} < N) { ${split ? `O[(wid.z * M + ${row}) * N + ${col}] = ${v};` : spec.store(row, col, v)} }`);
      }
    }
    stores.push(`if (${row} < M) {\n    ${inner.join('\n    ')}\n  }`);
  }
  const body = `${spec.functions ?? ''}
${entry([WG_X, WG_Y], share ? '@builtin(subgroup_invocation_id) lane: u32' : '')} {
  let M = P[0]; let N = P[1]; let K = P[2];
  let row0 = (wid.y * ${WG_Y}u + lid3.y) * ${ROWS}u;
  let col0 = (wid.x * ${WG_X}u + lid3.x) * ${4 * COL_VECS}u;
  ${share
    // Every lane runs the loop (a broadcast reads the row loaders); the grid never starts a
    // block past M, and columns past N are clamped and never stored.
    ? loaders.map((j) => `let rowL_${j} = min(row0 + ${8 * j}u + lane, M - 1u);`).join(' ')
    : `if (row0 >= M || col0 >= N) { return; }\n  ${rows.map((r) => `let row_${r} = min(row0 + ${r}u, M - 1u);`).join(' ')}`}
  ${spec.batched ? 'let batch = wid.z; let kBegin = 0u; let kEnd = K;' : 'let kBegin = wid.z * P[3];\n  let kEnd = min(K, kBegin + P[3]);'}
  ${spec.bVec ? groups.map((c) => `let cg_${c} = min(col0 / 4u + ${c}u, (N + 3u) / 4u - 1u);`).join(' ') : cols.map((t) => `let col_${t} = min(col0 + ${t}u, N - 1u);`).join(' ')}
  ${spec.colSetup ? cols.map(spec.colSetup).join('\n  ') : ''}
  ${rows.flatMap((r) => groups.map((c) => `var ${acc(r, c)} = vec4<f32>(0.0);`)).join(' ')}
  for (var k = kBegin; k < kEnd; k += ${KSTEP}u) {
    ${loadB4}
    ${steps.flatMap(step).join('\n    ')}
    ${updates.join(' ')}
  }
  ${stores.join('\n  ')}
}`;
  const code = baked ? bakeWords(body, baked, range(baked.length).filter((i) => !OFFSET_WORDS.includes(i))) : body;
  // Directives come before any declaration.
  return `${share ? SUBGROUP_DIRECTIVES : ''}// gemm: ${spec.name}${split ? ' (split K)' : ''}${baked ? ' (sizes baked)' : ''}${share ? ' (shared rows)' : ''}
${header([...spec.inputs, out])}
${code}`;
}

/** K split in chunks so thin products still fill the machine; 1 when the tiles already do. */
export function splitCount(tuning: TuningProfile, M: number, N: number, K: number): number {
  const t = tilingFor(tuning, M, N, K);
  const tiles = Math.ceil(M / tileM(t)) * Math.ceil(N / tileN(t));
  if (tiles >= 64 || K < 1024) return 1;
  return Math.max(1, Math.min(64, Math.ceil(128 / tiles), Math.floor(K / 512)));
}

/**
 * The dispatch of a spec; with splits > 1, `O` must be a scratch of splits * M * N floats.
 * A batched spec runs `batches` products (splits must be 1).
 */
export function gemmDispatch(tuning: TuningProfile, spec: GemmSpec, buffers: readonly GPUBuffer[], M: number, N: number, K: number, extra: readonly number[], splits: number, batches = 1): Dispatch {
  if (spec.batched ? splits !== 1 : batches !== 1) throw new Error(`gemm: ${spec.name}: ${splits} splits, ${batches} batches`);
  // Small products (tests' odd shapes) share one pipeline per spec; big ones, which repeat
  // every training step, get their own with the sizes baked in.
  const bake = isBaked(M, N, K), chosen = tilingFor(tuning, M, N, K);
  // Chunks of K a multiple of kSum where K is (the last split may then get nothing to do).
  const step = spec.bAlongK ? 4 : chosen.kSum && K % chosen.kSum === 0 ? chosen.kSum : 1;
  const chunk = Math.ceil(Math.ceil(K / splits) / step) * step;
  const params = Uint32Array.from([M, N, K, Math.max(chunk, 1), ...extra]);
  const tiling = (chosen.kSum ?? 1) > 1 && (K % chosen.kSum! !== 0 || chunk % chosen.kSum! !== 0 || (spec.bAlongK && 4 % chosen.kSum! !== 0)) ? { ...chosen, kSum: 1 } : chosen;
  const key = `gemm|${spec.name}|${splits > 1}|${tiling.rows},${tiling.colVecs},${tiling.wgX},${tiling.wgY},${!!tiling.shareRows},${tiling.kSum ?? 1}|${bake ? `${M},${N},${K},${params[3]!},${extra.slice(OFFSET_WORDS.length).join(',')}` : ''}`;
  return {
    source: cachedSource(key, () => gemmSource(spec, splits > 1, tiling, bake ? params : null)),
    buffers,
    params,
    groups: M === 0 || N === 0 || batches === 0 ? 0 : [Math.ceil(N / tileN(tiling)), Math.ceil(M / tileM(tiling)), spec.batched ? batches : splits],
  };
}
