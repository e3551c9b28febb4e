// A minimal WebAssembly module builder: function types, an imported memory and imported
// functions, functions built instruction by instruction, and exports. Enough for generated
// numeric kernels; no tables, globals or data segments. Layout of the result (spec 5.5): magic "\0asm", version 1, then the
// sections in id order, each as id, byte size, contents.
import { encodeName, encodeVector, float32Bytes, float64Bytes, signedLeb128, unsignedLeb128 } from './encoding.js';
import { BLOCK_EMPTY, BULK_PREFIX, BulkOp, ExternalKind, FUNC_TYPE, Op, SIMD_PREFIX, Section, SimdOp, ValType } from './opcodes.js';

/** A local variable (parameters first, then declared locals), as its index. */
export type Local = number & { readonly __local: unique symbol };

/** A tuple of n elements of type T, for a literal n (an array when n is not a literal). */
type Tuple<T, N extends number, R extends T[] = []> = number extends N ? T[] : R['length'] extends N ? R : Tuple<T, N, [...R, T]>;

/**
 * The body of one function: its parameter and result types, the extra locals it declares, and
 * its instructions. Methods append one instruction each and return `this`, so code reads in
 * the stack machine's order: `f.get(x).get(y).op(Op.i32_add).set(z)` is z = x + y.
 */
export class FunctionBuilder {
  readonly code: number[] = [];
  private readonly localTypes: ValType[] = [];
  private depth = 0;

  constructor(readonly name: string, readonly params: readonly ValType[], readonly results: readonly ValType[]) {}

  /** The i-th parameter. */
  param(i: number): Local {
    if (i < 0 || i >= this.params.length) throw new RangeError(`${this.name}: no parameter ${i}`);
    return i as Local;
  }

  /** All n parameters, in order, as a tuple to destructure; n must be the declared count. */
  paramTuple<N extends number>(n: N): Tuple<Local, N> {
    if (n !== this.params.length) throw new RangeError(`${this.name}: ${this.params.length} parameters, not ${n}`);
    return Array.from({ length: n }, (_, i) => i as Local) as Tuple<Local, N>;
  }

  /** Declare a new local of type `type`. */
  local(type: ValType): Local {
    this.localTypes.push(type);
    return (this.params.length + this.localTypes.length - 1) as Local;
  }

  /** n new locals of type `type`, as a tuple to destructure. */
  locals<N extends number>(type: ValType, n: N): Tuple<Local, N> {
    return Array.from({ length: n }, () => this.local(type)) as Tuple<Local, N>;
  }

  /** A plain opcode without immediates (i32.add, f32x4 ops go through `simd`). */
  op(opcode: number): this {
    this.code.push(opcode);
    return this;
  }

  get(l: Local): this { this.code.push(Op.local_get, ...unsignedLeb128(l)); return this; }
  set(l: Local): this { this.code.push(Op.local_set, ...unsignedLeb128(l)); return this; }
  tee(l: Local): this { this.code.push(Op.local_tee, ...unsignedLeb128(l)); return this; }
  i32(value: number): this { this.code.push(Op.i32_const, ...signedLeb128(value)); return this; }
  f64(value: number): this { this.code.push(Op.f64_const, ...float64Bytes(value)); return this; }
  /** Call function `index` (imports first, as ModuleBuilder.importFunction numbers them). */
  call(index: number): this { this.code.push(Op.call, ...unsignedLeb128(index)); return this; }

  /** A load or store: opcode, then the memarg (log2 of the alignment hint, constant offset). */
  memory(opcode: number, alignLog2: number, offset: number): this {
    this.code.push(opcode, ...unsignedLeb128(alignLog2), ...unsignedLeb128(offset));
    return this;
  }

  /** A SIMD instruction without immediates. */
  simd(sub: number): this {
    this.code.push(SIMD_PREFIX, ...unsignedLeb128(sub));
    return this;
  }

  /** A SIMD instruction with a lane index (`f32x4.extract_lane`). */
  simdLane(sub: number, lane: number): this {
    this.code.push(SIMD_PREFIX, ...unsignedLeb128(sub), lane);
    return this;
  }

  /** A SIMD load or store with its memarg. */
  simdMemory(sub: number, alignLog2: number, offset: number): this {
    this.code.push(SIMD_PREFIX, ...unsignedLeb128(sub), ...unsignedLeb128(alignLog2), ...unsignedLeb128(offset));
    return this;
  }

  /** A SIMD load or store of one lane (`v128.load32_lane`, `v128.store32_lane`): memarg, then the lane. */
  laneMemory(sub: number, alignLog2: number, offset: number, lane: number): this {
    this.code.push(SIMD_PREFIX, ...unsignedLeb128(sub), ...unsignedLeb128(alignLog2), ...unsignedLeb128(offset), lane);
    return this;
  }

  /** v128.const of sixteen zero bytes. */
  v128Zero(): this {
    this.code.push(SIMD_PREFIX, ...unsignedLeb128(SimdOp.v128_const), ...new Array<number>(16).fill(0));
    return this;
  }

  /** v128.const with `value` in both f64 lanes. */
  f64x2Const(value: number): this {
    const lane = float64Bytes(value);
    this.code.push(SIMD_PREFIX, ...unsignedLeb128(SimdOp.v128_const), ...lane, ...lane);
    return this;
  }

  /** v128.const with `value` in all four f32 lanes. */
  f32x4Const(value: number): this {
    const lane = float32Bytes(value);
    this.code.push(SIMD_PREFIX, ...unsignedLeb128(SimdOp.v128_const), ...lane, ...lane, ...lane, ...lane);
    return this;
  }

