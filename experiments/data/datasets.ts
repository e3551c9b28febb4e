// The data sets the learnable-variance study reads, by name, as one kind of ImageSet: the
// loaders differ only in where their files are and what their held-out split is called.
import { loadCifar10 } from './cifar10.js';
import { loadFashionMnist } from './fashion-mnist.js';
import { loadImagenet32 } from './imagenet32.js';
import type { ImageSet, LoadImagesOptions } from './images.js';
import { loadMnist } from './mnist.js';

export const datasetNames = ['mnist', 'fashion-mnist', 'cifar10', 'imagenet32'] as const;
export type DatasetName = (typeof datasetNames)[number];

/** The training split, or the held-out one ('test'; ImageNet32 calls its own 'val'). */
export function loadDataset(name: DatasetName, split: 'train' | 'test', options: LoadImagesOptions = {}): ImageSet {
  switch (name) {
    case 'mnist': return loadMnist(split, options);
    case 'fashion-mnist': return loadFashionMnist(split, options);
    case 'cifar10': return loadCifar10(split, options);
    case 'imagenet32': return loadImagenet32(split === 'test' ? 'val' : 'train', options);
  }
}
