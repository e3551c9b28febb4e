// Pointwise ops: the forward is one backend kernel, the gradient rule sits right below it in
// the table, written with engine ops (so every backend differentiates them for free).
import { record } from '../graph.js';
import type { BinaryOp, UnaryOp } from '../backend.js';
import type { Tensor } from '../tensor.js';
import { checkCompatible, defineOp, emptyLike, fullLike } from './core.js';
import { broadcastShapes, broadcastView, unbroadcast } from './shape.js';

type UnaryGrad = (g: Tensor, x: Tensor, out: Tensor, p: number) => Tensor;

/** d out / d x for each differentiable unary kernel (null: none by design). */
const unaryGrads: Record<UnaryOp, UnaryGrad | null> = {
  copy: (g) => g,
  neg: (g) => neg(g),
  exp: (g, _x, out) => mul(g, out),
  log: (g, x) => div(g, x),
  sqrt: (g, _x, out) => div(g, scale(out, 2)),
  abs: (g, x) => mul(g, sign(x)),
  sign: null,
  square: (g, x) => mul(g, scale(x, 2)),
  reciprocal: (g, _x, out) => neg(mul(g, square(out))),
  relu: (g, x) => keepWherePositive(g, x),
  step: null,
  sigmoid: (g, _x, out) => mul(g, sub(out, square(out))),
  softplus: (g, x) => mul(g, sigmoid(x)),
  logSigmoid: (g, x) => mul(g, sigmoid(neg(x))),
  tanh: (g, _x, out) => sub(g, mul(g, square(out))),
  scale: (g, _x, _out, p) => scale(g, p),
  shift: (g) => g,
  pow: (g, x, _out, p) => mul(g, scale(pow(x, p - 1), p)),
};

function unaryOp(op: UnaryOp): (x: Tensor, p?: number) => Tensor {
  const grad = unaryGrads[op];
  return defineOp(op, grad !== null, (x: Tensor, p = 0): Tensor => {
    x.assertLive(op);
    const out = emptyLike(x);
    x.backend.unary(op, x, out, p);
    return grad ? record(out, op, [x], (g) => [grad(g, x, out, p)]) : out;
  });
}

export const neg = unaryOp('neg');
export const exp = unaryOp('exp');
export const log = unaryOp('log');
export const sqrt = unaryOp('sqrt');
export const abs = unaryOp('abs');
export const sign = unaryOp('sign');
export const square = unaryOp('square');
export const reciprocal = unaryOp('reciprocal');
export const relu = unaryOp('relu');
/** 1 where x > 0, else 0. */
export const step = unaryOp('step');
export const sigmoid = unaryOp('sigmoid');
export const softplus = unaryOp('softplus');
export const logSigmoid = unaryOp('logSigmoid');
export const tanh = unaryOp('tanh');
const scaleKernel = unaryOp('scale');
const shiftKernel = unaryOp('shift');
const powKernel = unaryOp('pow');
/** x * c for a number c. */
export const scale = (x: Tensor, c: number): Tensor => scaleKernel(x, c);
/** x + c for a number c. */
export const shift = (x: Tensor, c: number): Tensor => shiftKernel(x, c);
/** x ** p for a number p. */
export const pow = (x: Tensor, p: number): Tensor => powKernel(x, p);

/**
 * x itself going forward, its gradient times `factor` coming back: Algorithm 1 (paper Eq. 8)
 * weighs the encoder's silent and sampled gradients this way while each decoder keeps all of
 * its own loss's gradient.
 */
export const scaleGradient = defineOp('scaleGradient', true, (x: Tensor, factor: number): Tensor =>
  record(x.view(x.shape, x.strides, x.offset), 'scaleGradient', [x], (g) => [scale(g, factor)]));

type BinaryGrad = (g: Tensor, a: Tensor, b: Tensor, out: Tensor) => [Tensor | null, Tensor | null];

const binaryGrads: Record<BinaryOp, BinaryGrad | null> = {
  add: (g) => [g, g],
  sub: (g) => [g, neg(g)],
  mul: (g, a, b) => [mul(g, b), mul(g, a)],
  div: (g, _a, b, out) => [div(g, b), neg(mul(g, div(out, b)))],
  // On ties the whole gradient goes to a.
  maximum: (g, a, b) => { const bWins = greater(b, a); return [mul(g, oneMinus(bWins)), mul(g, bWins)]; },
  minimum: (g, a, b) => { const bWins = greater(a, b); return [mul(g, oneMinus(bWins)), mul(g, bWins)]; },
  greater: null,
  // b's gradient is 0 wherever it is defined (b != 0).
  keepWherePositive: (g, _a, b) => [keepWherePositive(g, b), fullLike(b, 0)],
};

const oneMinus = (x: Tensor): Tensor => shift(neg(x), 1);

function binaryOp(op: BinaryOp): (a: Tensor, b: Tensor) => Tensor {
  const grad = binaryGrads[op];
  return defineOp(op, grad !== null, (a: Tensor, b: Tensor): Tensor => {
    checkCompatible(op, { a, b });
    const shape = broadcastShapes(op, a.shape, b.shape);
    const out = emptyLike(a, shape);
    const [av, bv] = [broadcastView(a, shape), broadcastView(b, shape)];
    a.backend.binary(op, av, bv, out);
    if (av !== a) av.dispose();
    if (bv !== b) bv.dispose();
    if (!grad) return out;
    return record(out, op, [a, b], (g) => {
      const [ga, gb] = grad(g, a, b, out);
      return [ga && unbroadcast(ga, a.shape), gb && unbroadcast(gb, b.shape)];
    });
  });
}

export const add = binaryOp('add');
export const sub = binaryOp('sub');
export const mul = binaryOp('mul');
export const div = binaryOp('div');
export const maximum = binaryOp('maximum');
export const minimum = binaryOp('minimum');
/** 1 where a > b, else 0. */
export const greater = binaryOp('greater');
/**
 * a where b > 0, else 0: ReLU's gradient (g where x > 0) in one pass, as PyTorch's
 * threshold_backward, where mul(g, step(x)) took two and wrote the step out in between.
 */
export const keepWherePositive = binaryOp('keepWherePositive');