  /** `memory.copy` of memory 0 to itself: pops destination, source and byte count. */
  memoryCopy(): this {
    this.code.push(BULK_PREFIX, ...unsignedLeb128(BulkOp.memory_copy), 0x00, 0x00);
    return this;
  }

  /** `for (counter = 0; counter < limit; counter++) body()`: a loop that runs no times for limit 0. */
  forLoop(counter: Local, limit: Local, body: () => void): this {
    this.i32(0).set(counter);
    return this.block(() => this.loop(() => {
      this.get(counter).get(limit).op(Op.i32_ge_u).brIf(1);
      body();
      this.get(counter).i32(1).op(Op.i32_add).set(counter);
      this.br(0);
    }));
  }

  /** `l = l + by` for i32 locals (a pointer stepped by a stride held in a local). */
  advance(l: Local, by: Local): this {
    return this.get(l).get(by).op(Op.i32_add).set(l);
  }

  /** `block … end`: a `br` to it jumps past its end. */
  block(body: () => void): this { return this.structured(Op.block, body); }
  /** `loop … end`: a `br` to it jumps back to its start. */
  loop(body: () => void): this { return this.structured(Op.loop, body); }

  /** Branch to the enclosing block `label` levels out (0 = innermost). */
  br(label: number): this { this.code.push(Op.br, ...unsignedLeb128(label)); return this; }
  /** Branch if the i32 on the stack is non-zero. */
  brIf(label: number): this { this.code.push(Op.br_if, ...unsignedLeb128(label)); return this; }

  /** The code section entry: size, local declarations (runs of one type), instructions, end. */
  encodeBody(): number[] {
    if (this.depth !== 0) throw new Error(`${this.name}: unclosed block`);
    const runs: number[][] = [];
    for (let i = 0; i < this.localTypes.length;) {
      let j = i;
      while (j < this.localTypes.length && this.localTypes[j] === this.localTypes[i]) j++;
      runs.push([...unsignedLeb128(j - i), this.localTypes[i]!]);
      i = j;
    }
    const body = [...encodeVector(runs), ...this.code, Op.end];
    return [...unsignedLeb128(body.length), ...body];
  }

  private structured(opcode: number, body: () => void): this {
    this.code.push(opcode, BLOCK_EMPTY);
    this.depth++;
    body();
    this.depth--;
    this.code.push(Op.end);
    return this;
  }
}

/** A function type as the type section writes it. */
const encodeType = (params: readonly ValType[], results: readonly ValType[]): number[] =>
  [FUNC_TYPE, ...encodeVector(params.map((t) => [t])), ...encodeVector(results.map((t) => [t]))];

/** A function the module imports, by its type. */
interface FunctionImport { module: string; field: string; params: readonly ValType[]; results: readonly ValType[] }

/** One module: an optional imported memory, imported functions and exported functions. */
export class ModuleBuilder {
  private readonly functions: FunctionBuilder[] = [];
  private readonly functionImports: FunctionImport[] = [];
  private memoryImport: { module: string; field: string; minPages: number; maxPages?: number; shared: boolean } | null = null;

  /** Import a memory as `module`.`field` with at least `minPages` 64 KiB pages. */
  importMemory(module: string, field: string, minPages: number, maxPages?: number, shared = false): this {
    this.memoryImport = { module, field, minPages, shared, ...(maxPages === undefined ? {} : { maxPages }) };
    return this;
  }

  /**
   * Import a function as `module`.`field`; returns the index `call` takes. Imports come before
   * the module's own functions in the index space, so import before adding functions.
   */
  importFunction(module: string, field: string, params: readonly ValType[], results: readonly ValType[]): number {
    if (this.functions.length > 0) throw new Error('ModuleBuilder: import functions before adding any');
    return this.functionImports.push({ module, field, params, results }) - 1;
  }

  /** A new exported function; fill its body through the returned builder. */
  addFunction(name: string, params: readonly ValType[], results: readonly ValType[]): FunctionBuilder {
    const f = new FunctionBuilder(name, params, results);
    this.functions.push(f);
    return f;
  }

  encode(): Uint8Array<ArrayBuffer> {
    const bytes: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
    const section = (id: number, contents: number[]): void => {
      bytes.push(id, ...unsignedLeb128(contents.length), ...contents);
    };
    // One type per function, imports first (duplicates are allowed; deduplicating would save a
    // few bytes). Function i of the module's own is type and function index imports + i.
    const imported = this.functionImports.length;
    section(Section.type, encodeVector([...this.functionImports, ...this.functions].map((f) => encodeType(f.params, f.results))));
    const imports = this.functionImports.map((f, i) => [...encodeName(f.module), ...encodeName(f.field), ExternalKind.func, ...unsignedLeb128(i)]);
    if (this.memoryImport) {
      const m = this.memoryImport;
      // Limits: flag 0 = min only, 1 = min and max, 3 = shared with min and max.
      const limits = m.maxPages === undefined
        ? [0x00, ...unsignedLeb128(m.minPages)]
        : [m.shared ? 0x03 : 0x01, ...unsignedLeb128(m.minPages), ...unsignedLeb128(m.maxPages)];
      imports.push([...encodeName(m.module), ...encodeName(m.field), ExternalKind.memory, ...limits]);
    }
    if (imports.length > 0) section(Section.import, encodeVector(imports));
    section(Section.function, encodeVector(this.functions.map((_, i) => unsignedLeb128(imported + i))));
    section(Section.export, encodeVector(this.functions.map((f, i) => [...encodeName(f.name), ExternalKind.func, ...unsignedLeb128(imported + i)])));
    section(Section.code, encodeVector(this.functions.map((f) => f.encodeBody())));
    return new Uint8Array(bytes);
  }
}
