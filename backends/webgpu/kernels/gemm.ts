// One register-blocked GEMM template, C[M,N] = sum_k A[m,k] B[k,n], that matmul and all three
// convolutions instantiate by saying how to load an element of A and B and where C goes.
// Each invocation keeps a block of C in vec4 registers (8 x 8 for small products, 16 x 8 for
// big ones: see `tilings`); no workgroup memory and no barriers (on lavapipe/llvmpipe barriers
// cost more than they save: 3-6x slower in the probe recorded in the design note).
// Big products (>= 2^20 multiply-adds, which a training step repeats) get their sizes baked
// in as literals; small ones share one dynamic-size pipeline per spec.
// Long, thin products (a filter gradient: 32 x 288 outputs, 50k terms each) split K over
// the grid's z axis into a scratch [splits, M, N] summed afterwards by the reduce kernel.
import type { Dispatch } from '../queue.js';
import { BAKE_MIN_WORK, bakeWords, entry, header, type BufferDecl } from './wgsl.js';

/** Rows and vec4 column groups per invocation, and the workgroup's shape. */
export interface Tiling { rows: number; colVecs: number; wgX: number; wgY: number }
/**
 * Shared dynamic-size pipelines (small products, the tests' odd shapes) use 8 x 8 blocks; baked
 * big ones 16 x 8: 15-35% faster on lavapipe (conv and MLP products, one loaded run) but ~2x
 * the cold LLVM compile (32->32 conv kernels 0.7-1.5 s -> 2.6-2.8 s), paid once per shape.
 * Mutable for probes only.
 */
export const tilings = { dynamic: { rows: 8, colVecs: 2, wgX: 4, wgY: 4 } as Tiling, baked: { rows: 16, colVecs: 2, wgX: 4, wgY: 2 } as Tiling, bake: true };
const isBaked = (M: number, N: number, K: number): boolean => tilings.bake && M > 0 && N > 0 && M * N * K >= BAKE_MIN_WORK;
const tilingFor = (M: number, N: number, K: number): Tiling => (isBaked(M, N, K) ? tilings.baked : tilings.dynamic);
const tileM = (t: Tiling): number => t.rows * t.wgY;
const tileN = (t: Tiling): number => 4 * t.colVecs * t.wgX;

/**
 * How one product reads and writes. WGSL snippets see: M, N, K (u32), `k` in the loop,
 * `row_r` (clamped row r of the block), `col_t` (clamped scalar column t) or `cg_c` (clamped
 * vec4 column group c). Parameters of the spec start at P[4].
 */
