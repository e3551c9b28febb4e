// The learning-rate choice of the paper's protocol (App. B.3) on planted validation results:
// lowest mean over seeds wins, a rate with a diverged seed never does, and nothing is chosen
// when every rate diverged.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chooseLearningRate, meanAndStd } from '../experiments/lr-search.js';

test('chooses the rate with the lowest mean validation BPD over seeds', () => {
  const choice = chooseLearningRate([
    { lr: 1e-4, seed: 0, validationBpd: 7.0 }, { lr: 1e-4, seed: 1, validationBpd: 7.4 }, // mean 7.2
    { lr: 5e-4, seed: 0, validationBpd: 7.1 }, { lr: 5e-4, seed: 1, validationBpd: 7.2 }, // mean 7.15: chosen
    { lr: 1e-5, seed: 0, validationBpd: 6.9 }, { lr: 1e-5, seed: 1, validationBpd: null }, // best seed, but one diverged
  ]);
  assert.is(choice!.lr, 5e-4);
  assert.ok(Math.abs(choice!.validationBpd.get(1e-4)! - 7.2) < 1e-12);
  assert.is(choice!.validationBpd.get(1e-5), Infinity);
});

test('nothing is chosen when every rate diverged', () => {
  assert.is(chooseLearningRate([{ lr: 1, seed: 0, validationBpd: null }, { lr: 2, seed: 0, validationBpd: null }]), null);
});

test('mean and sample standard deviation', () => {
  assert.equal(meanAndStd([3]), { mean: 3, std: 0 });
  const { mean, std } = meanAndStd([1, 2, 3, 4]);
  assert.is(mean, 2.5);
  assert.ok(Math.abs(std - Math.sqrt(5 / 3)) < 1e-12);
});

test.run();
