// The WebAssembly opcodes the CPU backend's kernels use, by their names in the spec's text
// format (section 5.4). Only what the emitter needs; add more from the spec's opcode table.
// SIMD instructions are the prefix byte 0xfd followed by a u32 sub-opcode in LEB128, so
// `f32x4.add` (0xe4) is written 0xfd 0xe4 0x01.

/** Value types (spec 5.3.1). */
export const ValType = {
  i32: 0x7f,
  i64: 0x7e,
  f32: 0x7d,
  f64: 0x7c,
  v128: 0x7b,
} as const;
export type ValType = (typeof ValType)[keyof typeof ValType];

/** Block type of a block/loop that takes and leaves nothing. */
export const BLOCK_EMPTY = 0x40;
/** The `func` type constructor in the type section. */
export const FUNC_TYPE = 0x60;

/** Section ids (spec 5.5.2). */
export const Section = {
  type: 1,
  import: 2,
  function: 3,
  memory: 5,
  export: 7,
  code: 10,
} as const;

/** Import/export descriptor kinds. */
export const ExternalKind = {
  func: 0x00,
  table: 0x01,
  memory: 0x02,
  global: 0x03,
} as const;

/** Single-byte instructions. */
export const Op = {
  unreachable: 0x00,
  nop: 0x01,
  block: 0x02,
  loop: 0x03,
  if: 0x04,
  else: 0x05,
  end: 0x0b,
  br: 0x0c,
  br_if: 0x0d,
  return: 0x0f,
  call: 0x10,
  drop: 0x1a,
  local_get: 0x20,
  local_set: 0x21,
  local_tee: 0x22,
  i32_load: 0x28,
  f32_load: 0x2a,
  f64_load: 0x2b,
  i32_store: 0x36,
  f32_store: 0x38,
  f64_store: 0x39,
  i32_const: 0x41,
  f64_const: 0x44,
  i32_eqz: 0x45,
  i32_eq: 0x46,
  i32_ne: 0x47,
  i32_lt_u: 0x49,
  i32_ge_u: 0x4f,
  i32_add: 0x6a,
  i32_sub: 0x6b,
  i32_mul: 0x6c,
  i32_and: 0x71,
  i32_shl: 0x74,
  i32_shr_u: 0x76,
  f32_add: 0x92,
  f64_neg: 0x9a,
  f64_add: 0xa0,
  f64_sub: 0xa1,
  f64_mul: 0xa2,
  f64_div: 0xa3,
  f32_demote_f64: 0xb6,
  f64_promote_f32: 0xbb,
} as const;

/** The prefix byte of the bulk-memory instructions (memory.copy, memory.fill). */
export const BULK_PREFIX = 0xfc;

/** Bulk-memory sub-opcodes (written after BULK_PREFIX as unsigned LEB128). */
export const BulkOp = {
  memory_copy: 0x0a,
} as const;

/** The prefix byte of every SIMD (v128) instruction. */
export const SIMD_PREFIX = 0xfd;

/** SIMD sub-opcodes (written after SIMD_PREFIX as unsigned LEB128). */
export const SimdOp = {
  v128_load: 0x00,
  v128_load32_splat: 0x09,
  v128_load64_splat: 0x0a,
  v128_store: 0x0b,
  v128_const: 0x0c,
  /** Replace one lane of a vector with an f32 from memory, and store one lane to memory. */
  v128_load32_lane: 0x56,
  v128_load64_lane: 0x57,
  v128_store32_lane: 0x5a,
  v128_store64_lane: 0x5b,
  /** Load 64 bits into lane 0 (the rest zero): two float32s for f64x2_promote_low_f32x4. */
  v128_load64_zero: 0x5d,
  f32x4_demote_f64x2_zero: 0x5e,
  f64x2_promote_low_f32x4: 0x5f,
  f32x4_splat: 0x13,
  f64x2_splat: 0x14,
  f32x4_extract_lane: 0x1f,
  f64x2_extract_lane: 0x21,
  f64x2_replace_lane: 0x22,
  f32x4_gt: 0x44,
  v128_and: 0x4e,
  f32x4_abs: 0xe0,
  f32x4_neg: 0xe1,
  f32x4_sqrt: 0xe3,
  f32x4_add: 0xe4,
  f32x4_sub: 0xe5,
  f32x4_mul: 0xe6,
  f32x4_div: 0xe7,
  f64x2_neg: 0xed,
  f64x2_add: 0xf0,
  f64x2_sub: 0xf1,
  f64x2_mul: 0xf2,
  f64x2_div: 0xf3,
  /** Relaxed SIMD (a·b + c, fused or not as the machine prefers); Node 20 needs a flag. */
  f32x4_relaxed_madd: 0x105,
} as const;
