// The silent ELBO composed from ordinary engine ops (matmuls of the latent moments with powers
// of the weights, then the per-pixel closed forms of docs/silent-elbo.md),
// differentiated by autograd. It is the test oracle for the fused op and its benchmark
// baseline; training uses the fused op.
import * as sg from '../silentgrad.js';
import type { LatentMoments, LearnableDecoderWeights, Tensor } from '../silentgrad.js';

const LOG_2PI = Math.log(2 * Math.PI);

/** sum_i W_ji^p-ish contraction: moment [B,d] times power [k,d] transposed -> [B,k]. */
const contract = (moment: Tensor, weightPower: Tensor): Tensor => sg.matmul(moment, sg.transpose(weightPower));

export function compositeExpectedLogLikelihoodFixed(m: LatentMoments, weight: Tensor, bias: Tensor, x: Tensor, sigma2: number): Tensor {
  const residual = sg.sub(x, sg.add(contract(m.mean, weight), bias));
  const suu = contract(m.c2, sg.square(weight));
  const k = x.shape[1]!;
  return sg.shift(sg.scale(sg.sum(sg.add(sg.square(residual), suu), [1]), -0.5 / sigma2), -0.5 * k * (LOG_2PI + Math.log(sigma2)));
}

export function compositeExpectedLogLikelihoodLearnable(m: LatentMoments, w: LearnableDecoderWeights, x: Tensor): Tensor {
  const { wMu: u, wA: a } = w;
  const [uu, aa, ua] = [sg.square(u), sg.square(a), sg.mul(u, a)];
  const D = sg.sub(x, sg.add(contract(m.mean, u), w.bMu));
  const A = sg.add(contract(m.mean, a), w.bA);
  const Suu = contract(m.c2, uu), Saa = contract(m.c2, aa), Sua = contract(m.c2, ua);
  const zero = sg.scale(D, 0);
  const Tuaa = m.c3 ? contract(m.c3, sg.mul(u, aa)) : zero;
  const Tuua = m.c3 ? contract(m.c3, sg.mul(uu, a)) : zero;
  const Taaa = m.c3 ? contract(m.c3, sg.mul(aa, a)) : zero;
  const Kuuaa = m.k4 ? contract(m.k4, sg.mul(uu, aa)) : zero;
  const Kaaaa = m.k4 ? contract(m.k4, sg.square(aa)) : zero;
  const [D2, A2] = [sg.square(D), sg.square(A)];
  const terms = [
    sg.mul(D2, A2), sg.mul(D2, Saa), sg.mul(A2, Suu), sg.scale(sg.mul(sg.mul(D, A), Sua), -4),
    sg.scale(sg.mul(D, Tuaa), -2), sg.scale(sg.mul(A, Tuua), 2), Kuuaa, sg.mul(Suu, Saa), sg.scale(sg.square(Sua), 2),
  ];
  const eDA = terms.reduce((acc, t) => sg.add(acc, t));
  const eA2 = sg.add(A2, Saa);
  const varA2 = [sg.scale(sg.mul(A2, Saa), 4), sg.scale(sg.mul(A, Taaa), 4), Kaaaa, sg.scale(sg.square(Saa), 2)].reduce((acc, t) => sg.add(acc, t));
  const logTerm = sg.sub(sg.log(eA2), sg.div(varA2, sg.scale(sg.square(eA2), 2)));
  const perPixel = sg.sub(sg.scale(logTerm, 0.5), sg.scale(eDA, 0.5));
  return sg.shift(sg.sum(perPixel, [1]), -0.5 * x.shape[1]! * LOG_2PI);
}
