// Counter-based random numbers (Philox-4x32-10, Salmon et al. 2011, the generator behind
// cuRAND and PyTorch's CUDA streams). Each counter value gives four 32-bit words, computed
// independently of every other, so a GPU thread can make its own numbers and every backend
// produces the same stream for the same (seed, offset). Backends call philox4x32 (or port it).

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** High 32 bits of a 32x32-bit product, from 16-bit halves (no 64-bit integers needed). */
function mulHi(a: number, b: number): number {
  const aLo = a & 0xffff, aHi = a >>> 16, bLo = b & 0xffff, bHi = b >>> 16;
  const lo = aLo * bLo;
  const mid1 = aHi * bLo + (lo >>> 16);
  const mid2 = aLo * bHi + (mid1 & 0xffff);
  return (aHi * bHi + (mid1 >>> 16) + (mid2 >>> 16)) >>> 0;
}

/** Philox-4x32-10 of counter (c0, c1, c2, c3) and key (k0, k1); writes four uint32 words. */
export function philox4x32(c0: number, c1: number, k0: number, k1: number, out: Uint32Array, c2 = 0, c3 = 0): void {
  let x0 = c0 >>> 0, x1 = c1 >>> 0, x2 = c2 >>> 0, x3 = c3 >>> 0;
  let key0 = k0 >>> 0, key1 = k1 >>> 0;
  for (let round = 0; round < 10; round++) {
    const hi0 = mulHi(M0, x0), lo0 = Math.imul(M0, x0) >>> 0;
    const hi1 = mulHi(M1, x2), lo1 = Math.imul(M1, x2) >>> 0;
    const n0 = (hi1 ^ x1 ^ key0) >>> 0;
    const n2 = (hi0 ^ x3 ^ key1) >>> 0;
    x0 = n0; x1 = lo1; x2 = n2; x3 = lo0;
    key0 = (key0 + W0) >>> 0;
    key1 = (key1 + W1) >>> 0;
  }
  out[0] = x0; out[1] = x1; out[2] = x2; out[3] = x3;
}

/** A uint32 word to a float in (0, 1): 24 random bits, centred in their bin so log(u) is finite. */
export function uniformFromWord(word: number): number {
  return ((word >>> 8) + 0.5) / 16777216;
}

/** Box-Muller: two uniforms give two independent normals (the cosine and the sine branch). */
export function normalFromUniforms(u1: number, u2: number, sineBranch: boolean): number {
  const radius = Math.sqrt(-2 * Math.log(u1));
  const angle = 2 * Math.PI * u2;
  return radius * (sineBranch ? Math.sin(angle) : Math.cos(angle));
}

/**
 * The definition of a draw that every backend's random kernel reproduces: element i of a draw
 * at `offset` comes from counter offset + floor(i / 4). Uniforms use word i % 4; normals use
 * Box-Muller on the word pairs (0, 1) and (2, 3), cosine branch first.
 */
export function referenceDraw(kind: 'uniform' | 'normal', seed: number, offset: number, out: { length: number; [i: number]: number }): void {
  const words = new Uint32Array(4);
  const [k0, k1] = seedKey(seed);
  for (let i = 0; i < out.length; i += 4) {
    philox4x32(offset + i / 4, 0, k0, k1, words);
    for (let j = 0; j < 4 && i + j < out.length; j++) {
      if (kind === 'uniform') out[i + j] = uniformFromWord(words[j]!);
      else {
        const pair = j & 2;
        out[i + j] = normalFromUniforms(uniformFromWord(words[pair]!), uniformFromWord(words[pair + 1]!), (j & 1) === 1);
      }
    }
  }
}

/** A seed (any safe integer) as Philox's two-word key. */
export function seedKey(seed: number): [number, number] {
  if (!Number.isSafeInteger(seed)) throw new Error(`random: seed must be a safe integer, got ${seed}`);
  return [seed >>> 0, Math.floor(seed / 4294967296) >>> 0];
}

/**
 * A seeded stream: each draw takes the next block of counters, so a run that records
 * (seed, offset) can be resumed exactly (checkpoints store both).
 */
export class RandomStream {
  constructor(readonly seed: number, public offset = 0) {
    seedKey(seed);
  }

  /** Reserve the counters for `length` numbers; returns the offset the draw starts at. */
  take(length: number): number {
    const start = this.offset;
    this.offset += Math.ceil(length / 4);
    return start;
  }

  /** An independent child stream (e.g. one per method), derived from this seed and a label. */
  fork(label: number): RandomStream {
    const words = new Uint32Array(4);
    const [k0, k1] = seedKey(this.seed);
    philox4x32(label >>> 0, 0x5eed, k0, k1, words);
    return new RandomStream(words[0]! + (words[1]! & 0xffff) * 4294967296);
  }
}
