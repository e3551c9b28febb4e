// A host-side random generator for the tests' own inputs and Monte Carlo references, independent
// of the engine's Philox stream (so a bug there cannot hide in both sides of a comparison).

/** A cheap xorshift32 stream of values in [-1, 1), for filling kernel test operands. */
export function xorshift(seed: number): () => number {
  return () => {
    seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5;
    return (seed >>> 0) / 2 ** 31 - 1;
  };
}

/** sfc32 with 53-bit uniforms in (0, 1) and Box-Muller normals. */
export class HostRng {
  private a: number; private b: number; private c: number; private d = 1;
  private spare: number | null = null;
  constructor(seed: number) {
    this.a = 0x9e3779b9; this.b = 0x243f6a88; this.c = seed >>> 0;
    for (let i = 0; i < 15; i++) this.u32();
  }
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) + t | 0;
    return t >>> 0;
  }
  uniform(): number {
    return ((this.u32() >>> 5) * 67108864 + (this.u32() >>> 6) + 0.5) / 9007199254740992;
  }
  normal(): number {
    if (this.spare !== null) { const s = this.spare; this.spare = null; return s; }
    const r = Math.sqrt(-2 * Math.log(this.uniform())), th = 2 * Math.PI * this.uniform();
    this.spare = r * Math.sin(th);
    return r * Math.cos(th);
  }
  array(n: number, lo: number, hi: number): Float64Array {
    return Float64Array.from({ length: n }, () => lo + (hi - lo) * this.uniform());
  }
  normals(n: number, s = 1): Float64Array {
    return Float64Array.from({ length: n }, () => s * this.normal());
  }
}