export interface GemmSpec {
  /** Identifies the spec's code in the shader (e.g. 'matmul tA'). */
  readonly name: string;
  /** Every binding but the output, which is always `O` (f32 or vec4 per `store4`). */
  readonly inputs: readonly BufferDecl[];
  readonly functions?: string;
  /** Statements at the top of each k iteration. */
  readonly kSetup?: string;
  /** Statements before the loop for row r. */
  readonly rowSetup?: (r: number) => string;
  /** Statements before the loop for scalar column t (0..4 * COL_VECS - 1). */
  readonly colSetup?: (t: number) => string;
  /** Scalar A element of row r at k. */
  readonly aAt: (r: number) => string;
  /** Either a vec4 of B for column group c at k, or a scalar for column t. */
  readonly bVec?: (c: number) => string;
  readonly bAt?: (t: number) => string;
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

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/**
 * With `baked` (the dispatch's parameter words), every P[i] of the body but the operand
 * offsets becomes a literal: sizes, strides and offsets are then WGSL constants, so LLVM folds the index
 * arithmetic, turns divisions by sizes into multiplies and knows the loop's trip count.
 */
export function gemmSource(spec: GemmSpec, split: boolean, tiling: Tiling, baked: Uint32Array | null = null): string {
  const vectorOut = !!spec.store4 && !split;
  const out: BufferDecl = { name: 'O', access: 'read_write', type: vectorOut ? 'vec4<f32>' : 'f32' };
  const { rows: ROWS, colVecs: COL_VECS, wgX: WG_X, wgY: WG_Y } = tiling;
  const rows = range(ROWS), groups = range(COL_VECS), cols = range(4 * COL_VECS);
  const acc = (r: number, c: number): string => `acc_${r}_${c}`;
  const loadB = spec.bVec
    ? groups.map((c) => `let b_${c} = ${spec.bVec!(c)};`)
    : groups.map((c) => `let b_${c} = vec4<f32>(${range(4).map((e) => spec.bAt!(4 * c + e)).join(', ')});`);
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
${entry([WG_X, WG_Y])} {
  let M = P[0]; let N = P[1]; let K = P[2];
  let row0 = (wid.y * ${WG_Y}u + lid3.y) * ${ROWS}u;
  let col0 = (wid.x * ${WG_X}u + lid3.x) * ${4 * COL_VECS}u;
  if (row0 >= M || col0 >= N) { return; }
  let kBegin = wid.z * P[3];
  let kEnd = min(K, kBegin + P[3]);
  ${rows.map((r) => `let row_${r} = min(row0 + ${r}u, M - 1u);`).join(' ')}
  ${spec.bVec ? groups.map((c) => `let cg_${c} = min(col0 / 4u + ${c}u, (N + 3u) / 4u - 1u);`).join(' ') : cols.map((t) => `let col_${t} = min(col0 + ${t}u, N - 1u);`).join(' ')}
  ${spec.rowSetup ? rows.map(spec.rowSetup).join('\n  ') : ''}
  ${spec.colSetup ? cols.map(spec.colSetup).join('\n  ') : ''}
  ${rows.flatMap((r) => groups.map((c) => `var ${acc(r, c)} = vec4<f32>(0.0);`)).join(' ')}
  for (var k = kBegin; k < kEnd; k++) {
    ${spec.kSetup ?? ''}
    ${rows.map((r) => `let a_${r} = ${spec.aAt(r)};`).join(' ')}
    ${loadB.join(' ')}
    ${rows.flatMap((r) => groups.map((c) => `${acc(r, c)} += a_${r} * b_${c};`)).join(' ')}
  }
  ${stores.join('\n  ')}
}`;
  const code = baked ? bakeWords(body, baked, range(baked.length).filter((i) => !OFFSET_WORDS.includes(i))) : body;
  return `// gemm: ${spec.name}${split ? ' (split K)' : ''}${baked ? ' (sizes baked)' : ''}
${header([...spec.inputs, out])}
${code}`;
}

/** K split in chunks so thin products still fill the machine; 1 when the tiles already do. */
export function splitCount(M: number, N: number, K: number): number {
  const t = tilingFor(M, N, K);
  const tiles = Math.ceil(M / tileM(t)) * Math.ceil(N / tileN(t));
  if (tiles >= 64 || K < 1024) return 1;
  return Math.max(1, Math.min(64, Math.ceil(128 / tiles), Math.floor(K / 512)));
}

/** The dispatch of a spec; with splits > 1, `O` must be a scratch of splits * M * N floats. */
export function gemmDispatch(spec: GemmSpec, buffers: readonly GPUBuffer[], M: number, N: number, K: number, extra: readonly number[], splits: number): Dispatch {
  const chunk = Math.ceil(K / splits);
  const params = Uint32Array.from([M, N, K, Math.max(chunk, 1), ...extra]);
  // Small products (tests' odd shapes) share one pipeline per spec; big ones, which repeat
  // every training step, get their own with the sizes baked in.
  const bake = isBaked(M, N, K), tiling = tilingFor(M, N, K);
  return {
    source: gemmSource(spec, splits > 1, tiling, bake ? params : null),
    buffers,
    params,
    groups: M === 0 || N === 0 ? 0 : [Math.ceil(N / tileN(tiling)), Math.ceil(M / tileM(tiling)), splits],
  };
}
